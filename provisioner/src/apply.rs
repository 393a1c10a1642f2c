//! The write step: carries out a [`Plan`]'s writes in order and its deletes, each under the
//! provisioner's field manager and only on objects the database controls, and says what the
//! status must add to the plan's report: a name conflict found at write time, or a workload
//! update the API server refused.
use dbtls_contract::PROVISIONER_MANAGER;
use dbtls_contract::monitoring::ServiceMonitor;
use dbtls_contract::petset::PetSet;
use dbtls_runtime::children::{self, Applied};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Secret, Service};
use kube::Resource;
use kube::api::Api;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::desired::auth;
use crate::facts::DbFacts;
use crate::plan::{Delete, Outcome, Write};
use crate::workload::Workload;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("applying {what}: {source}")]
    Apply {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("deleting {what}: {source}")]
    Delete {
        what: String,
        #[source]
        source: kube::Error,
    },
}

struct Writer<'a> {
    client: &'a kube::Client,
    namespace: &'a str,
    owner_uid: &'a str,
}

impl Writer<'_> {
    fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), self.namespace)
    }

    async fn apply<K>(&self, desired: &K, cached: Option<&K>) -> kube::Result<Applied>
    where
        K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + Serialize
            + DeserializeOwned
            + std::fmt::Debug,
    {
        let name = desired.meta().name.clone().unwrap_or_default();
        let api = self.api::<K>();
        children::apply_owned(
            &api,
            &name,
            desired,
            cached,
            self.owner_uid,
            PROVISIONER_MANAGER,
        )
        .await
    }

    async fn workload(
        &self,
        desired: &Workload,
        cached: Option<&Workload>,
    ) -> kube::Result<Applied> {
        match desired {
            Workload::StatefulSet(s) => {
                let cached = match cached {
                    Some(Workload::StatefulSet(c)) => Some(c),
                    _ => None,
                };
                self.apply::<StatefulSet>(s, cached).await
            }
            Workload::PetSet(p) => {
                let cached = match cached {
                    Some(Workload::PetSet(c)) => Some(c),
                    _ => None,
                };
                self.apply::<PetSet>(p, cached).await
            }
        }
    }

    async fn delete(&self, delete: &Delete) -> kube::Result<bool> {
        match delete {
            Delete::Service(s) => {
                children::delete_owned(&self.api::<Service>(), s, self.owner_uid).await
            }
            Delete::Secret(s) => {
                children::delete_owned(&self.api::<Secret>(), s, self.owner_uid).await
            }
            Delete::ServiceMonitor(m) => {
                children::delete_owned(&self.api::<ServiceMonitor>(), m, self.owner_uid).await
            }
            Delete::Workload(w) => match w.as_ref() {
                Workload::StatefulSet(s) => {
                    children::delete_owned(&self.api::<StatefulSet>(), s, self.owner_uid).await
                }
                Workload::PetSet(p) => {
                    children::delete_owned(&self.api::<PetSet>(), p, self.owner_uid).await
                }
            },
        }
    }
}

fn describe(write: &Write, facts: &DbFacts<'_>) -> String {
    let name = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        meta.name.clone().unwrap_or_default()
    };
    match write {
        Write::AuthSecret => format!("Secret {}", facts.auth_secret_name()),
        Write::Service { desired, .. } => format!("Service {}", name(&desired.metadata)),
        Write::ConfigSecret { desired, .. } => format!("Secret {}", name(&desired.metadata)),
        Write::Workload { desired, .. } => desired.describe(),
        Write::ServiceMonitor { desired, .. } => {
            format!("ServiceMonitor {}", name(&desired.metadata))
        }
    }
}

fn describe_delete(delete: &Delete) -> String {
    match delete {
        Delete::Service(s) => format!("Service {}", s.metadata.name.as_deref().unwrap_or_default()),
        Delete::Secret(s) => format!("Secret {}", s.metadata.name.as_deref().unwrap_or_default()),
        Delete::Workload(w) => w.describe(),
        Delete::ServiceMonitor(m) => format!(
            "ServiceMonitor {}",
            m.metadata.name.as_deref().unwrap_or_default()
        ),
    }
}

/// The auth Secret, created once: an existing Secret of that name, ours or not, is used as it
/// is (the cache only holds labelled ones, so it is read first).
async fn create_auth_secret(writer: &Writer<'_>, facts: &DbFacts<'_>) -> kube::Result<Applied> {
    let api = writer.api::<Secret>();
    let name = facts.auth_secret_name();
    if api.get_metadata_opt(&name).await?.is_some() {
        return Ok(Applied::Unchanged);
    }
    let secret = auth::auth_secret(facts, &auth::generate_password());
    dbtls_runtime::ssa::create(&api, &name, PROVISIONER_MANAGER, &secret).await?;
    Ok(Applied::Created)
}

/// One write; `Ok(None)` when the API server refused a workload update (an immutable field the
/// plan did not foresee), which is reported, not retried.
async fn write_one(
    writer: &Writer<'_>,
    facts: &DbFacts<'_>,
    write: &Write,
    refused: &mut Option<String>,
) -> kube::Result<Applied> {
    match write {
        Write::AuthSecret => create_auth_secret(writer, facts).await,
        Write::Service { desired, cached } => {
            writer.apply(desired.as_ref(), cached.as_deref()).await
        }
        Write::ConfigSecret { desired, cached } => {
            writer.apply(desired.as_ref(), cached.as_deref()).await
        }
        Write::ServiceMonitor { desired, cached } => {
            writer.apply(desired.as_ref(), cached.as_deref()).await
        }
        Write::Workload { desired, cached } => {
            match writer.workload(desired, cached.as_deref()).await {
                Err(kube::Error::Api(s)) if s.code == 422 => {
                    *refused = Some(s.message);
                    Ok(Applied::Unchanged)
                }
                other => other,
            }
        }
    }
}

/// Carries out the writes in order, stopping at the first object someone else owns, then the
/// deletes.
pub async fn apply(
    client: &kube::Client,
    facts: &DbFacts<'_>,
    writes: &[Write],
    deletes: &[Delete],
) -> Result<Outcome, ApplyError> {
    let owner_uid = facts
        .owner
        .as_ref()
        .map(|o| o.uid.clone())
        .unwrap_or_default();
    let writer = Writer {
        client,
        namespace: &facts.namespace,
        owner_uid: &owner_uid,
    };
    let mut outcome = Outcome::default();
    for write in writes {
        let what = describe(write, facts);
        let applied = write_one(&writer, facts, write, &mut outcome.refused)
            .await
            .map_err(|source| ApplyError::Apply {
                what: what.clone(),
                source,
            })?;
        match applied {
            Applied::Foreign => {
                outcome.conflict = Some(what);
                return Ok(outcome);
            }
            Applied::Created | Applied::Updated => {
                tracing::info!(db = %facts.name, "applied {what}")
            }
            Applied::Unchanged => {}
        }
    }
    for delete in deletes {
        let what = describe_delete(delete);
        let deleted = writer
            .delete(delete)
            .await
            .map_err(|source| ApplyError::Delete {
                what: what.clone(),
                source,
            })?;
        if deleted {
            tracing::info!(db = %facts.name, "deleted {what}");
        }
    }
    Ok(outcome)
}
