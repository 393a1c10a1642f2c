//! The databases a controller reconciles, kept compact ([`Compact`]) like the children, beside a
//! store of their names alone for kube-rs's `Controller`, which looks up each object it is to
//! reconcile in a [`Store`] of the type it reconciles. Kept whole in that store, a database cost
//! ~4 KB (k8s-openapi's and the API types' structs are kilobytes before any content); its name
//! as [`PartialObjectMeta`] costs a few hundred bytes, and the whole object, compressed, about
//! as much. A reconcile decodes its one database from the compact cache ([`KeyedStore::whole`]).
//!
//! What a database refers to (its issuers, a ProxySQL's backend) is kept beside its key
//! ([`References`]), so that a change to such an object finds the databases naming it without
//! decoding every database.
use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::{Arc, PoisonError, RwLock};

use futures::{Stream, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Compact, CompactStore, Objects, SharedWatch, Storage, Trigger, compact};

/// What a database's controller keys on: its name and namespace, nothing else.
pub type DatabaseKey<K> = PartialObjectMeta<K>;

/// The key of `object`.
pub fn key_of<K: Resource>(object: &K) -> DatabaseKey<K> {
    let meta = object.meta();
    PartialObjectMeta {
        types: None,
        metadata: ObjectMeta {
            name: meta.name.clone(),
            namespace: meta.namespace.clone(),
            ..ObjectMeta::default()
        },
        _phantom: PhantomData,
    }
}

/// A watch of the databases of a kind, kept compact with their keys beside.
pub type KeyedWatch<K> = SharedWatch<K, Keyed<K>>;

/// The names of what a database refers to, as the watches of those objects look them up
/// (e.g. `ClusterIssuer/ca`, `backend/db`).
pub type References<K> = fn(&K) -> Vec<String>;

/// How [`References`] name an issuer: `Issuer/ca`, `ClusterIssuer/ca` (the namespace of an
/// Issuer is the database's own, which [`KeyedStore::referring`] is asked for).
pub fn issuer_reference(kind: &str, name: &str) -> String {
    format!("{kind}/{name}")
}

/// The issuers `db`'s `spec.tls` names, as [`References`].
pub fn issuer_references<K: dbtls_contract::Database>(db: &K) -> Vec<String> {
    db.tls()
        .into_iter()
        .flat_map(|tls| tls.issuers())
        .map(|issuer| issuer_reference(&issuer.kind, &issuer.name))
        .collect()
}

/// One database's references.
type Names = Box<[Box<str>]>;

/// Each database's references, by `namespace/name` as the compact cache keys it (none: no
/// entry).
type Referring = HashMap<Box<str>, Names>;

/// The writer of a [`KeyedStore`].
pub struct Keyed<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    objects: Compact<K>,
    keys: Objects<DatabaseKey<K>>,
    references: Option<References<K>>,
    referring: Arc<RwLock<Referring>>,
    /// A re-list's references, replacing the others at its end.
    listing: Option<Referring>,
}

/// The reads of a [`KeyedWatch`]: the whole objects, and the keys a `Controller` runs over.
pub struct KeyedStore<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    pub objects: CompactStore<K>,
    pub keys: Store<DatabaseKey<K>>,
    referring: Arc<RwLock<Referring>>,
}

impl<K> Clone for KeyedStore<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    fn clone(&self) -> Self {
        Self {
            objects: self.objects.clone(),
            keys: self.keys.clone(),
            referring: self.referring.clone(),
        }
    }
}

impl<K> KeyedStore<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + 'static,
{
    /// The database `key` names, whole (None: deleted since it was queued).
    pub fn whole(&self, key: &DatabaseKey<K>) -> Option<Arc<K>> {
        let meta = &key.metadata;
        self.objects
            .get(
                meta.namespace.as_deref().unwrap_or_default(),
                meta.name.as_deref()?,
            )
            .map(Arc::new)
    }

    /// The controller's reconcile of the database `key` names: `reconcile` of the whole
    /// database, read from the cache now; nothing when it was deleted since it was queued (its
    /// deletion was the change).
    pub fn reconcile<Ctx, E, Fut, R>(
        &self,
        key: &DatabaseKey<K>,
        ctx: Arc<Ctx>,
        reconcile: R,
    ) -> impl Future<Output = Result<Action, E>> + use<K, Ctx, E, Fut, R>
    where
        R: FnOnce(Arc<K>, Arc<Ctx>) -> Fut,
        Fut: Future<Output = Result<Action, E>>,
    {
        let whole = self.whole(key).map(|db| reconcile(db, ctx));
        async move {
            match whole {
                Some(reconciled) => reconciled.await,
                None => Ok(Action::await_change()),
            }
        }
    }

