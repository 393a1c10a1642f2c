//! The real-pods tier (`DBTLS_E2E_WORKLOADS=cluster`, a cluster whose node runs the pods):
//! every TLS claim about MySQL checked on the running server. It presents exactly its Secret's
//! certificate over the MySQL protocol, which verifies against `ca.crt` for the Service and
//! pod names; under requireSSL it refuses plaintext and takes the client certificate; a deleted
//! pod comes back with its data and certificates; and what goes wrong with a pod is said in the
//! database's conditions in kubelet's and the server's own words.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use dbtls_contract::DbKind;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::ResourceExt;
use kube::api::DeleteParams;
use ops_manager::serving::probe;
use testbed::harness::cluster::{self, Played};
use testbed::harness::{Env, EnvOptions};

/// A MariaDB pod initialises its data directory on first start (~10 s on the CI node).
const POD_READY: Duration = Duration::from_secs(240);
const KIND: DbKind = DbKind::MySQL;

/// Whether pods really run; says why the test does nothing otherwise.
fn real_pods(test: &str) -> bool {
    let real = cluster::workloads().is_ok_and(|w| w == Played::ByCluster);
    if !real {
        println!(
            "{test}: needs pods that run (DBTLS_E2E_WORKLOADS=cluster on a cluster with a node); skipped"
        );
    }
    real
}

/// A requireSSL MySQL (MariaDB on the test node) named `name`, with `extra` spec lines.
fn mysql(name: &str, extra: &str) -> String {
    let yaml = Env::tls_database(KIND, name, "Issuer", "ca");
    let version = format!("version: \"{}\"", KIND.profile().versions[0].0);
    yaml.replace(&version, "version: \"8.4.3\"").replace(
        "  deletionPolicy: WipeOut\n",
        &format!("{extra}  deletionPolicy: WipeOut\n"),
    )
}

async fn ready(env: &Env, name: &str) -> Duration {
    let started = Instant::now();
    env.eventually(&format!("{name} Ready"), POD_READY, || async {
        let ready = env.condition(KIND, name, "Ready").await?;
        Ok(ready.filter(|c| c.status == "True").map(|_| ()))
    })
    .await
    .unwrap();
    started.elapsed()
}

async fn secret_data(env: &Env, name: &str, key: &str) -> Vec<u8> {
    let secret = env.api::<Secret>().get(name).await.unwrap();
    secret.data.unwrap()[key].0.clone()
}

async fn pod_ip(env: &Env, pod: &str) -> String {
    env.api::<Pod>()
        .get(pod)
        .await
        .unwrap()
        .status
        .unwrap()
        .pod_ip
        .unwrap()
}

/// PEM files of a TLS Secret written for the `mariadb` client: `(ca, cert, key)`.
async fn client_files(env: &Env, secret: &str, dir: &std::path::Path) -> [String; 3] {
    let mut paths = Vec::new();
    for key in ["ca.crt", "tls.crt", "tls.key"] {
        let path = dir.join(format!("{secret}-{key}"));
        std::fs::write(&path, secret_data(env, secret, key).await).unwrap();
        paths.push(path.display().to_string());
    }
    paths.try_into().unwrap()
}

/// Runs `sql` with the `mariadb` client at `ip`; `tls` = `(ca, cert, key)` or plaintext.
fn mariadb(
    ip: &str,
    password: &str,
    tls: Option<&[String; 3]>,
    sql: &str,
) -> Result<String, String> {
    let mut cmd = Command::new("mariadb");
    cmd.args([
        "-h",
        ip,
        "-P",
        "3306",
        "-u",
        "root",
        "--batch",
        "--skip-column-names",
    ])
    .arg(format!("--password={password}"))
    .args(["--connect-timeout", "5", "-e", sql]);
    match tls {
        Some([ca, cert, key]) => {
            cmd.arg(format!("--ssl-ca={ca}"))
                .arg(format!("--ssl-cert={cert}"))
                .arg(format!("--ssl-key={key}"))
                .arg("--ssl-verify-server-cert=0");
        }
        None => {
            cmd.arg("--skip-ssl");
        }
    }
    let out = cmd.output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

fn pem_to_der(pem: &[u8]) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::pem_slice_iter(pem)
        .next()
        .unwrap()
        .unwrap()
        .to_vec()
}

