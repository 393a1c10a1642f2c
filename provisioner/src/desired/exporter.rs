//! The metrics exporter `spec.monitor` asks for (KubeDB's `prometheus.io/*` agents): a sidecar
//! running the engine's exporter, connecting to the server over TLS with the
//! `metrics-exporter` certificate, and the stats Service `<db>-stats` Prometheus scrapes.
//!
//! MySQL and PerconaXtraDB run `mysqld_exporter` with KubeDB's layout: volume
//! `exporter-tls-volume` at `/etc/mysql/certs` in the exporter container (`ca.crt`,
//! `exporter.crt`, `exporter.key`, and `exporter.cnf` from the config Secret), started with
//! `--config.my-cnf=/etc/mysql/certs/exporter.cnf`. The credentials come from the auth Secret
//! as environment (never written into the config Secret). MSSQLServer runs `sql_exporter`
//! ([`super::sql_exporter`]); ProxySQL and SingleStore serve metrics from the server itself
//! ([`super::builtin_exporter`]). Each kind's default port is KubeDB's.
use std::collections::BTreeMap;

use dbtls_contract::DbKind;
use dbtls_contract::api::Opaque;
use dbtls_contract::monitoring::{
    Endpoint, NamespaceSelector, SecretOrConfigMap, ServiceMonitor, ServiceMonitorSpec, TlsConfig,
};
use dbtls_contract::{labels, names};
use k8s_openapi::api::core::v1::{
    Container, EnvVar, HTTPGetAction, Probe, ProjectedVolumeSource, SecretKeySelector, Service,
    ServicePort, ServiceSpec, Volume, VolumeMount, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use super::auth::{PASSWORD_KEY, USERNAME_KEY};
use super::builtin_exporter::{self, Builtin};
use super::child_meta;
use super::pod::{secret_env, tcp_port};
use super::server_tls::{CA_KEY, CERT_KEY, KEY_KEY, item, projection};
use super::sql_exporter::{self, ServerTrust};
use crate::facts::DbFacts;

pub const CONTAINER: &str = "exporter";
/// KubeDB's exporter port for the MySQL family, and the stats Service's port name.
pub const DEFAULT_PORT: i32 = 56790;
/// KubeDB's exporter port for MSSQLServer (`sql_exporter`'s own default).
pub const MSSQL_PORT: i32 = 9399;
pub const PORT_NAME: &str = "metrics";
/// The exporter's config file in the config Secret `<db>-config`.
pub const CNF: &str = "exporter.cnf";
pub const VOLUME: &str = "exporter-tls-volume";
pub const DIR: &str = "/etc/mysql/certs";
/// `mysqld_exporter` 0.15 reads the password from this variable, the user from its flag.
const PASSWORD_ENV: &str = "MYSQLD_EXPORTER_PASSWORD";
const USER_ENV: &str = "EXPORTER_USER";
pub const MYSQLD_EXPORTER_IMAGE: &str = "prom/mysqld-exporter:v0.15.1";

/// KubeDB's monitoring agents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Agent {
    /// `prometheus.io/operator`: a Prometheus Operator `ServiceMonitor` selects the stats Service.
    PrometheusOperator,
    /// `prometheus.io/builtin`: a plain Prometheus discovers the stats Service by annotations.
    PrometheusBuiltin,
    /// `prometheus.io`: the stats Service only; the user points Prometheus at it.
    Prometheus,
}

impl Agent {
    pub const ALL: [Agent; 3] = [
        Agent::PrometheusOperator,
        Agent::PrometheusBuiltin,
        Agent::Prometheus,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Agent::PrometheusOperator => "prometheus.io/operator",
            Agent::PrometheusBuiltin => "prometheus.io/builtin",
            Agent::Prometheus => "prometheus.io",
        }
    }
}

/// What `spec.monitor` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Monitor {
    pub agent: Agent,
    /// `spec.monitor.prometheus.exporter.port`.
    pub port: i32,
    /// `spec.monitor.prometheus.exporter.args`, after ours.
    pub args: Vec<String>,
    /// `spec.monitor.prometheus.serviceMonitor.labels`: what a Prometheus selects it by.
    pub service_monitor_labels: BTreeMap<String, String>,
    /// `spec.monitor.prometheus.serviceMonitor.interval`.
    pub interval: Option<String>,
}

