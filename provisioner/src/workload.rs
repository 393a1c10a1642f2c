//! The workload `<db>`, in whichever API the provisioner writes it: a StatefulSet (apps/v1) or
//! an AppsCode PetSet with the same fields. One type for both, so nothing else matches on the API.
use dbtls_contract::DbKind;
pub use dbtls_contract::kinds::WorkloadApi;
use dbtls_contract::petset::PetSet;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde_json::Value;

/// The `--workload` flag.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WorkloadFlag {
    /// PetSet for the kinds KubeDB runs on PetSets when the PetSet API is served, else StatefulSet.
    #[default]
    Auto,
    Statefulset,
    Petset,
}

/// The workload API for a kind and why, for the WorkloadReady message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadChoice {
    pub api: WorkloadApi,
    pub why: &'static str,
}

/// Decides the API once at start (discovery says whether PetSets are served).
pub fn choose(flag: WorkloadFlag, kind: DbKind, petsets_served: bool) -> WorkloadChoice {
    let (api, why) = match flag {
        WorkloadFlag::Statefulset => (WorkloadApi::StatefulSet, "--workload=statefulset"),
        WorkloadFlag::Petset => (WorkloadApi::PetSet, "--workload=petset"),
        WorkloadFlag::Auto => match (kind.profile().workload, petsets_served) {
            (WorkloadApi::PetSet, true) => (
                WorkloadApi::PetSet,
                "--workload=auto: KubeDB runs this kind on a PetSet and apps.k8s.appscode.com/v1 petsets is served",
            ),
            (WorkloadApi::PetSet, false) => (
                WorkloadApi::StatefulSet,
                "--workload=auto: apps.k8s.appscode.com/v1 petsets is not served",
            ),
            (WorkloadApi::StatefulSet, _) => (
                WorkloadApi::StatefulSet,
                "--workload=auto: this kind runs on a StatefulSet",
            ),
        },
    };
    WorkloadChoice { api, why }
}

/// A workload object of either API.
#[derive(Clone, Debug, PartialEq)]
pub enum Workload {
    StatefulSet(StatefulSet),
    PetSet(PetSet),
}

impl Workload {
    pub fn api(&self) -> WorkloadApi {
        match self {
            Workload::StatefulSet(_) => WorkloadApi::StatefulSet,
            Workload::PetSet(_) => WorkloadApi::PetSet,
        }
    }

    pub fn meta(&self) -> &ObjectMeta {
        match self {
            Workload::StatefulSet(s) => s.meta(),
            Workload::PetSet(p) => p.meta(),
        }
    }

    pub fn meta_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Workload::StatefulSet(s) => s.meta_mut(),
            Workload::PetSet(p) => p.meta_mut(),
        }
    }

    /// `status.readyReplicas` (0 before the controller reported).
    pub fn ready_replicas(&self) -> i32 {
        match self {
            Workload::StatefulSet(s) => s.status.as_ref().and_then(|s| s.ready_replicas),
            Workload::PetSet(p) => p.status.as_ref().and_then(|s| s.ready_replicas),
        }
        .unwrap_or(0)
    }

    /// What a rollout still waits for; None once its controller reports every pod on the
    /// current template (observedGeneration current, every replica updated, and for a
    /// StatefulSet the current revision the update revision).
    pub fn rollout(&self) -> Option<String> {
        let generation = self.meta().generation.unwrap_or(0);
        let (observed, replicas, updated, revisions) = match self {
            Workload::StatefulSet(s) => {
                let status = s.status.as_ref();
                (
                    status.and_then(|s| s.observed_generation),
                    s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                    status.and_then(|s| s.updated_replicas).unwrap_or(0),
                    status.map(|s| (s.current_revision.clone(), s.update_revision.clone())),
                )
            }
            Workload::PetSet(p) => {
                let status = p.status.as_ref();
                (
                    status.and_then(|s| s.observed_generation),
                    p.spec.replicas.unwrap_or(1),
                    status.and_then(|s| s.updated_replicas).unwrap_or(0),
                    None,
                )
            }
        };
        if observed.unwrap_or(0) < generation {
            return Some(format!(
                "waiting for the {} controller to observe generation {generation}",
                self.api().kind()
            ));
        }
        if updated < replicas {
            return Some(format!("{updated}/{replicas} pods on the current template"));
        }
        match revisions {
            Some((current, update)) if current != update => Some(format!(
                "revision {} replacing {}",
                update.unwrap_or_default(),
                current.unwrap_or_default()
            )),
            _ => None,
        }
    }

    pub fn pod_template(&self) -> Option<&PodTemplateSpec> {
        match self {
            Workload::StatefulSet(s) => s.spec.as_ref().map(|s| &s.template),
            Workload::PetSet(p) => Some(&p.spec.template),
        }
    }

    pub fn to_value(&self) -> serde_json::Result<Value> {
        match self {
            Workload::StatefulSet(s) => serde_json::to_value(s),
            Workload::PetSet(p) => serde_json::to_value(p),
        }
    }

    /// `<Kind> <name>` for messages.
    pub fn describe(&self) -> String {
        format!(
            "{} {}",
            self.api().kind(),
            self.meta().name.as_deref().unwrap_or_default()
        )
    }
}

