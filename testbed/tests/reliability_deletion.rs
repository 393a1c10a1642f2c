//! Reliability §4, deletion and data safety with both operators and cert-manager: each
//! deletionPolicy removes exactly what KubeDB's removes, the user's own Secrets survive every
//! path, and a Certificate or TLS Secret deleted by hand heals without touching the workload.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bad_input_support;

use bad_input_support::*;
use dbtls_contract::DbKind;
use dbtls_contract::api::MySQL;
use dbtls_contract::certmanager::Certificate;
use dbtls_contract::labels;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret, Service};
use kube::api::{Api, DeleteParams};
use kube::{Resource, ResourceExt};
use testbed::harness::Env;

const MY: DbKind = DbKind::MySQL;
const ALIASES: [&str; 3] = ["server", "client", "metrics-exporter"];

fn label_yaml(db: &str) -> String {
    labels::for_database(MY, db)
        .iter()
        .map(|(k, v)| format!("    {k}: {v}\n"))
        .collect()
}

/// A PVC as the StatefulSet controller creates it from the `data` volumeClaimTemplate.
fn pvc(db: &str) -> String {
    format!(
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: data-{db}-0\n  labels:\n{}spec:\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      storage: 1Gi\n",
        label_yaml(db)
    )
}

/// One database of the test and what the user brought for it.
struct Case {
    db: &'static str,
    policy: &'static str,
    /// `<db>-creds` as spec.authSecret and `<db>-own-client` as the client secretName.
    user_secrets: bool,
}

impl Case {
    fn manifest(&self) -> String {
        let mut yaml = Env::tls_database(MY, self.db, "Issuer", "ca").replace(
            "deletionPolicy: WipeOut",
            &format!("deletionPolicy: {}", self.policy),
        );
        if self.user_secrets {
            yaml = with_certificates(
                &yaml,
                "ca",
                &format!(
                    "    - alias: client\n      secretName: {}-own-client\n",
                    self.db
                ),
            )
            .replace(
                "  deletionPolicy:",
                &format!(
                    "  authSecret:\n    name: {}-creds\n  deletionPolicy:",
                    self.db
                ),
            );
        }
        yaml
    }

    fn user_secret_yaml(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {db}-creds\ntype: kubernetes.io/basic-auth\nstringData:\n  username: root\n  password: users-own\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: {db}-own-client\ntype: kubernetes.io/tls\nstringData:\n  ca.crt: users-ca\n  tls.crt: users-cert\n  tls.key: users-key\n",
            db = self.db
        )
    }

    /// The TLS Secrets cert-manager issues for this database.
    fn issued_secrets(&self) -> Vec<String> {
        ALIASES
            .iter()
            .filter(|a| !(self.user_secrets && **a == "client"))
            .map(|a| format!("{}-{a}-cert", self.db))
            .collect()
    }

    fn auth_secret(&self) -> String {
        if self.user_secrets {
            format!("{}-creds", self.db)
        } else {
            format!("{}-auth", self.db)
        }
    }
}

async fn exists<K>(api: &Api<K>, name: &str) -> bool
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.get_opt(name).await.unwrap().is_some()
}

async fn wait_gone<K>(env: &Env, api: &Api<K>, name: &str)
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    env.eventually(&format!("{name} gone"), DEADLINE, || async {
        Ok(api.get_opt(name).await?.is_none().then_some(()))
    })
    .await
    .unwrap();
}

/// A kept Secret no longer names the (deleted) database as an owner.
async fn assert_kept_and_released(env: &Env, name: &str, db_uid: &str) {
    let secret = env
        .api::<Secret>()
        .get_opt(name)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("Secret {name} was deleted"));
    assert!(
        !secret.owner_references().iter().any(|o| o.uid == db_uid),
        "{name} still owned by the deleted database: {:?}",
        secret.owner_references()
    );
}

