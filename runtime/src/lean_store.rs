//! What neither operator reads, removed from every watched object before it enters a cache
//! (`crate::caches`). Kept as listed, half of a stored database's JSON is
//! `metadata.managedFields` (one entry per field manager: the user, both operators, the status
//! writers), parsed into nested maps; kubectl's
//! client-side `last-applied-configuration` annotation repeats the whole spec once more. Both
//! operators only ever write with server-side apply, which never sends these back, so dropping
//! them from the cache changes nothing but memory (kube-rs documents the same optimisation for
//! `WatchStreamExt::modify`).
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
}
