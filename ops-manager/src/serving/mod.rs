//! Renewed certificates reach the running servers. After cert-manager renews a certificate,
//! kubelet refreshes the pods' projected files, but a database server keeps presenting what it
//! read at start. This step, run in every reconcile of a database with TLS, looks at what each
//! pod presents (a TLS handshake to its address, compared with the serial in the server Secret),
//! reloads the pods that present an older certificate over the engine's admin protocol, restarts
//! through the Eviction API those that cannot reload, and says it all in `TLSServing`:
//! observe ([`observe`], [`act::look`]) → plan ([`plan`], pure) → act ([`act`]) → condition.
pub mod act;
pub mod admin;
pub mod engine;
pub mod memory;
pub mod metrics;
pub mod observe;
pub mod plan;
pub mod probe;
pub mod trust;

use std::time::Duration;

use dbtls_contract::conditions::Reason;
use dbtls_contract::labels;
use dbtls_runtime::conditions::Desired;
use dbtls_runtime::events;
use dbtls_runtime::events::Recorder;
use dbtls_runtime::key::DbKey;
use k8s_openapi::api::core::v1::ObjectReference;

use crate::caches::Stores;
use crate::db::DbRef;
use act::{CredentialSources, Evicted, Seen};
use engine::Method;
use memory::{CurrentCertificate, Memory, PodMemo};
use metrics::ServingMetrics;
use observe::PodView;
use plan::{PodState, ReloadFailure, Served, Way};

/// The Event action of the serving step's Events.
pub const ACTION: &str = "ServeCurrentCertificate";

/// `--tls-reload`: how pods are brought to a renewed certificate.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReloadPolicy {
    /// Reload online where the engine can, restart where it cannot or the reload fails.
    #[default]
    Auto,
    /// Always restart the pods one at a time (for engines whose online reload is not trusted).
    Restart,
}

/// What the step decided, for the reconcile's status write and requeue.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServingOutcome {
    /// `TLSServing`; None while there is nothing to say (no pods, no certificate yet).
    pub condition: Option<Desired>,
    pub requeue: Option<Duration>,
    /// Every pod presents the server Secret's certificate (true when there are no pods).
    pub all_current: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ServingError {
    #[error("reading Secret {namespace}/{name}: {source}")]
    ReadSecret {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("evicting pod {namespace}/{pod}: {source}")]
    Evict {
        namespace: String,
        pod: String,
        #[source]
        source: kube::Error,
    },
}

/// Who logs in to reload: the auth Secret, the client certificate's Secret, and the CAs the
/// servers' certificates may chain to.
pub struct AdminLogin<'a> {
    pub auth_secret: &'a str,
    pub client_secret: &'a str,
    pub cas: Vec<Vec<u8>>,
}

/// The database the step works on and the Secrets it reads.
pub struct Target<'a> {
    pub db: &'a DbRef,
    /// The database, for Events.
    pub regarding: &'a ObjectReference,
    pub server_secret: &'a str,
    pub client_secret: &'a str,
    pub auth_secret: &'a str,
    /// The pods the database's workloads should have (`<db>-0` ..): one not created yet is not
    /// serving.
    pub pods: Vec<String>,
}

/// The states of the pods that exist plus those of `expected` that do not yet, in the order of
/// `expected` (pods it does not name, e.g. above a lowered replica count, last).
fn with_missing(mut states: Vec<PodState>, expected: &[String]) -> Vec<PodState> {
    for name in expected {
        if !states.iter().any(|s| &s.name == name) {
            states.push(PodState {
                name: name.clone(),
                ordinal: observe::ordinal_of(name).unwrap_or_default(),
                served: Served::NotReady("not created yet".into()),
                reloads: 0,
                failure: None,
            });
        }
    }
    let position = |s: &PodState| expected.iter().position(|n| *n == s.name);
    states.sort_by_key(|s| (position(s).unwrap_or(usize::MAX), s.ordinal));
    states
}