/// The label that tells the stats Service from the database's other Services (KubeDB's).
pub const ROLE_LABEL: &str = "kubedb.com/role";
pub const ROLE_STATS: &str = "stats";

/// A field of `spec.monitor` that cannot be used, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MonitorProblem {
    pub field: &'static str,
    pub why: String,
}

fn problem(field: &'static str, why: impl Into<String>) -> MonitorProblem {
    MonitorProblem {
        field,
        why: why.into(),
    }
}

/// KubeDB's default `spec.monitor.prometheus.exporter.port` for `kind`.
pub fn default_port(kind: DbKind) -> i32 {
    match kind {
        DbKind::MySQL | DbKind::PerconaXtraDB => DEFAULT_PORT,
        DbKind::MSSQLServer => MSSQL_PORT,
        DbKind::ProxySQL => builtin_exporter::PROXYSQL_PORT,
        DbKind::Singlestore => builtin_exporter::SINGLESTORE_PORT,
    }
}

/// Ports the server itself listens on, which the exporter shares a network namespace with.
fn server_ports(kind: DbKind) -> Vec<i32> {
    let mut ports = vec![kind.profile().port];
    if kind == DbKind::ProxySQL {
        ports.push(builtin_exporter::PROXYSQL_ADMIN_PORT);
    }
    ports
}

/// `spec.monitor` of a database of `kind`, read; None when it is not set.
pub fn monitor(spec: Option<&Opaque>, kind: DbKind) -> Result<Option<Monitor>, MonitorProblem> {
    let Some(spec) = spec else {
        return Ok(None);
    };
    let prometheus = |section: &str| spec.0.get("prometheus").and_then(|p| p.get(section));
    let exporter = prometheus("exporter");
    let service_monitor = prometheus("serviceMonitor");
    Ok(Some(Monitor {
        agent: agent(spec.0.get("agent"))?,
        port: port(exporter.and_then(|e| e.get("port")), kind)?,
        args: args(exporter.and_then(|e| e.get("args")))?,
        service_monitor_labels: service_monitor_labels(
            service_monitor.and_then(|m| m.get("labels")),
        )?,
        interval: interval(service_monitor.and_then(|m| m.get("interval")))?,
    }))
}

fn agent(value: Option<&Value>) -> Result<Agent, MonitorProblem> {
    let field = "spec.monitor.agent";
    let known = || Agent::ALL.map(Agent::as_str).join(", ");
    match value {
        None | Some(Value::Null) => Err(problem(
            field,
            format!("is required; use one of {}", known()),
        )),
        Some(Value::String(agent)) => Agent::ALL
            .into_iter()
            .find(|a| a.as_str() == agent)
            .ok_or_else(|| {
                problem(
                    field,
                    format!("{agent:?} is not a known agent; use one of {}", known()),
                )
            }),
        Some(other) => Err(problem(field, format!("must be a string, not {other}"))),
    }
}

fn port(value: Option<&Value>, kind: DbKind) -> Result<i32, MonitorProblem> {
    let field = "spec.monitor.prometheus.exporter.port";
    let port = match value {
        None | Some(Value::Null) => return Ok(default_port(kind)),
        Some(port) => port
            .as_i64()
            .and_then(|p| i32::try_from(p).ok())
            .filter(|p| (1..=65535).contains(p))
            .ok_or_else(|| problem(field, format!("{port} is not a port number (1-65535)")))?,
    };
    if server_ports(kind).contains(&port) {
        return Err(problem(
            field,
            format!("{port} is a port the {kind} server listens on; choose another"),
        ));
    }
    Ok(port)
}

fn args(value: Option<&Value>) -> Result<Vec<String>, MonitorProblem> {
    let strings = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|a| a.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>(),
        Some(_) => None,
    };
    strings.ok_or_else(|| {
        problem(
            "spec.monitor.prometheus.exporter.args",
            "must be a list of strings",
        )
    })
}

