//! Legacy (unaggregated) discovery documents, `/version` and minimal OpenAPI answers: enough for
//! kube-rs discovery and kubectl (which falls back from aggregated discovery on plain JSON).
use serde_json::{Value, json};

use super::super::resources::ResourceDef;

pub fn version() -> Value {
    json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0", "gitCommit": "testbed", "gitTreeState": "clean",
           "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.24", "compiler": "gc", "platform": "linux/amd64"})
}

pub fn core_versions(addr: &str) -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"],
           "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": addr}]})
}

fn group_versions<'a>(defs: impl Iterator<Item = &'a ResourceDef>, group: &str) -> Vec<String> {
    let mut versions: Vec<String> = Vec::new();
    for d in defs.filter(|d| d.group == group) {
        for v in &d.versions {
            if !versions.contains(v) {
                versions.push(v.clone());
            }
        }
    }
    // kube orders by version priority; v1 > v1beta1 > v1alpha1 is enough here.
    versions.sort_by_key(|v| {
        (
            v.contains("alpha"),
            v.contains("beta"),
            std::cmp::Reverse(v.clone()),
        )
    });
    versions
}

fn group_doc(group: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({"name": group, "versions": vs, "preferredVersion": vs.first().cloned().unwrap_or(Value::Null)})
}

pub fn groups<'a>(defs: impl Iterator<Item = &'a ResourceDef> + Clone) -> Value {
    let mut names: Vec<&str> = defs
        .clone()
        .filter(|d| !d.group.is_empty())
        .map(|d| d.group.as_str())
        .collect();
    names.dedup();
    names.sort();
    names.dedup();
    let groups: Vec<Value> = names
        .iter()
        .map(|g| group_doc(g, &group_versions(defs.clone(), g)))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn group<'a>(defs: impl Iterator<Item = &'a ResourceDef>, name: &str) -> Option<Value> {
    let versions = group_versions(defs, name);
    if versions.is_empty() {
        return None;
    }
    let mut doc = group_doc(name, &versions);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

pub fn resources<'a>(
    defs: impl Iterator<Item = &'a ResourceDef>,
    group: &str,
    version: &str,
) -> Option<Value> {
    let verbs = [
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    ];
    let mut list = Vec::new();
    for d in defs.filter(|d| d.group == group && d.serves(version)) {
        let mut r = json!({"name": d.plural, "singularName": d.singular, "namespaced": d.namespaced, "kind": d.kind, "verbs": verbs});
        if !d.short_names.is_empty() {
            r["shortNames"] = json!(d.short_names);
        }
        if !d.categories.is_empty() {
            r["categories"] = json!(d.categories);
        }
        list.push(r);
        if d.status_subresource {
            list.push(json!({"name": format!("{}/status", d.plural), "singularName": "", "namespaced": d.namespaced,
                             "kind": d.kind, "verbs": ["get", "patch", "update"]}));
        }
    }
    if list.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list}),
    )
}

/// `/openapi/v3`: no per-group documents, so kubectl's field-validation probe falls back.
pub fn openapi_v3_root() -> Value {
    json!({"paths": {}})
}
