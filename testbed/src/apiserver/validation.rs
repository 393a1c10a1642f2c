//! Adapter between the server and the CRD schema module (`schema`): compile a version's
//! `openAPIV3Schema`, then default, prune and validate custom resources on every write.
use serde_json::Value;

use super::patch::SchemaInfo;
use super::schema::StructuralSchema;
use super::status::Cause;

/// One CRD version's structural schema.
#[derive(Debug)]
pub struct CrSchema {
    inner: StructuralSchema,
}

impl CrSchema {
    /// Compiles `spec.versions[].schema.openAPIV3Schema`.
    pub fn compile(open_api_v3_schema: &Value) -> Result<CrSchema, String> {
        StructuralSchema::from_json(open_api_v3_schema)
            .map(|inner| CrSchema { inner })
            .map_err(|e| e.to_string())
    }

    /// Applies defaults and drops fields the schema does not declare (kube's pruning).
    pub fn default_and_prune(&self, obj: &mut Value) {
        self.inner.default_and_prune(obj);
    }

    /// Validation errors as 422 causes (empty = valid). `old` is the stored object on updates.
    pub fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        self.inner
            .validate(obj, old)
            .into_iter()
            .map(|e| Cause {
                reason: e.kind.reason().to_string(),
                message: e.message,
                field: e.path,
            })
            .collect()
    }

    /// Structural information server-side apply needs for this schema.
    pub fn schema_info(&self) -> &dyn SchemaInfo {
        &self.inner
    }
}
