//! The status step both operators end a reconcile with: an operator's own conditions (and, for
//! the provisioner, the phase and observedGeneration) applied under its field manager only when
//! they changed, progress-only changes coalesced, and an Event for every transition.
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use crate::events::Recorder;
use dbtls_contract::Database;
use dbtls_contract::api::{Condition, DatabasePhase, DatabaseStatus};
use dbtls_contract::conditions::{ConditionType, Writer};
use kube::ResourceExt;
use kube::api::Api;
use serde_json::json;

use crate::coalesce::{self, Progress, StatusCoalescer};
use crate::conditions::{Desired, now, resolve, same_state, up_to_date};
use crate::key::key_of;
use crate::{events, ssa};

/// What one reconcile wants the status to say.
#[derive(Clone, Debug, Default)]
pub struct StatusUpdate {
    /// The writer's conditions evaluated this time; its other types keep their stored entry.
    pub conditions: Vec<Desired>,
    /// The phase, with observedGeneration (the provisioner's fields); None for the ops-manager.
    pub phase: Option<DatabasePhase>,
}

/// The status write a [`StatusUpdate`] comes to, computed purely.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedStatus {
    /// Every condition of the writer, evaluated or kept.
    pub conditions: Vec<Condition>,
    pub phase: Option<DatabasePhase>,
    pub observed_generation: Option<i64>,
    /// Whether the stored status differs (a write is needed).
    pub changed: bool,
    /// When only progress differs (a write that may be coalesced): what kind.
    pub progress: Option<Progress>,
    /// The evaluated conditions that changed status or reason and are announced.
    pub transitions: Vec<Desired>,
}

/// What happened to a status write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusOutcome {
    Unchanged,
    Written,
    /// A progress-only change held back: look again after this long.
    Held(Duration),
    /// The database is gone.
    Gone,
}

impl StatusOutcome {
    /// When to look again because of the status (only a held write asks for it).
    pub fn requeue(self) -> Option<Duration> {
        match self {
            StatusOutcome::Held(after) => Some(after),
            _ => None,
        }
    }
}

/// The status `update` makes of `existing` for a database at `generation`.
pub fn plan(
    writer: Writer,
    existing: Option<&DatabaseStatus>,
    update: &StatusUpdate,
    generation: Option<i64>,
    now: &str,
) -> PlannedStatus {
    let old: &[Condition] = existing.map(|s| s.conditions.as_slice()).unwrap_or(&[]);
    let evaluated: Vec<Condition> = update
        .conditions
        .iter()
        .map(|d| resolve(old, d, generation, now))
        .collect();
    let kept = old.iter().filter(|c| {
        ConditionType::parse(&c.type_).is_some_and(|t| t.writer() == writer)
            && !update
                .conditions
                .iter()
                .any(|d| d.type_.as_str() == c.type_)
    });
    let conditions: Vec<Condition> = kept.cloned().chain(evaluated.iter().cloned()).collect();
    let (phase, observed_generation) = match update.phase {
        Some(phase) => (Some(phase), generation),
        None => (None, None),
    };
    let phase_changed = update.phase.is_some()
        && (existing.and_then(|s| s.phase) != phase
            || existing.and_then(|s| s.observed_generation) != observed_generation);
    let changed = !up_to_date(old, &evaluated) || phase_changed;
    let progress = (changed && !phase_changed)
        .then(|| coalesce::progress(old, &evaluated))
        .flatten();
    let transitions = update
        .conditions
        .iter()
        .filter(|d| d.announce && !same_state(old, d))
        .cloned()
        .collect();
    PlannedStatus {
        conditions,
        phase,
        observed_generation,
        changed,
        progress,
        transitions,
    }
}

/// What a planned status write says, over which cached `version` of the database: its
/// conditions without their transition times (a write planned again from a cache that has not
/// caught up stamps them anew), its phase and observedGeneration.
pub fn fingerprint(version: Option<&str>, planned: &PlannedStatus) -> u64 {
    let mut h = DefaultHasher::new();
    version.hash(&mut h);
    for c in &planned.conditions {
        (
            &c.type_,
            &c.status,
            &c.reason,
            &c.message,
            c.observed_generation,
            &c.severity,
        )
            .hash(&mut h);
    }
    planned.phase.map(|p| p.as_str()).hash(&mut h);
    planned.observed_generation.hash(&mut h);
    h.finish()
}

