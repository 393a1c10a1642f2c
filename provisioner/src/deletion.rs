//! Carrying out `deletionPolicy` before the provisioner's finalizer lets Kubernetes delete the
//! database: decided purely ([`plan`]), then done ([`execute`]).
use dbtls_contract::api::DeletionPolicy;
use dbtls_contract::{PROVISIONER_MANAGER, labels};
use dbtls_runtime::children::controlled_by;
use dbtls_runtime::ssa;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams};

use crate::apply::{self, ApplyError};
use crate::desired::auth;
use crate::facts::DbFacts;
use crate::observe::Observed;
use crate::plan::{self, Delete};
use crate::status::Report;
use crate::workload::WorkloadChoice;

/// What happens to the auth Secret `<db>-auth` the provisioner created.
#[derive(Clone, Debug, PartialEq)]
pub enum AuthSecretFate {
    /// The user's own, or none of ours: never touched.
    Keep,
    /// WipeOut: deleted with the database.
    Delete(Box<Secret>),
    /// Halt, Delete: its ownerReference removed, so that garbage collection keeps it.
    Release(Box<Secret>),
}

#[derive(Clone, Debug, PartialEq)]
pub enum DeletionPlan {
    /// DoNotTerminate: nothing is deleted; the status says why.
    Blocked(Report),
    Proceed {
        deletes: Vec<Delete>,
        delete_pvcs: bool,
        auth: AuthSecretFate,
    },
}

/// What deleting the database does to what it owns, by `deletionPolicy` (as KubeDB).
pub fn plan(facts: &DbFacts<'_>, observed: &Observed, choice: &WorkloadChoice) -> DeletionPlan {
    let policy = facts.common.deletion_policy;
    if policy == DeletionPolicy::DoNotTerminate {
        let workload =
            crate::plan::live_report(facts, choice, observed, "deletion requested".into());
        return DeletionPlan::Blocked(Report {
            deletion_blocked: true,
            ..Report::new(workload)
        });
    }
    let owner_uid = facts
        .owner
        .as_ref()
        .map(|o| o.uid.as_str())
        .unwrap_or_default();
    let ours = observed.auth_secret.as_ref().filter(|s| {
        facts.user_auth_secret().is_none()
            && controlled_by(
                s.metadata.owner_references.as_deref().unwrap_or_default(),
                owner_uid,
            )
    });
    let auth = match (ours, policy) {
        (None, _) => AuthSecretFate::Keep,
        (Some(secret), DeletionPolicy::WipeOut) => AuthSecretFate::Delete(Box::new(secret.clone())),
        (Some(secret), _) => AuthSecretFate::Release(Box::new(secret.clone())),
    };
    DeletionPlan::Proceed {
        deletes: plan::runtime_objects(facts, observed),
        delete_pvcs: matches!(policy, DeletionPolicy::Delete | DeletionPolicy::WipeOut),
        auth,
    }
}

/// Deletes the runtime objects, the PVCs when asked, and settles the auth Secret.
pub async fn execute(
    client: &kube::Client,
    facts: &DbFacts<'_>,
    deletes: &[Delete],
    delete_pvcs: bool,
    auth: &AuthSecretFate,
) -> Result<(), ApplyError> {
    apply::apply(client, facts, &[], deletes).await?;
    if delete_pvcs {
        delete_claims(client, facts).await?;
    }
    let secrets = Api::<Secret>::namespaced(client.clone(), &facts.namespace);
    let owner_uid = facts
        .owner
        .as_ref()
        .map(|o| o.uid.clone())
        .unwrap_or_default();
    match auth {
        AuthSecretFate::Keep => Ok(()),
        AuthSecretFate::Delete(secret) => {
            dbtls_runtime::children::delete_owned(&secrets, secret.as_ref(), &owner_uid)
                .await
                .map(|_| ())
                .map_err(|source| ApplyError::Delete {
                    what: format!("Secret {}", secret.name_any()),
                    source,
                })
        }
        AuthSecretFate::Release(cached) => release(&secrets, &cached.name_any()).await,
    }
}

