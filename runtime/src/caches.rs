//! Watch caches shared by every controller of an operator: one list+watch per resource (and
//! watched namespace), a store that reconciles read instead of GETting, and a trigger stream for
//! each controller. Objects are trimmed before they are stored (what no reconcile reads is not
//! kept), so memory follows the databases managed, not the size of what is watched.
//!
//! Written here rather than with kube-rs's `reflect_shared`, whose subscribers are not told of
//! deletions: a Certificate or TLS Secret deleted by hand, or an Issuer removed, must trigger
//! the databases that used it. Every subscriber here gets each object applied or deleted, and
//! after a re-list each object that vanished while the watch was down.
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, RwLock};

use dbtls_contract::labels::INSTANCE;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use futures::{Stream, StreamExt};
use kube::Resource;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

/// The object `namespace/name` in `store`, copied out.
pub fn get<K>(store: &Store<K>, namespace: &str, name: &str) -> Option<K>
where
    K: Resource<DynamicType = ()> + Clone,
{
    store
        .get(&ObjectRef::new(name).within(namespace))
        .map(|k| (*k).clone())
}

/// The objects of `namespace` in `store` that carry every label of `labels`, copied out. With
/// the database's `app.kubernetes.io/instance` among `labels`, only that database's objects are
/// looked at (the index); a reconcile used to scan the whole store, which made an operator's
/// CPU grow with the square of the databases.
pub fn labelled<K>(
    store: &IndexedStore<K>,
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> Vec<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    let carries_all = |o: &K| {
        let meta = o.meta();
        meta.namespace.as_deref() == Some(namespace)
            && labels
                .iter()
                .all(|(k, v)| meta.labels.as_ref().and_then(|l| l.get(k)) == Some(v))
    };
    let Some(instance) = labels.get(INSTANCE) else {
        return store
            .store
            .state_filter(|o| carries_all(o))
            .into_iter()
            .map(|o| (*o).clone())
            .collect();
    };
    let names = store.index.read().map_or_else(
        |poisoned| poisoned.into_inner().names(namespace, instance),
        |index| index.names(namespace, instance),
    );
    names
        .iter()
        .filter_map(|name| store.store.get(&ObjectRef::new(name).within(namespace)))
        .filter(|o| carries_all(o))
        .map(|o| (*o).clone())
        .collect()
}

/// A watch's store with its objects indexed by namespace and `app.kubernetes.io/instance`
/// (the database they belong to). Reads as the store itself otherwise.
pub struct IndexedStore<K: Resource + 'static>
where
    K::DynamicType: Eq + Hash + Clone,
{
    store: Store<K>,
    index: Arc<RwLock<InstanceIndex>>,
}

impl<K: Resource + 'static> Clone for IndexedStore<K>
where
    K::DynamicType: Eq + Hash + Clone,
{
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            index: self.index.clone(),
        }
    }
}

impl<K: Resource + 'static> std::ops::Deref for IndexedStore<K>
where
    K::DynamicType: Eq + Hash + Clone,
{
    type Target = Store<K>;
    fn deref(&self) -> &Store<K> {
        &self.store
    }
}

/// Object names by (namespace, instance label), and each indexed object's instance.
#[derive(Default)]
struct InstanceIndex {
    by_instance: HashMap<(String, String), BTreeSet<String>>,
    of_object: HashMap<(String, String), String>,
}

