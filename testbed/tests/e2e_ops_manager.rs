//! The ops-manager alone against the testbed (or a real cluster) with the cert-manager stand-in;
//! the test creates the provisioner's objects itself, so every wait of the ops-manager can be
//! observed in isolation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dbtls_contract::DbKind;
use dbtls_contract::api::MySQL;
use dbtls_contract::certmanager::Certificate;
use dbtls_contract::{OPS_MANAGER_FINALIZER, labels};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{DeleteParams, ListParams};
use testbed::harness::{Env, EnvOptions, http};

const DEADLINE: Duration = Duration::from_secs(30);

async fn env() -> Env {
    Env::start(EnvOptions {
        provisioner: false,
        ..EnvOptions::default()
    })
    .await
    .unwrap()
}

/// What the provisioner would create: the auth Secret and both Services, with the labels.
fn provisioner_objects(kind: DbKind, db: &str) -> String {
    let labels = labels::for_database(kind, db)
        .iter()
        .map(|(k, v)| format!("    {k}: {v}\n"))
        .collect::<String>();
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {db}-auth\n  labels:\n{labels}stringData:\n  username: root\n  password: x\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {db}\n  labels:\n{labels}spec:\n  ports: [{{port: 3306}}]\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {db}-pods\n  labels:\n{labels}spec:\n  clusterIP: None\n  ports: [{{port: 3306}}]\n"
    )
}

/// The ops-manager's GETs of Certificates so far, from its own request metrics.
async fn certificate_reads(env: &Env) -> f64 {
    let (_, body) = http::get(&env.metrics_url("ops-manager").unwrap(), "/metrics")
        .await
        .unwrap();
    http::sum_series(
        &body,
        "dbtls_api_requests_total",
        &[("verb", "get"), ("resource", "certificates")],
    )
}