/// Applies the auth Secret without its ownerReference. The cache holds no Secret contents, so
/// the live Secret is read: the apply must carry its data, which the provisioner's field
/// manager owns and would otherwise drop.
async fn release(secrets: &Api<Secret>, name: &str) -> Result<(), ApplyError> {
    let error = |source| ApplyError::Apply {
        what: format!("Secret {name} (released)"),
        source,
    };
    let Some(live) = secrets.get_opt(name).await.map_err(error)? else {
        return Ok(());
    };
    let uid = live.metadata.uid.clone().unwrap_or_default();
    match ssa::update(
        secrets,
        name,
        PROVISIONER_MANAGER,
        &auth::released_auth_secret(&live),
        &uid,
    )
    .await
    {
        Ok(_) => Ok(()),
        // Deleted (or replaced) meanwhile: nothing of ours left to keep.
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(source) => Err(error(source)),
    }
}

/// Deletes the PVCs carrying the database's labels (those from its `volumeClaimTemplates`).
async fn delete_claims(client: &kube::Client, facts: &DbFacts<'_>) -> Result<(), ApplyError> {
    let api = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &facts.namespace);
    let selector = labels::database_selector(facts.kind, &facts.name);
    let claims = api
        .list_metadata(&ListParams::default().labels(&selector))
        .await
        .map_err(|source| ApplyError::Delete {
            what: "PersistentVolumeClaims".into(),
            source,
        })?;
    for claim in claims {
        let name = claim.name_any();
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(source) => {
                return Err(ApplyError::Delete {
                    what: format!("PersistentVolumeClaim {name}"),
                    source,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::facts::fixtures::load;
    use crate::workload::{WorkloadFlag, choose};
    use dbtls_contract::api::MySQL;

    fn db(policy: &str, user_auth: bool) -> MySQL {
        let mut db: MySQL = load("mysql-require-ssl.yaml");
        db.spec.deletion_policy = Some(serde_json::from_value(serde_json::json!(policy)).unwrap());
        if user_auth {
            db.spec.auth_secret =
                Some(serde_json::from_value(serde_json::json!({"name": "creds"})).unwrap());
        }
        db
    }

    fn decide(db: &MySQL) -> DeletionPlan {
        let facts = DbFacts::of(db);
        let mut auth = Secret::default();
        auth.metadata.owner_references = facts.owner.clone().map(|o| vec![o]);
        let observed = Observed {
            auth_secret: Some(auth),
            ..Observed::default()
        };
        plan(
            &facts,
            &observed,
            &choose(WorkloadFlag::Statefulset, facts.kind, false),
        )
    }

    fn proceed(plan: DeletionPlan) -> (bool, AuthSecretFate) {
        match plan {
            DeletionPlan::Proceed {
                delete_pvcs, auth, ..
            } => (delete_pvcs, auth),
            DeletionPlan::Blocked(report) => panic!("blocked: {report:?}"),
        }
    }

    #[test]
    fn do_not_terminate_blocks_and_says_so() {
        match decide(&db("DoNotTerminate", false)) {
            DeletionPlan::Blocked(report) => assert!(report.deletion_blocked),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn each_policy_keeps_what_kubedb_keeps() {
        let (pvcs, auth) = proceed(decide(&db("WipeOut", false)));
        assert!(pvcs && matches!(auth, AuthSecretFate::Delete(_)));
        let (pvcs, auth) = proceed(decide(&db("Delete", false)));
        assert!(pvcs && matches!(auth, AuthSecretFate::Release(_)));
        let (pvcs, auth) = proceed(decide(&db("Halt", false)));
        assert!(!pvcs && matches!(auth, AuthSecretFate::Release(_)));
    }

    #[test]
    fn a_users_auth_secret_is_never_touched() {
        let (_, auth) = proceed(decide(&db("WipeOut", true)));
        assert_eq!(auth, AuthSecretFate::Keep);
    }
}
