//! The real-pods tier for renewals (`DBTLS_E2E_WORKLOADS=cluster`): after a forced renewal
//! (cert-manager's `Issuing` condition, as `cmctl renew` sets it) every running MariaDB pod
//! presents the new certificate — a one-pod MySQL and a three-node Galera cluster reload online
//! (no container restarts), and with `--tls-reload=restart` the pods are restarted one at a
//! time — while a client connects over verified TLS to every pod, four times a second.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod pods_support;

use std::time::{Duration, Instant};

use dbtls_contract::DbKind;
use ops_manager::serving::probe::{self, ClientIdentity};
use pods_support::{
    ClientControl, Seen, Trust, client_loop, database, pod_runs, ready, real_pods, resolver,
    secret_data,
};
use testbed::harness::{Env, EnvOptions};

/// kubelet refreshes a projected Secret within its sync period; the ops-manager retries a
/// reload every 10 s until the pod presents the new serial.
const SERVED_WITHIN: Duration = Duration::from_secs(180);

/// The serial the Secret holds and each pod presents on `port`.
async fn serials(
    env: &Env,
    name: &str,
    port: u16,
    identity: Option<&ClientIdentity>,
) -> (String, Vec<String>) {
    let pem = secret_data(env, &format!("{name}-server-cert"), "tls.crt").await;
    let secret = probe::serial_of(&pods_support::pem_to_der(&pem)).unwrap();
    let mut presented = Vec::new();
    for pod in env.pods_of(name).await.unwrap() {
        let Some(ip) = pod.status.and_then(|s| s.pod_ip) else {
            presented.push("no IP".into());
            continue;
        };
        let addr = format!("{ip}:{port}");
        let chain = if port == 4567 {
            probe::tls_served_chain(&addr, identity, Duration::from_secs(5)).await
        } else {
            probe::mysql_served_chain(&addr, None, Duration::from_secs(5)).await
        };
        presented.push(match chain {
            Ok(chain) => probe::serial_of(&chain[0]).unwrap_or_default(),
            Err(e) => e.to_string(),
        });
    }
    (secret, presented)
}

/// Renews the server certificate of `name` with a client running; returns how long until every
/// pod presented the new serial (on `port`, and Galera's when `galera`) and what the client saw.
async fn renew_under_load(env: &Env, name: &str, galera: bool) -> (Duration, Seen) {
    let identity = ClientIdentity {
        cert_pem: secret_data(env, &format!("{name}-server-cert"), "tls.crt").await,
        key_pem: secret_data(env, &format!("{name}-server-cert"), "tls.key").await,
    };
    let (before, _) = serials(env, name, 3306, None).await;
    let control = ClientControl::default();
    let client = client_loop(env, name, &Trust::ServerCa, true, &control);
    let renewal = async {
        // The client works before the renewal...
        control.after_rounds(2).await;
        let started = Instant::now();
        env.renew_certificate(&format!("{name}-server-cert"))
            .await
            .unwrap();
        env.eventually(
            "every pod presenting the new serial",
            SERVED_WITHIN,
            || async {
                let (now, presented) = serials(env, name, 3306, None).await;
                let galera_ok = if galera {
                    // Galera's peers verify each other with the same CA: the old key still works.
                    let (_, on_galera) = serials(env, name, 4567, Some(&identity)).await;
                    on_galera.iter().all(|s| *s == now)
                } else {
                    true
                };
                Ok(
                    (now != before && presented.iter().all(|s| *s == now) && galera_ok)
                        .then_some(()),
                )
            },
        )
        .await
        .unwrap();
        let took = started.elapsed();
        // ...and after it, with every pod serving the renewed certificate.
        control.after_rounds(1).await;
        control.stop();
        took
    };
    let (seen, took) = tokio::join!(client, renewal);
    (took, seen)
}

