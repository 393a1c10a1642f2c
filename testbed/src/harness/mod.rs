//! The end-to-end harness: one [`Env`] per test, against the in-memory API server or a real
//! cluster (`DBTLS_E2E_KUBECONFIG`). Scenarios use only the Kubernetes API through kube-rs, so the
//! same test runs unchanged in both places.
pub mod apply;
pub mod cluster;
pub mod crds;
mod env;
pub mod http;
pub mod identities;
pub mod manifests;
pub mod operators;
pub mod pod_dns;

pub use env::{Env, EnvOptions, renew};
pub use manifests::{no_tls_database, tls_database};

/// The Secrets the projected volume `volume` of `pod` draws from, in order; empty when the pod
/// has no such volume.
pub fn projected_secrets(pod: &k8s_openapi::api::core::v1::PodSpec, volume: &str) -> Vec<String> {
    pod.volumes
        .iter()
        .flatten()
        .filter(|v| v.name == volume)
        .filter_map(|v| v.projected.as_ref()?.sources.as_ref())
        .flatten()
        .filter_map(|s| Some(s.secret.as_ref()?.name.clone()))
        .collect()
}