/// A digest of everything the provisioner writes into a workload, on the workload itself. The
/// plan compares it (and the replica count) instead of the whole pod template, so the watch
/// cache keeps a workload without its template ([`crate::caches::workload_shape`]): a StatefulSet as served
/// was most of the provisioner's memory. A change someone else makes to the template is theirs
/// until the database's spec changes what the provisioner writes; a replica count changed by
/// someone else is set back.
pub const APPLIED_DIGEST: &str = "kubedb.com/applied-digest";

/// FNV-1a (64-bit) in hex: stable across builds and Rust versions, unlike `DefaultHasher`, so a
/// new provisioner does not rewrite every workload. Not a security boundary: whoever can write
/// the workload can write the annotation.
fn fnv1a(bytes: &[u8]) -> String {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}")
}

impl Workload {
    /// Marks a desired workload with the digest of its content (without the digest itself).
    pub fn stamp(&mut self) {
        let meta = self.meta_mut();
        if let Some(annotations) = meta.annotations.as_mut() {
            annotations.remove(APPLIED_DIGEST);
            if annotations.is_empty() {
                meta.annotations = None;
            }
        }
        let digest = self.to_value().map(|v| fnv1a(v.to_string().as_bytes()));
        // Serialising a typed object does not fail; without a digest the plan writes it.
        if let Ok(digest) = digest {
            self.meta_mut()
                .annotations
                .get_or_insert_with(Default::default)
                .insert(APPLIED_DIGEST.to_string(), digest);
        }
    }

    /// The digest the provisioner last wrote, if any.
    pub fn applied_digest(&self) -> Option<&str> {
        self.meta()
            .annotations
            .as_ref()
            .and_then(|a| a.get(APPLIED_DIGEST))
            .map(String::as_str)
    }

    /// `spec.replicas` as written or served.
    pub fn replicas(&self) -> Option<i32> {
        match self {
            Workload::StatefulSet(s) => s.spec.as_ref().and_then(|s| s.replicas),
            Workload::PetSet(p) => p.spec.replicas,
        }
    }
}

/// StatefulSet fields the API server refuses to change (PetSets mirror them).
const IMMUTABLE_FIELDS: &[&str] = &["serviceName", "selector", "volumeClaimTemplates"];

