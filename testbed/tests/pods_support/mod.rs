//! What the real-pods tests share: whether pods run, waiting for Ready, the TLS Secrets as
//! client files, the `mariadb` client, what a served certificate verifies for, and a client
//! that queries every pod over TLS in a loop.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dbtls_contract::DbKind;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use mysql_async::prelude::Queryable;
use testbed::harness::Env;
use testbed::harness::cluster::{self, Played};

/// A MariaDB pod initialises its data directory on first start (~10 s on the CI node).
pub const POD_READY: Duration = Duration::from_secs(240);

/// Whether pods really run; says why the test does nothing otherwise.
pub fn real_pods(test: &str) -> bool {
    let real = cluster::workloads().is_ok_and(|w| w == Played::ByCluster);
    if !real {
        println!(
            "{test}: needs pods that run (DBTLS_E2E_WORKLOADS=cluster on a cluster with a node); skipped"
        );
    }
    real
}

/// Waits until database `name` of `kind` is Ready; returns how long that took.
pub async fn ready(env: &Env, kind: DbKind, name: &str) -> Duration {
    let started = Instant::now();
    env.eventually(&format!("{name} Ready"), POD_READY, || async {
        let ready = env.condition(kind, name, "Ready").await?;
        Ok(ready.filter(|c| c.status == "True").map(|_| ()))
    })
    .await
    .unwrap();
    started.elapsed()
}

pub async fn secret_data(env: &Env, name: &str, key: &str) -> Vec<u8> {
    let secret = env.api::<Secret>().get(name).await.unwrap();
    secret.data.unwrap()[key].0.clone()
}

