//! The provisioner alone (no ops-manager, no cert-manager): the test plays both by creating the
//! TLS Secrets by hand, with the database's labels, so every wait of the provisioner is seen.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dbtls_contract::DbKind;
use dbtls_contract::api::MySQL;
use dbtls_contract::labels;
use dbtls_contract::monitoring::ServiceMonitor;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret, Service};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams};
use testbed::harness::{Env, EnvOptions, projected_secrets};

const DEADLINE: Duration = Duration::from_secs(30);
const KIND: DbKind = DbKind::MySQL;

async fn env() -> Env {
    Env::start(EnvOptions {
        ops_manager: false,
        cert_manager: false,
        // Some scenarios watch the workload stay unready.
        simulate_workloads: false,
        ..EnvOptions::default()
    })
    .await
    .unwrap()
}

fn label_yaml(db: &str) -> String {
    labels::for_database(KIND, db)
        .iter()
        .map(|(k, v)| format!("    {k}: {v}\n"))
        .collect()
}

/// A TLS Secret as cert-manager would issue it (content is not parsed by the provisioner).
fn tls_secret(db: &str, name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  labels:\n{}type: kubernetes.io/tls\nstringData:\n  ca.crt: ca\n  tls.crt: cert\n  tls.key: key\n",
        label_yaml(db)
    )
}

async fn wait_condition(env: &Env, db: &str, type_: &str, status: &str, reason: &str) -> String {
    env.eventually(
        &format!("{db} {type_}={status} {reason}"),
        DEADLINE,
        || async {
            Ok(env
                .condition(KIND, db, type_)
                .await?
                .filter(|c| c.status == status && c.reason.as_deref() == Some(reason))
                .and_then(|c| c.message))
        },
    )
    .await
    .unwrap()
}

async fn wait_present<K>(env: &Env, api: &Api<K>, name: &str) -> K
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    env.eventually(&format!("{name} to exist"), DEADLINE, || async {
        Ok(api.get_opt(name).await?)
    })
    .await
    .unwrap()
}

