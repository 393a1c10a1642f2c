//! Objects kept as the JSON of their trimmed form, decoded when read. k8s-openapi's structs
//! cost their full size whatever they hold (a `Pod` is 2.2 KB, a `StatefulSet` 2.5 KB with no
//! spec at all) and every label, name and reference is a heap allocation of its own; the same
//! object as JSON is one allocation of a few hundred bytes. The operators read a handful of
//! objects per reconcile, so decoding on read costs microseconds where keeping structs cost
//! kilobytes per object for as long as the object exists.
//!
//! Objects are found by namespace and name, and by namespace and `app.kubernetes.io/instance`
//! (the database they belong to) through an index, so a reconcile reads only its database's.
use std::collections::{BTreeMap, HashMap};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use dbtls_contract::labels::INSTANCE;
use kube::Resource;
use kube::runtime::watcher;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use super::dictionary::{self, Dictionary, Encoder};
use super::{Storage, Trigger};

/// The reader of a compact cache (cheap to clone; every clone reads the same objects).
pub struct CompactStore<K> {
    shared: Arc<Shared>,
    kind: PhantomData<fn() -> K>,
}

impl<K> Clone for CompactStore<K> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            kind: PhantomData,
        }
    }
}

#[derive(Default)]
struct Shared {
    objects: RwLock<Objects>,
    /// What the objects stored after the first few are compressed against.
    dictionary: OnceLock<Dictionary>,
    listed: AtomicBool,
    filled: Notify,
}

/// The encoded objects by `namespace/name`, and their names by `namespace/instance`.
#[derive(Default)]
struct Objects {
    by_name: HashMap<Box<str>, Entry>,
    by_instance: HashMap<Box<str>, Vec<Box<str>>>,
}

#[derive(Clone)]
struct Entry {
    /// The object's JSON, packed and compressed ([`encode`]).
    json: Arc<[u8]>,
    instance: Option<Box<str>>,
}

/// `namespace/name` (or `namespace/instance`): neither a namespace nor a name nor a label
/// value can hold a `/`, so the pair is one string, one allocation.
fn key(namespace: &str, name: &str) -> Box<str> {
    format!("{namespace}/{name}").into_boxed_str()
}

fn name_of(key: &str) -> &str {
    key.split_once('/').map_or(key, |(_, name)| name)
}

impl Objects {
    fn insert(&mut self, key: Box<str>, entry: Entry) {
        self.remove(&key);
        if let Some(instance) = &entry.instance {
            let namespace = key.split_once('/').map_or("", |(ns, _)| ns);
            self.by_instance
                .entry(self::key(namespace, instance))
                .or_default()
                .push(name_of(&key).into());
        }
        self.by_name.insert(key, entry);
    }

    fn remove(&mut self, key: &str) -> Option<Entry> {
        let entry = self.by_name.remove(key)?;
        if let Some(instance) = &entry.instance {
            let (namespace, name) = key.split_once('/').unwrap_or(("", key));
            let indexed = self::key(namespace, instance);
            if let Some(names) = self.by_instance.get_mut(&indexed) {
                names.retain(|n| &**n != name);
                if names.is_empty() {
                    self.by_instance.remove(&indexed);
                }
            }
        }
        Some(entry)
    }

    fn replace_all(&mut self, listed: HashMap<Box<str>, Entry>) -> Vec<Entry> {
        let before = std::mem::take(self);
        for (key, entry) in listed {
            self.insert(key, entry);
        }
        before
            .by_name
            .into_iter()
            .filter(|(key, _)| !self.by_name.contains_key(key))
            .map(|(_, gone)| gone)
            .collect()
    }
}

/// The object `encoded` holds ([`encode`]'s `Entry::json`).
pub(super) fn decode<K: DeserializeOwned>(
    encoded: &[u8],
    dictionary: Option<&Dictionary>,
) -> Option<K> {
    let packed = dictionary::decode(encoded, dictionary)
        .inspect_err(|error| tracing::error!(%error, "a cached object does not decompress"))
        .ok()?;
    serde_json::from_slice(&super::packed::unpack(&packed))
        .inspect_err(|error| tracing::error!(%error, "a cached object does not decode"))
        .ok()
}

