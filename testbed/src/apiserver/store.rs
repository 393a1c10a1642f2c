//! Object storage: one ordered map per resource, a cluster-wide resourceVersion counter, the
//! watch history and per-resource broadcast channels, plus the uid/owner indexes garbage
//! collection needs. Everything here runs under the server's single mutex.
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::resources::ResourceDef;

/// `(group, plural)`.
pub type GroupResource = (String, String);
/// `(namespace or "", name)`.
pub type ObjectKey = (String, String);

/// A watch event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One change of stored state.
#[derive(Debug)]
pub struct StoredEvent {
    pub rv: u64,
    pub type_: EventType,
    pub namespace: String,
    pub object: Arc<Value>,
    /// The previous state (so selector-filtered watchers can turn "stopped matching" into DELETED).
    pub old: Option<Arc<Value>>,
}

/// All stored state.
pub struct Store {
    rv: u64,
    pub defs: BTreeMap<GroupResource, ResourceDef>,
    objects: HashMap<GroupResource, BTreeMap<ObjectKey, Arc<Value>>>,
    history: VecDeque<(GroupResource, Arc<StoredEvent>)>,
    history_size: usize,
    /// Events with rv <= this may be gone from history.
    pub compacted_rv: u64,
    /// Continue tokens from before this resourceVersion are expired (explicit compaction only:
    /// kube compacts on a timer, not by history size).
    explicit_compaction_rv: u64,
    channels: HashMap<GroupResource, broadcast::Sender<Arc<StoredEvent>>>,
    watch_buffer: usize,
    uids: HashMap<String, (GroupResource, ObjectKey)>,
    /// owner uid -> dependents.
    dependents: HashMap<String, BTreeSet<(GroupResource, ObjectKey)>>,
    next_cluster_ip: u32,
}

/// Reads `metadata.<field>` as a string.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
}

