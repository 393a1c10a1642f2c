//! What every reconcile shares: the client, flags, metrics, the event recorder and the per-object
//! retry state.

use std::time::Duration;

use dbtls_contract::OPS_MANAGER_REPORTER;
use dbtls_runtime::backoff::BackoffSeries;
use dbtls_runtime::coalesce::StatusCoalescer;
use dbtls_runtime::events;
use dbtls_runtime::metrics::ReconcileMetrics;
use kube::Client;
use kube::runtime::events::Recorder;

use crate::metrics::CertificateMetrics;

pub struct Context {
    pub client: Client,
    pub cluster_domain: String,
    pub reconcile_metrics: ReconcileMetrics,
    pub certificate_metrics: CertificateMetrics,
    pub recorder: Recorder,
    pub retries: Retries,
    /// Holds back status writes that only move a progress message (see `coalesce`).
    pub status_coalescer: StatusCoalescer,
}

impl Context {
    pub fn new(
        client: Client,
        cluster_domain: String,
        reconcile_metrics: ReconcileMetrics,
        certificate_metrics: CertificateMetrics,
    ) -> Self {
        Self {
            recorder: events::recorder(client.clone(), OPS_MANAGER_REPORTER),
            client,
            cluster_domain,
            reconcile_metrics,
            certificate_metrics,
            retries: Retries::default(),
            status_coalescer: StatusCoalescer::default(),
        }
    }
}

/// Exponential backoff per database: one series for errors (fast first retry), one for waiting
/// on objects no watch reports reliably (30 s growing to 5 min, contract.md).
#[derive(Default)]
pub struct Retries {
    errors: BackoffSeries<String>,
    waits: BackoffSeries<String>,
}

const FIRST_ERROR_DELAY: Duration = Duration::from_millis(500);
const FIRST_WAIT_DELAY: Duration = Duration::from_secs(30);

impl Retries {
    pub fn after_error(&self, key: &str) -> Duration {
        self.errors.next(&key.to_string(), FIRST_ERROR_DELAY)
    }
    pub fn after_wait(&self, key: &str) -> Duration {
        self.waits.next(&key.to_string(), FIRST_WAIT_DELAY)
    }
    /// Forgets the error series after a successful reconcile.
    pub fn succeeded(&self, key: &str) {
        self.errors.reset(&key.to_string());
    }
    /// Forgets the waiting series once nothing is missing any more.
    pub fn settled(&self, key: &str) {
        self.waits.reset(&key.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbtls_runtime::backoff::CAP;

    #[test]
    fn delays_grow_to_five_minutes_and_reset_on_success() {
        let retries = Retries::default();
        assert_eq!(retries.after_error("a"), Duration::from_millis(500));
        assert_eq!(retries.after_error("a"), Duration::from_secs(1));
        assert_eq!(retries.after_error("b"), Duration::from_millis(500));
        for _ in 0..20 {
            retries.after_error("a");
        }
        assert_eq!(retries.after_error("a"), CAP);
        retries.succeeded("a");
        assert_eq!(retries.after_error("a"), Duration::from_millis(500));
        assert_eq!(retries.after_wait("a"), Duration::from_secs(30));
        assert_eq!(retries.after_wait("a"), Duration::from_secs(60));
    }
}