/// Where `object` is kept, `namespace/name` (None: it has no name).
pub(super) fn key_of<K: Resource>(object: &K) -> Option<Box<str>> {
    let meta = object.meta();
    Some(key(
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref()?,
    ))
}

/// `object` as stored: its JSON packed, then compressed by `encoder` (which may learn its
/// dictionary from it: then it is made known to `shared`'s readers before the entry exists).
fn encode<K: Resource + Serialize>(
    object: &K,
    encoder: &mut Encoder,
    shared: &Shared,
) -> Option<(Box<str>, Entry)> {
    let meta = object.meta();
    let key = key_of(object)?;
    let json = serde_json::to_vec(object)
        .inspect_err(|error| tracing::error!(%error, %key, "an object does not encode"))
        .ok()?;
    let instance = meta
        .labels
        .as_ref()
        .and_then(|l| l.get(INSTANCE))
        .map(|i| i.as_str().into());
    let (encoded, learned) = encoder.encode(&super::packed::pack(&json));
    if let Some(dictionary) = learned {
        // Set once: this cache's only encoder learns once.
        let _ = shared.dictionary.set(dictionary);
    }
    Some((
        key,
        Entry {
            json: encoded.into(),
            instance,
        },
    ))
}

fn carries_all<K: Resource>(object: &K, labels: &BTreeMap<String, String>) -> bool {
    let own = object.meta().labels.as_ref();
    labels
        .iter()
        .all(|(k, v)| own.and_then(|l| l.get(k)) == Some(v))
}

impl<K: Resource + DeserializeOwned> CompactStore<K> {
    fn read<T>(&self, read: impl FnOnce(&Objects) -> T) -> T {
        let objects = self
            .shared
            .objects
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        read(&objects)
    }

    /// The object `namespace/name` (cluster-scoped objects: an empty namespace).
    pub fn get(&self, namespace: &str, name: &str) -> Option<K> {
        let json = self.read(|o| o.by_name.get(&key(namespace, name)).map(|e| e.json.clone()))?;
        decode(&json, self.shared.dictionary.get())
    }

    /// The objects of `namespace` that carry every label of `labels`. With the database's
    /// `app.kubernetes.io/instance` among `labels`, only that database's objects are looked
    /// at (the index); a reconcile that scanned the whole cache made an operator's CPU grow
    /// with the square of the databases.
    pub fn labelled(&self, namespace: &str, labels: &BTreeMap<String, String>) -> Vec<K> {
        let candidates: Vec<Arc<[u8]>> = self.read(|o| match labels.get(INSTANCE) {
            Some(instance) => o
                .by_instance
                .get(&key(namespace, instance))
                .into_iter()
                .flatten()
                .filter_map(|name| o.by_name.get(&key(namespace, name)))
                .map(|e| e.json.clone())
                .collect(),
            None => o
                .by_name
                .iter()
                .filter(|(k, _)| k.split_once('/').is_some_and(|(ns, _)| ns == namespace))
                .map(|(_, e)| e.json.clone())
                .collect(),
        });
        candidates
            .iter()
            .filter_map(|json| decode::<K>(json, self.shared.dictionary.get()))
            .filter(|o| carries_all(o, labels))
            .collect()
    }

    /// Waits until the first list is in.
    pub async fn wait_until_ready(&self) {
        loop {
            let filled = self.shared.filled.notified();
            if self.shared.listed.load(Ordering::Acquire) {
                return;
            }
            filled.await;
        }
    }
}

/// The writer of a [`CompactStore`]: a re-list is collected aside and replaces the objects at
/// its end, as kube-rs's store does, so reads in between see the last complete state.
pub struct Compact<K> {
    store: CompactStore<K>,
    encoder: Encoder,
    listing: Option<HashMap<Box<str>, Entry>>,
}