async fn wait_absent<K>(env: &Env, api: &Api<K>, name: &str)
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    env.eventually(&format!("{name} to be gone"), DEADLINE, || async {
        Ok(api.get_opt(name).await?.is_none().then_some(()))
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn the_workload_waits_for_every_tls_secret() {
    let env = env().await;
    env.apply_yaml(&Env::tls_database(KIND, "my", "Issuer", "ca"))
        .await
        .unwrap();
    let statefulsets = env.api::<StatefulSet>();

    let message = wait_condition(
        &env,
        "my",
        "TLSSecretsReady",
        "False",
        "WaitingForTLSSecrets",
    )
    .await;
    for name in [
        "my-server-cert",
        "my-client-cert",
        "my-metrics-exporter-cert",
        "my-ca-bundle",
    ] {
        assert!(message.contains(name), "{message}");
    }
    // Provisioning started: auth Secret with a strong password, both Services.
    let auth = wait_present(&env, &env.api::<Secret>(), "my-auth").await;
    assert_eq!(auth.type_.as_deref(), Some("kubernetes.io/basic-auth"));
    let data = auth.data.unwrap();
    assert_eq!(data["username"].0, b"root");
    assert!(data["password"].0.len() >= 24);
    let pods = wait_present(&env, &env.api::<Service>(), "my-pods").await;
    assert_eq!(pods.spec.unwrap().cluster_ip.as_deref(), Some("None"));
    assert!(statefulsets.get_opt("my").await.unwrap().is_none());

    env.apply_yaml(&tls_secret("my", "my-server-cert"))
        .await
        .unwrap();
    env.apply_yaml(&tls_secret("my", "my-client-cert"))
        .await
        .unwrap();
    let message = env
        .eventually("only the exporter Secret missing", DEADLINE, || async {
            Ok(env
                .condition(KIND, "my", "TLSSecretsReady")
                .await?
                .and_then(|c| c.message)
                .filter(|m| !m.contains("my-server-cert") && !m.contains("my-client-cert")))
        })
        .await
        .unwrap();
    assert!(message.contains("my-metrics-exporter-cert"), "{message}");
    assert!(
        statefulsets.get_opt("my").await.unwrap().is_none(),
        "workload before all TLS Secrets"
    );

    env.apply_yaml(&tls_secret("my", "my-metrics-exporter-cert"))
        .await
        .unwrap();
    // The CA bundle (the ops-manager writes it from the server Secret's CA) is waited for too.
    env.eventually("only the CA bundle missing", DEADLINE, || async {
        Ok(env
            .condition(KIND, "my", "TLSSecretsReady")
            .await?
            .and_then(|c| c.message)
            .filter(|m| !m.contains("my-metrics-exporter-cert") && m.contains("my-ca-bundle")))
    })
    .await
    .unwrap();
    assert!(statefulsets.get_opt("my").await.unwrap().is_none());
    env.apply_yaml(&tls_secret("my", "my-ca-bundle"))
        .await
        .unwrap();
    let sts = wait_present(&env, &statefulsets, "my").await;
    wait_condition(&env, "my", "TLSSecretsReady", "True", "AllTLSSecretsReady").await;
    let pod = sts.spec.unwrap().template.spec.unwrap();
    let args = pod.containers[0].args.clone().unwrap();
    assert!(
        args.contains(&"--require-secure-transport=ON".to_string()),
        "{args:?}"
    );
    let tls = pod
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| v.name == "tls-volume")
        .unwrap();
    assert!(tls.projected.is_some());
    // The password was generated once: not rewritten by later reconciles.
    let again = env.api::<Secret>().get("my-auth").await.unwrap();
    assert_eq!(again.data.unwrap()["password"], data["password"]);
    wait_event(&env, "my", "WaitingForTLSSecrets").await;
}

/// `spec.monitor` runs the exporter sidecar on the metrics-exporter certificate, with its
/// `exporter.cnf` in the config Secret, the stats Service and its ServiceMonitor; dropping it
/// removes them.
#[tokio::test]
async fn spec_monitor_runs_an_exporter_with_its_certificate_and_stats_service() {
    let env = env().await;
    let yaml = Env::tls_database(KIND, "mon", "Issuer", "ca").replace(
        "  deletionPolicy:",
        "  monitor:\n    agent: prometheus.io/operator\n  deletionPolicy:",
    );
    env.apply_yaml(&yaml).await.unwrap();
    for alias in ["server", "client", "metrics-exporter", "ca"] {
        let name = if alias == "ca" {
            "mon-ca-bundle".to_string()
        } else {
            format!("mon-{alias}-cert")
        };
        env.apply_yaml(&tls_secret("mon", &name)).await.unwrap();
    }
    let statefulsets = env.api::<StatefulSet>();
    let sts = wait_present(&env, &statefulsets, "mon").await;
    let pod = sts.spec.unwrap().template.spec.unwrap();
    let exporter = pod
        .containers
        .iter()
        .find(|c| c.name == "exporter")
        .unwrap();
    assert!(
        exporter
            .args
            .iter()
            .flatten()
            .any(|a| a == "--config.my-cnf=/etc/mysql/certs/exporter.cnf")
    );
    let sources = projected_secrets(&pod, "exporter-tls-volume");
    for secret in ["mon-metrics-exporter-cert", "mon-ca-bundle", "mon-config"] {
        assert!(sources.iter().any(|s| s == secret), "{sources:?}");
    }
    let config = wait_present(&env, &env.api::<Secret>(), "mon-config").await;
    let cnf = String::from_utf8(config.data.unwrap()["exporter.cnf"].0.clone()).unwrap();
    assert!(
        cnf.contains("ssl-key=/etc/mysql/certs/exporter.key"),
        "{cnf}"
    );
    let services = env.api::<Service>();
    let stats = wait_present(&env, &services, "mon-stats").await;
    let port = &stats.spec.unwrap().ports.unwrap()[0];
    assert_eq!((port.name.as_deref(), port.port), (Some("metrics"), 56790));
    // agent: prometheus.io/operator, and the harness serves ServiceMonitors: one selects it.
    let monitors = env.api::<ServiceMonitor>();
    let monitor = wait_present(&env, &monitors, "mon-stats").await;
    let selector = monitor.spec.selector.match_labels.unwrap();
    assert!(
        selector
            .iter()
            .all(|(k, v)| stats.metadata.labels.as_ref().unwrap().get(k) == Some(v)),
        "{selector:?} does not select the stats Service"
    );

    let unmonitored = Env::tls_database(KIND, "mon", "Issuer", "ca");
    env.apply_yaml(&unmonitored).await.unwrap();
    wait_absent(&env, &services, "mon-stats").await;
    wait_absent(&env, &monitors, "mon-stats").await;
    env.eventually("the exporter removed", DEADLINE, || async {
        let sts = statefulsets.get("mon").await?;
        let containers = sts.spec.unwrap().template.spec.unwrap().containers;
        Ok((containers.len() == 1).then_some(()))
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_wrong_shape_tls_secret_is_reported_not_mounted() {
    let env = env().await;
    env.apply_yaml(&Env::tls_database(KIND, "bad", "Issuer", "ca"))
        .await
        .unwrap();
    let opaque = tls_secret("bad", "bad-server-cert")
        .replace("type: kubernetes.io/tls\n", "type: Opaque\n")
        .replace("  ca.crt: ca\n", "");
    env.apply_yaml(&opaque).await.unwrap();
    env.apply_yaml(&tls_secret("bad", "bad-client-cert"))
        .await
        .unwrap();
    env.apply_yaml(&tls_secret("bad", "bad-metrics-exporter-cert"))
        .await
        .unwrap();
    env.apply_yaml(&tls_secret("bad", "bad-ca-bundle"))
        .await
        .unwrap();
    let message = wait_condition(&env, "bad", "TLSSecretsReady", "False", "TLSSecretInvalid").await;
    assert!(message.contains("bad-server-cert"), "{message}");
    assert!(
        message.contains("type is Opaque") && message.contains("ca.crt"),
        "{message}"
    );
    assert!(
        env.api::<StatefulSet>()
            .get_opt("bad")
            .await
            .unwrap()
            .is_none()
    );

    // Fixed: the workload follows.
    env.api::<Secret>()
        .delete("bad-server-cert", &DeleteParams::default())
        .await
        .unwrap();
    env.apply_yaml(&tls_secret("bad", "bad-server-cert"))
        .await
        .unwrap();
    wait_present(&env, &env.api::<StatefulSet>(), "bad").await;
}

#[tokio::test]
async fn a_database_without_tls_uses_the_users_auth_secret_untouched() {
    let env = env().await;
    env.apply_yaml(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\ntype: kubernetes.io/basic-auth\nstringData:\n  username: root\n  password: from-the-user\n",
    )
    .await
    .unwrap();
    let before = env.api::<Secret>().get("creds").await.unwrap();
    let db = Env::no_tls_database(KIND, "plain").replace(
        "  deletionPolicy: WipeOut\n",
        "  authSecret:\n    name: creds\n  deletionPolicy: WipeOut\n",
    );
    env.apply_yaml(&db).await.unwrap();

    let sts = wait_present(&env, &env.api::<StatefulSet>(), "plain").await;
    wait_condition(&env, "plain", "TLSSecretsReady", "True", "TLSNotConfigured").await;
    let pod = sts.spec.unwrap().template.spec.unwrap();
    assert!(pod.containers[0].args.is_none());
    assert!(
        !pod.volumes
            .unwrap_or_default()
            .iter()
            .any(|v| v.projected.is_some())
    );
    let env_ref = pod.containers[0].env.clone().unwrap()[0]
        .value_from
        .clone()
        .unwrap();
    assert_eq!(env_ref.secret_key_ref.unwrap().name, "creds");

    let after = env.api::<Secret>().get("creds").await.unwrap();
    assert_eq!(before.resource_version(), after.resource_version());
    assert!(
        env.api::<Secret>()
            .get_opt("plain-auth")
            .await
            .unwrap()
            .is_none()
    );

    // WipeOut never deletes a user's Secret.
    env.api::<MySQL>()
        .delete("plain", &DeleteParams::default())
        .await
        .unwrap();
    wait_absent(&env, &env.api::<MySQL>(), "plain").await;
    assert!(
        env.api::<Secret>()
            .get_opt("creds")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn a_missing_user_auth_secret_is_reported() {
    let env = env().await;
    let db = Env::no_tls_database(KIND, "nocreds").replace(
        "  deletionPolicy: WipeOut\n",
        "  authSecret:\n    name: nowhere\n  deletionPolicy: WipeOut\n",
    );
    env.apply_yaml(&db).await.unwrap();
    let message = wait_condition(
        &env,
        "nocreds",
        "ProvisioningStarted",
        "False",
        "AuthSecretMissing",
    )
    .await;
    assert!(message.contains("nowhere"), "{message}");
    assert!(
        env.api::<StatefulSet>()
            .get_opt("nocreds")
            .await
            .unwrap()
            .is_none()
    );
}

/// A PVC as the StatefulSet controller would create it from the `data` template.
fn pvc(db: &str) -> String {
    format!(
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: data-{db}-0\n  labels:\n{}spec:\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      storage: 1Gi\n",
        label_yaml(db)
    )
}

async fn provisioned_with_policy(env: &Env, db: &str, policy: &str) {
    let yaml = Env::no_tls_database(KIND, db).replace(
        "deletionPolicy: WipeOut",
        &format!("deletionPolicy: {policy}"),
    );
    env.apply_yaml(&yaml).await.unwrap();
    env.apply_yaml(&pvc(db)).await.unwrap();
    wait_present(env, &env.api::<StatefulSet>(), db).await;
    wait_present(env, &env.api::<Secret>(), &format!("{db}-auth")).await;
}

#[tokio::test]
async fn deletion_policies_decide_what_survives() {
    let env = env().await;
    for (db, policy) in [
        ("halt", "Halt"),
        ("del", "Delete"),
        ("wipe", "WipeOut"),
        ("keep", "DoNotTerminate"),
    ] {
        provisioned_with_policy(&env, db, policy).await;
    }
    let dbs = env.api::<MySQL>();
    let secrets = env.api::<Secret>();
    let pvcs = env.api::<PersistentVolumeClaim>();
    for db in ["halt", "del", "wipe", "keep"] {
        dbs.delete(db, &DeleteParams::default()).await.unwrap();
    }
    for db in ["halt", "del", "wipe"] {
        wait_absent(&env, &dbs, db).await;
        wait_absent(&env, &env.api::<StatefulSet>(), db).await;
        wait_absent(&env, &env.api::<Service>(), db).await;
    }
    // Halt: Secrets and PVCs stay, released from the deleted database.
    let auth = secrets.get("halt-auth").await.unwrap();
    assert!(
        auth.owner_references().is_empty(),
        "{:?}",
        auth.owner_references()
    );
    assert!(pvcs.get_opt("data-halt-0").await.unwrap().is_some());
    // Delete: PVCs go, Secrets stay.
    wait_absent(&env, &pvcs, "data-del-0").await;
    assert!(
        secrets
            .get("del-auth")
            .await
            .unwrap()
            .owner_references()
            .is_empty()
    );
    // WipeOut: everything goes.
    wait_absent(&env, &pvcs, "data-wipe-0").await;
    wait_absent(&env, &secrets, "wipe-auth").await;

    // DoNotTerminate: refused, with a condition and an Event saying what to do.
    let message = wait_condition(&env, "keep", "Ready", "False", "DeletionBlocked").await;
    assert!(message.contains("deletionPolicy"), "{message}");
    assert!(
        env.api::<StatefulSet>()
            .get_opt("keep")
            .await
            .unwrap()
            .is_some()
    );
    wait_event(&env, "keep", "DeletionBlocked").await;
    // The test's field manager owns the whole spec: re-apply it with the new policy.
    let relaxed = Env::no_tls_database(KIND, "keep")
        .replace("deletionPolicy: WipeOut", "deletionPolicy: Delete");
    env.apply_yaml(&relaxed).await.unwrap();
    wait_absent(&env, &dbs, "keep").await;
    wait_absent(&env, &pvcs, "data-keep-0").await;
}

/// Triggers a reconcile (an annotation on a watched Secret) and waits until it finished.
async fn reconcile_once(env: &Env, db: &str, round: usize) {
    let before = env.reconciles("provisioner").await.unwrap();
    let touched = tls_secret(db, &format!("{db}-server-cert")).replace(
        "  labels:\n",
        &format!("  annotations:\n    round: \"{round}\"\n  labels:\n"),
    );
    env.apply_yaml(&touched).await.unwrap();
    env.eventually("a reconcile triggered by the Secret", DEADLINE, || async {
        Ok((env.reconciles("provisioner").await? > before).then_some(()))
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_converged_database_costs_no_writes() {
    let env = env().await;
    if env.api_server().is_none() {
        return; // the request log exists on the testbed only
    }
    env.apply_yaml(&Env::tls_database(KIND, "idle", "Issuer", "ca"))
        .await
        .unwrap();
    for name in [
        "idle-server-cert",
        "idle-client-cert",
        "idle-metrics-exporter-cert",
        "idle-ca-bundle",
    ] {
        env.apply_yaml(&tls_secret("idle", name)).await.unwrap();
    }
    wait_present(&env, &env.api::<StatefulSet>(), "idle").await;
    wait_condition(&env, "idle", "WorkloadReady", "False", "ReplicasNotReady").await;
    // Let the reconciles caused by the provisioner's own writes drain.
    reconcile_once(&env, "idle", 1).await;
    reconcile_once(&env, "idle", 2).await;

    let log = env.api_server().unwrap().request_log();
    log.clear();
    reconcile_once(&env, "idle", 3).await;
    // Reconciles of one object never overlap: the next one starting means this one finished.
    reconcile_once(&env, "idle", 4).await;
    let writes: Vec<_> = log
        .snapshot()
        .into_iter()
        .filter(|r| r.user == testbed::harness::identities::PROVISIONER_USER && r.verb.is_write())
        .map(|r| format!("{} {} {:?} {:?}", r.method, r.path, r.subresource, r.wrote))
        .collect();
    assert!(writes.is_empty(), "writes while converged: {writes:#?}");
}

/// Waits for an Event with `reason` about the database `name`: an operator publishes a
/// transition's Event after the status write that a test may have seen first.
async fn wait_event(env: &Env, name: &str, reason: &str) {
    env.eventually(
        &format!("a {reason} Event for {name}"),
        DEADLINE,
        || async {
            let events = env.events_for(name).await?;
            Ok(events.iter().any(|(r, _)| r == reason).then_some(()))
        },
    )
    .await
    .unwrap();
}

/// A Service and a StatefulSet that someone else made, with the names the database would use,
/// are reported, never modified, and survive the database's WipeOut deletion.
#[tokio::test]
async fn objects_of_the_same_name_made_by_someone_else_are_never_touched() {
    let env = env().await;
    env.apply_yaml(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: taken\nspec:\n  ports:\n  - port: 80\n",
    )
    .await
    .unwrap();
    let service_before = env.api::<Service>().get("taken").await.unwrap();
    env.apply_yaml(&Env::no_tls_database(KIND, "taken"))
        .await
        .unwrap();

    let message = wait_condition(&env, "taken", "Ready", "False", "NameConflict").await;
    assert!(message.contains("Service taken"), "{message}");
    wait_event(&env, "taken", "NameConflict").await;
    assert!(
        env.api::<StatefulSet>()
            .get_opt("taken")
            .await
            .unwrap()
            .is_none()
    );

    // Once the Service is out of the way, a foreign StatefulSet is the next conflict.
    env.api::<Service>()
        .delete("taken", &DeleteParams::default())
        .await
        .unwrap();
    env.apply_yaml(
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: taken\nspec:\n  serviceName: other\n  selector:\n    matchLabels: {app: other}\n  template:\n    metadata:\n      labels: {app: other}\n    spec:\n      containers:\n      - name: c\n        image: busybox\n",
    )
    .await
    .unwrap();
    let sts_before = env.api::<StatefulSet>().get("taken").await.unwrap();
    // Deleting a foreign object triggers no watch of ours (it never carried our labels): the
    // database is looked at again on its name-conflict backoff (30 s, doubling with each wait),
    // or at once when its owner touches it, as here.
    env.apply_yaml(&Env::no_tls_database(KIND, "taken").replace(
        "metadata:\n",
        "metadata:\n  annotations: {note: service-removed}\n",
    ))
    .await
    .unwrap();
    let message = env
        .eventually("the StatefulSet conflict", DEADLINE * 2, || async {
            Ok(env
                .condition(KIND, "taken", "Ready")
                .await?
                .and_then(|c| c.message)
                .filter(|m| m.contains("StatefulSet taken")))
        })
        .await
        .unwrap();
    assert!(message.contains("not owned by this database"), "{message}");
    let provisioned = env.condition(KIND, "taken", "Provisioned").await.unwrap();
    assert!(
        provisioned.as_ref().is_none_or(|c| c.status != "True"),
        "{provisioned:?}"
    );

    env.api::<MySQL>()
        .delete("taken", &DeleteParams::default())
        .await
        .unwrap();
    wait_absent(&env, &env.api::<MySQL>(), "taken").await;
    let sts_after = env.api::<StatefulSet>().get("taken").await.unwrap();
    assert_eq!(sts_before.resource_version(), sts_after.resource_version());
    assert_eq!(service_before.metadata.name, Some("taken".to_string()));
}