fn service_monitor_labels(
    value: Option<&Value>,
) -> Result<BTreeMap<String, String>, MonitorProblem> {
    let labels = match value {
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(Value::Object(labels)) => labels
            .iter()
            .map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect::<Option<BTreeMap<_, _>>>(),
        Some(_) => None,
    };
    labels.ok_or_else(|| {
        problem(
            "spec.monitor.prometheus.serviceMonitor.labels",
            "must map label names to strings",
        )
    })
}

fn interval(value: Option<&Value>) -> Result<Option<String>, MonitorProblem> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(i)) => Ok(Some(i.clone())),
        Some(other) => Err(problem(
            "spec.monitor.prometheus.serviceMonitor.interval",
            format!("must be a duration such as 30s, not {other}"),
        )),
    }
}

/// The TLS the exporter connects with: the `metrics-exporter` Secret (None where the kind has
/// none, as MSSQLServer) and the CA bundle (None for an ACME server certificate).
#[derive(Clone, Copy, Debug)]
pub struct ExporterTls<'a> {
    pub secret: Option<&'a str>,
    pub ca_bundle: Option<&'a str>,
}

/// Where `spec.monitor`'s metrics come from.
#[derive(Clone, Debug, PartialEq)]
pub enum Exporter {
    /// A container next to the server (MySQL, PerconaXtraDB, MSSQLServer). Both boxed: a
    /// `Container` is kilobytes, a `Volume` nearly one.
    Sidecar(Box<Sidecar>),
    /// The server's own (ProxySQL, SingleStore).
    Builtin(Box<Builtin>),
}

impl Exporter {
    /// The files it needs in the config Secret.
    pub fn config_files(&self) -> &BTreeMap<String, String> {
        match self {
            Exporter::Sidecar(s) => &s.config_files,
            Exporter::Builtin(b) => &b.config_files,
        }
    }
}

/// The exporter container, its volume and its config file.
#[derive(Clone, Debug, PartialEq)]
pub struct Sidecar {
    pub container: Container,
    pub volume: Volume,
    pub config_files: BTreeMap<String, String>,
}

/// `exporter.cnf`: where the server is and, with TLS, the exporter's certificate.
pub fn cnf(port: i32, tls: bool) -> String {
    let mut cnf = format!("[client]\nhost=127.0.0.1\nport={port}\n");
    if tls {
        cnf.push_str(&format!(
            "ssl-ca={DIR}/{CA_KEY}\nssl-cert={DIR}/exporter.crt\nssl-key={DIR}/exporter.key\n"
        ));
    }
    cnf
}

/// The exporter sidecar of `db`, or None for the kinds whose server exports its own metrics.
pub fn sidecar(
    db: &DbFacts<'_>,
    monitor: &Monitor,
    auth_secret: &str,
    tls: Option<ExporterTls<'_>>,
) -> Option<Sidecar> {
    let server_port = db.kind.profile().port;
    match db.kind {
        DbKind::MySQL | DbKind::PerconaXtraDB => {
            // mysqld_exporter connects with TLS only with its own certificate and the CA.
            let tls = tls.and_then(|t| Some((t.secret?, t.ca_bundle?)));
            Some(mysqld_sidecar(db, server_port, monitor, auth_secret, tls))
        }
        DbKind::MSSQLServer => {
            let trust = match tls {
                None => ServerTrust::Plain,
                Some(ExporterTls {
                    ca_bundle: Some(bundle),
                    ..
                }) => ServerTrust::Ca(bundle),
                Some(_) => ServerTrust::Public,
            };
            Some(sql_exporter::sidecar(
                &db.name,
                server_port,
                monitor,
                auth_secret,
                trust,
            ))
        }
        DbKind::ProxySQL | DbKind::Singlestore => None,
    }
}

