//! The read step: everything the plan needs about one database, from the watch caches. Only the
//! Secrets a user names in the spec (auth, license), which carry none of the operators' labels,
//! are read from the API server, and a TLS Secret the cache does not hold, at most every
//! [`RECHECK_ABSENT`]: cert-manager's carry the database's labels, but a user may have put an
//! unlabelled Secret of that name in the way (or bring their own certificate).
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dbtls_contract::monitoring::ServiceMonitor;
use dbtls_contract::tls::IssuerType;
use dbtls_contract::{DbKind, labels, names};
use dbtls_runtime::sweep::Sweep;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use kube::api::Api;

use crate::backend::{Backend, BackendTls};
use crate::caches::Stores;
use crate::desired::{self, AcmeAliases};
use crate::facts::DbFacts;
use crate::workload::{Workload, WorkloadApi};

#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error("reading {what}: {source}")]
    Read {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("no watch cache covers namespace {0} (not in --namespace)")]
    NotWatched(String),
}

/// What exists for one database.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    /// The auth Secret named in `spec.authSecret` (None when the spec names none or it is absent).
    pub user_auth_secret: Option<Secret>,
    /// The provisioner's auth Secret `<db>-auth`.
    pub auth_secret: Option<Secret>,
    /// Singlestore's license Secret.
    pub license_secret: Option<Secret>,
    /// The primary, governing and stats Services, where they exist (by name).
    pub services: Vec<Service>,
    pub config_secret: Option<Secret>,
    /// The live workload of the database's first part (`<db>`, or a SingleStore cluster's
    /// aggregators).
    pub workload: Option<Workload>,
    /// The live workloads of its other parts (a SingleStore cluster's leaves), in order.
    pub more_workloads: Vec<Option<Workload>>,
    /// Workloads labelled as the database's under a name none of its parts has (what runs
    /// from before `spec.topology` changed).
    pub strays: Vec<Workload>,
    /// Every pod its workloads should have, by name, None where one does not exist.
    pub pods: Vec<(String, Option<Pod>)>,
    /// Every TLS Secret the spec needs, found or not, in alias order.
    pub tls_secrets: Vec<(String, Option<Secret>)>,
    /// The aliases issued by an ACME issuer (ProxySQL only).
    pub acme: AcmeAliases,
    /// The ServiceMonitor of the stats Service, where ServiceMonitors are served.
    pub service_monitor: Option<ServiceMonitor>,
    pub service_monitors_served: bool,
    /// A ProxySQL's backend, where it exists.
    pub backend: Option<Backend>,
    pub clock: Clock,
}

impl Observed {
    /// The live workload of each part, in the order of [`DbFacts::parts`].
    pub fn lives(&self) -> impl Iterator<Item = Option<&Workload>> {
        std::iter::once(self.workload.as_ref())
            .chain(self.more_workloads.iter().map(Option::as_ref))
    }
}

/// The time of the reconcile, and how long kubelet may take to bring a changed Secret into
/// running pods (its sync period plus its Secret cache).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Clock {
    /// Unix seconds.
    pub now: i64,
    pub secret_propagation: Duration,
}

impl Clock {
    pub fn now(secret_propagation: Duration) -> Clock {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        Clock {
            now,
            secret_propagation,
        }
    }
}

impl Observed {
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(name))
    }
}

/// How long a TLS Secret first read as absent is not read again; each further absent read
/// doubles it, up to [`RECHECK_ABSENT_LONGEST`]. Issued Secrets carry the database labels
/// (the Certificates' `secretTemplate`), so the watch cache sees them and triggers a
/// reconcile: the read is only for a Secret that exists without them, and a long wait for
/// cert-manager costs a few reads, not one every 30 s.
pub const RECHECK_ABSENT: Duration = Duration::from_secs(30);
pub const RECHECK_ABSENT_LONGEST: Duration = Duration::from_secs(240);

/// TLS Secrets recently read and found absent, so that a database waiting for cert-manager
/// costs a few reads per Secret, not one per reconcile.
#[derive(Default)]
pub struct AbsentSecrets {
    /// When each was last read as absent, and how many times in a row.
    checked: Mutex<HashMap<(String, String), (Instant, u32)>>,
    sweep: Mutex<Sweep>,
}

