//! A stand-in for kube-controller-manager's StatefulSet controller and the kubelet, shaped after
//! what the real node shows (`docs/testbed.md`): for every StatefulSet (apps/v1) and PetSet
//! (apps.k8s.appscode.com/v1) it creates the pods `<name>-0` .. `<name>-(replicas-1)` one at a
//! time (ordered, as `OrderedReady`), each with the labels, PVC volumes, hostname and subdomain
//! the StatefulSet controller gives it and the status a running, ready pod reports (its own
//! loopback address as pod IP); it deletes pods above `replicas`, and reports the workload's
//! status with the replica counts and revisions. No container runs; a pod that mounts a server
//! certificate gets a stand-in server on its address (`crate::sim_server`) that presents it
//! and reloads it when told to. An ordinary kube client, so it also runs against a real cluster
//! without a node (`DBTLS_E2E_WORKLOADS=stand-in`).
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dbtls_contract::petset::PetSet;
use futures::{FutureExt, StreamExt};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::sim_server;

/// The field manager kube-controller-manager writes workload status with.
pub const FIELD_MANAGER: &str = "kube-controller-manager";
/// The kubelet's, for pod status.
pub const KUBELET_MANAGER: &str = "kubelet";
/// Between one pod becoming ready and the next one being created (the real node took ~12 s
/// per MariaDB pod; the order, not the pace, is what the operators may depend on).
pub const POD_DELAY: Duration = Duration::from_millis(100);

/// Runs until `shutdown` completes, for every StatefulSet and PetSet in `namespaces` (empty:
/// the whole cluster).
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

#[derive(Debug, thiserror::Error)]
enum SimError {
    #[error("{what} of {workload}: {source}")]
    Kube {
        what: &'static str,
        workload: String,
        #[source]
        source: kube::Error,
    },
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
    let pods = match namespace {
        Some(ns) => Api::<Pod>::namespaced(client.clone(), ns),
        None => Api::<Pod>::all(client.clone()),
    };
    let context = Arc::new(SimContext {
        client,
        servers: Mutex::default(),
    });
    // Its pods trigger it too: an evicted or deleted pod is created again.
    Controller::new(api, watcher::Config::default())
        .owns(pods, watcher::Config::default())
        .run(reconcile::<K>, error_policy::<K>, context)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "workload simulation");
            }
        })
        .await;
}

/// What the simulation's reconciles share: the client, and the stand-in server of each pod
/// (by pod uid, per workload), stopped when its pod is gone.
struct SimContext {
    client: kube::Client,
    servers: Mutex<HashMap<(String, String), HashMap<String, sim_server::SimServer>>>,
}

