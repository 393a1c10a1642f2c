//! The serving step's reads: the database's pods from the watch cache, and the current
//! certificate of its server Secret (one GET when the Secret changed; the cache holds metadata
//! only).
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::Api;

use super::memory::CurrentCertificate;
use super::probe;

/// One pod as the serving step sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodView {
    pub name: String,
    pub ordinal: u32,
    pub uid: String,
    pub ip: Option<String>,
    /// None when ready; otherwise why not.
    pub not_ready: Option<String>,
    /// Restart counts and start times of its containers.
    pub fingerprint: String,
    /// When the database container last started (Unix time).
    pub started_at: Option<i64>,
}

/// The pods of a database in ordinal order; `container` is the database container's name.
pub fn pod_views(pods: &[Pod], container: &str) -> Vec<PodView> {
    let mut views: Vec<PodView> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| view(p, container))
        .collect();
    views.sort_by_key(|v| v.ordinal);
    views
}

/// The ordinal of a workload's pod, from its name (`<workload>-<ordinal>`).
pub fn ordinal_of(name: &str) -> Option<u32> {
    name.rsplit('-').next()?.parse().ok()
}

fn view(pod: &Pod, container: &str) -> Option<PodView> {
    let name = pod.metadata.name.clone()?;
    let ordinal = ordinal_of(&name)?;
    let status = pod.status.as_ref();
    let containers = status
        .and_then(|s| s.container_statuses.as_ref())
        .map(Vec::as_slice)
        .unwrap_or_default();
    let fingerprint = containers
        .iter()
        .map(|c| {
            let started = c
                .state
                .as_ref()
                .and_then(|s| s.running.as_ref())
                .and_then(|r| r.started_at.as_ref())
                .map(|t| t.0.to_string())
                .unwrap_or_default();
            format!("{}:{}@{started}", c.name, c.restart_count)
        })
        .collect::<Vec<_>>()
        .join(",");
    let started_at = containers
        .iter()
        .find(|c| c.name == container)
        .and_then(|c| c.state.as_ref()?.running.as_ref()?.started_at.as_ref())
        .map(|t| t.0.as_second());
    let not_ready = (!dbtls_runtime::pods::is_ready(pod)).then(|| {
        let waiting = containers.iter().find_map(|c| {
            let w = c.state.as_ref()?.waiting.as_ref()?;
            Some(format!(
                "container {}: {}",
                c.name,
                w.reason.as_deref().unwrap_or("waiting")
            ))
        });
        waiting.unwrap_or_else(|| {
            status
                .and_then(|s| s.phase.clone())
                .unwrap_or_else(|| "Pending".to_string())
        })
    });
    Some(PodView {
        ordinal,
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        ip: status.and_then(|s| s.pod_ip.clone()),
        not_ready,
        fingerprint,
        started_at,
        name,
    })
}

/// Serial (as cert-manager prints it), notBefore and notAfter of the first certificate in `pem`.
pub fn leaf_facts(pem: &[u8]) -> Option<(String, i64, i64)> {
    let der = first_der(pem)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
    let serial = probe::serial_of(&der)?;
    Some((
        serial,
        cert.validity().not_before.timestamp(),
        cert.validity().not_after.timestamp(),
    ))
}

/// notAfter of a DER certificate (Unix time).
pub fn not_after(der: &[u8]) -> Option<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.validity().not_after.timestamp())
}

fn first_der(pem: &[u8]) -> Option<Vec<u8>> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem).ok()?;
    Some(block.contents)
}

/// The current certificate of Secret `ns/name` at `resource_version`: `known` when it is still
/// that version, else read. None: the Secret is gone or holds no certificate yet.
pub async fn current_certificate(
    client: &kube::Client,
    ns: &str,
    name: &str,
    resource_version: &str,
    known: Option<&CurrentCertificate>,
) -> Result<Option<CurrentCertificate>, kube::Error> {
    if let Some(known) = known.filter(|k| k.resource_version == resource_version) {
        return Ok(Some(known.clone()));
    }
    let Some(secret) = Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await?
    else {
        return Ok(None);
    };
    Ok(certificate_of(&secret))
}

/// What [`current_certificate`] keeps of a read Secret.
pub fn certificate_of(secret: &Secret) -> Option<CurrentCertificate> {
    let data = secret.data.as_ref()?;
    let (serial, not_before, not_after) = leaf_facts(&data.get("tls.crt")?.0)?;
    Some(CurrentCertificate {
        resource_version: secret.metadata.resource_version.clone().unwrap_or_default(),
        serial,
        not_before,
        not_after,
        ca_pem: data
            .get("ca.crt")
            .map(|c| c.0.as_slice())
            .unwrap_or_default()
            .into(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn pod(name: &str, ready: bool, restarts: i32) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "uid": format!("uid-{name}")},
            "status": {
                "podIP": "10.0.0.1",
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
                "containerStatuses": [{
                    "name": "mysql", "ready": ready, "restartCount": restarts, "image": "i", "imageID": "",
                    "state": if ready {
                        serde_json::json!({"running": {"startedAt": "2026-12-03T08:00:00Z"}})
                    } else {
                        serde_json::json!({"waiting": {"reason": "CrashLoopBackOff"}})
                    },
                }],
            },
        }))
        .unwrap()
    }

    #[test]
    fn pods_in_ordinal_order_with_why_they_are_not_ready() {
        let views = pod_views(
            &[
                pod("db-10", true, 0),
                pod("db-2", false, 3),
                pod("db-0", true, 1),
            ],
            "mysql",
        );
        let names: Vec<_> = views.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["db-0", "db-2", "db-10"]);
        assert_eq!(views[0].not_ready, None);
        assert_eq!(
            views[1].not_ready.as_deref(),
            Some("container mysql: CrashLoopBackOff")
        );
        assert_eq!(views[0].fingerprint, "mysql:1@2026-12-03T08:00:00Z");
        assert_eq!(views[0].started_at, Some(1_796_284_800));
        assert_ne!(
            views[0].fingerprint,
            pod_views(&[pod("db-0", true, 2)], "mysql")[0].fingerprint,
            "a restart changes the fingerprint"
        );
    }
}
