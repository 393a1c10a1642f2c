//! One reconcile of one database of any kind:
//! `dereference -> validate -> plan -> apply -> update_status`.

use std::sync::Arc;
use std::time::Instant;

use dbtls_contract::Database;
use dbtls_contract::conditions::{FALSE, ops_manager, reasons};
use dbtls_runtime::conditions::Desired;
use kube::ResourceExt;
use kube::runtime::controller::Action;

use crate::apply::{self, ApplyError};
use crate::cleanup::{self, CleanupError};
use crate::context::Context;
use crate::db::DbRef;
use crate::dereference::{self, DereferenceError};
use crate::finalizer::{self, FinalizerError};
use crate::plan;
use crate::status::{self, StatusError};
use crate::validate::{self, ValidationError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Dereference(#[from] DereferenceError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    Status(#[from] StatusError),
    #[error(transparent)]
    Finalizer(#[from] FinalizerError),
    #[error(transparent)]
    Cleanup(#[from] CleanupError),
}

impl Error {
    /// The `reason` label of `dbtls_reconcile_errors_total`.
    pub fn metric_reason(&self) -> &'static str {
        match self {
            Self::Dereference(_) => "dereference",
            Self::Apply(_) => "apply",
            Self::Status(_) => "status",
            Self::Finalizer(_) => "finalizer",
            Self::Cleanup(_) => "cleanup",
        }
    }
}

/// The key of a database in the retry tables.
pub fn retry_key<K: Database>(db: &K) -> String {
    format!(
        "{}/{}/{}",
        K::KIND,
        db.namespace().unwrap_or_default(),
        db.name_any()
    )
}

pub async fn reconcile<K: Database>(db: Arc<K>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let kind = K::KIND.profile().kind;
    let result = run(db.as_ref(), &ctx).await;
    match &result {
        Ok(_) => {
            ctx.reconcile_metrics.observe_ok(kind, started.elapsed());
            ctx.retries.succeeded(&retry_key(db.as_ref()));
        }
        Err(e) => ctx
            .reconcile_metrics
            .observe_error(kind, e.metric_reason(), started.elapsed()),
    }
    result
}

pub fn error_policy<K: Database>(db: Arc<K>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.retries.after_error(&retry_key(db.as_ref()));
    tracing::warn!(kind = %K::KIND, db = %db.name_any(), %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

async fn run<K: Database>(db: &K, ctx: &Context) -> Result<Action, Error> {
    let Some(db_ref) = DbRef::of(db) else {
        return Ok(Action::await_change());
    };
    let regarding = db.object_ref(&());
    if db.meta().deletion_timestamp.is_some() {
        return Ok(cleanup::on_delete(db, &db_ref, ctx).await?);
    }
    // An empty `tls: {}` (no issuer, no certificates) configures nothing: treat it as no TLS.
    let Some(tls_view) = db
        .tls()
        .filter(|t| t.issuer_ref.is_some() || !t.certificates.is_empty())
    else {
        return Ok(cleanup::tls_removed(db, &db_ref, &regarding, ctx).await?);
    };
    finalizer::ensure(db, ctx).await?;

    let problems = validate::validate(db_ref.kind, &db_ref.name, &tls_view);
    if !problems.is_empty() {
        status::update(db, &regarding, &invalid_conditions(&problems), ctx).await?;
        return Ok(Action::await_change());
    }

    let observed = dereference::observe(db, &db_ref, &tls_view, ctx).await?;
    let plan = plan::plan(&db_ref, &tls_view, &ctx.cluster_domain, &observed);
    apply::execute(&db_ref, &regarding, &plan, ctx).await?;
    let held = status::update_coalesced(
        db,
        &regarding,
        &[plan.issuer_ready.clone(), plan.certificates_ready.clone()],
        ctx,
    )
    .await?;
    ctx.certificate_metrics.record(&db_ref, &plan.aliases);

    let key = retry_key(db);
    if plan.waiting {
        let wait = ctx.retries.after_wait(&key);
        Ok(Action::requeue(held.map_or(wait, |h| h.min(wait))))
    } else {
        ctx.retries.settled(&key);
        Ok(held.map_or_else(Action::await_change, Action::requeue))
    }
}

/// Both conditions for an invalid `spec.tls`: each problem under the condition it concerns.
pub fn invalid_conditions(problems: &[ValidationError]) -> Vec<Desired> {
    let of_type = |type_: &str| -> Vec<&ValidationError> {
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
    let issuer_problems = of_type(ops_manager::ISSUER_READY);
    let cert_problems = of_type(ops_manager::CERTIFICATES_READY);
    // Without issuer problems IssuerReady is left as it was (it is still accurate).
    let issuer = issuer_problems.first().map(|first| {
        Desired::new(
            ops_manager::ISSUER_READY,
            FALSE,
            first.condition().1,
            join(&issuer_problems),
        )
    });
    let certificates = match cert_problems.first() {
        Some(first) => Desired::new(
            ops_manager::CERTIFICATES_READY,
            FALSE,
            first.condition().1,
            join(&cert_problems),
        ),
        None => Desired::new(
            ops_manager::CERTIFICATES_READY,
            FALSE,
            reasons::INVALID_CERTIFICATE_SPEC,
            format!(
                "No Certificates until the issuer reference is fixed: {}",
                join(&issuer_problems)
            ),
        ),
    };
    issuer.into_iter().chain([certificates]).collect()
}