/// Whether `leaf` (DER) verifies against `ca` (PEM) for `name`.
fn verifies_for(leaf: &[u8], ca: &[u8], name: &str) -> bool {
    let ca = pem_to_der(ca);
    let ca = rustls_pki_types::CertificateDer::from(ca);
    let anchor = webpki::anchor_from_trusted_cert(&ca).unwrap().to_owned();
    let leaf = rustls_pki_types::CertificateDer::from(leaf.to_vec());
    let cert = webpki::EndEntityCert::try_from(&leaf).unwrap();
    let name = rustls_pki_types::ServerName::try_from(name).unwrap();
    cert.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        &[],
        rustls_pki_types::UnixTime::now(),
        webpki::KeyUsage::server_auth(),
        None,
        None,
    )
    .and_then(|verified| {
        verified
            .end_entity()
            .verify_is_valid_for_subject_name(&name)
    })
    .is_ok()
}

/// Resident memory of the MariaDB servers running on this node, in MiB (one line per process).
fn server_memory() -> Vec<f64> {
    let out = Command::new("ps")
        .args(["-C", "mariadbd", "-o", "rss="])
        .output();
    out.map(|o| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| l.trim().parse::<f64>().ok())
            .map(|kib| kib / 1024.0)
            .collect()
    })
    .unwrap_or_default()
}

#[tokio::test]
async fn mysql_under_require_ssl_serves_its_secret_certificate_and_refuses_plaintext() {
    if !real_pods("mysql_under_require_ssl_serves_its_secret_certificate_and_refuses_plaintext") {
        return;
    }
    let env = Env::start(EnvOptions::default()).await.unwrap();
    env.create_ca_issuer("ca").await.unwrap();
    env.apply_yaml(&mysql("tls", "")).await.unwrap();
    let took = ready(&env, "tls").await;
    let ns = env.namespace().to_string();
    let ip = pod_ip(&env, "tls-0").await;

    // What the server presents is exactly the Secret's certificate.
    let chain = probe::mysql_served_chain(&format!("{ip}:3306"), None, Duration::from_secs(10))
        .await
        .unwrap();
    let secret_leaf = pem_to_der(&secret_data(&env, "tls-server-cert", "tls.crt").await);
    assert_eq!(
        chain[0], secret_leaf,
        "the served certificate is the Secret's"
    );
    let ca = secret_data(&env, "tls-server-cert", "ca.crt").await;
    for name in [format!("tls.{ns}.svc"), format!("tls-0.tls-pods.{ns}.svc")] {
        assert!(verifies_for(&chain[0], &ca, &name), "verifies for {name}");
    }
    assert!(!verifies_for(&chain[0], &ca, "other.example.com"));

    // The client certificate is taken; plaintext is refused, because of require_secure_transport.
    let dir = tempdir(&ns);
    let client = client_files(&env, "tls-client-cert", &dir).await;
    let password = String::from_utf8(secret_data(&env, "tls-auth", "password").await).unwrap();
    let version = mariadb(
        &ip,
        &password,
        Some(&client),
        "SHOW SESSION STATUS LIKE 'Ssl_version'",
    )
    .unwrap();
    assert!(version.contains("TLSv1"), "a TLS session: {version}");
    let refused = mariadb(&ip, &password, None, "SELECT 1").unwrap_err();
    mariadb(
        &ip,
        &password,
        Some(&client),
        "SET GLOBAL require_secure_transport=OFF",
    )
    .unwrap();
    assert_eq!(
        mariadb(&ip, &password, None, "SELECT 1").unwrap(),
        "1",
        "plaintext once allowed"
    );
    mariadb(
        &ip,
        &password,
        Some(&client),
        "SET GLOBAL require_secure_transport=ON",
    )
    .unwrap();
    println!(
        "pods_mysql: Ready {:.1}s after creation; plaintext refused ({refused}); mariadbd RSS MiB: {:?}",
        took.as_secs_f64(),
        server_memory()
    );
}

