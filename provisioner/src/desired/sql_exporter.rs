//! MSSQLServer's exporter (KubeDB's port 9399): `sql_exporter` as a sidecar, reaching SQL
//! Server on `localhost:1433` over TLS and checking the server's certificate against the
//! database's CA bundle (the server certificate names `localhost`). SQL Server has no
//! client-certificate logins, and KubeDB issues MSSQLServer no `metrics-exporter` certificate:
//! the exporter logs in with the auth Secret's password and verifies who it talks to.
//!
//! The credentials stay in the environment: the config file names the target without them,
//! and `SQLEXPORTER_TARGET_DSN` (which `sql_exporter` reads over the file's DSN) is composed
//! by the kubelet from the auth Secret's variables (`$(VAR)`), so no Secret of ours holds the
//! password twice. Generated passwords are alphanumeric, so the URL needs no escaping.
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::EnvVar;

use super::auth::{PASSWORD_KEY, USERNAME_KEY};
use super::exporter::{Monitor, Sidecar, SidecarParts, assemble};
use super::pod::secret_env;
use super::server_tls::{CA_KEY, item, projection};
use dbtls_contract::names;

/// The exporter's image (the Prometheus community's database-agnostic SQL exporter).
pub const IMAGE: &str = "burningalchemist/sql_exporter:0.24.6";
/// The config file in the config Secret `<db>-config`, and where the exporter reads it.
pub const CONFIG_FILE: &str = "sql_exporter.yml";
pub const DIR: &str = "/etc/sql_exporter";
/// `sql_exporter`'s override of the target's `data_source_name`.
const DSN_ENV: &str = "SQLEXPORTER_TARGET_DSN";
const USER_ENV: &str = "EXPORTER_USER";
const PASSWORD_ENV: &str = "EXPORTER_PASSWORD";

/// How the exporter trusts the server it scrapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerTrust<'a> {
    /// No `spec.tls`: SQL Server encrypts the login only, with its own self-signed certificate.
    Plain,
    /// The server certificate chains to this CA bundle Secret (`ca.crt`).
    Ca(&'a str),
    /// A publicly trusted (ACME) server certificate: encrypted, verified against the image's
    /// roots, but its names are public ones, not `localhost`, so the name is not checked.
    Public,
}

/// The DSN the kubelet composes; `$(VAR)` are the auth Secret's variables.
pub fn dsn(server_port: i32, trust: ServerTrust<'_>) -> String {
    let base = format!("sqlserver://$({USER_ENV}):$({PASSWORD_ENV})@localhost:{server_port}");
    let options = match trust {
        ServerTrust::Plain => "encrypt=false&TrustServerCertificate=true".to_string(),
        ServerTrust::Ca(_) => {
            format!("encrypt=true&certificate={DIR}/{CA_KEY}&hostNameInCertificate=localhost")
        }
        ServerTrust::Public => "encrypt=true&TrustServerCertificate=true".to_string(),
    };
    format!("{base}?{options}")
}

/// `sql_exporter.yml`: one target without credentials and a small standard collector.
pub fn config(server_port: i32) -> String {
    format!(
        "# The DSN with credentials comes from {DSN_ENV} (the auth Secret, as environment).
global:
  scrape_timeout_offset: 500ms
  max_connections: 3
  max_idle_connections: 3
target:
  data_source_name: 'sqlserver://localhost:{server_port}'
  collectors: [mssql_standard]
collectors:
  - collector_name: mssql_standard
    metrics:
      - metric_name: mssql_user_connections
        type: gauge
        help: 'User sessions connected.'
        values: [count]
        query: SELECT COUNT(*) AS count FROM sys.dm_exec_sessions WHERE is_user_process = 1
      - metric_name: mssql_encrypted_connections
        type: gauge
        help: 'Connections whose transport is encrypted.'
        values: [count]
        query: SELECT COUNT(*) AS count FROM sys.dm_exec_connections WHERE encrypt_option = 'TRUE'
      - metric_name: mssql_start_time_seconds
        type: gauge
        help: 'When the server started, in seconds since the epoch.'
        values: [started]
        query: SELECT DATEDIFF(second, '1970-01-01', sqlserver_start_time) AS started FROM sys.dm_os_sys_info
"
    )
}