/// `mysqld_exporter` with `exporter.cnf`; `tls` is the metrics-exporter Secret and CA bundle.
fn mysqld_sidecar(
    db: &DbFacts<'_>,
    server_port: i32,
    monitor: &Monitor,
    auth_secret: &str,
    tls: Option<(&str, &str)>,
) -> Sidecar {
    let mut sources = Vec::new();
    if let Some((secret, ca_bundle)) = tls {
        sources.push(projection(ca_bundle, vec![item(CA_KEY, CA_KEY)]));
        sources.push(projection(
            secret,
            vec![
                item(CERT_KEY, "exporter.crt"),
                item(KEY_KEY, "exporter.key"),
            ],
        ));
    }
    sources.push(projection(
        &names::config_secret(&db.name),
        vec![item(CNF, CNF)],
    ));
    assemble(SidecarParts {
        image: MYSQLD_EXPORTER_IMAGE,
        args: vec![
            format!("--config.my-cnf={DIR}/{CNF}"),
            format!("--mysqld.username=$({USER_ENV})"),
        ],
        env: vec![
            secret_env(USER_ENV, auth_secret, USERNAME_KEY),
            secret_env(PASSWORD_ENV, auth_secret, PASSWORD_KEY),
        ],
        monitor,
        ready_path: "/metrics",
        dir: DIR,
        sources,
        config_files: BTreeMap::from([(CNF.to_string(), cnf(server_port, tls.is_some()))]),
    })
}

/// What differs between the exporters: the rest of the sidecar is the same for every kind.
pub struct SidecarParts<'a> {
    pub image: &'a str,
    /// The exporter's own; the listen address and the user's `exporter.args` follow.
    pub args: Vec<String>,
    pub env: Vec<EnvVar>,
    pub monitor: &'a Monitor,
    /// Where the readiness probe asks.
    pub ready_path: &'a str,
    /// Where volume [`VOLUME`] (`sources`) is mounted in the exporter.
    pub dir: &'a str,
    pub sources: Vec<VolumeProjection>,
    pub config_files: BTreeMap<String, String>,
}

/// The exporter container `exporter` with port `metrics`, a readiness probe, and its own
/// projected volume mounted read-only (whole, so renewed files reach it). Every exporter here
/// takes `--web.listen-address`.
pub fn assemble(parts: SidecarParts<'_>) -> Sidecar {
    let port = parts.monitor.port;
    let mut args = parts.args;
    args.push(format!("--web.listen-address=:{port}"));
    args.extend(parts.monitor.args.iter().cloned());
    let container = Container {
        name: CONTAINER.to_string(),
        image: Some(parts.image.to_string()),
        args: Some(args),
        env: Some(parts.env),
        ports: Some(vec![tcp_port(PORT_NAME, port)]),
        readiness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some(parts.ready_path.to_string()),
                port: IntOrString::String(PORT_NAME.to_string()),
                ..HTTPGetAction::default()
            }),
            period_seconds: Some(10),
            ..Probe::default()
        }),
        volume_mounts: Some(vec![VolumeMount {
            name: VOLUME.to_string(),
            mount_path: parts.dir.to_string(),
            read_only: Some(true),
            ..VolumeMount::default()
        }]),
        termination_message_policy: Some("FallbackToLogsOnError".to_string()),
        ..Container::default()
    };
    Sidecar {
        container,
        volume: Volume {
            name: VOLUME.to_string(),
            projected: Some(ProjectedVolumeSource {
                sources: Some(parts.sources),
                default_mode: None,
            }),
            ..Volume::default()
        },
        config_files: parts.config_files,
    }
}