const EVICTED: &str = "evicted to start with the current certificate";

/// The step's state and metrics, shared by every reconcile.
pub struct Serving {
    pub metrics: ServingMetrics,
    pub policy: ReloadPolicy,
    memory: Memory,
}

impl Serving {
    pub fn new(metrics: ServingMetrics, policy: ReloadPolicy) -> Self {
        Self {
            metrics,
            policy,
            memory: Memory::default(),
        }
    }

    /// Forgets a database that is gone or no longer has TLS.
    pub fn forget(&self, db: &DbRef) {
        self.memory.forget(&key(db));
        self.metrics.forget(&db.namespace, &db.name);
    }

    pub async fn reconcile(
        &self,
        client: &kube::Client,
        recorder: &Recorder,
        stores: &Stores,
        target: &Target<'_>,
    ) -> Result<ServingOutcome, ServingError> {
        let db = target.db;
        let ns = db.namespace.as_str();
        let container = db.kind.profile().container;
        let pods = observe::pod_views(
            &stores.pods_of(ns, &labels::for_database(db.kind, &db.name)),
            container,
        );
        // No pods (yet): nothing to look at, and no reason to read the Secret.
        if pods.is_empty() {
            self.forget_pods(db);
            return Ok(ServingOutcome {
                all_current: true,
                ..ServingOutcome::default()
            });
        }
        let Some(certificate) = self
            .current_certificate(client, stores, db, target.server_secret)
            .await?
        else {
            return Ok(ServingOutcome::default());
        };
        let states = self.look_at_pods(db, &pods, &certificate).await;
        let mut states = with_missing(states, &target.pods);
        let way = self.way(db);
        let first = plan::plan(&certificate.serial, &states, way);
        if !first.reload.is_empty() {
            self.reload(client, recorder, target, &pods, &certificate, &first.reload)
                .await;
        }
        let mut blocked = None;
        if let Some(pod) = first
            .evict
            .as_deref()
            .and_then(|e| pods.iter().find(|p| p.name == e))
        {
            blocked = self
                .evict(client, recorder, target, pod, &states, &certificate)
                .await?;
        }
        self.refresh(db, &mut states, first.evict.as_deref());
        self.record_expiry(db);
        let mut outcome = plan::plan(&certificate.serial, &states, way);
        if outcome.condition.as_ref().is_some_and(Desired::is_true)
            && let Some(entry) = self.memory.lock().get_mut(&key(db))
        {
            // Every pod serves the current certificate: the previous CA is trusted no longer.
            entry.previous_ca = None;
        }
        if let (Some(why), Some(condition)) = (blocked, outcome.condition.as_mut()) {
            condition.reason = Reason::EvictionBlocked;
            condition.message = format!("{}; {why}", condition.message);
            outcome.requeue = Some(plan::CHECK_RETRY);
        }
        let all_current = states.iter().all(|s| matches!(s.served, Served::Current));
        Ok(ServingOutcome {
            condition: outcome.condition,
            requeue: outcome.requeue,
            all_current,
        })
    }

    /// Forgets the pods of a database that has none now (its certificate stays known).
    fn forget_pods(&self, db: &DbRef) {
        if let Some(entry) = self.memory.lock().get_mut(&key(db)) {
            entry.pods.clear();
            entry.trust = None;
            entry.retired = None;
        }
        self.metrics.forget(&db.namespace, &db.name);
    }

