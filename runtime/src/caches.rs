//! Watch caches shared by every controller of an operator: one list+watch per resource (and
//! watched namespace), a store that reconciles read instead of GETting, and a trigger stream for
//! each controller. Objects are trimmed before they are stored (what no reconcile reads is not
//! kept), so memory follows the databases managed, not the size of what is watched.
//!
//! Written here rather than with kube-rs's `reflect_shared`, whose subscribers are not told of
//! deletions: a Certificate or TLS Secret deleted by hand, or an Issuer removed, must trigger
//! the databases that used it. Every subscriber here gets each object applied or deleted, and
//! after a re-list each object that vanished while the watch was down.
use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

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

/// The objects of `namespace` in `store` that carry every label of `labels`, copied out.
pub fn labelled<K>(store: &Store<K>, namespace: &str, labels: &BTreeMap<String, String>) -> Vec<K>
where
    K: Resource<DynamicType = ()> + Clone,
{
    store
        .state_filter(|o| {
            let meta = o.meta();
            meta.namespace.as_deref() == Some(namespace)
                && labels
                    .iter()
                    .all(|(k, v)| meta.labels.as_ref().and_then(|l| l.get(k)) == Some(v))
        })
        .into_iter()
        .map(|o| (*o).clone())
        .collect()
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
            writer,
            subscribers: Mutex::default(),
        }
    }

    /// The store, for reads (ready once the first list is in: [`Store::wait_until_ready`]).
    pub fn store(&self) -> Store<K> {
        self.store.clone()
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
                for object in relist.apply(&store, &mut writer, &event) {
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