pub async fn pod_ip(env: &Env, pod: &str) -> String {
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
pub async fn client_files(env: &Env, secret: &str, dir: &std::path::Path) -> [String; 3] {
    let mut paths = Vec::new();
    for key in ["ca.crt", "tls.crt", "tls.key"] {
        let path = dir.join(format!("{secret}-{key}"));
        std::fs::write(&path, secret_data(env, secret, key).await).unwrap();
        paths.push(path.display().to_string());
    }
    paths.try_into().unwrap()
}

/// Runs `sql` with the `mariadb` client at `ip`; `tls` = `(ca, cert, key)` or plaintext.
pub fn mariadb(
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

pub fn pem_to_der(pem: &[u8]) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::pem_slice_iter(pem)
        .next()
        .unwrap()
        .unwrap()
        .to_vec()
}

/// Whether `leaf` (DER) verifies against `ca` (PEM) for `name`.
pub fn verifies_for(leaf: &[u8], ca: &[u8], name: &str) -> bool {
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
pub fn server_memory() -> Vec<f64> {
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

/// A scratch directory for the client files of one test namespace.
pub fn tempdir(ns: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("dbtls-pods-{ns}"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The admin password of database `name` (its `<name>-auth` Secret).
pub async fn password(env: &Env, name: &str) -> String {
    String::from_utf8(secret_data(env, &format!("{name}-auth"), "password").await).unwrap()
}

/// A requireSSL database of `kind` named `name` with `replicas` pods at `version`, whose pods
/// resolve names through `resolver` (the test node has no cluster DNS).
pub fn database(
    kind: DbKind,
    name: &str,
    version: &str,
    replicas: u32,
    namespace: &str,
    resolver: std::net::Ipv4Addr,
) -> String {
    let yaml = Env::tls_database(kind, name, "Issuer", "ca");
    let catalogue = format!("version: \"{}\"", kind.profile().versions[0].0);
    let extra = format!(
        "  replicas: {replicas}\n  podTemplate:\n    spec:\n      dnsPolicy: None\n      dnsConfig:\n        nameservers: [\"{resolver}\"]\n        searches: [\"{namespace}.svc.cluster.local\", \"svc.cluster.local\"]\n"
    );
    // The database's own document only: a ProxySQL's backend MySQL stays as the harness makes it.
    let split = yaml.find("\n---\n").map_or(yaml.len(), |i| i + 1);
    let (own, rest) = yaml.split_at(split);
    let own = own
        .replace(&catalogue, &format!("version: \"{version}\""))
        .replace(
            "  deletionPolicy: WipeOut\n",
            &format!("{extra}  deletionPolicy: WipeOut\n"),
        );
    format!("{own}{rest}")
}

/// `yaml` (a database from [`database`]) monitored: its pods run the mysqld_exporter sidecar.
pub fn monitored(yaml: &str) -> String {
    yaml.replacen(
        "  deletionPolicy: WipeOut\n",
        "  monitor:\n    agent: prometheus.io/operator\n  deletionPolicy: WipeOut\n",
        1,
    )
}

/// The exporter sidecar's port (KubeDB's default for the MySQL family).
pub const EXPORTER_PORT: u16 = 56790;

/// `mysql_up` as the exporter at `ip` reports it on one scrape.
pub async fn exporter_up(ip: &str) -> anyhow::Result<f64> {
    let metrics = format!("http://{ip}:{EXPORTER_PORT}");
    let (code, body) = testbed::harness::http::get(&metrics, "/metrics").await?;
    anyhow::ensure!(code == 200, "GET /metrics on {ip}: {code}");
    Ok(testbed::harness::http::sum_series(&body, "mysql_up", &[]))
}

/// How many pods of `name` have an exporter that logs in afresh: its open sessions (from
/// 127.0.0.1) are killed first, so `mysql_up` is 1 only if it logs in again with the certificate
/// files it has now. `client` = `(ca, cert, key)` the servers accept, for the kills.
pub async fn exporters_logging_in(
    env: &Env,
    name: &str,
    password: &str,
    client: &[String; 3],
) -> usize {
    let mut up = 0;
    for pod in env.pods_of(name).await.unwrap() {
        let Some(ip) = pod.status.and_then(|s| s.pod_ip) else {
            continue;
        };
        let sessions =
            "SELECT id FROM information_schema.PROCESSLIST WHERE host LIKE '127.0.0.1:%'";
        for id in mariadb(&ip, password, Some(client), sessions)
            .unwrap_or_default()
            .lines()
        {
            // A session may end between the two statements.
            let _ = mariadb(&ip, password, Some(client), &format!("KILL {id}"));
        }
        if exporter_up(&ip).await.is_ok_and(|v| v == 1.0) {
            up += 1;
        }
    }
    up
}

/// The resolver pods use for cluster names (started once per test process).
pub async fn resolver() -> std::net::Ipv4Addr {
    let kubeconfig = std::env::var(testbed::harness::cluster::REAL_CLUSTER_ENV).unwrap();
    testbed::harness::pod_dns::ensure(std::path::Path::new(&kubeconfig))
        .await
        .unwrap()
}

/// What the client saw: per round (every pod tried once), how many pods it could not use.
#[derive(Debug, Default)]
pub struct Seen {
    pub rounds: usize,
    pub failures: Vec<String>,
    pub most_down_at_once: usize,
}

/// Between a running `client_loop` and the test: when to stop, and how many rounds it made.
#[derive(Debug, Default)]
pub struct ClientControl {
    stop: AtomicBool,
    rounds: AtomicUsize,
}

impl ClientControl {
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Waits until the client has made `more` rounds after the ones made so far (each round
    /// tries every pod once), so that a test knows it worked before a change and after it.
    pub async fn after_rounds(&self, more: usize) {
        let target = self.rounds.load(Ordering::SeqCst) + more;
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.rounds.load(Ordering::SeqCst) < target {
            assert!(
                Instant::now() < deadline,
                "the client made {} of {target} rounds in 60 s",
                self.rounds.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The CAs a client verifies the servers with.
pub enum Trust {
    /// The server Secret's `ca.crt` when the client starts.
    ServerCa,
    /// These CAs (PEM), e.g. the old and the new one across an issuer change.
    Bundle(Vec<Vec<u8>>),
}

/// Connects to every pod of `name` over TLS (verified against `trust`, for the pod's DNS name,
/// with the client Secret's current certificate when `with_certificate`) and runs `SELECT 1`,
/// round after round, until `control` says stop.
pub async fn client_loop(
    env: &Env,
    name: &str,
    trust: &Trust,
    with_certificate: bool,
    control: &ClientControl,
) -> Seen {
    let ns = env.namespace().to_string();
    let roots: Vec<Vec<u8>> = match trust {
        Trust::ServerCa => vec![secret_data(env, &format!("{name}-server-cert"), "ca.crt").await],
        Trust::Bundle(cas) => cas.clone(),
    };
    let password = password(env, name).await;
    let pods: Api<Pod> = env.api();
    let replicas = pods
        .list(&ListParams::default().labels(&format!("app.kubernetes.io/instance={name}")))
        .await
        .unwrap()
        .items
        .len();
    let mut seen = Seen::default();
    while !control.stopped() {
        let round = Instant::now();
        let listed = pods
            .list(&ListParams::default().labels(&format!("app.kubernetes.io/instance={name}")))
            .await
            .unwrap();
        let ips: BTreeMap<String, Option<String>> = listed
            .items
            .iter()
            .map(|p| {
                (
                    p.name_any(),
                    p.status.as_ref().and_then(|s| s.pod_ip.clone()),
                )
            })
            .collect();
        let mut down = replicas.saturating_sub(ips.len());
        // The client certificate as the client Secret holds it now: across an issuer change
        // it comes from the new CA as soon as it is re-issued. One read for both, so that the
        // key always belongs to the certificate.
        let client = env
            .api::<Secret>()
            .get(&format!("{name}-client-cert"))
            .await
            .unwrap()
            .data
            .unwrap_or_default();
        let pem = |key: &str| client.get(key).map(|v| v.0.clone()).unwrap_or_default();
        let (cert, key) = (pem("tls.crt"), pem("tls.key"));
        let queries = ips.iter().map(|(pod, ip)| {
            let opts = ip.as_ref().map(|ip| {
                let ssl = mysql_async::SslOpts::default()
                    .with_root_certs(roots.iter().map(|ca| ca.clone().into()).collect())
                    .with_disable_built_in_roots(true)
                    .with_client_identity(with_certificate.then(|| {
                        mysql_async::ClientIdentity::new(cert.clone().into(), key.clone().into())
                    }))
                    .with_danger_tls_hostname_override(Some(format!("{pod}.{name}-pods.{ns}.svc")));
                mysql_async::OptsBuilder::default()
                    .ip_or_hostname(ip.clone())
                    .user(Some("root"))
                    .pass(Some(password.clone()))
                    .prefer_socket(false)
                    .ssl_opts(ssl)
            });
            async move {
                let opts = opts.ok_or_else(|| format!("{pod}: no IP"))?;
                let query = async {
                    let mut conn = mysql_async::Conn::new(opts).await?;
                    let one: Option<i64> = conn.query_first("SELECT 1").await?;
                    conn.disconnect().await?;
                    Ok::<_, mysql_async::Error>(one)
                };
                match tokio::time::timeout(Duration::from_secs(3), query).await {
                    Ok(Ok(Some(1))) => Ok(()),
                    Ok(Ok(other)) => Err(format!("{pod}: SELECT 1 gave {other:?}")),
                    Ok(Err(e)) => Err(format!("{pod}: {e}")),
                    Err(_) => Err(format!("{pod}: no answer within 3 s")),
                }
            }
        });
        for result in futures::future::join_all(queries).await {
            if let Err(e) = result {
                down += 1;
                seen.failures.push(e);
            }
        }
        seen.rounds += 1;
        control.rounds.fetch_add(1, Ordering::SeqCst);
        seen.most_down_at_once = seen.most_down_at_once.max(down);
        let rest = Duration::from_millis(250).saturating_sub(round.elapsed());
        tokio::time::sleep(rest).await;
    }
    seen
}

/// `pod → (uid, restart count)`.
pub async fn pod_runs(env: &Env, name: &str) -> BTreeMap<String, (String, i32)> {
    env.pods_of(name)
        .await
        .unwrap()
        .iter()
        .map(|p| {
            let restarts = p
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .map(|cs| cs.iter().map(|c| c.restart_count).sum())
                .unwrap_or(0);
            (p.name_any(), (p.uid().unwrap(), restarts))
        })
        .collect()
}

/// Deletes database `name` and waits until its pods are gone, so that a later test on the same
/// 2-core node does not share it with servers still running (a namespace deletion at the end
/// of a test does not wait for its pods).
pub async fn delete_and_wait(env: &Env, kind: DbKind, name: &str) {
    let api: Api<kube::api::DynamicObject> =
        Api::namespaced_with(env.client(), env.namespace(), &kind.api_resource());
    let _ = api.delete(name, &Default::default()).await;
    env.eventually(&format!("{name}'s pods gone"), POD_READY, || async {
        Ok(env.pods_of(name).await?.is_empty().then_some(()))
    })
    .await
    .unwrap();
}
