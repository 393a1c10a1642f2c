//! The operators' HTTP endpoints during an end-to-end run: `/healthz`, `/readyz` and the
//! `/metrics` series docs/operations.md documents, with exactly the documented labels.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use dbtls_contract::DbKind;
use kube::api::{Api, DynamicObject, PostParams};
use testbed::apiserver::Verb;
use testbed::harness::http::get as http_get;
use testbed::harness::{Env, EnvOptions};

const DEADLINE: Duration = Duration::from_secs(60);

/// One sample of the Prometheus text format.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the sample lines (label values here never contain `,` or `"`).
fn parse_samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => {
                    let inner = rest.strip_suffix('}').unwrap();
                    let labels = inner
                        .split(',')
                        .filter(|p| !p.is_empty())
                        .map(|pair| {
                            let (k, v) = pair.split_once('=').unwrap();
                            (k.to_string(), v.trim_matches('"').to_string())
                        })
                        .collect();
                    (name, labels)
                }
                None => (series, BTreeMap::new()),
            };
            Sample {
                name: name.to_string(),
                labels,
                value: value.parse().unwrap(),
            }
        })
        .collect()
}

/// The samples of `name` whose labels include all of `want`.
fn matching<'a>(samples: &'a [Sample], name: &str, want: &[(&str, &str)]) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            want.iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect()
}

/// Every sample of `name` carries exactly the documented label names (plus `operator`).
fn assert_label_names(samples: &[Sample], name: &str, documented: &[&str]) {
    let want: BTreeSet<&str> = documented.iter().copied().chain(["operator"]).collect();
    let found: Vec<_> = samples.iter().filter(|s| s.name == name).collect();
    assert!(!found.is_empty(), "no {name} series");
    for s in found {
        let got: BTreeSet<&str> = s.labels.keys().map(String::as_str).collect();
        assert_eq!(got, want, "{name} labels");
    }
}

async fn metrics(env: &Env, which: &str) -> Vec<Sample> {
    let (code, body) = http_get(&env.metrics_url(which).unwrap(), "/metrics")
        .await
        .unwrap();
    assert_eq!(code, 200, "{which} /metrics");
    parse_samples(&body)
}