    /// The server Secret's certificate, read again only when the Secret changed.
    pub async fn current_certificate(
        &self,
        client: &kube::Client,
        stores: &Stores,
        db: &DbRef,
        server_secret: &str,
    ) -> Result<Option<CurrentCertificate>, ServingError> {
        let ns = db.namespace.as_str();
        let Some(meta) = stores.secret(ns, server_secret) else {
            return Ok(None);
        };
        let version = meta.metadata.resource_version.unwrap_or_default();
        let known = self
            .memory
            .lock()
            .get(&key(db))
            .and_then(|m| m.certificate.clone());
        let current =
            observe::current_certificate(client, ns, server_secret, &version, known.as_ref())
                .await
                .map_err(|source| ServingError::ReadSecret {
                    namespace: ns.to_string(),
                    name: server_secret.to_string(),
                    source,
                })?;
        let current = current.map(|mut c| {
            c.ca_pem = self.memory.shared_ca(&c.ca_pem);
            c
        });
        let mut memory = self.memory.lock();
        let entry = memory.entry(key(db)).or_default();
        if let (Some(known), Some(now)) = (&known, &current)
            && known.ca_pem != now.ca_pem
        {
            entry.previous_ca = Some(known.ca_pem.clone());
        }
        entry.certificate = current.clone();
        Ok(current)
    }

    /// What each pod presents: remembered when it already presented the current serial in
    /// this server run, else probed (all at once).
    async fn look_at_pods(
        &self,
        db: &DbRef,
        pods: &[PodView],
        certificate: &CurrentCertificate,
    ) -> Vec<PodState> {
        let memos = self.refreshed_memos(db, pods, &certificate.serial);
        let port = engine::probe_port(db.kind);
        let looks = futures::future::join_all(pods.iter().zip(&memos).map(|(pod, memo)| {
            let needed = pod.not_ready.is_none() && !memo.current && !memo.evicted;
            async move {
                match (needed, port, pod.ip.as_deref()) {
                    (true, Some(port), Some(ip)) => Some(act::look(ip, port).await),
                    _ => None,
                }
            }
        }))
        .await;
        let mut memory = self.memory.lock();
        let entry = memory.entry(key(db)).or_default();
        let mut states = Vec::new();
        for ((pod, mut memo), look) in pods.iter().zip(memos).zip(looks) {
            let served = served(pod, &mut memo, look, port.is_some(), certificate);
            if let Some(version) = memo.version.clone() {
                entry.server_version = Some(version);
            }
            states.push(PodState {
                name: pod.name.clone(),
                ordinal: pod.ordinal,
                served,
                reloads: memo.reloads,
                failure: memo.failure.clone(),
            });
            entry.pods.insert(pod.name.clone(), memo);
        }
        entry
            .pods
            .retain(|name| pods.iter().any(|p| p.name == name));
        states
    }

    fn refreshed_memos(&self, db: &DbRef, pods: &[PodView], serial: &str) -> Vec<PodMemo> {
        let mut memory = self.memory.lock();
        let entry = memory.entry(key(db)).or_default();
        pods.iter()
            .map(|pod| {
                entry.pods.remove(&pod.name).unwrap_or_default().refreshed(
                    &pod.uid,
                    &pod.fingerprint,
                    serial,
                )
            })
            .collect()
    }

    fn way(&self, db: &DbRef) -> Way {
        if self.policy == ReloadPolicy::Restart {
            return Way::Restart;
        }
        let version = self
            .memory
            .lock()
            .get(&key(db))
            .and_then(|m| m.server_version.clone());
        match engine::method(db.kind, version.as_deref()) {
            Method::Reload { .. } => Way::Reload,
            Method::Restart { .. } => Way::Restart,
        }
    }

