//! ReconfigureTLS OpsRequests: one controller per kind and watched namespace, each reconcile
//! observe (the database, its Certificates and the queue) -> [`plan`] (pure) -> act (patch the
//! database's spec, or ask cert-manager to re-issue) -> status (the request's, KubeDB's shape).
//! One request runs at a time per database; the others wait in Pending, saying for which.

pub mod plan;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use dbtls_contract::api::ops::{OpsRequest, OpsRequestPhase};
use dbtls_contract::api::{TlsConfig, TlsView};
use dbtls_contract::certmanager::Certificate;
use dbtls_contract::kinds::alias;
use dbtls_contract::{OPS_MANAGER_MANAGER, labels, tls};
use futures::FutureExt;
use futures::StreamExt;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use crate::caches::{OpsSummary, Stores};
use crate::context::Context;
use crate::serving::observe::certificate_of;
use dbtls_runtime::caches::SharedWatch;
use plan::{Action as PlanAction, CertificateFacts, DatabaseFacts, Observed};

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("reading {what}: {source}")]
    Read {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("writing the status of {request}: {source}")]
    Status {
        request: String,
        #[source]
        source: kube::Error,
    },
    #[error("asking for the re-issuance of Certificate {name}: {source}")]
    Reissue {
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// The controller of OpsRequests of kind `O` in one scope, fed by the shared watches.
pub fn controller<O: OpsRequest, K: dbtls_contract::Database>(
    ctx: &Arc<Context>,
    ops: &SharedWatch<O>,
    certificates: impl futures::Stream<Item = Arc<Certificate>> + Send + 'static,
    databases: impl futures::Stream<Item = Arc<K>> + Send + 'static,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> BoxFuture<'static, ()> {
    let store = ops.store();
    let (for_certificates, for_databases) = (store.clone(), store.clone());
    let controller = Controller::for_shared_stream(ops.subscribe(), store)
        .watches_shared_stream(certificates, move |c| {
            match (labels::database_of(c.labels()), c.namespace()) {
                (Some((kind, db)), Some(ns)) if kind == O::DATABASE => {
                    requests_for(&for_certificates, &ns, db)
                }
                _ => Vec::new(),
            }
        })
        .watches_shared_stream(databases, move |db| match db.namespace() {
            Some(ns) => requests_for(&for_databases, &ns, &db.name_any()),
            None => Vec::new(),
        });
    let ctx = ctx.clone();
    async move {
        controller
            .graceful_shutdown_on(shutdown)
            .run(reconcile::<O>, error_policy::<O>, ctx)
            .for_each(|result| async move {
                if let Err(error) = result {
                    tracing::debug!(kind = %O::kind(&()), %error, "ops controller event");
                }
            })
            .await;
    }
    .boxed()
}

/// Every request for the database: a change to it may unblock any of them.
fn requests_for<O: OpsRequest>(store: &Store<O>, namespace: &str, db: &str) -> Vec<ObjectRef<O>> {
    store
        .state()
        .iter()
        .filter(|o| o.namespace().as_deref() == Some(namespace) && o.spec_view().database == db)
        .map(|o| ObjectRef::from_obj(o.as_ref()))
        .collect()
}

pub fn error_policy<O: OpsRequest>(o: Arc<O>, error: &OpsError, _ctx: Arc<Context>) -> Action {
    tracing::warn!(kind = %O::kind(&()), request = %o.name_any(), %error, "ops request reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

pub async fn reconcile<O: OpsRequest>(o: Arc<O>, ctx: Arc<Context>) -> Result<Action, OpsError> {
    let Some(namespace) = o.namespace() else {
        return Ok(Action::await_change());
    };
    if o.meta().deletion_timestamp.is_some() {
        ctx.ops_written.forget(&o.uid().unwrap_or_default());
        return Ok(Action::await_change());
    }
    let status = ctx.ops_written.current(
        &o.uid().unwrap_or_default(),
        &o.resource_version().unwrap_or_default(),
        o.ops_status().cloned().unwrap_or_default(),
    );
    if status.phase.is_some_and(OpsRequestPhase::is_final) {
        return Ok(Action::await_change());
    }
    let Some(stores) = ctx.caches.of(&namespace) else {
        return Ok(Action::await_change());
    };
    let spec = o.spec_view();
    let database = read_database::<O>(&ctx.client, &namespace, spec.database).await?;
    let certificates = certificates_of(stores, &namespace, O::DATABASE, spec.database);
    let server_serial = match &database {
        Some(db) => server_serial(&ctx.client, db).await?,
        None => None,
    };
    let queue = stores
        .ops
        .for_database(O::DATABASE, &namespace, spec.database);
    let me = OpsSummary::of(o.as_ref());
    let observed = Observed {
        request: me.describe.clone(),
        spec,
        phase: status.phase,
        conditions: &status.conditions,
        certificate_revisions: &status.certificate_revisions,
        database_generation: status.database_generation,
        database,
        certificates,
        server_serial,
        ahead: ahead_of(&me, &queue),
        now: chrono::Utc::now().timestamp(),
    };
    let decision = plan::plan(&observed);
    let requeue = decision.requeue;
    // The step is recorded before it acts: a restarted ops-manager resumes it instead of
    // deciding again from a status that predates the change.
    let written = status::write(&ctx, o.as_ref(), &status, &decision).await?;
    if let Some(message) = act(&ctx, stores, &observed, &decision.action).await? {
        status::write(
            &ctx,
            o.as_ref(),
            &written,
            &plan::Decision::failed_by_api(message),
        )
        .await?;
        return Ok(Action::await_change());
    }
    Ok(requeue.map_or_else(Action::await_change, Action::requeue))
}

/// The request `me` waits for: one that runs, or an older one that has not finished.
fn ahead_of(me: &OpsSummary, queue: &[OpsSummary]) -> Option<String> {
    if me.phase == Some(OpsRequestPhase::Progressing) {
        return None;
    }
    let others = || queue.iter().filter(|o| o.name != me.name);
    others()
        .find(|o| o.phase == Some(OpsRequestPhase::Progressing))
        .or_else(|| {
            others().find(|o| {
                !o.phase.is_some_and(OpsRequestPhase::is_final)
                    && (&o.created, &o.name) < (&me.created, &me.name)
            })
        })
        .map(|o| o.describe.clone())
}

/// The database, read whole (an OpsRequest is rare; its patch needs a fresh resourceVersion).
async fn read_database<O: OpsRequest>(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Option<DatabaseFacts>, OpsError> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &O::DATABASE.api_resource());
    let Some(db) = api.get_opt(name).await.map_err(|source| OpsError::Read {
        what: format!("{} {namespace}/{name}", O::DATABASE),
        source,
    })?
    else {
        return Ok(None);
    };
    Ok(Some(database_facts(O::DATABASE, &db)))
}

pub fn database_facts(kind: dbtls_contract::DbKind, db: &DynamicObject) -> DatabaseFacts {
    let status = db.data.get("status");
    DatabaseFacts {
        kind,
        namespace: db.namespace().unwrap_or_default(),
        name: db.name_any(),
        resource_version: db.resource_version().unwrap_or_default(),
        generation: db.meta().generation.unwrap_or_default(),
        phase: status
            .and_then(|s| s.get("phase"))
            .and_then(Value::as_str)
            .map(str::to_string),
        spec: db.data.get("spec").cloned().unwrap_or(Value::Null),
        conditions: status
            .and_then(|s| s.get("conditions"))
            .and_then(|c| serde_json::from_value(c.clone()).ok())
            .unwrap_or_default(),
    }
}

fn certificates_of(
    stores: &Stores,
    namespace: &str,
    kind: dbtls_contract::DbKind,
    db: &str,
) -> Vec<CertificateFacts> {
    let mut list: Vec<CertificateFacts> = stores
        .certificates_of(namespace, &labels::for_database(kind, db))
        .iter()
        // An issuer change's CA probe is not one of the database's certificates.
        .filter(|c| c.metadata.name.as_deref() != Some(&dbtls_contract::names::ca_probe(db)))
        .map(certificate_facts)
        .collect();
    list.sort_by(|a, b| a.name.cmp(&b.name));
    list
}

pub fn certificate_facts(c: &Certificate) -> CertificateFacts {
    let status = c.status.as_ref();
    let generation = c.metadata.generation;
    let ready = status.and_then(|s| s.condition("Ready")).is_some_and(|r| {
        r.status == "True"
            && (r.observed_generation.is_none() || r.observed_generation == generation)
    });
    CertificateFacts {
        name: c.name_any(),
        resource_version: c.resource_version().unwrap_or_default(),
        revision: status.and_then(|s| s.revision).unwrap_or(0),
        ready,
        issuing: status
            .and_then(|s| s.condition("Issuing"))
            .is_some_and(|i| i.status == "True"),
    }
}

/// The serial of the certificate the database's server Secret holds.
async fn server_serial(
    client: &kube::Client,
    db: &DatabaseFacts,
) -> Result<Option<String>, OpsError> {
    let Some(tls_spec) = db
        .spec
        .get("tls")
        .and_then(|t| serde_json::from_value::<TlsConfig>(t.clone()).ok())
    else {
        return Ok(None);
    };
    let view: TlsView<'_> = tls_spec.view();
    let name = tls::secret_name(&db.name, &view, alias::SERVER);
    let secret = Api::<Secret>::namespaced(client.clone(), &db.namespace)
        .get_opt(&name)
        .await
        .map_err(|source| OpsError::Read {
            what: format!("Secret {}/{name}", db.namespace),
            source,
        })?;
    Ok(secret.as_ref().and_then(certificate_of).map(|c| c.serial))
}

/// Carries out the decided action; a refusal the request cannot get past comes back as text.
async fn act(
    ctx: &Context,
    stores: &Stores,
    observed: &Observed<'_>,
    action: &PlanAction,
) -> Result<Option<String>, OpsError> {
    match action {
        PlanAction::None => Ok(None),
        PlanAction::PatchDatabase(patch) => {
            let Some(db) = &observed.database else {
                return Ok(None);
            };
            let api: Api<DynamicObject> =
                Api::namespaced_with(ctx.client.clone(), &db.namespace, &db.kind.api_resource());
            match api
                .patch(
                    &db.name,
                    &PatchParams {
                        field_manager: Some(OPS_MANAGER_MANAGER.to_string()),
                        ..PatchParams::default()
                    },
                    &Patch::Merge(patch),
                )
                .await
            {
                Ok(_) => Ok(None),
                // Changed since it was read: the next reconcile reads it again.
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(None),
                Err(kube::Error::Api(s)) if s.code == 422 || s.code == 400 => Ok(Some(format!(
                    "the API server refused the change to {}: {}",
                    db.describe_for_error(),
                    s.message
                ))),
                Err(source) => Err(OpsError::Read {
                    what: format!("patching {}", db.describe_for_error()),
                    source,
                }),
            }
        }
        PlanAction::Reissue(certificates) => {
            let ns = observed
                .database
                .as_ref()
                .map(|d| d.namespace.clone())
                .unwrap_or_default();
            for (name, resource_version) in certificates {
                reissue(&ctx.client, stores, &ns, name, resource_version).await?;
            }
            Ok(None)
        }
    }
}

/// Asks cert-manager to re-issue a Certificate as `cmctl renew` does: condition `Issuing` True,
/// written only over the version read (so a Certificate re-issued meanwhile is not issued twice).
async fn reissue(
    client: &kube::Client,
    stores: &Stores,
    namespace: &str,
    name: &str,
    resource_version: &str,
) -> Result<(), OpsError> {
    let Some(current) = stores.certificate(namespace, name) else {
        return Ok(());
    };
    let mut conditions: Vec<Value> = current
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.type_ != "Issuing")
        .filter_map(|c| serde_json::to_value(c).ok())
        .collect();
    conditions.push(json!({
        "type": "Issuing", "status": "True", "reason": "ManuallyTriggered",
        "message": "Certificate re-issuance requested by a ReconfigureTLS OpsRequest",
        "lastTransitionTime": dbtls_runtime::conditions::now(),
        "observedGeneration": current.metadata.generation,
    }));
    let patch = json!({
        "metadata": {"resourceVersion": resource_version},
        "status": {"conditions": conditions},
    });
    match Api::<Certificate>::namespaced(client.clone(), namespace)
        .patch_status(
            name,
            &PatchParams {
                field_manager: Some(OPS_MANAGER_MANAGER.to_string()),
                ..PatchParams::default()
            },
            &Patch::Merge(patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => Ok(()),
        Err(source) => Err(OpsError::Reissue {
            name: name.to_string(),
            source,
        }),
    }
}

impl DatabaseFacts {
    fn describe_for_error(&self) -> String {
        format!("{} {}/{}", self.kind, self.namespace, self.name)
    }
}
