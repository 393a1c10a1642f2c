//! What the running servers present, as metrics (docs/operations.md):
//! `dbtls_served_certificate_expiry_timestamp_seconds{namespace, database, pod}` — when the
//! certificate a pod presents expires — and
//! `dbtls_certificate_reloads_total{kind, method, result}` — reloads and restarts made to bring
//! pods to the current certificate.
use dbtls_contract::DbKind;
use dbtls_runtime::gauge_table::GaugeTable;
use prometheus::{IntCounterVec, Opts, Registry};

/// `method` label values.
pub const RELOAD: &str = "reload";
pub const RESTART: &str = "restart";
/// `result` label values.
pub const SUCCESS: &str = "success";
pub const FAILURE: &str = "failure";

pub struct ServingMetrics {
    served_expiry: GaugeTable,
    reloads: IntCounterVec,
}

impl ServingMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let served_expiry = GaugeTable::new(
            "dbtls_served_certificate_expiry_timestamp_seconds",
            "When the certificate a pod presents to its clients expires, Unix time.",
            "pod",
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
        let series = served
            .iter()
            .map(|(pod, expiry)| (pod.as_str(), *expiry as f64));
        self.served_expiry.replace(namespace, database, series);
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
        let series = |pod: &str| metrics.served_expiry.get("ns", "db", pod);
        assert_eq!(series("db-1"), Some(200.0));
        metrics.record("ns", "db", &[("db-0".into(), 150)]);
        assert_eq!(series("db-0"), Some(150.0));
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