impl InstanceIndex {
    fn names(&self, namespace: &str, instance: &str) -> Vec<String> {
        self.by_instance
            .get(&(namespace.to_string(), instance.to_string()))
            .map(|names| names.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn remove(&mut self, namespace: &str, name: &str) {
        let object = (namespace.to_string(), name.to_string());
        if let Some(instance) = self.of_object.remove(&object) {
            let key = (object.0, instance);
            if let Some(names) = self.by_instance.get_mut(&key) {
                names.remove(name);
                if names.is_empty() {
                    self.by_instance.remove(&key);
                }
            }
        }
    }

    /// Indexes `meta` under its current instance label (moving it if the label changed).
    fn upsert(&mut self, meta: &ObjectMeta) {
        let namespace = meta.namespace.clone().unwrap_or_default();
        let Some(name) = meta.name.clone() else {
            return;
        };
        self.remove(&namespace, &name);
        let Some(instance) = meta.labels.as_ref().and_then(|l| l.get(INSTANCE)) else {
            return;
        };
        self.by_instance
            .entry((namespace.clone(), instance.clone()))
            .or_default()
            .insert(name.clone());
        self.of_object.insert((namespace, name), instance.clone());
    }

    /// Follows the store through one watcher event (applied to the store already): a list's
    /// end rebuilds the index from the store, as the store replaced its contents.
    fn follow<K: Resource + Clone + 'static>(&mut self, event: &watcher::Event<K>, store: &Store<K>)
    where
        K::DynamicType: Eq + Hash + Clone,
    {
        match event {
            watcher::Event::Apply(object) => self.upsert(object.meta()),
            watcher::Event::Delete(object) => {
                let meta = object.meta();
                self.remove(
                    meta.namespace.as_deref().unwrap_or_default(),
                    meta.name.as_deref().unwrap_or_default(),
                );
            }
            watcher::Event::InitDone => {
                *self = InstanceIndex::default();
                for object in store.state() {
                    self.upsert(object.meta());
                }
            }
            watcher::Event::Init | watcher::Event::InitApply(_) => {}
        }
    }
}

/// Objects per page of a (re-)list. Each page is parsed whole before [`SharedWatch::new`]'s
/// trim runs on its objects; with kube-rs's default of 500, the first lists of a restarted
/// operator (every watch at once) held pages of full StatefulSets and Secrets side by side.
pub const LIST_PAGE: u32 = 100;

/// One shared list+watch of `K`.
pub struct SharedWatch<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    api: Api<K>,
    config: watcher::Config,
    trim: fn(&mut K),
    store: Store<K>,
    index: Arc<RwLock<InstanceIndex>>,
    writer: reflector::store::Writer<K>,
    /// Unbounded: an operator's controllers start reading their trigger streams only once every
    /// cache is filled, so a bounded stream would stop a watch whose first list is longer than
    /// the bound, and that cache would never fill (a restart among 1,100 labelled Secrets left
    /// both operators idle). What waits here is at most one entry per object listed or changed
    /// before the controllers start.
    subscribers: Mutex<Vec<mpsc::UnboundedSender<Arc<K>>>>,
}

impl<K> SharedWatch<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    /// A watch of `api` with `config`; `trim` drops what no reader needs before storing.
    pub fn new(api: Api<K>, config: watcher::Config, trim: fn(&mut K)) -> Self {
        let (store, writer) = reflector::store();
        Self {
            api,
            config: config.page_size(LIST_PAGE),
            trim,
            store,
            index: Arc::default(),
            writer,
            subscribers: Mutex::default(),
        }
    }

    /// The store, for reads (ready once the first list is in: [`Store::wait_until_ready`]).
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// The store with its objects indexed by database, for [`labelled`].
    pub fn indexed(&self) -> IndexedStore<K> {
        IndexedStore {
            store: self.store.clone(),
            index: self.index.clone(),
        }
    }