async fn wait_condition(
    env: &Env,
    kind: DbKind,
    db: &str,
    type_: &str,
    status: &str,
    reason: &str,
) -> String {
    env.eventually(
        &format!("{db} {type_}={status} {reason}"),
        DEADLINE,
        || async {
            Ok(env
                .condition(kind, db, type_)
                .await?
                .filter(|c| c.status == status && c.reason.as_deref() == Some(reason))
                .and_then(|c| c.message))
        },
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn the_ops_manager_waits_for_issuer_and_objects_then_issues_and_adopts() {
    let env = env().await;
    let kind = DbKind::MySQL;
    env.apply_yaml(&Env::tls_database(kind, "my", "Issuer", "ca"))
        .await
        .unwrap();

    let message = wait_condition(&env, kind, "my", "IssuerReady", "False", "IssuerNotFound").await;
    assert!(
        message.contains(&format!("Issuer {}/ca", env.namespace())),
        "{message}"
    );
    let message = wait_condition(
        &env,
        kind,
        "my",
        "CertificatesReady",
        "False",
        "WaitingForDatabaseObjects",
    )
    .await;
    assert!(
        message.contains("Secret my-auth") && message.contains("Service my-pods"),
        "{message}"
    );
    assert!(
        env.api::<Certificate>()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    // Nothing can be created yet, so no Certificate name is read from the API server to tell
    // someone else's object from none (the cache answers for ours).
    assert_eq!(certificate_reads(&env).await, 0.0);

    env.apply_yaml(&provisioner_objects(kind, "my"))
        .await
        .unwrap();
    let message = wait_condition(
        &env,
        kind,
        "my",
        "CertificatesReady",
        "False",
        "CertificatesNotReady",
    )
    .await;
    assert!(message.contains("no Certificate until Issuer"), "{message}");
    assert!(
        env.api::<Certificate>()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty(),
        "no Certificates for an issuer that does not exist"
    );

    assert!(
        certificate_reads(&env).await >= 1.0,
        "once it could create them, the ops-manager reads whether the names are taken"
    );

    env.create_ca_issuer("ca").await.unwrap();
    wait_condition(&env, kind, "my", "IssuerReady", "True", "IssuerReady").await;
    wait_condition(
        &env,
        kind,
        "my",
        "CertificatesReady",
        "True",
        "AllCertificatesReady",
    )
    .await;

    let db = env.api::<MySQL>().get("my").await.unwrap();
    assert!(db.finalizers().iter().any(|f| f == OPS_MANAGER_FINALIZER));
    let uid = db.uid().unwrap();
    let certs = env.api::<Certificate>();
    for alias in ["server", "client", "metrics-exporter"] {
        let name = format!("my-{alias}-cert");
        let cert = certs.get(&name).await.unwrap();
        assert_eq!(cert.spec.secret_name, name);
        assert_eq!(cert.labels(), &labels::for_database(kind, "my"));
        assert!(
            cert.owner_references()
                .iter()
                .any(|o| o.uid == uid && o.controller == Some(true))
        );
        // The TLS Secret carries the labels and, once adopted, the database as owner.
        let secret = env
            .eventually(&format!("{name} adopted"), DEADLINE, || async {
                let secret = env.api::<Secret>().get(&name).await?;
                Ok(secret
                    .owner_references()
                    .iter()
                    .any(|o| o.uid == uid)
                    .then_some(secret))
            })
            .await
            .unwrap();
        assert_eq!(labels::database_of(secret.labels()), Some((kind, "my")));
    }
    let events = env.events_for("my").await.unwrap();
    assert!(
        events
            .iter()
            .any(|(_, note)| note.contains("Successfully created MySQL server certificate")),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_foreign_secret_is_a_conflict_and_wipeout_deletes_only_issued_secrets() {
    let env = env().await;
    let kind = DbKind::MySQL;
    env.create_ca_issuer("ca").await.unwrap();
    env.apply_yaml(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: mine\nstringData:\n  note: user data\n",
    )
    .await
    .unwrap();
    let yaml = Env::tls_database(kind, "my", "Issuer", "ca").replace(
        "      name: ca\n",
        "      name: ca\n    certificates:\n    - alias: client\n      secretName: mine\n",
    );
    env.apply_yaml(&provisioner_objects(kind, "my"))
        .await
        .unwrap();
    env.apply_yaml(&yaml).await.unwrap();
    let message = wait_condition(
        &env,
        kind,
        "my",
        "CertificatesReady",
        "False",
        "SecretNameConflict",
    )
    .await;
    assert!(message.contains("client: Secret mine exists"), "{message}");
    env.eventually("server certificate issued", DEADLINE, || async {
        Ok(env
            .api::<Secret>()
            .get_opt("my-server-cert")
            .await?
            .map(|_| ()))
    })
    .await
    .unwrap();
    assert!(
        env.api::<Certificate>()
            .get_opt("mine")
            .await
            .unwrap()
            .is_none()
    );

    env.api::<MySQL>()
        .delete("my", &DeleteParams::default())
        .await
        .unwrap();
    env.eventually(
        "WipeOut deleted the issued Secrets and released the database",
        DEADLINE,
        || async {
            let gone =
                env.api::<Secret>()
                    .get_opt("my-server-cert")
                    .await?
                    .is_none()
                    && env.api::<MySQL>().get_opt("my").await?.is_none_or(|db| {
                        !db.finalizers().iter().any(|f| f == OPS_MANAGER_FINALIZER)
                    });
            Ok(gone.then_some(()))
        },
    )
    .await
    .unwrap();
    let mine = env.api::<Secret>().get("mine").await.unwrap();
    assert!(
        mine.owner_references().is_empty(),
        "a user's Secret is never adopted"
    );
}

#[tokio::test]
async fn removing_tls_deletes_certificates_and_releases_the_secrets() {
    let env = env().await;
    let kind = DbKind::MySQL;
    env.create_ca_issuer("ca").await.unwrap();
    env.apply_yaml(&provisioner_objects(kind, "my"))
        .await
        .unwrap();
    let yaml = Env::tls_database(kind, "my", "Issuer", "ca").replace("WipeOut", "Delete");
    env.apply_yaml(&yaml).await.unwrap();
    wait_condition(
        &env,
        kind,
        "my",
        "CertificatesReady",
        "True",
        "AllCertificatesReady",
    )
    .await;
    let uid = env.api::<MySQL>().get("my").await.unwrap().uid().unwrap();
    env.eventually("server Secret adopted", DEADLINE, || async {
        let s = env.api::<Secret>().get("my-server-cert").await?;
        Ok(s.owner_references()
            .iter()
            .any(|o| o.uid == uid)
            .then_some(()))
    })
    .await
    .unwrap();

    let no_tls = Env::no_tls_database(kind, "my").replace("WipeOut", "Delete");
    env.apply_yaml(&no_tls).await.unwrap();
    env.eventually(
        "Certificates deleted and Secrets released",
        DEADLINE,
        || async {
            let certs = env
                .api::<Certificate>()
                .list(&ListParams::default())
                .await?
                .items;
            let secret = env.api::<Secret>().get("my-server-cert").await?;
            let conditions = env.conditions(kind, "my").await?;
            let released = !secret.owner_references().iter().any(|o| o.uid == uid);
            let cleared = !conditions.iter().any(|c| c.type_ == "CertificatesReady");
            let db = env.api::<MySQL>().get("my").await?;
            let unfinalized = !db.finalizers().iter().any(|f| f == OPS_MANAGER_FINALIZER);
            if certs.is_empty() && released && cleared && unfinalized {
                return Ok(Some(()));
            }
            anyhow::bail!(
                "{} Certificates left, Secret released: {released}, conditions cleared: {cleared}, \
             finalizer removed: {unfinalized}, tls: {:?}",
                certs.len(),
                db.spec.tls
            )
        },
    )
    .await
    .unwrap();
}
