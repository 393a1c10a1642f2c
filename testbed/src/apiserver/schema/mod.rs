//! CustomResourceDefinition schemas as kube-apiserver uses them: defaulting, pruning of unknown
//! fields, validation (types, required, enums, formats, CEL `x-kubernetes-validations`).
//! Pure functions; no I/O.
//!
//! On every write of a custom resource the server calls [`StructuralSchema::default_and_prune`]
//! then [`StructuralSchema::validate`], and answers 422 with [`status_details`] on errors.
mod cel;
mod defaults;
mod errors;
mod formats;
mod lists;
mod node;
mod prune;
mod validate;

#[cfg(test)]
mod tests;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;
use serde_json::Value;

pub use cel::cel_eval_rule;
pub use errors::{FieldError, FieldErrorKind, status_details};

use super::patch::{ListType, SchemaInfo};
use node::{ListKind, Node};

/// Why a CRD's `openAPIV3Schema` cannot be used (kube would reject the CRD).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid schema at {path}: {message}")]
pub struct SchemaError {
    pub path: String,
    pub message: String,
}

impl SchemaError {
    pub(crate) fn new(path: &str, message: &str) -> Self {
        Self {
            path: if path.is_empty() {
                "openAPIV3Schema".to_owned()
            } else {
                path.to_owned()
            },
            message: message.to_owned(),
        }
    }
}

/// Detail kube adds when schema errors stop the CEL rules from running.
const CEL_SKIPPED: &str = "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation";

/// One served version's schema, parsed and with its CEL rules compiled.
#[derive(Debug)]
pub struct StructuralSchema {
    root: Node,
    rules: cel::CelRules,
}

impl StructuralSchema {
    pub fn new(props: &JSONSchemaProps) -> Result<Self, SchemaError> {
        let json = serde_json::to_value(props)
            .map_err(|e| SchemaError::new("", &format!("cannot serialise schema: {e}")))?;
        Self::from_json(&json)
    }

    /// Same as [`Self::new`] from the schema's JSON form.
    pub fn from_json(schema: &Value) -> Result<Self, SchemaError> {
        Ok(Self {
            root: Node::parse(schema, "")?,
            rules: cel::CelRules::compile(schema)?,
        })
    }

    /// kube-apiserver order on write: prune unknown fields, then apply `default`s (which also
    /// replace non-nullable `null`s), then drop the remaining non-nullable `null`s.
    pub fn default_and_prune(&self, obj: &mut Value) {
        prune::prune_root(obj, &self.root);
        defaults::apply_defaults(obj, &self.root, true);
        defaults::drop_non_nullable_nulls(obj, &self.root);
    }

    /// Schema validation, list-type uniqueness, then CEL rules (`old` is the stored object on
    /// update). Like kube, CEL is skipped with a notice when a type/required/enum/size error
    /// makes the object unfit for it. Sorted, so responses are deterministic.
    pub fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errors = Vec::new();
        validate::validate_root(obj, &self.root, &mut errors);
        let blocking = errors.iter().any(|e| {
            matches!(
                e.kind,
                FieldErrorKind::NotSupported
                    | FieldErrorKind::Required
                    | FieldErrorKind::TooLong
                    | FieldErrorKind::TooMany
                    | FieldErrorKind::TypeInvalid
            )
        });
        if blocking {
            errors.push(FieldError::invalid("<nil>", &Value::Null, CEL_SKIPPED));
        } else {
            errors.extend(self.rules.validate(&self.root, obj, old));
        }
        errors.sort();
        errors.dedup();
        errors
    }
}

/// A CRD's schema says nothing about `metadata` (kube types it as ObjectMeta for every kind):
/// without this, `metadata.finalizers` would be atomic and two managers' finalizers would
/// replace each other on every apply.
fn object_meta() -> &'static dyn SchemaInfo {
    super::patch::builtin_schema_info("", "")
}

impl SchemaInfo for StructuralSchema {
    fn list_type(&self, path: &[&str]) -> ListType {
        if path.first() == Some(&"metadata") {
            return object_meta().list_type(path);
        }
        match lists::node_at(&self.root, path).map(|n| &n.list_kind) {
            Some(ListKind::Set) => ListType::Set,
            Some(ListKind::Map(keys)) => ListType::Map(keys.clone()),
            Some(ListKind::Atomic) | None => ListType::Atomic,
        }
    }

    fn is_atomic_map(&self, path: &[&str]) -> bool {
        if path.first() == Some(&"metadata") {
            return object_meta().is_atomic_map(path);
        }
        lists::node_at(&self.root, path).is_some_and(|n| n.atomic_map)
    }
}
