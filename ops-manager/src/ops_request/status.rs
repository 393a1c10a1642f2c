//! The request's status: its step conditions (a condition's transition time moves only when
//! its status does), phase and observedGeneration, written only when they change, with an
//! Event for each step that finishes and for the request's end.
use dbtls_contract::api::Condition;
use dbtls_contract::api::ops::{OpsRequest, OpsRequestPhase, OpsRequestStatus};
use dbtls_contract::conditions::OpsConditionType;
use dbtls_runtime::conditions::now;
use dbtls_runtime::events;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::OpsError;
use super::plan::{Decision, Step};
use crate::context::Context;

/// The Event action of OpsRequest Events.
pub const ACTION: &str = "ReconfigureTLS";

/// The statuses this process wrote, by request uid, with the resourceVersion each write made:
/// the watch cache may hand the next reconcile the request as it was before a write (a
/// database event can arrive first), and a step must never be decided again from a status
/// that is already past. Only the ops-manager writes a request's status, so until the cache
/// shows the version written, the status written is the newest.
#[derive(Default)]
pub struct Written {
    by_uid: std::sync::Mutex<std::collections::HashMap<String, (String, OpsRequestStatus)>>,
}

impl Written {
    /// The status to decide from.
    pub fn current(
        &self,
        uid: &str,
        resource_version: &str,
        cached: OpsRequestStatus,
    ) -> OpsRequestStatus {
        let mut map = self.by_uid.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(uid) {
            Some((made, _)) if made == resource_version => {
                map.remove(uid);
                cached
            }
            Some((_, status)) => status.clone(),
            None => cached,
        }
    }

    fn wrote(&self, uid: &str, made: &str, status: OpsRequestStatus) {
        self.by_uid
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(uid.to_string(), (made.to_string(), status));
    }

    /// Forgets a request that is gone or finished.
    pub fn forget(&self, uid: &str) {
        self.by_uid
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(uid);
    }
}

/// The status `decision` makes of `old` (pure).
pub fn next(
    old: &OpsRequestStatus,
    decision: &Decision,
    generation: Option<i64>,
    now: &str,
) -> OpsRequestStatus {
    let mut conditions: Vec<Condition> = old
        .conditions
        .iter()
        .filter(|c| {
            decision.phase == OpsRequestPhase::Pending
                || c.type_ != OpsConditionType::Pending.as_str()
        })
        .filter(|c| {
            !decision
                .conditions
                .iter()
                .any(|s| s.type_.as_str() == c.type_)
        })
        .cloned()
        .collect();
    for step in &decision.conditions {
        conditions.push(condition(old, step, generation, now));
    }
    OpsRequestStatus {
        phase: Some(decision.phase),
        observed_generation: generation,
        conditions,
        certificate_revisions: decision
            .certificate_revisions
            .clone()
            .unwrap_or_else(|| old.certificate_revisions.clone()),
        database_generation: decision.database_generation.or(old.database_generation),
    }
}

fn condition(old: &OpsRequestStatus, step: &Step, generation: Option<i64>, now: &str) -> Condition {
    let status = if step.status { "True" } else { "False" };
    let last_transition_time = match old.condition(step.type_.as_str()) {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => now.to_string(),
    };
    Condition {
        type_: step.type_.as_str().to_string(),
        status: status.to_string(),
        observed_generation: generation,
        severity: None,
        last_transition_time,
        reason: Some(step.reason.as_str().to_string()),
        message: Some(step.message.clone()),
    }
}

/// The steps that finished with this decision (for Events).
fn finished<'a>(old: &OpsRequestStatus, decision: &'a Decision) -> impl Iterator<Item = &'a Step> {
    decision.conditions.iter().filter(move |s| {
        s.status
            && old
                .condition(s.type_.as_str())
                .is_none_or(|c| c.status != "True")
    })
}

