//! kube-apiserver's write semantics on JSON values: JSON merge patch, JSON patch and server-side
//! apply with managed fields. Pure functions; no I/O.
//!
//! - [`merge_patch`], [`json_patch`]: the patch documents.
//! - [`apply`], [`record_update`]: server-side apply and the managedFields of other writes.
//! - [`builtin_schema_info`]: list types of built-in kinds; CRDs implement [`SchemaInfo`] from
//!   their structural schema.
mod apply;
mod builtin;
mod documents;
pub mod fieldpath;
pub mod managed;
pub mod typed;

pub use apply::{
    ApplyError, ApplyRequest, FieldConflict, apply, record_update, same_ignoring_managed_time,
};
pub use builtin::builtin_schema_info;
pub use documents::{PatchError, json_patch, merge_patch};
pub use managed::{ManagedEntry, Operation};

#[cfg(test)]
mod apply_tests;

/// How the elements of a list merge under server-side apply
/// (`x-kubernetes-list-type` / `x-kubernetes-list-map-keys`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListType {
    /// The whole list is owned and replaced as one value (the default for lists).
    Atomic,
    /// A set of scalars; each element is owned separately.
    Set,
    /// A list of objects keyed by these fields; each element is owned separately.
    Map(Vec<String>),
}

/// Structural information that server-side apply needs about a kind.
pub trait SchemaInfo: Send + Sync {
    /// The list type of the list at `path` (field names from the object root; `[]` steps into
    /// list elements), e.g. `["spec", "template", "spec", "containers"]`.
    fn list_type(&self, path: &[&str]) -> ListType;
    /// Whether the map at `path` is atomic (`x-kubernetes-map-type: atomic`).
    fn is_atomic_map(&self, _path: &[&str]) -> bool {
        false
    }
    /// Whether the kind is a compiled-in type whose top-level `metadata`, `spec` and `status`
    /// always exist (built-ins: true). kube then never records them as created by an update
    /// (no `.` under `f:spec`); for custom resources, which are unstructured, it does.
    fn has_typed_top_level(&self) -> bool {
        false
    }
}
