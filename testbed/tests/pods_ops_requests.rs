//! The real-pods tier for ReconfigureTLS OpsRequests (`DBTLS_E2E_WORKLOADS=cluster`): on
//! running MariaDB pods, with a client querying every pod over verified TLS four times a
//! second, a rotation and a change to an issuer with another CA finish with no client error
//! and no pod restarted. The client verifies the servers against the old and the new CA and
//! presents the client certificate the client Secret holds at that moment: from the old CA
//! until it is re-issued, from the new one right after, which every pod accepts because the
//! ops-manager made every server trust both CAs (the CA bundle) before re-issuing anything.
//! The databases are monitored: once the servers refuse the old CA, every exporter sidecar
//! still logs in, with its re-issued certificate, without a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod pods_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dbtls_contract::DbKind;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use ops_manager::serving::probe;
use pods_support::{
    ClientControl, Trust, client_files, client_loop, database, delete_and_wait,
    exporters_logging_in, mariadb, monitored, password, pod_runs, ready, real_pods, resolver,
    secret_data, tempdir,
};
use serde_json::{Value, json};
use testbed::harness::{Env, EnvOptions};

const FINISHED_WITHIN: Duration = Duration::from_secs(300);

fn ops_api(env: &Env, kind: DbKind) -> Api<DynamicObject> {
    let resource = match kind {
        DbKind::PerconaXtraDB => {
            ApiResource::erase::<dbtls_contract::api::ops::PerconaXtraDBOpsRequest>(&())
        }
        _ => ApiResource::erase::<dbtls_contract::api::ops::MySQLOpsRequest>(&()),
    };
    Api::namespaced_with(env.client(), env.namespace(), &resource)
}

