//! State shared by every reconcile: the client, the watch caches, the status writer, metrics,
//! the workload API chosen per kind, and the per-database backoff series.
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use dbtls_contract::conditions::Writer;
use dbtls_contract::{DbKind, PROVISIONER_MANAGER, PROVISIONER_REPORTER};
use dbtls_runtime::backoff::BackoffSeries;
use dbtls_runtime::key::DbKey;
use dbtls_runtime::metrics::ReconcileMetrics;
use dbtls_runtime::status::StatusWriter;
use kube::Client;

use crate::caches::Caches;
use crate::observe::AbsentSecrets;
use crate::workload::{WorkloadChoice, WorkloadFlag, choose};

/// Backoff for a wait the user fixes outside the spec (a missing Secret): 30 s, doubling.
pub const WAIT_BACKOFF_START: Duration = Duration::from_secs(30);
/// Backoff after an immutable-field change, which only a spec edit or a deleted workload fixes.
pub const IMMUTABLE_BACKOFF_START: Duration = Duration::from_secs(300);
/// Backoff after an API error: 1 s, doubling.
pub const ERROR_BACKOFF_START: Duration = Duration::from_secs(1);
/// Fallback requeue of a converged database (everything else is event-driven).
pub const RESYNC: Duration = Duration::from_secs(3600);
/// The Event action of the provisioner's condition transitions.
pub const ACTION: &str = "Provision";

pub struct Context {
    pub client: Client,
    pub caches: Caches,
    pub absent: AbsentSecrets,
    pub status: StatusWriter,
    pub metrics: ReconcileMetrics,
    /// How long kubelet may take to bring a changed Secret into running pods.
    pub secret_propagation: Duration,
    workloads: BTreeMap<DbKind, WorkloadChoice>,
    states: Mutex<HashMap<DbKey, (DbKind, &'static str)>>,
    /// Consecutive waits on something fixed outside the spec.
    waits: BackoffSeries<DbKey>,
    /// Consecutive failed reconciles, apart from waits: a transient API error must not inherit
    /// the count of earlier waits, nor of errors a successful reconcile has cleared.
    errors: BackoffSeries<DbKey>,
}

impl Context {
    pub fn new(
        client: Client,
        caches: Caches,
        metrics: ReconcileMetrics,
        workloads: BTreeMap<DbKind, WorkloadChoice>,
        secret_propagation: Duration,
        progress_interval: Duration,
    ) -> Self {
        Self {
            status: StatusWriter::new(
                client.clone(),
                Writer::Provisioner,
                PROVISIONER_MANAGER,
                PROVISIONER_REPORTER,
                ACTION,
                progress_interval,
            ),
            client,
            caches,
            absent: AbsentSecrets::default(),
            metrics,
            secret_propagation,
            workloads,
            states: Mutex::default(),
            waits: BackoffSeries::default(),
            errors: BackoffSeries::default(),
        }
    }

    pub fn workload(&self, kind: DbKind) -> WorkloadChoice {
        self.workloads
            .get(&kind)
            .cloned()
            .unwrap_or_else(|| choose(WorkloadFlag::Auto, kind, false))
    }

    /// Keeps the `dbtls_databases{kind, state}` gauge in line (None: the database is gone).
    pub fn record_state(&self, key: &DbKey, kind: DbKind, state: Option<&'static str>) {
        let Ok(mut states) = self.states.lock() else {
            return;
        };
        let previous = match state {
            Some(s) => states.insert(key.clone(), (kind, s)),
            None => states.remove(key),
        };
        let kind = kind.to_string();
        if previous.map(|(_, s)| s) == state {
            return;
        }
        if let Some((_, old)) = previous {
            self.metrics
                .databases
                .with_label_values(&[kind.as_str(), old])
                .dec();
        }
        if let Some(new) = state {
            self.metrics
                .databases
                .with_label_values(&[kind.as_str(), new])
                .inc();
        }
    }

    /// The next delay of a wait for `key`: `start` doubled per consecutive wait, at most 5 min.
    pub fn wait_backoff(&self, key: &DbKey, start: Duration) -> Duration {
        self.waits.next(key, start)
    }

    /// The next delay after a failed reconcile of `key`.
    pub fn error_backoff(&self, key: &DbKey) -> Duration {
        self.errors.next(key, ERROR_BACKOFF_START)
    }

    /// A reconcile of `key` succeeded (waiting or not).
    pub fn succeeded(&self, key: &DbKey) {
        self.errors.reset(key);
    }

    /// `key` waits on nothing any more.
    pub fn settled(&self, key: &DbKey) {
        self.waits.reset(key);
    }
}
