//! The write semantics the API server builds on, driven the way the operators, cert-manager and
//! kubectl drive them on a custom resource.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use serde_json::{Value, json};
use testbed::apiserver::patch::{
    ApplyError, ApplyRequest, ListType, SchemaInfo, apply, json_patch, merge_patch, record_update,
    same_ignoring_managed_time,
};

/// What a CRD structural schema for cert-manager's Certificate says about its lists.
struct CertificateSchema;

impl SchemaInfo for CertificateSchema {
    fn list_type(&self, path: &[&str]) -> ListType {
        match path {
            ["status", "conditions"] => ListType::Map(vec!["type".into()]),
            ["metadata", "finalizers"] => ListType::Set,
            ["metadata", "ownerReferences"] => ListType::Map(vec!["uid".into()]),
            _ => ListType::Atomic,
        }
    }
}

const API_VERSION: &str = "cert-manager.io/v1";

fn ssa(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    subresource: Option<&str>,
    now: &str,
) -> Result<Value, ApplyError> {
    apply(&ApplyRequest {
        live,
        applied,
        manager,
        force,
        subresource,
        schema: &CertificateSchema,
        api_version: API_VERSION,
        now,
    })
}

fn certificate(dns_names: &[&str], secret: &str) -> Value {
    json!({
        "apiVersion": API_VERSION, "kind": "Certificate",
        "metadata": {"name": "db-server", "namespace": "demo", "labels": {"app.kubernetes.io/managed-by": "dbtls"}},
        "spec": {"secretName": secret, "dnsNames": dns_names, "issuerRef": {"name": "ca", "kind": "Issuer"}}
    })
}

