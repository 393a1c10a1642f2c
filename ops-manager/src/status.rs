//! The status step: the ops-manager's own conditions (IssuerReady, CertificatesReady), written
//! only when they change, with an Event on every transition.

use std::time::Duration;

use dbtls_contract::Database;
use dbtls_contract::OPS_MANAGER_MANAGER;
use dbtls_contract::api::Condition;
use dbtls_contract::conditions::{TRUE, ops_manager};
use dbtls_runtime::coalesce::only_messages_changed;
use dbtls_runtime::conditions::{Desired, now, resolve, up_to_date};
use dbtls_runtime::ssa;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::events::EventType;
use serde_json::json;

use crate::context::Context;
use crate::events;
use crate::reconcile::retry_key;

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("writing the status of {name}: {source}")]
    Write {
        name: String,
        #[source]
        source: kube::Error,
    },
}

fn existing<K: Database>(db: &K) -> &[Condition] {
    db.db_status()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default()
}

/// Applies `desired` (the ops-manager's condition types only) unless the status already says it.
pub async fn update<K: Database>(
    db: &K,
    regarding: &ObjectReference,
    desired: &[Desired],
    ctx: &Context,
) -> Result<(), StatusError> {
    update_inner(db, regarding, desired, ctx, false)
        .await
        .map(|_| ())
}

/// Like [`update`], but a change of messages only (progress while Certificates are issued)
/// within the coalescing window of the previous write is held back: returns `Some(delay)`
/// after which the caller must reconcile again.
pub async fn update_coalesced<K: Database>(
    db: &K,
    regarding: &ObjectReference,
    desired: &[Desired],
    ctx: &Context,
) -> Result<Option<Duration>, StatusError> {
    update_inner(db, regarding, desired, ctx, true).await
}

async fn update_inner<K: Database>(
    db: &K,
    regarding: &ObjectReference,
    desired: &[Desired],
    ctx: &Context,
    coalesce: bool,
) -> Result<Option<Duration>, StatusError> {
    let before = existing(db);
    let time = now();
    let conditions: Vec<Condition> = desired
        .iter()
        .map(|d| resolve(before, d, db.meta().generation, &time))
        .collect();
    // Conditions of ours that are not desired now keep their entry: we re-send them unchanged.
    let kept: Vec<Condition> = before
        .iter()
        .filter(|c| {
            ops_manager::ALL.contains(&c.type_.as_str())
                && !desired.iter().any(|d| d.type_ == c.type_)
        })
        .cloned()
        .collect();
    if up_to_date(before, &conditions) {
        return Ok(None);
    }
    let key = retry_key(db);
    if coalesce
        && only_messages_changed(before, &conditions)
        && let Some(delay) = ctx.status_coalescer.hold(&key)
    {
        return Ok(Some(delay));
    }
    let all: Vec<&Condition> = kept.iter().chain(conditions.iter()).collect();
    write(db, json!({"conditions": all}), ctx).await?;
    ctx.status_coalescer.wrote(&key);
    for (want, condition) in desired.iter().zip(&conditions) {
        let previous = before.iter().find(|c| c.type_ == want.type_);
        let transition =
            previous.is_none_or(|p| p.status != condition.status || p.reason != condition.reason);
        if transition {
            let type_ = if want.status == TRUE {
                EventType::Normal
            } else {
                EventType::Warning
            };
            events::publish(
                ctx,
                regarding,
                type_,
                want.reason,
                want.type_,
                want.message.clone(),
            )
            .await;
        }
    }
    Ok(None)
}

/// Removes the ops-manager's conditions (TLS removed): applying a status without them releases
/// exactly the entries this field manager owns.
pub async fn clear<K: Database>(db: &K, ctx: &Context) -> Result<(), StatusError> {
    let ours = existing(db)
        .iter()
        .any(|c| ops_manager::ALL.contains(&c.type_.as_str()));
    if !ours {
        return Ok(());
    }
    write(db, serde_json::Value::Null, ctx).await
}

async fn write<K: Database>(
    db: &K,
    status: serde_json::Value,
    ctx: &Context,
) -> Result<(), StatusError> {
    let name = db.name_any();
    let namespace = db.namespace().unwrap_or_default();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut body = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": {"name": name, "namespace": namespace},
    });
    if !status.is_null() {
        body["status"] = status;
    }
    ssa::apply_status(&api, &name, OPS_MANAGER_MANAGER, &body)
        .await
        .map(|_| ())
        .map_err(|source| StatusError::Write { name, source })
}