impl<K> Storage<K> for Compact<K>
where
    K: Resource + Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    type Reader = CompactStore<K>;

    fn create() -> Self {
        Self {
            store: CompactStore {
                shared: Arc::default(),
                kind: PhantomData,
            },
            encoder: Encoder::default(),
            listing: None,
        }
    }

    fn reader(&self) -> CompactStore<K> {
        self.store.clone()
    }

    fn apply(&mut self, event: &watcher::Event<K>) -> Vec<Trigger<K>> {
        let shared = &*self.store.shared;
        let encoder = &mut self.encoder;
        let write = || {
            shared
                .objects
                .write()
                .unwrap_or_else(PoisonError::into_inner)
        };
        match event {
            watcher::Event::Apply(object) => {
                if let Some((key, entry)) = encode(object, encoder, shared) {
                    write().insert(key, entry);
                }
                vec![Trigger::object(Arc::new(object.clone()))]
            }
            watcher::Event::Delete(object) => {
                if let Some(key) = key_of(object) {
                    write().remove(&key);
                }
                vec![Trigger::object(Arc::new(object.clone()))]
            }
            watcher::Event::Init => {
                self.listing = Some(HashMap::new());
                Vec::new()
            }
            watcher::Event::InitApply(object) => {
                if let Some((key, entry)) = encode(object, encoder, shared) {
                    self.listing.get_or_insert_default().insert(key, entry);
                }
                Vec::new()
            }
            watcher::Event::InitDone => {
                let listed = self.listing.take().unwrap_or_default();
                let listed_json: Vec<Arc<[u8]>> = listed.values().map(|e| e.json.clone()).collect();
                let vanished = write().replace_all(listed);
                shared.listed.store(true, Ordering::Release);
                shared.filled.notify_waiters();
                // What vanished while the watch was down is a change, as is everything
                // listed; both are handed out as the stored JSON, decoded when read.
                vanished
                    .into_iter()
                    .map(|gone| gone.json)
                    .chain(listed_json)
                    .map(|json| Trigger::stored(json, shared.dictionary.get().cloned()))
                    .collect()
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::ResourceExt as _;

    fn cm(name: &str, instance: &str, role: &str) -> ConfigMap {
        let mut object = ConfigMap::default();
        object.metadata.name = Some(name.into());
        object.metadata.namespace = Some("ns".into());
        object.metadata.labels = Some(BTreeMap::from([
            (INSTANCE.to_string(), instance.to_string()),
            ("role".to_string(), role.to_string()),
        ]));
        object.data = Some(BTreeMap::from([("k".to_string(), name.to_string())]));
        object
    }

    fn by(instance: &str, role: Option<&str>) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::from([(INSTANCE.to_string(), instance.to_string())]);
        if let Some(role) = role {
            labels.insert("role".to_string(), role.to_string());
        }
        labels
    }

    fn names(objects: Vec<ConfigMap>) -> Vec<String> {
        let mut names: Vec<String> = objects
            .into_iter()
            .map(|o| o.metadata.name.unwrap())
            .collect();
        names.sort();
        names
    }

    fn triggered(triggers: Vec<Trigger<ConfigMap>>) -> Vec<String> {
        names(
            triggers
                .into_iter()
                .filter_map(Trigger::into_object)
                .map(|o| (*o).clone())
                .collect(),
        )
    }

    #[test]
    fn objects_read_back_as_stored_by_name_and_by_database() {
        let mut cache = Compact::<ConfigMap>::create();
        let store = cache.reader();
        for object in [
            cm("a-1", "a", "server"),
            cm("a-2", "a", "client"),
            cm("b-1", "b", "server"),
        ] {
            let changed = cache.apply(&watcher::Event::Apply(object.clone()));
            assert_eq!(triggered(changed), [object.metadata.name.clone().unwrap()]);
        }
        assert_eq!(store.get("ns", "a-2"), Some(cm("a-2", "a", "client")));
        assert_eq!(store.get("elsewhere", "a-2"), None);
        assert_eq!(names(store.labelled("ns", &by("a", None))), ["a-1", "a-2"]);
        assert_eq!(
            names(store.labelled("ns", &by("a", Some("server")))),
            ["a-1"],
            "every label counts"
        );
        assert!(store.labelled("elsewhere", &by("a", None)).is_empty());
        // Relabelled to another database, then deleted.
        cache.apply(&watcher::Event::Apply(cm("a-2", "b", "client")));
        cache.apply(&watcher::Event::Delete(cm("a-1", "a", "server")));
        assert!(store.labelled("ns", &by("a", None)).is_empty());
        assert_eq!(names(store.labelled("ns", &by("b", None))), ["a-2", "b-1"]);
        assert_eq!(store.get("ns", "a-1"), None);
        // Without an instance label the namespace is scanned.
        let role_only = BTreeMap::from([("role".to_string(), "client".to_string())]);
        assert_eq!(names(store.labelled("ns", &role_only)), ["a-2"]);
    }

    #[test]
    fn a_relist_replaces_the_objects_at_its_end_and_reports_what_vanished() {
        let mut cache = Compact::<ConfigMap>::create();
        let store = cache.reader();
        cache.apply(&watcher::Event::Apply(cm("a-1", "a", "server")));
        cache.apply(&watcher::Event::Apply(cm("b-1", "b", "server")));
        // The watch drops; b-1 is deleted meanwhile and c-1 created.
        assert!(cache.apply(&watcher::Event::Init).is_empty());
        let listed = cache.apply(&watcher::Event::InitApply(cm("a-1", "a", "server")));
        assert!(
            listed.is_empty(),
            "nothing is handed out before the list is in"
        );
        cache.apply(&watcher::Event::InitApply(cm("c-1", "c", "server")));
        assert_eq!(
            store.get("ns", "b-1").map(|o| o.metadata.name),
            Some(Some("b-1".to_string())),
            "reads see the last complete state while a list runs"
        );
        let changed = cache.apply(&watcher::Event::InitDone);
        assert_eq!(triggered(changed), ["a-1", "b-1", "c-1"], "b-1 vanished");
        assert_eq!(store.get("ns", "b-1"), None);
        assert!(store.labelled("ns", &by("b", None)).is_empty());
        assert_eq!(names(store.labelled("ns", &by("c", None))), ["c-1"]);
    }

    #[test]
    fn objects_compressed_against_the_learned_dictionary_read_back_the_same() {
        let mut cache = Compact::<ConfigMap>::create();
        let store = cache.reader();
        let objects: Vec<ConfigMap> = (0..40)
            .map(|i| cm(&format!("db-{i}-server"), &format!("db-{i}"), "server"))
            .collect();
        for object in &objects {
            cache.apply(&watcher::Event::Apply(object.clone()));
        }
        assert!(store.shared.dictionary.get().is_some(), "learned");
        for object in &objects {
            let (ns, name) = (
                object.metadata.namespace.as_deref().unwrap(),
                object.name_any(),
            );
            assert_eq!(store.get(ns, &name).as_ref(), Some(object));
        }
        assert_eq!(
            names(store.labelled("ns", &by("db-39", None))),
            ["db-39-server"]
        );
        // A re-list hands its objects out as stored: compressed ones decode with the dictionary.
        cache.apply(&watcher::Event::Init);
        for object in &objects {
            cache.apply(&watcher::Event::InitApply(object.clone()));
        }
        let changed = triggered(cache.apply(&watcher::Event::InitDone));
        assert_eq!(changed, names(objects.clone()));
    }

    #[tokio::test]
    async fn ready_once_the_first_list_is_in() {
        let mut cache = Compact::<ConfigMap>::create();
        let store = cache.reader();
        let waiting = tokio::spawn(async move { store.wait_until_ready().await });
        cache.apply(&watcher::Event::Init);
        cache.apply(&watcher::Event::InitApply(cm("a-1", "a", "server")));
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        assert!(!waiting.is_finished(), "not ready while the list runs");
        cache.apply(&watcher::Event::InitDone);
        tokio::time::timeout(std::time::Duration::from_secs(10), waiting)
            .await
            .unwrap()
            .unwrap();
        // Ready stays ready: a later wait returns at once.
        cache.reader().wait_until_ready().await;
    }
}
