//! Carrying out `deletionPolicy` before the finalizer lets Kubernetes delete the database
//! (contract.md "Deletion"), and `spec.halted` on a live database.
use dbtls_contract::api::DeletionPolicy;
use dbtls_contract::petset::PetSet;
use dbtls_contract::{PROVISIONER_FINALIZER, PROVISIONER_MANAGER, labels, names};
use dbtls_runtime::{finalizer, ssa};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use crate::context::{Context, RESYNC};
use crate::desired::auth;
use crate::facts::{DbFacts, Provisionable};
use crate::reconcile::{Error, Result, delete_if_owned, key_of, update_status};
use crate::status::{Observation, WorkloadReport};
use crate::workload_choice::WorkloadApi;

/// Whether `meta` names `db` as its controller (so the provisioner created it).
pub fn controlled_by<K: Resource>(meta: &ObjectMeta, db: &K) -> bool {
    let uid = db.meta().uid.as_deref();
    uid.is_some()
        && meta
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.controller == Some(true) && Some(o.uid.as_str()) == uid)
}

/// Deletes the workload, the Services and the config Secret (what Halt removes), each only if
/// the database controls it.
pub async fn delete_runtime_objects<K: Resource>(
    client: &kube::Client,
    namespace: &str,
    db: &K,
    api: WorkloadApi,
) -> Result<()> {
    let name = db.meta().name.clone().unwrap_or_default();
    let workload = names::workload(&name);
    match api {
        WorkloadApi::StatefulSet => {
            let api = Api::<StatefulSet>::namespaced(client.clone(), namespace);
            delete_if_owned(&api, &workload, &workload, db).await?;
        }
        WorkloadApi::PetSet => {
            let api = Api::<PetSet>::namespaced(client.clone(), namespace);
            delete_if_owned(&api, &workload, &workload, db).await?;
        }
    }
    let services = Api::<Service>::namespaced(client.clone(), namespace);
    for service in [
        names::primary_service(&name),
        names::governing_service(&name),
    ] {
        delete_if_owned(&services, &service, &service, db).await?;
    }
    let secrets = Api::<Secret>::namespaced(client.clone(), namespace);
    let config = names::config_secret(&name);
    delete_if_owned(&secrets, &config, &config, db).await?;
    Ok(())
}

/// Deletes the PVCs carrying the database's labels (those from its `volumeClaimTemplates`).
async fn delete_pvcs(client: &kube::Client, namespace: &str, facts: &DbFacts<'_>) -> Result<()> {
    let api = Api::<PersistentVolumeClaim>::namespaced(client.clone(), namespace);
    let selector = labels::for_database(facts.kind, &facts.name)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let pvcs = api
        .list_metadata(&ListParams::default().labels(&selector))
        .await
        .map_err(|source| Error::Dereference {
            what: "PersistentVolumeClaims".into(),
            source,
        })?;
    for pvc in pvcs {
        let name = pvc.name_any();
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(source) => return Err(Error::Delete { what: name, source }),
        }
    }
    Ok(())
}

/// The auth Secret the provisioner created: deleted on WipeOut, else released (its ownerReference
/// removed) so that garbage collection keeps it. A user's Secret is never touched.
async fn settle_auth_secret<K: Provisionable>(
    client: &kube::Client,
    namespace: &str,
    db: &K,
    facts: &DbFacts<'_>,
    policy: DeletionPolicy,
) -> Result<()> {
    if facts.user_auth_secret().is_some() {
        return Ok(());
    }
    let api = Api::<Secret>::namespaced(client.clone(), namespace);
    let name = names::auth_secret(&facts.name);
    let Some(live) = api
        .get_opt(&name)
        .await
        .map_err(|source| Error::Dereference {
            what: name.clone(),
            source,
        })?
    else {
        return Ok(());
    };
    if !controlled_by(&live.metadata, db) {
        return Ok(());
    }
    if policy == DeletionPolicy::WipeOut {
        return delete_if_owned(&api, &name, &name, db).await;
    }
    let released = auth::released_auth_secret(&live);
    let uid = live.metadata.uid.clone().unwrap_or_default();
    match ssa::update(&api, &name, PROVISIONER_MANAGER, &released, &uid).await {
        Ok(_) => Ok(()),
        // Deleted (or replaced) meanwhile: nothing of ours left to keep.
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(source) => Err(Error::Apply { what: name, source }),
    }
}

/// Runs on a database being deleted that still carries the provisioner's finalizer.
pub async fn finalize<K: Provisionable>(db: &K, ctx: &Context) -> Result<Action> {
    if !finalizer::has(db, PROVISIONER_FINALIZER) {
        ctx.record_phase(&key_of(db), None);
        return Ok(Action::await_change());
    }
    let namespace = db.namespace().unwrap_or_default();
    let client = &ctx.client;
    let facts = DbFacts::of(db);
    let policy = facts.common.deletion_policy;
    let api = ctx.workload(K::KIND).api;
    if policy == DeletionPolicy::DoNotTerminate {
        let live =
            crate::reconcile::live_workload(client, &namespace, &names::workload(&facts.name), api)
                .await?;
        let workload = match live {
            Some(l) => WorkloadReport::Exists {
                what: format!("{} {}", api.kind(), names::workload(&facts.name)),
                ready: l.ready,
                replicas: facts.replicas(),
            },
            None => WorkloadReport::NotCreated("deletion requested".into()),
        };
        let observation = Observation {
            invalid: None,
            tls: None,
            workload,
            halted: false,
            deletion_blocked: true,
        };
        update_status(ctx, db, &observation).await?;
        return Ok(Action::requeue(RESYNC));
    }
    delete_runtime_objects(client, &namespace, db, api).await?;
    if matches!(policy, DeletionPolicy::Delete | DeletionPolicy::WipeOut) {
        delete_pvcs(client, &namespace, &facts).await?;
    }
    settle_auth_secret(client, &namespace, db, &facts, policy).await?;
    let db_api: Api<K> = Api::namespaced(client.clone(), &namespace);
    finalizer::remove(&db_api, db, PROVISIONER_MANAGER, PROVISIONER_FINALIZER)
        .await
        .map_err(Error::Finalizer)?;
    ctx.record_phase(&key_of(db), None);
    tracing::info!(db = %facts.name, %namespace, ?policy, "deletion policy carried out");
    Ok(Action::await_change())
}
