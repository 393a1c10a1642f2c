//! The operators run as their ServiceAccounts under exactly `deploy/`'s RBAC in every e2e test:
//! enforcement is on, and the whole life of every kind of database (create, converge, delete
//! with WipeOut) needs no permission the manifests do not grant.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dbtls_contract::DbKind;
use dbtls_contract::certmanager::Certificate;
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use serde_json::json;
use testbed::harness::identities::{OPS_MANAGER_USER, PROVISIONER_USER};
use testbed::harness::{Env, EnvOptions};

const DEADLINE: Duration = Duration::from_secs(60);

fn status_code(err: kube::Error) -> u16 {
    match err {
        kube::Error::Api(status) => status.code,
        other => panic!("expected an API error, got {other}"),
    }
}

#[tokio::test]
async fn enforcement_is_on_for_the_operators_identities() {
    let env = Env::start(EnvOptions {
        provisioner: false,
        ops_manager: false,
        cert_manager: false,
        ..EnvOptions::default()
    })
    .await
    .unwrap();
    if env.api_server().is_none() {
        return; // a real cluster's kubeconfig is one identity
    }
    let ns = env.namespace();
    let certificate: Certificate = serde_json::from_value(json!({
        "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
        "metadata": {"name": "forbidden", "namespace": ns},
        "spec": {"secretName": "forbidden", "commonName": "x",
                 "issuerRef": {"name": "ca", "kind": "Issuer", "group": "cert-manager.io"}},
    }))
    .unwrap();
    let statefulset: StatefulSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "forbidden", "namespace": ns},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "serviceName": "x",
                 "template": {"metadata": {"labels": {"a": "b"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}},
    }))
    .unwrap();
    let pp = PostParams::default();

    let provisioner = env.client_as(PROVISIONER_USER).await.unwrap();
    let err = Api::<Certificate>::namespaced(provisioner.clone(), ns)
        .create(&pp, &certificate)
        .await
        .unwrap_err();
    assert_eq!(
        status_code(err),
        403,
        "the provisioner created a Certificate"
    );
    // ...while what it does need is granted.
    Api::<StatefulSet>::namespaced(provisioner, ns)
        .create(&pp, &statefulset)
        .await
        .unwrap();

    let ops_manager = env.client_as(OPS_MANAGER_USER).await.unwrap();
    let mut other = statefulset.clone();
    other.metadata.name = Some("forbidden-2".into());
    let err = Api::<StatefulSet>::namespaced(ops_manager.clone(), ns)
        .create(&pp, &other)
        .await
        .unwrap_err();
    assert_eq!(
        status_code(err),
        403,
        "the ops-manager created a StatefulSet"
    );
    Api::<Certificate>::namespaced(ops_manager, ns)
        .create(&pp, &certificate)
        .await
        .unwrap();

    // An unknown user has no rights at all: enforcement is not merely "the operators' roles".
    let nobody = env.client_as("nobody").await.unwrap();
    let err = Api::<StatefulSet>::namespaced(nobody, ns)
        .list(&Default::default())
        .await
        .unwrap_err();
    assert_eq!(status_code(err), 403);
}

fn database_api(env: &Env, kind: DbKind) -> Api<DynamicObject> {
    Api::namespaced_with(env.client(), env.namespace(), &kind.api_resource())
}

/// Every kind, on its default workload API (PetSets where KubeDB uses them), from creation to
/// WipeOut deletion, with no request of either operator denied.
#[tokio::test]
async fn a_databases_whole_life_needs_nothing_beyond_the_deploy_rbac() {
    let env = Env::start(EnvOptions::default()).await.unwrap();
    let Some(server) = env.api_server() else {
        return; // the request log exists on the testbed only
    };
    env.create_ca_issuer("ca").await.unwrap();
    let name = |kind: DbKind| format!("db-{}", kind.profile().plural);
    for kind in DbKind::ALL {
        env.apply_yaml(&Env::tls_database(kind, &name(kind), "Issuer", "ca"))
            .await
            .unwrap();
    }
    for kind in DbKind::ALL {
        let db = name(kind);
        env.eventually(&format!("{kind} {db} Ready"), DEADLINE, || async {
            let c = env.condition(kind, &db, "Ready").await?;
            Ok(c.filter(|c| c.status == "True").map(|_| ()))
        })
        .await
        .unwrap();
    }
    for kind in DbKind::ALL {
        database_api(&env, kind)
            .delete(&name(kind), &DeleteParams::default())
            .await
            .unwrap();
    }
    for kind in DbKind::ALL {
        let db = name(kind);
        let api = database_api(&env, kind);
        env.eventually(&format!("{kind} {db} deleted"), DEADLINE, || async {
            Ok(api.get_opt(&db).await?.is_none().then_some(()))
        })
        .await
        .unwrap();
    }

    let log = server.request_log().snapshot();
    for user in [PROVISIONER_USER, OPS_MANAGER_USER] {
        assert!(
            log.iter().any(|r| r.user == user && r.wrote),
            "{user} wrote nothing: not running as its ServiceAccount?"
        );
        let denied: Vec<String> = log
            .iter()
            .filter(|r| r.user == user && r.status == 403)
            .map(|r| format!("{} {} {:?}", r.method, r.path, r.subresource))
            .collect();
        assert!(denied.is_empty(), "{user} was denied:\n{denied:#?}");
    }
}
