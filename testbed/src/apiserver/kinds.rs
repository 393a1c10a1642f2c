//! Kind-specific write rules of built-in resources that the operators can trip over:
//! defaulting, immutability and the exact 422 messages kube-apiserver gives.
use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::resources::ResourceDef;
use super::status::{Cause, cause};
use super::store::Store;

const STS_FORBIDDEN: &str = "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden";
const STS_MUTABLE: &[&str] = &[
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
];

fn is(def: &ResourceDef, group: &str, plural: &str) -> bool {
    def.group == group && def.plural == plural
}

/// Rules for a new object. `Err` carries 422 causes.
pub fn prepare_create(
    store: &mut Store,
    def: &ResourceDef,
    obj: &mut Value,
) -> Result<(), Vec<Cause>> {
    if is(def, "", "secrets") {
        merge_string_data(obj);
        if obj
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .is_empty()
        {
            obj["type"] = json!("Opaque");
        }
    } else if is(def, "", "services") {
        default_service(store, obj);
    } else if is(def, "", "namespaces") {
        obj["spec"] = json!({"finalizers": ["kubernetes"]});
        obj["status"] = json!({"phase": "Active"});
    } else if is(def, "", "pods") {
        obj["status"] = json!({"phase": "Pending"});
    } else if is(def, "apps", "statefulsets") {
        default_statefulset(obj);
        check_selector(obj)?;
    } else if is(def, "apps", "deployments") {
        check_selector(obj)?;
    }
    Ok(())
}

/// Rules for an update of `old` to `new` (after the status split).
pub fn prepare_update(def: &ResourceDef, old: &Value, new: &mut Value) -> Result<(), Vec<Cause>> {
    if is(def, "", "secrets") {
        merge_string_data(new);
        if new
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .is_empty()
        {
            new["type"] = old.get("type").cloned().unwrap_or(json!("Opaque"));
        }
        if new.get("type") != old.get("type") {
            let t = new.get("type").and_then(Value::as_str).unwrap_or_default();
            return Err(vec![cause(
                "FieldValueInvalid",
                "type",
                format!("Invalid value: \"{t}\": field is immutable"),
            )]);
        }
        check_immutable_data(old, new, &["data"])?;
    } else if is(def, "", "configmaps") {
        check_immutable_data(old, new, &["data", "binaryData"])?;
    } else if is(def, "", "services") {
        let old_ip = old
            .pointer("/spec/clusterIP")
            .cloned()
            .unwrap_or(Value::Null);
        let new_ip = new
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if new_ip.is_empty() {
            if new.get("spec").is_none_or(|s| !s.is_object()) {
                new["spec"] = json!({});
            }
            new["spec"]["clusterIP"] = old_ip.clone();
            new["spec"]["clusterIPs"] = old
                .pointer("/spec/clusterIPs")
                .cloned()
                .unwrap_or(Value::Null);
        } else if Some(new_ip.as_str()) != old_ip.as_str() {
            return Err(vec![cause(
                "FieldValueInvalid",
                "spec.clusterIPs[0]",
                format!("Invalid value: []string{{\"{new_ip}\"}}: may not change once set"),
            )]);
        }
    } else if is(def, "", "namespaces") {
        new["spec"] = old.get("spec").cloned().unwrap_or(Value::Null);
    } else if is(def, "apps", "statefulsets") {
        default_statefulset(new);
        let strip = |v: &Value| -> Value {
            let mut s = v.get("spec").cloned().unwrap_or(json!({}));
            if let Some(m) = s.as_object_mut() {
                for f in STS_MUTABLE {
                    m.remove(*f);
                }
            }
            s
        };
        if strip(old) != strip(new) {
            return Err(vec![cause(
                "FieldValueForbidden",
                "spec",
                format!("Forbidden: {STS_FORBIDDEN}"),
            )]);
        }
        check_selector(new)?;
    }
    Ok(())
}

/// `stringData` is write-only: merged into `data` as base64.
fn merge_string_data(obj: &mut Value) {
    let Some(Value::Object(string_data)) = obj.as_object_mut().and_then(|m| m.remove("stringData"))
    else {
        return;
    };
    if !obj.get("data").is_some_and(Value::is_object) {
        obj["data"] = json!({});
    }
    for (k, v) in string_data {
        let s = v.as_str().unwrap_or_default();
        obj["data"][k] = json!(base64_encode(s.as_bytes()));
    }
}