fn tempdir(ns: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("dbtls-pods-{ns}"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn a_deleted_pod_comes_back_with_its_data_and_certificates() {
    if !real_pods("a_deleted_pod_comes_back_with_its_data_and_certificates") {
        return;
    }
    let env = Env::start(EnvOptions::default()).await.unwrap();
    env.create_ca_issuer("ca").await.unwrap();
    env.apply_yaml(&mysql("keep", "")).await.unwrap();
    ready(&env, "keep").await;
    let ns = env.namespace().to_string();
    let dir = tempdir(&ns);
    let client = client_files(&env, "keep-client-cert", &dir).await;
    let password = String::from_utf8(secret_data(&env, "keep-auth", "password").await).unwrap();
    let ip = pod_ip(&env, "keep-0").await;
    mariadb(
        &ip,
        &password,
        Some(&client),
        "CREATE DATABASE kept; CREATE TABLE kept.t (v VARCHAR(20)); INSERT INTO kept.t VALUES ('still here')",
    )
    .unwrap();
    let served = |ip: String| async move {
        probe::mysql_served_chain(&format!("{ip}:3306"), None, Duration::from_secs(10))
            .await
            .map(|chain| probe::serial_of(&chain[0]))
    };
    let before = served(ip.clone()).await.unwrap();

    let pods = env.api::<Pod>();
    let old_uid = pods.get("keep-0").await.unwrap().uid();
    pods.delete("keep-0", &DeleteParams::default())
        .await
        .unwrap();
    env.eventually("keep-0 replaced and ready", POD_READY, || async {
        let pod = pods.get_opt("keep-0").await?;
        let replaced = pod.filter(|p| p.uid() != old_uid).filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        });
        Ok(replaced.map(|_| ()))
    })
    .await
    .unwrap();
    let ip = pod_ip(&env, "keep-0").await;
    let row = mariadb(&ip, &password, Some(&client), "SELECT v FROM kept.t").unwrap();
    assert_eq!(row, "still here");
    assert_eq!(served(ip).await.unwrap(), before, "the same certificate");
}

#[tokio::test]
async fn a_crashing_server_is_named_with_its_last_log_lines() {
    if !real_pods("a_crashing_server_is_named_with_its_last_log_lines") {
        return;
    }
    let env = Env::start(EnvOptions::default()).await.unwrap();
    env.create_ca_issuer("ca").await.unwrap();
    let wrong = "  podTemplate:\n    spec:\n      containers:\n      - name: mysql\n        args: [\"--ssl-cipher=NO-SUCH-CIPHER\"]\n";
    env.apply_yaml(&mysql("crash", wrong)).await.unwrap();
    let message = env
        .eventually("WorkloadReady naming the crash", POD_READY, || async {
            let c = env.condition(KIND, "crash", "WorkloadReady").await?;
            Ok(c.and_then(|c| c.message)
                .filter(|m| m.contains("pod crash-0") && m.contains("last exit")))
        })
        .await
        .unwrap();
    assert!(
        message.contains("Failed to set ciphers") || message.contains("SSL error"),
        "{message}"
    );
    let ready = env
        .condition(KIND, "crash", "Ready")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ready.status, "False");
    println!("pods_mysql: crash reported as: {message}");
}

#[tokio::test]
async fn a_missing_secret_keeps_the_pod_waiting_and_the_conditions_name_it() {
    if !real_pods("a_missing_secret_keeps_the_pod_waiting_and_the_conditions_name_it") {
        return;
    }
    let env = Env::start(EnvOptions::default()).await.unwrap();
    env.create_ca_issuer("ca").await.unwrap();
    env.apply_yaml("apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\ntype: kubernetes.io/basic-auth\nstringData:\n  username: root\n  password: from-the-user\n")
        .await
        .unwrap();
    env.apply_yaml(&mysql("waits", "  authSecret:\n    name: creds\n"))
        .await
        .unwrap();
    ready(&env, "waits").await;
    // The user's Secret goes; the pod is recreated and cannot start without it.
    env.api::<Secret>()
        .delete("creds", &DeleteParams::default())
        .await
        .unwrap();
    env.api::<Pod>()
        .delete("waits-0", &DeleteParams::default())
        .await
        .unwrap();
    let waiting = env
        .eventually("WorkloadReady quoting kubelet", POD_READY, || async {
            let c = env.condition(KIND, "waits", "WorkloadReady").await?;
            Ok(c.and_then(|c| c.message)
                .filter(|m| m.contains("pod waits-0") && m.contains("creds")))
        })
        .await
        .unwrap();
    assert!(waiting.contains("CreateContainerConfigError"), "{waiting}");
    let started = env
        .condition(KIND, "waits", "ProvisioningStarted")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(started.reason.as_deref(), Some("AuthSecretMissing"));
    assert!(started.message.unwrap().contains("creds"));
    println!("pods_mysql: a missing Secret reported as: {waiting}");
}
