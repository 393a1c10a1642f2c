//! Watch caches shared by every controller of an operator: one list+watch per resource (and
//! watched namespace), a store that reconciles read instead of GETting, and a trigger stream for
//! each controller. Objects are trimmed before they are stored (what no reconcile reads is not
//! kept), so memory follows the databases managed, not the size of what is watched.
//!
//! Three ways to keep them: [`Compact`], encoded, for the children and dependencies that are
//! many per database and read a few at a time; [`Keyed`], the databases: compact, with a store
//! of their names alone that their `Controller` runs over; and [`Objects`], whole in kube-rs's
//! store, for what is few (issuers, OpsRequests, ServiceMonitors).
//!
//! Written here rather than with kube-rs's `reflect_shared`, whose subscribers are not told of
//! deletions: a Certificate or TLS Secret deleted by hand, or an Issuer removed, must trigger
//! the databases that used it. Every subscriber here gets each object applied or deleted, and
//! after a re-list each object that vanished while the watch was down; the watch's first list
//! goes only to the controller of the listed kind itself ([`SharedWatch::subscribe_changes`]).
mod compact;
mod dictionary;
mod keyed;
mod objects;
mod packed;

use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use kube::Resource;
use kube::api::Api;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

pub use compact::{Compact, CompactStore};
pub use keyed::{
    DatabaseKey, Keyed, KeyedStore, KeyedWatch, References, issuer_reference, issuer_references,
};
pub use objects::Objects;

/// The object `namespace/name` in `store`, copied out.
pub fn get<K>(store: &Store<K>, namespace: &str, name: &str) -> Option<K>
where
    K: Resource<DynamicType = ()> + Clone,
{
    store
        .get(&ObjectRef::new(name).within(namespace))
        .map(|k| (*k).clone())
}

/// How a watch keeps its objects: applies each watcher event and says which objects it
/// changed, for the controllers' triggers.
pub trait Storage<K>: Send + 'static {
    /// What reconciles read.
    type Reader: Clone;
    fn create() -> Self;
    fn reader(&self) -> Self::Reader;
    fn apply(&mut self, event: &watcher::Event<K>) -> Vec<Trigger<K>>;
}

/// An object a watch event changed, for the triggers: either at hand, or as a compact cache
/// stored it (decoded only when a controller reads its trigger, so a list's objects do not
/// wait in the trigger streams as copies before the controllers start).
pub struct Trigger<K>(Source<K>);

enum Source<K> {
    Object(Arc<K>),
    Stored(compact::Entry, Option<dictionary::Dictionary>),
}

impl<K> Clone for Trigger<K> {
    fn clone(&self) -> Self {
        Self(match &self.0 {
            Source::Object(o) => Source::Object(o.clone()),
            Source::Stored(entry, dictionary) => Source::Stored(entry.clone(), dictionary.clone()),
        })
    }
}

impl<K> Trigger<K> {
    fn object(object: Arc<K>) -> Self {
        Self(Source::Object(object))
    }

    fn stored(entry: compact::Entry, dictionary: Option<dictionary::Dictionary>) -> Self {
        Self(Source::Stored(entry, dictionary))
    }
}

impl<K: DeserializeOwned> Trigger<K> {
    fn into_object(self) -> Option<Arc<K>> {
        match self.0 {
            Source::Object(object) => Some(object),
            Source::Stored(entry, dictionary) => {
                compact::decode(entry.encoded(), dictionary.as_ref()).map(Arc::new)
            }
        }
    }
}

/// Objects per page of a (re-)list. Each page is parsed whole before [`SharedWatch::new`]'s
/// trim runs on its objects; with kube-rs's default of 500, the first lists of a restarted
/// operator (every watch at once) held pages of full StatefulSets and Secrets side by side.
pub const LIST_PAGE: u32 = 100;

/// A shared watch that keeps its objects compact ([`Compact`]).
pub type CompactWatch<K> = SharedWatch<K, Compact<K>>;

/// A compact shared watch read by name only: no index by database ([`compact`]).
pub type ByNameWatch<K> = SharedWatch<K, Compact<K, false>>;

/// One shared list+watch of `K`, kept by `S`.
pub struct SharedWatch<K, S = Objects<K>>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    api: Api<K>,
    config: watcher::Config,
    trim: fn(&mut K),
    storage: S,
    /// Unbounded: an operator's controllers start reading their trigger streams only once every
    /// cache is filled, so a bounded stream would stop a watch whose first list is longer than
    /// the bound, and that cache would never fill (a restart among 1,100 labelled Secrets left
    /// both operators idle). What waits here is at most one entry per object listed or changed
    /// before the controllers start.
    subscribers: Mutex<Vec<Subscriber<K>>>,
}

/// One controller's trigger stream.
struct Subscriber<K> {
    sender: mpsc::UnboundedSender<Trigger<K>>,
    /// Whether it is handed the objects of the watch's first list. A controller's own objects
    /// are; what it owns or watches is not: every database is reconciled once its controller
    /// starts, so the first list of its Secrets, Certificates or pods would only queue the
    /// same reconciles again (one trigger per object and controller, each decoded).
    first_list: bool,
}