/// The sidecar: `auth_secret` for the login, the config Secret and (with a CA) the bundle in
/// one projected volume at [`DIR`].
pub fn sidecar(
    db_name: &str,
    server_port: i32,
    monitor: &Monitor,
    auth_secret: &str,
    trust: ServerTrust<'_>,
) -> Sidecar {
    let mut sources = vec![projection(
        &names::config_secret(db_name),
        vec![item(CONFIG_FILE, CONFIG_FILE)],
    )];
    if let ServerTrust::Ca(bundle) = trust {
        sources.push(projection(bundle, vec![item(CA_KEY, CA_KEY)]));
    }
    assemble(SidecarParts {
        image: IMAGE,
        args: vec![format!("--config.file={DIR}/{CONFIG_FILE}")],
        // Order matters: a `$(VAR)` names only variables defined before it.
        env: vec![
            secret_env(USER_ENV, auth_secret, USERNAME_KEY),
            secret_env(PASSWORD_ENV, auth_secret, PASSWORD_KEY),
            EnvVar {
                name: DSN_ENV.to_string(),
                value: Some(dsn(server_port, trust)),
                value_from: None,
            },
        ],
        monitor,
        ready_path: "/healthz",
        dir: DIR,
        sources,
        config_files: BTreeMap::from([(CONFIG_FILE.to_string(), config(server_port))]),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn the_dsn_verifies_the_server_against_the_ca_only_where_there_is_one() {
        let with_ca = dsn(1433, ServerTrust::Ca("db-ca-bundle"));
        assert_eq!(
            with_ca,
            "sqlserver://$(EXPORTER_USER):$(EXPORTER_PASSWORD)@localhost:1433?encrypt=true&certificate=/etc/sql_exporter/ca.crt&hostNameInCertificate=localhost"
        );
        assert!(!with_ca.contains("TrustServerCertificate"), "verified");
        for (trust, encrypt) in [(ServerTrust::Plain, "false"), (ServerTrust::Public, "true")] {
            let d = dsn(1433, trust);
            assert!(d.contains(&format!("encrypt={encrypt}&")), "{d}");
            assert!(!d.contains("certificate="), "{d}");
        }
    }

    #[test]
    fn the_config_names_the_target_without_credentials_and_parses() {
        let text = config(1433);
        let parsed: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(
            parsed["target"]["data_source_name"],
            "sqlserver://localhost:1433"
        );
        assert_eq!(parsed["target"]["collectors"][0], "mssql_standard");
        assert_eq!(
            parsed["collectors"][0]["collector_name"], "mssql_standard",
            "the target's collector is defined"
        );
        assert!(!text.contains("PASSWORD)"), "no credentials in the file");
    }

    #[test]
    fn the_sidecar_mounts_the_bundle_only_with_a_ca_and_defines_the_login_before_the_dsn() {
        let monitor = Monitor {
            agent: super::super::exporter::Agent::Prometheus,
            port: 9399,
            args: vec!["--log.level=debug".into()],
            service_monitor_labels: BTreeMap::new(),
            interval: None,
        };
        let s = sidecar(
            "ms",
            1433,
            &monitor,
            "ms-auth",
            ServerTrust::Ca("ms-ca-bundle"),
        );
        let sources = serde_json::to_string(&s.volume).unwrap();
        assert!(sources.contains("\"ms-ca-bundle\"") && sources.contains("\"ms-config\""));
        let env: Vec<String> = s
            .container
            .env
            .iter()
            .flatten()
            .map(|e| e.name.clone())
            .collect();
        assert_eq!(env, [USER_ENV, PASSWORD_ENV, DSN_ENV]);
        assert_eq!(
            s.container.args.unwrap(),
            [
                "--config.file=/etc/sql_exporter/sql_exporter.yml",
                "--web.listen-address=:9399",
                "--log.level=debug"
            ]
        );
        let plain = sidecar("ms", 1433, &monitor, "ms-auth", ServerTrust::Plain);
        let sources = serde_json::to_string(&plain.volume).unwrap();
        assert!(!sources.contains("ca-bundle"), "{sources}");
    }
}
