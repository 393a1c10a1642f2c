//! TLS Secrets this process adopted, until its watch cache shows the adoption. The cache may
//! hand the next reconcile a Secret as it was before (a Certificate's event can come first);
//! adopting it again from that version is a write the API server refuses (409, the
//! resourceVersion precondition), which the benchmark counted as ~0.3 wasted writes per
//! database.
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dbtls_runtime::sweep::Sweep;

use crate::db::DbRef;
use crate::plan::Observed;

/// How long an adoption is remembered at most (the cache normally catches up in milliseconds).
const REMEMBER: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct Adopted {
    /// Secret uid -> the resourceVersion it was adopted from, and when.
    by_uid: Mutex<HashMap<String, (String, Instant)>>,
    sweep: Mutex<Sweep>,
}

impl Adopted {
    /// Records that the Secret `uid` was adopted from version `resource_version`.
    pub fn record(&self, uid: &str, resource_version: &str) {
        let mut map = self.by_uid.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if self.sweep.lock().is_ok_and(|mut s| s.due(now)) {
            map.retain(|_, (_, at)| now.duration_since(*at) < REMEMBER);
        }
        map.insert(
            uid.to_string(),
            (resource_version.to_string(), Instant::now()),
        );
    }

    /// Whether the Secret `uid` at `resource_version` is a version this process already
    /// adopted (the cache is behind); a newer version ends the memory of it.
    fn behind(&self, uid: &str, resource_version: &str) -> bool {
        let mut map = self.by_uid.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(uid) {
            Some((from, at)) if from == resource_version && at.elapsed() < REMEMBER => true,
            Some(_) => {
                map.remove(uid);
                false
            }
            None => false,
        }
    }

    /// Shows `db` as an owner of the observed Secrets it already adopted.
    pub fn catch_up(&self, db: &DbRef, observed: &mut Observed) {
        for secret in observed.secrets.values_mut() {
            let (Some(uid), Some(rv)) = (&secret.uid, &secret.resource_version) else {
                continue;
            };
            if !secret.owners.iter().any(|o| o.uid == db.uid) && self.behind(uid, rv) {
                secret.owners.push(db.owner_reference());
            }
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
        adopted.catch_up(&db, &mut before);
        assert!(before.secrets["s"].owners.is_empty(), "nothing adopted yet");

        adopted.record("u", "1");
        let mut stale = observed("1");
        adopted.catch_up(&db, &mut stale);
        assert_eq!(stale.secrets["s"].owners, [db.owner_reference()]);

        let mut changed = observed("7");
        adopted.catch_up(&db, &mut changed);
        assert!(
            changed.secrets["s"].owners.is_empty(),
            "a newer version is taken as it is"
        );
        let mut stale_again = observed("1");
        adopted.catch_up(&db, &mut stale_again);
        assert!(stale_again.secrets["s"].owners.is_empty(), "forgotten");
    }
}
