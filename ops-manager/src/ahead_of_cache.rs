//! Writes this process made that its watch cache does not show yet. The cache may hand the
//! next reconcile an object as it was before the write (another object's event can come
//! first); deciding from that version writes again: a write the API server refuses (409, the
//! resourceVersion precondition) or one that changes nothing. The benchmark counted ~0.3 such
//! writes per database for TLS Secret adoptions and ~0.17 for CA bundles.
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dbtls_runtime::sweep::Sweep;

use crate::db::DbRef;
use crate::plan::Observed;

/// How long a write is remembered at most (the cache normally catches up in milliseconds).
const REMEMBER: Duration = Duration::from_secs(60);

/// What was written, by the object's key, with the version the cache showed before the write.
pub struct AheadOfCache<V> {
    entries: Mutex<HashMap<String, Entry<V>>>,
    sweep: Mutex<Sweep>,
}

struct Entry<V> {
    /// The cached resourceVersion the write was decided from (None: the object was absent).
    from: Option<String>,
    written: V,
    at: Instant,
}

impl<V> Default for AheadOfCache<V> {
    fn default() -> Self {
        Self {
            entries: Mutex::default(),
            sweep: Mutex::default(),
        }
    }
}

impl<V: Clone> AheadOfCache<V> {
    /// Records that `written` was written over the cached version `from` of the object `key`.
    pub fn record(&self, key: &str, from: Option<&str>, written: V) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if self.sweep.lock().is_ok_and(|mut s| s.due(now)) {
            entries.retain(|_, e| now.duration_since(e.at) < REMEMBER);
        }
        let from = from.map(str::to_string);
        entries.insert(
            key.to_string(),
            Entry {
                from,
                written,
                at: now,
            },
        );
    }

    /// What this process wrote over `cached` (the cache's resourceVersion of `key`, None:
    /// absent) while the cache still shows that version; any other version ends the memory.
    pub fn behind(&self, key: &str, cached: Option<&str>) -> Option<V> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get(key) {
            Some(e) if e.from.as_deref() == cached && e.at.elapsed() < REMEMBER => {
                Some(e.written.clone())
            }
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }
}

/// TLS Secrets adopted, by uid.
pub type Adopted = AheadOfCache<()>;

/// Shows `db` as an owner of the observed Secrets it already adopted.
pub fn catch_up_adoptions(adopted: &Adopted, db: &DbRef, observed: &mut Observed) {
    for secret in observed.secrets.values_mut() {
        let (Some(uid), Some(rv)) = (&secret.uid, &secret.resource_version) else {
            continue;
        };
        if !secret.owners.iter().any(|o| o.uid == db.uid) && adopted.behind(uid, Some(rv)).is_some()
        {
            secret.owners.push(db.owner_reference());
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::plan::SecretFacts;

    fn observed(rv: &str) -> Observed {
        let mut observed = Observed::default();
        observed.secrets.insert(
            "s".into(),
            SecretFacts {
                name: "s".into(),
                uid: Some("u".into()),
                resource_version: Some(rv.into()),
                owners: Vec::new(),
                certificate_name: Some("s".into()),
            },
        );
        observed
    }

    #[test]
    fn a_cache_behind_an_adoption_shows_it_and_a_newer_version_ends_it() {
        let db = DbRef {
            kind: dbtls_contract::DbKind::MySQL,
            name: "my".into(),
            namespace: "demo".into(),
            uid: "db-uid".into(),
        };
        let adopted = Adopted::default();
        let mut before = observed("1");
        catch_up_adoptions(&adopted, &db, &mut before);
        assert!(before.secrets["s"].owners.is_empty(), "nothing adopted yet");

        adopted.record("u", Some("1"), ());
        let mut stale = observed("1");
        catch_up_adoptions(&adopted, &db, &mut stale);
        assert_eq!(stale.secrets["s"].owners, [db.owner_reference()]);

        let mut changed = observed("7");
        catch_up_adoptions(&adopted, &db, &mut changed);
        assert!(
            changed.secrets["s"].owners.is_empty(),
            "a newer version is taken as it is"
        );
        let mut stale_again = observed("1");
        catch_up_adoptions(&adopted, &db, &mut stale_again);
        assert!(stale_again.secrets["s"].owners.is_empty(), "forgotten");
    }

    #[test]
    fn an_object_created_ahead_of_the_cache_is_remembered_until_the_cache_has_it() {
        let created: AheadOfCache<&str> = AheadOfCache::default();
        assert_eq!(created.behind("k", None), None, "nothing written");
        created.record("k", None, "written");
        assert_eq!(created.behind("other", None), None, "another object");
        assert_eq!(
            created.behind("k", None),
            Some("written"),
            "cache still absent"
        );
        assert_eq!(created.behind("k", Some("5")), None, "the cache has it");
        assert_eq!(created.behind("k", None), None, "forgotten");
    }
}