impl SimContext {
    fn servers(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(String, String), HashMap<String, sim_server::SimServer>>>
    {
        self.servers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A distinct loopback address per simulated pod (all of 127/8 reaches this machine). Each
/// process starts at its own place in 127.11/16, so that two testbeds on one machine (a sandbox
/// beside a test run) rarely try the same address; `start_server` moves on from a taken one.
fn next_pod_ip() -> Ipv4Addr {
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(2_654_435_761) % POD_ADDRESSES,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    pod_ip(NEXT.fetch_add(1, Ordering::Relaxed))
}

/// 127.11.0.1 .. 127.11.255.254: 254 host addresses in each of 256 blocks.
const POD_ADDRESSES: u32 = 254 * 256;

/// The `n`th pod address, wrapping around after the last.
fn pod_ip(n: u32) -> Ipv4Addr {
    let n = n % POD_ADDRESSES;
    let [_, _, block, host] = (n / 254 * 256 + n % 254 + 1).to_be_bytes();
    Ipv4Addr::new(127, 11, block, host)
}

/// How many addresses a pod's stand-in server tries before it gives up.
const ADDRESS_TRIES: usize = 32;

/// `<name>-<hash>`: the revision the StatefulSet controller names after the pod template.
pub fn revision(name: &str, template: &Value) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    template.to_string().hash(&mut hasher);
    format!("{name}-{:010x}", hasher.finish() & 0xff_ffff_ffff)
}

/// The pod `<name>-<ordinal>` the StatefulSet controller would create from `workload`.
pub fn pod_for(workload: &Value, ordinal: i64) -> Value {
    let name = workload["metadata"]["name"].as_str().unwrap_or_default();
    let pod_name = format!("{name}-{ordinal}");
    let template = &workload["spec"]["template"];
    let mut labels = template["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    labels["statefulset.kubernetes.io/pod-name"] = json!(pod_name);
    labels["apps.kubernetes.io/pod-index"] = json!(ordinal.to_string());
    labels["controller-revision-hash"] = json!(revision(name, template));
    let mut spec = template["spec"].clone();
    spec["hostname"] = json!(pod_name);
    spec["subdomain"] = workload["spec"]["serviceName"].clone();
    let claims = workload["spec"]["volumeClaimTemplates"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let volumes = spec["volumes"].as_array().cloned().unwrap_or_default();
    let claimed: Vec<Value> = claims
        .iter()
        .filter_map(|c| c["metadata"]["name"].as_str())
        .map(|claim| json!({"name": claim, "persistentVolumeClaim": {"claimName": format!("{claim}-{pod_name}")}}))
        .collect();
    spec["volumes"] = Value::Array(claimed.into_iter().chain(volumes).collect());
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": pod_name,
            "namespace": workload["metadata"]["namespace"],
            "labels": labels,
            "ownerReferences": [{
                "apiVersion": workload["apiVersion"], "kind": workload["kind"], "name": name,
                "uid": workload["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true,
            }],
        },
        "spec": spec,
    })
}

/// The status of a running pod whose containers are all ready, at `ip`.
pub fn ready_pod_status(pod: &Value, ip: Ipv4Addr, now: &str) -> Value {
    let containers: Vec<Value> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            json!({"name": c["name"], "image": c["image"], "imageID": "", "ready": true,
                   "started": true, "restartCount": 0, "state": {"running": {"startedAt": now}}})
        })
        .collect();
    let conditions: Vec<Value> = [
        "PodReadyToStartContainers",
        "Initialized",
        "Ready",
        "ContainersReady",
        "PodScheduled",
    ]
    .iter()
    .map(|type_| json!({"type": type_, "status": "True", "lastTransitionTime": now}))
    .collect();
    json!({"status": {
        "phase": "Running", "podIP": ip.to_string(), "podIPs": [{"ip": ip.to_string()}],
        "hostIP": "127.0.0.1", "startTime": now,
        "conditions": conditions,
        "containerStatuses": containers,
    }})
}

/// The workload status for `pods_ready` ready pods, `updated` of them from the current template,
/// or None when it already says so. As the StatefulSet controller: the current revision becomes
/// the update revision only once every replica runs it.
pub fn status_patch(workload: &Value, pods_ready: i64, updated: i64) -> Option<Value> {
    let name = workload["metadata"]["name"].as_str().unwrap_or_default();
    let generation = workload
        .pointer("/metadata/generation")
        .and_then(Value::as_i64);
    let replicas = workload
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let revision = revision(name, &workload["spec"]["template"]);
    let status = workload.get("status").unwrap_or(&Value::Null);
    let current = match status.get("currentRevision").and_then(Value::as_str) {
        Some(old) if updated < replicas => old.to_string(),
        _ => revision.clone(),
    };
    let mut wanted = serde_json::Map::new();
    for field in ["replicas", "readyReplicas", "availableReplicas"] {
        wanted.insert(field.to_string(), json!(pods_ready));
    }
    wanted.insert("updatedReplicas".into(), json!(updated));
    // Pods of the current revision: the old ones while rolling, every updated one after.
    let on_current = if current == revision {
        updated
    } else {
        pods_ready - updated
    };
    wanted.insert("currentReplicas".into(), json!(on_current));
    if let Some(g) = generation {
        wanted.insert("observedGeneration".into(), json!(g));
    }
    wanted.insert("currentRevision".into(), json!(current));
    wanted.insert("updateRevision".into(), json!(revision));
    wanted.insert("collisionCount".into(), json!(0));
    let settled = wanted.iter().all(|(k, v)| status.get(k) == Some(v));
    (!settled).then(|| json!({"status": Value::Object(wanted)}))
}