    /// The databases whose [`References`] hold `reference`, in `namespace` (None: anywhere).
    pub fn referring(
        &self,
        reference: &str,
        namespace: Option<&str>,
    ) -> Vec<ObjectRef<DatabaseKey<K>>> {
        let referring = self
            .referring
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        referring
            .iter()
            .filter(|(_, references)| references.iter().any(|r| &**r == reference))
            .filter_map(|(key, _)| key.split_once('/'))
            .filter(|(ns, _)| namespace.is_none_or(|wanted| wanted == *ns))
            .map(|(ns, name)| ObjectRef::new(name).within(ns))
            .collect()
    }
}

impl<K> Keyed<K>
where
    K: Resource + Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    /// A store that also keeps what each database refers to.
    pub fn referencing(references: References<K>) -> Self {
        Self {
            references: Some(references),
            ..Self::create()
        }
    }

    /// `object`'s entry in [`Referring`], if it refers to anything.
    fn references_of(&self, object: &K) -> Option<(Box<str>, Names)> {
        let references: Names = (self.references?)(object)
            .into_iter()
            .map(String::into_boxed_str)
            .collect();
        if references.is_empty() {
            return None;
        }
        Some((compact::key_of(object)?, references))
    }

    fn apply_references(&mut self, event: &watcher::Event<K>) {
        if self.references.is_none() {
            return;
        }
        let referring = || {
            self.referring
                .write()
                .unwrap_or_else(PoisonError::into_inner)
        };
        match event {
            watcher::Event::Apply(o) => {
                let entry = self.references_of(o);
                let mut referring = referring();
                if let Some(key) = compact::key_of(o) {
                    referring.remove(&key);
                }
                if let Some((key, references)) = entry {
                    referring.insert(key, references);
                }
            }
            watcher::Event::Delete(o) => {
                if let Some(key) = compact::key_of(o) {
                    referring().remove(&key);
                }
            }
            watcher::Event::Init => self.listing = Some(Referring::new()),
            watcher::Event::InitApply(o) => {
                if let Some((key, references)) = self.references_of(o) {
                    self.listing.get_or_insert_default().insert(key, references);
                }
            }
            watcher::Event::InitDone => {
                let listed = self.listing.take().unwrap_or_default();
                *referring() = listed;
            }
        }
    }
}

impl<K> Storage<K> for Keyed<K>
where
    K: Resource + Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    type Reader = KeyedStore<K>;

    fn create() -> Self {
        Self {
            objects: Compact::create(),
            keys: Objects::create(),
            references: None,
            referring: Arc::default(),
            listing: None,
        }
    }

    fn reader(&self) -> KeyedStore<K> {
        KeyedStore {
            objects: self.objects.reader(),
            keys: self.keys.reader(),
            referring: self.referring.clone(),
        }
    }

    fn apply(&mut self, event: &watcher::Event<K>) -> Vec<Trigger<K>> {
        // The objects first: a key the controller finds names an object already stored.
        let changed = self.objects.apply(event);
        let keyed = match event {
            watcher::Event::Apply(o) => watcher::Event::Apply(key_of(o)),
            watcher::Event::Delete(o) => watcher::Event::Delete(key_of(o)),
            watcher::Event::Init => watcher::Event::Init,
            watcher::Event::InitApply(o) => watcher::Event::InitApply(key_of(o)),
            watcher::Event::InitDone => watcher::Event::InitDone,
        };
        self.keys.apply(&keyed);
        self.apply_references(event);
        changed
    }
}

