//! The generic pipeline every kind runs: dereference -> validate -> build -> apply ->
//! update_status. Each child is applied only when the live object differs from the desired one,
//! and the status only when it changed, so that a converged database costs zero writes.
use std::sync::Arc;
use std::time::{Duration, Instant};

use dbtls_contract::api::DatabaseStatus;
use dbtls_contract::petset::PetSet;
use dbtls_contract::{PROVISIONER_FINALIZER, PROVISIONER_MANAGER, names};
use dbtls_runtime::{coalesce, conditions, events, finalizer, ssa};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Secret, Service};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use crate::context::{Context, DbKey, RESYNC, WAIT_BACKOFF_START};
use crate::desired::{self, auth, services, workload::Workload};
use crate::facts::{DbFacts, Provisionable};
use crate::status::{self, Observation, WorkloadReport};
use crate::tls_secrets::{self, TlsSecretsState};
use crate::validate::{self, Invalid};
use crate::workload_choice::WorkloadApi;
use crate::{deletion, diff};

/// Failures talking to the API server, by pipeline step (spec problems are not errors: they are
/// reported on the status).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading {what}: {source}")]
    Dereference {
        what: String,
        #[source]
        source: kube::Error,
    },
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
    #[error("finalizer: {0}")]
    Finalizer(#[source] kube::Error),
    #[error("status: {0}")]
    Status(#[source] kube::Error),
    #[error("serialising {0}")]
    Serialize(#[from] serde_json::Error),
}

impl Error {
    /// A short label for the errors metric.
    pub fn metric_reason(&self) -> &'static str {
        match self {
            Error::Dereference { .. } => "read",
            Error::Apply { .. } => "apply",
            Error::Delete { .. } => "delete",
            Error::Finalizer(_) => "finalizer",
            Error::Status(_) => "status",
            Error::Serialize(_) => "serialize",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub fn key_of<K: Provisionable>(db: &K) -> DbKey {
    (K::KIND, db.namespace().unwrap_or_default(), db.name_any())
}

/// Entry point of every controller.
pub async fn reconcile<K: Provisionable>(db: Arc<K>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let kind = K::KIND.to_string();
    let result = if db.meta().deletion_timestamp.is_some() {
        deletion::finalize(&*db, &ctx).await
    } else {
        provision(&*db, &ctx).await
    };
    match &result {
        Ok(_) => {
            ctx.metrics.observe_ok(&kind, started.elapsed());
            ctx.reset_error_backoff(&key_of(&*db));
        }
        Err(e) => ctx
            .metrics
            .observe_error(&kind, e.metric_reason(), started.elapsed()),
    }
    result
}

/// Error policy: exponential backoff per database, capped at 5 minutes.
pub fn error_policy<K: Provisionable>(db: Arc<K>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.error_backoff(&key_of(&*db));
    tracing::warn!(db = %db.name_any(), namespace = ?db.namespace(), %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

fn read_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error::Dereference { what, source }
}

fn apply_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error::Apply { what, source }
}

/// Deletes `name` if it exists and `owner` controls it: an object of the same name that someone
/// else made is never deleted. A write only when there is something to delete.
pub async fn delete_if_owned<T, K>(api: &Api<T>, name: &str, what: &str, owner: &K) -> Result<()>
where
    T: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    K: Resource,
{
    match api.get_opt(name).await.map_err(read_err(what))? {
        None => Ok(()),
        Some(live) if !deletion::controlled_by(live.meta(), owner) => Ok(()),
        Some(live) => {
            let uid = live.meta().uid.clone().unwrap_or_default();
            ssa::delete_uid(api, name, &uid)
                .await
                .map_err(|source| Error::Delete {
                    what: what.to_string(),
                    source,
                })
        }
    }
}

/// What [`apply_owned`] did.
enum Applied {
    Unchanged,
    Written,
    /// An object of that name exists and this database does not control it: left alone.
    Foreign,
}

/// Applies `desired` unless the live object already holds it, and never over an object that
/// `owner` does not control.
async fn apply_owned<T, K>(
    api: &Api<T>,
    name: &str,
    desired: &T,
    what: &str,
    owner: &K,
) -> Result<Applied>
where
    T: Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
    K: Resource,
{
    match api.get_opt(name).await.map_err(read_err(what))? {
        Some(live) if !deletion::controlled_by(live.meta(), owner) => return Ok(Applied::Foreign),
        Some(live) if diff::up_to_date(desired, &live) => return Ok(Applied::Unchanged),
        Some(live) => {
            let uid = live.meta().uid.clone().unwrap_or_default();
            ssa::update(api, name, PROVISIONER_MANAGER, desired, &uid).await
        }
        None => ssa::create(api, name, PROVISIONER_MANAGER, desired).await,
    }
    .map_err(apply_err(what))?;
    Ok(Applied::Written)
}

/// The WorkloadReady message for a workload held back by `invalid`.
fn not_created(invalid: &Invalid) -> String {
    format!("not created: {invalid}")
}

/// Whether the live workload (JSON of either API) is controlled by `db`.
fn workload_controlled_by<K: Resource>(live: &LiveWorkload, db: &K) -> bool {
    serde_json::from_value(live.value["metadata"].clone())
        .is_ok_and(|meta: kube::api::ObjectMeta| deletion::controlled_by(&meta, db))
}

/// The live workload, as JSON (either API) with its ready replicas.
pub struct LiveWorkload {
    pub value: Value,
    pub ready: i32,
}

pub async fn live_workload(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    api: WorkloadApi,
) -> Result<Option<LiveWorkload>> {
    let what = format!("{} {name}", api.kind());
    Ok(match api {
        WorkloadApi::StatefulSet => Api::<StatefulSet>::namespaced(client.clone(), namespace)
            .get_opt(name)
            .await
            .map_err(read_err(what))?
            .map(|s| -> Result<LiveWorkload> {
                Ok(LiveWorkload {
                    ready: s
                        .status
                        .as_ref()
                        .and_then(|st| st.ready_replicas)
                        .unwrap_or(0),
                    value: serde_json::to_value(&s)?,
                })
            })
            .transpose()?,
        WorkloadApi::PetSet => Api::<PetSet>::namespaced(client.clone(), namespace)
            .get_opt(name)
            .await
            .map_err(read_err(what))?
            .map(|p| -> Result<LiveWorkload> {
                Ok(LiveWorkload {
                    ready: p
                        .status
                        .as_ref()
                        .and_then(|st| st.ready_replicas)
                        .unwrap_or(0),
                    value: serde_json::to_value(&p)?,
                })
            })
            .transpose()?,
    })
}

/// StatefulSet fields the API server refuses to change (PetSets mirror them).
const IMMUTABLE_FIELDS: &[&str] = &["serviceName", "selector", "volumeClaimTemplates"];

/// The first immutable field the desired workload would change, as `spec.<field>`.
pub fn immutable_change(desired: &Value, live: &Value) -> Option<String> {
    IMMUTABLE_FIELDS
        .iter()
        .find(|field| {
            let d = desired
                .pointer(&format!("/spec/{field}"))
                .unwrap_or(&Value::Null);
            let l = live
                .pointer(&format!("/spec/{field}"))
                .unwrap_or(&Value::Null);
            let d_empty = d.is_null() || d.as_array().is_some_and(Vec::is_empty);
            let l_empty = l.is_null() || l.as_array().is_some_and(Vec::is_empty);
            if d_empty || l_empty {
                d_empty != l_empty
            } else {
                !diff::is_subset(d, l)
            }
        })
        .map(|field| format!("spec.{field}"))
}

/// Creates the workload (`live_uid` None: none existed when read) or updates the live one the
/// database controls, never one someone else made in between.
async fn apply_workload(
    client: &kube::Client,
    namespace: &str,
    workload: &Workload,
    live_uid: Option<&str>,
) -> Result<(), kube::Error> {
    async fn write<T>(api: Api<T>, object: &T, live_uid: Option<&str>) -> kube::Result<()>
    where
        T: Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let name = object.meta().name.clone().unwrap_or_default();
        match live_uid {
            Some(uid) => ssa::update(&api, &name, PROVISIONER_MANAGER, object, uid).await?,
            None => ssa::create(&api, &name, PROVISIONER_MANAGER, object).await?,
        };
        Ok(())
    }
    match workload {
        Workload::StatefulSet(s) => {
            write(
                Api::<StatefulSet>::namespaced(client.clone(), namespace),
                s,
                live_uid,
            )
            .await
        }
        Workload::PetSet(p) => {
            write(
                Api::<PetSet>::namespaced(client.clone(), namespace),
                p,
                live_uid,
            )
            .await
        }
    }
}

async fn publish_events<K: Provisionable>(
    ctx: &Context,
    db: &K,
    transitions: &[status::Transition],
) {
    let reference = db.object_ref(&());
    for t in transitions {
        events::publish(
            &ctx.recorder,
            &reference,
            t.warning,
            &t.reason,
            "Provision",
            &t.message,
        )
        .await;
    }
}

/// Computes the status, writes it only if it changed, and emits Events for transitions.
pub async fn update_status<K: Provisionable>(
    ctx: &Context,
    db: &K,
    observation: &Observation<'_>,
) -> Result<()> {
    write_status(ctx, db, observation, false).await.map(|_| ())
}

/// Like [`update_status`], but a change of messages only (progress while waiting) within the
/// coalescing window of the previous write is held back: returns `Some(delay)` after which the
/// caller must reconcile again.
async fn update_status_coalesced<K: Provisionable>(
    ctx: &Context,
    db: &K,
    observation: &Observation<'_>,
) -> Result<Option<Duration>> {
    write_status(ctx, db, observation, true).await
}

async fn write_status<K: Provisionable>(
    ctx: &Context,
    db: &K,
    observation: &Observation<'_>,
    coalesce: bool,
) -> Result<Option<Duration>> {
    let existing: Option<&DatabaseStatus> = db.db_status();
    let plan = status::plan(
        existing,
        observation,
        db.meta().generation,
        &conditions::now(),
    );
    ctx.record_phase(&key_of(db), Some(plan.phase));
    if !plan.changed {
        return Ok(None);
    }
    let coalesce_key = format!(
        "{}/{}/{}",
        K::KIND,
        db.namespace().unwrap_or_default(),
        db.name_any()
    );
    let progress_only = existing.is_some_and(|s| {
        s.phase == Some(plan.phase)
            && s.observed_generation == plan.observed_generation
            && coalesce::only_messages_changed(&s.conditions, &plan.conditions)
    });
    if coalesce
        && progress_only
        && let Some(delay) = ctx.status_coalescer.hold(&coalesce_key)
    {
        return Ok(Some(delay));
    }
    let body = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": {"name": db.name_any(), "namespace": db.namespace()},
        "status": {
            "phase": plan.phase,
            "observedGeneration": plan.observed_generation,
            "conditions": plan.conditions,
        }
    });
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &db.namespace().unwrap_or_default());
    match api
        .patch_status(
            &db.name_any(),
            &PatchParams::apply(PROVISIONER_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
    {
        Ok(_) => ctx.status_coalescer.wrote(&coalesce_key),
        // Deleted meanwhile: nothing to report on.
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(None),
        Err(e) => return Err(Error::Status(e)),
    }
    publish_events(ctx, db, &plan.transitions).await;
    Ok(None)
}

/// Reports an invalid database and decides when to look again.
async fn report_invalid<K: Provisionable>(
    ctx: &Context,
    db: &K,
    invalid: &Invalid,
    workload: WorkloadReport,
) -> Result<Action> {
    let observation = Observation {
        invalid: Some(invalid),
        tls: None,
        workload,
        halted: false,
        deletion_blocked: false,
    };
    update_status(ctx, db, &observation).await?;
    Ok(if invalid.fixed_outside_spec() {
        Action::requeue(ctx.backoff(&key_of(db), WAIT_BACKOFF_START))
    } else {
        // A spec edit triggers the next reconcile.
        Action::requeue(RESYNC)
    })
}

/// The live workload's state, for the WorkloadReady condition.
fn exists_report(what: &str, live: &LiveWorkload, replicas: i32) -> WorkloadReport {
    WorkloadReport::Exists {
        what: what.to_string(),
        ready: live.ready,
        replicas,
    }
}

async fn provision<K: Provisionable>(db: &K, ctx: &Context) -> Result<Action> {
    let namespace = db.namespace().unwrap_or_default();
    let client = &ctx.client;
    let db_api: Api<K> = Api::namespaced(client.clone(), &namespace);
    finalizer::add(&db_api, db, PROVISIONER_MANAGER, PROVISIONER_FINALIZER)
        .await
        .map_err(Error::Finalizer)?;
    let facts = DbFacts::of(db);
    let choice = ctx.workload(K::KIND);
    let workload_name = names::workload(&facts.name);
    let what = format!("{} {workload_name} ({})", choice.api.kind(), choice.why);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);

    // dereference
    let live = live_workload(client, &namespace, &workload_name, choice.api).await?;
    let live_report = |fallback: String| match &live {
        Some(l) => exists_report(&what, l, facts.replicas()),
        None => WorkloadReport::NotCreated(fallback),
    };

    // validate: the spec, then the Secrets it names
    let image = match validate::spec(&facts) {
        Ok(image) => image,
        Err(invalid) => {
            let report = live_report(not_created(&invalid));
            return report_invalid(ctx, db, &invalid, report).await;
        }
    };
    if let Some(name) = facts.user_auth_secret() {
        let found = secrets.get_opt(name).await.map_err(read_err(name))?;
        if let Err(invalid) = validate::user_auth_secret(name, found.as_ref()) {
            let report = live_report(not_created(&invalid));
            return report_invalid(ctx, db, &invalid, report).await;
        }
    }
    if let Some(name) = facts.extras.license_secret {
        let found = secrets.get_opt(name).await.map_err(read_err(name))?;
        if let Err(invalid) = validate::license_secret(name, found.as_ref()) {
            let report = live_report(not_created(&invalid));
            return report_invalid(ctx, db, &invalid, report).await;
        }
    }

    // Halted: no workload, no Services; data and Secrets stay.
    if facts.common.halted {
        deletion::delete_runtime_objects(client, &namespace, db, choice.api).await?;
        let observation = Observation {
            invalid: None,
            tls: None,
            workload: WorkloadReport::Halted,
            halted: true,
            deletion_blocked: false,
        };
        update_status(ctx, db, &observation).await?;
        ctx.reset_backoff(&key_of(db));
        return Ok(Action::requeue(RESYNC));
    }

    // build + apply: auth Secret (created once, never rewritten) and Services
    if facts.user_auth_secret().is_none() {
        let name = names::auth_secret(&facts.name);
        if secrets
            .get_opt(&name)
            .await
            .map_err(read_err(&name))?
            .is_none()
        {
            let secret = auth::auth_secret(&facts, &auth::generate_password());
            ssa::create(&secrets, &name, PROVISIONER_MANAGER, &secret)
                .await
                .map_err(apply_err(&name))?;
        }
    }
    let services_api: Api<Service> = Api::namespaced(client.clone(), &namespace);
    for service in [services::primary(&facts), services::governing(&facts)] {
        let name = service.name_any();
        if let Applied::Foreign = apply_owned(&services_api, &name, &service, &name, db).await? {
            let invalid = Invalid::NameConflict {
                what: format!("Service {name}"),
            };
            return report_invalid(ctx, db, &invalid, live_report(not_created(&invalid))).await;
        }
    }
    if let Some(l) = &live
        && !workload_controlled_by(l, db)
    {
        let invalid = Invalid::NameConflict {
            what: format!("{} {workload_name}", choice.api.kind()),
        };
        return report_invalid(
            ctx,
            db,
            &invalid,
            WorkloadReport::NotCreated(not_created(&invalid)),
        )
        .await;
    }

    // TLS Secrets: all must exist and be usable before the workload is written.
    let tls_state = match facts.tls {
        None => TlsSecretsState::NotConfigured,
        Some(_) => {
            let mut found = Vec::new();
            for (_, name) in desired::tls_secret_names(&facts) {
                let secret = secrets.get_opt(&name).await.map_err(read_err(&name))?;
                found.push((name, secret));
            }
            tls_secrets::check_for(facts.kind, &facts.name, &found)
        }
    };
    let tls_ready = matches!(
        tls_state,
        TlsSecretsState::Ready | TlsSecretsState::NotConfigured
    );

    let workload_report = if !tls_ready {
        live_report(format!(
            "{} {workload_name} is created once every TLS Secret is ready",
            choice.api.kind()
        ))
    } else {
        let (workload, config) = desired::workload_for(&facts, &image, choice.api);
        let config_name = names::config_secret(&facts.name);
        match &config {
            Some(config) => {
                if let Applied::Foreign =
                    apply_owned(&secrets, &config_name, config, &config_name, db).await?
                {
                    let invalid = Invalid::NameConflict {
                        what: format!("Secret {config_name}"),
                    };
                    return report_invalid(ctx, db, &invalid, live_report(not_created(&invalid)))
                        .await;
                }
            }
            None => delete_if_owned(&secrets, &config_name, &config_name, db).await?,
        }
        let desired = workload.to_value()?;
        match &live {
            Some(l) if diff::is_subset(&desired, &l.value) => {
                exists_report(&what, l, facts.replicas())
            }
            Some(l) => match immutable_change(&desired, &l.value) {
                Some(field) => WorkloadReport::ImmutableField {
                    what: what.clone(),
                    field,
                },
                None => {
                    apply_and_report(
                        client,
                        &namespace,
                        &workload,
                        &what,
                        facts.replicas(),
                        Some(l),
                    )
                    .await?
                }
            },
            None => {
                apply_and_report(client, &namespace, &workload, &what, facts.replicas(), None)
                    .await?
            }
        }
    };
    let immutable = matches!(workload_report, WorkloadReport::ImmutableField { .. });

    // update_status
    let observation = Observation {
        invalid: None,
        tls: Some(&tls_state),
        workload: workload_report,
        halted: false,
        deletion_blocked: false,
    };
    let held = update_status_coalesced(ctx, db, &observation).await?;
    if immutable {
        // Only a spec edit or a deleted workload can fix this: no retry loop.
        return Ok(Action::requeue(
            ctx.backoff(&key_of(db), Duration::from_secs(300)),
        ));
    }
    ctx.reset_backoff(&key_of(db));
    Ok(Action::requeue(held.unwrap_or(RESYNC)))
}

/// Applies the workload; a 422 from the API server (an immutable field) is reported, not retried.
async fn apply_and_report(
    client: &kube::Client,
    namespace: &str,
    workload: &Workload,
    what: &str,
    replicas: i32,
    live: Option<&LiveWorkload>,
) -> Result<WorkloadReport> {
    let live_uid = live.and_then(|l| l.value.pointer("/metadata/uid")?.as_str());
    match apply_workload(client, namespace, workload, live_uid).await {
        Ok(()) => Ok(WorkloadReport::Exists {
            what: what.to_string(),
            ready: live.map_or(0, |l| l.ready),
            replicas,
        }),
        Err(kube::Error::Api(s)) if s.code == 422 => Ok(WorkloadReport::ImmutableField {
            what: what.to_string(),
            field: format!("a field the API server refused ({})", s.message),
        }),
        Err(source) => Err(Error::Apply {
            what: what.to_string(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn immutable_changes_are_named() {
        let live = json!({"spec": {"serviceName": "db-pods", "selector": {"matchLabels": {"a": "b"}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"resources": {"requests": {"storage": "1Gi"}}, "volumeMode": "Filesystem"}}],
            "replicas": 1}});
        let same = json!({"spec": {"serviceName": "db-pods", "selector": {"matchLabels": {"a": "b"}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"resources": {"requests": {"storage": "1Gi"}}}}],
            "replicas": 3}});
        assert_eq!(immutable_change(&same, &live), None);
        let bigger = json!({"spec": {"serviceName": "db-pods", "selector": {"matchLabels": {"a": "b"}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"resources": {"requests": {"storage": "2Gi"}}}}]}});
        assert_eq!(
            immutable_change(&bigger, &live).as_deref(),
            Some("spec.volumeClaimTemplates")
        );
        let ephemeral =
            json!({"spec": {"serviceName": "db-pods", "selector": {"matchLabels": {"a": "b"}}}});
        assert_eq!(
            immutable_change(&ephemeral, &live).as_deref(),
            Some("spec.volumeClaimTemplates")
        );
    }
}