fn params(manager: &str) -> PatchParams {
    PatchParams {
        field_manager: Some(manager.to_string()),
        ..PatchParams::default()
    }
}

async fn reconcile<K>(obj: Arc<K>, context: Arc<SimContext>) -> Result<Action, SimError>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    let client = &context.client;
    let ns = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let id = format!("{} {ns}/{name}", K::kind(&()));
    if obj.meta().deletion_timestamp.is_some() {
        context.servers().remove(&(ns, name));
        return Ok(Action::await_change());
    }
    let mut workload =
        serde_json::to_value(obj.as_ref()).map_err(|e| SimError::Encode(id.clone(), e))?;
    workload["apiVersion"] = json!(K::api_version(&()));
    workload["kind"] = json!(K::kind(&()));
    let err = |what: &'static str| {
        let workload = id.clone();
        move |source| SimError::Kube {
            what,
            workload,
            source,
        }
    };
    let replicas = workload
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let uid = obj.meta().uid.clone().unwrap_or_default();
    let selector = workload["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let ours: Vec<Pod> = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(err("listing pods"))?
        .items
        .into_iter()
        .filter(|p| p.owner_references().iter().any(|o| o.uid == uid))
        .collect();
    let ordinal = |p: &Pod| {
        p.name_any()
            .strip_prefix(&format!("{name}-"))
            .and_then(|i| i.parse::<i64>().ok())
    };
    for extra in ours
        .iter()
        .filter(|p| ordinal(p).is_none_or(|i| i >= replicas))
    {
        let _ = pods
            .delete(&extra.name_any(), &DeleteParams::default())
            .await;
    }
    // The servers of pods that are gone stop with them.
    if let Some(servers) = context.servers().get_mut(&(ns.clone(), name.clone())) {
        servers.retain(|uid, _| ours.iter().any(|p| p.uid().as_deref() == Some(uid)));
    }
    // Ordered: pod i only once the ones before it are ready. A pod someone else created (the
    // real StatefulSet controller on a cluster without a node) is made ready like ours.
    let revision = revision(&name, &workload["spec"]["template"]);
    let on_template = |p: &Pod| p.labels().get("controller-revision-hash") == Some(&revision);
    let mut ready = 0;
    // Pods made ready in this pass that run the current template.
    let mut fresh_on_template = 0i64;
    for i in 0..replicas {
        let existing = ours.iter().find(|p| ordinal(p) == Some(i));
        // A ready pod keeps its server (or, if its server could not start, runs without one,
        // as a crashed server would).
        if existing.is_some_and(is_ready) {
            ready += 1;
            continue;
        }
        let pod_name = format!("{name}-{i}");
        let pod = match existing {
            Some(pod) => Some(pod.clone()),
            None => {
                let pod: Pod = serde_json::from_value(pod_for(&workload, i))
                    .map_err(|e| SimError::Encode(id.clone(), e))?;
                match pods.create(&PostParams::default(), &pod).await {
                    Ok(created) => Some(created),
                    // Someone else's (kube-controller-manager's on a cluster without a node).
                    Err(kube::Error::Api(_)) => pods.get_opt(&pod_name).await.ok().flatten(),
                    Err(source) => return Err(err("creating a pod")(source)),
                }
            }
        };
        // The server listens before the pod reports Ready, as a readiness probe ensures.
        let ip = match &pod {
            Some(pod) => start_server(&context, &ns, &name, pod).await,
            None => next_pod_ip(),
        };
        let now = dbtls_runtime::conditions::now();
        let template = pod_for(&workload, i);
        let status = ready_pod_status(&template, ip, &now);
        if pods
            .patch_status(&pod_name, &params(KUBELET_MANAGER), &Patch::Merge(&status))
            .await
            .is_ok()
        {
            ready += 1;
            if existing.is_none_or(on_template) {
                fresh_on_template += 1;
            }
        }
        break;
    }
    // RollingUpdate: once every pod is ready, the highest-ordinal pod of an older template goes
    // (and comes back from the current template in a later pass), one at a time.
    let outdated = ours
        .iter()
        .filter(|p| ordinal(p).is_some_and(|i| i < replicas))
        .filter(|p| p.labels().get("controller-revision-hash") != Some(&revision))
        .max_by_key(|p| ordinal(p));
    if ready == replicas
        && let Some(old) = outdated
    {
        let _ = pods.delete(&old.name_any(), &DeleteParams::default()).await;
        ready -= 1;
    }
    let updated = ours
        .iter()
        .filter(|p| ordinal(p).is_some_and(|i| i < replicas) && is_ready(p) && on_template(p))
        .count() as i64
        + fresh_on_template;
    if let Some(patch) = status_patch(&workload, ready, updated.min(ready)) {
        Api::<K>::namespaced(client.clone(), &ns)
            .patch_status(&name, &params(FIELD_MANAGER), &Patch::Merge(patch))
            .await
            .map_err(err("writing the status"))?;
    }
    Ok(if ready < replicas {
        Action::requeue(POD_DELAY)
    } else {
        Action::await_change()
    })
}

