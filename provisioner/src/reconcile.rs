//! One reconcile of one database of any kind: observe -> plan -> apply -> status (or, for a
//! database being deleted, the deletion policy). Each step is its own module; this one only
//! strings them together and turns the outcome into the next look.
use std::sync::Arc;
use std::time::{Duration, Instant};

use dbtls_contract::{PROVISIONER_FINALIZER, PROVISIONER_MANAGER};
use dbtls_runtime::caches::DatabaseKey;
use dbtls_runtime::finalizer;
use dbtls_runtime::key::{DbKey, key_of};
use dbtls_runtime::status::StatusOutcome;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;

use crate::apply::{self, ApplyError};
use crate::context::{Context, IMMUTABLE_BACKOFF_START, RESYNC, WAIT_BACKOFF_START};
use crate::deletion::{self, DeletionPlan};
use crate::facts::{DbFacts, Provisionable};
use crate::observe::{Clock, ObserveError, observe};
use crate::plan::{self, Requeue};
use crate::status::{self, Report};

/// Failures talking to the API server, by step (spec problems are not errors: they are
/// reported on the status).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Observe(#[from] ObserveError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error("finalizer: {0}")]
    Finalizer(#[source] kube::Error),
    #[error("status: {0}")]
    Status(#[source] kube::Error),
}

impl Error {
    /// Every value of [`Error::metric_reason`].
    pub const METRIC_REASONS: [&str; 5] = ["read", "apply", "delete", "finalizer", "status"];

    /// A short label for the errors metric.
    pub fn metric_reason(&self) -> &'static str {
        match self {
            Error::Observe(_) => "read",
            Error::Apply(ApplyError::Apply { .. }) => "apply",
            Error::Apply(ApplyError::Delete { .. }) => "delete",
            Error::Finalizer(_) => "finalizer",
            Error::Status(_) => "status",
        }
    }
}

/// Entry point of every controller.
pub async fn reconcile<K: Provisionable>(db: Arc<K>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let kind = K::KIND.to_string();
    let result = if db.meta().deletion_timestamp.is_some() {
        finalize(&*db, &ctx).await
    } else {
        provision(&*db, &ctx).await
    };
    match &result {
        Ok(_) => {
            ctx.metrics.observe_ok(&kind, started.elapsed());
            ctx.succeeded(&key_of(&*db));
        }
        Err(e) => ctx
            .metrics
            .observe_error(&kind, e.metric_reason(), started.elapsed()),
    }
    result
}

/// Error policy: exponential backoff per database, capped at 5 minutes.
pub fn error_policy<K: Provisionable>(
    db: Arc<DatabaseKey<K>>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    let delay = ctx.error_backoff(&key_of(&*db));
    tracing::warn!(db = %db.name_any(), namespace = ?db.namespace(), %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

fn db_api<K: Provisionable>(ctx: &Context, db: &K) -> Api<K> {
    Api::namespaced(ctx.client.clone(), &db.namespace().unwrap_or_default())
}

async fn provision<K: Provisionable>(db: &K, ctx: &Context) -> Result<Action, Error> {
    let api = db_api(ctx, db);
    finalizer::add(&api, db, PROVISIONER_MANAGER, PROVISIONER_FINALIZER)
        .await
        .map_err(Error::Finalizer)?;
    let facts = DbFacts::of(db);
    let choice = ctx.workload(K::KIND);
    let observed = observe_db(ctx, &facts, &choice).await?;
    let plan = plan::plan(&facts, &observed, &choice);
    let outcome = apply::apply(&ctx.client, &facts, &plan.writes, &plan.deletes).await?;
    let (report, requeue) = plan::settle(&facts, &observed, &choice, plan, &outcome);
    let held = write_status(ctx, &api, db, &report).await?;
    Ok(next_look(ctx, &key_of(db), requeue, held))
}

async fn finalize<K: Provisionable>(db: &K, ctx: &Context) -> Result<Action, Error> {
    let key = key_of(db);
    if !finalizer::has(db, PROVISIONER_FINALIZER) {
        ctx.record_state(&key, K::KIND, None);
        return Ok(Action::await_change());
    }
    let api = db_api(ctx, db);
    let facts = DbFacts::of(db);
    let choice = ctx.workload(K::KIND);
    let observed = observe_db(ctx, &facts, &choice).await?;
    match deletion::plan(&facts, &observed, &choice) {
        DeletionPlan::Blocked(report) => {
            write_status(ctx, &api, db, &report).await?;
            Ok(Action::requeue(RESYNC))
        }
        DeletionPlan::Proceed {
            deletes,
            delete_pvcs,
            auth,
        } => {
            deletion::execute(&ctx.client, &facts, &deletes, delete_pvcs, &auth).await?;
            finalizer::remove(&api, db, PROVISIONER_MANAGER, PROVISIONER_FINALIZER)
                .await
                .map_err(Error::Finalizer)?;
            ctx.record_state(&key, K::KIND, None);
            let policy = facts.common.deletion_policy;
            tracing::info!(db = %facts.name, namespace = %facts.namespace, ?policy, "deletion policy carried out");
            Ok(Action::await_change())
        }
    }
}

async fn observe_db(
    ctx: &Context,
    facts: &DbFacts<'_>,
    choice: &crate::workload::WorkloadChoice,
) -> Result<crate::observe::Observed, Error> {
    let stores = ctx.caches.of(&facts.namespace);
    let clock = Clock::now(ctx.secret_propagation);
    Ok(observe(&ctx.client, stores, &ctx.absent, facts, choice.api, clock).await?)
}

/// Writes the status `report` asks for (progress-only changes coalesced); returns after how
/// long a held write wants another look.
async fn write_status<K: Provisionable>(
    ctx: &Context,
    api: &Api<K>,
    db: &K,
    report: &Report,
) -> Result<Option<Duration>, Error> {
    let existing = db
        .db_status()
        .map(|s| s.conditions.as_slice())
        .unwrap_or(&[]);
    let update = status::update(report, existing);
    if let Some(phase) = update.phase {
        let state = status::metric_state(report, phase);
        ctx.record_state(&key_of(db), K::KIND, Some(state));
    }
    let outcome = ctx
        .status
        .write(api, db, &update, true)
        .await
        .map_err(Error::Status)?;
    Ok(match outcome {
        StatusOutcome::Held(after) => Some(after),
        _ => None,
    })
}

/// The next look at a database: the plan's requeue, or sooner for a held status write.
fn next_look(ctx: &Context, key: &DbKey, requeue: Requeue, held: Option<Duration>) -> Action {
    let after = match requeue {
        Requeue::Resync => {
            ctx.settled(key);
            RESYNC
        }
        Requeue::Wait => ctx.wait_backoff(key, WAIT_BACKOFF_START),
        Requeue::Immutable => ctx.wait_backoff(key, IMMUTABLE_BACKOFF_START),
        Requeue::After(after) => after,
    };
    Action::requeue(held.map_or(after, |h| h.min(after)))
}
