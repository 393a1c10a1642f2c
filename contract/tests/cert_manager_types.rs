//! Our cert-manager types against cert-manager's own CRDs (v1.21.1, kept in
//! `testbed/cert-manager-crds/`): every field we can write exists there with the same type, and
//! our enums are subsets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use dbtls_contract::certmanager::{Certificate, ClusterIssuer, Issuer};
use kube::CustomResourceExt;
use serde_json::Value;

fn reference_schema(file: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testbed/cert-manager-crds")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let crd: Value = serde_yaml::from_str(&text).unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

/// Walks our schema; every property must exist in theirs with a compatible type.
fn compare(ours: &Value, theirs: &Value, path: &str, problems: &mut Vec<String>) {
    if theirs.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
        return;
    }
    let (our_type, their_type) = (ours.get("type"), theirs.get("type"));
    if our_type.is_some() && their_type.is_some() && our_type != their_type {
        problems.push(format!("{path}: type {our_type:?} vs {their_type:?}"));
    }
    if let (Some(Value::Array(our_enum)), Some(Value::Array(their_enum))) =
        (ours.get("enum"), theirs.get("enum"))
    {
        for v in our_enum.iter().filter(|v| !v.is_null()) {
            if !their_enum.contains(v) {
                problems.push(format!("{path}: enum value {v} unknown to cert-manager"));
            }
        }
    }
    if let Some(Value::Object(props)) = ours.get("properties") {
        for (name, our_prop) in props {
            match theirs.get("properties").and_then(|p| p.get(name)) {
                Some(their_prop) => {
                    compare(our_prop, their_prop, &format!("{path}.{name}"), problems)
                }
                None => problems.push(format!("{path}.{name}: not in cert-manager's CRD")),
            }
        }
    }
    if let (Some(our_items), Some(their_items)) = (ours.get("items"), theirs.get("items")) {
        compare(our_items, their_items, &format!("{path}[]"), problems);
    }
    for key in ["x-kubernetes-list-type", "x-kubernetes-list-map-keys"] {
        if ours.get(key).is_some() && ours.get(key) != theirs.get(key) {
            problems.push(format!(
                "{path}: {key} {:?} vs {:?}",
                ours.get(key),
                theirs.get(key)
            ));
        }
    }
}

fn check(ours: Value, file: &str) {
    let theirs = reference_schema(file);
    let mut problems = vec![];
    compare(&ours, &theirs, "", &mut problems);
    assert!(problems.is_empty(), "{file}:\n{}", problems.join("\n"));
}

fn our_schema(
    crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> Value {
    serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap(),
    )
    .unwrap()
}

#[test]
fn certificate_fields_exist_in_cert_managers_crd() {
    check(
        our_schema(Certificate::crd()),
        "cert-manager.io_certificates.yaml",
    );
}

#[test]
fn issuer_fields_exist_in_cert_managers_crd() {
    check(our_schema(Issuer::crd()), "cert-manager.io_issuers.yaml");
}

#[test]
fn cluster_issuer_fields_exist_in_cert_managers_crd() {
    check(
        our_schema(ClusterIssuer::crd()),
        "cert-manager.io_clusterissuers.yaml",
    );
}

#[test]
fn a_misspelt_field_would_be_caught() {
    let theirs = reference_schema("cert-manager.io_certificates.yaml");
    let ours = serde_json::json!({"properties": {"spec": {"properties": {"secretNmae": {"type": "string"}}}}});
    let mut problems = vec![];
    compare(&ours, &theirs, "", &mut problems);
    assert_eq!(
        problems,
        vec![".spec.secretNmae: not in cert-manager's CRD".to_string()]
    );
}