/// Writes one operator's part of database statuses.
pub struct StatusWriter {
    writer: Writer,
    manager: &'static str,
    /// The Event `action` of transitions.
    action: &'static str,
    recorder: Recorder,
    coalescer: StatusCoalescer,
}

impl StatusWriter {
    pub fn new(
        client: kube::Client,
        writer: Writer,
        manager: &'static str,
        reporter: &str,
        action: &'static str,
        progress_interval: Duration,
    ) -> Self {
        Self {
            writer,
            manager,
            action,
            recorder: Recorder::new(client, reporter),
            coalescer: StatusCoalescer::new(
                progress_interval,
                progress_interval.saturating_mul(10),
                coalesce::MESSAGE_WINDOW,
            ),
        }
    }

    /// The Event recorder of this operator, for Events other than condition transitions.
    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    /// Applies `update` unless the status already says it. With `coalesce`, a progress-only
    /// change is held back until its progress interval has passed (`coalesce`).
    pub async fn write<K: Database>(
        &self,
        api: &Api<K>,
        db: &K,
        update: &StatusUpdate,
        coalesce: bool,
    ) -> kube::Result<StatusOutcome> {
        let planned = plan(
            self.writer,
            db.db_status(),
            update,
            db.meta().generation,
            &now(),
        );
        if !planned.changed {
            return Ok(StatusOutcome::Unchanged);
        }
        let key = key_of(db);
        let fingerprint = fingerprint(db.meta().resource_version.as_deref(), &planned);
        if self.coalescer.already_wrote(&key, fingerprint) {
            return Ok(StatusOutcome::Unchanged);
        }
        let steps: Vec<_> = planned
            .transitions
            .iter()
            .map(|t| (t.type_, t.reason))
            .collect();
        if coalesce
            && let Some(progress) = planned.progress
            && let Some(delay) = self.coalescer.hold(&key, progress)
        {
            let fresh = self.coalescer.announce_held(&key, &steps);
            self.announce(db, &planned.transitions, &fresh).await;
            return Ok(StatusOutcome::Held(delay));
        }
        let mut status = json!({"conditions": planned.conditions});
        if let Some(phase) = planned.phase {
            status["phase"] = json!(phase);
            status["observedGeneration"] = json!(planned.observed_generation);
        }
        let announced = match self.apply(api, db, Some(status)).await? {
            StatusOutcome::Gone => return Ok(StatusOutcome::Gone),
            _ => self.coalescer.wrote(&key, planned.progress, fingerprint),
        };
        tracing::debug!(db = ?key, progress = ?planned.progress, steps = ?steps, "status written");
        let fresh: Vec<_> = steps
            .into_iter()
            .filter(|s| !announced.contains(s))
            .collect();
        self.announce(db, &planned.transitions, &fresh).await;
        Ok(StatusOutcome::Written)
    }

    /// An Event for each of `transitions` whose step is in `steps`.
    async fn announce<K: Database>(
        &self,
        db: &K,
        transitions: &[Desired],
        steps: &[(ConditionType, dbtls_contract::conditions::Reason)],
    ) {
        let regarding = db.object_ref(&());
        for t in transitions
            .iter()
            .filter(|t| steps.contains(&(t.type_, t.reason)))
        {
            events::publish(
                &self.recorder,
                &regarding,
                t.reason.is_warning(),
                t.reason.as_str(),
                self.action,
                &t.message,
            )
            .await;
        }
    }

