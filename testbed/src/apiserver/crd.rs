//! CustomResourceDefinitions: turning a stored CRD into a served resource, and the status the
//! establishing controller would write (`NamesAccepted`, `Established`, `acceptedNames`).
use std::sync::Arc;

use serde_json::{Value, json};

use super::resources::{PrinterColumn, ResourceDef};
use super::status::{Cause, cause};
use super::validation::CrSchema;

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The served resource a CRD defines, or 422 causes if it is not usable.
pub fn resource_def(crd: &Value) -> Result<ResourceDef, Vec<Cause>> {
    let spec = crd.get("spec").cloned().unwrap_or(Value::Null);
    let names = spec.get("names").cloned().unwrap_or(Value::Null);
    let group = spec
        .get("group")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let plural = names
        .get("plural")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let kind = names
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut causes = Vec::new();
    if group.is_empty() {
        causes.push(cause("FieldValueRequired", "spec.group", "Required value"));
    }
    if plural.is_empty() {
        causes.push(cause(
            "FieldValueRequired",
            "spec.names.plural",
            "Required value",
        ));
    }
    if kind.is_empty() {
        causes.push(cause(
            "FieldValueRequired",
            "spec.names.kind",
            "Required value",
        ));
    }
    let name = crd
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !plural.is_empty() && !group.is_empty() && name != format!("{plural}.{group}") {
        causes.push(cause(
            "FieldValueInvalid",
            "metadata.name",
            format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        causes.push(cause(
            "FieldValueRequired",
            "spec.versions",
            "Required value: must have exactly one version marked as storage version",
        ));
    }
    let mut served = Vec::new();
    let mut storage = None;
    let mut schemas = Vec::new();
    let mut status_subresource = false;
    let mut printer_columns = Vec::new();
    for (i, v) in versions.iter().enumerate() {
        let vname = v
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if v.get("served").and_then(Value::as_bool) == Some(true) {
            served.push(vname.clone());
        }
        if v.get("storage").and_then(Value::as_bool) == Some(true) {
            storage = Some(vname.clone());
        }
        status_subresource |= v.pointer("/subresources/status").is_some();
        if printer_columns.is_empty() {
            for c in v
                .get("additionalPrinterColumns")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                printer_columns.push(PrinterColumn {
                    name: c
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    type_: c
                        .get("type")
                        .and_then(Value::as_str)
                        .unwrap_or("string")
                        .to_string(),
                    json_path: c
                        .get("jsonPath")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                    description: c
                        .get("description")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                });
            }
        }
        let schema = match v.pointer("/schema/openAPIV3Schema") {
            Some(s) => match CrSchema::compile(s) {
                Ok(c) => Some(Arc::new(c)),
                Err(e) => {
                    causes.push(cause(
                        "FieldValueInvalid",
                        &format!("spec.versions[{i}].schema.openAPIV3Schema"),
                        e,
                    ));
                    None
                }
            },
            None => None,
        };
        schemas.push((vname, schema));
    }
    let Some(storage_version) = storage else {
        causes.push(cause(
            "FieldValueInvalid",
            "spec.versions",
            "Invalid value: must have exactly one version marked as storage version",
        ));
        return Err(causes);
    };
    if !causes.is_empty() {
        return Err(causes);
    }
    Ok(ResourceDef {
        group,
        versions: served,
        storage_version,
        singular: names
            .get("singular")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| kind.to_lowercase()),
        plural,
        kind,
        namespaced: spec.get("scope").and_then(Value::as_str) != Some("Cluster"),
        status_subresource,
        short_names: strings(names.get("shortNames")),
        categories: strings(names.get("categories")),
        printer_columns,
        tracks_generation: true,
        schemas,
        crd_name: Some(name.to_string()),
    })
}

/// Sets the status the CRD controllers would: names accepted, established.
pub fn set_established_status(crd: &mut Value, now: &str) {
    let accepted = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
    let stored: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .filter_map(|v| v.get("name").cloned())
        .collect();
    let keep_time = |t: &str| -> String {
        crd.pointer("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c.get("type").and_then(Value::as_str) == Some(t))
            })
            .and_then(|c| c.get("lastTransitionTime"))
            .and_then(Value::as_str)
            .unwrap_or(now)
            .to_string()
    };
    let conditions = json!([
        {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": keep_time("NamesAccepted")},
        {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": keep_time("Established")},
    ]);
    crd["status"] =
        json!({"acceptedNames": accepted, "conditions": conditions, "storedVersions": stored});
}