/// How long a Secret read as absent `times` in a row is not read again.
fn recheck_after(times: u32) -> Duration {
    let doublings = times.saturating_sub(1).min(16);
    RECHECK_ABSENT
        .saturating_mul(1 << doublings)
        .min(RECHECK_ABSENT_LONGEST)
}

impl AbsentSecrets {
    fn recently_absent(&self, ns: &str, name: &str) -> bool {
        let Ok(checked) = self.checked.lock() else {
            return false;
        };
        checked
            .get(&(ns.to_string(), name.to_string()))
            .is_some_and(|(at, times)| at.elapsed() < recheck_after(*times))
    }

    fn record(&self, ns: &str, name: &str, absent: bool) {
        let Ok(mut checked) = self.checked.lock() else {
            return;
        };
        let key = (ns.to_string(), name.to_string());
        if absent {
            // Forgotten once the longest recheck has passed (swept once a minute; an entry
            // past it counts as forgotten already): memory follows the waits.
            let now = Instant::now();
            let remembered = |at: &Instant| now.duration_since(*at) < RECHECK_ABSENT_LONGEST * 2;
            if self.sweep.lock().is_ok_and(|mut s| s.due(now)) {
                checked.retain(|_, (at, _)| remembered(at));
            }
            let times = checked
                .get(&key)
                .filter(|(at, _)| remembered(at))
                .map_or(0, |(_, times)| *times);
            checked.insert(key, (now, times.saturating_add(1)));
        } else {
            checked.remove(&key);
        }
    }
}

async fn read_secret(
    client: &kube::Client,
    ns: &str,
    name: &str,
) -> Result<Option<Secret>, ObserveError> {
    Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(|source| ObserveError::Read {
            what: format!("Secret {ns}/{name}"),
            source,
        })
}

/// A TLS Secret from the cache, else (not recently found absent) from the API server.
async fn tls_secret(
    client: &kube::Client,
    stores: &Stores,
    absent: &AbsentSecrets,
    ns: &str,
    name: &str,
) -> Result<Option<Secret>, ObserveError> {
    if let Some(cached) = stores.secret(ns, name) {
        return Ok(Some(cached));
    }
    if absent.recently_absent(ns, name) {
        return Ok(None);
    }
    let mut found = read_secret(client, ns, name).await?;
    absent.record(ns, name, found.is_none());
    if let Some(secret) = found.as_mut() {
        crate::caches::secret_shape(secret);
    }
    Ok(found)
}

pub async fn observe(
    client: &kube::Client,
    stores: Option<&Stores>,
    absent: &AbsentSecrets,
    facts: &DbFacts<'_>,
    workload_api: WorkloadApi,
    clock: Clock,
) -> Result<Observed, ObserveError> {
    let ns = facts.namespace.as_str();
    let stores = stores.ok_or_else(|| ObserveError::NotWatched(ns.to_string()))?;
    let user_auth_secret = match facts.user_auth_secret() {
        Some(name) => read_secret(client, ns, name).await?,
        None => None,
    };
    let license_secret = match facts.extras.license_secret.filter(|n| !n.is_empty()) {
        Some(name) => read_secret(client, ns, name).await?,
        None => None,
    };
    let services = [
        names::primary_service(&facts.name),
        names::governing_service(&facts.name),
        names::stats_service(&facts.name),
    ]
    .iter()
    .filter_map(|name| stores.service(ns, name))
    .collect();
    let acme = acme_aliases(stores, facts);
    let backend = backend(stores, facts);
    let backend_secrets = backend
        .as_ref()
        .and_then(|b| b.tls.as_ref())
        .into_iter()
        .flat_map(BackendTls::secrets);
    let mut tls_secrets = Vec::new();
    for name in desired::mounted_tls_secrets(facts, &acme)
        .into_iter()
        .chain(backend_secrets)
    {
        let found = tls_secret(client, stores, absent, ns, &name).await?;
        tls_secrets.push((name, found));
    }
    let (workload, more_workloads, strays) = workloads(stores, facts, workload_api);
    let pods = facts
        .parts
        .iter()
        .flat_map(|part| part.pod_names())
        .map(|name| {
            let pod = stores.pod(ns, &name);
            (name, pod)
        })
        .collect();
    Ok(Observed {
        pods,
        user_auth_secret,
        auth_secret: stores.secret(ns, &names::auth_secret(&facts.name)),
        license_secret,
        services,
        config_secret: stores.secret(ns, &names::config_secret(&facts.name)),
        workload,
        more_workloads,
        strays,
        tls_secrets,
        acme,
        service_monitor: stores.service_monitor(ns, &names::stats_service(&facts.name)),
        service_monitors_served: stores.service_monitors.is_some(),
        backend,
        clock,
    })
}