/// Creates a ReconfigureTLS request with `tls` for `name`; returns how long until Successful.
async fn request_to_success(
    env: &Env,
    kind: DbKind,
    name: &str,
    request: &str,
    tls: Value,
) -> Duration {
    let started = Instant::now();
    let body = json!({
        "apiVersion": "ops.kubedb.com/v1alpha1",
        "kind": format!("{}OpsRequest", kind.profile().kind),
        "metadata": {"name": request},
        "spec": {"type": "ReconfigureTLS", "databaseRef": {"name": name}, "tls": tls, "timeout": "5m"},
    });
    ops_api(env, kind)
        .create(
            &PostParams::default(),
            &serde_json::from_value(body).unwrap(),
        )
        .await
        .unwrap();
    env.eventually(
        &format!("{request} Successful"),
        FINISHED_WITHIN,
        || async {
            let o = ops_api(env, kind).get(request).await?;
            let phase = o.data["status"]["phase"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            assert!(phase != "Failed", "{request} failed: {}", o.data["status"]);
            anyhow::ensure!(phase == "Successful", "{}", o.data["status"]["conditions"]);
            Ok(Some(()))
        },
    )
    .await
    .unwrap();
    started.elapsed()
}

/// Runs a ReconfigureTLS request with `tls` against `name` while the client runs; returns how
/// long the request took and what the client saw.
async fn under_load(
    env: &Env,
    kind: DbKind,
    name: &str,
    request: &str,
    tls: Value,
    trust: Trust,
) -> (Duration, pods_support::Seen) {
    let control = ClientControl::default();
    let client = client_loop(env, name, &trust, true, &control);
    let run = async {
        // The client works before the request and after it succeeded.
        control.after_rounds(2).await;
        let took = request_to_success(env, kind, name, request, tls).await;
        control.after_rounds(1).await;
        control.stop();
        took
    };
    let (seen, took) = tokio::join!(client, run);
    (took, seen)
}

async fn proven(env: &Env, kind: DbKind, name: &str, replicas: u32, version: &str) {
    let resolver = resolver().await;
    let ns = env.namespace().to_string();
    // Monitored: each pod's exporter sidecar holds a metrics-exporter certificate, re-issued by
    // both requests like the others.
    env.apply_yaml(&monitored(&database(
        kind, name, version, replicas, &ns, resolver,
    )))
    .await
    .unwrap();
    ready(env, kind, name).await;
    let password = password(env, name).await;
    let dir = tempdir(&ns);
    let client = client_files(env, &format!("{name}-client-cert"), &dir).await;
    env.eventually("every exporter up", FINISHED_WITHIN, || async {
        let up = exporters_logging_in(env, name, &password, &client).await;
        Ok((up == replicas as usize).then_some(()))
    })
    .await
    .unwrap();
    let runs = pod_runs(env, name).await;

    let (took, seen) = under_load(
        env,
        kind,
        name,
        "rotate",
        json!({"rotateCertificates": true}),
        Trust::ServerCa,
    )
    .await;
    assert!(
        seen.failures.is_empty(),
        "rotate: client failures: {:?}",
        seen.failures
    );
    assert_eq!(pod_runs(env, name).await, runs, "rotate: no restart");
    println!(
        "pods_ops_requests: {kind} with {replicas} pod(s): rotate {:.1}s; client {} rounds, {} failures, 0 pods restarted",
        took.as_secs_f64(),
        seen.rounds,
        seen.failures.len()
    );

    let old_ca = secret_data(env, &format!("{name}-server-cert"), "ca.crt").await;
    let old_client = probe::ClientIdentity {
        cert_pem: secret_data(env, &format!("{name}-client-cert"), "tls.crt").await,
        key_pem: secret_data(env, &format!("{name}-client-cert"), "tls.key").await,
    };
    assert_eq!(refusing(env, name, &old_client).await, 0);
    let new_ca = env.create_ca_issuer("other").await.unwrap();
    let (took, seen) = under_load(
        env,
        kind,
        name,
        "change-issuer",
        json!({"issuerRef": {"apiGroup": "cert-manager.io", "kind": "Issuer", "name": "other"}}),
        Trust::Bundle(vec![old_ca, new_ca.clone().into_bytes()]),
    )
    .await;
    assert!(
        seen.failures.is_empty(),
        "issuer change: client failures: {:?}",
        seen.failures
    );
    assert_eq!(pod_runs(env, name).await, runs, "issuer change: no restart");
    let served_ca = secret_data(env, &format!("{name}-server-cert"), "ca.crt").await;
    assert_eq!(String::from_utf8_lossy(&served_ca).trim(), new_ca.trim());
    // Once every pod serves the re-issued certificate, the servers' CA file holds the new CA
    // only.
    env.eventually(
        "the CA bundle narrowed to the new CA",
        FINISHED_WITHIN,
        || async {
            let bundle = secret_data(env, &format!("{name}-ca-bundle"), "ca.crt").await;
            Ok((String::from_utf8_lossy(&bundle).trim() == new_ca.trim()).then_some(()))
        },
    )
    .await
    .unwrap();
    // ... and the servers forget the old CA (reloaded until they refuse its client certificate).
    let forgetting = Instant::now();
    env.eventually("every pod refuses the old CA", FINISHED_WITHIN, || async {
        let refused = refusing(env, name, &old_client).await;
        Ok((refused == replicas as usize).then_some(()))
    })
    .await
    .unwrap();
    println!(
        "pods_ops_requests: {kind} with {replicas} pod(s): the old CA refused by every pod {:.1}s after the change",
        forgetting.elapsed().as_secs_f64()
    );
    // The exporters, never restarted, log in with their re-issued certificate: one from the old
    // CA would now be refused.
    let client = client_files(env, &format!("{name}-client-cert"), &dir).await;
    env.eventually(
        "every exporter logs in with the new CA's certificate",
        FINISHED_WITHIN,
        || async {
            let up = exporters_logging_in(env, name, &password, &client).await;
            Ok((up == replicas as usize).then_some(()))
        },
    )
    .await
    .unwrap();
    assert_eq!(pod_runs(env, name).await, runs, "no exporter restarted");
    println!(
        "pods_ops_requests: {kind} with {replicas} pod(s): issuer change {:.1}s; client {} rounds, {} failures, 0 pods restarted",
        took.as_secs_f64(),
        seen.rounds,
        seen.failures.len()
    );
    delete_and_wait(env, kind, name).await;
}

/// How many pods of database `name` refuse a TLS handshake presenting `identity`.
async fn refusing(env: &Env, name: &str, identity: &probe::ClientIdentity) -> usize {
    let mut refused = 0;
    for pod in env.pods_of(name).await.unwrap() {
        let Some(ip) = pod.status.and_then(|s| s.pod_ip) else {
            continue;
        };
        let addr = format!("{ip}:3306");
        let asked = probe::mysql_accepts_client(&addr, identity, Duration::from_secs(5));
        if !asked.await.unwrap_or(false) {
            refused += 1;
        }
    }
    refused
}

#[tokio::test]
async fn a_one_pod_mysql_rotates_and_changes_issuer_under_load() {
    if !real_pods("a_one_pod_mysql_rotates_and_changes_issuer_under_load") {
        return;
    }
    let env = Env::start(EnvOptions::default()).await.unwrap();
    env.create_ca_issuer("ca").await.unwrap();
    proven(&env, DbKind::MySQL, "solo", 1, "8.4.3").await;
}

#[tokio::test]
async fn a_three_node_galera_cluster_rotates_and_changes_issuer_under_load() {
    if !real_pods("a_three_node_galera_cluster_rotates_and_changes_issuer_under_load") {
        return;
    }
    let env = Env::start(EnvOptions::default()).await.unwrap();
    env.create_ca_issuer("ca").await.unwrap();
    proven(&env, DbKind::PerconaXtraDB, "trio", 3, "8.0.40").await;
}

/// Polls the pods of `name` until `stop`: the most that were not Ready at once.
async fn most_down(env: &Env, name: &str, replicas: usize, stop: Arc<AtomicBool>) -> usize {
    let mut most = 0;
    while !stop.load(Ordering::SeqCst) {
        let pods = env.pods_of(name).await.unwrap();
        let ready = pods
            .iter()
            .filter(|p| dbtls_runtime::pods::is_ready(p) && p.metadata.deletion_timestamp.is_none())
            .count();
        most = most.max(replicas.saturating_sub(ready));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    most
}

/// Runs a request that rolls the pods; returns (took, most pods down at once, pods replaced).
async fn rolled(
    env: &Env,
    kind: DbKind,
    name: &str,
    replicas: usize,
    request: &str,
    tls: Value,
) -> (Duration, usize, usize) {
    let before: Vec<String> = pod_runs(env, name)
        .await
        .values()
        .map(|(uid, _)| uid.clone())
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let watch = most_down(env, name, replicas, stop.clone());
    let run = async {
        let took = request_to_success(env, kind, name, request, tls).await;
        stop.store(true, Ordering::SeqCst);
        took
    };
    let (down, took) = tokio::join!(watch, run);
    let after = pod_runs(env, name).await;
    let replaced = after
        .values()
        .filter(|(uid, _)| !before.contains(uid))
        .count();
    (took, down, replaced)
}

/// Every node of Galera cluster `name` is Synced in one Primary component of `replicas`,
/// replicates with TLS only (`tls`) or without TLS, never bridged, and a write on the first
/// node is read on the last. `client`: the client's TLS files (requireSSL), or plaintext.
async fn galera_healthy(
    env: &Env,
    name: &str,
    replicas: usize,
    client: Option<&[String; 3]>,
    tls: bool,
    row: &str,
) {
    let password = pods_support::password(env, name).await;
    let mut ips = Vec::new();
    for i in 0..replicas {
        let pod = format!("{name}-{i}");
        let ip = pods_support::pod_ip(env, &pod).await;
        let status = |variable: &str| {
            mariadb(
                &ip,
                &password,
                client,
                &format!(
                    "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = '{variable}'"
                ),
            )
            .unwrap()
        };
        assert_eq!(status("WSREP_CLUSTER_SIZE"), replicas.to_string(), "{pod}");
        assert_eq!(status("WSREP_CLUSTER_STATUS"), "Primary", "{pod}");
        assert_eq!(status("WSREP_LOCAL_STATE_COMMENT"), "Synced", "{pod}");
        let options = mariadb(&ip, &password, client, "SELECT @@wsrep_provider_options").unwrap();
        // Galera lists the socket.ssl options only when TLS is configured.
        assert_eq!(
            options.contains("socket.ssl = YES"),
            tls,
            "{pod}: {options}"
        );
        assert!(
            !options.contains("socket.dynamic = YES"),
            "{pod}: {options}"
        );
        ips.push(ip);
    }
    mariadb(
        &ips[0],
        &password,
        client,
        &format!("CREATE DATABASE IF NOT EXISTS shop; CREATE TABLE IF NOT EXISTS shop.t (v VARCHAR(20) PRIMARY KEY); INSERT INTO shop.t VALUES ('{row}')"),
    )
    .unwrap();
    let read = mariadb(
        &ips[replicas - 1],
        &password,
        client,
        &format!("SELECT v FROM shop.t WHERE v = '{row}'"),
    )
    .unwrap();
    assert_eq!(
        read,
        row,
        "replicated from {name}-0 to {name}-{}",
        replicas - 1
    );
}

async fn remove_and_add(kind: DbKind, version: &str, replicas: usize) {
    let resolver = resolver().await;
    let env = Env::start(EnvOptions::default()).await.unwrap();
    env.create_ca_issuer("ca").await.unwrap();
    let ns = env.namespace().to_string();
    let name = format!("roll{replicas}");
    let db =
        database(kind, &name, version, replicas as u32, &ns, resolver).replace("WipeOut", "Delete");
    env.apply_yaml(&db).await.unwrap();
    ready(&env, kind, &name).await;
    let galera = kind == DbKind::PerconaXtraDB && replicas > 1;
    let what = if galera {
        format!("Galera cluster of {replicas}")
    } else {
        format!("{kind} with {replicas} pod(s)")
    };
    let (took, down, replaced) = rolled(
        &env,
        kind,
        &name,
        replicas,
        "remove",
        json!({"remove": true}),
    )
    .await;
    assert!(down <= 1, "remove: {down} pods down at once");
    assert_eq!(
        replaced, replicas,
        "remove: every pod on the template without TLS"
    );
    let ip = env.pods_of(&name).await.unwrap()[0]
        .status
        .clone()
        .unwrap()
        .pod_ip
        .unwrap();
    assert!(
        probe::mysql_served_chain(&format!("{ip}:3306"), None, Duration::from_secs(5))
            .await
            .is_err(),
        "no TLS any more"
    );
    if galera {
        galera_healthy(&env, &name, replicas, None, false, "without-tls").await;
    }
    println!(
        "pods_ops_requests: {what}: remove TLS {:.1}s; at most {down} pod down at once; {replaced} pods replaced (rolled)",
        took.as_secs_f64()
    );
    let add = json!({"requireSSL": true, "issuerRef": {"apiGroup": "cert-manager.io", "kind": "Issuer", "name": "ca"}});
    let (took, down, replaced) = rolled(&env, kind, &name, replicas, "add", add).await;
    assert!(down <= 1, "add: {down} pods down at once");
    assert_eq!(
        replaced, replicas,
        "add: every pod on the template with TLS"
    );
    let serial = {
        let pem = secret_data(&env, &format!("{name}-server-cert"), "tls.crt").await;
        probe::serial_of(&pods_support::pem_to_der(&pem)).unwrap()
    };
    for pod in env.pods_of(&name).await.unwrap() {
        let ip = pod.status.unwrap().pod_ip.unwrap();
        let chain = probe::mysql_served_chain(&format!("{ip}:3306"), None, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(probe::serial_of(&chain[0]).unwrap(), serial);
    }
    if galera {
        let dir = pods_support::tempdir(&ns);
        let client = pods_support::client_files(&env, &format!("{name}-client-cert"), &dir).await;
        galera_healthy(&env, &name, replicas, Some(&client), true, "with-tls").await;
    }
    println!(
        "pods_ops_requests: {what}: add TLS {:.1}s; at most {down} pod down at once; {replaced} pods replaced (rolled)",
        took.as_secs_f64()
    );
    delete_and_wait(&env, kind, &name).await;
}

#[tokio::test]
async fn removing_and_adding_tls_rolls_one_pod_at_a_time() {
    if !real_pods("removing_and_adding_tls_rolls_one_pod_at_a_time") {
        return;
    }
    remove_and_add(DbKind::MySQL, "8.4.3", 1).await;
    remove_and_add(DbKind::MySQL, "8.4.3", 3).await;
}

/// Galera nodes with TLS only and nodes without TLS cannot replicate with each other: the
/// provisioner switches a running cluster through nodes that accept both, in two rolling
/// restarts, never more than one node down, and ends as one Primary component of three that
/// replicates.
#[tokio::test]
async fn a_three_node_galera_cluster_turns_tls_off_and_on_without_splitting() {
    if !real_pods("a_three_node_galera_cluster_turns_tls_off_and_on_without_splitting") {
        return;
    }
    remove_and_add(DbKind::PerconaXtraDB, "8.0.40", 3).await;
}