/// `metadata.ownerReferences[].uid`.
pub fn owner_uids(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

impl Store {
    pub fn new(history_size: usize, watch_buffer: usize) -> Store {
        Store {
            rv: 1,
            defs: BTreeMap::new(),
            objects: HashMap::new(),
            history: VecDeque::new(),
            history_size: history_size.max(1),
            compacted_rv: 0,
            explicit_compaction_rv: 0,
            channels: HashMap::new(),
            watch_buffer: watch_buffer.max(16),
            uids: HashMap::new(),
            dependents: HashMap::new(),
            // 10.96.0.1 is the `kubernetes` service; hand out from .10 on.
            next_cluster_ip: 10,
        }
    }

    /// The current (latest) resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.rv
    }

    pub fn def(&self, group: &str, plural: &str) -> Option<&ResourceDef> {
        self.defs.get(&(group.to_string(), plural.to_string()))
    }

    pub fn get(&self, gr: &GroupResource, key: &ObjectKey) -> Option<Arc<Value>> {
        self.objects.get(gr).and_then(|m| m.get(key)).cloned()
    }

    /// Objects of a resource, optionally in one namespace, ordered by (namespace, name).
    pub fn iter<'a>(
        &'a self,
        gr: &GroupResource,
        namespace: Option<&'a str>,
    ) -> Box<dyn Iterator<Item = (&'a ObjectKey, &'a Arc<Value>)> + 'a> {
        let Some(map) = self.objects.get(gr) else {
            return Box::new(std::iter::empty());
        };
        match namespace {
            Some(ns) => Box::new(
                map.range((ns.to_string(), String::new())..)
                    .take_while(move |((n, _), _)| n == ns),
            ),
            None => Box::new(map.iter()),
        }
    }

    /// Whether any object is stored in this namespace (namespace finalization).
    pub fn namespace_is_empty(&self, ns: &str) -> bool {
        self.defs
            .iter()
            .filter(|(_, d)| d.namespaced)
            .all(|(gr, _)| self.iter(gr, Some(ns)).next().is_none())
    }

    /// Where the object with this uid lives, if it exists.
    pub fn locate_uid(&self, uid: &str) -> Option<(GroupResource, ObjectKey)> {
        self.uids.get(uid).cloned()
    }

    pub fn dependents_of(&self, uid: &str) -> Vec<(GroupResource, ObjectKey)> {
        self.dependents
            .get(uid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Allocates a ClusterIP from 10.96.0.0/12.
    pub fn allocate_cluster_ip(&mut self) -> String {
        let n = self.next_cluster_ip;
        self.next_cluster_ip += 1;
        format!("10.{}.{}.{}", 96 + (n >> 16), (n >> 8) & 0xff, n & 0xff)
    }

    fn index(&mut self, gr: &GroupResource, key: &ObjectKey, obj: &Value) {
        if let Some(uid) = meta_str(obj, "uid") {
            self.uids.insert(uid.to_string(), (gr.clone(), key.clone()));
        }
        for owner in owner_uids(obj) {
            self.dependents
                .entry(owner)
                .or_default()
                .insert((gr.clone(), key.clone()));
        }
    }

    fn unindex(&mut self, gr: &GroupResource, key: &ObjectKey, obj: &Value) {
        if let Some(uid) = meta_str(obj, "uid") {
            self.uids.remove(uid);
        }
        let entry = (gr.clone(), key.clone());
        for owner in owner_uids(obj) {
            if let Some(set) = self.dependents.get_mut(&owner) {
                set.remove(&entry);
                if set.is_empty() {
                    self.dependents.remove(&owner);
                }
            }
        }
    }

    /// Stores `obj` (assigning the next resourceVersion) and emits ADDED or MODIFIED.
    pub fn put(&mut self, gr: &GroupResource, key: ObjectKey, mut obj: Value) -> Arc<Value> {
        self.rv += 1;
        let rv = self.rv;
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        let obj = Arc::new(obj);
        let old = self
            .objects
            .entry(gr.clone())
            .or_default()
            .insert(key.clone(), obj.clone());
        if let Some(o) = &old {
            self.unindex(gr, &key, o);
        }
        self.index(gr, &key, &obj);
        let type_ = if old.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.emit(
            gr,
            StoredEvent {
                rv,
                type_,
                namespace: key.0,
                object: obj.clone(),
                old,
            },
        );
        obj
    }

    /// Removes an object for good and emits DELETED (with a fresh resourceVersion, as kube does).
    pub fn remove(&mut self, gr: &GroupResource, key: &ObjectKey) -> Option<Arc<Value>> {
        let old = self.objects.get_mut(gr)?.remove(key)?;
        self.unindex(gr, key, &old);
        self.rv += 1;
        let rv = self.rv;
        let mut last = (*old).clone();
        last["metadata"]["resourceVersion"] = json!(rv.to_string());
        let last = Arc::new(last);
        self.emit(
            gr,
            StoredEvent {
                rv,
                type_: EventType::Deleted,
                namespace: key.0.clone(),
                object: last.clone(),
                old: Some(old),
            },
        );
        Some(last)
    }

    /// Drops a whole resource's objects (CRD removal), emitting DELETED for each.
    pub fn remove_all(&mut self, gr: &GroupResource) {
        let keys: Vec<ObjectKey> = self
            .objects
            .get(gr)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        for key in keys {
            self.remove(gr, &key);
        }
        self.objects.remove(gr);
    }

    fn emit(&mut self, gr: &GroupResource, event: StoredEvent) {
        let event = Arc::new(event);
        if let Some(tx) = self.channels.get(gr) {
            // No receivers is fine: nobody watches this resource right now.
            let _ = tx.send(event.clone());
        }
        self.history.push_back((gr.clone(), event));
        while self.history.len() > self.history_size {
            if let Some((_, e)) = self.history.pop_front() {
                self.compacted_rv = e.rv;
            }
        }
    }

    /// Forgets all history (fault injection): every older watch gets 410 Gone.
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted_rv = self.rv;
        self.explicit_compaction_rv = self.rv;
    }

    pub fn compacted_rv_for_continue(&self) -> u64 {
        self.explicit_compaction_rv
    }

    /// Subscribes to a resource's live events and returns the kept events after `since`.
    /// `Err(oldest)` when events after `since` may already be gone.
    #[allow(clippy::type_complexity)]
    pub fn subscribe(
        &mut self,
        gr: &GroupResource,
        since: Option<u64>,
    ) -> Result<(Vec<Arc<StoredEvent>>, broadcast::Receiver<Arc<StoredEvent>>), u64> {
        if let Some(since) = since
            && since < self.compacted_rv
        {
            return Err(self.compacted_rv + 1);
        }
        let buffer = self.watch_buffer;
        let rx = self
            .channels
            .entry(gr.clone())
            .or_insert_with(|| broadcast::channel(buffer).0)
            .subscribe();
        let replay = match since {
            Some(since) => self
                .history
                .iter()
                .filter(|(g, e)| g == gr && e.rv > since)
                .map(|(_, e)| e.clone())
                .collect(),
            None => Vec::new(),
        };
        Ok((replay, rx))
    }
}
