//! The ops-manager's finalizer on databases with TLS, so that deletionPolicy is carried out for
//! the TLS Secrets before garbage collection. Added and removed by server-side apply: the
//! finalizers list is a set, so each manager keeps only its own entry.

use kube::ResourceExt;
use kube::api::Api;
use serde_json::json;
use shared_types::Database;
use shared_types::contract::{OPS_MANAGER_FINALIZER, OPS_MANAGER_MANAGER};
use shared_types::runtime::ssa;

use crate::apply::is_stale;
use crate::context::Context;

#[derive(Debug, thiserror::Error)]
pub enum FinalizerError {
    #[error("{action} the finalizer of {name}: {source}")]
    Write {
        action: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
}

pub fn has<K: Database>(db: &K) -> bool {
    db.finalizers().iter().any(|f| f == OPS_MANAGER_FINALIZER)
}

pub async fn ensure<K: Database>(db: &K, ctx: &Context) -> Result<(), FinalizerError> {
    if has(db) {
        return Ok(());
    }
    write(db, ctx, true).await
}

pub async fn remove<K: Database>(db: &K, ctx: &Context) -> Result<(), FinalizerError> {
    if !has(db) {
        return Ok(());
    }
    write(db, ctx, false).await
}

async fn write<K: Database>(db: &K, ctx: &Context, add: bool) -> Result<(), FinalizerError> {
    let name = db.name_any();
    let namespace = db.namespace().unwrap_or_default();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &namespace);
    // The uid is a precondition: kube-apiserver answers 409 instead of creating a database
    // that is already gone (it checks no resourceVersion when an apply would create).
    let mut metadata = json!({"name": name, "namespace": namespace, "uid": db.uid()});
    if add {
        metadata["finalizers"] = json!([OPS_MANAGER_FINALIZER]);
    } else {
        metadata["resourceVersion"] = json!(db.resource_version());
    }
    let body =
        json!({"apiVersion": K::api_version(&()), "kind": K::kind(&()), "metadata": metadata});
    match ssa::apply(&api, &name, OPS_MANAGER_MANAGER, &body).await {
        Ok(_) => Ok(()),
        Err(e) if !add && is_stale(&e) => Ok(()),
        Err(source) => Err(FinalizerError::Write {
            action: if add { "adding" } else { "removing" },
            name,
            source,
        }),
    }
}
