//! The TLS configuration the system produces, run on a real server: both operators and the
//! cert-manager stand-in issue the certificates and build the StatefulSet; a local `mariadbd`
//! is started with the database container's own arguments and its projected TLS volumes written
//! out as kubelet would. Proves the server starts with them, serves the issued certificate for
//! the Service names, refuses plaintext under `requireSSL`, and accepts the metrics exporter's
//! certificate as an identity.
//!
//! Needs `mariadbd`, `mariadb-install-db`, `mariadb` and `openssl` (`.ci/install-prerequisites`);
//! without `mariadbd` the test is skipped, except in CI (`CI` set), where it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use dbtls_contract::DbKind;
use dbtls_contract::kinds::alias;
use dbtls_contract::names;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PodSpec, Secret};
use testbed::harness::{Env, EnvOptions};
use testbed::mariadb::{self, MariaDb, Materialised, TempDir};

const DEADLINE: Duration = Duration::from_secs(60);
const DB: &str = "my";
const TLS_KEYS: [&str; 3] = ["ca.crt", "tls.crt", "tls.key"];

/// `mariadbd`, or `None` (skip) when it is missing outside CI.
fn mariadbd() -> Option<PathBuf> {
    let found = mariadb::find_program("mariadbd");
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "mariadbd is required in CI: run .ci/install-prerequisites"
        );
        eprintln!("SKIPPED: mariadbd not found (install mariadb-server to run this test)");
    }
    found
}

/// `value` as an SQL string literal.
fn sql_string(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every Secret the pod's projected volumes read, plus `extra`.
fn projected_secrets(pod: &PodSpec, extra: &str) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = pod
        .volumes
        .iter()
        .flatten()
        .filter_map(|v| v.projected.as_ref())
        .flat_map(|p| p.sources.iter().flatten())
        .filter_map(|s| s.secret.as_ref().map(|s| s.name.clone()))
        .collect();
    names.insert(extra.to_string());
    names
}

/// Waits until each named Secret holds a non-empty certificate, key and CA.
async fn issued(env: &Env, wanted: &BTreeSet<String>) -> BTreeMap<String, Secret> {
    env.eventually("the TLS Secrets to be issued", DEADLINE, || async {
        let mut found = BTreeMap::new();
        for name in wanted {
            let Some(secret) = env.api::<Secret>().get_opt(name).await? else {
                return Ok(None);
            };
            let data = secret.data.clone().unwrap_or_default();
            // The CA bundle holds only `ca.crt`.
            let keys: &[&str] = if *name == names::ca_bundle(DB) {
                &TLS_KEYS[..1]
            } else {
                &TLS_KEYS
            };
            if !keys
                .iter()
                .all(|k| data.get(*k).is_some_and(|v| !v.0.is_empty()))
            {
                return Ok(None);
            }
            found.insert(name.clone(), secret);
        }
        Ok(Some(found))
    })
    .await
    .unwrap()
}

async fn pod_spec(env: &Env) -> PodSpec {
    let sts = env
        .eventually("the StatefulSet", DEADLINE, || async {
            Ok(env.api::<StatefulSet>().get_opt(DB).await?)
        })
        .await
        .unwrap();
    sts.spec.unwrap().template.spec.unwrap()
}

/// The file holding `key` of `secret`: where the container sees it if it mounts it, else
/// written out from the Secret (the metrics exporter's certificate is not mounted in every
/// layout; the exporter sidecar gets it its own way).
fn secret_file(
    materialised: &Materialised,
    secrets: &BTreeMap<String, Secret>,
    secret: &str,
    key: &str,
    scratch: &Path,
) -> PathBuf {
    if let Some(path) = materialised.file(secret, key) {
        return path.to_path_buf();
    }
    let bytes = &secrets[secret].data.as_ref().unwrap()[key].0;
    let path = scratch.join(format!("{secret}-{key}"));
    std::fs::write(&path, bytes).unwrap();
    path
}

fn tls_client_args(ca: &Path, cert: &Path, key: &Path) -> Vec<String> {
    vec![
        "--ssl".to_string(),
        format!("--ssl-ca={}", ca.display()),
        format!("--ssl-cert={}", cert.display()),
        format!("--ssl-key={}", key.display()),
        // The server certificate carries IP SAN 127.0.0.1: verify it like a strict client.
        "--ssl-verify-server-cert".to_string(),
    ]
}