fn check_immutable_data(old: &Value, new: &Value, fields: &[&str]) -> Result<(), Vec<Cause>> {
    if old.get("immutable").and_then(Value::as_bool) != Some(true) {
        return Ok(());
    }
    let empty = json!({});
    let mut causes = Vec::new();
    for f in fields {
        if old.get(*f).unwrap_or(&empty) != new.get(*f).unwrap_or(&empty) {
            causes.push(cause(
                "FieldValueForbidden",
                f,
                "Forbidden: field is immutable when `immutable` is set",
            ));
        }
    }
    if new.get("immutable").and_then(Value::as_bool) != Some(true) {
        causes.push(cause(
            "FieldValueForbidden",
            "immutable",
            "Forbidden: field is immutable when `immutable` is set",
        ));
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(causes)
    }
}

fn default_service(store: &mut Store, obj: &mut Value) {
    if !obj.get("spec").is_some_and(Value::is_object) {
        obj["spec"] = json!({});
    }
    let spec = &mut obj["spec"];
    if spec.get("type").is_none() {
        spec["type"] = json!("ClusterIP");
    }
    if spec.get("sessionAffinity").is_none() {
        spec["sessionAffinity"] = json!("None");
    }
    let ip = spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let ip = if ip.is_empty() {
        store.allocate_cluster_ip()
    } else {
        ip
    };
    spec["clusterIP"] = json!(ip);
    spec["clusterIPs"] = json!([ip]);
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports {
            if p.get("protocol").is_none() {
                p["protocol"] = json!("TCP");
            }
            if p.get("targetPort").is_none() {
                p["targetPort"] = p.get("port").cloned().unwrap_or(Value::Null);
            }
        }
    }
    obj["status"] = json!({"loadBalancer": {}});
}

fn default_statefulset(obj: &mut Value) {
    if !obj.get("spec").is_some_and(Value::is_object) {
        return;
    }
    let spec = &mut obj["spec"];
    if spec.get("replicas").is_none() {
        spec["replicas"] = json!(1);
    }
    if spec.get("podManagementPolicy").is_none() {
        spec["podManagementPolicy"] = json!("OrderedReady");
    }
    if spec.get("revisionHistoryLimit").is_none() {
        spec["revisionHistoryLimit"] = json!(10);
    }
    if spec.get("updateStrategy").is_none() {
        spec["updateStrategy"] =
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}});
    }
    if spec.get("persistentVolumeClaimRetentionPolicy").is_none() {
        spec["persistentVolumeClaimRetentionPolicy"] =
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"});
    }
}

/// `spec.selector` must select `spec.template.metadata.labels`.
fn check_selector(obj: &Value) -> Result<(), Vec<Cause>> {
    let labels: BTreeMap<String, String> = obj
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    let selector = obj.pointer("/spec/selector");
    let mut matches = selector.is_some();
    if let Some(ml) = selector
        .and_then(|s| s.get("matchLabels"))
        .and_then(Value::as_object)
    {
        matches &= ml
            .iter()
            .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str());
    }
    for expr in selector
        .and_then(|s| s.get("matchExpressions"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = expr.get("key").and_then(Value::as_str).unwrap_or_default();
        let values: Vec<&str> = expr
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let got = labels.get(key).map(String::as_str);
        matches &= match expr.get("operator").and_then(Value::as_str) {
            Some("In") => got.is_some_and(|g| values.contains(&g)),
            Some("NotIn") => got.is_none_or(|g| !values.contains(&g)),
            Some("Exists") => got.is_some(),
            Some("DoesNotExist") => got.is_none(),
            _ => false,
        };
    }
    if matches {
        return Ok(());
    }
    let rendered: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("\"{k}\":\"{v}\""))
        .collect();
    Err(vec![cause(
        "FieldValueInvalid",
        "spec.template.metadata.labels",
        format!(
            "Invalid value: map[string]string{{{}}}: `selector` does not match template `labels`",
            rendered.join(", ")
        ),
    )])
}

/// Standard base64 with padding (what `data` holds).
fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::base64_encode;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(plain.as_bytes()), enc);
        }
    }
}