#[tokio::test]
async fn each_deletion_policy_removes_exactly_what_kubedb_removes() {
    let env = full_env().await;
    env.create_ca_issuer("ca").await.unwrap();
    let cases = [
        Case {
            db: "halt",
            policy: "Halt",
            user_secrets: false,
        },
        Case {
            db: "del",
            policy: "Delete",
            user_secrets: true,
        },
        Case {
            db: "wipe",
            policy: "WipeOut",
            user_secrets: false,
        },
        Case {
            db: "wipe-user",
            policy: "WipeOut",
            user_secrets: true,
        },
        Case {
            db: "keep",
            policy: "DoNotTerminate",
            user_secrets: false,
        },
    ];
    let secrets = env.api::<Secret>();
    let pvcs = env.api::<PersistentVolumeClaim>();
    let workloads = env.api::<StatefulSet>();
    let services = env.api::<Service>();
    let dbs = env.api::<MySQL>();
    for case in &cases {
        if case.user_secrets {
            env.apply_yaml(&case.user_secret_yaml()).await.unwrap();
        }
        env.apply_yaml(&case.manifest()).await.unwrap();
        env.apply_yaml(&pvc(case.db)).await.unwrap();
    }
    let mut users_before = Vec::new();
    for case in cases.iter().filter(|c| c.user_secrets) {
        for name in [case.auth_secret(), format!("{}-own-client", case.db)] {
            let s = secrets.get(&name).await.unwrap();
            users_before.push((name, s.resource_version(), s.data));
        }
    }
    let ca_before = secrets.get("ca-ca").await.unwrap();
    let mut uids = std::collections::BTreeMap::new();
    for case in &cases {
        // Everything exists: workload, Services, auth Secret, issued TLS Secrets (adopted).
        env.eventually(&format!("{} workload", case.db), DEADLINE, || async {
            Ok(workloads.get_opt(case.db).await?)
        })
        .await
        .unwrap();
        let uid = dbs.get(case.db).await.unwrap().uid().unwrap();
        for name in case.issued_secrets() {
            env.eventually(&format!("{name} issued and adopted"), DEADLINE, || async {
                Ok(secrets
                    .get_opt(&name)
                    .await?
                    .filter(|s| s.owner_references().iter().any(|o| o.uid == uid))
                    .map(|_| ()))
            })
            .await
            .unwrap();
        }
        assert!(exists(&secrets, &case.auth_secret()).await);
        assert!(exists(&services, &format!("{}-pods", case.db)).await);
        uids.insert(case.db, uid);
    }

    for case in &cases {
        dbs.delete(case.db, &DeleteParams::default()).await.unwrap();
    }
    for case in cases.iter().filter(|c| c.policy != "DoNotTerminate") {
        let db = case.db;
        wait_gone(&env, &dbs, db).await;
        wait_gone(&env, &workloads, db).await;
        wait_gone(&env, &services, db).await;
        wait_gone(&env, &services, &format!("{db}-pods")).await;
        for alias in ALIASES {
            wait_gone(
                &env,
                &env.api::<Certificate>(),
                &format!("{db}-{alias}-cert"),
            )
            .await;
        }
        let uid = &uids[db];
        match case.policy {
            "Halt" => {
                assert!(
                    exists(&pvcs, &format!("data-{db}-0")).await,
                    "Halt keeps PVCs"
                );
                assert_kept_and_released(&env, &case.auth_secret(), uid).await;
                for name in case.issued_secrets() {
                    assert_kept_and_released(&env, &name, uid).await;
                }
            }
            "Delete" => {
                wait_gone(&env, &pvcs, &format!("data-{db}-0")).await;
                assert_kept_and_released(&env, &case.auth_secret(), uid).await;
                for name in case.issued_secrets() {
                    assert_kept_and_released(&env, &name, uid).await;
                }
            }
            "WipeOut" => {
                wait_gone(&env, &pvcs, &format!("data-{db}-0")).await;
                for name in case.issued_secrets() {
                    wait_gone(&env, &secrets, &name).await;
                }
                if !case.user_secrets {
                    wait_gone(&env, &secrets, &case.auth_secret()).await;
                }
            }
            other => unreachable!("{other}"),
        }
    }

    // DoNotTerminate: refused with a condition and an Event; nothing removed.
    let message = condition(&env, MY, "keep", "Ready", "False", "DeletionBlocked").await;
    assert!(message.contains("deletionPolicy"), "{message}");
    event(&env, "keep", "DeletionBlocked").await;
    assert!(exists(&workloads, "keep").await);
    assert!(exists(&pvcs, "data-keep-0").await);
    assert!(exists(&secrets, "keep-auth").await);
    for name in cases[4].issued_secrets() {
        assert!(exists(&secrets, &name).await);
    }
    let relaxed = cases[4]
        .manifest()
        .replace("deletionPolicy: DoNotTerminate", "deletionPolicy: WipeOut");
    env.apply_yaml(&relaxed).await.unwrap();
    wait_gone(&env, &dbs, "keep").await;
    wait_gone(&env, &secrets, "keep-auth").await;
    wait_gone(&env, &pvcs, "data-keep-0").await;

    // The user's Secrets and the CA Secret survive every path, untouched.
    for (name, rv, data) in users_before {
        let now = secrets.get(&name).await.unwrap();
        assert_eq!(now.resource_version(), rv, "{name} modified");
        assert_eq!(now.data, data, "{name} data changed");
        assert!(now.owner_references().is_empty(), "{name} adopted");
    }
    let ca_after = secrets.get("ca-ca").await.unwrap();
    assert_eq!(ca_before.resource_version(), ca_after.resource_version());
}

