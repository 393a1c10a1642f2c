//! What happens to Certificates and TLS Secrets when a database is deleted or drops `spec.tls`
//! (KubeDB's deletionPolicy): Certificates go; WipeOut deletes the issued Secrets (also one
//! issued for the database's Certificate a moment before and not adopted yet, found again by
//! a later pass once that Certificate is gone), every other policy keeps them and removes the
//! database's ownerReference. A Secret the user
//! provided is never touched (it was never adopted, see `plan::conflict`). When `spec.tls` is
//! removed, nothing is released while the provisioner still rolls the pods out: a pod restarting
//! mid-rollout mounts them, and a Galera cluster replicates with them until its bridge is over.

use std::time::Duration;

use dbtls_contract::api::{DatabaseStatus, DeletionPolicy};
use dbtls_contract::certmanager::{Certificate, annotations};
use dbtls_contract::conditions::{ConditionType, Reason};
use dbtls_contract::{Database, labels, names};
use dbtls_runtime::events;
use k8s_openapi::api::core::v1::Secret;

use kube::api::{Api, ListParams};
use kube::runtime::controller::Action;

use crate::apply::{self, ApplyError};
use crate::context::{ACTION, Context};
use crate::db::DbRef;
use crate::finalizer::{self, FinalizerError};

#[derive(Debug, thiserror::Error)]
pub enum CleanupError {
    #[error("listing {what}: {source}")]
    List {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("reading {what}: {source}")]
    Read {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error(transparent)]
    Write(#[from] ApplyError),
    #[error(transparent)]
    Finalizer(#[from] FinalizerError),
    #[error("clearing the status: {0}")]
    Status(#[source] kube::Error),
}

/// The database is being deleted.
pub async fn on_delete<K: Database>(
    db: &K,
    db_ref: &DbRef,
    ctx: &Context,
) -> Result<Action, CleanupError> {
    if !finalizer::has(db) {
        ctx.certificate_metrics.forget(db_ref);
        ctx.serving.forget(db_ref);
        return Ok(Action::await_change());
    }
    let policy = db.common().deletion_policy;
    if policy == DeletionPolicy::DoNotTerminate {
        // The provisioner refuses the deletion and says so; nothing is released until the
        // policy changes (which triggers a reconcile).
        return Ok(Action::await_change());
    }
    release(db_ref, policy, ctx).await?;
    finalizer::remove(db, ctx).await?;
    ctx.certificate_metrics.forget(db_ref);
    ctx.serving.forget(db_ref);
    Ok(Action::await_change())
}

async fn clear_status<K: Database>(
    db: &K,
    db_ref: &DbRef,
    ctx: &Context,
) -> Result<(), CleanupError> {
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &db_ref.namespace);
    ctx.status
        .clear(&api, db)
        .await
        .map(|_| ())
        .map_err(CleanupError::Status)
}

/// While the provisioner rolls out a spec without TLS, how often to look again (its status
/// writes also bring the database back).
const ROLLOUT_RECHECK: Duration = Duration::from_secs(30);

/// Why the TLS Secrets may still be in use after `spec.tls` was removed at `generation`: the
/// provisioner has not reported that generation yet, or reports a rollout under way. None once
/// it reports the workload settled (or no workload, or is not running at all).
fn still_in_use(status: Option<&DatabaseStatus>, generation: Option<i64>) -> Option<String> {
    let workload = status?.condition(ConditionType::WorkloadReady.as_str())?;
    if workload.observed_generation < generation {
        return Some(format!(
            "the provisioner has not rolled out generation {} yet",
            generation.unwrap_or_default()
        ));
    }
    (workload.status != "True"
        && workload.reason.as_deref() == Some(Reason::ReplicasNotReady.as_str()))
    .then(|| workload.message.clone().unwrap_or_default())
}

/// `spec.tls` was removed from a live database.
pub async fn tls_removed<K: Database>(
    db: &K,
    db_ref: &DbRef,
    ctx: &Context,
) -> Result<Action, CleanupError> {
    if !finalizer::has(db) {
        clear_status(db, db_ref, ctx).await?;
        ctx.certificate_metrics.forget(db_ref);
        ctx.serving.forget(db_ref);
        return Ok(Action::await_change());
    }
    if let Some(why) = still_in_use(db.db_status(), db.meta().generation) {
        tracing::debug!(db = %db_ref.display(), %why, "TLS removed: Certificates kept until the rollout is over");
        return Ok(Action::requeue(ROLLOUT_RECHECK));
    }
    let released = release(db_ref, db.common().deletion_policy, ctx).await?;
    // The finalizer goes before the status write: that write moves the resourceVersion the
    // removal is conditional on, and the removal would then wait for another reconcile.
    finalizer::remove(db, ctx).await?;
    clear_status(db, db_ref, ctx).await?;
    ctx.certificate_metrics.forget(db_ref);
    ctx.serving.forget(db_ref);
    let note = format!(
        "spec.tls was removed: deleted {released} Certificate(s) of {}",
        db_ref.display()
    );
    let regarding = db.object_ref(&());
    events::publish(
        ctx.status.recorder(),
        &regarding,
        false,
        "TLSRemoved",
        ACTION,
        &note,
    )
    .await;
    Ok(Action::await_change())
}

/// Deletes the database's Certificates, then deletes (WipeOut) or releases its TLS Secrets.
/// Certificates go first so that cert-manager does not re-issue a deleted Secret.
async fn release(db: &DbRef, policy: DeletionPolicy, ctx: &Context) -> Result<usize, CleanupError> {
    let selector = labels::database_selector(db.kind, &db.name);
    let certificates: Api<Certificate> = Api::namespaced(ctx.client.clone(), &db.namespace);
    let owned = certificates
        .list_metadata(&ListParams::default().labels(&selector))
        .await
        .map_err(|source| CleanupError::List {
            what: format!("Certificates of {}", db.display()),
            source,
        })?;
    let mut deleted = 0;
    // The Secrets these Certificates were issued into are the database's even before it
    // adopted them (deleted a moment after issuance, it never got to).
    let mut ours = Vec::new();
    for cert in &owned.items {
        let owners = cert
            .metadata
            .owner_references
            .as_deref()
            .unwrap_or_default();
        if let Some(name) = cert.metadata.name.as_deref()
            && db.controls(owners)
        {
            apply::delete_certificate(&certificates, name).await?;
            ours.push(name.to_string());
            deleted += 1;
        }
    }

    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &db.namespace);
    let labelled = secrets
        .list_metadata(&ListParams::default().labels(&selector))
        .await
        .map_err(|source| CleanupError::List {
            what: format!("Secrets of {}", db.display()),
            source,
        })?;
    for secret in &labelled.items {
        let Some(name) = secret.metadata.name.as_deref() else {
            continue;
        };
        // cert-manager names the Certificate a Secret was issued for; ours are named after
        // their Secret.
        let issued_for_us = secret
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(annotations::CERTIFICATE_NAME))
            .is_some_and(|c| c == name);
        let adopted = secret
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.uid == db.uid);
        // The CA bundle and an issuer change's probe are the ops-manager's own: never kept.
        let own = (name == names::ca_bundle(&db.name) && adopted)
            || (name == names::ca_probe(&db.name) && issued_for_us);
        let issuer = if !issued_for_us {
            SecretIssuer::NotIssued
        } else if adopted || ours.iter().any(|c| c == name) {
            SecretIssuer::OurCertificate
        } else {
            // Unadopted and its Certificate not among those just deleted: gone (an earlier pass
            // deleted it and failed before this Secret), or someone else's.
            certificate_of(&certificates, name, db).await?
        };
        let version = secret.metadata.resource_version.clone();
        match fate(policy, own, issuer, adopted) {
            Fate::Delete => apply::delete_secret(&secrets, name, version).await?,
            Fate::Release => {
                if let (Some(version), Some(uid)) = (version, secret.metadata.uid.as_deref()) {
                    apply::release_secret(&secrets, &db.namespace, name, uid, &version).await?;
                }
            }
            Fate::Keep => {}
        }
    }
    Ok(deleted)
}

