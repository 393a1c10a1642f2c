//! ReconfigureTLS OpsRequests, carried out by the ops-manager, on the testbed and on the real
//! control plane (with the workload stand-in, whose pods run stand-in servers that present what
//! they read at start): rotate for every kind, change of issuer, remove and add TLS, the queue,
//! and what fails or is skipped, with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dbtls_contract::DbKind;
use dbtls_contract::api::ops::{
    MSSQLServerOpsRequest, MySQLOpsRequest, PerconaXtraDBOpsRequest, ProxySQLOpsRequest,
    SinglestoreOpsRequest,
};
use dbtls_contract::certmanager::Certificate;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use kube::runtime::WatchStreamExt;
use ops_manager::serving::probe;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};
use testbed::harness::{Env, EnvOptions};

const WAIT: Duration = Duration::from_secs(120);

fn ops_resource(kind: DbKind) -> ApiResource {
    match kind {
        DbKind::MySQL => ApiResource::erase::<MySQLOpsRequest>(&()),
        DbKind::PerconaXtraDB => ApiResource::erase::<PerconaXtraDBOpsRequest>(&()),
        DbKind::ProxySQL => ApiResource::erase::<ProxySQLOpsRequest>(&()),
        DbKind::Singlestore => ApiResource::erase::<SinglestoreOpsRequest>(&()),
        DbKind::MSSQLServer => ApiResource::erase::<MSSQLServerOpsRequest>(&()),
    }
}

fn ops_api(env: &Env, kind: DbKind) -> Api<DynamicObject> {
    Api::namespaced_with(env.client(), env.namespace(), &ops_resource(kind))
}

/// A ReconfigureTLS request for `db` with `tls` (and `extra` spec fields).
fn request(kind: DbKind, name: &str, db: &str, tls: Value, extra: Value) -> Value {
    let reference = if kind == DbKind::ProxySQL {
        "proxyRef"
    } else {
        "databaseRef"
    };
    let mut spec = json!({"type": "ReconfigureTLS", reference: {"name": db}, "tls": tls});
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        spec[k] = v;
    }
    json!({
        "apiVersion": "ops.kubedb.com/v1alpha1",
        "kind": ops_resource(kind).kind,
        "metadata": {"name": name},
        "spec": spec,
    })
}

async fn create(env: &Env, kind: DbKind, body: &Value) -> Result<(), kube::Error> {
    let object: DynamicObject = serde_json::from_value(body.clone()).unwrap();
    ops_api(env, kind)
        .create(&PostParams::default(), &object)
        .await
        .map(|_| ())
}

/// `(phase, message of its newest condition)` of a request.
async fn state(env: &Env, kind: DbKind, name: &str) -> (String, String) {
    let o = ops_api(env, kind).get(name).await.unwrap();
    let status = o.data.get("status").cloned().unwrap_or(Value::Null);
    let phase = status["phase"].as_str().unwrap_or_default().to_string();
    let message = status["conditions"]
        .as_array()
        .and_then(|c| c.last())
        .and_then(|c| c["message"].as_str())
        .unwrap_or_default()
        .to_string();
    (phase, message)
}

/// Waits until the request is in `phase`; returns the message of its newest condition.
async fn until_phase(env: &Env, kind: DbKind, name: &str, phase: &str) -> String {
    env.eventually(&format!("{kind} request {name}: {phase}"), WAIT, || async {
        let (now, message) = state(env, kind, name).await;
        if now == phase {
            return Ok(Some(message));
        }
        assert!(
            !["Successful", "Failed", "Skipped"].contains(&now.as_str()),
            "{name} ended {now}: {message}"
        );
        anyhow::bail!("now {now:?}: {message}")
    })
    .await
    .unwrap()
}

async fn serial(env: &Env, secret: &str) -> String {
    let secret = env.api::<Secret>().get(secret).await.unwrap();
    let pem = secret.data.unwrap()["tls.crt"].0.clone();
    let der = rustls_pki_types::CertificateDer::from_pem_slice(&pem).unwrap();
    probe::serial_of(&der).unwrap()
}

/// Waits until every pod of the database serves its server certificate; returns the serial.
async fn serving(env: &Env, kind: DbKind, name: &str) -> String {
    env.eventually(&format!("{name}: TLSServing"), WAIT, || async {
        let c = env.condition(kind, name, "TLSServing").await?;
        Ok(c.filter(|c| c.status == "True").map(|_| ()))
    })
    .await
    .unwrap();
    serial(env, &format!("{name}-server-cert")).await
}