fn is_ready(pod: &Pod) -> bool {
    dbtls_runtime::pods::is_ready(pod)
}

/// Starts the stand-in server of a new pod, if it has one, on an address no other process of
/// this machine listens on; returns the pod's address. A server that cannot start (its Secret
/// unreadable, every address tried taken) leaves the pod without one, as a crashed server
/// would.
async fn start_server(context: &SimContext, ns: &str, workload: &str, pod: &Pod) -> Ipv4Addr {
    let mut ip = next_pod_ip();
    for _ in 0..ADDRESS_TRIES {
        let (Some(spec), Some(uid)) = (sim_server::ServerSpec::of(pod, IpAddr::V4(ip)), pod.uid())
        else {
            return ip;
        };
        match sim_server::start(context.client.clone(), spec).await {
            Ok(server) => {
                context
                    .servers()
                    .entry((ns.to_string(), workload.to_string()))
                    .or_default()
                    .insert(uid, server);
                return ip;
            }
            Err(error) if address_taken(&error) => ip = next_pod_ip(),
            Err(error) => {
                tracing::warn!(pod = %pod.name_any(), %error, "stand-in server not started");
                return ip;
            }
        }
    }
    tracing::warn!(pod = %pod.name_any(), "stand-in server not started: every address tried is taken");
    ip
}

fn address_taken(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::AddrInUse)
}

