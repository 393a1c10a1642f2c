//! Objects kept as the JSON of their trimmed form, decoded when read. k8s-openapi's structs
//! cost their full size whatever they hold (a `Pod` is 2.2 KB, a `StatefulSet` 2.5 KB with no
//! spec at all) and every label, name and reference is a heap allocation of its own; the same
//! object as JSON is one allocation of a few hundred bytes. The operators read a handful of
//! objects per reconcile, so decoding on read costs microseconds where keeping structs cost
//! kilobytes per object for as long as the object exists.
//!
//! Objects are found by namespace and name, and by namespace and `app.kubernetes.io/instance`
//! (the database they belong to) through an index, so a reconcile reads only its database's.
//! A cache only ever read by name goes without the index (`Compact<K, false>`): the index
//! costs ~0.1 KB per database in each cache that has it.
use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap, HashSet};
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
    /// Whether `objects.by_instance` is kept (else [`CompactStore::labelled`] scans).
    indexed: bool,
    objects: RwLock<Objects>,
    /// What the objects stored after the first few are compressed against.
    dictionary: OnceLock<Dictionary>,
    listed: AtomicBool,
    filled: Notify,
}

/// The stored objects: each once, by `namespace/name`, and again (the same allocation) under
/// `namespace/instance`.
#[derive(Default)]
struct Objects {
    by_name: HashSet<Entry>,
    by_instance: HashMap<Box<str>, Vec<Entry>>,
}

/// One stored object in one allocation: its `namespace/name`, its database's
/// `app.kubernetes.io/instance` and its JSON, packed and compressed ([`encode`]). Kept as
/// separate fields, the key, the instance and the JSON were three allocations and a 48-byte
/// map bucket per object, about as much again as the compressed object itself.
#[derive(Clone)]
pub(super) struct Entry(Arc<[u8]>);

/// The length written before the instance of an object without one.
const NO_INSTANCE: u16 = u16::MAX;

impl Entry {
    /// None when `key` or `instance` is too long to store (the API server bounds a namespace,
    /// a name and a label value far below `u16::MAX` bytes).
    fn new(key: &str, instance: Option<&str>, encoded: &[u8]) -> Option<Self> {
        let key_len = u16::try_from(key.len()).ok()?;
        let instance_len = match instance {
            Some(instance) => u16::try_from(instance.len())
                .ok()
                .filter(|len| *len != NO_INSTANCE)?,
            None => NO_INSTANCE,
        };
        let instance = instance.unwrap_or_default();
        let mut bytes = Vec::with_capacity(4 + key.len() + instance.len() + encoded.len());
        bytes.extend_from_slice(&key_len.to_le_bytes());
        bytes.extend_from_slice(key.as_bytes());
        bytes.extend_from_slice(&instance_len.to_le_bytes());
        bytes.extend_from_slice(instance.as_bytes());
        bytes.extend_from_slice(encoded);
        Some(Self(bytes.into()))
    }

    /// The length written at `at`, and where what it measures starts.
    fn length_at(&self, at: usize) -> (u16, usize) {
        let len = match self.0.get(at..at + 2) {
            Some(&[low, high]) => u16::from_le_bytes([low, high]),
            _ => 0,
        };
        (len, at + 2)
    }

    fn text(&self, at: usize, len: u16) -> &str {
        let bytes = self.0.get(at..at + usize::from(len)).unwrap_or_default();
        // Written from a `&str` by `Entry::new`: always UTF-8.
        std::str::from_utf8(bytes).unwrap_or_default()
    }

    /// `namespace/name`.
    fn key(&self) -> &str {
        let (len, at) = self.length_at(0);
        self.text(at, len)
    }

    /// The instance's length and where the instance starts.
    fn instance_length(&self) -> (u16, usize) {
        self.length_at(2 + self.key().len())
    }