    /// A stream of every object applied or deleted, for one controller's triggers
    /// (`owns_shared_stream`, `watches_shared_stream`). Take them all before [`SharedWatch::run`].
    pub fn subscribe(&self) -> impl Stream<Item = Arc<K>> + Send + 'static {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut subscribers) = self.subscribers.lock() {
            subscribers.push(tx);
        }
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|k| (k, rx)) })
    }

    /// Runs the watch (re-listing with backoff after errors) until dropped.
    pub fn run(self) -> impl Future<Output = ()> + Send + 'static {
        let SharedWatch {
            api,
            config,
            trim,
            store,
            index,
            mut writer,
            subscribers,
        } = self;
        let subscribers = subscribers.into_inner().unwrap_or_default();
        let resource = crate::api_metrics::resource_of(api.resource_url());
        let mut relist = Relist::default();
        let events = watcher(api, config).default_backoff().modify(trim);
        async move {
            let mut events = std::pin::pin!(events);
            while let Some(event) = events.next().await {
                let event = match event {
                    Ok(event) => event,
                    Err(error) => {
                        tracing::debug!(%error, "shared watch error (retried)");
                        crate::api_metrics::watch_restarted(&resource);
                        continue;
                    }
                };
                let changed = relist.apply(&store, &mut writer, &event);
                match index.write() {
                    Ok(mut index) => index.follow(&event, &store),
                    Err(poisoned) => poisoned.into_inner().follow(&event, &store),
                }
                for object in changed {
                    for subscriber in &subscribers {
                        // A subscriber that is gone (its controller stopped) is no error.
                        let _ = subscriber.send(object.clone());
                    }
                }
            }
        }
    }
}

/// Applies watcher events to a store and says which objects each changed, including, at the
/// end of a re-list, those that vanished while the watch was down (the store drops them without
/// a Delete event). A list's objects are handed out at its end as the store's own `Arc`s rather
/// than as copies while it runs: the controllers read no trigger before every cache is filled,
/// so copies made during the first lists all waited at once, doubling what a restarted
/// operator held (143 MiB against 86 at 1,000 databases).
struct Relist<K: Resource>
where
    K::DynamicType: Eq + Hash,
{
    before: HashMap<ObjectRef<K>, Arc<K>>,
    seen: Vec<ObjectRef<K>>,
}

impl<K: Resource> Default for Relist<K>
where
    K::DynamicType: Eq + Hash,
{
    fn default() -> Self {
        Self {
            before: HashMap::new(),
            seen: Vec::new(),
        }
    }
}

