//! A gauge family with a few series per database (`namespace`, `database` and one more label:
//! the alias, the pod), kept as a table and turned into series when scraped. prometheus's
//! `GaugeVec` gives every series its own copy of the family's descriptor (name, help, label
//! names): ~0.7 KB a series, the third largest cost of the ops-manager's heap at 1,000
//! databases (two gauges per Certificate).
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Gauge, LabelPair, Metric, MetricFamily, MetricType};

/// The labels that name a database's series, before the table's own third label.
pub const DATABASE_LABELS: [&str; 2] = ["namespace", "database"];

/// Clones share the table (as prometheus's vectors do): register one, write through another.
#[derive(Clone)]
pub struct GaugeTable {
    desc: Desc,
    /// The third label's name.
    label: &'static str,
    /// Per (namespace, database): the value of each series, by its third label.
    rows: Arc<Mutex<Rows>>,
}

/// Per database, its series sorted by their third label: a boxed slice, as a database has two or
/// three (a `BTreeMap` allocated a node for eleven, ~0.3 KB per database and table).
type Rows = HashMap<(Box<str>, Box<str>), Box<[(Box<str>, f64)]>>;

impl GaugeTable {
    /// The family `name` with labels `namespace`, `database` and `label`.
    pub fn new(name: &str, help: &str, label: &'static str) -> prometheus::Result<Self> {
        let labels = [DATABASE_LABELS[0], DATABASE_LABELS[1], label];
        Ok(Self {
            desc: Desc::new(
                name.into(),
                help.into(),
                labels.iter().map(|l| l.to_string()).collect(),
                HashMap::new(),
            )?,
            label,
            rows: Arc::default(),
        })
    }

    /// Makes `series` (third label, value) the database's series; any other it had is gone.
    pub fn replace<'a>(
        &self,
        namespace: &str,
        database: &str,
        series: impl IntoIterator<Item = (&'a str, f64)>,
    ) {
        // Through a map: one series per label, the last value given.
        let now: BTreeMap<&str, f64> = series.into_iter().collect();
        let now: Box<[(Box<str>, f64)]> = now.into_iter().map(|(k, v)| (k.into(), v)).collect();
        let mut rows = self.rows.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (namespace.into(), database.into());
        if now.is_empty() {
            rows.remove(&key);
        } else {
            rows.insert(key, now);
        }
    }

    /// The value of one series, if it exists.
    pub fn get(&self, namespace: &str, database: &str, label: &str) -> Option<f64> {
        let rows = self.rows.lock().unwrap_or_else(PoisonError::into_inner);
        rows.get(&(namespace.into(), database.into()))
            .and_then(|series| series.iter().find(|(l, _)| &**l == label).map(|(_, v)| *v))
    }
}

fn pair(name: &str, value: &str) -> LabelPair {
    let mut pair = LabelPair::default();
    pair.set_name(name.to_string());
    pair.set_value(value.to_string());
    pair
}

impl Collector for GaugeTable {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let rows = self.rows.lock().unwrap_or_else(PoisonError::into_inner);
        let mut metrics: Vec<Metric> = rows
            .iter()
            .flat_map(|((namespace, database), series)| {
                series.iter().map(move |(third, value)| {
                    let mut gauge = Gauge::default();
                    gauge.set_value(*value);
                    let mut labels = vec![
                        pair(DATABASE_LABELS[0], namespace),
                        pair(DATABASE_LABELS[1], database),
                        pair(self.label, third),
                    ];
                    // As prometheus's own vectors: label pairs by name.
                    labels.sort_by(|a, b| a.name().cmp(b.name()));
                    let mut metric = Metric::default();
                    metric.set_label(labels);
                    metric.set_gauge(gauge);
                    metric
                })
            })
            .collect();
        drop(rows);
        if metrics.is_empty() {
            return Vec::new();
        }
        // A stable order for scrapes and tests (the table is a hash map).
        metrics.sort_by(|a, b| {
            let values = |m: &Metric| -> Vec<String> {
                m.get_label()
                    .iter()
                    .map(|l| l.value().to_string())
                    .collect()
            };
            values(a).cmp(&values(b))
        });
        let mut family = MetricFamily::default();
        family.set_name(self.desc.fq_name.clone());
        family.set_help(self.desc.help.clone());
        family.set_field_type(MetricType::GAUGE);
        family.set_metric(metrics);
        vec![family]
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use prometheus::Registry;

    fn scrape(registry: &Registry) -> String {
        prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap()
    }

    #[test]
    fn a_databases_series_are_replaced_together_and_scraped_as_a_gauge_vector() {
        let registry = Registry::new();
        let table = GaugeTable::new("dbtls_x_seconds", "X, Unix time.", "alias").unwrap();
        let vector = prometheus::GaugeVec::new(
            prometheus::Opts::new("dbtls_y_seconds", "X, Unix time."),
            &["namespace", "database", "alias"],
        )
        .unwrap();
        registry.register(Box::new(table.clone())).unwrap();
        registry.register(Box::new(vector.clone())).unwrap();
        assert!(
            !scrape(&registry).contains("dbtls_x"),
            "no series, no family"
        );
        table.replace("demo", "my", [("server", 1.0), ("client", 2.0)]);
        table.replace("demo", "other", [("server", 3.0)]);
        table.replace("demo", "my", [("server", 4.0)]);
        assert_eq!(table.get("demo", "my", "client"), None, "replaced together");
        assert_eq!(table.get("demo", "my", "server"), Some(4.0));
        vector.with_label_values(&["demo", "my", "server"]).set(4.0);
        vector
            .with_label_values(&["demo", "other", "server"])
            .set(3.0);
        let text = scrape(&registry);
        let ours: Vec<&str> = text.lines().filter(|l| l.starts_with("dbtls_x")).collect();
        let theirs: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with("dbtls_y"))
            .map(|l| l.replace("dbtls_y", "dbtls_x"))
            .collect();
        assert_eq!(ours.len(), 2, "{text}");
        assert_eq!(ours, theirs, "the same lines as a GaugeVec's");
        assert!(text.contains("# TYPE dbtls_x_seconds gauge"), "{text}");
    }

    #[test]
    fn no_series_forgets_the_database() {
        let table = GaugeTable::new("dbtls_x_seconds", "X.", "pod").unwrap();
        table.replace("demo", "my", [("my-0", 1.0)]);
        table.replace("demo", "my", []);
        assert!(table.rows.lock().unwrap().is_empty());
        assert!(table.collect().is_empty());
    }
}
