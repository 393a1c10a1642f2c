//! The ops-manager's finalizer on databases with TLS, so that deletionPolicy is carried out for
//! the TLS Secrets before garbage collection (the shared SSA finalizer under its own manager).

use dbtls_contract::Database;
use dbtls_contract::{OPS_MANAGER_FINALIZER, OPS_MANAGER_MANAGER};
use dbtls_runtime::finalizer;
use kube::ResourceExt;
use kube::api::Api;

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
    finalizer::has(db, OPS_MANAGER_FINALIZER)
}

fn api<K: Database>(db: &K, ctx: &Context) -> Api<K> {
    Api::namespaced(ctx.client.clone(), &db.namespace().unwrap_or_default())
}

pub async fn ensure<K: Database>(db: &K, ctx: &Context) -> Result<(), FinalizerError> {
    finalizer::add(
        &api(db, ctx),
        db,
        OPS_MANAGER_MANAGER,
        OPS_MANAGER_FINALIZER,
    )
    .await
    .map_err(|source| FinalizerError::Write {
        action: "adding",
        name: db.name_any(),
        source,
    })
}

pub async fn remove<K: Database>(db: &K, ctx: &Context) -> Result<(), FinalizerError> {
    finalizer::remove(
        &api(db, ctx),
        db,
        OPS_MANAGER_MANAGER,
        OPS_MANAGER_FINALIZER,
    )
    .await
    .map_err(|source| FinalizerError::Write {
        action: "removing",
        name: db.name_any(),
        source,
    })
}
