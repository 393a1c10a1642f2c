//! Renewed certificates reach the running servers, on the testbed and the real control plane
//! with the workload stand-in: its pods run stand-in servers (`testbed::sim_server`) that, like
//! real ones, present what they read at start and read again only when told to. A forced renewal
//! (cert-manager's `Issuing` condition, as `cmctl renew` sets it) is reloaded by every pod of a
//! MySQL without a restart; SQL Server, which cannot reload, has its pods evicted one at a time;
//! an admin login that fails is named in `TLSServing` and restarts nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dbtls_contract::DbKind;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::watcher;
use ops_manager::serving::probe;
use testbed::harness::{Env, EnvOptions};

const WAIT: Duration = Duration::from_secs(90);

/// A TLS database; MySQL at 8.4.3 (5.7, the catalogue's first version, cannot reload).
fn database(kind: DbKind, name: &str, extra: &str) -> String {
    Env::tls_database(kind, name, "Issuer", "ca")
        .replace("version: \"5.7.44\"", "version: \"8.4.3\"")
        .replace(
            "  deletionPolicy: WipeOut\n",
            &format!("{extra}  deletionPolicy: WipeOut\n"),
        )
}

async fn serving(env: &Env, kind: DbKind, name: &str, serial: &str) -> String {
    env.eventually(
        &format!("{name}: TLSServing for {serial}"),
        WAIT,
        || async {
            let c = env.condition(kind, name, "TLSServing").await?;
            Ok(c.filter(|c| c.status == "True")
                .and_then(|c| c.message)
                .filter(|m| m.contains(serial)))
        },
    )
    .await
    .unwrap()
}

/// Waits until the database serves its first certificate; returns that serial.
async fn first_serial(env: &Env, kind: DbKind, name: &str) -> String {
    env.eventually(&format!("{name}: TLSServing"), WAIT, || async {
        let c = env.condition(kind, name, "TLSServing").await?;
        Ok(c.filter(|c| c.status == "True").map(|_| ()))
    })
    .await
    .unwrap();
    let serial = serial(env, &format!("{name}-server-cert")).await;
    serving(env, kind, name, &serial).await;
    serial
}

async fn serial(env: &Env, secret: &str) -> String {
    let secret = env.api::<Secret>().get(secret).await.unwrap();
    let pem = secret.data.unwrap()["tls.crt"].0.clone();
    let der = rustls_pki_types::CertificateDer::from_pem_slice(&pem).unwrap();
    probe::serial_of(&der).unwrap()
}

use rustls_pki_types::pem::PemObject;

/// `pod name → uid` of the database's pods.
async fn pods(env: &Env, name: &str) -> BTreeMap<String, String> {
    env.pods_of(name)
        .await
        .unwrap()
        .iter()
        .map(|p| (p.name_any(), p.uid().unwrap()))
        .collect()
}

/// The serial each pod presents on the MySQL port.
async fn presented(env: &Env, name: &str) -> Vec<String> {
    let mut serials = Vec::new();
    for pod in env.pods_of(name).await.unwrap() {
        let ip = pod.status.unwrap().pod_ip.unwrap();
        let chain = probe::mysql_served_chain(&format!("{ip}:3306"), None, Duration::from_secs(5))
            .await
            .unwrap();
        serials.push(probe::serial_of(&chain[0]).unwrap());
    }
    serials
}