fn database(kind: DbKind, name: &str, issuer: &str, extra: &str) -> String {
    Env::tls_database(kind, name, "Issuer", issuer)
        .replace("version: \"5.7.44\"", "version: \"8.4.3\"")
        .replace(
            "  deletionPolicy: WipeOut\n",
            &format!("{extra}  deletionPolicy: WipeOut\n"),
        )
}

async fn secret_key(env: &Env, name: &str, key: &str) -> Vec<u8> {
    let secret = env.api::<Secret>().get(name).await.unwrap();
    secret.data.unwrap_or_default()[key].0.clone()
}

/// How many pods of database `db` refuse a handshake presenting `identity`.
async fn refusing(env: &Env, db: &str, identity: &probe::ClientIdentity) -> usize {
    let mut refused = 0;
    for pod in env.pods_of(db).await.unwrap() {
        let ip = pod.status.and_then(|s| s.pod_ip).unwrap();
        if !probe::mysql_accepts_client(&format!("{ip}:3306"), identity, WAIT)
            .await
            .unwrap_or(false)
        {
            refused += 1;
        }
    }
    refused
}

/// What a watcher saw during an issuer change of database `move`.
#[derive(Debug, Default)]
struct DualTrust {
    /// The bundle once held two CAs, the new one among them.
    both_trusted: bool,
    /// Handshakes with the new client certificate every pod accepted.
    new_client_accepted: usize,
    violations: Vec<String>,
}

