//! A stand-in for kube-controller-manager's StatefulSet controller and the kubelets: no pods
//! run, but every StatefulSet (apps/v1) and PetSet (apps.k8s.appscode.com/v1) gets the status
//! a healthy workload reports (`observedGeneration`, and all replica counts = `spec.replicas`,
//! default 1), so the operators' rollout waits complete on the testbed. An ordinary kube
//! client, so it also runs against a real cluster (opt-in there: it would race the real
//! controller-manager).
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use dbtls_contract::petset::PetSet;
use futures::{FutureExt, StreamExt};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// The field manager kube-controller-manager writes workload status with.
pub const FIELD_MANAGER: &str = "kube-controller-manager";

/// The status fields the simulation owns.
const REPLICA_FIELDS: [&str; 5] = [
    "replicas",
    "readyReplicas",
    "currentReplicas",
    "updatedReplicas",
    "availableReplicas",
];

/// Runs until `shutdown` completes, keeping the status of every StatefulSet and PetSet in
/// `namespaces` (empty: the whole cluster) at "all replicas ready".
pub async fn run(client: kube::Client, namespaces: Vec<String>, shutdown: impl Future) {
    let scopes: Vec<Option<String>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.into_iter().map(Some).collect()
    };
    let controllers = scopes.iter().flat_map(|ns| {
        [
            reconcile_kind::<StatefulSet>(client.clone(), ns.as_deref()).boxed(),
            reconcile_kind::<PetSet>(client.clone(), ns.as_deref()).boxed(),
        ]
    });
    tokio::select! {
        _ = shutdown => {}
        _ = futures::future::join_all(controllers) => {}
    }
}

/// The status patch that makes `obj` look healthy, or `None` when it already does (so a
/// settled workload costs no writes).
pub fn status_patch(obj: &Value) -> Option<Value> {
    let replicas = obj
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let generation = obj.pointer("/metadata/generation").and_then(Value::as_i64);
    let status = obj.get("status").unwrap_or(&Value::Null);
    let mut wanted = serde_json::Map::new();
    for field in REPLICA_FIELDS {
        wanted.insert(field.to_string(), json!(replicas));
    }
    if let Some(g) = generation {
        wanted.insert("observedGeneration".to_string(), json!(g));
    }
    let settled = wanted.iter().all(|(k, v)| status.get(k) == Some(v));
    (!settled).then(|| json!({"status": Value::Object(wanted)}))
}

#[derive(Debug, thiserror::Error)]
enum SimError {
    #[error("writing status of {0}: {1}")]
    Write(String, #[source] kube::Error),
    #[error("serialising {0}: {1}")]
    Encode(String, #[source] serde_json::Error),
}

/// One controller per kind; objects of a kind whose resource is not served (no PetSet CRD)
/// just produce watch errors, which are retried with backoff.
async fn reconcile_kind<K>(client: kube::Client, namespace: Option<&str>)
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let api = match namespace {
        Some(ns) => Api::<K>::namespaced(client.clone(), ns),
        None => Api::<K>::all(client.clone()),
    };
    Controller::new(api, watcher::Config::default())
        .run(reconcile::<K>, error_policy::<K>, Arc::new(client))
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "workload simulation");
            }
        })
        .await;
}

async fn reconcile<K>(obj: Arc<K>, client: Arc<kube::Client>) -> Result<Action, SimError>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    let id = format!(
        "{} {}/{}",
        K::kind(&()),
        obj.namespace().unwrap_or_default(),
        obj.name_any()
    );
    let value = serde_json::to_value(obj.as_ref()).map_err(|e| SimError::Encode(id.clone(), e))?;
    if obj.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    if let Some(patch) = status_patch(&value) {
        let api: Api<K> = Api::namespaced(
            client.as_ref().clone(),
            &obj.namespace().unwrap_or_default(),
        );
        api.patch_status(
            &obj.name_any(),
            &PatchParams {
                field_manager: Some(FIELD_MANAGER.to_string()),
                ..PatchParams::default()
            },
            &Patch::Merge(patch),
        )
        .await
        .map_err(|e| SimError::Write(id, e))?;
    }
    Ok(Action::await_change())
}

fn error_policy<K>(_obj: Arc<K>, error: &SimError, _client: Arc<kube::Client>) -> Action {
    tracing::debug!(%error, "workload simulation retries");
    Action::requeue(Duration::from_secs(1))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn patch_only_when_status_differs() {
        let fresh = json!({"metadata": {"generation": 2}, "spec": {"replicas": 3}});
        let patch = status_patch(&fresh).unwrap();
        assert_eq!(
            patch,
            json!({"status": {"observedGeneration": 2, "replicas": 3, "readyReplicas": 3,
                "currentReplicas": 3, "updatedReplicas": 3, "availableReplicas": 3}})
        );
        let mut settled = fresh.clone();
        settled["status"] = patch["status"].clone();
        assert_eq!(status_patch(&settled), None);
        settled["metadata"]["generation"] = json!(3);
        assert!(status_patch(&settled).is_some());
        let defaulted = json!({"metadata": {"generation": 1}, "spec": {}});
        assert_eq!(
            status_patch(&defaulted).unwrap()["status"]["readyReplicas"],
            1
        );
    }
}
