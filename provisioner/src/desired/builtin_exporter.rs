//! The exporters ProxySQL and SingleStore carry in the server itself, as KubeDB scrapes them:
//! no sidecar, the server container opens the `metrics` port the stats Service targets.
//!
//! - ProxySQL serves Prometheus metrics from its REST API (`admin-restapi_enabled`,
//!   `admin-restapi_port`, KubeDB's 6070). No command-line flag sets an admin variable, so the
//!   server reads `proxysql.cnf` from the config Secret (`-c`, at KubeDB's `/etc/custom-config`).
//!   The REST API speaks plain HTTP: ProxySQL has no TLS setting for it.
//! - SingleStore's engine runs `memsql_exporter` on `exporter_port` (KubeDB's 9104), logged in
//!   as `exporter_user`; with `spec.tls` it serves HTTPS with the server certificate
//!   (`exporter_use_https`, `exporter_ssl_cert`, `exporter_ssl_key`), the channel KubeDB's
//!   guides say the server certificate also secures.
use std::collections::BTreeMap;

use dbtls_contract::DbKind;
use dbtls_contract::names;
use k8s_openapi::api::core::v1::{
    ContainerPort, KeyToPath, SecretVolumeSource, Volume, VolumeMount,
};

use super::exporter::{Monitor, PORT_NAME};
use super::pod::{credential_env, data_dir, tcp_port};
use super::server_tls::flat_server_files;
use crate::facts::DbFacts;

/// KubeDB's stats port for ProxySQL: its REST API's default.
pub const PROXYSQL_PORT: i32 = 6070;
/// KubeDB's stats port for SingleStore: `memsql_exporter`'s default.
pub const SINGLESTORE_PORT: i32 = 9104;
/// ProxySQL's admin interface (a port the exporter cannot take).
pub const PROXYSQL_ADMIN_PORT: i32 = 6032;
/// The ProxySQL config file in the config Secret, and where KubeDB's image reads it.
pub const PROXYSQL_CNF: &str = "proxysql.cnf";
pub const PROXYSQL_CONFIG_DIR: &str = "/etc/custom-config";
const PROXYSQL_CONFIG_VOLUME: &str = "proxysql-config";

/// What a server's own exporter adds to the server container.
#[derive(Clone, Debug, PartialEq)]
pub struct Builtin {
    /// Before the user's `podTemplate` args.
    pub args: Vec<String>,
    /// Port `metrics`, which the stats Service targets.
    pub port: ContainerPort,
    /// A config file the server reads, from the config Secret: its volume and mount.
    pub config: Option<(Volume, VolumeMount)>,
    pub config_files: BTreeMap<String, String>,
}

/// Whether `db`'s own exporter serves HTTPS (SingleStore with `spec.tls`): Prometheus must then
/// scrape with `https` and check the server certificate.
pub fn serves_https(db: &DbFacts<'_>) -> bool {
    db.kind == DbKind::Singlestore && db.tls.is_some()
}

/// The built-in exporter of `db`, or None for kinds that run a sidecar.
pub fn builtin(db: &DbFacts<'_>, monitor: &Monitor) -> Option<Builtin> {
    match db.kind {
        DbKind::ProxySQL => Some(proxysql(&db.name, monitor)),
        DbKind::Singlestore => Some(singlestore(db, monitor)),
        DbKind::MySQL | DbKind::PerconaXtraDB | DbKind::MSSQLServer => None,
    }
}

/// `proxysql.cnf`: the interfaces ProxySQL's image listens on and its REST API. The admin user
/// `admin:admin` is ProxySQL's own default, which it accepts from localhost only.
pub fn proxysql_cnf(restapi_port: i32) -> String {
    format!(
        "datadir=\"{}\"\n\
         admin_variables=\n{{\n    admin_credentials=\"admin:admin\"\n    mysql_ifaces=\"0.0.0.0:{PROXYSQL_ADMIN_PORT}\"\n    restapi_enabled=true\n    restapi_port={restapi_port}\n}}\n\
         mysql_variables=\n{{\n    interfaces=\"0.0.0.0:{}\"\n}}\n",
        data_dir(DbKind::ProxySQL),
        DbKind::ProxySQL.profile().port
    )
}