/// Polls database `move` until `stop`: the server Secret never holds the new CA before the
/// bundle does, and once the client Secret holds a certificate from the new CA, every pod
/// accepts it at once (they trusted the new CA before anything was re-issued).
async fn dual_trust_watch(
    client: kube::Client,
    ns: String,
    new_ca: String,
    stop: Arc<AtomicBool>,
) -> DualTrust {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client, &ns);
    let data = |s: Option<Secret>, key: &str| -> Vec<u8> {
        s.and_then(|s| s.data)
            .and_then(|d| d.get(key).map(|v| v.0.clone()))
            .unwrap_or_default()
    };
    let is_new = |pem: &[u8]| String::from_utf8_lossy(pem).trim() == new_ca.trim();
    let mut seen = DualTrust::default();
    while !stop.load(Ordering::SeqCst) {
        let server = secrets.get_opt("move-server-cert").await.ok().flatten();
        let client_secret = secrets.get_opt("move-client-cert").await.ok().flatten();
        let bundle = data(
            secrets.get_opt("move-ca-bundle").await.ok().flatten(),
            "ca.crt",
        );
        let bundle_text = String::from_utf8_lossy(&bundle).to_string();
        let holds_new = bundle_text.contains(new_ca.trim());
        if holds_new && bundle_text.matches("BEGIN CERTIFICATE").count() == 2 {
            seen.both_trusted = true;
        }
        if is_new(&data(server, "ca.crt")) && !holds_new {
            seen.violations
                .push("server Secret from the new CA, bundle without it".into());
        }
        if is_new(&data(client_secret.clone(), "ca.crt")) {
            let identity = probe::ClientIdentity {
                cert_pem: data(client_secret.clone(), "tls.crt"),
                key_pem: data(client_secret, "tls.key"),
            };
            let listed = pods
                .list(&kube::api::ListParams::default().labels("app.kubernetes.io/instance=move"))
                .await
                .map(|l| l.items)
                .unwrap_or_default();
            for pod in listed {
                let Some(ip) = pod.status.and_then(|s| s.pod_ip) else {
                    continue;
                };
                match probe::mysql_accepts_client(&format!("{ip}:3306"), &identity, WAIT).await {
                    Ok(true) => seen.new_client_accepted += 1,
                    other => seen.violations.push(format!(
                        "{}: refused the new client certificate: {other:?}",
                        pod.metadata.name.unwrap_or_default()
                    )),
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    seen
}

async fn spec_of(env: &Env, kind: DbKind, name: &str) -> Value {
    let api: Api<DynamicObject> =
        Api::namespaced_with(env.client(), env.namespace(), &kind.api_resource());
    api.get(name).await.unwrap().data["spec"].clone()
}

#[tokio::test]
async fn rotate_reissues_every_certificate_and_every_pod_serves_the_new_one_for_each_kind() {
    let env = Env::start(EnvOptions::default()).await.unwrap();
    env.create_ca_issuer("ca").await.unwrap();
    for kind in DbKind::ALL {
        let name = format!("rot-{}", kind.profile().plural);
        env.apply_yaml(&database(kind, &name, "ca", ""))
            .await
            .unwrap();
    }
    for kind in DbKind::ALL {
        let name = format!("rot-{}", kind.profile().plural);
        let before = serving(&env, kind, &name).await;
        // Every Certificate issued once before the rotation (the server's alone is served).
        env.eventually(&format!("{name}: CertificatesReady"), WAIT, || async {
            let c = env.condition(kind, &name, "CertificatesReady").await?;
            Ok(c.filter(|c| c.status == "True").map(|_| ()))
        })
        .await
        .unwrap();
        let body = request(
            kind,
            "rotate",
            &name,
            json!({"rotateCertificates": true}),
            json!({"timeout": "5m"}),
        );
        create(&env, kind, &body).await.unwrap();
        let message = until_phase(&env, kind, "rotate", "Successful").await;
        assert!(
            message.starts_with("Successfully completed reconfigureTLS"),
            "{message}"
        );
        let after = serial(&env, &format!("{name}-server-cert")).await;
        assert_ne!(after, before, "{kind}: a new certificate");
        let served = env
            .condition(kind, &name, "TLSServing")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(served.status, "True");
        assert!(
            served.message.unwrap().contains(&after),
            "{kind}: every pod serves it"
        );
        // Every Certificate was re-issued, not only the server's.
        let client = env
            .api::<Certificate>()
            .get(&format!("{name}-client-cert"))
            .await;
        if let Ok(client) = client {
            assert!(
                client.status.unwrap().revision.unwrap() >= 2,
                "{kind}: client re-issued"
            );
        }
        env.eventually("the database says the request finished", WAIT, || async {
            let c = env.condition(kind, &name, "OpsRequestProgressing").await?;
            Ok(c.filter(|c| {
                c.status == "False"
                    && c.message
                        .as_deref()
                        .is_some_and(|m| m.ends_with("rotate, is Successful"))
            }))
        })
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn a_new_issuer_reissues_every_certificate_from_its_ca_and_the_spec_says_so() {
    let env = Env::start(EnvOptions::default()).await.unwrap();
    env.create_ca_issuer("old").await.unwrap();
    let new_ca = env.create_ca_issuer("new").await.unwrap();
    env.apply_yaml(&database(DbKind::MySQL, "move", "old", "  replicas: 3\n"))
        .await
        .unwrap();
    serving(&env, DbKind::MySQL, "move").await;
    let old_ca = secret_key(&env, "move-server-cert", "ca.crt").await;
    let old_client = probe::ClientIdentity {
        cert_pem: secret_key(&env, "move-client-cert", "tls.crt").await,
        key_pem: secret_key(&env, "move-client-cert", "tls.key").await,
    };
    assert_eq!(
        refusing(&env, "move", &old_client).await,
        0,
        "before the change every pod accepts the client certificate"
    );
    let stop = Arc::new(AtomicBool::new(false));
    let watch = tokio::spawn(dual_trust_watch(
        env.client(),
        env.namespace().to_string(),
        new_ca.clone(),
        stop.clone(),
    ));
    let body = request(
        DbKind::MySQL,
        "to-new",
        "move",
        json!({"issuerRef": {"apiGroup": "cert-manager.io", "kind": "Issuer", "name": "new"}}),
        json!({}),
    );
    create(&env, DbKind::MySQL, &body).await.unwrap();
    until_phase(&env, DbKind::MySQL, "to-new", "Successful").await;
    stop.store(true, Ordering::SeqCst);
    let seen = watch.await.unwrap();
    assert!(
        seen.both_trusted,
        "the bundle never held the old and the new CA: {seen:?}"
    );
    assert!(
        seen.new_client_accepted > 0 && seen.violations.is_empty(),
        "{seen:?}"
    );
    // Afterwards the bundle holds the new CA only, and the probe is gone.
    env.eventually("the bundle narrowed, the probe deleted", WAIT, || async {
        let bundle = secret_key(&env, "move-ca-bundle", "ca.crt").await;
        let probe = env.api::<Certificate>().get_opt("move-ca-probe").await?;
        let probe_secret = env.api::<Secret>().get_opt("move-ca-probe").await?;
        anyhow::ensure!(
            String::from_utf8_lossy(&bundle).trim() == new_ca.trim(),
            "bundle: {}",
            String::from_utf8_lossy(&bundle)
        );
        anyhow::ensure!(
            probe.is_none() && probe_secret.is_none(),
            "probe still there"
        );
        Ok(Some(()))
    })
    .await
    .unwrap();
    assert_ne!(old_ca, new_ca.as_bytes());
    // And the servers forgot the old CA: its client certificate is refused by every pod.
    env.eventually(
        "every pod refuses the old CA's client certificate",
        WAIT,
        || async {
            let refused = refusing(&env, "move", &old_client).await;
            Ok((refused == 3).then_some(()))
        },
    )
    .await
    .unwrap();
    assert_eq!(
        spec_of(&env, DbKind::MySQL, "move").await["tls"]["issuerRef"]["name"],
        "new"
    );
    for alias in ["server", "client"] {
        let secret = env
            .api::<Secret>()
            .get(&format!("move-{alias}-cert"))
            .await
            .unwrap();
        let ca = &secret.data.unwrap()["ca.crt"].0;
        assert_eq!(
            String::from_utf8_lossy(ca).trim(),
            new_ca.trim(),
            "{alias}: from the new CA"
        );
    }
    let now = serial(&env, "move-server-cert").await;
    let served = env
        .condition(DbKind::MySQL, "move", "TLSServing")
        .await
        .unwrap()
        .unwrap();
    assert!(served.message.unwrap().contains(&now));
}

#[tokio::test]
async fn remove_then_add_tls_roll_the_workload_and_keep_the_secrets() {
    let env = Env::start(EnvOptions::default()).await.unwrap();
    env.create_ca_issuer("ca").await.unwrap();
    // Delete keeps the issued Secrets when TLS goes (WipeOut deletes them).
    let db = database(DbKind::MySQL, "flip", "ca", "  replicas: 2\n").replace("WipeOut", "Delete");
    env.apply_yaml(&db).await.unwrap();
    assert_eq!(
        spec_of(&env, DbKind::MySQL, "flip").await["requireSSL"],
        true
    );
    serving(&env, DbKind::MySQL, "flip").await;
    let uids = || async {
        let mut uids: Vec<String> = env
            .pods_of("flip")
            .await
            .unwrap()
            .iter()
            .filter_map(|p| p.metadata.uid.clone())
            .collect();
        uids.sort();
        uids
    };
    let before = uids().await;
    create(
        &env,
        DbKind::MySQL,
        &request(
            DbKind::MySQL,
            "off",
            "flip",
            json!({"remove": true}),
            json!({}),
        ),
    )
    .await
    .unwrap();
    until_phase(&env, DbKind::MySQL, "off", "Successful").await;
    let spec = spec_of(&env, DbKind::MySQL, "flip").await;
    assert!(
        spec.get("tls").is_none() && spec.get("requireSSL").is_none(),
        "{spec}"
    );
    let workload = env
        .condition(DbKind::MySQL, "flip", "WorkloadReady")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        workload.status, "True",
        "rolled out: {:?}",
        workload.message
    );
    let after = uids().await;
    assert_eq!(after.len(), 2);
    assert!(
        after.iter().all(|u| !before.contains(u)),
        "every pod restarted on the new template: {before:?} → {after:?}"
    );
    assert!(
        env.api::<Secret>().get("flip-server-cert").await.is_ok(),
        "Secrets kept"
    );
    // Released once the provisioner reports the rollout without TLS over.
    env.eventually("flip's Certificates gone", WAIT, || async {
        let gone = env.api::<Certificate>().get_opt("flip-server-cert").await?;
        anyhow::ensure!(gone.is_none(), "still there");
        Ok(Some(()))
    })
    .await
    .unwrap();

    let add = request(
        DbKind::MySQL,
        "on",
        "flip",
        json!({"requireSSL": true, "issuerRef": {"apiGroup": "cert-manager.io", "kind": "Issuer", "name": "ca"},
               "certificates": [{"alias": "client", "subject": {"organizations": ["mysql"], "organizationalUnits": ["client"]}}]}),
        json!({}),
    );
    create(&env, DbKind::MySQL, &add).await.unwrap();
    until_phase(&env, DbKind::MySQL, "on", "Successful").await;
    let spec = spec_of(&env, DbKind::MySQL, "flip").await;
    assert_eq!(spec["requireSSL"], true);
    assert_eq!(
        spec["tls"]["certificates"][0]["subject"]["organizationalUnits"][0],
        "client"
    );
    let now = serial(&env, "flip-server-cert").await;
    let served = env
        .condition(DbKind::MySQL, "flip", "TLSServing")
        .await
        .unwrap()
        .unwrap();
    assert!(served.message.unwrap().contains(&now));
}

/// The ops-manager killed after the certificates were re-issued from the new CA, before every
/// pod was made to forget the old one: the restarted ops-manager still makes that check,
/// with the old client certificate it kept in the bundle Secret (its memory is gone).
#[tokio::test]
async fn a_restarted_ops_manager_still_makes_every_pod_forget_the_old_ca() {
    let env = Env::start(EnvOptions::default()).await.unwrap();
    env.create_ca_issuer("old").await.unwrap();
    let new_ca = env.create_ca_issuer("new").await.unwrap();
    env.apply_yaml(&database(DbKind::MySQL, "again", "old", "  replicas: 2\n"))
        .await
        .unwrap();
    serving(&env, DbKind::MySQL, "again").await;
    let old_client = probe::ClientIdentity {
        cert_pem: secret_key(&env, "again-client-cert", "tls.crt").await,
        key_pem: secret_key(&env, "again-client-cert", "tls.key").await,
    };
    let body = request(
        DbKind::MySQL,
        "to-new",
        "again",
        json!({"issuerRef": {"apiGroup": "cert-manager.io", "kind": "Issuer", "name": "new"}}),
        json!({}),
    );
    create(&env, DbKind::MySQL, &body).await.unwrap();
    // The window (the hold over, the old CA not yet forgotten by every pod) can be short: follow
    // the Secrets' watch events, in order, and restart as soon as the server Secret holds the
    // new CA (re-issued: the hold is over) while the bundle Secret still keeps the old client
    // certificate.
    let events = kube::runtime::watcher(
        env.api::<Secret>(),
        kube::runtime::watcher::Config::default(),
    )
    .applied_objects();
    let mut events = std::pin::pin!(events);
    let (mut kept, mut reissued) = (false, false);
    let in_window = tokio::time::timeout(WAIT, async {
        while let Some(Ok(secret)) = futures::StreamExt::next(&mut events).await {
            match secret.metadata.name.as_deref() {
                Some("again-ca-bundle") => {
                    kept = secret
                        .metadata
                        .annotations
                        .is_some_and(|a| a.contains_key("kubedb.com/retired-ca-serial"));
                }
                Some("again-server-cert") => {
                    let ca = secret
                        .data
                        .and_then(|d| d.get("ca.crt").map(|v| v.0.clone()))
                        .unwrap_or_default();
                    reissued = String::from_utf8_lossy(&ca).trim() == new_ca.trim();
                }
                _ => continue,
            }
            if kept && reissued {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(
        in_window,
        Ok(true),
        "the server certificate was never re-issued while the bundle kept the old client certificate"
    );
    env.restart_operator("ops-manager").await.unwrap();
    until_phase(&env, DbKind::MySQL, "to-new", "Successful").await;
    env.eventually(
        "every pod refuses the old CA's client certificate",
        WAIT,
        || async {
            let refused = refusing(&env, "again", &old_client).await;
            Ok((refused == 2).then_some(()))
        },
    )
    .await
    .unwrap();
    env.eventually(
        "the bundle Secret lets go of the old client certificate",
        WAIT,
        || async {
            let bundle = env.api::<Secret>().get("again-ca-bundle").await?;
            let data = bundle.data.unwrap_or_default();
            Ok((!data.contains_key("retired-client.key")).then_some(()))
        },
    )
    .await
    .unwrap();
}

/// How a Galera StatefulSet's template replicates: "tls", "bridge" (socket.dynamic) or "plain".
fn galera_mode(sts: &k8s_openapi::api::apps::v1::StatefulSet) -> &'static str {
    let options = sts
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers.first())
        .and_then(|c| c.args.clone())
        .unwrap_or_default()
        .into_iter()
        .find_map(|a| {
            a.strip_prefix("--wsrep-provider-options=")
                .map(String::from)
        })
        .unwrap_or_default();
    match (
        options.contains("socket.ssl=YES"),
        options.contains("socket.dynamic=YES"),
    ) {
        (true, true) => "bridge",
        (true, false) => "tls",
        _ => "plain",
    }
}

/// Records each template the StatefulSet `name` replicates with, in order, until `stop`.
async fn galera_modes(
    client: kube::Client,
    ns: String,
    name: &str,
    stop: Arc<AtomicBool>,
) -> Vec<&'static str> {
    let api: Api<k8s_openapi::api::apps::v1::StatefulSet> = Api::namespaced(client, &ns);
    let mut seen: Vec<&'static str> = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        if let Ok(Some(sts)) = api.get_opt(name).await {
            let mode = galera_mode(&sts);
            if seen.last() != Some(&mode) {
                seen.push(mode);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    seen
}

/// Galera nodes with TLS only and nodes without TLS cannot replicate with each other: turning
/// TLS off and on for a three-node PerconaXtraDB goes through a template that accepts both,
/// never straight from one to the other, and each request ends once the target runs.
#[tokio::test]
async fn a_galera_cluster_turns_tls_off_and_on_through_a_bridge() {
    let env = Env::start(EnvOptions::default()).await.unwrap();
    env.create_ca_issuer("ca").await.unwrap();
    let kind = DbKind::PerconaXtraDB;
    let db = database(kind, "gal", "ca", "  replicas: 3\n").replace("WipeOut", "Delete");
    env.apply_yaml(&db).await.unwrap();
    serving(&env, kind, "gal").await;
    let stop = Arc::new(AtomicBool::new(false));
    let watch = tokio::spawn(galera_modes(
        env.client(),
        env.namespace().to_string(),
        "gal",
        stop.clone(),
    ));
    create(
        &env,
        kind,
        &request(kind, "off", "gal", json!({"remove": true}), json!({})),
    )
    .await
    .unwrap();
    until_phase(&env, kind, "off", "Successful").await;
    let add = json!({"requireSSL": true, "issuerRef": {"apiGroup": "cert-manager.io", "kind": "Issuer", "name": "ca"}});
    create(&env, kind, &request(kind, "on", "gal", add, json!({})))
        .await
        .unwrap();
    until_phase(&env, kind, "on", "Successful").await;
    stop.store(true, Ordering::SeqCst);
    let modes = watch.await.unwrap();
    assert_eq!(
        modes,
        ["tls", "bridge", "plain", "bridge", "tls"],
        "every switch passes through the bridge"
    );
    // State transfers are encrypted again once every node replicates with TLS only.
    let config = env.api::<Secret>().get("gal-config").await.unwrap();
    let annotations = config.metadata.annotations.unwrap_or_default();
    assert_eq!(
        annotations
            .get("kubedb.com/state-transfer-tls")
            .map(String::as_str),
        Some("encrypted")
    );
    let workload = env
        .condition(kind, "gal", "WorkloadReady")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(workload.status, "True", "{:?}", workload.message);
}

#[tokio::test]
async fn one_request_at_a_time_and_every_refusal_reads_well() {
    let env = Env::start(EnvOptions::default()).await.unwrap();
    env.create_ca_issuer("ca").await.unwrap();
    env.apply_yaml(&database(DbKind::MySQL, "q", "ca", ""))
        .await
        .unwrap();
    env.apply_yaml(&Env::no_tls_database(DbKind::MySQL, "plain"))
        .await
        .unwrap();
    serving(&env, DbKind::MySQL, "q").await;

    // An issuer that does not exist: the first request waits in CertificateSynced, the second
    // waits for it; the first times out naming the step, then the second runs.
    let stuck = request(
        DbKind::MySQL,
        "a-stuck",
        "q",
        json!({"issuerRef": {"kind": "Issuer", "name": "missing"}}),
        json!({"timeout": "3s"}),
    );
    create(&env, DbKind::MySQL, &stuck).await.unwrap();
    until_phase(&env, DbKind::MySQL, "a-stuck", "Progressing").await;
    let running = env
        .eventually("the database says a request runs", WAIT, || async {
            let c = env
                .condition(DbKind::MySQL, "q", "OpsRequestProgressing")
                .await?;
            Ok(c.filter(|c| c.status == "True"))
        })
        .await
        .unwrap();
    assert!(running.message.unwrap().starts_with("MySQLOpsRequest"));
    let later = request(
        DbKind::MySQL,
        "b-later",
        "q",
        json!({"rotateCertificates": true}),
        json!({}),
    );
    create(&env, DbKind::MySQL, &later).await.unwrap();
    let waiting = until_phase(&env, DbKind::MySQL, "b-later", "Pending").await;
    assert!(
        waiting.contains("waiting for MySQLOpsRequest") && waiting.contains("a-stuck"),
        "{waiting}"
    );
    let failed = until_phase(&env, DbKind::MySQL, "a-stuck", "Failed").await;
    assert!(
        failed.starts_with("step CertificateSynced did not finish within spec.timeout 3s"),
        "{failed}"
    );
    // Put back a working issuer so the next request can run.
    let fix = request(
        DbKind::MySQL,
        "c-fix",
        "q",
        json!({"issuerRef": {"kind": "Issuer", "name": "ca"}}),
        json!({}),
    );
    create(&env, DbKind::MySQL, &fix).await.unwrap();
    until_phase(&env, DbKind::MySQL, "b-later", "Successful").await;
    until_phase(&env, DbKind::MySQL, "c-fix", "Successful").await;

    let cases = [
        (
            "missing",
            "nowhere",
            json!({"rotateCertificates": true}),
            "Failed",
            "spec.databaseRef nowhere: no such database",
        ),
        (
            "rotate-plain",
            "plain",
            json!({"rotateCertificates": true}),
            "Failed",
            "has no spec.tls: there is no certificate to rotate",
        ),
        (
            "remove-plain",
            "plain",
            json!({"remove": true}),
            "Skipped",
            "has no TLS: nothing to remove",
        ),
    ];
    for (name, db, tls, phase, text) in cases {
        create(
            &env,
            DbKind::MySQL,
            &request(DbKind::MySQL, name, db, tls, json!({})),
        )
        .await
        .unwrap();
        let message = until_phase(&env, DbKind::MySQL, name, phase).await;
        assert!(message.contains(text), "{name}: {message}");
    }
}

#[tokio::test]
async fn admission_refuses_what_can_never_work() {
    let env = Env::start(EnvOptions::default()).await.unwrap();
    let refused = |body: Value| {
        let env = &env;
        async move {
            match create(env, DbKind::MySQL, &body).await {
                Err(kube::Error::Api(s)) => s.message,
                other => panic!("accepted: {other:?}"),
            }
        }
    };
    let issuer = json!({"kind": "Issuer", "name": "ca"});
    let message = refused(request(
        DbKind::MySQL,
        "a",
        "db",
        json!({"remove": true, "issuerRef": issuer}),
        json!({}),
    ))
    .await;
    assert!(message.contains("more than 1 field"), "{message}");
    let message = refused(request(DbKind::MySQL, "b", "db", json!({}), json!({}))).await;
    assert!(
        message.contains("no reconfiguration is provided"),
        "{message}"
    );
    let mut no_tls = request(DbKind::MySQL, "c", "db", json!({}), json!({}));
    no_tls["spec"].as_object_mut().unwrap().remove("tls");
    let message = refused(no_tls).await;
    assert!(message.contains("spec.tls is required"), "{message}");
    let mut restart = request(
        DbKind::MySQL,
        "d",
        "db",
        json!({"rotateCertificates": true}),
        json!({}),
    );
    restart["spec"]["type"] = json!("Restart");
    let message = refused(restart).await;
    assert!(
        message.contains("Unsupported value: \"Restart\""),
        "{message}"
    );
    let message = refused(request(
        DbKind::MySQL,
        "e",
        "db",
        json!({"clientTLS": true}),
        json!({}),
    ))
    .await;
    assert!(
        message.contains("clientTLS is an MSSQLServer field"),
        "{message}"
    );

    // The spec cannot change once created.
    create(
        &env,
        DbKind::MySQL,
        &request(
            DbKind::MySQL,
            "f",
            "db",
            json!({"rotateCertificates": true}),
            json!({}),
        ),
    )
    .await
    .unwrap();
    let error = ops_api(&env, DbKind::MySQL)
        .patch(
            "f",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"timeout": "1m"}})),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(status) = error else {
        panic!("{error:?}");
    };
    assert!(
        status.message.contains("spec is immutable"),
        "{}",
        status.message
    );
}
