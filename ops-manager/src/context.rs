//! What every reconcile shares: the client, the watch caches, flags, metrics, the status
//! writer and the per-database retry state.

use std::time::Duration;

use dbtls_contract::conditions::Writer;
use dbtls_contract::{OPS_MANAGER_MANAGER, OPS_MANAGER_REPORTER};
use dbtls_runtime::backoff::BackoffSeries;
use dbtls_runtime::key::DbKey;
use dbtls_runtime::metrics::ReconcileMetrics;
use dbtls_runtime::status::StatusWriter;
use kube::Client;

use crate::caches::Caches;
use crate::metrics::CertificateMetrics;
use crate::serving::Serving;

/// The Event action of the ops-manager's Events.
pub const ACTION: &str = "ReconcileCertificates";

pub struct Context {
    pub client: Client,
    pub caches: Caches,
    pub cluster_domain: String,
    pub reconcile_metrics: ReconcileMetrics,
    pub certificate_metrics: CertificateMetrics,
    pub status: StatusWriter,
    pub retries: Retries,
    /// What the running servers present, and bringing them to the current certificate.
    pub serving: Serving,
    /// The OpsRequest statuses this process wrote (ahead of the watch cache).
    pub ops_written: crate::ops_request::status::Written,
    /// The TLS Secrets this process adopted (ahead of the watch cache).
    pub adopted: crate::ahead_of_cache::Adopted,
    /// The CA bundle Secrets this process wrote (ahead of the watch cache).
    pub bundles: crate::ahead_of_cache::AheadOfCache<crate::trust::WrittenBundle>,
}

impl Context {
    pub fn new(
        client: Client,
        caches: Caches,
        cluster_domain: String,
        reconcile_metrics: ReconcileMetrics,
        certificate_metrics: CertificateMetrics,
        serving: Serving,
        progress_interval: std::time::Duration,
    ) -> Self {
        Self {
            status: StatusWriter::new(
                client.clone(),
                Writer::OpsManager,
                OPS_MANAGER_MANAGER,
                OPS_MANAGER_REPORTER,
                ACTION,
                progress_interval,
            ),
            client,
            caches,
            cluster_domain,
            reconcile_metrics,
            certificate_metrics,
            retries: Retries::default(),
            serving,
            ops_written: Default::default(),
            adopted: Default::default(),
            bundles: Default::default(),
        }
    }
}

/// Exponential backoff per database: one series for errors (fast first retry), one for waiting
/// on objects no watch reports reliably (30 s growing to 5 min).
#[derive(Default)]
pub struct Retries {
    errors: BackoffSeries<DbKey>,
    waits: BackoffSeries<DbKey>,
}

const FIRST_ERROR_DELAY: Duration = Duration::from_millis(500);
const FIRST_WAIT_DELAY: Duration = Duration::from_secs(30);

impl Retries {
    pub fn after_error(&self, key: &DbKey) -> Duration {
        self.errors.next(key, FIRST_ERROR_DELAY)
    }
    pub fn after_wait(&self, key: &DbKey) -> Duration {
        self.waits.next(key, FIRST_WAIT_DELAY)
    }
    /// Forgets the error series after a successful reconcile.
    pub fn succeeded(&self, key: &DbKey) {
        self.errors.reset(key);
    }
    /// Forgets the waiting series once nothing is missing any more.
    pub fn settled(&self, key: &DbKey) {
        self.waits.reset(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbtls_runtime::backoff::CAP;

    fn key(name: &str) -> DbKey {
        DbKey::new("MySQL", "ns", name)
    }

    #[test]
    fn delays_grow_to_five_minutes_and_reset_on_success() {
        let retries = Retries::default();
        let (a, b) = (key("a"), key("b"));
        assert_eq!(retries.after_error(&a), Duration::from_millis(500));
        assert_eq!(retries.after_error(&a), Duration::from_secs(1));
        assert_eq!(retries.after_error(&b), Duration::from_millis(500));
        for _ in 0..20 {
            retries.after_error(&a);
        }
        assert_eq!(retries.after_error(&a), CAP);
        retries.succeeded(&a);
        assert_eq!(retries.after_error(&a), Duration::from_millis(500));
        assert_eq!(retries.after_wait(&a), Duration::from_secs(30));
        assert_eq!(retries.after_wait(&a), Duration::from_secs(60));
    }
}