async fn real_server_accepts_the_produced_tls(kind: DbKind) {
    let Some(mariadbd) = mariadbd() else {
        return;
    };
    let env = Env::start(EnvOptions::default()).await.unwrap();
    let ca_pem = env.create_ca_issuer("ca").await.unwrap();
    env.apply_yaml(&Env::tls_database(kind, DB, "Issuer", "ca"))
        .await
        .unwrap();

    // What the provisioner produced, once the certificates it mounts exist.
    let exporter_secret = names::default_cert_secret(DB, alias::METRICS_EXPORTER);
    let first = pod_spec(&env).await;
    let secrets = issued(&env, &projected_secrets(&first, &exporter_secret)).await;
    let pod = pod_spec(&env).await;
    assert_eq!(
        projected_secrets(&pod, &exporter_secret),
        secrets.keys().cloned().collect(),
        "the pod's TLS Secrets changed while waiting"
    );
    let container = mariadb::container(&pod, kind.profile().container).unwrap();
    let pod_root = TempDir::new("dbtls-pod").unwrap();
    let materialised = mariadb::materialise(&pod, container, &secrets, pod_root.path()).unwrap();
    assert!(
        !materialised.mounts.is_empty(),
        "the container mounts no projected TLS volume"
    );
    let container_args = container.args.clone().unwrap_or_default();
    assert!(
        container_args.iter().any(|a| a.starts_with("--ssl-cert=")),
        "{container_args:?}"
    );
    let args = mariadb::local_args(&container_args, &materialised.mounts).unwrap();

    // 1. The server starts with them and has TLS on.
    let server = MariaDb::start(&mariadbd, &args).await.unwrap();
    let socket = server.socket_args();
    let root = ["--user=root".to_string()];
    let admin: Vec<String> = socket.iter().chain(&root).cloned().collect();
    assert_eq!(
        server
            .query(&admin, "SELECT @@have_ssl, @@require_secure_transport")
            .await
            .unwrap(),
        "YES\t1"
    );
    // The admin password the pod would get from the auth Secret; on every TCP root account.
    let auth = env
        .api::<Secret>()
        .get(&names::auth_secret(DB))
        .await
        .unwrap();
    let password = text(&auth.data.unwrap()["password"].0);
    assert!(!password.is_empty());
    let exporter_cn = kind.profile().exporter_user;
    let scratch = TempDir::new("dbtls-client").unwrap();
    let exporter_cert = secret_file(
        &materialised,
        &secrets,
        &exporter_secret,
        "tls.crt",
        scratch.path(),
    );
    let exporter_key = secret_file(
        &materialised,
        &secrets,
        &exporter_secret,
        "tls.key",
        scratch.path(),
    );
    let exporter_subject = mariadb::oneline_subject(&exporter_cert).await.unwrap();
    assert_eq!(exporter_subject, format!("/CN={exporter_cn}"));
    server
        .query(
            &admin,
            &format!(
                "ALTER USER 'root'@'localhost' IDENTIFIED BY {quoted}; \
                 ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY {quoted}; \
                 CREATE USER '{exporter_cn}'@'%' REQUIRE SUBJECT {subject};",
                quoted = sql_string(&password),
                subject = sql_string(&exporter_subject),
            ),
        )
        .await
        .unwrap();
    let admin: Vec<String> = admin
        .into_iter()
        .chain([format!("--password={password}")])
        .collect();

    // 2. A client with the client certificate and the issuer's CA gets a TLS session.
    let ca = scratch.path().join("issuer-ca.crt");
    std::fs::write(&ca, &ca_pem).unwrap();
    let client_secret = names::default_cert_secret(DB, alias::CLIENT);
    let client_cert = secret_file(
        &materialised,
        &secrets,
        &client_secret,
        "tls.crt",
        scratch.path(),
    );
    let client_key = secret_file(
        &materialised,
        &secrets,
        &client_secret,
        "tls.key",
        scratch.path(),
    );
    let tcp = server.tcp_args();
    let root_tls: Vec<String> = tcp
        .iter()
        .chain(&tls_client_args(&ca, &client_cert, &client_key))
        .chain(&root)
        .cloned()
        .chain([format!("--password={password}")])
        .collect();
    let cipher = server
        .query(&root_tls, "SHOW STATUS LIKE 'Ssl_cipher'")
        .await
        .unwrap();
    let cipher = cipher.strip_prefix("Ssl_cipher\t").unwrap_or_default();
    assert!(!cipher.is_empty(), "no TLS session");

    // 3. The peer certificate is the issued server certificate and verifies for the Service
    //    name and localhost; a name it does not carry fails (the check can fail).
    let server_secret = names::default_cert_secret(DB, alias::SERVER);
    let issued_cert = mariadb::first_certificate_der(
        &secrets[&server_secret].data.as_ref().unwrap()["tls.crt"].0,
    )
    .unwrap();
    for host in [
        format!("{DB}.{}.svc", env.namespace()),
        "localhost".to_string(),
    ] {
        let out = server.s_client(&ca, &host).await.unwrap();
        assert!(
            out.status.success(),
            "s_client for {host}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        assert_eq!(
            mariadb::first_certificate_der(&out.stdout).unwrap(),
            issued_cert,
            "the server presents another certificate than Secret {server_secret}'s tls.crt"
        );
    }
    let wrong = server.s_client(&ca, "wrong.example.com").await.unwrap();
    assert!(!wrong.status.success(), "hostname verification cannot fail");

    // 4. Plaintext TCP is refused because of require_secure_transport: refused with the right
    //    password while it is ON, accepted once it is OFF (MariaDB 10.11 answers with error
    //    1045 "Access denied", not ER_SECURE_TRANSPORT_REQUIRED).
    let plain: Vec<String> = tcp
        .iter()
        .cloned()
        .chain(["--skip-ssl".to_string(), "--user=root".to_string()])
        .chain([format!("--password={password}")])
        .collect();
    let refused = server.client(&plain, "SELECT 1").await.unwrap();
    assert!(!refused.status.success(), "plaintext accepted");
    let error = text(&refused.stderr);
    assert!(
        error.contains("secure transport") || error.contains("ERROR 1045"),
        "{error}"
    );
    server
        .query(&admin, "SET GLOBAL require_secure_transport = OFF")
        .await
        .unwrap();
    assert_eq!(server.query(&plain, "SELECT 1").await.unwrap(), "1");
    server
        .query(&admin, "SET GLOBAL require_secure_transport = ON")
        .await
        .unwrap();
    assert!(
        !server
            .client(&plain, "SELECT 1")
            .await
            .unwrap()
            .status
            .success()
    );

    // 5. The metrics exporter's certificate is an identity: it logs in as the user that
    //    requires its subject; without it, or with another certificate, that user is refused.
    let as_exporter = |cert: &Path, key: &Path| -> Vec<String> {
        tcp.iter()
            .chain(&tls_client_args(&ca, cert, key))
            .cloned()
            .chain([format!("--user={exporter_cn}")])
            .collect()
    };
    assert_eq!(
        server
            .query(
                &as_exporter(&exporter_cert, &exporter_key),
                "SELECT CURRENT_USER()"
            )
            .await
            .unwrap(),
        format!("{exporter_cn}@%")
    );
    let no_cert: Vec<String> = tcp
        .iter()
        .cloned()
        .chain([
            "--ssl".to_string(),
            format!("--ssl-ca={}", ca.display()),
            format!("--user={exporter_cn}"),
        ])
        .collect();
    let refused = server.client(&no_cert, "SELECT 1").await.unwrap();
    assert!(
        !refused.status.success(),
        "exporter without certificate accepted"
    );
    assert!(
        text(&refused.stderr).contains("ERROR 1045"),
        "{}",
        text(&refused.stderr)
    );
    let other = server
        .client(&as_exporter(&client_cert, &client_key), "SELECT 1")
        .await
        .unwrap();
    assert!(
        !other.status.success(),
        "exporter with the client's certificate accepted"
    );
}

#[tokio::test]
async fn mysql_tls_configuration_runs_on_a_real_server() {
    real_server_accepts_the_produced_tls(DbKind::MySQL).await;
}

#[tokio::test]
async fn percona_xtradb_tls_configuration_runs_on_a_real_server() {
    real_server_accepts_the_produced_tls(DbKind::PerconaXtraDB).await;
}