/// Writes the status `decision` makes of `old`; returns it.
pub async fn write<O: OpsRequest>(
    ctx: &Context,
    o: &O,
    old: &OpsRequestStatus,
    decision: &Decision,
) -> Result<OpsRequestStatus, OpsError> {
    let next = next(old, decision, o.meta().generation, &now());
    if &next == old {
        return Ok(next);
    }
    let namespace = o.namespace().unwrap_or_default();
    let api: Api<O> = Api::namespaced(ctx.client.clone(), &namespace);
    let request = format!("{} {namespace}/{}", O::kind(&()), o.name_any());
    match api
        .patch_status(
            &o.name_any(),
            &PatchParams {
                field_manager: Some(dbtls_contract::OPS_MANAGER_MANAGER.to_string()),
                ..PatchParams::default()
            },
            &Patch::Merge(json!({"status": next})),
        )
        .await
    {
        Ok(written) => ctx.ops_written.wrote(
            &o.uid().unwrap_or_default(),
            &written.resource_version().unwrap_or_default(),
            next.clone(),
        ),
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(next),
        Err(source) => return Err(OpsError::Status { request, source }),
    }
    let regarding = o.object_ref(&());
    for step in finished(old, decision) {
        events::publish(
            ctx.status.recorder(),
            &regarding,
            step.reason.is_warning(),
            step.reason.as_str(),
            ACTION,
            &step.message,
        )
        .await;
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use dbtls_contract::conditions::Reason;

    fn decision(phase: OpsRequestPhase, steps: Vec<(OpsConditionType, bool)>) -> Decision {
        let mut d = Decision::failed_by_api(String::new());
        d.phase = phase;
        d.conditions = steps
            .into_iter()
            .map(|(type_, status)| Step {
                type_,
                status,
                reason: Reason::UpdateDatabase,
                message: format!("{type_} {status}"),
            })
            .collect();
        d
    }

    #[test]
    fn a_condition_keeps_its_transition_time_until_its_status_changes() {
        let waiting = decision(
            OpsRequestPhase::Progressing,
            vec![(OpsConditionType::UpdateDatabase, false)],
        );
        let first = next(&OpsRequestStatus::default(), &waiting, Some(1), "t1");
        let again = next(&first, &waiting, Some(1), "t2");
        assert_eq!(again.conditions[0].last_transition_time, "t1");
        let done = decision(
            OpsRequestPhase::Progressing,
            vec![(OpsConditionType::UpdateDatabase, true)],
        );
        let after = next(&again, &done, Some(1), "t3");
        assert_eq!(after.conditions.len(), 1);
        assert_eq!(after.conditions[0].last_transition_time, "t3");
        assert_eq!(finished(&again, &done).count(), 1);
        assert_eq!(finished(&after, &done).count(), 0, "announced once");
    }

    #[test]
    fn a_stale_cache_never_rewinds_a_request() {
        let written = Written::default();
        let progressing = OpsRequestStatus {
            phase: Some(OpsRequestPhase::Progressing),
            ..OpsRequestStatus::default()
        };
        written.wrote("u", "12", progressing.clone());
        let stale = OpsRequestStatus::default();
        assert_eq!(
            written.current("u", "11", stale.clone()),
            progressing,
            "cache behind"
        );
        assert_eq!(
            written.current("v", "11", stale.clone()),
            stale,
            "another request"
        );
        // Once the cache holds the write, what it holds is the truth (here: another client
        // has moved the request on since).
        let caught_up = OpsRequestStatus {
            phase: Some(OpsRequestPhase::Successful),
            ..OpsRequestStatus::default()
        };
        assert_eq!(
            written.current("u", "12", caught_up.clone()),
            caught_up,
            "cache caught up"
        );
        assert_eq!(
            written.current("u", "11", stale.clone()),
            stale,
            "forgotten once caught up"
        );
    }

    #[test]
    fn pending_goes_once_the_request_starts() {
        let pending = decision(
            OpsRequestPhase::Pending,
            vec![(OpsConditionType::Pending, true)],
        );
        let waiting = next(&OpsRequestStatus::default(), &pending, Some(1), "t1");
        assert_eq!(waiting.conditions.len(), 1);
        let started = decision(
            OpsRequestPhase::Progressing,
            vec![(OpsConditionType::ReconfigureTls, true)],
        );
        let running = next(&waiting, &started, Some(1), "t2");
        let types: Vec<&str> = running
            .conditions
            .iter()
            .map(|c| c.type_.as_str())
            .collect();
        assert_eq!(types, ["ReconfigureTLS"]);
    }
}