impl<K> Relist<K>
where
    K: Resource + Clone,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    fn apply(
        &mut self,
        store: &Store<K>,
        writer: &mut reflector::store::Writer<K>,
        event: &watcher::Event<K>,
    ) -> Vec<Arc<K>> {
        let changed = match event {
            watcher::Event::Apply(object) | watcher::Event::Delete(object) => {
                vec![Arc::new(object.clone())]
            }
            watcher::Event::Init => {
                self.before = store
                    .state()
                    .into_iter()
                    .map(|o| (ObjectRef::from_obj(o.as_ref()), o))
                    .collect();
                self.seen.clear();
                Vec::new()
            }
            watcher::Event::InitApply(object) => {
                self.seen.push(ObjectRef::from_obj(object));
                Vec::new()
            }
            watcher::Event::InitDone => {
                for seen in &self.seen {
                    self.before.remove(seen);
                }
                self.before.drain().map(|(_, gone)| gone).collect()
            }
        };
        writer.apply_watcher_event(event);
        if !matches!(event, watcher::Event::InitDone) {
            return changed;
        }
        let listed = self.seen.drain(..).filter_map(|seen| store.get(&seen));
        changed.into_iter().chain(listed).collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    fn cm(name: &str) -> ConfigMap {
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some(name.into());
        cm.metadata.namespace = Some("ns".into());
        cm
    }

    fn names(objects: &[Arc<ConfigMap>]) -> Vec<String> {
        objects
            .iter()
            .map(|o| o.metadata.name.clone().unwrap())
            .collect()
    }

    fn labelled_cm(name: &str, instance: &str, role: &str) -> ConfigMap {
        let mut object = cm(name);
        object.metadata.labels = Some(BTreeMap::from([
            (INSTANCE.to_string(), instance.to_string()),
            ("role".to_string(), role.to_string()),
        ]));
        object
    }

    /// Drives a store and its index through `events` as [`SharedWatch::run`] does.
    fn follow(
        indexed: &IndexedStore<ConfigMap>,
        writer: &mut reflector::store::Writer<ConfigMap>,
        events: Vec<watcher::Event<ConfigMap>>,
    ) {
        let mut relist = Relist::default();
        for event in events {
            relist.apply(&indexed.store, writer, &event);
            indexed
                .index
                .write()
                .unwrap()
                .follow(&event, &indexed.store);
        }
    }

    fn by(instance: &str, role: Option<&str>) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::from([(INSTANCE.to_string(), instance.to_string())]);
        if let Some(role) = role {
            labels.insert("role".to_string(), role.to_string());
        }
        labels
    }

    #[test]
    fn labelled_reads_one_databases_objects_through_the_index_as_they_change() {
        let (store, mut writer) = reflector::store::<ConfigMap>();
        let indexed = IndexedStore {
            store,
            index: Arc::default(),
        };
        let found = |labels: &BTreeMap<String, String>| {
            let mut names: Vec<String> = labelled(&indexed, "ns", labels)
                .into_iter()
                .map(|o| o.metadata.name.unwrap())
                .collect();
            names.sort();
            names
        };
        follow(
            &indexed,
            &mut writer,
            vec![
                watcher::Event::Apply(labelled_cm("a-1", "a", "server")),
                watcher::Event::Apply(labelled_cm("a-2", "a", "client")),
                watcher::Event::Apply(labelled_cm("b-1", "b", "server")),
            ],
        );
        assert_eq!(found(&by("a", None)), ["a-1", "a-2"]);
        assert_eq!(
            found(&by("a", Some("server"))),
            ["a-1"],
            "every label counts"
        );
        assert!(labelled(&indexed, "elsewhere", &by("a", None)).is_empty());
        // Relabelled to another database, then deleted.
        follow(
            &indexed,
            &mut writer,
            vec![
                watcher::Event::Apply(labelled_cm("a-2", "b", "client")),
                watcher::Event::Delete(labelled_cm("a-1", "a", "server")),
            ],
        );
        assert!(found(&by("a", None)).is_empty());
        assert_eq!(found(&by("b", None)), ["a-2", "b-1"]);
        // A re-list that no longer shows b-1 and shows c-1.
        follow(
            &indexed,
            &mut writer,
            vec![
                watcher::Event::Init,
                watcher::Event::InitApply(labelled_cm("a-2", "b", "client")),
                watcher::Event::InitApply(labelled_cm("c-1", "c", "server")),
                watcher::Event::InitDone,
            ],
        );
        assert_eq!(found(&by("b", None)), ["a-2"]);
        assert_eq!(found(&by("c", None)), ["c-1"]);
        // Without an instance label the whole store is scanned.
        let role_only = BTreeMap::from([("role".to_string(), "server".to_string())]);
        assert_eq!(found(&role_only), ["c-1"]);
    }

    #[test]
    fn deletions_and_objects_gone_during_a_relist_are_changes() {
        let (store, mut writer) = reflector::store::<ConfigMap>();
        let mut relist = Relist::default();
        for name in ["a", "b"] {
            let event = watcher::Event::Apply(cm(name));
            assert_eq!(names(&relist.apply(&store, &mut writer, &event)), [name]);
        }
        let delete = watcher::Event::Delete(cm("a"));
        assert_eq!(names(&relist.apply(&store, &mut writer, &delete)), ["a"]);
        // The watch drops; "b" is deleted meanwhile and "c" created: the re-list shows only "c".
        for event in [
            watcher::Event::Init,
            watcher::Event::InitApply(cm("c")),
            watcher::Event::InitDone,
        ] {
            let changed = relist.apply(&store, &mut writer, &event);
            match &event {
                watcher::Event::InitDone => {
                    assert_eq!(names(&changed), ["b", "c"], "b vanished, c was listed");
                    let stored = store.get(&ObjectRef::new("c").within("ns")).unwrap();
                    assert!(
                        Arc::ptr_eq(&changed[1], &stored),
                        "a listed object is handed out as the store's own, not a copy"
                    );
                }
                _ => assert!(names(&changed).is_empty(), "nothing before the list is in"),
            }
        }
    }
}