    async fn reload(
        &self,
        client: &kube::Client,
        recorder: &Recorder,
        target: &Target<'_>,
        pods: &[PodView],
        certificate: &CurrentCertificate,
        names: &[String],
    ) {
        let db = target.db;
        let previous_ca = self
            .memory
            .lock()
            .get(&key(db))
            .and_then(|m| m.previous_ca.clone());
        let cas: Vec<Vec<u8>> = std::iter::once(certificate.ca_pem.to_vec())
            .chain(previous_ca.map(|ca| ca.to_vec()))
            .collect();
        let admin = AdminLogin {
            auth_secret: target.auth_secret,
            client_secret: target.client_secret,
            cas,
        };
        let addressed: Vec<(String, Option<String>)> = names
            .iter()
            .map(|name| {
                let ip = pods
                    .iter()
                    .find(|p| p.name == *name)
                    .and_then(|p| p.ip.clone());
                (name.clone(), ip)
            })
            .collect();
        let Some((how, reloaded)) = self.admin_reloads(client, db, &admin, &addressed).await else {
            return;
        };
        let probe_port = engine::probe_port(db.kind);
        let results = futures::future::join_all(addressed.iter().zip(reloaded).map(
            |((_, ip), reloaded)| async move {
                reloaded?;
                match (probe_port, ip) {
                    (Some(probe_port), Some(ip)) => act::look(ip, probe_port)
                        .await
                        .map_err(ReloadFailure::Unreachable),
                    _ => Err(ReloadFailure::Unreachable("no probe".into())),
                }
            },
        ))
        .await;
        for (name, result) in names.iter().zip(results) {
            self.after_reload(recorder, target, name, result, certificate, &how)
                .await;
        }
    }

    /// Runs the engine's reload statements on `pods` (name, IP) over the admin protocol, one
    /// result per pod in order, with the statements run (for Events); None when the engine
    /// cannot reload.
    async fn admin_reloads(
        &self,
        client: &kube::Client,
        db: &DbRef,
        admin: &AdminLogin<'_>,
        pods: &[(String, Option<String>)],
    ) -> Option<(String, Vec<Result<(), ReloadFailure>>)> {
        let version = self
            .memory
            .lock()
            .get(&key(db))
            .and_then(|m| m.server_version.clone());
        let Method::Reload { port, statements } = engine::method(db.kind, version.as_deref())
        else {
            return None;
        };
        let sources = CredentialSources {
            namespace: &db.namespace,
            auth_secret: admin.auth_secret,
            tls: (port != engine::PROXYSQL_ADMIN_PORT)
                .then(|| (admin.client_secret, admin.cas.clone())),
        };
        let credentials = act::credentials(client, &sources).await;
        let governing = dbtls_contract::names::governing_service(&db.name);
        let results = futures::future::join_all(pods.iter().map(|(name, ip)| {
            let credentials = credentials.clone();
            let statements = statements.clone();
            let dns_name = format!("{name}.{governing}.{}.svc", db.namespace);
            async move {
                let ip = ip
                    .as_deref()
                    .ok_or_else(|| ReloadFailure::Unreachable("no pod IP".into()))?;
                let server = admin::Server {
                    ip,
                    port,
                    name: &dns_name,
                };
                act::reload(&server, &credentials?, &statements).await
            }
        }))
        .await;
        Some((statements.join("; "), results))
    }

    async fn after_reload(
        &self,
        recorder: &Recorder,
        target: &Target<'_>,
        pod: &str,
        result: Result<Seen, ReloadFailure>,
        certificate: &CurrentCertificate,
        how: &str,
    ) {
        let db = target.db;
        let (event, counted) = {
            let mut memory = self.memory.lock();
            let Some(memo) = memory.get_mut(&key(db)).and_then(|m| m.pods.get_mut(pod)) else {
                return;
            };
            memo.reloads += 1;
            after_reload_memo(memo, pod, result, certificate, how)
        };
        if let Some(result) = counted {
            self.metrics.count(db.kind, metrics::RELOAD, result);
        }
        if let Some((warning, reason, note)) = event {
            events::publish_related(
                recorder,
                target.regarding,
                Some(pod_reference(db, pod)),
                warning,
                reason.as_str(),
                ACTION,
                &note,
            )
            .await;
        }
    }

