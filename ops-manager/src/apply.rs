//! The write step for a planned reconcile: apply changed Certificates, delete unwanted ones,
//! adopt issued Secrets. Each write is server-side apply under the ops-manager's field manager
//! (or a delete), and only what the plan says changed is written.

use dbtls_contract::OPS_MANAGER_MANAGER;
use dbtls_contract::certmanager::Certificate;
use dbtls_runtime::events;
use dbtls_runtime::ssa;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Preconditions};
use serde_json::json;

use crate::context::{ACTION, Context};
use crate::db::DbRef;
use crate::plan::{Adopt, Change, Plan};

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("applying Certificate {name}: {source}")]
    Certificate {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("serializing Certificate {name}: {source}")]
    Serialize {
        name: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("deleting {what}: {source}")]
    Delete {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("adopting Secret {name}: {source}")]
    Adopt {
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// Whether an API error means "the object changed or went away meanwhile": the watch that
/// reported the change triggers another reconcile, so it is not an error.
pub fn is_stale(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409 || status.code == 404)
}

pub async fn execute(
    db: &DbRef,
    regarding: &k8s_openapi::api::core::v1::ObjectReference,
    plan: &Plan,
    ctx: &Context,
) -> Result<(), ApplyError> {
    let certificates: Api<Certificate> = Api::namespaced(ctx.client.clone(), &db.namespace);
    for item in &plan.apply {
        let name = item.certificate.spec.secret_name.clone();
        let mut body =
            serde_json::to_value(&item.certificate).map_err(|source| ApplyError::Serialize {
                name: name.clone(),
                source,
            })?;
        if let Some(object) = body.as_object_mut() {
            object.remove("status");
        }
        // A create never lands on a Certificate someone made since the read, an update never on
        // a replacement of the one read (both 409: the next reconcile reads again).
        let written = match (&item.change, &item.live_uid) {
            (Change::Update, Some(uid)) => {
                ssa::update(&certificates, &name, OPS_MANAGER_MANAGER, &body, uid).await
            }
            _ => ssa::create(&certificates, &name, OPS_MANAGER_MANAGER, &body).await,
        };
        written.map_err(|source| ApplyError::Certificate {
            name: name.clone(),
            source,
        })?;
        let (reason, verb) = match item.change {
            Change::Create => ("CertificateCreated", "created"),
            Change::Update => ("CertificateUpdated", "updated"),
        };
        tracing::info!(db = %db.display(), certificate = %name, "{verb} Certificate");
        let note = format!(
            "Successfully {verb} {} {} certificate (Certificate {name})",
            db.kind, item.alias
        );
        events::publish(
            ctx.status.recorder(),
            regarding,
            false,
            reason,
            ACTION,
            &note,
        )
        .await;
    }
    for name in &plan.delete {
        delete_certificate(&certificates, name).await?;
        let note = format!(
            "Deleted Certificate {name}: no certificate alias of {} uses it any more",
            db.kind
        );
        events::publish(
            ctx.status.recorder(),
            regarding,
            false,
            "CertificateDeleted",
            ACTION,
            &note,
        )
        .await;
    }
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &db.namespace);
    for adopt in &plan.adopt {
        // Remembered only when it took: a refused adoption is tried again from the cache.
        if adopt_secret(&secrets, db, adopt).await? {
            ctx.adopted
                .record(&adopt.uid, Some(&adopt.resource_version), ());
        }
    }
    Ok(())
}

pub async fn delete_certificate(api: &Api<Certificate>, name: &str) -> Result<(), ApplyError> {
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(e) if is_stale(&e) => Ok(()),
        Err(source) => Err(ApplyError::Delete {
            what: format!("Certificate {name}"),
            source,
        }),
    }
}

/// Adds the database as owner of an issued TLS Secret. The live uid and resourceVersion are
/// preconditions: the uid makes an apply to a Secret that was just deleted fail (409) instead of
/// creating an empty one, the resourceVersion makes it fail on a Secret that changed since.
/// Whether the Secret was adopted (false when it changed or went away meanwhile).
async fn adopt_secret(api: &Api<Secret>, db: &DbRef, adopt: &Adopt) -> Result<bool, ApplyError> {
    let body = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": adopt.secret,
            "namespace": db.namespace,
            "uid": adopt.uid,
            "resourceVersion": adopt.resource_version,
            "ownerReferences": [adopt.owner],
        }
    });
    match ssa::apply(api, &adopt.secret, OPS_MANAGER_MANAGER, &body).await {
        Ok(_) => {
            tracing::info!(db = %db.display(), secret = %adopt.secret, "adopted TLS Secret");
            Ok(true)
        }
        Err(e) if is_stale(&e) => Ok(false),
        Err(source) => Err(ApplyError::Adopt {
            name: adopt.secret.clone(),
            source,
        }),
    }
}

/// Drops the ops-manager's ownerReference from a TLS Secret that outlives the database or its
/// TLS: applying the Secret without the field releases exactly the entry this manager set.
pub async fn release_secret(
    api: &Api<Secret>,
    namespace: &str,
    name: &str,
    uid: &str,
    resource_version: &str,
) -> Result<(), ApplyError> {
    let body = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "uid": uid, "resourceVersion": resource_version}
    });
    match ssa::apply(api, name, OPS_MANAGER_MANAGER, &body).await {
        Ok(_) => Ok(()),
        Err(e) if is_stale(&e) => Ok(()),
        Err(source) => Err(ApplyError::Adopt {
            name: name.to_string(),
            source,
        }),
    }
}

/// Deletes a TLS Secret issued for the database (WipeOut), if it is still the version we saw.
pub async fn delete_secret(
    api: &Api<Secret>,
    name: &str,
    resource_version: Option<String>,
) -> Result<(), ApplyError> {
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            resource_version,
            uid: None,
        }),
        ..Default::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(e) if is_stale(&e) => Ok(()),
        Err(source) => Err(ApplyError::Delete {
            what: format!("Secret {name}"),
            source,
        }),
    }
}