    fn instance(&self) -> Option<&str> {
        let (len, at) = self.instance_length();
        (len != NO_INSTANCE).then(|| self.text(at, len))
    }

    /// The object, packed and compressed.
    pub(super) fn encoded(&self) -> &[u8] {
        let (len, at) = self.instance_length();
        let start = at
            + if len == NO_INSTANCE {
                0
            } else {
                usize::from(len)
            };
        self.0.get(start..).unwrap_or_default()
    }

    /// `namespace/instance`, where the index keeps it (None: it names no instance).
    fn indexed(&self) -> Option<Box<str>> {
        let namespace = self.key().split_once('/').map_or("", |(ns, _)| ns);
        Some(key(namespace, self.instance()?))
    }
}

// An entry is found by its key: a `&str` finds it in `Objects::by_name`, so the set needs no
// key of its own beside it.
impl Borrow<str> for Entry {
    fn borrow(&self) -> &str {
        self.key()
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Entry {}

impl std::hash::Hash for Entry {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

/// `namespace/name` (or `namespace/instance`): neither a namespace nor a name nor a label
/// value can hold a `/`, so the pair is one string, one allocation.
fn key(namespace: &str, name: &str) -> Box<str> {
    format!("{namespace}/{name}").into_boxed_str()
}

impl Objects {
    fn insert(&mut self, entry: Entry) {
        self.remove(entry.key());
        if let Some(indexed) = entry.indexed() {
            self.by_instance
                .entry(indexed)
                .or_default()
                .push(entry.clone());
        }
        self.by_name.insert(entry);
    }

    fn remove(&mut self, key: &str) -> Option<Entry> {
        let entry = self.by_name.take(key)?;
        if let Some(indexed) = entry.indexed()
            && let Some(entries) = self.by_instance.get_mut(&indexed)
        {
            entries.retain(|e| e.key() != key);
            if entries.is_empty() {
                self.by_instance.remove(&indexed);
            }
        }
        Some(entry)
    }

    /// Replaces every object with `listed`; returns those that are gone.
    fn replace_all(&mut self, listed: Vec<Entry>) -> Vec<Entry> {
        let before = std::mem::take(self);
        for entry in listed {
            self.insert(entry);
        }
        before
            .by_name
            .into_iter()
            .filter(|entry| !self.by_name.contains(entry.key()))
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
) -> Option<Entry> {
    let meta = object.meta();
    let key = key_of(object)?;
    let json = serde_json::to_vec(object)
        .inspect_err(|error| tracing::error!(%error, %key, "an object does not encode"))
        .ok()?;
    let instance = meta
        .labels
        .as_ref()
        .and_then(|l| l.get(INSTANCE))
        .filter(|_| shared.indexed);
    let (encoded, learned) = encoder.encode(&super::packed::pack(&json));
    if let Some(dictionary) = learned {
        // Set once: this cache's only encoder learns once.
        let _ = shared.dictionary.set(dictionary);
    }
    let entry = Entry::new(&key, instance.map(String::as_str), &encoded);
    if entry.is_none() {
        tracing::error!(%key, "an object's name or instance is too long to store");
    }
    entry
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
        let entry = self.read(|o| o.by_name.get(&*key(namespace, name)).cloned())?;
        decode(entry.encoded(), self.shared.dictionary.get())
    }

    /// The objects of `namespace` that carry every label of `labels`. With the database's
    /// `app.kubernetes.io/instance` among `labels`, only that database's objects are looked
    /// at (the index); a reconcile that scanned the whole cache made an operator's CPU grow
    /// with the square of the databases.
    pub fn labelled(&self, namespace: &str, labels: &BTreeMap<String, String>) -> Vec<K> {
        let indexed = labels.get(INSTANCE).filter(|_| self.shared.indexed);
        let candidates: Vec<Entry> = self.read(|o| match indexed {
            Some(instance) => o
                .by_instance
                .get(&key(namespace, instance))
                .cloned()
                .unwrap_or_default(),
            None => o
                .by_name
                .iter()
                .filter(|e| {
                    e.key()
                        .split_once('/')
                        .is_some_and(|(ns, _)| ns == namespace)
                })
                .cloned()
                .collect(),
        });
        candidates
            .iter()
            .filter_map(|entry| decode::<K>(entry.encoded(), self.shared.dictionary.get()))
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
pub struct Compact<K, const INDEXED: bool = true> {
    store: CompactStore<K>,
    encoder: Encoder,
    listing: Option<Vec<Entry>>,
}

impl<K, const INDEXED: bool> Storage<K> for Compact<K, INDEXED>
where
    K: Resource + Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    type Reader = CompactStore<K>;

    fn create() -> Self {
        Self {
            store: CompactStore {
                shared: Arc::new(Shared {
                    indexed: INDEXED,
                    ..Shared::default()
                }),
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
                if let Some(entry) = encode(object, encoder, shared) {
                    write().insert(entry);
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
                self.listing = Some(Vec::new());
                Vec::new()
            }
            watcher::Event::InitApply(object) => {
                if let Some(entry) = encode(object, encoder, shared) {
                    self.listing.get_or_insert_default().push(entry);
                }
                Vec::new()
            }
            watcher::Event::InitDone => {
                let listed = self.listing.take().unwrap_or_default();
                let listed_entries = listed.clone();
                let vanished = write().replace_all(listed);
                shared.listed.store(true, Ordering::Release);
                shared.filled.notify_waiters();
                // What vanished while the watch was down is a change, as is everything
                // listed; both are handed out as the stored JSON, decoded when read.
                vanished
                    .into_iter()
                    .chain(listed_entries)
                    .map(|entry| Trigger::stored(entry, shared.dictionary.get().cloned()))
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
    fn an_entry_reads_back_its_key_instance_and_object() {
        let long = "x".repeat(usize::from(u16::MAX) + 1);
        // (case, key, instance, where the index keeps it: None when not stored at all)
        type Case<'a> = (&'a str, &'a str, Option<&'a str>, Option<Option<&'a str>>);
        let cases: [Case; 5] = [
            ("with an instance", "ns/a-1", Some("a"), Some(Some("ns/a"))),
            ("without one", "ns/a-1", None, Some(None)),
            (
                "an empty instance is one",
                "ns/a-1",
                Some(""),
                Some(Some("ns/")),
            ),
            (
                "a cluster-scoped object",
                "/ca",
                Some("a"),
                Some(Some("/a")),
            ),
            ("a key too long to store", &long, None, None),
        ];
        for (case, key, instance, indexed) in cases {
            let entry = Entry::new(key, instance, b"\x01object");
            assert_eq!(
                entry.as_ref().map(|e| e.indexed()),
                indexed.map(|i| i.map(Box::from)),
                "{case}"
            );
            if let Some(entry) = entry {
                assert_eq!(entry.key(), key, "{case}");
                assert_eq!(entry.instance(), instance, "{case}");
                assert_eq!(entry.encoded(), b"\x01object", "{case}");
                let found: HashSet<Entry> = HashSet::from([entry]);
                assert!(found.contains(key), "{case}: found by its key");
            }
        }
    }

    #[test]
    fn objects_read_back_as_stored_by_name_and_by_database() {
        read_back(Compact::<ConfigMap>::create());
    }

    #[test]
    fn a_cache_without_the_index_finds_a_database_objects_by_scanning() {
        let cache = Compact::<ConfigMap, false>::create();
        let entry = encode(
            &cm("a-1", "a", "server"),
            &mut Encoder::default(),
            &cache.store.shared,
        );
        assert_eq!(entry.and_then(|e| e.indexed()), None, "no index entry");
        read_back(cache);
    }

    fn read_back<const INDEXED: bool>(mut cache: Compact<ConfigMap, INDEXED>) {
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