#[tokio::test]
async fn a_one_pod_mysql_reloads_its_renewed_certificate_without_a_restart() {
    if !real_pods("a_one_pod_mysql_reloads_its_renewed_certificate_without_a_restart") {
        return;
    }
    let resolver = resolver().await;
    let env = Env::start(EnvOptions::default()).await.unwrap();
    env.create_ca_issuer("ca").await.unwrap();
    let ns = env.namespace().to_string();
    env.apply_yaml(&database(DbKind::MySQL, "one", "8.4.3", 1, &ns, resolver))
        .await
        .unwrap();
    ready(&env, DbKind::MySQL, "one").await;
    let runs = pod_runs(&env, "one").await;
    let (took, seen) = renew_under_load(&env, "one", false).await;
    assert_eq!(pod_runs(&env, "one").await, runs, "no restart");
    assert!(
        seen.failures.is_empty(),
        "client failures: {:?}",
        seen.failures
    );
    let events = env.events_for("one").await.unwrap();
    assert!(
        events.iter().any(|(r, _)| r == "CertificateReloaded"),
        "{events:?}"
    );
    println!(
        "pods_renewal: 1-pod MySQL presents the renewed certificate {:.1}s after the renewal (reload, no restart); client: {} rounds, {} failures",
        took.as_secs_f64(),
        seen.rounds,
        seen.failures.len()
    );
}

#[tokio::test]
async fn a_three_node_galera_cluster_reloads_its_renewed_certificate_without_a_restart() {
    if !real_pods("a_three_node_galera_cluster_reloads_its_renewed_certificate_without_a_restart") {
        return;
    }
    let resolver = resolver().await;
    let env = Env::start(EnvOptions::default()).await.unwrap();
    env.create_ca_issuer("ca").await.unwrap();
    let ns = env.namespace().to_string();
    let kind = DbKind::PerconaXtraDB;
    env.apply_yaml(&database(kind, "gr", "8.0.40", 3, &ns, resolver))
        .await
        .unwrap();
    ready(&env, kind, "gr").await;
    let runs = pod_runs(&env, "gr").await;
    let (took, seen) = renew_under_load(&env, "gr", true).await;
    assert_eq!(pod_runs(&env, "gr").await, runs, "no restart");
    assert!(
        seen.failures.is_empty(),
        "client failures: {:?}",
        seen.failures
    );
    println!(
        "pods_renewal: 3-node Galera cluster presents the renewed certificate on 3306 and 4567 {:.1}s after the renewal (reload, no restart); client: {} rounds, {} failures",
        took.as_secs_f64(),
        seen.rounds,
        seen.failures.len()
    );
}

#[tokio::test]
async fn with_restarts_only_the_pods_restart_one_at_a_time() {
    if !real_pods("with_restarts_only_the_pods_restart_one_at_a_time") {
        return;
    }
    let resolver = resolver().await;
    let env = Env::start(EnvOptions {
        ops_manager_args: vec!["--tls-reload=restart".to_string()],
        ..EnvOptions::default()
    })
    .await
    .unwrap();
    env.create_ca_issuer("ca").await.unwrap();
    let ns = env.namespace().to_string();
    env.apply_yaml(&database(DbKind::MySQL, "rr", "8.4.3", 3, &ns, resolver))
        .await
        .unwrap();
    ready(&env, DbKind::MySQL, "rr").await;
    let runs = pod_runs(&env, "rr").await;
    let (took, seen) = renew_under_load(&env, "rr", false).await;
    let after = pod_runs(&env, "rr").await;
    for (pod, (uid, _)) in &runs {
        assert_ne!(&after[pod].0, uid, "{pod} was restarted");
    }
    assert!(
        seen.most_down_at_once <= 1,
        "at most one pod unavailable at a time: {seen:?}"
    );
    let events = env.events_for("rr").await.unwrap();
    let evicted = events
        .iter()
        .filter(|(r, _)| r == "PodEvictedForCertificate")
        .count();
    assert_eq!(evicted, 3, "{events:?}");
    println!(
        "pods_renewal: 3-pod MySQL restarted pod by pod, presenting the renewed certificate {:.1}s after the renewal; client: {} rounds, {} failed queries, at most {} pod down at once",
        took.as_secs_f64(),
        seen.rounds,
        seen.failures.len(),
        seen.most_down_at_once
    );
}
