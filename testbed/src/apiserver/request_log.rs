//! Every request the server answered, so benchmarks can count requests per client and verb and
//! tell real writes from no-op writes.
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// The Kubernetes API verb of a request (kube's audit vocabulary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    /// A PATCH with `application/apply-patch+yaml` (server-side apply).
    Apply,
    Delete,
    DeleteCollection,
    /// Discovery, `/version`, OpenAPI and other non-resource requests.
    NonResource,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Apply => "apply",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
            Verb::NonResource => "nonresource",
        }
    }

    /// Whether requests with this verb may change stored state.
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Verb::Create
                | Verb::Update
                | Verb::Patch
                | Verb::Apply
                | Verb::Delete
                | Verb::DeleteCollection
        )
    }
}

/// One answered request.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    pub at: Instant,
    pub method: String,
    pub path: String,
    pub verb: Verb,
    /// Plural resource (`secrets`); empty for non-resource requests.
    pub resource: String,
    pub group: String,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub user_agent: String,
    pub field_manager: Option<String>,
    /// The authenticated user (from the bearer token).
    pub user: String,
    pub status: u16,
    /// Whether the request changed stored state (a no-op apply or update does not).
    pub wrote: bool,
}

/// Shared, cheaply clonable handle to the log.
#[derive(Debug, Clone, Default)]
pub struct RequestLog {
    records: Arc<Mutex<Vec<RequestRecord>>>,
}

impl RequestLog {
    fn lock(&self) -> MutexGuard<'_, Vec<RequestRecord>> {
        // A poisoned log only means a panicking request; the records are still usable.
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn push(&self, record: RequestRecord) {
        self.lock().push(record);
    }

    /// A copy of all records so far.
    pub fn snapshot(&self) -> Vec<RequestRecord> {
        self.lock().clone()
    }

    /// A copy of the records from index `from` on (cheaper than a whole snapshot when polling).
    pub fn since(&self, from: usize) -> Vec<RequestRecord> {
        self.lock()
            .get(from..)
            .map(<[_]>::to_vec)
            .unwrap_or_default()
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Request counts per (user, verb).
    pub fn counts_by_user(&self) -> BTreeMap<(String, Verb), usize> {
        let mut out = BTreeMap::new();
        for r in self.lock().iter() {
            *out.entry((r.user.clone(), r.verb)).or_insert(0) += 1;
        }
        out
    }

    /// Request counts per (user agent, verb).
    pub fn counts_by_user_agent(&self) -> BTreeMap<(String, Verb), usize> {
        let mut out = BTreeMap::new();
        for r in self.lock().iter() {
            *out.entry((r.user_agent.clone(), r.verb)).or_insert(0) += 1;
        }
        out
    }

    /// Requests that changed stored state, per user.
    pub fn writes_by_user(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for r in self.lock().iter().filter(|r| r.wrote) {
            *out.entry(r.user.clone()).or_insert(0) += 1;
        }
        out
    }
}