    async fn evict(
        &self,
        client: &kube::Client,
        recorder: &Recorder,
        target: &Target<'_>,
        view: &PodView,
        states: &[PodState],
        certificate: &CurrentCertificate,
    ) -> Result<Option<String>, ServingError> {
        let db = target.db;
        let pod = view.name.as_str();
        let evicted = act::evict(client, &db.namespace, pod, &view.uid)
            .await
            .map_err(|source| ServingError::Evict {
                namespace: db.namespace.clone(),
                pod: pod.to_string(),
                source,
            })?;
        if let Some(memo) = self
            .memory
            .lock()
            .get_mut(&key(db))
            .and_then(|m| m.pods.get_mut(pod))
        {
            // Until the watch shows it gone, this pod is neither probed nor evicted again.
            memo.evicted = !matches!(evicted, Evicted::Blocked(_));
        }
        match evicted {
            Evicted::Gone => Ok(None),
            Evicted::Done => {
                self.metrics
                    .count(db.kind, metrics::RESTART, metrics::SUCCESS);
                let presented = states
                    .iter()
                    .find(|s| s.name == pod)
                    .and_then(|s| match &s.served {
                        Served::Stale(old) => Some(old.clone()),
                        _ => None,
                    })
                    .unwrap_or_else(|| "an older certificate".into());
                let note = format!(
                    "Evicted pod {pod} (it presented {presented}) to start with serial {}",
                    certificate.serial
                );
                events::publish_related(
                    recorder,
                    target.regarding,
                    Some(pod_reference(db, pod)),
                    false,
                    Reason::PodEvictedForCertificate.as_str(),
                    ACTION,
                    &note,
                )
                .await;
                Ok(None)
            }
            Evicted::Blocked(why) => {
                self.metrics
                    .count(db.kind, metrics::RESTART, metrics::FAILURE);
                Ok(Some(format!("eviction of pod {pod} refused: {why}")))
            }
        }
    }

    /// The states after acting: reloads and failures from memory; an evicted pod is going.
    fn refresh(&self, db: &DbRef, states: &mut [PodState], evicted: Option<&str>) {
        let memory = self.memory.lock();
        let Some(entry) = memory.get(&key(db)) else {
            return;
        };
        for state in states.iter_mut() {
            if Some(state.name.as_str()) == evicted {
                state.served = Served::NotReady(EVICTED.into());
                continue;
            }
            if let Some(memo) = entry.pods.get(&state.name) {
                if memo.current {
                    state.served = Served::Current;
                }
                state.reloads = memo.reloads;
                state.failure = memo.failure.clone();
            }
        }
    }

    fn record_expiry(&self, db: &DbRef) {
        let served: Vec<(String, i64)> = {
            let memory = self.memory.lock();
            memory
                .get(&key(db))
                .map(|m| {
                    m.pods
                        .iter()
                        .filter_map(|(name, memo)| Some((name.to_string(), memo.expiry?)))
                        .collect()
                })
                .unwrap_or_default()
        };
        self.metrics.record(&db.namespace, &db.name, &served);
    }
}

/// A reference to pod `name` of the database, for an Event's related object.
fn pod_reference(db: &DbRef, name: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: Some(name.to_string()),
        namespace: Some(db.namespace.clone()),
        ..ObjectReference::default()
    }
}

fn key(db: &DbRef) -> DbKey {
    DbKey::new(db.kind.profile().kind, &db.namespace, &db.name)
}

/// What a pod presents, from its probe (`look`, when one was made) or its memo.
fn served(
    pod: &PodView,
    memo: &mut PodMemo,
    look: Option<Result<Seen, String>>,
    probed_kind: bool,
    certificate: &CurrentCertificate,
) -> Served {
    if let Some(why) = &pod.not_ready {
        return Served::NotReady(why.clone());
    }
    if memo.evicted {
        return Served::NotReady(EVICTED.into());
    }
    if memo.current {
        return Served::Current;
    }
    if !probed_kind {
        // Read at start: a server started after the certificate was issued presents it.
        let current = pod.started_at.is_some_and(|t| t >= certificate.not_before);
        if current {
            memo.current = true;
            memo.expiry = Some(certificate.not_after);
            return Served::Current;
        }
        return Served::Stale("the certificate it started with".into());
    }
    match look {
        None => Served::Unknown("no pod IP yet".into()),
        Some(Err(why)) => Served::Unknown(why),
        Some(Ok(seen)) => {
            memo.expiry = seen.expiry;
            memo.version = Some(seen.server_version.clone());
            if seen.serial == certificate.serial {
                memo.current = true;
                Served::Current
            } else {
                Served::Stale(format!("serial {}", seen.serial))
            }
        }
    }
}