/// Waits until `which`'s /metrics has a sample of `name` with `labels`; returns the samples.
async fn wait_series(env: &Env, which: &str, name: &str, labels: &[(&str, &str)]) -> Vec<Sample> {
    let url = env.metrics_url(which).unwrap();
    env.eventually(&format!("{which}: {name}{labels:?}"), DEADLINE, || async {
        let (_, body) = http_get(&url, "/metrics").await?;
        let samples = parse_samples(&body);
        Ok((!matching(&samples, name, labels).is_empty()).then_some(samples))
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn health_readiness_and_the_documented_series() {
    let env = Env::start(EnvOptions::default()).await.unwrap();
    let Some(server) = env.api_server() else {
        return; // the error series needs the testbed's fault injection
    };
    for which in ["provisioner", "ops-manager"] {
        let url = env.metrics_url(which).unwrap();
        env.eventually(&format!("{which} /readyz"), DEADLINE, || async {
            Ok(http_get(&url, "/readyz")
                .await
                .ok()
                .filter(|(code, _)| *code == 200))
        })
        .await
        .unwrap();
        let (code, body) = http_get(&url, "/healthz").await.unwrap();
        assert_eq!((code, body.trim()), (200, "ok"), "{which} /healthz");
        let (code, _) = http_get(&url, "/nothing-here").await.unwrap();
        assert_eq!(code, 404);
    }
    env.create_ca_issuer("ca").await.unwrap();

    // Every server-side apply fails while the database is created: both operators count
    // reconcile errors (their series exist from the start, at zero).
    server.faults().set_error_rate(Some(Verb::Apply), 1.0);
    let kind = DbKind::MySQL;
    let resource = kind.api_resource();
    let db: DynamicObject =
        serde_yaml::from_str(&Env::tls_database(kind, "metered", "Issuer", "ca")).unwrap();
    Api::<DynamicObject>::namespaced_with(env.client(), env.namespace(), &resource)
        .create(&PostParams::default(), &db)
        .await
        .unwrap();
    for which in ["provisioner", "ops-manager"] {
        let url = env.metrics_url(which).unwrap();
        let samples = env
            .eventually(
                &format!("{which} counts a MySQL error"),
                DEADLINE,
                || async {
                    let (_, body) = http_get(&url, "/metrics").await?;
                    let samples = parse_samples(&body);
                    let errors: f64 = matching(
                        &samples,
                        "dbtls_reconcile_errors_total",
                        &[("kind", "MySQL")],
                    )
                    .iter()
                    .map(|s| s.value)
                    .sum();
                    Ok((errors >= 1.0).then_some(samples))
                },
            )
            .await
            .unwrap();
        assert_label_names(
            &samples,
            "dbtls_reconcile_errors_total",
            &["kind", "reason"],
        );
    }
    server.faults().reset();

    env.eventually("metered Ready", DEADLINE, || async {
        let c = env.condition(kind, "metered", "Ready").await?;
        Ok(c.filter(|c| c.status == "True").map(|_| ()))
    })
    .await
    .unwrap();

    let ns = env.namespace().to_string();
    let provisioner = wait_series(
        &env,
        "provisioner",
        "dbtls_databases",
        &[("kind", "MySQL"), ("state", "Ready")],
    )
    .await;
    assert_eq!(
        matching(
            &provisioner,
            "dbtls_databases",
            &[("kind", "MySQL"), ("state", "Ready")]
        )[0]
        .value,
        1.0
    );
    assert_label_names(&provisioner, "dbtls_databases", &["kind", "state"]);
    let ops = wait_series(
        &env,
        "ops-manager",
        "dbtls_certificates",
        &[("kind", "MySQL"), ("alias", "server"), ("ready", "true")],
    )
    .await;
    assert_label_names(&ops, "dbtls_certificates", &["kind", "alias", "ready"]);
    let database = [
        ("namespace", ns.as_str()),
        ("database", "metered"),
        ("alias", "server"),
    ];
    for name in [
        "dbtls_certificate_expiry_timestamp_seconds",
        "dbtls_certificate_renewal_timestamp_seconds",
    ] {
        let found = matching(&ops, name, &database);
        assert_eq!(found.len(), 1, "{name}{database:?}");
        assert!(found[0].value > 1.7e9, "{name} is a Unix time");
        assert_label_names(&ops, name, &["namespace", "database", "alias"]);
    }
    let expiry = matching(
        &ops,
        "dbtls_certificate_expiry_timestamp_seconds",
        &database,
    )[0]
    .value;
    let renewal = matching(
        &ops,
        "dbtls_certificate_renewal_timestamp_seconds",
        &database,
    )[0]
    .value;
    assert!(
        renewal < expiry,
        "renewal {renewal} not before expiry {expiry}"
    );

    for (which, samples) in [
        ("provisioner", metrics(&env, "provisioner").await),
        ("ops-manager", metrics(&env, "ops-manager").await),
    ] {
        assert!(
            samples
                .iter()
                .all(|s| s.labels.get("operator").map(String::as_str) == Some(which)),
            "{which}: a series without operator=\"{which}\""
        );
        let ok = matching(
            &samples,
            "dbtls_reconciles_total",
            &[("kind", "MySQL"), ("result", "ok")],
        );
        assert!(
            ok.first().is_some_and(|s| s.value >= 1.0),
            "{which}: no ok reconcile"
        );
        let failed = matching(
            &samples,
            "dbtls_reconciles_total",
            &[("kind", "MySQL"), ("result", "error")],
        );
        assert!(
            failed.first().is_some_and(|s| s.value >= 1.0),
            "{which}: errors not counted"
        );
        assert_label_names(&samples, "dbtls_reconciles_total", &["kind", "result"]);
        let count = matching(
            &samples,
            "dbtls_reconcile_duration_seconds_count",
            &[("kind", "MySQL")],
        );
        assert!(
            count.first().is_some_and(|s| s.value >= 2.0),
            "{which}: durations"
        );
        assert_label_names(
            &samples,
            "dbtls_reconcile_duration_seconds_count",
            &["kind"],
        );
        assert_label_names(
            &samples,
            "dbtls_reconcile_duration_seconds_bucket",
            &["kind", "le"],
        );
    }
}

/// A label matcher of an alert expression.
#[derive(Debug)]
struct Matcher {
    label: String,
    op: String,
    value: String,
}

/// The `dbtls_*` selectors of a PromQL expression: `(metric, matchers)`, and the labels its
/// aggregations group `by`.
fn selectors(expr: &str) -> (Vec<(String, Vec<Matcher>)>, Vec<String>) {
    let selector = regex::Regex::new(r"(dbtls_[a-zA-Z0-9_]+)(\{([^}]*)\})?").unwrap();
    let matcher =
        regex::Regex::new(r#"([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)""#).unwrap();
    let by = regex::Regex::new(r"by\s*\(([^)]*)\)").unwrap();
    let found = selector
        .captures_iter(expr)
        .map(|c| {
            let matchers = c
                .get(3)
                .map(|m| {
                    matcher
                        .captures_iter(m.as_str())
                        .map(|m| Matcher {
                            label: m[1].to_string(),
                            op: m[2].to_string(),
                            value: m[3].to_string(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            (c[1].to_string(), matchers)
        })
        .collect();
    let grouped = by
        .captures_iter(expr)
        .flat_map(|c| {
            c[1].split(',')
                .map(|l| l.trim().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    (found, grouped)
}

fn satisfies(sample: &Sample, m: &Matcher) -> bool {
    let value = sample
        .labels
        .get(&m.label)
        .map(String::as_str)
        .unwrap_or("");
    let full = |re: &str| regex::Regex::new(&format!("^(?:{re})$")).unwrap();
    match m.op.as_str() {
        "=" => value == m.value,
        "!=" => value != m.value,
        "=~" => full(&m.value).is_match(value),
        _ => !full(&m.value).is_match(value),
    }
}

/// Every alert of `deploy/prometheus-rules.yaml` can fire: each `dbtls_*` selector in its
/// expression matches a series the operators exported during a run that went through the
/// states the alerts watch (a database waiting for its TLS Secrets, then issued and ready), and
/// each label it groups by exists on those series. A matcher nothing can satisfy (a state that
/// is never exported) fails here.
#[tokio::test]
async fn every_alert_can_fire_on_the_series_the_operators_export() {
    let rules_path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus-rules.yaml");
    let rules: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(rules_path).unwrap()).unwrap();
    let env = Env::start(EnvOptions::default()).await.unwrap();
    // Waiting for TLS Secrets: the issuer does not exist yet.
    env.apply_yaml(&Env::tls_database(DbKind::MySQL, "db", "Issuer", "ca"))
        .await
        .unwrap();
    let mut seen = wait_series(
        &env,
        "provisioner",
        "dbtls_databases",
        &[("state", "WaitingForTLSSecrets")],
    )
    .await;
    env.create_ca_issuer("ca").await.unwrap();
    seen.extend(
        wait_series(
            &env,
            "provisioner",
            "dbtls_databases",
            &[("state", "Ready")],
        )
        .await,
    );
    seen.extend(
        wait_series(
            &env,
            "ops-manager",
            "dbtls_certificate_expiry_timestamp_seconds",
            &[],
        )
        .await,
    );
    seen.extend(
        wait_series(
            &env,
            "ops-manager",
            "dbtls_served_certificate_expiry_timestamp_seconds",
            &[],
        )
        .await,
    );
    seen.extend(
        wait_series(
            &env,
            "ops-manager",
            "dbtls_certificate_reloads_total",
            &[("result", "failure")],
        )
        .await,
    );

    let mut checked = 0;
    for group in rules["spec"]["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let alert = rule["alert"].as_str().unwrap();
            let expr = rule["expr"].as_str().unwrap();
            let (selectors, grouped) = selectors(expr);
            for (metric, matchers) in &selectors {
                let series: Vec<&Sample> = seen.iter().filter(|s| &s.name == metric).collect();
                assert!(
                    !series.is_empty(),
                    "{alert}: no series {metric} is ever exported"
                );
                assert!(
                    series
                        .iter()
                        .any(|s| matchers.iter().all(|m| satisfies(s, m))),
                    "{alert}: no exported {metric} series satisfies {matchers:?}"
                );
                for label in &grouped {
                    assert!(
                        series.iter().any(|s| s.labels.contains_key(label)),
                        "{alert}: {metric} has no label {label} to group by"
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 5, "only {checked} selectors checked");
}

#[test]
fn alert_selectors_are_parsed() {
    let (found, grouped) = selectors(
        "sum by (operator, kind) (rate(dbtls_reconcile_errors_total[5m])) / dbtls_databases{state=\"X\", kind=~\"My.*\"}",
    );
    assert_eq!(found.len(), 2);
    assert_eq!(found[1].0, "dbtls_databases");
    assert_eq!(found[1].1.len(), 2);
    assert_eq!(found[1].1[1].op, "=~");
    assert_eq!(grouped, ["operator", "kind"]);
    let sample = Sample {
        name: "dbtls_databases".into(),
        labels: [("kind".to_string(), "MySQL".to_string())].into(),
        value: 1.0,
    };
    assert!(satisfies(&sample, &found[1].1[1]));
    assert!(!satisfies(&sample, &found[1].1[0]));
}

/// Each operator counts its own API requests by verb, resource and code; on the testbed the
/// count agrees with the API server's request log.
#[tokio::test]
async fn the_operators_count_their_own_api_requests() {
    use testbed::harness::identities::OPS_MANAGER_USER;
    let env = Env::start(EnvOptions::default()).await.unwrap();
    env.create_ca_issuer("ca").await.unwrap();
    env.apply_yaml(&Env::tls_database(DbKind::MySQL, "counted", "Issuer", "ca"))
        .await
        .unwrap();
    env.eventually("counted Ready", DEADLINE, || async {
        let c = env
            .condition(DbKind::MySQL, "counted", "CertificatesReady")
            .await?;
        Ok(c.filter(|c| c.status == "True"))
    })
    .await
    .unwrap();
    let applies = |samples: &[Sample]| -> f64 {
        matching(
            samples,
            "dbtls_api_requests_total",
            &[("verb", "apply"), ("resource", "certificates")],
        )
        .iter()
        .map(|s| s.value)
        .sum()
    };
    let in_log = || {
        env.api_server().map(|s| {
            s.request_log()
                .snapshot()
                .iter()
                .filter(|r| {
                    r.user == OPS_MANAGER_USER
                        && r.verb == Verb::Apply
                        && r.resource == "certificates"
                        && r.subresource.is_none()
                })
                .count() as f64
        })
    };
    let before = in_log();
    let samples = metrics(&env, "ops-manager").await;
    let after = in_log();
    let counted = applies(&samples);
    assert!(counted >= 3.0, "one apply per alias at least: {counted}");
    if let (Some(before), Some(after)) = (before, after) {
        assert!(
            before <= counted && counted <= after,
            "the request log saw {before}..{after} applies, the ops-manager counted {counted}"
        );
    }
    assert_label_names(
        &samples,
        "dbtls_api_requests_total",
        &["verb", "resource", "code"],
    );
    let provisioner = metrics(&env, "provisioner").await;
    for verb in ["list", "watch"] {
        assert!(
            !matching(
                &provisioner,
                "dbtls_api_requests_total",
                &[("verb", verb), ("resource", "mysqls")]
            )
            .is_empty(),
            "provisioner: no {verb} of mysqls counted"
        );
    }
    assert!(
        matching(
            &provisioner,
            "dbtls_api_requests_total",
            &[("resource", "secrets")]
        )
        .iter()
        .any(|s| s.labels["code"].starts_with('2')),
        "provisioner: its Secret writes are counted with their codes"
    );
}
