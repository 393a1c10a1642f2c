//! The real-pods tier for PerconaXtraDB (`DBTLS_E2E_WORKLOADS=cluster`): three pods of one
//! database form one Galera cluster whose replication runs over TLS with the database's server
//! certificate. Checked on the running servers: every node is Synced in a Primary component of
//! size 3, Galera's replication port presents exactly the Secret's certificate, a write on one
//! node is read on another, the state transfers that filled the joiners were encrypted, and
//! each node's exporter sidecar reaches its requireSSL server.
//!
//! The node's image for `percona/percona-xtradb-cluster` is MariaDB + galera-4 behind
//! `testbed/images/percona-xtradb-cluster-entrypoint.sh`; the test node has no cluster DNS, so
//! the pods resolve their peers through the harness's resolver (`harness::pod_dns`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod pods_support;

use std::time::{Duration, Instant};

use dbtls_contract::DbKind;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use ops_manager::serving::probe::{self, ClientIdentity};
use pods_support::{
    POD_READY, client_files, database, exporter_up, mariadb, monitored, password, pem_to_der,
    pod_ip, ready, real_pods, resolver, secret_data, server_memory, tempdir,
};
use testbed::harness::{Env, EnvOptions};

const KIND: DbKind = DbKind::PerconaXtraDB;
const NAME: &str = "gal";
const GALERA_PORT: u16 = 4567;

/// A global status variable of the server at `ip`.
fn status(ip: &str, password: &str, client: &[String; 3], variable: &str) -> String {
    mariadb(
        ip,
        password,
        Some(client),
        &format!(
            "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = '{variable}'"
        ),
    )
    .unwrap()
}

/// The container log of `pod`, read from the kubelet's log files (the test runs on the node; the
/// test node's API server cannot reach its kubelet by name for `kubectl logs`).
async fn log_of(env: &Env, pod: &str) -> String {
    let uid = env.api::<Pod>().get(pod).await.unwrap().uid().unwrap();
    let dir = format!(
        "/var/log/pods/{}_{pod}_{uid}/{}",
        env.namespace(),
        KIND.profile().container
    );
    let mut log = String::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        log.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default());
    }
    log
}

#[tokio::test]
async fn three_pods_form_one_galera_cluster_that_replicates_over_tls() {
    if !real_pods("three_pods_form_one_galera_cluster_that_replicates_over_tls") {
        return;
    }
    let resolver = resolver().await;
    let env = Env::start(EnvOptions::default()).await.unwrap();
    env.create_ca_issuer("ca").await.unwrap();
    let ns = env.namespace().to_string();
    let created = Instant::now();
    // Monitored: every node runs the mysqld_exporter sidecar (PerconaXtraDB's per-alias layout).
    env.apply_yaml(&monitored(&database(
        KIND, NAME, "8.0.40", 3, &ns, resolver,
    )))
    .await
    .unwrap();
    let took = ready(&env, KIND, NAME).await;

    let password = password(&env, NAME).await;
    let client = client_files(&env, &format!("{NAME}-client-cert"), &tempdir(&ns)).await;
    let server_secret = format!("{NAME}-server-cert");
    let leaf = pem_to_der(&secret_data(&env, &server_secret, "tls.crt").await);
    let identity = ClientIdentity {
        cert_pem: secret_data(&env, &server_secret, "tls.crt").await,
        key_pem: secret_data(&env, &server_secret, "tls.key").await,
    };
    let mut ips = Vec::new();
    for i in 0..3 {
        let pod = format!("{NAME}-{i}");
        let ip = pod_ip(&env, &pod).await;
        // One Primary component of three, every node in sync.
        assert_eq!(
            status(&ip, &password, &client, "WSREP_CLUSTER_SIZE"),
            "3",
            "{pod}"
        );
        assert_eq!(
            status(&ip, &password, &client, "WSREP_CLUSTER_STATUS"),
            "Primary"
        );
        assert_eq!(
            status(&ip, &password, &client, "WSREP_LOCAL_STATE_COMMENT"),
            "Synced"
        );
        let options = mariadb(
            &ip,
            &password,
            Some(&client),
            "SELECT @@wsrep_provider_options",
        )
        .unwrap();
        assert!(options.contains("socket.ssl = YES"), "{pod}: {options}");
        // The replication port speaks TLS and presents the Secret's certificate.
        let chain = probe::tls_served_chain(
            &format!("{ip}:{GALERA_PORT}"),
            Some(&identity),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        assert_eq!(
            chain[0], leaf,
            "{pod} replicates with the Secret's certificate"
        );
        // Its exporter reaches the requireSSL server: over TLS, with the exporter certificate.
        let up = env
            .eventually(&format!("{pod}'s exporter up"), POD_READY, || async {
                Ok(Some(exporter_up(&ip).await?).filter(|up| *up == 1.0))
            })
            .await;
        assert!(up.is_ok(), "{pod}: {up:?}");
        ips.push(ip);
    }

    // Replication works: written on one node, read on another.
    mariadb(
        &ips[0],
        &password,
        Some(&client),
        "CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY, v VARCHAR(20)); INSERT INTO shop.t VALUES (1, 'replicated')",
    )
    .unwrap();
    let row = mariadb(&ips[2], &password, Some(&client), "SELECT v FROM shop.t").unwrap();
    assert_eq!(row, "replicated");

    // The joiners' state transfers ran through TLS tunnels.
    for joiner in [1, 2] {
        let log = log_of(&env, &format!("{NAME}-{joiner}")).await;
        assert!(
            log.contains("Using stunnel for SSL encryption"),
            "{NAME}-{joiner}'s state transfer was not encrypted:\n{}",
            log.lines()
                .filter(|l| l.contains("SST") || l.contains("sst"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    println!(
        "pods_percona_xtradb: 3-node Galera cluster Ready {:.1}s after creation ({:.1}s waiting for Ready); mariadbd RSS MiB: {:?}",
        created.elapsed().as_secs_f64(),
        took.as_secs_f64(),
        server_memory()
    );
}