fn error_policy<K>(_obj: Arc<K>, error: &SimError, _context: Arc<SimContext>) -> Action {
    tracing::debug!(%error, "workload simulation retries");
    Action::requeue(Duration::from_secs(1))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn workload() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": "ns", "uid": "u1", "generation": 2},
            "spec": {"replicas": 3, "serviceName": "db-pods",
                     "template": {"metadata": {"labels": {"app": "db"}},
                                  "spec": {"containers": [{"name": "mysql", "image": "mysql:8.4.3"}],
                                           "volumes": [{"name": "tls", "secret": {"secretName": "s"}}]}},
                     "volumeClaimTemplates": [{"metadata": {"name": "data"}}]}
        })
    }

    #[test]
    fn pods_look_like_the_statefulset_controllers() {
        let pod = pod_for(&workload(), 1);
        assert_eq!(pod["metadata"]["name"], "db-1");
        assert_eq!(pod["metadata"]["labels"]["app"], "db");
        assert_eq!(
            pod["metadata"]["labels"]["apps.kubernetes.io/pod-index"],
            "1"
        );
        assert_eq!(pod["metadata"]["ownerReferences"][0]["uid"], "u1");
        assert_eq!(pod["spec"]["hostname"], "db-1");
        assert_eq!(pod["spec"]["subdomain"], "db-pods");
        assert_eq!(
            pod["spec"]["volumes"][0],
            json!({"name": "data", "persistentVolumeClaim": {"claimName": "data-db-1"}})
        );
        assert_eq!(pod["spec"]["volumes"][1]["name"], "tls");
        let status = ready_pod_status(&pod, Ipv4Addr::new(127, 11, 0, 9), "t");
        assert_eq!(status["status"]["podIP"], "127.11.0.9");
        assert_eq!(status["status"]["containerStatuses"][0]["ready"], true);
    }

    #[test]
    fn status_counts_the_ready_pods_and_names_the_revision() {
        let w = workload();
        let patch = status_patch(&w, 2, 2).unwrap();
        assert_eq!(patch["status"]["readyReplicas"], 2);
        assert_eq!(patch["status"]["observedGeneration"], 2);
        assert_eq!(
            patch["status"]["currentRevision"],
            patch["status"]["updateRevision"]
        );
        let mut settled = w.clone();
        settled["status"] = patch["status"].clone();
        assert_eq!(status_patch(&settled, 2, 2), None);
        assert!(status_patch(&settled, 3, 3).is_some());
        // A template change: the update revision moves at once, the current one only when
        // every replica runs it.
        let mut changed = settled.clone();
        changed["spec"]["template"]["metadata"]["labels"]["x"] = json!("y");
        let rolling = status_patch(&changed, 2, 1).unwrap();
        assert_eq!(rolling["status"]["updatedReplicas"], 1);
        assert_eq!(
            rolling["status"]["currentRevision"],
            settled["status"]["currentRevision"]
        );
        assert_ne!(
            rolling["status"]["updateRevision"],
            rolling["status"]["currentRevision"]
        );
        assert_ne!(
            revision("db", &json!({"a": 1})),
            revision("db", &json!({"a": 2}))
        );
    }

    #[tokio::test]
    async fn an_address_another_process_listens_on_is_told_apart_from_other_errors() {
        let ip = next_pod_ip();
        let taken = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        let port = taken.local_addr().unwrap().port();
        let again = tokio::net::TcpListener::bind((ip, port)).await;
        let error = anyhow::Error::from(again.expect_err("the address is taken"));
        assert!(address_taken(&error), "{error}");
        assert!(!address_taken(&anyhow::anyhow!(
            "the Secret has no tls.crt"
        )));
    }

    #[test]
    fn pod_addresses_are_host_addresses_in_127_11_and_wrap_around() {
        let cases = [
            (0, [127, 11, 0, 1]),
            (253, [127, 11, 0, 254]),
            (254, [127, 11, 1, 1]),
            (POD_ADDRESSES - 1, [127, 11, 255, 254]),
            (POD_ADDRESSES, [127, 11, 0, 1]),
            (u32::MAX, pod_ip(u32::MAX % POD_ADDRESSES).octets()),
        ];
        for (n, octets) in cases {
            assert_eq!(pod_ip(n).octets(), octets, "n = {n}");
        }
        let all: std::collections::HashSet<Ipv4Addr> = (0..POD_ADDRESSES).map(pod_ip).collect();
        assert_eq!(all.len(), POD_ADDRESSES as usize, "every address once");
        assert!(
            all.iter()
                .all(|ip| ip.octets()[3] != 0 && ip.octets()[3] != 255)
        );
    }

    #[test]
    fn pod_addresses_are_distinct_loopback_addresses() {
        let (a, b) = (next_pod_ip(), next_pod_ip());
        assert_ne!(a, b);
        assert!(a.is_loopback() && b.is_loopback());
    }
}