fn proxysql(db_name: &str, monitor: &Monitor) -> Builtin {
    let volume = Volume {
        name: PROXYSQL_CONFIG_VOLUME.to_string(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(names::config_secret(db_name)),
            items: Some(vec![KeyToPath {
                key: PROXYSQL_CNF.to_string(),
                path: PROXYSQL_CNF.to_string(),
                mode: None,
            }]),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    };
    let mount = VolumeMount {
        name: PROXYSQL_CONFIG_VOLUME.to_string(),
        mount_path: PROXYSQL_CONFIG_DIR.to_string(),
        read_only: Some(true),
        ..VolumeMount::default()
    };
    Builtin {
        args: vec![
            "-c".to_string(),
            format!("{PROXYSQL_CONFIG_DIR}/{PROXYSQL_CNF}"),
        ],
        port: tcp_port(PORT_NAME, monitor.port),
        config: Some((volume, mount)),
        config_files: BTreeMap::from([(PROXYSQL_CNF.to_string(), proxysql_cnf(monitor.port))]),
    }
}

fn singlestore(db: &DbFacts<'_>, monitor: &Monitor) -> Builtin {
    let user = DbKind::Singlestore.profile().exporter_user;
    // The kubelet expands `$(ROOT_PASSWORD)` from the container's environment (the auth
    // Secret), so the password is never written into an object.
    let (_, password_env) = credential_env(DbKind::Singlestore);
    let mut args = vec![
        format!("--exporter_port={}", monitor.port),
        format!("--exporter_user={user}"),
        format!("--exporter_password=$({password_env})"),
    ];
    if serves_https(db) {
        let (cert, key) = flat_server_files(DbKind::Singlestore);
        args.extend([
            "--exporter_use_https=ON".to_string(),
            format!("--exporter_ssl_cert={cert}"),
            format!("--exporter_ssl_key={key}"),
        ]);
    }
    Builtin {
        args,
        port: tcp_port(PORT_NAME, monitor.port),
        config: None,
        config_files: BTreeMap::new(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::desired::exporter::{self, Agent};
    use crate::facts::fixtures::load;
    use dbtls_contract::api::{ProxySQL, Singlestore};

    fn monitor(kind: DbKind) -> Monitor {
        Monitor {
            agent: Agent::PrometheusOperator,
            port: exporter::default_port(kind),
            args: Vec::new(),
            service_monitor_labels: BTreeMap::new(),
            interval: None,
        }
    }

    #[test]
    fn proxysql_reads_a_config_that_opens_its_rest_api_on_the_monitor_port() {
        let db: ProxySQL = load("proxysql-tls.yaml");
        let facts = DbFacts::of(&db);
        let mut m = monitor(DbKind::ProxySQL);
        assert_eq!(m.port, PROXYSQL_PORT);
        m.port = 7070;
        let b = builtin(&facts, &m).unwrap();
        assert_eq!(b.args, ["-c", "/etc/custom-config/proxysql.cnf"]);
        assert_eq!(
            (b.port.name.as_deref(), b.port.container_port),
            (Some("metrics"), 7070)
        );
        let cnf = &b.config_files[PROXYSQL_CNF];
        for line in [
            "restapi_enabled=true",
            "restapi_port=7070",
            "mysql_ifaces=\"0.0.0.0:6032\"",
            "interfaces=\"0.0.0.0:6033\"",
        ] {
            assert!(cnf.contains(line), "{line} not in {cnf}");
        }
        let (volume, mount) = b.config.unwrap();
        assert_eq!(mount.mount_path, PROXYSQL_CONFIG_DIR);
        let secret = volume.secret.unwrap();
        assert_eq!(
            secret.secret_name.unwrap(),
            names::config_secret(&facts.name)
        );
        // Only its own file: the config Secret holds no credentials, but nothing else either.
        assert_eq!(secret.items.unwrap().len(), 1);
        assert!(!serves_https(&facts), "ProxySQL's REST API has no TLS");
    }

    #[test]
    fn singlestore_serves_its_exporter_over_https_with_the_server_certificate_only_with_tls() {
        let db: Singlestore = load("singlestore-tls.yaml");
        let facts = DbFacts::of(&db);
        let m = monitor(DbKind::Singlestore);
        let b = builtin(&facts, &m).unwrap();
        assert!(serves_https(&facts));
        for arg in [
            "--exporter_port=9104",
            "--exporter_user=root",
            "--exporter_password=$(ROOT_PASSWORD)",
            "--exporter_use_https=ON",
            "--exporter_ssl_cert=/etc/memsql/certs/server.crt",
            "--exporter_ssl_key=/etc/memsql/certs/server.key",
        ] {
            assert!(b.args.iter().any(|a| a == arg), "{arg} not in {:?}", b.args);
        }
        assert!(b.config.is_none() && b.config_files.is_empty());

        let mut plain = db.clone();
        plain.spec.tls = None;
        let facts = DbFacts::of(&plain);
        let b = builtin(&facts, &m).unwrap();
        assert!(!serves_https(&facts));
        assert!(
            !b.args
                .iter()
                .any(|a| a.contains("https") || a.contains("ssl")),
            "{:?}",
            b.args
        );
        assert!(b.args.contains(&"--exporter_port=9104".to_string()));
    }
}
