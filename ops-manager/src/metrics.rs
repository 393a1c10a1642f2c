//! Certificate metrics (docs/operations.md), next to the shared `ReconcileMetrics`:
//! `dbtls_certificates{kind, alias, ready}`, and per database and alias the expiry and renewal
//! times cert-manager reports in the Certificate status.

use std::collections::HashMap;
use std::sync::Mutex;

use dbtls_runtime::gauge_table::GaugeTable;
use prometheus::{IntGaugeVec, Opts, Registry};

use crate::db::DbRef;
use crate::plan::AliasReport;

/// A database: (namespace, name).
type DbKey = (Box<str>, Box<str>);

/// A database's aliases and what each counts as: a boxed slice, as a database has two or three
/// (a `BTreeMap` allocated a node for eleven, ~0.4 KB per database).
type Aliases = Box<[(&'static str, Series)]>;

#[derive(Clone)]
struct Series {
    kind: &'static str,
    ready: bool,
}

pub struct CertificateMetrics {
    certificates: IntGaugeVec,
    expiry: GaugeTable,
    renewal: GaugeTable,
    /// What each alias of each database currently counts as, so that the gauge can move an
    /// alias from one series to the other. By database: a reconcile looks at its own aliases
    /// only (scanning every alias of every database made each reconcile cost O(databases)).
    known: Mutex<HashMap<DbKey, Aliases>>,
}

impl CertificateMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let certificates = IntGaugeVec::new(
            Opts::new(
                "dbtls_certificates",
                "Certificates the ops-manager manages, by database kind, alias and readiness.",
            ),
            &["kind", "alias", "ready"],
        )?;
        let expiry = GaugeTable::new(
            "dbtls_certificate_expiry_timestamp_seconds",
            "When the issued certificate expires (Certificate status.notAfter), Unix time.",
            "alias",
        )?;
        let renewal = GaugeTable::new(
            "dbtls_certificate_renewal_timestamp_seconds",
            "When cert-manager will renew the certificate (status.renewalTime), Unix time.",
            "alias",
        )?;
        registry.register(Box::new(certificates.clone()))?;
        registry.register(Box::new(expiry.clone()))?;
        registry.register(Box::new(renewal.clone()))?;
        Ok(Self {
            certificates,
            expiry,
            renewal,
            known: Mutex::default(),
        })
    }

    /// Records the current state of every alias of `db` (aliases not listed are forgotten).
    pub fn record(&self, db: &DbRef, reports: &[AliasReport]) {
        let kind = db.kind.profile().kind;
        let Ok(mut known) = self.known.lock() else {
            return;
        };
        let key: DbKey = (db.namespace.as_str().into(), db.name.as_str().into());
        let before = known.remove(&key).unwrap_or_default();
        for (alias, series) in &before {
            if !reports.iter().any(|r| r.alias == *alias) {
                self.count(series, alias, -1);
            }
        }
        let mut now: Vec<(&'static str, Series)> = Vec::with_capacity(reports.len());
        for report in reports {
            let series = Series {
                kind,
                ready: report.ready,
            };
            // One series per alias: a second report of an alias replaces the first.
            let was = match now.iter().position(|(alias, _)| *alias == report.alias) {
                Some(at) => Some(now.remove(at).1),
                None => before
                    .iter()
                    .find(|(alias, _)| *alias == report.alias)
                    .map(|(_, was)| was.clone()),
            };
            match was {
                Some(was) if was.ready == series.ready => {}
                Some(was) => {
                    self.count(&was, report.alias, -1);
                    self.count(&series, report.alias, 1);
                }
                None => self.count(&series, report.alias, 1),
            }
            now.push((report.alias, series));
        }
        let times = |time: fn(&AliasReport) -> Option<&str>| {
            reports
                .iter()
                .filter_map(move |r| unix_time(time(r)).map(|t| (r.alias, t)))
        };
        self.expiry
            .replace(&db.namespace, &db.name, times(|r| r.not_after.as_deref()));
        self.renewal.replace(
            &db.namespace,
            &db.name,
            times(|r| r.renewal_time.as_deref()),
        );
        if !now.is_empty() {
            known.insert(key, now.into_boxed_slice());
        }
    }

    /// Removes every series of a database that is gone (or no longer has TLS).
    pub fn forget(&self, db: &DbRef) {
        let Ok(mut known) = self.known.lock() else {
            return;
        };
        let key: DbKey = (db.namespace.as_str().into(), db.name.as_str().into());
        for (alias, series) in known.remove(&key).unwrap_or_default() {
            self.count(&series, alias, -1);
        }
        self.expiry.replace(&db.namespace, &db.name, []);
        self.renewal.replace(&db.namespace, &db.name, []);
    }

    fn count(&self, series: &Series, alias: &str, delta: i64) {
        let ready = if series.ready { "true" } else { "false" };
        self.certificates
            .with_label_values(&[series.kind, alias, ready])
            .add(delta);
    }
}

/// An RFC 3339 time of a Certificate's status, as Unix time (none: no series).
fn unix_time(value: Option<&str>) -> Option<f64> {
    value
        .and_then(|v| chrono::DateTime::parse_from_rfc3339(v).ok())
        .map(|time| time.timestamp() as f64)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use dbtls_contract::DbKind;

    fn db() -> DbRef {
        DbRef {
            kind: DbKind::MySQL,
            name: "my".into(),
            namespace: "demo".into(),
            uid: "u".into(),
        }
    }

    fn report(alias: &'static str, ready: bool, not_after: Option<&str>) -> AliasReport {
        AliasReport {
            alias,
            ready,
            not_after: not_after.map(String::from),
            renewal_time: None,
        }
    }

    #[test]
    fn an_alias_moves_between_ready_series_and_is_forgotten_with_its_database() {
        let registry = Registry::new();
        let metrics = CertificateMetrics::register(&registry).unwrap();
        let gauge = |ready: &str| {
            metrics
                .certificates
                .with_label_values(&["MySQL", "server", ready])
                .get()
        };
        metrics.record(&db(), &[report("server", false, None)]);
        assert_eq!((gauge("false"), gauge("true")), (1, 0));
        metrics.record(
            &db(),
            &[report("server", true, Some("2030-01-01T00:00:00Z"))],
        );
        metrics.record(
            &db(),
            &[report("server", true, Some("2030-01-01T00:00:00Z"))],
        );
        assert_eq!((gauge("false"), gauge("true")), (0, 1));
        assert_eq!(
            metrics.expiry.get("demo", "my", "server"),
            Some(1_893_456_000.0)
        );
        metrics.forget(&db());
        assert_eq!((gauge("false"), gauge("true")), (0, 0));
        assert_eq!(metrics.expiry.get("demo", "my", "server"), None);
        // An alias reported twice counts once, as its last report.
        metrics.record(
            &db(),
            &[report("server", false, None), report("server", true, None)],
        );
        assert_eq!((gauge("false"), gauge("true")), (0, 1));
        metrics.record(&db(), &[]);
        assert_eq!((gauge("false"), gauge("true")), (0, 0), "none reported");
    }

    #[test]
    fn an_alias_no_longer_reported_loses_its_series_and_other_databases_keep_theirs() {
        let registry = Registry::new();
        let metrics = CertificateMetrics::register(&registry).unwrap();
        let other = DbRef {
            name: "other".into(),
            ..db()
        };
        let expiry = |db: &str, alias: &str| metrics.expiry.get("demo", db, alias);
        let at = Some("2030-01-01T00:00:00Z");
        metrics.record(
            &db(),
            &[report("server", true, at), report("client", true, at)],
        );
        metrics.record(&other, &[report("client", true, at)]);
        metrics.record(&db(), &[report("server", true, at)]);
        let ready_clients = metrics
            .certificates
            .with_label_values(&["MySQL", "client", "true"])
            .get();
        assert_eq!(ready_clients, 1, "only the other database's client counts");
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap();
        let series = |db: &str, alias: &str| {
            format!(
                "dbtls_certificate_expiry_timestamp_seconds{{alias=\"{alias}\",database=\"{db}\",namespace=\"demo\"}}"
            )
        };
        assert!(text.contains(&series("other", "client")), "{text}");
        let gone = !text.contains(&series("my", "client"));
        assert!(gone, "the dropped alias's expiry series is removed");
        assert_eq!(expiry("other", "client"), Some(1_893_456_000.0));
        assert_eq!(expiry("my", "server"), Some(1_893_456_000.0));
    }
}
