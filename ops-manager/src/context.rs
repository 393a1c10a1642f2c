//! What every reconcile shares: the client, flags, metrics, the event recorder and the per-object
//! retry state.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use shared_types::contract::OPS_MANAGER_REPORTER;
use shared_types::runtime::coalesce::StatusCoalescer;
use shared_types::runtime::metrics::ReconcileMetrics;

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
        let reporter = Reporter {
            controller: OPS_MANAGER_REPORTER.to_string(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
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
    errors: Mutex<HashMap<String, u32>>,
    waits: Mutex<HashMap<String, u32>>,
}

const MAX_DELAY: Duration = Duration::from_secs(300);
const FIRST_ERROR_DELAY: Duration = Duration::from_millis(500);
const FIRST_WAIT_DELAY: Duration = Duration::from_secs(30);

impl Retries {
    pub fn after_error(&self, key: &str) -> Duration {
        next(&self.errors, key, FIRST_ERROR_DELAY)
    }
    pub fn after_wait(&self, key: &str) -> Duration {
        next(&self.waits, key, FIRST_WAIT_DELAY)
    }
    /// Forgets the error series after a successful reconcile.
    pub fn succeeded(&self, key: &str) {
        if let Ok(mut errors) = self.errors.lock() {
            errors.remove(key);
        }
    }
    /// Forgets the waiting series once nothing is missing any more.
    pub fn settled(&self, key: &str) {
        if let Ok(mut waits) = self.waits.lock() {
            waits.remove(key);
        }
    }
}

fn next(series: &Mutex<HashMap<String, u32>>, key: &str, first: Duration) -> Duration {
    let Ok(mut series) = series.lock() else {
        return MAX_DELAY;
    };
    let attempt = series.entry(key.to_string()).or_insert(0);
    let delay = first.saturating_mul(1u32 << (*attempt).min(16));
    *attempt = attempt.saturating_add(1);
    delay.min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_five_minutes_and_reset_on_success() {
        let retries = Retries::default();
        assert_eq!(retries.after_error("a"), Duration::from_millis(500));
        assert_eq!(retries.after_error("a"), Duration::from_secs(1));
        assert_eq!(retries.after_error("b"), Duration::from_millis(500));
        for _ in 0..20 {
            retries.after_error("a");
        }
        assert_eq!(retries.after_error("a"), MAX_DELAY);
        retries.succeeded("a");
        assert_eq!(retries.after_error("a"), Duration::from_millis(500));
        assert_eq!(retries.after_wait("a"), Duration::from_secs(30));
        assert_eq!(retries.after_wait("a"), Duration::from_secs(60));
    }
}