/// The live workload of each of the database's parts (the first, then the others), and the
/// workloads labelled as its own under other names (sorted by name).
fn workloads(
    stores: &Stores,
    facts: &DbFacts<'_>,
    api: WorkloadApi,
) -> (Option<Workload>, Vec<Option<Workload>>, Vec<Workload>) {
    let ns = facts.namespace.as_str();
    let mut lives = facts
        .parts
        .iter()
        .map(|part| stores.workload(api, ns, &part.name));
    let first = lives.next().flatten();
    let more = lives.collect();
    let mut strays: Vec<Workload> = stores
        .workloads_labelled(api, ns, &labels::for_database(facts.kind, &facts.name))
        .into_iter()
        .filter(|w| {
            let name = w.meta().name.as_deref().unwrap_or_default();
            !facts.parts.iter().any(|p| p.name == name)
        })
        .collect();
    strays.sort_by(|a, b| a.meta().name.cmp(&b.meta().name));
    (first, more, strays)
}

/// A ProxySQL's backend: the MySQL of `spec.backend.name` in its namespace, else the
/// PerconaXtraDB.
fn backend(stores: &Stores, facts: &DbFacts<'_>) -> Option<Backend> {
    let name = facts
        .extras
        .backend
        .filter(|_| facts.kind == DbKind::ProxySQL)?;
    let ns = facts.namespace.as_str();
    stores
        .mysqls
        .get(ns, name)
        .map(|db| Backend::of(&db))
        .or_else(|| {
            stores
                .perconaxtradbs
                .get(ns, name)
                .map(|db| Backend::of(&db))
        })
}

/// The aliases of a ProxySQL whose issuer the cache shows as ACME. Only ProxySQL: KubeDB issues
/// the other kinds every certificate whatever the issuer, and their servers need the CA.
fn acme_aliases(stores: &Stores, facts: &DbFacts<'_>) -> AcmeAliases {
    let Some(tls) = facts.tls.filter(|_| facts.kind == DbKind::ProxySQL) else {
        return AcmeAliases::default();
    };
    let acme = tls
        .aliases(facts.kind)
        .into_iter()
        .filter(|alias| {
            tls.issuer_for(alias).is_some_and(|issuer| {
                stores.issuer_type(&facts.namespace, issuer) == IssuerType::Acme
            })
        })
        .collect();
    AcmeAliases(acme)
}

#[cfg(test)]
mod absent_tests {
    use super::*;

    #[test]
    fn each_absent_read_in_a_row_doubles_the_recheck_up_to_the_longest() {
        let s = Duration::from_secs;
        for (times, want) in [
            (1, s(30)),
            (2, s(60)),
            (3, s(120)),
            (4, s(240)),
            (9, s(240)),
            (u32::MAX, s(240)),
        ] {
            assert_eq!(recheck_after(times), want, "{times} absent reads");
        }
        let absent = AbsentSecrets::default();
        assert!(!absent.recently_absent("ns", "a"));
        absent.record("ns", "a", true);
        absent.record("ns", "a", true);
        assert!(absent.recently_absent("ns", "a"));
        assert!(!absent.recently_absent("ns", "b"));
        absent.record("ns", "a", false);
        assert!(!absent.recently_absent("ns", "a"), "found: forgotten");
    }
}
