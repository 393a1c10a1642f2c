//! State shared by every reconcile: the client, the Event recorder, metrics, the workload API
//! chosen per kind, and per-database retry counters for exponential backoff.
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use dbtls_contract::DbKind;
use dbtls_contract::PROVISIONER_REPORTER;
use dbtls_contract::api::DatabasePhase;
use dbtls_runtime::backoff::BackoffSeries;
use dbtls_runtime::coalesce::StatusCoalescer;
use dbtls_runtime::events;
use dbtls_runtime::metrics::ReconcileMetrics;
use kube::Client;
use kube::runtime::events::Recorder;

use crate::workload_choice::WorkloadChoice;

/// `(kind, namespace, name)` of one database.
pub type DbKey = (DbKind, String, String);

/// Backoff for a wait the user fixes outside the spec (a missing Secret): 30 s, doubling.
pub const WAIT_BACKOFF_START: Duration = Duration::from_secs(30);
/// Backoff after an API error: 1 s, doubling.
pub const ERROR_BACKOFF_START: Duration = Duration::from_secs(1);
/// Fallback requeue of a converged database (everything else is event-driven).
pub const RESYNC: Duration = Duration::from_secs(3600);

pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: ReconcileMetrics,
    /// Holds back status writes that only move a progress message (see `coalesce`).
    pub status_coalescer: StatusCoalescer,
    workloads: BTreeMap<DbKind, WorkloadChoice>,
    phases: Mutex<HashMap<DbKey, DatabasePhase>>,
    failures: BackoffSeries<DbKey>,
    /// Consecutive failed reconciles, apart from `failures` (waits): a transient API error must
    /// not inherit the count of earlier waits, nor of errors a successful reconcile has cleared.
    errors: BackoffSeries<DbKey>,
}

impl Context {
    pub fn new(
        client: Client,
        metrics: ReconcileMetrics,
        workloads: BTreeMap<DbKind, WorkloadChoice>,
    ) -> Self {
        Self {
            recorder: events::recorder(client.clone(), PROVISIONER_REPORTER),
            client,
            metrics,
            status_coalescer: StatusCoalescer::default(),
            workloads,
            phases: Mutex::default(),
            failures: BackoffSeries::default(),
            errors: BackoffSeries::default(),
        }
    }

    pub fn workload(&self, kind: DbKind) -> WorkloadChoice {
        self.workloads
            .get(&kind)
            .cloned()
            .unwrap_or_else(|| crate::workload_choice::choose(Default::default(), kind, false))
    }

    /// Keeps the `dbtls_databases{kind, state}` gauge in line (None: the database is gone).
    pub fn record_phase(&self, key: &DbKey, phase: Option<DatabasePhase>) {
        let Ok(mut phases) = self.phases.lock() else {
            return;
        };
        let kind = key.0.to_string();
        let previous = match phase {
            Some(p) => phases.insert(key.clone(), p),
            None => phases.remove(key),
        };
        if previous == phase {
            return;
        }
        if let Some(old) = previous {
            self.metrics
                .databases
                .with_label_values(&[kind.as_str(), old.as_str()])
                .dec();
        }
        if let Some(new) = phase {
            self.metrics
                .databases
                .with_label_values(&[kind.as_str(), new.as_str()])
                .inc();
        }
    }

    /// The next delay for `key`: `start` doubled per consecutive call, capped at 5 minutes.
    pub fn backoff(&self, key: &DbKey, start: Duration) -> Duration {
        self.failures.next(key, start)
    }

    /// The next delay after a failed reconcile of `key`: [`ERROR_BACKOFF_START`] doubled per
    /// consecutive failure, capped at 5 minutes.
    pub fn error_backoff(&self, key: &DbKey) -> Duration {
        self.errors.next(key, ERROR_BACKOFF_START)
    }

    /// Forgets the consecutive failures of `key` (a reconcile succeeded, waiting or not).
    pub fn reset_error_backoff(&self, key: &DbKey) {
        self.errors.reset(key);
    }

    /// Forgets the failures of `key` (it reconciled cleanly).
    pub fn reset_backoff(&self, key: &DbKey) {
        self.failures.reset(key);
    }
}