impl<K, S> SharedWatch<K, S>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
    S: Storage<K>,
{
    /// A watch of `api` with `config`; `trim` drops what no reader needs before storing.
    pub fn new(api: Api<K>, config: watcher::Config, trim: fn(&mut K)) -> Self {
        Self::with_storage(api, config, trim, S::create())
    }

    /// [`SharedWatch::new`], kept by `storage`.
    pub fn with_storage(
        api: Api<K>,
        config: watcher::Config,
        trim: fn(&mut K),
        storage: S,
    ) -> Self {
        Self {
            api,
            config: config.page_size(LIST_PAGE),
            trim,
            storage,
            subscribers: Mutex::default(),
        }
    }

    /// The store, for reads (ready once the first list is in).
    pub fn store(&self) -> S::Reader {
        self.storage.reader()
    }

    /// A stream of every object listed, applied or deleted, for the controller of `K` itself
    /// (`for_shared_stream`). Take every stream before [`SharedWatch::run`].
    pub fn subscribe(&self) -> impl Stream<Item = Arc<K>> + Send + 'static {
        self.stream(true)
    }

    /// A stream of every object applied or deleted after the watch's first list, and of every
    /// object a later re-list finds changed or gone: the triggers of a controller that owns or
    /// watches `K` (`owns_shared_stream`, `watches_shared_stream`).
    pub fn subscribe_changes(&self) -> impl Stream<Item = Arc<K>> + Send + 'static {
        self.stream(false)
    }

    fn stream(&self, first_list: bool) -> impl Stream<Item = Arc<K>> + Send + 'static {
        let (sender, rx) = mpsc::unbounded_channel::<Trigger<K>>();
        if let Ok(mut subscribers) = self.subscribers.lock() {
            subscribers.push(Subscriber { sender, first_list });
        }
        futures::stream::unfold(rx, |mut rx| async move {
            while let Some(trigger) = rx.recv().await {
                if let Some(object) = trigger.into_object() {
                    return Some((object, rx));
                }
            }
            None
        })
    }

    /// Runs the watch (re-listing with backoff after errors) until dropped.
    pub fn run(self) -> impl Future<Output = ()> + Send + 'static {
        let SharedWatch {
            api,
            config,
            trim,
            mut storage,
            subscribers,
        } = self;
        let mut fanout = Fanout {
            subscribers: subscribers.into_inner().unwrap_or_default(),
            listed: false,
        };
        let resource = crate::api_metrics::resource_of(api.resource_url());
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
                let triggers = storage.apply(&event);
                fanout.dispatch(&event, triggers);
            }
        }
    }
}

/// Hands a watch's triggers to its subscribers.
struct Fanout<K> {
    subscribers: Vec<Subscriber<K>>,
    /// Whether the watch's first list is complete.
    listed: bool,
}

impl<K> Fanout<K> {
    /// `triggers`, what `event` changed, to each subscriber that wants them.
    fn dispatch(&mut self, event: &watcher::Event<K>, triggers: Vec<Trigger<K>>) {
        let first_list = !self.listed;
        self.listed |= matches!(event, watcher::Event::InitDone);
        for trigger in triggers {
            let told = self
                .subscribers
                .iter()
                .filter(|s| !first_list || s.first_list);
            for subscriber in told {
                // A subscriber that is gone (its controller stopped) is no error.
                let _ = subscriber.sender.send(trigger.clone());
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::objects::tests::cm;
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::ResourceExt;

    fn subscriber(
        first_list: bool,
    ) -> (
        Subscriber<ConfigMap>,
        mpsc::UnboundedReceiver<Trigger<ConfigMap>>,
    ) {
        let (sender, receiver) = mpsc::unbounded_channel();
        (Subscriber { sender, first_list }, receiver)
    }

    fn names(receiver: &mut mpsc::UnboundedReceiver<Trigger<ConfigMap>>) -> Vec<String> {
        std::iter::from_fn(|| receiver.try_recv().ok())
            .filter_map(Trigger::into_object)
            .map(|o| o.name_any())
            .collect()
    }

    /// The controller's own stream gets the first list; a stream of what it owns or watches
    /// only what changes after it, including what a later re-list finds.
    #[test]
    fn the_first_list_goes_to_own_streams_only() {
        let (own, mut own_rx) = subscriber(true);
        let (changes, mut changes_rx) = subscriber(false);
        let mut fanout = Fanout {
            subscribers: vec![own, changes],
            listed: false,
        };
        let mut storage = Objects::<ConfigMap>::create();
        let mut feed = |event: watcher::Event<ConfigMap>| {
            let triggers = storage.apply(&event);
            fanout.dispatch(&event, triggers);
        };
        feed(watcher::Event::Init);
        feed(watcher::Event::InitApply(cm("listed")));
        feed(watcher::Event::InitDone);
        assert_eq!(names(&mut own_rx), ["listed"]);
        assert!(names(&mut changes_rx).is_empty());

        feed(watcher::Event::Apply(cm("created")));
        assert_eq!(names(&mut own_rx), ["created"]);
        assert_eq!(names(&mut changes_rx), ["created"]);

        // A re-list after the watch was down: what vanished meanwhile is a change for both.
        feed(watcher::Event::Init);
        feed(watcher::Event::InitApply(cm("created")));
        feed(watcher::Event::InitDone);
        assert!(names(&mut changes_rx).contains(&"listed".to_string()));
        assert!(names(&mut own_rx).contains(&"listed".to_string()));
    }
}
