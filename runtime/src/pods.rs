//! Pods as both operators keep them in their watch caches: metadata (without managedFields or
//! annotations) and the parts of the status that say whether the pod serves and why not; the
//! spec is dropped. The provisioner names why a replica is not ready from it, the ops-manager
//! which pods to probe and whether a pod restarted.
use k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodStatus};

use crate::lean_store;

/// Keeps what [the module](self) says.
pub fn trim(pod: &mut Pod) {
    lean_store::trim(pod);
    pod.metadata.annotations = None;
    pod.spec = None;
    if let Some(status) = pod.status.as_mut() {
        *status = PodStatus {
            phase: status.phase.take(),
            pod_ip: status.pod_ip.take(),
            conditions: status.conditions.take(),
            container_statuses: status.container_statuses.take().map(lean_containers),
            init_container_statuses: status.init_container_statuses.take().map(lean_containers),
            ..PodStatus::default()
        };
    }
}

fn lean_containers(statuses: Vec<ContainerStatus>) -> Vec<ContainerStatus> {
    statuses
        .into_iter()
        .map(|c| ContainerStatus {
            name: c.name,
            ready: c.ready,
            restart_count: c.restart_count,
            state: c.state,
            last_state: c.last_state,
            ..ContainerStatus::default()
        })
        .collect()
}

/// Whether the pod's `Ready` condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}
