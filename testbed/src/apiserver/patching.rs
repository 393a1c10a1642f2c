//! Adapter between the server and the patch module (`patch`): maps its errors to HTTP errors.
use serde_json::Value;

use super::patch::{self, ApplyError, ApplyRequest, PatchError};
use super::status::{Cause, cause};

pub use super::patch::{
    builtin_schema_info, merge_patch, record_update, same_ignoring_managed_time,
};

/// Why a patch could not be applied.
#[derive(Debug, Clone)]
pub enum PatchFailure {
    /// Malformed patch body (400).
    BadRequest(String),
    /// Patch does not apply to the object (422).
    Invalid(String),
    /// Server-side apply field conflicts (409) with `FieldManagerConflict` causes.
    Conflict(String, Vec<Cause>),
}

pub fn json_patch(doc: &mut Value, p: &Value) -> Result<(), PatchFailure> {
    patch::json_patch(doc, p).map_err(|e| match e {
        PatchError::Malformed(m) => PatchFailure::BadRequest(m),
        PatchError::NotApplicable(m) => PatchFailure::Invalid(m),
    })
}

/// Everything server-side apply needs.
pub type ApplyInput<'a> = ApplyRequest<'a>;

/// Server-side apply: the object after `applied` is merged into `live`, with managedFields.
pub fn apply(input: &ApplyInput<'_>) -> Result<Value, PatchFailure> {
    patch::apply(input).map_err(|e| match &e {
        ApplyError::Conflict { conflicts } => PatchFailure::Conflict(
            e.to_string(),
            conflicts
                .iter()
                .map(|c| cause("FieldManagerConflict", &c.path, c.cause_message()))
                .collect(),
        ),
        ApplyError::BadRequest(m) => PatchFailure::BadRequest(m.clone()),
        ApplyError::Invalid(m) => PatchFailure::Invalid(m.clone()),
    })
}