/// The first immutable field `desired` would change on `live`, as `spec.<field>`.
pub fn immutable_change(desired: &Value, live: &Value) -> Option<String> {
    IMMUTABLE_FIELDS
        .iter()
        .find(|field| {
            let pointer = format!("/spec/{field}");
            let d = desired.pointer(&pointer).unwrap_or(&Value::Null);
            let l = live.pointer(&pointer).unwrap_or(&Value::Null);
            let empty = |v: &Value| v.is_null() || v.as_array().is_some_and(Vec::is_empty);
            if empty(d) || empty(l) {
                empty(d) != empty(l)
            } else {
                !dbtls_runtime::diff::is_subset(d, l)
            }
        })
        .map(|field| format!("spec.{field}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_rollout_is_over_once_the_controller_reports_every_replica_updated() {
        let sts = |generation: i64, status: serde_json::Value| {
            Workload::StatefulSet(
                serde_json::from_value(json!({
                    "metadata": {"name": "db", "generation": generation},
                    "spec": {"replicas": 3, "selector": {}, "serviceName": "db-pods", "template": {}},
                    "status": status,
                }))
                .unwrap_or_default(),
            )
        };
        let done = json!({"replicas": 3, "observedGeneration": 2, "updatedReplicas": 3, "currentRevision": "b", "updateRevision": "b"});
        // (case, generation, status) → what the rollout waits for
        let cases = [
            ("done", 2, done.clone(), None),
            (
                "not observed yet",
                3,
                done.clone(),
                Some("waiting for the StatefulSet controller to observe generation 3"),
            ),
            (
                "one pod on the new template",
                2,
                json!({"replicas": 3, "observedGeneration": 2, "updatedReplicas": 1, "currentRevision": "a", "updateRevision": "b"}),
                Some("1/3 pods on the current template"),
            ),
            (
                "every pod updated, revision not swapped yet",
                2,
                json!({"replicas": 3, "observedGeneration": 2, "updatedReplicas": 3, "currentRevision": "a", "updateRevision": "b"}),
                Some("revision b replacing a"),
            ),
        ];
        for (case, generation, status, expected) in cases {
            assert_eq!(
                sts(generation, status).rollout().as_deref(),
                expected,
                "{case}"
            );
        }
    }

    #[test]
    fn the_digest_is_fnv1a_of_the_content_without_itself() {
        // FNV-1a 64 of "a", from the algorithm's published test vectors.
        assert_eq!(fnv1a(b"a"), "af63dc4c8601ec8c");
        let sts = |replicas: i32| {
            Workload::StatefulSet(
                serde_json::from_value(json!({
                    "metadata": {"name": "db"},
                    "spec": {"replicas": replicas, "selector": {}, "serviceName": "db-pods", "template": {}},
                }))
                .unwrap_or_default(),
            )
        };
        let mut once = sts(3);
        once.stamp();
        let mut twice = once.clone();
        twice.stamp();
        assert_eq!(
            once.applied_digest(),
            twice.applied_digest(),
            "stamping is idempotent"
        );
        assert!(once.applied_digest().is_some());
        let mut other = sts(4);
        other.stamp();
        assert_ne!(once.applied_digest(), other.applied_digest());
    }

    #[test]
    fn auto_uses_petsets_only_where_kubedb_does_and_they_are_served() {
        let api = |kind, served| choose(WorkloadFlag::Auto, kind, served).api;
        assert_eq!(api(DbKind::MSSQLServer, true), WorkloadApi::PetSet);
        assert_eq!(api(DbKind::MSSQLServer, false), WorkloadApi::StatefulSet);
        assert_eq!(api(DbKind::MySQL, true), WorkloadApi::StatefulSet);
        assert_eq!(
            choose(WorkloadFlag::Petset, DbKind::MySQL, false).api,
            WorkloadApi::PetSet
        );
    }

    #[test]
    fn immutable_changes_are_named() {
        let live = json!({"spec": {"serviceName": "db-pods", "selector": {"matchLabels": {"a": "b"}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"resources": {"requests": {"storage": "1Gi"}}, "volumeMode": "Filesystem"}}],
            "replicas": 1}});
        let same = json!({"spec": {"serviceName": "db-pods", "selector": {"matchLabels": {"a": "b"}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"resources": {"requests": {"storage": "1Gi"}}}}],
            "replicas": 3}});
        assert_eq!(immutable_change(&same, &live), None);
        let bigger = json!({"spec": {"serviceName": "db-pods", "selector": {"matchLabels": {"a": "b"}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"resources": {"requests": {"storage": "2Gi"}}}}]}});
        assert_eq!(
            immutable_change(&bigger, &live).as_deref(),
            Some("spec.volumeClaimTemplates")
        );
        let ephemeral =
            json!({"spec": {"serviceName": "db-pods", "selector": {"matchLabels": {"a": "b"}}}});
        assert_eq!(
            immutable_change(&ephemeral, &live).as_deref(),
            Some("spec.volumeClaimTemplates")
        );
    }
}