/// Who a labelled Secret was issued for, as far as the cleanup can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SecretIssuer {
    /// cert-manager did not issue it for a Certificate of its name: the user's.
    NotIssued,
    /// One of the database's Certificates (adopted, just deleted, or controlled).
    OurCertificate,
    /// Its Certificate no longer exists: only the database's Certificates name their Secret
    /// after themselves with its labels, so it was one of them, deleted by an earlier pass.
    CertificateGone,
    /// A Certificate of its name exists that the database does not control.
    ForeignCertificate,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Delete,
    /// Keep it, without the database's ownerReference.
    Release,
    Keep,
}

/// What the cleanup does with a Secret carrying the database's labels.
fn fate(policy: DeletionPolicy, own: bool, issuer: SecretIssuer, adopted: bool) -> Fate {
    if own {
        return Fate::Delete;
    }
    let ours = match issuer {
        SecretIssuer::NotIssued | SecretIssuer::ForeignCertificate => false,
        SecretIssuer::OurCertificate | SecretIssuer::CertificateGone => true,
    };
    match (ours, policy == DeletionPolicy::WipeOut, adopted) {
        (true, true, _) => Fate::Delete,
        (true, false, true) => Fate::Release,
        _ => Fate::Keep,
    }
}

/// Whether the Certificate `name` is gone or someone else's.
async fn certificate_of(
    certificates: &Api<Certificate>,
    name: &str,
    db: &DbRef,
) -> Result<SecretIssuer, CleanupError> {
    let found = certificates
        .get_metadata_opt(name)
        .await
        .map_err(|source| CleanupError::Read {
            what: format!("Certificate {name} of {}", db.display()),
            source,
        })?;
    Ok(match found {
        None => SecretIssuer::CertificateGone,
        Some(c) if db.controls(c.metadata.owner_references.as_deref().unwrap_or_default()) => {
            SecretIssuer::OurCertificate
        }
        Some(_) => SecretIssuer::ForeignCertificate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_labelled_secret_is_deleted_released_or_kept_by_who_issued_it_and_the_policy() {
        use DeletionPolicy::{Delete, Halt, WipeOut};
        use SecretIssuer::*;
        let cases = [
            (
                "the CA bundle or probe",
                Halt,
                true,
                NotIssued,
                true,
                Fate::Delete,
            ),
            (
                "ours, adopted, WipeOut",
                WipeOut,
                false,
                OurCertificate,
                true,
                Fate::Delete,
            ),
            (
                "ours, adopted, Delete",
                Delete,
                false,
                OurCertificate,
                true,
                Fate::Release,
            ),
            (
                "ours, adopted, Halt",
                Halt,
                false,
                OurCertificate,
                true,
                Fate::Release,
            ),
            (
                "ours, issued a moment before deletion, WipeOut",
                WipeOut,
                false,
                OurCertificate,
                false,
                Fate::Delete,
            ),
            (
                "ours, never adopted, Delete: nothing to release",
                Delete,
                false,
                OurCertificate,
                false,
                Fate::Keep,
            ),
            (
                "its Certificate deleted by an earlier pass, WipeOut",
                WipeOut,
                false,
                CertificateGone,
                false,
                Fate::Delete,
            ),
            (
                "its Certificate deleted by an earlier pass, Halt",
                Halt,
                false,
                CertificateGone,
                false,
                Fate::Keep,
            ),
            (
                "issued for someone else's Certificate",
                WipeOut,
                false,
                ForeignCertificate,
                false,
                Fate::Keep,
            ),
            (
                "the user's Secret",
                WipeOut,
                false,
                NotIssued,
                false,
                Fate::Keep,
            ),
        ];
        for (case, policy, own, issuer, adopted, expected) in cases {
            assert_eq!(fate(policy, own, issuer, adopted), expected, "{case}");
        }
    }
    use dbtls_contract::api::Condition;

    fn workload(status: &str, reason: Reason, generation: i64) -> DatabaseStatus {
        DatabaseStatus {
            conditions: vec![Condition {
                type_: ConditionType::WorkloadReady.as_str().into(),
                status: status.into(),
                reason: Some(reason.as_str().into()),
                message: Some("StatefulSet px: 2/3 replicas ready".into()),
                observed_generation: Some(generation),
                ..Condition::default()
            }],
            ..DatabaseStatus::default()
        }
    }

    #[test]
    fn tls_secrets_are_released_only_once_the_rollout_without_tls_is_over() {
        let cases = [
            ("no provisioner status", None, false),
            (
                "generation not seen yet",
                Some(workload("True", Reason::AllReplicasReady, 3)),
                true,
            ),
            (
                "rolling out",
                Some(workload("False", Reason::ReplicasNotReady, 4)),
                true,
            ),
            (
                "rolled out",
                Some(workload("True", Reason::AllReplicasReady, 4)),
                false,
            ),
            (
                "halted: no pods",
                Some(workload("False", Reason::Halted, 4)),
                false,
            ),
        ];
        for (case, status, in_use) in cases {
            assert_eq!(
                still_in_use(status.as_ref(), Some(4)).is_some(),
                in_use,
                "{case}"
            );
        }
    }
}