/// The stats Service `<db>-stats` on the exporter's port; with the builtin agent, annotated
/// for Prometheus's Service discovery.
pub fn stats_service(db: &DbFacts<'_>, monitor: &Monitor) -> Service {
    let mut metadata = child_meta(db, names::stats_service(&db.name));
    if let Some(labels) = metadata.labels.as_mut() {
        labels.insert(ROLE_LABEL.to_string(), ROLE_STATS.to_string());
    }
    if monitor.agent == Agent::PrometheusBuiltin {
        let mut annotations = BTreeMap::from([
            ("prometheus.io/scrape".to_string(), "true".to_string()),
            ("prometheus.io/port".to_string(), monitor.port.to_string()),
            ("prometheus.io/path".to_string(), "/metrics".to_string()),
        ]);
        if builtin_exporter::serves_https(db) {
            annotations.insert("prometheus.io/scheme".to_string(), "https".to_string());
        }
        metadata.annotations = Some(annotations);
    }
    Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_string()),
            selector: Some(labels::for_database(db.kind, &db.name)),
            ports: Some(vec![ServicePort {
                name: Some(PORT_NAME.to_string()),
                port: monitor.port,
                target_port: Some(IntOrString::String(PORT_NAME.to_string())),
                protocol: Some("TCP".to_string()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The Prometheus Operator's ServiceMonitor for the stats Service (`agent: prometheus.io/operator`),
/// named like it and labelled with the user's `serviceMonitor.labels` besides the database's.
pub fn service_monitor(db: &DbFacts<'_>, monitor: &Monitor) -> ServiceMonitor {
    let mut metadata = child_meta(db, names::stats_service(&db.name));
    if let Some(labels) = metadata.labels.as_mut() {
        // Ours win: they are what the database's objects are found by.
        for (k, v) in &monitor.service_monitor_labels {
            labels.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    let mut selector = labels::for_database(db.kind, &db.name);
    selector.insert(ROLE_LABEL.to_string(), ROLE_STATS.to_string());
    let https = builtin_exporter::serves_https(db);
    ServiceMonitor {
        metadata,
        spec: ServiceMonitorSpec {
            selector: LabelSelector {
                match_labels: Some(selector),
                match_expressions: None,
            },
            endpoints: vec![Endpoint {
                port: PORT_NAME.to_string(),
                path: Some("/metrics".to_string()),
                interval: monitor.interval.clone(),
                scheme: https.then(|| "https".to_string()),
                tls_config: https.then(|| scrape_tls(db)),
            }],
            namespace_selector: Some(NamespaceSelector {
                match_names: vec![db.namespace.clone()],
            }),
        },
    }
}

/// Prometheus checks an HTTPS exporter against the database's CA bundle, by the primary
/// Service's name, which the server certificate carries.
fn scrape_tls(db: &DbFacts<'_>) -> TlsConfig {
    TlsConfig {
        ca: Some(SecretOrConfigMap {
            secret: Some(SecretKeySelector {
                name: names::ca_bundle(&db.name),
                key: CA_KEY.to_string(),
                optional: None,
            }),
        }),
        server_name: Some(dbtls_contract::tls::service_dns_name(
            &db.name,
            &db.namespace,
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn opaque(yaml: &str) -> Opaque {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn monitor_fields_are_read_and_bad_ones_named() {
        let ok = |yaml: &str| {
            monitor(Some(&opaque(yaml)), DbKind::MySQL)
                .unwrap()
                .unwrap()
        };
        let bad = |yaml: &str| monitor(Some(&opaque(yaml)), DbKind::MySQL).unwrap_err();
        assert_eq!(monitor(None, DbKind::MySQL), Ok(None));
        let m = ok("agent: prometheus.io/operator");
        assert_eq!((m.agent, m.port), (Agent::PrometheusOperator, DEFAULT_PORT));
        let m = ok(
            "agent: prometheus.io/builtin\nprometheus:\n  exporter:\n    port: 9104\n    args: [--collect.info_schema.tables]\n",
        );
        assert_eq!(m.agent, Agent::PrometheusBuiltin);
        assert_eq!(m.port, 9104);
        assert_eq!(m.args, ["--collect.info_schema.tables"]);
        let m = ok(
            "agent: prometheus.io/operator\nprometheus:\n  serviceMonitor:\n    labels: {release: prometheus}\n    interval: 10s\n",
        );
        assert_eq!(m.service_monitor_labels["release"], "prometheus");
        assert_eq!(m.interval.as_deref(), Some("10s"));
        for (yaml, field, says) in [
            ("{}", "spec.monitor.agent", "is required"),
            (
                "agent: datadog",
                "spec.monitor.agent",
                "\"datadog\" is not a known agent",
            ),
            ("agent: 7", "spec.monitor.agent", "must be a string"),
            (
                "agent: prometheus.io\nprometheus: {exporter: {port: 70000}}",
                "spec.monitor.prometheus.exporter.port",
                "70000 is not a port",
            ),
            (
                "agent: prometheus.io\nprometheus: {exporter: {args: [1]}}",
                "spec.monitor.prometheus.exporter.args",
                "list of strings",
            ),
            (
                "agent: prometheus.io/operator\nprometheus: {serviceMonitor: {labels: {a: 1}}}",
                "spec.monitor.prometheus.serviceMonitor.labels",
                "label names to strings",
            ),
            (
                "agent: prometheus.io/operator\nprometheus: {serviceMonitor: {interval: 10}}",
                "spec.monitor.prometheus.serviceMonitor.interval",
                "must be a duration",
            ),
        ] {
            let p = bad(yaml);
            assert_eq!(p.field, field, "{yaml}");
            assert!(p.why.contains(says), "{yaml}: {}", p.why);
        }
    }

    #[test]
    fn each_kind_defaults_to_kubedbs_port_and_refuses_one_its_server_listens_on() {
        let agent = opaque("agent: prometheus.io");
        let port_of = |kind| monitor(Some(&agent), kind).unwrap().unwrap().port;
        for (kind, port) in [
            (DbKind::MySQL, 56790),
            (DbKind::PerconaXtraDB, 56790),
            (DbKind::MSSQLServer, 9399),
            (DbKind::ProxySQL, 6070),
            (DbKind::Singlestore, 9104),
        ] {
            assert_eq!(port_of(kind), port, "{kind}");
        }
        for (kind, taken) in [
            (DbKind::MySQL, 3306),
            (DbKind::ProxySQL, 6033),
            (DbKind::ProxySQL, 6032),
            (DbKind::MSSQLServer, 1433),
        ] {
            let yaml = format!("agent: prometheus.io\nprometheus: {{exporter: {{port: {taken}}}}}");
            let p = monitor(Some(&opaque(&yaml)), kind).unwrap_err();
            assert_eq!(p.field, "spec.monitor.prometheus.exporter.port");
            assert!(p.why.contains("listens on"), "{}", p.why);
        }
        // The admin port is ProxySQL's only.
        let yaml = "agent: prometheus.io\nprometheus: {exporter: {port: 6032}}";
        assert!(monitor(Some(&opaque(yaml)), DbKind::MySQL).is_ok());
    }

    /// An exporter served over HTTPS (SingleStore with TLS) is scraped over HTTPS and checked
    /// against the CA bundle by a name the server certificate carries; the others over HTTP.
    #[test]
    fn prometheus_scrapes_an_https_exporter_checking_the_server_certificate() {
        use crate::facts::fixtures::load;
        use dbtls_contract::api::{MySQL, Singlestore};
        let m = monitor(
            Some(&opaque("agent: prometheus.io/builtin")),
            DbKind::Singlestore,
        )
        .unwrap()
        .unwrap();
        let sdb: Singlestore = load("singlestore-tls.yaml");
        let facts = DbFacts::of(&sdb);
        let endpoint = &service_monitor(&facts, &m).spec.endpoints[0];
        assert_eq!(endpoint.scheme.as_deref(), Some("https"));
        let tls = endpoint.tls_config.clone().unwrap();
        let ca = tls.ca.unwrap().secret.unwrap();
        assert_eq!(
            (ca.name, ca.key.as_str()),
            (names::ca_bundle(&facts.name), "ca.crt")
        );
        let server_name = tls.server_name.unwrap();
        assert!(
            dbtls_contract::tls::server_dns_names(&facts.name, &facts.namespace, "cluster.local")
                .contains(&server_name),
            "{server_name} is not a name the server certificate carries"
        );
        let annotations = stats_service(&facts, &m).metadata.annotations.unwrap();
        assert_eq!(annotations["prometheus.io/scheme"], "https");

        let mysql: MySQL = load("mysql-require-ssl.yaml");
        let facts = DbFacts::of(&mysql);
        let endpoint = &service_monitor(&facts, &m).spec.endpoints[0];
        assert!(endpoint.scheme.is_none() && endpoint.tls_config.is_none());
        let annotations = stats_service(&facts, &m).metadata.annotations.unwrap();
        assert!(!annotations.contains_key("prometheus.io/scheme"));
    }

    #[test]
    fn the_config_file_points_at_the_exporter_certificate_only_with_tls() {
        assert_eq!(
            cnf(3306, true),
            "[client]\nhost=127.0.0.1\nport=3306\nssl-ca=/etc/mysql/certs/ca.crt\nssl-cert=/etc/mysql/certs/exporter.crt\nssl-key=/etc/mysql/certs/exporter.key\n"
        );
        assert!(!cnf(3306, false).contains("ssl"));
    }
}
