//! The workload simulation on the testbed: StatefulSets and PetSets get their pods, created in
//! order and ready, and report ready replicas through `/status` as kube-controller-manager;
//! scaling down deletes pods; settled workloads cost no writes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dbtls_contract::petset::PetSet;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use testbed::apiserver::{ApiServerConfig, TestApiServer, Verb};
use testbed::workload_sim::{self, FIELD_MANAGER};

/// Polls `f` until it returns Some, failing after 10 s.
async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn pod_template() -> serde_json::Value {
    json!({"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}})
}

fn statefulset(name: &str, replicas: Option<i32>) -> StatefulSet {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "serviceName": name, "selector": {"matchLabels": {"app": "db"}},
                 "template": pod_template()}
    }))
    .unwrap()
}

/// `(observedGeneration, replicas, readyReplicas, currentReplicas, updatedReplicas,
/// availableReplicas)` of a workload's status.
fn counts(obj: &serde_json::Value) -> [Option<i64>; 6] {
    let s = &obj["status"];
    [
        "observedGeneration",
        "replicas",
        "readyReplicas",
        "currentReplicas",
        "updatedReplicas",
        "availableReplicas",
    ]
    .map(|f| s[f].as_i64())
}

fn healthy(generation: i64, n: i64) -> [Option<i64>; 6] {
    [
        Some(generation),
        Some(n),
        Some(n),
        Some(n),
        Some(n),
        Some(n),
    ]
}

async fn status_of<K: serde::Serialize + Clone + std::fmt::Debug + serde::de::DeserializeOwned>(
    api: &Api<K>,
    name: &str,
) -> serde_json::Value {
    serde_json::to_value(api.get(name).await.unwrap()).unwrap()
}

fn status_requests(server: &TestApiServer) -> usize {
    server
        .request_log()
        .snapshot()
        .iter()
        .filter(|r| {
            r.field_manager.as_deref() == Some(FIELD_MANAGER)
                && r.verb == Verb::Patch
                && r.subresource.as_deref() == Some("status")
        })
        .count()
}

async fn pods_uid(client: &kube::Client, name: &str) -> String {
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), "default");
    pods.get(name).await.unwrap().metadata.uid.unwrap()
}