/// The memo after a reload of `pod` and what to say: the Event (warning, reason, note) and the
/// `result` of `dbtls_certificate_reloads_total`. A reload that went through but still shows
/// the old serial says nothing yet: kubelet may not have refreshed the files.
fn after_reload_memo(
    memo: &mut PodMemo,
    pod: &str,
    result: Result<Seen, ReloadFailure>,
    certificate: &CurrentCertificate,
    how: &str,
) -> (Option<(bool, Reason, String)>, Option<&'static str>) {
    let first_failure = !memo.announced;
    match result {
        Ok(seen) => {
            memo.failure = None;
            memo.expiry = seen.expiry;
            if seen.serial != certificate.serial {
                return (None, None);
            }
            memo.current = true;
            let note = format!(
                "Pod {pod} reloaded its certificate ({how}) and presents serial {}",
                seen.serial
            );
            (
                Some((false, Reason::CertificateReloaded, note)),
                Some(metrics::SUCCESS),
            )
        }
        Err(failure) => {
            let (reason, note) = match &failure {
                ReloadFailure::Refused(why) => (
                    Reason::CertificateReloadFailed,
                    format!("Pod {pod} refused to reload its certificate: {why}; restarting it"),
                ),
                ReloadFailure::Unreachable(why) => (
                    Reason::ServingCheckFailed,
                    format!("Cannot reload the certificate of pod {pod}: {why}"),
                ),
            };
            memo.failure = Some(failure);
            memo.announced = true;
            (
                first_failure.then_some((true, reason, note)),
                Some(metrics::FAILURE),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn certificate() -> CurrentCertificate {
        CurrentCertificate {
            resource_version: "1".into(),
            serial: "NEW".into(),
            not_before: 1_000,
            not_after: 9_000,
            ca_pem: std::sync::Arc::default(),
        }
    }

    fn seen(serial: &str) -> Seen {
        Seen {
            serial: serial.into(),
            expiry: Some(9_000),
            server_version: "10.11.18-MariaDB".into(),
        }
    }

    #[test]
    fn a_verified_reload_is_announced_once_and_a_failure_once_per_serial() {
        let mut memo = PodMemo::default();
        let (event, result) = after_reload_memo(
            &mut memo,
            "db-0",
            Ok(seen("OLD")),
            &certificate(),
            "FLUSH SSL",
        );
        assert_eq!(
            (event, result),
            (None, None),
            "files not refreshed yet: quiet"
        );
        assert!(!memo.current);

        let refused = || Err(ReloadFailure::Refused("ERROR 1105".into()));
        let (event, result) =
            after_reload_memo(&mut memo, "db-0", refused(), &certificate(), "FLUSH SSL");
        let (warning, reason, note) = event.unwrap();
        assert!(warning);
        assert_eq!(reason, Reason::CertificateReloadFailed);
        assert!(note.contains("ERROR 1105"), "{note}");
        assert_eq!(result, Some(metrics::FAILURE));
        let (again, _) =
            after_reload_memo(&mut memo, "db-0", refused(), &certificate(), "FLUSH SSL");
        assert_eq!(again, None, "announced once");

        let (event, result) = after_reload_memo(
            &mut memo,
            "db-0",
            Ok(seen("NEW")),
            &certificate(),
            "FLUSH SSL",
        );
        let (warning, reason, note) = event.unwrap();
        assert!(!warning);
        assert_eq!(reason, Reason::CertificateReloaded);
        assert_eq!(
            note,
            "Pod db-0 reloaded its certificate (FLUSH SSL) and presents serial NEW"
        );
        assert_eq!(result, Some(metrics::SUCCESS));
        assert!(memo.current && memo.failure.is_none());
    }

    fn pod(not_ready: Option<&str>, started_at: Option<i64>) -> PodView {
        PodView {
            name: "db-0".into(),
            ordinal: 0,
            uid: "u".into(),
            ip: Some("10.0.0.1".into()),
            not_ready: not_ready.map(String::from),
            fingerprint: String::new(),
            started_at,
        }
    }

    #[test]
    fn a_pod_not_created_yet_is_not_serving() {
        let present = PodState {
            name: "db-1".into(),
            ordinal: 1,
            served: Served::Current,
            reloads: 0,
            failure: None,
        };
        let expected: Vec<String> = (0..3).map(|i| format!("db-{i}")).collect();
        let states = with_missing(vec![present], &expected);
        let names: Vec<_> = states.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["db-0", "db-1", "db-2"]);
        assert_eq!(states[0].served, Served::NotReady("not created yet".into()));
        let plan = plan::plan("S", &states, Way::Restart);
        assert!(!plan.condition.unwrap().is_true());
        assert_eq!(plan.evict, None, "no restart while a pod is missing");
    }

    #[test]
    fn a_cluster_s_pods_are_told_apart_by_name_not_ordinal() {
        // A SingleStore cluster: aggregator-0 exists, leaf-0 (the same ordinal) does not.
        let present = PodState {
            name: "sdb-aggregator-0".into(),
            ordinal: 0,
            served: Served::Current,
            reloads: 0,
            failure: None,
        };
        let expected = ["sdb-aggregator-0", "sdb-leaf-0"].map(String::from);
        let states = with_missing(vec![present], &expected);
        let seen: Vec<(&str, bool)> = states
            .iter()
            .map(|s| (s.name.as_str(), s.served == Served::Current))
            .collect();
        assert_eq!(seen, [("sdb-aggregator-0", true), ("sdb-leaf-0", false)]);
    }

    #[test]
    fn what_a_pod_presents() {
        let cert = certificate();
        let fresh = PodMemo::default;
        /// (case, pod, probe result, probed kind) → what it presents.
        type Case<'a> = (&'a str, PodView, Option<Result<Seen, String>>, bool, Served);
        let cases: Vec<Case> = vec![
            (
                "not ready",
                pod(Some("CrashLoopBackOff"), None),
                None,
                true,
                Served::NotReady("CrashLoopBackOff".into()),
            ),
            (
                "probed current",
                pod(None, None),
                Some(Ok(seen("NEW"))),
                true,
                Served::Current,
            ),
            (
                "probed stale",
                pod(None, None),
                Some(Ok(seen("OLD"))),
                true,
                Served::Stale("serial OLD".into()),
            ),
            (
                "probe failed",
                pod(None, None),
                Some(Err("refused".into())),
                true,
                Served::Unknown("refused".into()),
            ),
            (
                "unprobed kind started after issuance",
                pod(None, Some(2_000)),
                None,
                false,
                Served::Current,
            ),
            (
                "unprobed kind started before",
                pod(None, Some(500)),
                None,
                false,
                Served::Stale("the certificate it started with".into()),
            ),
        ];
        for (case, view, look, probed, expected) in cases {
            let mut memo = fresh();
            assert_eq!(
                served(&view, &mut memo, look, probed, &cert),
                expected,
                "{case}"
            );
            assert_eq!(memo.current, expected == Served::Current, "{case}");
        }
        // A pod evicted a moment ago that the watch cache still shows ready and started
        // before issuance: going, never evicted again.
        for (view, probed) in [(pod(None, Some(500)), false), (pod(None, None), true)] {
            let mut memo = PodMemo {
                evicted: true,
                ..fresh()
            };
            let look = probed.then(|| Ok(seen("OLD")));
            assert_eq!(
                served(&view, &mut memo, look, probed, &cert),
                Served::NotReady(EVICTED.into())
            );
        }
    }
}
