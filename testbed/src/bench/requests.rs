//! Request accounting from the testbed's request log: requests per operator and verb class,
//! writes per target, and the minimum number of writes the design needs per database.
use std::collections::BTreeMap;

use dbtls_contract::DbKind;

use crate::apiserver::RequestRecord;

/// The request-log users of the two operators (their kubeconfig tokens).
pub const OPERATORS: [&str; 2] = ["provisioner", "ops-manager"];

/// Requests of one client in one window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestCounts {
    /// get + list.
    pub reads: usize,
    pub watches: usize,
    /// Write requests to anything but Events.
    pub writes: usize,
    /// Of `writes`, those that changed nothing (a no-op apply).
    pub noop_writes: usize,
    /// Event creates and patches (kube's recorder), counted apart from object writes.
    pub events: usize,
    /// Writes per target, e.g. `secrets`, `mysqls/status`, `mysqls (finalizer)`.
    pub writes_by_target: BTreeMap<String, usize>,
    /// Reads per target (`get secrets`, `list certificates`).
    pub reads_by_target: BTreeMap<String, usize>,
    /// Requests answered with an error status other than 404 (a `get` of an object that does
    /// not exist yet is the normal way to find out).
    pub errors: usize,
}

impl RequestCounts {
    /// Counts the records of `user`.
    pub fn of(records: &[RequestRecord], user: &str) -> RequestCounts {
        let mut counts = RequestCounts::default();
        for r in records.iter().filter(|r| r.user == user) {
            if r.status >= 400 && r.status != 404 {
                counts.errors += 1;
            }
            let target = match &r.subresource {
                Some(sub) => format!("{}/{sub}", r.resource),
                None => r.resource.clone(),
            };
            if r.verb.is_write() {
                if r.resource == "events" {
                    counts.events += 1;
                    continue;
                }
                counts.writes += 1;
                if !r.wrote {
                    counts.noop_writes += 1;
                }
                *counts.writes_by_target.entry(target).or_insert(0) += 1;
            } else {
                match r.verb.as_str() {
                    "watch" => counts.watches += 1,
                    "get" | "list" => {
                        counts.reads += 1;
                        *counts
                            .reads_by_target
                            .entry(format!("{} {target}", r.verb.as_str()))
                            .or_insert(0) += 1;
                    }
                    _ => counts.reads += 1,
                }
            }
        }
        counts
    }

    /// Every write request, Events included.
    pub fn all_writes(&self) -> usize {
        self.writes + self.events
    }
}

/// State-changing writes (Events included) of every client in `records`, per user.
pub fn writes_by_user(records: &[RequestRecord]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in records.iter().filter(|r| r.verb.is_write()) {
        *out.entry(r.user.clone()).or_insert(0) += 1;
    }
    out
}

/// The most requests `user` made within any one second of `records` (in the order received).
pub fn peak_per_second(records: &[RequestRecord], user: &str) -> usize {
    let times: Vec<std::time::Instant> = records
        .iter()
        .filter(|r| r.user == user)
        .map(|r| r.at)
        .collect();
    let mut first = 0;
    let mut peak = 0;
    for (last, at) in times.iter().enumerate() {
        while at.saturating_duration_since(times[first]) >= std::time::Duration::from_secs(1) {
            first += 1;
        }
        peak = peak.max(last + 1 - first);
    }
    peak
}

/// Certificates the cert-manager stand-in issued in `records` (each issuance applies its Secret
/// once), and the time from the first to the last.
pub fn issued(records: &[RequestRecord]) -> (usize, std::time::Duration) {
    let issuances: Vec<&RequestRecord> = records
        .iter()
        .filter(|r| {
            r.user == "cert-manager"
                && r.verb.as_str() == "apply"
                && r.resource == "secrets"
                && r.status < 300
        })
        .collect();
    let span = match (issuances.first(), issuances.last()) {
        (Some(first), Some(last)) => last.at.saturating_duration_since(first.at),
        _ => std::time::Duration::ZERO,
    };
    (issuances.len(), span)
}

/// The writes one database of `kind` needs at least (the bench's manifests: TLS with the
/// kind's default aliases; MSSQLServer with `clientTLS`, so with its `mssql.conf` config
/// Secret; PerconaXtraDB with its Galera config Secret, which holds the state-transfer setting):
/// - provisioner: its finalizer, the auth Secret, the primary and governing Services, the
///   workload, the config Secret where the kind has one, and three status writes (waiting for
///   the TLS Secrets, workload created and its pods starting, pods ready);
/// - ops-manager: its finalizer, one Certificate per alias, one ownerReference adoption per
///   issued Secret, the CA bundle Secret, and three status writes (waiting for issuance, certificates ready, every
///   pod serving the current certificate).
pub fn minimum_writes(kind: DbKind) -> (usize, usize) {
    let aliases = kind.profile().aliases.len();
    let config_secret = usize::from(matches!(kind, DbKind::MSSQLServer | DbKind::PerconaXtraDB));
    let provisioner = 1 + 1 + 2 + 1 + config_secret + 3;
    // finalizer, Certificates, Secret adoptions, the CA bundle, status.
    let ops_manager = 1 + aliases + aliases + 1 + 3;
    (provisioner, ops_manager)
}

/// The minimum for a set of databases, per operator (same order as [`OPERATORS`]).
pub fn minimum_for(kinds: &[DbKind]) -> [usize; 2] {
    kinds.iter().fold([0, 0], |[p, o], kind| {
        let (mp, mo) = minimum_writes(*kind);
        [p + mp, o + mo]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(user: &str, at: std::time::Instant) -> RequestRecord {
        RequestRecord {
            at,
            method: "GET".into(),
            path: "/api/v1/secrets".into(),
            verb: crate::apiserver::Verb::Get,
            resource: "secrets".into(),
            group: String::new(),
            subresource: None,
            namespace: None,
            name: None,
            user_agent: String::new(),
            field_manager: None,
            user: user.into(),
            status: 200,
            wrote: false,
        }
    }

    #[test]
    fn the_peak_is_the_busiest_second_of_one_user() {
        let t0 = std::time::Instant::now();
        let ms = |n: u64| t0 + std::time::Duration::from_millis(n);
        // ops-manager: 2 requests in the first second, then 3 within 900 ms; others ignored.
        let records: Vec<RequestRecord> = [
            ("ops-manager", 0),
            ("ops-manager", 400),
            ("provisioner", 1_500),
            ("provisioner", 1_600),
            ("provisioner", 1_700),
            ("provisioner", 1_800),
            ("ops-manager", 2_000),
            ("ops-manager", 2_500),
            ("ops-manager", 2_900),
            ("ops-manager", 3_000),
        ]
        .into_iter()
        .map(|(user, at)| record(user, ms(at)))
        .collect();
        assert_eq!(peak_per_second(&records, "ops-manager"), 3);
        assert_eq!(peak_per_second(&records, "provisioner"), 4);
        assert_eq!(peak_per_second(&records, "bench"), 0);
    }

    #[test]
    fn minimum_follows_the_aliases_and_config_secret() {
        assert_eq!(minimum_writes(DbKind::MySQL), (8, 11));
        assert_eq!(minimum_writes(DbKind::Singlestore), (8, 9));
        assert_eq!(minimum_writes(DbKind::MSSQLServer), (9, 9));
        assert_eq!(minimum_writes(DbKind::PerconaXtraDB), (9, 11));
        assert_eq!(minimum_for(&DbKind::ALL), [42, 51]);
    }
}
