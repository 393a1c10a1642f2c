//! The one key both operators use for a database in their per-database tables (backoff, status
//! coalescing, state gauges): `Kind/namespace/name` in one allocation. kube's erased
//! `ObjectRef` served before: with its API resource (five strings), resourceVersion and uid it
//! was ~0.4 KB and nine allocations per key, in three or four tables per database.
use kube::Resource;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DbKey(Box<str>);

impl DbKey {
    /// The key of the `kind` object `namespace/name` (no part holds a `/`: kinds, namespaces
    /// and names cannot).
    pub fn new(kind: &str, namespace: &str, name: &str) -> Self {
        Self(format!("{kind}/{namespace}/{name}").into_boxed_str())
    }
}

pub fn key_of<K: Resource<DynamicType = ()>>(db: &K) -> DbKey {
    let meta = db.meta();
    DbKey::new(
        &K::kind(&()),
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default(),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    use kube::api::ObjectMeta;

    #[test]
    fn keys_tell_kinds_and_namespaces_apart() {
        let meta = |ns: &str| ObjectMeta {
            name: Some("db".into()),
            namespace: Some(ns.into()),
            // Neither is part of what a key names.
            resource_version: Some(format!("rv-{ns}")),
            uid: Some(format!("uid-{ns}")),
            ..Default::default()
        };
        let cm = |ns: &str| ConfigMap {
            metadata: meta(ns),
            ..Default::default()
        };
        let secret = Secret {
            metadata: meta("a"),
            ..Default::default()
        };
        let mut later = cm("a");
        later.metadata.resource_version = Some("rv-2".into());
        assert_eq!(key_of(&cm("a")), key_of(&later));
        assert_eq!(key_of(&cm("a")), DbKey::new("ConfigMap", "a", "db"));
        assert_ne!(key_of(&cm("a")), key_of(&cm("b")));
        assert_ne!(key_of(&cm("a")), key_of(&secret));
    }
}
