//! The provisioner's finalizer, added and removed with server-side apply under its own field
//! manager, so that the ops-manager's finalizer (another manager's field) is never touched.
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use shared_types::Database;
use shared_types::contract::{PROVISIONER_FINALIZER, PROVISIONER_MANAGER};

pub fn has_finalizer<K: Database>(db: &K) -> bool {
    db.finalizers().iter().any(|f| f == PROVISIONER_FINALIZER)
}

/// The uid is a precondition: kube-apiserver answers 409 instead of creating a database that is
/// already gone (it checks no resourceVersion when an apply would create).
fn body<K: Database>(db: &K, finalizers: Value, resource_version: Option<String>) -> Value {
    json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": {
            "name": db.name_any(),
            "namespace": db.namespace(),
            "uid": db.uid(),
            "finalizers": finalizers,
            "resourceVersion": resource_version,
        }
    })
}

/// Adds the finalizer (the database exists: the apply cannot create one, `spec` is required).
pub async fn add<K: Database>(api: &Api<K>, db: &K) -> kube::Result<()> {
    let patch = body(db, json!([PROVISIONER_FINALIZER]), None);
    api.patch(
        &db.name_any(),
        &PatchParams::apply(PROVISIONER_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

/// Removes the finalizer by applying an empty set of ours. A 404 or 409 means the database is
/// gone or changed meanwhile: nothing to do now (a change brings another reconcile).
pub async fn remove<K: Database>(api: &Api<K>, db: &K) -> kube::Result<()> {
    let patch = body(db, json!([]), db.resource_version());
    match api
        .patch(
            &db.name_any(),
            &PatchParams::apply(PROVISIONER_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}