fn condition_types(object: &Value) -> Vec<&str> {
    object["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect()
}

#[test]
fn operator_cert_manager_and_kubectl_share_a_certificate() {
    // The provisioner creates the Certificate through apply.
    let created = ssa(
        None,
        &certificate(&["db.demo.svc"], "db-server-cert"),
        "dbtls-provisioner",
        true,
        None,
        "2024-05-01T10:00:00Z",
    )
    .unwrap();

    // cert-manager's controllers own one condition each, through /status.
    let issuing = json!({"apiVersion": API_VERSION, "kind": "Certificate", "metadata": {"name": "db-server", "namespace": "demo"},
                         "status": {"conditions": [{"type": "Issuing", "status": "True"}]}});
    let with_issuing = ssa(
        Some(&created),
        &issuing,
        "cert-manager-certificates-trigger",
        true,
        Some("status"),
        "2024-05-01T10:00:01Z",
    )
    .unwrap();
    let ready = json!({"apiVersion": API_VERSION, "kind": "Certificate", "metadata": {"name": "db-server", "namespace": "demo"},
                       "status": {"conditions": [{"type": "Ready", "status": "False"}]}});
    let with_both = ssa(
        Some(&with_issuing),
        &ready,
        "cert-manager-certificates-readiness",
        true,
        Some("status"),
        "2024-05-01T10:00:02Z",
    )
    .unwrap();
    assert_eq!(condition_types(&with_both), ["Issuing", "Ready"]);

    // The provisioner's steady-state re-apply changes nothing: the server can skip the write.
    let again = ssa(
        Some(&with_both),
        &certificate(&["db.demo.svc"], "db-server-cert"),
        "dbtls-provisioner",
        true,
        None,
        "2024-05-01T10:05:00Z",
    )
    .unwrap();
    assert!(same_ignoring_managed_time(&again, &with_both));

    // A new DNS name replaces the atomic list and leaves status alone.
    let renamed = ssa(
        Some(&with_both),
        &certificate(&["db.demo.svc", "db"], "db-server-cert"),
        "dbtls-provisioner",
        true,
        None,
        "2024-05-01T10:06:00Z",
    )
    .unwrap();
    assert_eq!(renamed["spec"]["dnsNames"], json!(["db.demo.svc", "db"]));
    assert_eq!(condition_types(&renamed), ["Issuing", "Ready"]);

    // Someone edits the secret name with `kubectl edit` (a merge patch, operation Update).
    let mut edited = renamed.clone();
    merge_patch(&mut edited, &json!({"spec": {"secretName": "hand-made"}}));
    record_update(
        Some(&renamed),
        &mut edited,
        "kubectl-edit",
        None,
        &CertificateSchema,
        API_VERSION,
        "2024-05-01T11:00:00Z",
    );

    // An operator that does not force would see kube's conflict; the provisioner forces and wins.
    let desired = certificate(&["db.demo.svc", "db"], "db-server-cert");
    let err = ssa(
        Some(&edited),
        &desired,
        "dbtls-provisioner",
        false,
        None,
        "2024-05-01T11:01:00Z",
    )
    .unwrap_err();
    assert_eq!(err.http_status(), 409);
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "kubectl-edit" using cert-manager.io/v1: .spec.secretName"#
    );
    let restored = ssa(
        Some(&edited),
        &desired,
        "dbtls-provisioner",
        true,
        None,
        "2024-05-01T11:01:00Z",
    )
    .unwrap();
    assert_eq!(restored["spec"]["secretName"], "db-server-cert");
    let managers: Vec<&str> = restored["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["manager"].as_str().unwrap())
        .collect();
    assert!(
        !managers.contains(&"kubectl-edit"),
        "kubectl-edit owned only secretName: {managers:?}"
    );

    // Cleanup through a JSON patch with a test guard, as controllers remove finalizers.
    let mut with_finalizer = restored.clone();
    json_patch(
        &mut with_finalizer,
        &json!([{"op": "add", "path": "/metadata/finalizers", "value": ["dbtls.io/cleanup"]}]),
    )
    .unwrap();
    let stale_guard = json!([{"op": "test", "path": "/metadata/finalizers/0", "value": "other"},
                             {"op": "remove", "path": "/metadata/finalizers/0"}]);
    let before = with_finalizer.clone();
    assert_eq!(
        json_patch(&mut with_finalizer, &stale_guard)
            .unwrap_err()
            .http_status(),
        422
    );
    assert_eq!(with_finalizer, before);
}

/// The managedFields cert-manager's controllers leave on a real Certificate (two Updates
/// through /status), field for field.
#[test]
fn status_updates_record_fields_v1_like_a_real_certificate() {
    let fields_of = |object: &Value, manager: &str| {
        object["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["manager"] == manager)
            .map(|e| {
                (
                    e["fieldsV1"].clone(),
                    e["subresource"].clone(),
                    e["operation"].clone(),
                )
            })
            .unwrap()
    };
    let created = certificate(&["db"], "s");
    let condition = |kind: &str| {
        json!({"type": kind, "status": "False", "reason": "r", "message": "m",
               "lastTransitionTime": "2022-05-10T13:02:45Z", "observedGeneration": 1})
    };
    let mut issuing = created.clone();
    issuing["status"] = json!({"conditions": [condition("Issuing")]});
    record_update(
        Some(&created),
        &mut issuing,
        "cert-manager-certificates-trigger",
        Some("status"),
        &CertificateSchema,
        API_VERSION,
        "2022-05-10T13:02:45Z",
    );
    let mut ready = issuing.clone();
    ready["status"]["conditions"]
        .as_array_mut()
        .unwrap()
        .push(condition("Ready"));
    record_update(
        Some(&issuing),
        &mut ready,
        "cert-manager-certificates-readiness",
        Some("status"),
        &CertificateSchema,
        API_VERSION,
        "2022-05-10T13:02:45Z",
    );

    let condition_fields = json!({".": {}, "f:lastTransitionTime": {}, "f:message": {}, "f:observedGeneration": {},
                                  "f:reason": {}, "f:status": {}, "f:type": {}});
    assert_eq!(
        fields_of(&ready, "cert-manager-certificates-trigger"),
        (
            json!({"f:status": {".": {}, "f:conditions": {".": {}, "k:{\"type\":\"Issuing\"}": condition_fields.clone()}}}),
            json!("status"),
            json!("Update")
        )
    );
    assert_eq!(
        fields_of(&ready, "cert-manager-certificates-readiness").0,
        json!({"f:status": {"f:conditions": {"k:{\"type\":\"Ready\"}": condition_fields}}})
    );
}
