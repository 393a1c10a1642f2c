//! `x-kubernetes-validations` (CEL) through kube-rs's `kube-cel`, which ports the Kubernetes
//! CEL libraries, binds `self`/`oldSelf` per schema level and skips transition rules on create.
//! This module compiles the rules once and turns kube-cel's results into kube field errors.
use kube_cel::{CompiledSchema, ErrorKind, ValidationError, Validator, compile_schema};
use serde_json::{Value, json};

use super::SchemaError;
use super::errors::FieldError;
use super::node::Node;

/// The compiled rules of one schema, ready to run on every write.
pub(crate) struct CelRules {
    compiled: CompiledSchema,
}

impl std::fmt::Debug for CelRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CelRules").finish_non_exhaustive()
    }
}

impl CelRules {
    /// Compiles every rule; a rule that does not compile rejects the CRD, as kube does.
    pub(crate) fn compile(schema: &Value) -> Result<Self, SchemaError> {
        let compiled = compile_schema(schema);
        let problems: Vec<String> = compiled
            .compilation_errors()
            .iter()
            .map(ToString::to_string)
            .collect();
        if problems.is_empty() {
            Ok(Self { compiled })
        } else {
            Err(SchemaError::new(
                "x-kubernetes-validations",
                &problems.join("; "),
            ))
        }
    }

    /// Runs the rules with `self` bound at each level; `old` enables transition rules.
    pub(crate) fn validate(
        &self,
        root: &Node,
        obj: &Value,
        old: Option<&Value>,
    ) -> Vec<FieldError> {
        // A Validator holds the CEL function registry; building one is cheap next to a write.
        match Validator::new().validate_compiled(&self.compiled, obj, old) {
            Ok(()) => Vec::new(),
            Err(failures) => failures.iter().map(|f| to_field_error(root, f)).collect(),
        }
    }
}

/// kube's `fieldErrorForReason`: the bad value shown is the schema type of the level that
/// declares the rule (not of the `fieldPath` target).
fn to_field_error(root: &Node, failure: &ValidationError) -> FieldError {
    let path = failure.field_path.trim_start_matches('.');
    let type_name = rule_level_type(root, path, &failure.rule).unwrap_or("object");
    let path = if path.is_empty() { "<nil>" } else { path };
    let type_value = Value::from(type_name);
    if failure.kind != ErrorKind::ValidationFailure {
        return FieldError::invalid(path, &type_value, &failure.message);
    }
    match failure.reason.as_deref() {
        Some("FieldValueForbidden") => FieldError::forbidden(path, &failure.message),
        Some("FieldValueRequired") => FieldError::required(path, &failure.message),
        Some("FieldValueDuplicate") => FieldError::duplicate(path, &type_value),
        _ => FieldError::invalid(path, &type_value, &failure.message),
    }
}

/// Walks a dotted path with `[i]` indexes (e.g. `spec.certificates[0].alias`) and returns the
/// type of the deepest level on it that declares `rule`, else of the last level reached.
fn rule_level_type<'a>(root: &'a Node, path: &str, rule: &str) -> Option<&'a str> {
    let mut levels = vec![root];
    let mut node = root;
    'walk: for segment in path.split('.').filter(|s| !s.is_empty()) {
        let (name, indexes) = segment.split_once('[').unwrap_or((segment, ""));
        let mut steps: Vec<Option<&Node>> = Vec::new();
        if !name.is_empty() {
            steps.push(node.child(name));
        }
        for _ in indexes.split('[').filter(|s| !s.is_empty()) {
            let current = steps.last().copied().flatten().unwrap_or(node);
            steps.push(current.items.as_deref());
        }
        for step in steps {
            match step {
                Some(next) => {
                    node = next;
                    levels.push(next);
                }
                None => break 'walk,
            }
        }
    }
    levels
        .iter()
        .rev()
        .find(|level| level.rules.iter().any(|r| r == rule))
        .or(levels.last())
        .and_then(|level| level.type_name.as_deref())
}

/// Evaluates one rule with `self` (and `oldSelf` when `old` is given) bound to plain JSON, for
/// tests that check a CRD's rules directly. A transition rule without `old` is skipped (true).
pub fn cel_eval_rule(rule: &str, self_value: &Value, old: Option<&Value>) -> Result<bool, String> {
    let schema = json!({ "x-kubernetes-validations": [{ "rule": rule }] });
    let compiled = compile_schema(&schema);
    if let Some(problem) = compiled.compilation_errors().first() {
        return Err(problem.to_string());
    }
    match Validator::new().validate_compiled(&compiled, self_value, old) {
        Ok(()) => Ok(true),
        Err(failures) => match failures
            .iter()
            .find(|f| f.kind != ErrorKind::ValidationFailure)
        {
            Some(broken) => Err(broken.message.clone()),
            None => Ok(false),
        },
    }
}
