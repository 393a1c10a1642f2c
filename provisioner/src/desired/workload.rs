//! A workload of the database (`<db>`, or a SingleStore cluster's aggregators and leaves): a
//! StatefulSet (apps/v1) or an AppsCode PetSet with the same fields.
use std::collections::BTreeMap;

use dbtls_contract::kinds::WorkloadPart;
use dbtls_contract::petset::{PetSet, PetSetSpec};
use dbtls_contract::{labels, names};
use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::child_meta;
use super::pod::{DATA_VOLUME, durable};
use crate::facts::{DbFacts, replicas_of};
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

/// The `data` PVC template from the part's storage (`spec.storage`, or its SingleStore node's).
fn claim_templates(db: &DbFacts<'_>, part: &WorkloadPart) -> Option<Vec<PersistentVolumeClaim>> {
    if !durable(db) {
        return None;
    }
    let storage = db.storage_of(part)?;
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

/// The labels `part`'s workload selects its pods by: the database's, plus the workload's name
/// where the database runs several (their selectors must not overlap).
pub fn pod_selector(db: &DbFacts<'_>, part: &WorkloadPart) -> BTreeMap<String, String> {
    let mut selector = labels::for_database(db.kind, &db.name);
    if part.role.is_some() {
        selector.insert(labels::WORKLOAD.to_string(), part.name.clone());
    }
    selector
}

pub fn workload_spec(
    db: &DbFacts<'_>,
    part: &WorkloadPart,
    mut template: PodTemplateSpec,
) -> WorkloadSpec {
    let selector = pod_selector(db, part);
    let metadata = template.metadata.get_or_insert_with(ObjectMeta::default);
    metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .extend(selector.clone());
    WorkloadSpec {
        replicas: replicas_of(part),
        selector: LabelSelector {
            match_labels: Some(selector),
            match_expressions: None,
        },
        service_name: names::governing_service(&db.name),
        template,
        volume_claim_templates: claim_templates(db, part),
    }
}

pub fn workload(
    db: &DbFacts<'_>,
    part: &WorkloadPart,
    api: WorkloadApi,
    spec: WorkloadSpec,
) -> Workload {
    let metadata = child_meta(db, part.name.clone());
    let mut workload = match api {
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
    };
    workload.stamp();
    workload
}
