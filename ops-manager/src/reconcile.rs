//! One reconcile of one database of any kind: validate -> observe (watch caches) -> plan (pure)
//! -> apply -> status (the runtime's writer); a database being deleted or without TLS goes to
//! [`cleanup`].

use std::sync::Arc;
use std::time::Instant;

use dbtls_contract::Database;
use dbtls_contract::conditions::{ConditionType, Reason};
use dbtls_contract::kinds::alias;
use dbtls_runtime::caches::DatabaseKey;
use dbtls_runtime::conditions::Desired;
use dbtls_runtime::key::key_of;
use dbtls_runtime::status::StatusUpdate;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;

use crate::apply::{self, ApplyError};
use crate::cleanup::{self, CleanupError};
use crate::context::Context;
use crate::db::DbRef;
use crate::finalizer::{self, FinalizerError};
use crate::observe::{ObserveError, auth_secret_name, observe};
use crate::plan;
use crate::serving::{ServingError, ServingOutcome, Target};
use crate::trust;

/// How soon an issuer change that waits for the pods to trust the new CA (or, after it, to
/// forget the old one) looks again.
const TRUST_CHECK: std::time::Duration = std::time::Duration::from_secs(5);
use crate::validate::{self, ValidationError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Observe(#[from] ObserveError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error("writing the status: {0}")]
    Status(#[source] kube::Error),
    #[error(transparent)]
    Finalizer(#[from] FinalizerError),
    #[error(transparent)]
    Cleanup(#[from] CleanupError),
    #[error(transparent)]
    Serving(#[from] ServingError),
    #[error(transparent)]
    Trust(#[from] crate::trust::TrustError),
}

impl Error {
    /// Every value of [`Error::metric_reason`].
    pub const METRIC_REASONS: [&str; 7] = [
        "dereference",
        "apply",
        "status",
        "finalizer",
        "cleanup",
        "serving",
        "trust",
    ];

    /// The `reason` label of `dbtls_reconcile_errors_total`.
    pub fn metric_reason(&self) -> &'static str {
        match self {
            Self::Observe(_) => "dereference",
            Self::Apply(_) => "apply",
            Self::Status(_) => "status",
            Self::Finalizer(_) => "finalizer",
            Self::Cleanup(_) => "cleanup",
            Self::Serving(_) => "serving",
            Self::Trust(_) => "trust",
        }
    }
}

pub async fn reconcile<K: Database>(db: Arc<K>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let kind = K::KIND.profile().kind;
    let result = run(db.as_ref(), &ctx).await;
    match &result {
        Ok(_) => {
            ctx.reconcile_metrics.observe_ok(kind, started.elapsed());
            ctx.retries.succeeded(&key_of(db.as_ref()));
        }
        Err(e) => ctx
            .reconcile_metrics
            .observe_error(kind, e.metric_reason(), started.elapsed()),
    }
    result
}

pub fn error_policy<K: Database>(
    db: Arc<DatabaseKey<K>>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    let delay = ctx.retries.after_error(&key_of(db.as_ref()));
    tracing::warn!(kind = %K::KIND, db = %db.name_any(), %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

async fn run<K: Database>(db: &K, ctx: &Context) -> Result<Action, Error> {
    let Some(db_ref) = DbRef::of(db) else {
        return Ok(Action::await_change());
    };
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &db_ref.namespace);
    if db.meta().deletion_timestamp.is_some() {
        return Ok(cleanup::on_delete(db, &db_ref, ctx).await?);
    }
    // An empty `tls: {}` (no issuer, no certificates) configures nothing: treat it as no TLS.
    let Some(tls_view) = db
        .tls()
        .filter(|t| t.issuer_ref.is_some() || !t.certificates.is_empty())
    else {
        return Ok(cleanup::tls_removed(db, &db_ref, ctx).await?);
    };
    finalizer::ensure(db, ctx).await?;

    let key = key_of(db);
    let problems = validate::validate(db_ref.kind, &db_ref.name, &tls_view);
    if !problems.is_empty() {
        let update = StatusUpdate {
            conditions: invalid_conditions(&problems),
            phase: None,
        };
        ctx.status
            .write(&api, db, &update, false)
            .await
            .map_err(Error::Status)?;
        return Ok(Action::await_change());
    }

    let stores = ctx.caches.of(&db_ref.namespace);
    let mut observed = observe(&ctx.client, stores, db, &db_ref, &tls_view).await?;
    crate::ahead_of_cache::catch_up_adoptions(&ctx.adopted, &db_ref, &mut observed);
    let trust = observe_trust(ctx, stores, &db_ref, &tls_view, &mut observed).await?;
    let mut plan = plan::plan(&db_ref, &tls_view, &ctx.cluster_domain, &observed);
    let regarding = db.object_ref(&());
    apply::execute(&db_ref, &regarding, &plan, ctx).await?;
    let serving = serve(ctx, stores, db, &db_ref, &tls_view, &regarding).await?;
    let trust_requeue = match (stores, &trust) {
        (Some(stores), Some(trust)) => {
            let target = trust::Target {
                db: &db_ref,
                tls_view: &tls_view,
                auth_secret: &auth_secret_name(db),
                regarding: &regarding,
            };
            apply_trust(ctx, stores, &target, trust, serving.all_current, &mut plan).await?
        }
        _ => None,
    };
    let update = status_update(db, &db_ref, stores, &plan, serving.condition);
    let held = ctx
        .status
        .write(&api, db, &update, true)
        .await
        .map_err(Error::Status)?
        .requeue();
    ctx.certificate_metrics.record(&db_ref, &plan.aliases);

    let soonest = [held, serving.requeue, trust_requeue]
        .into_iter()
        .flatten()
        .min();
    if plan.waiting {
        let wait = ctx.retries.after_wait(&key);
        Ok(Action::requeue(soonest.map_or(wait, |h| h.min(wait))))
    } else {
        ctx.retries.settled(&key);
        Ok(soonest.map_or_else(Action::await_change, Action::requeue))
    }
}

/// The ops-manager's conditions after a planned reconcile.
fn status_update<K: Database>(
    db: &K,
    db_ref: &DbRef,
    stores: Option<&crate::caches::Stores>,
    plan: &plan::Plan,
    serving: Option<Desired>,
) -> StatusUpdate {
    let ops = stores
        .map(|s| {
            s.ops
                .for_database(db_ref.kind, &db_ref.namespace, &db_ref.name)
        })
        .unwrap_or_default();
    StatusUpdate {
        conditions: [plan.issuer_ready.clone(), plan.certificates_ready.clone()]
            .into_iter()
            .chain(crate::serving::plan::reported(
                serving,
                db.db_status()
                    .and_then(|s| s.condition(ConditionType::TlsServing.as_str()))
                    .is_some(),
            ))
            .chain(ops_condition(&ops, db.db_status()))
            .collect(),
        phase: None,
    }
}

/// The trust step's facts; whether the Certificates wait on their issuer (an issuer change
/// until every pod trusts the new CA) goes into `observed.hold`.
async fn observe_trust(
    ctx: &Context,
    stores: Option<&crate::caches::Stores>,
    db_ref: &DbRef,
    tls_view: &dbtls_contract::api::TlsView<'_>,
    observed: &mut plan::Observed,
) -> Result<Option<trust::Observed>, Error> {
    let Some(stores) = stores else {
        return Ok(None);
    };
    let issuer_ready = tls_view
        .issuer_for(alias::SERVER)
        .and_then(|i| observed.issuers.get(&plan::IssuerKey::of(i)))
        .is_some_and(|s| matches!(s, plan::IssuerState::Found { ready: true, .. }));
    let trust = trust::observe(
        ctx,
        stores,
        db_ref,
        tls_view,
        &observed.certificates,
        issuer_ready,
    )
    .await?;
    // The hold does not depend on what the pods serve (known only after the serving step).
    observed.hold = trust::decide(&trust, false)
        .hold
        .map(|hold| trust::hold_message(&hold, db_ref, tls_view));
    Ok(Some(trust))
}

/// The trust step after serving: the CA bundle written, the pods asked; a conflict on the
/// bundle's name said in `CertificatesReady`. Some: look again that soon.
async fn apply_trust(
    ctx: &Context,
    stores: &crate::caches::Stores,
    target: &trust::Target<'_>,
    trust: &trust::Observed,
    all_current: bool,
    plan: &mut plan::Plan,
) -> Result<Option<std::time::Duration>, Error> {
    let decided = trust::decide(trust, all_current);
    let again = trust::apply(ctx, stores, target, trust, &decided).await?;
    if let Some(why) = trust.conflict() {
        plan.certificates_ready = Desired::not(
            ConditionType::CertificatesReady,
            Reason::SecretNameConflict,
            why,
        );
    }
    Ok(again.then_some(TRUST_CHECK))
}

/// The serving step: what the pods present, brought to the server Secret's certificate.
async fn serve<K: Database>(
    ctx: &Context,
    stores: Option<&crate::caches::Stores>,
    db: &K,
    db_ref: &DbRef,
    tls_view: &dbtls_contract::api::TlsView<'_>,
    regarding: &k8s_openapi::api::core::v1::ObjectReference,
) -> Result<ServingOutcome, Error> {
    let Some(stores) = stores else {
        return Ok(ServingOutcome::default());
    };
    let secrets = dbtls_contract::tls::secrets(db_ref.kind, &db_ref.name, tls_view);
    let secret_of = |wanted: &str| {
        secrets
            .iter()
            .find(|(alias, _)| *alias == wanted)
            .map(|(_, name)| name.clone())
            .unwrap_or_default()
    };
    let server_secret = secret_of(alias::SERVER);
    let client_secret = secret_of(alias::CLIENT);
    let auth_secret = auth_secret_name(db);
    let target = Target {
        db: db_ref,
        regarding,
        server_secret: &server_secret,
        client_secret: &client_secret,
        auth_secret: &auth_secret,
        pods: db
            .workload_parts()
            .iter()
            .flat_map(|part| part.pod_names())
            .collect(),
    };
    Ok(ctx
        .serving
        .reconcile(&ctx.client, ctx.status.recorder(), stores, &target)
        .await?)
}

/// `OpsRequestProgressing`: True while one of the database's OpsRequests runs; once it was
/// True, False naming the last one; absent for a database no OpsRequest ever changed.
pub fn ops_condition(
    ops: &[crate::caches::OpsSummary],
    status: Option<&dbtls_contract::api::DatabaseStatus>,
) -> Option<Desired> {
    use dbtls_contract::api::ops::OpsRequestPhase;
    let t = ConditionType::OpsRequestProgressing;
    if let Some(running) = ops
        .iter()
        .find(|o| o.phase == Some(OpsRequestPhase::Progressing))
    {
        let step = running.message.as_deref().unwrap_or("started");
        return Some(Desired::ok(
            t,
            Reason::OpsRequestRunning,
            format!("{} is in progress: {step}", running.describe),
        ));
    }
    status.and_then(|s| s.condition(t.as_str()))?;
    let last = ops
        .iter()
        .filter(|o| o.phase.is_some_and(OpsRequestPhase::is_final))
        .max_by(|a, b| a.created.cmp(&b.created));
    Some(Desired::not(
        t,
        Reason::OpsRequestFinished,
        match last {
            Some(o) => format!(
                "no OpsRequest in progress; the last, {}, is {}",
                o.describe,
                o.phase.map(OpsRequestPhase::as_str).unwrap_or_default()
            ),
            None => "no OpsRequest in progress".into(),
        },
    ))
}

/// Both conditions for an invalid `spec.tls`: each problem under the condition it concerns.
pub fn invalid_conditions(problems: &[ValidationError]) -> Vec<Desired> {
    let of_type = |type_: ConditionType| -> Vec<&ValidationError> {
        problems
            .iter()
            .filter(|p| p.condition().0 == type_)
            .collect()
    };
    let join = |list: &[&ValidationError]| {
        list.iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    };
    let issuer_problems = of_type(ConditionType::IssuerReady);
    let cert_problems = of_type(ConditionType::CertificatesReady);
    // Without issuer problems IssuerReady is left as it was (it is still accurate).
    let issuer = issuer_problems.first().map(|first| {
        Desired::not(
            ConditionType::IssuerReady,
            first.condition().1,
            join(&issuer_problems),
        )
    });
    let certificates = match cert_problems.first() {
        Some(first) => Desired::not(
            ConditionType::CertificatesReady,
            first.condition().1,
            join(&cert_problems),
        ),
        None => Desired::not(
            ConditionType::CertificatesReady,
            Reason::InvalidCertificateSpec,
            format!(
                "No Certificates until the issuer reference is fixed: {}",
                join(&issuer_problems)
            ),
        ),
    };
    issuer.into_iter().chain([certificates]).collect()
}