    /// Removes every condition of this writer (applying a status without them releases exactly
    /// the entries this field manager owns); a write only when there is one.
    pub async fn clear<K: Database>(&self, api: &Api<K>, db: &K) -> kube::Result<StatusOutcome> {
        let ours = db.db_status().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| ConditionType::parse(&c.type_).is_some_and(|t| t.writer() == self.writer))
        });
        if !ours {
            return Ok(StatusOutcome::Unchanged);
        }
        self.apply(api, db, None).await
    }

    async fn apply<K: Database>(
        &self,
        api: &Api<K>,
        db: &K,
        status: Option<serde_json::Value>,
    ) -> kube::Result<StatusOutcome> {
        let mut body = json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "metadata": {"name": db.name_any(), "namespace": db.namespace()},
        });
        if let Some(status) = status {
            body["status"] = status;
        }
        match ssa::apply_status(api, &db.name_any(), self.manager, &body).await {
            Ok(_) => Ok(StatusOutcome::Written),
            // Deleted meanwhile: nothing to report on.
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(StatusOutcome::Gone),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use dbtls_contract::conditions::{ConditionStatus, Reason};

    const TLS: ConditionType = ConditionType::TlsSecretsReady;

    fn stored(update: &StatusUpdate, generation: i64) -> DatabaseStatus {
        let planned = plan(Writer::Provisioner, None, update, Some(generation), "t0");
        DatabaseStatus {
            phase: planned.phase,
            observed_generation: planned.observed_generation,
            conditions: planned.conditions,
        }
    }

    fn waiting(message: &str) -> StatusUpdate {
        StatusUpdate {
            conditions: vec![Desired::not(TLS, Reason::WaitingForTlsSecrets, message)],
            phase: Some(DatabasePhase::Provisioning),
        }
    }

    #[test]
    fn a_write_planned_again_from_a_cache_behind_it_is_recognised() {
        let existing = stored(&waiting("waiting for a"), 1);
        let ready = StatusUpdate {
            conditions: vec![Desired::ok(TLS, Reason::TlsSecretsReady, "all there")],
            phase: Some(DatabasePhase::Ready),
        };
        let first = plan(Writer::Provisioner, Some(&existing), &ready, Some(1), "t1");
        // The next reconcile still sees `existing` and plans the same transition at t2.
        let again = plan(Writer::Provisioner, Some(&existing), &ready, Some(1), "t2");
        assert_ne!(first.conditions, again.conditions, "stamped anew");
        assert_eq!(
            fingerprint(Some("7"), &first),
            fingerprint(Some("7"), &again)
        );
        assert_ne!(
            fingerprint(Some("7"), &first),
            fingerprint(Some("8"), &again),
            "the cache caught up (or someone wrote): planned from what it shows"
        );
        let other = StatusUpdate {
            conditions: vec![Desired::ok(TLS, Reason::TlsSecretsReady, "all there now")],
            phase: Some(DatabasePhase::Ready),
        };
        let other = plan(Writer::Provisioner, Some(&existing), &other, Some(1), "t2");
        assert_ne!(
            fingerprint(Some("7"), &first),
            fingerprint(Some("7"), &other)
        );
        let provisioning = StatusUpdate {
            phase: Some(DatabasePhase::Provisioning),
            ..ready
        };
        let provisioning = plan(
            Writer::Provisioner,
            Some(&existing),
            &provisioning,
            Some(1),
            "t2",
        );
        assert_ne!(
            fingerprint(Some("7"), &first),
            fingerprint(Some("7"), &provisioning)
        );

        let coalescer = StatusCoalescer::default();
        let key = crate::key::DbKey::new("MySQL", "demo", "db");
        assert!(!coalescer.already_wrote(&key, fingerprint(Some("7"), &first)));
        coalescer.wrote(&key, first.progress, fingerprint(Some("7"), &first));
        assert!(coalescer.already_wrote(&key, fingerprint(Some("7"), &again)));
        assert!(!coalescer.already_wrote(&key, fingerprint(Some("8"), &again)));
        let elsewhere = crate::key::DbKey::new("MySQL", "demo", "other");
        assert!(!coalescer.already_wrote(&elsewhere, fingerprint(Some("7"), &again)));
    }

    #[test]
    fn an_unchanged_state_is_no_write() {
        let update = waiting("waiting for a");
        let existing = stored(&update, 1);
        let again = plan(Writer::Provisioner, Some(&existing), &update, Some(1), "t1");
        assert!(!again.changed);
        assert!(again.transitions.is_empty());
    }

    #[test]
    fn message_only_changes_are_progress_and_not_transitions() {
        let existing = stored(&waiting("waiting for a, b"), 1);
        let progress = plan(
            Writer::Provisioner,
            Some(&existing),
            &waiting("waiting for b"),
            Some(1),
            "t1",
        );
        assert!(progress.changed);
        assert_eq!(progress.progress, Some(Progress::IssuanceWait));
        assert!(progress.transitions.is_empty());
        let new_generation = plan(
            Writer::Provisioner,
            Some(&existing),
            &waiting("waiting for b"),
            Some(2),
            "t1",
        );
        assert!(new_generation.changed && new_generation.progress.is_none());
    }

    #[test]
    fn the_next_step_of_a_wait_is_progress_and_still_announced() {
        let objects = StatusUpdate {
            conditions: vec![Desired::not(
                ConditionType::CertificatesReady,
                Reason::WaitingForDatabaseObjects,
                "waiting for Service db",
            )],
            phase: None,
        };
        let existing = {
            let planned = plan(Writer::OpsManager, None, &objects, Some(1), "t0");
            DatabaseStatus {
                conditions: planned.conditions,
                ..Default::default()
            }
        };
        let step = |status: bool, reason: Reason| StatusUpdate {
            conditions: vec![Desired::new(
                ConditionType::CertificatesReady,
                if status {
                    ConditionStatus::True
                } else {
                    ConditionStatus::False
                },
                reason,
                "m",
            )],
            phase: None,
        };
        for (update, progress, why) in [
            (
                step(false, Reason::CertificatesNotReady),
                true,
                "the next step of the wait",
            ),
            (
                step(false, Reason::SecretNameConflict),
                false,
                "a problem for the user is written at once",
            ),
            (
                step(true, Reason::CertificatesReady),
                false,
                "the wait is over",
            ),
        ] {
            let planned = plan(Writer::OpsManager, Some(&existing), &update, Some(1), "t1");
            assert!(planned.changed, "{why}");
            assert_eq!(planned.progress.is_some(), progress, "{why}");
            assert_eq!(planned.transitions.len(), 1, "{why}: announced either way");
        }
    }

    #[test]
    fn transitions_are_announced_unless_quiet() {
        let existing = stored(&waiting("waiting for a"), 1);
        let ready = StatusUpdate {
            conditions: vec![
                Desired::ok(TLS, Reason::TlsSecretsReady, "all there"),
                Desired::ok(ConditionType::Ready, Reason::AllReplicasReady, "ok").quiet(),
            ],
            phase: Some(DatabasePhase::Ready),
        };
        let planned = plan(Writer::Provisioner, Some(&existing), &ready, Some(1), "t1");
        assert!(planned.changed && planned.progress.is_none());
        let announced: Vec<_> = planned.transitions.iter().map(|d| d.type_).collect();
        assert_eq!(announced, [TLS]);
    }

    #[test]
    fn the_writers_other_types_are_kept_and_the_others_types_left_out() {
        let mut existing = stored(&waiting("waiting for a"), 1);
        existing.conditions.push(resolve(
            &[],
            &Desired::ok(ConditionType::IssuerReady, Reason::IssuerReady, "ops"),
            Some(1),
            "t0",
        ));
        let only_ready = StatusUpdate {
            conditions: vec![Desired::not(
                ConditionType::Ready,
                Reason::WaitingForTlsSecrets,
                "x",
            )],
            phase: Some(DatabasePhase::Provisioning),
        };
        let planned = plan(
            Writer::Provisioner,
            Some(&existing),
            &only_ready,
            Some(1),
            "t1",
        );
        let types: Vec<&str> = planned
            .conditions
            .iter()
            .map(|c| c.type_.as_str())
            .collect();
        assert_eq!(types, ["TLSSecretsReady", "Ready"]);
    }

    #[test]
    fn the_ops_manager_writes_no_phase() {
        let update = StatusUpdate {
            conditions: vec![Desired::ok(
                ConditionType::IssuerReady,
                Reason::IssuerReady,
                "ok",
            )],
            phase: None,
        };
        let planned = plan(Writer::OpsManager, None, &update, Some(4), "t");
        assert_eq!((planned.phase, planned.observed_generation), (None, None));
        assert_eq!(planned.conditions[0].observed_generation, Some(4));
    }
}