#[tokio::test]
async fn statefulsets_and_petsets_become_ready() {
    let server = TestApiServer::start(ApiServerConfig::default())
        .await
        .unwrap();
    let client = server.client().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &PetSet::crd())
        .await
        .unwrap();

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let sim = tokio::spawn(workload_sim::run(client.clone(), Vec::new(), async move {
        let _ = stop_rx.await;
    }));

    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    sts.create(&PostParams::default(), &statefulset("mysql", Some(3)))
        .await
        .unwrap();
    sts.create(&PostParams::default(), &statefulset("single", None))
        .await
        .unwrap();
    let petsets: Api<PetSet> = Api::namespaced(client.clone(), "default");
    let petset: PetSet = serde_json::from_value(json!({
        "apiVersion": "apps.k8s.appscode.com/v1", "kind": "PetSet",
        "metadata": {"name": "mssql"},
        "spec": {"replicas": 2, "serviceName": "mssql", "selector": {"matchLabels": {"app": "db"}},
                 "template": pod_template()}
    }))
    .unwrap();
    petsets
        .create(&PostParams::default(), &petset)
        .await
        .unwrap();

    eventually("statefulset mysql ready", || async {
        (counts(&status_of(&sts, "mysql").await) == healthy(1, 3)).then_some(())
    })
    .await;
    eventually("statefulset single defaults to 1 replica", || async {
        (counts(&status_of(&sts, "single").await) == healthy(1, 1)).then_some(())
    })
    .await;
    eventually("petset mssql ready", || async {
        (counts(&status_of(&petsets, "mssql").await) == healthy(1, 2)).then_some(())
    })
    .await;
    // The status was written through /status by kube-controller-manager.
    let mysql = sts.get("mysql").await.unwrap();
    let entry = mysql
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .find(|m| m.manager.as_deref() == Some(FIELD_MANAGER))
        .unwrap();
    assert_eq!(entry.subresource.as_deref(), Some("status"));

    // The pods exist, in order, each with the StatefulSet controller's identity and its own
    // address.
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), "default");
    let mut ips = std::collections::BTreeSet::new();
    for i in 0..3 {
        let pod = pods.get(&format!("mysql-{i}")).await.unwrap();
        let spec = pod.spec.unwrap();
        assert_eq!(
            spec.hostname.as_deref(),
            Some(format!("mysql-{i}").as_str())
        );
        assert_eq!(spec.subdomain.as_deref(), Some("mysql"));
        let status = pod.status.unwrap();
        assert!(
            status
                .conditions
                .unwrap()
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        );
        ips.insert(status.pod_ip.unwrap());
    }
    assert_eq!(ips.len(), 3, "distinct pod addresses");

    // Scaling bumps the generation; pods and status follow, up and down.
    sts.patch(
        "mysql",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 5}})),
    )
    .await
    .unwrap();
    eventually("statefulset mysql scaled up", || async {
        (counts(&status_of(&sts, "mysql").await) == healthy(2, 5)).then_some(())
    })
    .await;
    sts.patch(
        "mysql",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    eventually("statefulset mysql scaled down", || async {
        (counts(&status_of(&sts, "mysql").await) == healthy(3, 1)).then_some(())
    })
    .await;
    eventually("pods above the replicas deleted", || async {
        pods.get_opt("mysql-1")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;

    // A metadata-only change triggers a reconcile of a settled object: no status write. The
    // writes for the next new object (one pod: one status write) show that the simulation has
    // caught up.
    let before = status_requests(&server);
    sts.patch(
        "single",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"touched": "yes"}}})),
    )
    .await
    .unwrap();
    sts.create(&PostParams::default(), &statefulset("last", Some(1)))
        .await
        .unwrap();
    eventually("statefulset last ready", || async {
        (counts(&status_of(&sts, "last").await) == healthy(1, 1)).then_some(())
    })
    .await;
    assert_eq!(
        status_requests(&server) - before,
        1,
        "only the new workload was written"
    );

    // A template change rolls the pods like RollingUpdate: highest ordinal first, one at a time
    // (never two replaced pods missing at once), each from the new template.
    sts.patch(
        "mysql",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 3}})),
    )
    .await
    .unwrap();
    eventually("statefulset mysql at 3 again", || async {
        (counts(&status_of(&sts, "mysql").await) == healthy(4, 3)).then_some(())
    })
    .await;
    let mut before = Vec::new();
    for i in 0..3 {
        before.push(pods_uid(&client, &format!("mysql-{i}")).await);
    }
    sts.patch(
        "mysql",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"spec": {"template": {"metadata": {"labels": {"app": "db", "rev": "2"}}}}}),
        ),
    )
    .await
    .unwrap();
    eventually("every pod from the new template", || async {
        let mut renewed = 0;
        for i in 0..3 {
            let pod = pods.get_opt(&format!("mysql-{i}")).await.unwrap()?;
            let labels = pod.metadata.labels.unwrap_or_default();
            renewed += usize::from(labels.get("rev").map(String::as_str) == Some("2"));
        }
        (renewed == 3).then_some(())
    })
    .await;
    for (i, uid) in before.iter().enumerate() {
        assert_ne!(
            &pods_uid(&client, &format!("mysql-{i}")).await,
            uid,
            "mysql-{i} replaced"
        );
    }
    let deletes: Vec<String> = server
        .request_log()
        .snapshot()
        .iter()
        .filter(|r| r.verb == Verb::Delete && r.resource == "pods")
        .filter_map(|r| r.name.clone())
        .collect();
    let rolled: Vec<&String> = deletes.iter().rev().take(3).collect();
    assert_eq!(
        rolled,
        ["mysql-0", "mysql-1", "mysql-2"],
        "highest ordinal first: {deletes:?}"
    );

    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), sim)
        .await
        .expect("the simulation stops on shutdown")
        .unwrap();
}
