//! What neither operator reads, removed from every watched object before it enters a cache
//! (`crate::caches`). Kept as listed, half of a stored database's JSON is
//! `metadata.managedFields` (one entry per field manager: the user, both operators, the status
//! writers), parsed into nested maps; kubectl's
//! client-side `last-applied-configuration` annotation repeats the whole spec once more. Both
//! operators only ever write with server-side apply, which never sends these back, so dropping
//! them from the cache changes nothing but memory (kube-rs documents the same optimisation for
//! `WatchStreamExt::modify`).
use dbtls_contract::Database;
use dbtls_contract::conditions::{ConditionType, Writer};
use kube::Resource;

/// kubectl's client-side apply record: a copy of the last applied manifest.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Removes the fields no reconcile reads: `managedFields` and the last-applied annotation.
pub fn trim<K: Resource>(object: &mut K) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED_ANNOTATION);
        if annotations.is_empty() {
            meta.annotations = None;
        }
    }
}

/// A database as `reader` keeps it: [`trim`], and of its status conditions only the types it
/// reads (`ConditionType::read_by`). The other operator's conditions are a third of a stored
/// database's memory (messages included) and no plan or status write of this one looks at them:
/// every status write compares and keeps its own types only.
pub fn trim_database<K: Database>(db: &mut K, reader: Writer) {
    trim(db);
    if let Some(status) = db.db_status_mut() {
        status
            .conditions
            .retain(|c| ConditionType::parse(&c.type_).is_some_and(|t| t.read_by(reader)));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta};

    fn object(annotations: &[(&str, &str)]) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some("db".into()),
                labels: Some([("app".to_string(), "x".to_string())].into()),
                managed_fields: Some(vec![ManagedFieldsEntry {
                    manager: Some("kubectl".into()),
                    ..Default::default()
                }]),
                annotations: Some(
                    annotations
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn drops_managed_fields_and_last_applied_but_keeps_other_metadata() {
        let mut cm = object(&[(LAST_APPLIED_ANNOTATION, "{}"), ("note", "kept")]);
        trim(&mut cm);
        assert_eq!(cm.metadata.managed_fields, None);
        assert_eq!(
            cm.metadata.annotations,
            Some([("note".to_string(), "kept".to_string())].into())
        );
        assert_eq!(cm.metadata.name.as_deref(), Some("db"));
        assert!(cm.metadata.labels.is_some());
    }

    #[test]
    fn no_annotation_left_means_none() {
        let mut cm = object(&[(LAST_APPLIED_ANNOTATION, "{}")]);
        trim(&mut cm);
        assert_eq!(cm.metadata.annotations, None);
    }

    #[test]
    fn a_database_keeps_the_conditions_its_reader_reads() {
        let conditions: Vec<serde_json::Value> = [
            "ProvisioningStarted",
            "WorkloadReady",
            "Ready",
            "IssuerReady",
            "TLSServing",
            "SomethingElse",
        ]
        .iter()
        .map(|t| serde_json::json!({"type": t, "status": "True", "lastTransitionTime": "2026-12-05T00:00:00Z", "message": "m"}))
        .collect();
        let db: dbtls_contract::api::MySQL = serde_json::from_value(serde_json::json!({
            "apiVersion": "kubedb.com/v1", "kind": "MySQL",
            "metadata": {"name": "db", "namespace": "ns"},
            "spec": {"version": "8.4.3"},
            "status": {"phase": "Ready", "conditions": conditions},
        }))
        .unwrap();
        let kept = |reader| {
            let mut db = db.clone();
            trim_database(&mut db, reader);
            let status = db.db_status().unwrap();
            assert_eq!(status.phase.map(|p| p.as_str()), Some("Ready"));
            status
                .conditions
                .iter()
                .map(|c| c.type_.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            kept(Writer::Provisioner),
            ["ProvisioningStarted", "WorkloadReady", "Ready"]
        );
        assert_eq!(
            kept(Writer::OpsManager),
            ["WorkloadReady", "IssuerReady", "TLSServing"]
        );
    }
}
