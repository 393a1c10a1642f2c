//! What the running servers present, as metrics (docs/operations.md):
//! `dbtls_served_certificate_expiry_timestamp_seconds{namespace, database, pod}` — when the
//! certificate a pod presents expires — and
//! `dbtls_certificate_reloads_total{kind, method, result}` — reloads and restarts made to bring
//! pods to the current certificate.
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use dbtls_contract::DbKind;
use prometheus::{GaugeVec, IntCounterVec, Opts, Registry};

/// `method` label values.
pub const RELOAD: &str = "reload";
pub const RESTART: &str = "restart";
/// `result` label values.
pub const SUCCESS: &str = "success";
pub const FAILURE: &str = "failure";

pub struct ServingMetrics {
    served_expiry: GaugeVec,
    reloads: IntCounterVec,
    /// The pods with a series, per (namespace, database), to remove those that are gone.
    known: Mutex<BTreeMap<(String, String), BTreeSet<String>>>,
}

impl ServingMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let served_expiry = GaugeVec::new(
            Opts::new(
                "dbtls_served_certificate_expiry_timestamp_seconds",
                "When the certificate a pod presents to its clients expires, Unix time.",
            ),
            &["namespace", "database", "pod"],
        )?;
        let reloads = IntCounterVec::new(
            Opts::new(
                "dbtls_certificate_reloads_total",
                "Reloads and restarts made to bring pods to the current certificate, by result.",
            ),
            &["kind", "method", "result"],
        )?;
        registry.register(Box::new(served_expiry.clone()))?;
        registry.register(Box::new(reloads.clone()))?;
        // Every series exists from the start, so that rate() and alerts see a zero.
        for kind in DbKind::ALL {
            for method in [RELOAD, RESTART] {
                for result in [SUCCESS, FAILURE] {
                    reloads.with_label_values(&[kind.profile().kind, method, result]);
                }
            }
        }
        Ok(Self {
            served_expiry,
            reloads,
            known: Mutex::default(),
        })
    }

    pub fn count(&self, kind: DbKind, method: &str, result: &str) {
        self.reloads
            .with_label_values(&[kind.profile().kind, method, result])
            .inc();
    }

    /// Records what each pod of a database presents (`(pod, expiry)`); pods not listed lose
    /// their series.
    pub fn record(&self, namespace: &str, database: &str, served: &[(String, i64)]) {
        let Ok(mut known) = self.known.lock() else {
            return;
        };
        let key = (namespace.to_string(), database.to_string());
        let now: BTreeSet<String> = served.iter().map(|(pod, _)| pod.clone()).collect();
        for gone in known.get(&key).into_iter().flatten() {
            if !now.contains(gone) {
                let _ = self
                    .served_expiry
                    .remove_label_values(&[namespace, database, gone]);
            }
        }
        for (pod, expiry) in served {
            self.served_expiry
                .with_label_values(&[namespace, database, pod])
                .set(*expiry as f64);
        }
        if now.is_empty() {
            known.remove(&key);
        } else {
            known.insert(key, now);
        }
    }

    /// Removes every series of a database.
    pub fn forget(&self, namespace: &str, database: &str) {
        self.record(namespace, database, &[]);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_pod_that_goes_loses_its_series() {
        let registry = Registry::new();
        let metrics = ServingMetrics::register(&registry).unwrap();
        metrics.record("ns", "db", &[("db-0".into(), 100), ("db-1".into(), 200)]);
        let series = |pod: &str| {
            metrics
                .served_expiry
                .get_metric_with_label_values(&["ns", "db", pod])
                .map(|g| g.get())
        };
        assert_eq!(series("db-1").unwrap(), 200.0);
        metrics.record("ns", "db", &[("db-0".into(), 150)]);
        assert_eq!(series("db-0").unwrap(), 150.0);
        let families = registry.gather();
        let expiry = families
            .iter()
            .find(|f| f.name() == "dbtls_served_certificate_expiry_timestamp_seconds")
            .unwrap();
        assert_eq!(expiry.get_metric().len(), 1, "db-1's series is gone");
        metrics.forget("ns", "db");
        let families = registry.gather();
        assert!(
            families
                .iter()
                .all(|f| f.name() != "dbtls_served_certificate_expiry_timestamp_seconds")
        );
        metrics.count(DbKind::MySQL, RELOAD, SUCCESS);
        assert_eq!(
            metrics
                .reloads
                .with_label_values(&["MySQL", RELOAD, SUCCESS])
                .get(),
            1
        );
    }
}
