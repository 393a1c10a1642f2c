//! The workload `<db>`: a StatefulSet (apps/v1) or an AppsCode PetSet with the same fields.
use dbtls_contract::petset::{PetSet, PetSetSpec};
use dbtls_contract::{labels, names};
use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::child_meta;
use super::pod::{DATA_VOLUME, durable};
use crate::facts::DbFacts;
use crate::workload::{Workload, WorkloadApi};

/// The fields a StatefulSet and a PetSet share, which is all the provisioner sets.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadSpec {
    pub replicas: i32,
    pub selector: LabelSelector,
    pub service_name: String,
    pub template: PodTemplateSpec,
    pub volume_claim_templates: Option<Vec<PersistentVolumeClaim>>,
}

/// The `data` PVC template from `spec.storage` (or a Singlestore topology's storage).
fn claim_templates(db: &DbFacts<'_>) -> Option<Vec<PersistentVolumeClaim>> {
    if !durable(db) {
        return None;
    }
    let storage = db.common.storage.or_else(|| {
        db.extras
            .singlestore_topology
            .and_then(|t| t.aggregator.as_ref())
            .and_then(|a| a.storage.as_ref())
    })?;
    Some(vec![PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(DATA_VOLUME.to_string()),
            labels: Some(labels::for_database(db.kind, &db.name)),
            ..ObjectMeta::default()
        },
        spec: Some(storage.clone()),
        status: None,
    }])
}

pub fn workload_spec(db: &DbFacts<'_>, template: PodTemplateSpec) -> WorkloadSpec {
    WorkloadSpec {
        replicas: db.replicas(),
        selector: LabelSelector {
            match_labels: Some(labels::for_database(db.kind, &db.name)),
            match_expressions: None,
        },
        service_name: names::governing_service(&db.name),
        template,
        volume_claim_templates: claim_templates(db),
    }
}

pub fn workload(db: &DbFacts<'_>, api: WorkloadApi, spec: WorkloadSpec) -> Workload {
    let metadata = child_meta(db, names::workload(&db.name));
    match api {
        WorkloadApi::StatefulSet => Workload::StatefulSet(StatefulSet {
            metadata,
            spec: Some(StatefulSetSpec {
                replicas: Some(spec.replicas),
                selector: spec.selector,
                service_name: Some(spec.service_name),
                template: spec.template,
                volume_claim_templates: spec.volume_claim_templates,
                ..StatefulSetSpec::default()
            }),
            status: None,
        }),
        WorkloadApi::PetSet => Workload::PetSet(PetSet {
            metadata,
            spec: PetSetSpec {
                replicas: Some(spec.replicas),
                selector: spec.selector,
                service_name: spec.service_name,
                template: spec.template,
                volume_claim_templates: spec.volume_claim_templates,
                ..PetSetSpec::default()
            },
            status: None,
        }),
    }
}
