//! Reconcile metrics both operators expose (documented in docs/operations.md).
use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

/// Metrics of the reconcile loops of one operator.
#[derive(Clone)]
pub struct ReconcileMetrics {
    pub reconciles: IntCounterVec,
    pub errors: IntCounterVec,
    pub duration: HistogramVec,
    pub databases: IntGaugeVec,
}

impl ReconcileMetrics {
    /// Registers `dbtls_*` series on `registry`; `operator` is a constant label.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let reconciles = IntCounterVec::new(
            Opts::new(
                "dbtls_reconciles_total",
                "Reconciles by database kind and result (ok, error).",
            ),
            &["kind", "result"],
        )?;
        let errors = IntCounterVec::new(
            Opts::new(
                "dbtls_reconcile_errors_total",
                "Reconcile errors by database kind and reason.",
            ),
            &["kind", "reason"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "dbtls_reconcile_duration_seconds",
                "Time one reconcile takes.",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["kind"],
        )?;
        let databases = IntGaugeVec::new(
            Opts::new(
                "dbtls_databases",
                "Databases by kind and state (phase, or the waiting condition).",
            ),
            &["kind", "state"],
        )?;
        registry.register(Box::new(reconciles.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(databases.clone()))?;
        Ok(Self {
            reconciles,
            errors,
            duration,
            databases,
        })
    }

    /// Creates the series of `kinds` at zero, each error reason included, so that rates and
    /// alerts over them work before the first reconcile or error (an absent series is no zero).
    pub fn init_series(&self, kinds: &[&str], error_reasons: &[&str]) {
        for kind in kinds {
            for result in ["ok", "error"] {
                self.reconciles.with_label_values(&[kind, result]);
            }
            for reason in error_reasons {
                self.errors.with_label_values(&[kind, reason]);
            }
        }
    }

    pub fn observe_ok(&self, kind: &str, took: Duration) {
        self.reconciles.with_label_values(&[kind, "ok"]).inc();
        self.duration
            .with_label_values(&[kind])
            .observe(took.as_secs_f64());
    }

    pub fn observe_error(&self, kind: &str, reason: &str, took: Duration) {
        self.reconciles.with_label_values(&[kind, "error"]).inc();
        self.errors.with_label_values(&[kind, reason]).inc();
        self.duration
            .with_label_values(&[kind])
            .observe(took.as_secs_f64());
    }
}

/// A registry whose series all carry `operator="<name>"`.
pub fn registry(operator: &str) -> prometheus::Result<Registry> {
    let labels = std::collections::HashMap::from([("operator".to_string(), operator.to_string())]);
    Registry::new_custom(None, Some(labels))
}