/// The uid of the workload, and its generation (a rewritten spec bumps it).
async fn workload_identity(env: &Env, db: &str) -> (String, Option<i64>) {
    let sts = env.api::<StatefulSet>().get(db).await.unwrap();
    (sts.uid().unwrap(), sts.meta().generation)
}

#[tokio::test]
async fn a_certificate_or_tls_secret_deleted_by_hand_heals_without_touching_the_workload() {
    let env = full_env().await;
    env.create_ca_issuer("ca").await.unwrap();
    env.apply_yaml(&Env::tls_database(MY, "db", "Issuer", "ca"))
        .await
        .unwrap();
    converged(&env, MY, "db").await;
    let (uid, generation) = workload_identity(&env, "db").await;
    let db_uid = env.api::<MySQL>().get("db").await.unwrap().uid().unwrap();
    let certs = env.api::<Certificate>();
    let secrets = env.api::<Secret>();

    // A Certificate deleted by hand is re-created (a new object) and Ready again.
    let old = certs.get("db-server-cert").await.unwrap().uid().unwrap();
    certs
        .delete("db-server-cert", &DeleteParams::default())
        .await
        .unwrap();
    env.eventually(
        "server Certificate re-created and Ready",
        DEADLINE,
        || async {
            Ok(certs
                .get_opt("db-server-cert")
                .await?
                .filter(|c| c.uid().as_deref() != Some(old.as_str()) && c.is_ready())
                .map(|_| ()))
        },
    )
    .await
    .unwrap();

    // A TLS Secret deleted by hand is re-issued by cert-manager and re-adopted.
    let old = secrets.get("db-client-cert").await.unwrap();
    secrets
        .delete("db-client-cert", &DeleteParams::default())
        .await
        .unwrap();
    env.eventually("client Secret re-issued and adopted", DEADLINE, || async {
        Ok(secrets
            .get_opt("db-client-cert")
            .await?
            .filter(|s| {
                s.uid() != old.uid()
                    && s.owner_references().iter().any(|o| o.uid == db_uid)
                    && s.data.as_ref().is_some_and(|d| d.contains_key("tls.key"))
            })
            .map(|_| ()))
    })
    .await
    .unwrap();
    converged(&env, MY, "db").await;
    assert_eq!(
        workload_identity(&env, "db").await,
        (uid, generation),
        "the workload was re-created or rewritten"
    );
    assert_no_hot_loop(&env, "db").await;
}