/// Waits until the clock has left the second `pods` started in, so that a certificate issued
/// now is younger than every running server.
async fn after_the_pods_started(env: &Env, name: &str) {
    let started: Vec<String> = env
        .pods_of(name)
        .await
        .unwrap()
        .iter()
        .filter_map(|p| {
            let status = p
                .status
                .as_ref()?
                .container_statuses
                .as_ref()?
                .first()?
                .clone();
            Some(status.state?.running?.started_at?.0.to_string())
        })
        .collect();
    let latest = started.into_iter().max().unwrap();
    env.eventually("a new second", Duration::from_secs(5), || async {
        Ok((dbtls_runtime::conditions::now() > latest).then_some(()))
    })
    .await
    .unwrap();
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_renewed_certificate_is_reloaded_by_every_pod_without_a_restart() {
    let env = Env::start(EnvOptions::default()).await.unwrap();
    env.create_ca_issuer("ca").await.unwrap();
    env.apply_yaml(&database(DbKind::MySQL, "live", "  replicas: 3\n"))
        .await
        .unwrap();
    let before = first_serial(&env, DbKind::MySQL, "live").await;
    assert_eq!(presented(&env, "live").await, vec![before.clone(); 3]);
    let uids = pods(&env, "live").await;

    let renewed = Instant::now();
    env.renew_certificate("live-server-cert").await.unwrap();
    let after = env
        .eventually("a new serial", WAIT, || async {
            let s = serial(&env, "live-server-cert").await;
            Ok((s != before).then_some(s))
        })
        .await
        .unwrap();
    env.eventually("every pod presenting the new serial", WAIT, || async {
        Ok((presented(&env, "live").await == vec![after.clone(); 3]).then_some(()))
    })
    .await
    .unwrap();
    let took = renewed.elapsed();
    let message = serving(&env, DbKind::MySQL, "live", &after).await;
    assert_eq!(
        message,
        format!("3 pods serve the current certificate (serial {after})")
    );
    assert_eq!(pods(&env, "live").await, uids, "no pod was restarted");

    let events = env.events_for("live").await.unwrap();
    let reloaded = events
        .iter()
        .filter(|(reason, _)| reason == "CertificateReloaded")
        .count();
    assert_eq!(reloaded, 3, "{events:?}");
    assert!(!events.iter().any(|(r, _)| r == "PodEvictedForCertificate"));
    let (_, metrics) =
        testbed::harness::http::get(&env.metrics_url("ops-manager").unwrap(), "/metrics")
            .await
            .unwrap();
    assert_eq!(
        metric(
            &metrics,
            "dbtls_certificate_reloads_total{kind=\"MySQL\",method=\"reload\",result=\"success\","
        ),
        3.0
    );
    assert!(metrics.contains("dbtls_served_certificate_expiry_timestamp_seconds{"));
    println!(
        "e2e_renewal: 3 pods serve the renewed certificate {:.1}s after the renewal was asked for (reload, no restart)",
        took.as_secs_f64()
    );
}

#[tokio::test]
async fn a_kind_that_cannot_reload_restarts_its_pods_one_at_a_time() {
    let env = Env::start(EnvOptions::default()).await.unwrap();
    env.create_ca_issuer("ca").await.unwrap();
    env.apply_yaml(&database(DbKind::MSSQLServer, "ms", "  replicas: 3\n"))
        .await
        .unwrap();
    let before = first_serial(&env, DbKind::MSSQLServer, "ms").await;
    let uids = pods(&env, "ms").await;
    after_the_pods_started(&env, "ms").await;

    // The fewest pods that existed at once while the restarts ran.
    let fewest = Arc::new(AtomicUsize::new(usize::MAX));
    let watch = {
        let api: Api<Pod> = env.api();
        let fewest = fewest.clone();
        tokio::spawn(async move {
            let mut present = BTreeMap::new();
            let mut listed = false;
            let config = watcher::Config::default().labels("app.kubernetes.io/instance=ms");
            let mut events = watcher::watcher(api, config).boxed();
            while let Some(Ok(event)) = events.next().await {
                match event {
                    watcher::Event::Apply(p) | watcher::Event::InitApply(p) => {
                        present.insert(p.name_any(), ());
                    }
                    watcher::Event::Delete(p) => {
                        present.remove(&p.name_any());
                    }
                    watcher::Event::InitDone => listed = true,
                    watcher::Event::Init => {}
                }
                if listed {
                    fewest.fetch_min(present.len(), Ordering::SeqCst);
                }
            }
        })
    };

    env.renew_certificate("ms-server-cert").await.unwrap();
    let after = env
        .eventually("a new serial", WAIT, || async {
            let s = serial(&env, "ms-server-cert").await;
            Ok((s != before).then_some(s))
        })
        .await
        .unwrap();
    serving(&env, DbKind::MSSQLServer, "ms", &after).await;
    watch.abort();
    let now = pods(&env, "ms").await;
    assert_eq!(now.len(), 3);
    for (pod, uid) in &uids {
        assert_ne!(now.get(pod), Some(uid), "{pod} was restarted");
    }
    assert!(
        fewest.load(Ordering::SeqCst) >= 2,
        "at most one pod down at a time (fewest present: {})",
        fewest.load(Ordering::SeqCst)
    );
    let events = env.events_for("ms").await.unwrap();
    let evictions: Vec<&String> = events
        .iter()
        .filter(|(reason, _)| reason == "PodEvictedForCertificate")
        .map(|(_, note)| note)
        .collect();
    assert_eq!(evictions.len(), 3, "{events:?}");
    assert!(
        evictions[0].contains("ms-2"),
        "highest ordinal first: {evictions:?}"
    );
}

#[tokio::test]
async fn an_admin_login_that_fails_is_named_and_restarts_nothing() {
    let env = Env::start(EnvOptions::default()).await.unwrap();
    env.create_ca_issuer("ca").await.unwrap();
    env.apply_yaml("apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\ntype: kubernetes.io/basic-auth\nstringData:\n  username: root\n  password: first-password\n")
        .await
        .unwrap();
    env.apply_yaml(&database(
        DbKind::MySQL,
        "locked",
        "  authSecret:\n    name: creds\n",
    ))
    .await
    .unwrap();
    let before = first_serial(&env, DbKind::MySQL, "locked").await;
    let uids = pods(&env, "locked").await;

    // The Secret no longer holds the password the server was initialised with.
    env.api::<Secret>()
        .patch(
            "creds",
            &PatchParams::default(),
            &Patch::Merge(
                serde_json::json!({"stringData": {"password": "changed-behind-its-back"}}),
            ),
        )
        .await
        .unwrap();
    env.renew_certificate("locked-server-cert").await.unwrap();
    let condition = env
        .eventually("TLSServing naming the login failure", WAIT, || async {
            let c = env.condition(DbKind::MySQL, "locked", "TLSServing").await?;
            Ok(c.filter(|c| {
                c.status == "False" && c.reason.as_deref() == Some("ServingCheckFailed")
            }))
        })
        .await
        .unwrap();
    let message = condition.message.unwrap();
    assert!(message.contains("pod locked-0"), "{message}");
    assert!(
        message.contains("Access denied for user 'root'"),
        "{message}"
    );
    assert!(
        message.contains(&format!("presents serial {before}")),
        "{message}"
    );
    assert_eq!(pods(&env, "locked").await, uids, "no restart");
    let events = env.events_for("locked").await.unwrap();
    assert!(!events.iter().any(|(r, _)| r == "PodEvictedForCertificate"));
}

/// A renewal while pods are being restarted, and the ops-manager killed in the middle: every
/// pod ends on the newest serial and none is restarted twice for one serial. (On the testbed
/// the restarts are fast, so where exactly the kill lands varies; the outcome may not.)
#[tokio::test]
async fn a_killed_ops_manager_and_a_second_renewal_restart_no_pod_twice() {
    if testbed::harness::cluster::testbed_only(
        "a_killed_ops_manager_and_a_second_renewal_restart_no_pod_twice",
        "kills and restarts the operator process mid-way",
    ) {
        return;
    }
    let env = Env::start(EnvOptions::default()).await.unwrap();
    env.create_ca_issuer("ca").await.unwrap();
    env.apply_yaml(&database(DbKind::MSSQLServer, "crash", "  replicas: 3\n"))
        .await
        .unwrap();
    let first = first_serial(&env, DbKind::MSSQLServer, "crash").await;
    after_the_pods_started(&env, "crash").await;
    // Counted from the API server's request log, not from Events: an ops-manager killed
    // between an eviction and its Event loses the Event, never the restart.
    let log = env.api_server().unwrap().request_log();
    let evictions = || async {
        log.snapshot()
            .iter()
            .filter(|r| {
                r.subresource.as_deref() == Some("eviction")
                    && r.method == "POST"
                    && (200..300).contains(&r.status)
                    && r.name.as_deref().is_some_and(|n| n.starts_with("crash-"))
            })
            .count()
    };

    env.renew_certificate("crash-server-cert").await.unwrap();
    env.eventually("a first eviction", WAIT, || async {
        Ok((evictions().await >= 1).then_some(()))
    })
    .await
    .unwrap();
    env.kill_operator("ops-manager").await.unwrap();
    let second = serial(&env, "crash-server-cert").await;
    assert_ne!(second, first);
    env.restart_operator("ops-manager").await.unwrap();
    serving(&env, DbKind::MSSQLServer, "crash", &second).await;
    assert_eq!(
        evictions().await,
        3,
        "each pod restarted once for one renewal"
    );

    // A second renewal while the restarts for it run: the newest serial wins.
    after_the_pods_started(&env, "crash").await;
    env.renew_certificate("crash-server-cert").await.unwrap();
    env.eventually("restarts for the second renewal", WAIT, || async {
        Ok((evictions().await >= 4).then_some(()))
    })
    .await
    .unwrap();
    after_the_pods_started(&env, "crash").await;
    env.renew_certificate("crash-server-cert").await.unwrap();
    let newest = env
        .eventually("a third serial", WAIT, || async {
            let s = serial(&env, "crash-server-cert").await;
            Ok((s != second).then_some(s))
        })
        .await
        .unwrap();
    let newest = env
        .eventually("the newest serial settled", WAIT, || async {
            let s = serial(&env, "crash-server-cert").await;
            Ok((s != newest || evictions().await >= 4).then_some(s))
        })
        .await
        .unwrap();
    serving(&env, DbKind::MSSQLServer, "crash", &newest).await;
    let total = evictions().await;
    // At most one restart per pod and renewal (a pod that starts after a renewal already
    // has the newest files and is not restarted again).
    assert!(
        (4..=9).contains(&total),
        "3 restarts for the first renewal, at most 3 for each of the two overlapping ones: {total}"
    );
}
