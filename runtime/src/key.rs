//! The one key both operators use for a database in their per-database tables (backoff, status
//! coalescing, metrics): kube's `ObjectRef`, with the kind kept in its erased form.
use kube::Resource;
use kube::api::DynamicObject;
use kube::runtime::reflector::ObjectRef;

pub type DbKey = ObjectRef<DynamicObject>;

pub fn key_of<K: Resource<DynamicType = ()>>(db: &K) -> DbKey {
    ObjectRef::from_obj(db).erase()
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
        assert_eq!(key_of(&cm("a")), key_of(&cm("a")));
        assert_ne!(key_of(&cm("a")), key_of(&cm("b")));
        assert_ne!(key_of(&cm("a")), key_of(&secret));
    }
}