impl<K> KeyedWatch<K>
where
    K: Resource + Clone + Serialize + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    /// The keys of the objects applied or deleted, for the controller of `K` itself.
    pub fn subscribe_keys(&self) -> impl Stream<Item = Arc<DatabaseKey<K>>> + Send + 'static {
        self.subscribe().map(|object| Arc::new(key_of(&*object)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::reflector::ObjectRef;

    fn cm(name: &str, data: &str) -> ConfigMap {
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some(name.into());
        cm.metadata.namespace = Some("ns".into());
        cm.metadata.uid = Some(format!("uid-{name}"));
        cm.data = Some([("k".to_string(), data.to_string())].into());
        cm
    }

    #[test]
    fn the_controller_keys_on_names_and_reads_the_whole_object() {
        let mut keyed = Keyed::<ConfigMap>::create();
        let store = keyed.reader();
        keyed.apply(&watcher::Event::Init);
        for i in 0..20 {
            keyed.apply(&watcher::Event::InitApply(cm(&format!("db-{i}"), "listed")));
        }
        let listed = keyed.apply(&watcher::Event::InitDone);
        assert_eq!(listed.len(), 20, "every listed object is a change");
        keyed.apply(&watcher::Event::Apply(cm("db-3", "changed")));
        let key = store
            .keys
            .get(&ObjectRef::new("db-3").within("ns"))
            .unwrap();
        assert_eq!(key.metadata.uid, None, "a key holds the name only");
        assert_eq!(*store.whole(&key).unwrap(), cm("db-3", "changed"));
        keyed.apply(&watcher::Event::Delete(cm("db-3", "changed")));
        assert!(
            store
                .keys
                .get(&ObjectRef::new("db-3").within("ns"))
                .is_none()
        );
        assert!(store.whole(&key).is_none(), "deleted since it was queued");
        assert_eq!(store.keys.state().len(), 19);
    }

    #[tokio::test]
    async fn a_reconcile_gets_the_whole_object_or_nothing_once_it_is_gone() {
        let mut keyed = Keyed::<ConfigMap>::create();
        let store = keyed.reader();
        keyed.apply(&watcher::Event::Apply(cm("db", "v1")));
        let key = key_of(&cm("db", "v1"));
        let seen = |db: Arc<ConfigMap>, _: Arc<()>| async move {
            Ok::<_, std::convert::Infallible>(Action::requeue(std::time::Duration::from_secs(
                db.data.as_ref().map_or(0, |d| d["k"].len() as u64),
            )))
        };
        let action = store.reconcile(&key, Arc::new(()), seen).await.unwrap();
        assert_eq!(action, Action::requeue(std::time::Duration::from_secs(2)));
        keyed.apply(&watcher::Event::Delete(cm("db", "v1")));
        let action = store
            .reconcile(&key, Arc::new(()), |_, _: Arc<()>| async {
                Err::<Action, _>("a deleted database is not reconciled")
            })
            .await
            .unwrap();
        assert_eq!(action, Action::await_change());
    }

    /// A ConfigMap "refers" to its data value.
    fn refers(cm: &ConfigMap) -> Vec<String> {
        cm.data.iter().flat_map(|d| d.values().cloned()).collect()
    }

    fn names(refs: Vec<ObjectRef<DatabaseKey<ConfigMap>>>) -> Vec<String> {
        let mut names: Vec<String> = refs
            .into_iter()
            .map(|r| format!("{}/{}", r.namespace.unwrap_or_default(), r.name))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_change_to_what_databases_refer_to_finds_them_without_decoding() {
        let mut keyed = Keyed::<ConfigMap>::referencing(refers);
        let store = keyed.reader();
        for (name, issuer) in [
            ("a", "Issuer/ca"),
            ("b", "Issuer/ca"),
            ("c", "Issuer/other"),
        ] {
            keyed.apply(&watcher::Event::Apply(cm(name, issuer)));
        }
        let mut elsewhere = cm("d", "Issuer/ca");
        elsewhere.metadata.namespace = Some("other".into());
        keyed.apply(&watcher::Event::Apply(elsewhere.clone()));
        assert_eq!(
            names(store.referring("Issuer/ca", Some("ns"))),
            ["ns/a", "ns/b"]
        );
        assert_eq!(
            names(store.referring("Issuer/ca", None)),
            ["ns/a", "ns/b", "other/d"],
            "any namespace (a ClusterIssuer)"
        );
        // b moves to the other issuer, a is deleted.
        keyed.apply(&watcher::Event::Apply(cm("b", "Issuer/other")));
        keyed.apply(&watcher::Event::Delete(cm("a", "Issuer/ca")));
        assert!(store.referring("Issuer/ca", Some("ns")).is_empty());
        assert_eq!(
            names(store.referring("Issuer/other", Some("ns"))),
            ["ns/b", "ns/c"]
        );
        // A re-list replaces them all: c was deleted while the watch was down.
        keyed.apply(&watcher::Event::Init);
        keyed.apply(&watcher::Event::InitApply(cm("b", "Issuer/other")));
        assert_eq!(
            names(store.referring("Issuer/other", Some("ns"))),
            ["ns/b", "ns/c"],
            "the last complete state until the list is in"
        );
        keyed.apply(&watcher::Event::InitApply(elsewhere));
        keyed.apply(&watcher::Event::InitDone);
        assert_eq!(names(store.referring("Issuer/other", None)), ["ns/b"]);
        assert_eq!(names(store.referring("Issuer/ca", None)), ["other/d"]);
    }
}
