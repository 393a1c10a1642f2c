//! The provisioner's conditions and phase, computed purely from what the reconcile observed.
//! Conditions keep their `lastTransitionTime` unless their status changes, and the plan says
//! whether anything changed at all, so that a converged database gets no status write.
use dbtls_contract::api::{Condition, DatabasePhase, DatabaseStatus};
use dbtls_contract::conditions::{FALSE, TRUE, provisioner as types, reasons};
use dbtls_runtime::conditions::{Desired, resolve, up_to_date};

use crate::tls_secrets::TlsSecretsState;
use crate::validate::Invalid;

/// What the reconcile found out about the workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkloadReport {
    /// Not created yet, and why.
    NotCreated(String),
    /// Exists (`what` says which API and why it was chosen).
    Exists {
        what: String,
        ready: i32,
        replicas: i32,
    },
    /// The desired workload changes a field the API server refuses to update.
    ImmutableField {
        what: String,
        field: String,
    },
    Halted,
}

/// Everything the status is computed from.
#[derive(Clone, Debug)]
pub struct Observation<'a> {
    pub invalid: Option<&'a Invalid>,
    /// None when the TLS Secrets were not looked at (invalid spec).
    pub tls: Option<&'a TlsSecretsState>,
    pub workload: WorkloadReport,
    pub halted: bool,
    pub deletion_blocked: bool,
}

/// A condition that changed status or reason: worth an Event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub warning: bool,
    pub reason: String,
    pub message: String,
}

#[derive(Clone, Debug)]
pub struct StatusPlan {
    pub conditions: Vec<Condition>,
    pub phase: DatabasePhase,
    pub observed_generation: Option<i64>,
    /// Whether the live status differs (a write is needed).
    pub changed: bool,
    pub transitions: Vec<Transition>,
}

const WARNING_REASONS: &[&str] = &[
    reasons::INVALID_SPEC,
    reasons::AUTH_SECRET_MISSING,
    reasons::AUTH_SECRET_INVALID,
    reasons::TLS_SECRET_INVALID,
    reasons::IMMUTABLE_FIELD_CHANGED,
    reasons::NAME_CONFLICT,
    reasons::DELETION_BLOCKED,
];

fn tls_condition(state: &TlsSecretsState) -> Desired {
    let t = types::TLS_SECRETS_READY;
    match state {
        TlsSecretsState::NotConfigured => Desired::new(
            t,
            TRUE,
            reasons::TLS_NOT_CONFIGURED,
            "spec.tls is not set: the server runs without TLS",
        ),
        TlsSecretsState::Ready => Desired::new(
            t,
            TRUE,
            reasons::TLS_SECRETS_READY,
            "every TLS Secret exists with ca.crt, tls.crt and tls.key",
        ),
        TlsSecretsState::Missing(names) => Desired::new(
            t,
            FALSE,
            reasons::WAITING_FOR_TLS_SECRETS,
            format!(
                "waiting for TLS Secret(s) {} (issued by cert-manager from the ops-manager's Certificates); the workload is created once all exist",
                names.join(", ")
            ),
        ),
        TlsSecretsState::Invalid { problems, missing } => {
            let mut message = format!(
                "{}: a TLS Secret must be of type kubernetes.io/tls with ca.crt, tls.crt and tls.key; fix it or delete it so that it is issued again",
                problems.join("; ")
            );
            if !missing.is_empty() {
                message.push_str(&format!("; still missing: {}", missing.join(", ")));
            }
            Desired::new(t, FALSE, reasons::TLS_SECRET_INVALID, message)
        }
    }
}

fn workload_condition(report: &WorkloadReport) -> Desired {
    let t = types::WORKLOAD_READY;
    match report {
        WorkloadReport::NotCreated(why) => {
            Desired::new(t, FALSE, reasons::WORKLOAD_NOT_CREATED, why.clone())
        }
        WorkloadReport::Exists {
            what,
            ready,
            replicas,
        } => {
            let message = format!("{what}: {ready}/{replicas} replicas ready");
            if *replicas > 0 && ready >= replicas {
                Desired::new(t, TRUE, reasons::ALL_REPLICAS_READY, message)
            } else {
                Desired::new(t, FALSE, reasons::REPLICAS_NOT_READY, message)
            }
        }
        WorkloadReport::ImmutableField { what, field } => Desired::new(
            t,
            FALSE,
            reasons::IMMUTABLE_FIELD_CHANGED,
            format!(
                "{what}: the change needs {field} to change, which the API server refuses; revert the spec change, or delete the workload (PVCs are kept) so that it is created again"
            ),
        ),
        WorkloadReport::Halted => Desired::new(
            t,
            FALSE,
            reasons::HALTED,
            "spec.halted is true: the workload and Services are deleted; data and Secrets are kept",
        ),
    }
}

fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == TRUE)
}

/// The existing condition, unchanged (for types this reconcile did not evaluate).
fn keep(existing: &[Condition], type_: &'static str) -> Option<Desired> {
    let c = existing.iter().find(|c| c.type_ == type_)?;
    let status = match c.status.as_str() {
        TRUE => TRUE,
        FALSE => FALSE,
        _ => dbtls_contract::conditions::UNKNOWN,
    };
    let reason = WARNING_REASONS
        .iter()
        .chain(
            [
                reasons::WAITING_FOR_TLS_SECRETS,
                reasons::TLS_SECRETS_READY,
                reasons::TLS_NOT_CONFIGURED,
                reasons::WORKLOAD_CREATED,
                reasons::WORKLOAD_NOT_CREATED,
                reasons::REPLICAS_NOT_READY,
                reasons::ALL_REPLICAS_READY,
                reasons::HALTED,
            ]
            .iter(),
        )
        .find(|r| Some(**r) == c.reason.as_deref())
        .copied()?;
    Some(Desired::new(
        type_,
        status,
        reason,
        c.message.clone().unwrap_or_default(),
    ))
}

/// The status the database should have.
pub fn plan(
    existing: Option<&DatabaseStatus>,
    obs: &Observation<'_>,
    generation: Option<i64>,
    now: &str,
) -> StatusPlan {
    let empty = Vec::new();
    let old = existing.map(|s| &s.conditions).unwrap_or(&empty);
    let mut desired = Vec::new();

    desired.push(match obs.invalid {
        Some(invalid) => Desired::new(
            types::PROVISIONING_STARTED,
            FALSE,
            invalid.reason(),
            invalid.to_string(),
        ),
        None => Desired::new(
            types::PROVISIONING_STARTED,
            TRUE,
            reasons::PROVISIONING_STARTED,
            "auth Secret and Services are in place",
        ),
    });
    let tls = match obs.tls {
        Some(state) => Some(tls_condition(state)),
        None => keep(old, types::TLS_SECRETS_READY),
    };
    desired.extend(tls.clone());
    let workload = workload_condition(&obs.workload);
    desired.push(workload.clone());

    let workload_ready = workload.status == TRUE;
    let ready = workload_ready && obs.invalid.is_none() && !obs.halted && !obs.deletion_blocked;
    let ready_condition = if ready {
        Desired::new(
            types::READY,
            TRUE,
            reasons::ALL_REPLICAS_READY,
            workload.message.clone(),
        )
    } else if obs.deletion_blocked {
        Desired::new(
            types::READY,
            FALSE,
            reasons::DELETION_BLOCKED,
            "deletion refused: deletionPolicy is DoNotTerminate; set spec.deletionPolicy to Halt, Delete or WipeOut first",
        )
    } else if let Some(invalid) = obs.invalid {
        Desired::new(types::READY, FALSE, invalid.reason(), invalid.to_string())
    } else if let Some(tls) = tls.filter(|t| t.status != TRUE) {
        Desired::new(types::READY, FALSE, tls.reason, tls.message)
    } else {
        Desired::new(
            types::READY,
            FALSE,
            workload.reason,
            workload.message.clone(),
        )
    };
    desired.push(ready_condition);

    let provisioned = ready || is_true(old, types::PROVISIONED);
    if provisioned {
        desired.push(Desired::new(
            types::PROVISIONED,
            TRUE,
            reasons::PROVISIONED,
            "the database has been ready at least once",
        ));
    }
    if obs.halted {
        desired.push(Desired::new(
            types::HALTED,
            TRUE,
            reasons::HALTED,
            "spec.halted is true",
        ));
    } else if old.iter().any(|c| c.type_ == types::HALTED) {
        desired.push(Desired::new(
            types::HALTED,
            FALSE,
            reasons::HALTED,
            "spec.halted is false",
        ));
    }

    let phase = if obs.halted {
        DatabasePhase::Halted
    } else if ready {
        DatabasePhase::Ready
    } else if provisioned {
        DatabasePhase::Critical
    } else {
        DatabasePhase::Provisioning
    };

    let conditions: Vec<Condition> = desired
        .iter()
        .map(|d| resolve(old, d, generation, now))
        .collect();
    let transitions = desired
        .iter()
        .filter(|d| {
            // Ready repeats another condition, except for a refused deletion.
            (d.type_ != types::READY || d.reason == reasons::DELETION_BLOCKED)
                && d.type_ != types::PROVISIONED
        })
        .filter(|d| {
            !old.iter().any(|c| {
                c.type_ == d.type_ && c.status == d.status && c.reason.as_deref() == Some(d.reason)
            })
        })
        .map(|d| Transition {
            warning: WARNING_REASONS.contains(&d.reason),
            reason: d.reason.to_string(),
            message: d.message.clone(),
        })
        .collect();
    let changed = !up_to_date(old, &conditions)
        || existing.and_then(|s| s.phase) != Some(phase)
        || existing.and_then(|s| s.observed_generation) != generation;
    StatusPlan {
        conditions,
        phase,
        observed_generation: generation,
        changed,
        transitions,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn obs<'a>(tls: &'a TlsSecretsState, workload: WorkloadReport) -> Observation<'a> {
        Observation {
            invalid: None,
            tls: Some(tls),
            workload,
            halted: false,
            deletion_blocked: false,
        }
    }

    fn status_of(plan: &StatusPlan) -> DatabaseStatus {
        DatabaseStatus {
            phase: Some(plan.phase),
            observed_generation: plan.observed_generation,
            conditions: plan.conditions.clone(),
        }
    }

    fn condition<'a>(plan: &'a StatusPlan, type_: &str) -> &'a Condition {
        plan.conditions.iter().find(|c| c.type_ == type_).unwrap()
    }

    #[test]
    fn waiting_for_tls_secrets_names_them_and_is_announced_once() {
        let tls = TlsSecretsState::Missing(vec!["db-server-cert".into(), "db-client-cert".into()]);
        let o = obs(
            &tls,
            WorkloadReport::NotCreated("waiting for TLS Secrets".into()),
        );
        let first = plan(None, &o, Some(1), "t1");
        let c = condition(&first, types::TLS_SECRETS_READY);
        assert_eq!(c.status, FALSE);
        assert_eq!(c.reason.as_deref(), Some(reasons::WAITING_FOR_TLS_SECRETS));
        assert!(
            c.message
                .as_ref()
                .unwrap()
                .contains("db-server-cert, db-client-cert")
        );
        assert_eq!(first.phase, DatabasePhase::Provisioning);
        assert!(first.changed);
        assert!(
            first
                .transitions
                .iter()
                .any(|t| t.reason == reasons::WAITING_FOR_TLS_SECRETS && !t.warning)
        );

        let again = plan(Some(&status_of(&first)), &o, Some(1), "t2");
        assert!(!again.changed, "an unchanged observation must not write");
        assert!(again.transitions.is_empty());
        assert_eq!(
            condition(&again, types::TLS_SECRETS_READY).last_transition_time,
            "t1"
        );
    }

    #[test]
    fn ready_then_a_replica_drop_is_critical() {
        let tls = TlsSecretsState::Ready;
        let ready = plan(
            None,
            &obs(
                &tls,
                WorkloadReport::Exists {
                    what: "StatefulSet db".into(),
                    ready: 1,
                    replicas: 1,
                },
            ),
            Some(1),
            "t1",
        );
        assert_eq!(ready.phase, DatabasePhase::Ready);
        assert_eq!(condition(&ready, types::PROVISIONED).status, TRUE);
        let dropped = plan(
            Some(&status_of(&ready)),
            &obs(
                &tls,
                WorkloadReport::Exists {
                    what: "StatefulSet db".into(),
                    ready: 0,
                    replicas: 1,
                },
            ),
            Some(1),
            "t2",
        );
        assert_eq!(dropped.phase, DatabasePhase::Critical);
        assert_eq!(
            condition(&dropped, types::WORKLOAD_READY)
                .message
                .as_deref(),
            Some("StatefulSet db: 0/1 replicas ready")
        );
    }

    #[test]
    fn invalid_specs_warn_and_keep_unevaluated_conditions() {
        let tls = TlsSecretsState::Missing(vec!["x".into()]);
        let before = plan(
            None,
            &obs(&tls, WorkloadReport::NotCreated("w".into())),
            Some(1),
            "t1",
        );
        let invalid = Invalid::BackendMissing;
        let o = Observation {
            invalid: Some(&invalid),
            tls: None,
            workload: WorkloadReport::NotCreated("spec invalid".into()),
            halted: false,
            deletion_blocked: false,
        };
        let after = plan(Some(&status_of(&before)), &o, Some(2), "t2");
        assert_eq!(condition(&after, types::PROVISIONING_STARTED).status, FALSE);
        assert_eq!(
            condition(&after, types::READY).reason.as_deref(),
            Some(reasons::INVALID_SPEC)
        );
        // TLSSecretsReady was not re-evaluated: kept as it was.
        assert_eq!(
            condition(&after, types::TLS_SECRETS_READY).clone(),
            condition(&before, types::TLS_SECRETS_READY)
                .clone()
                .pipe_generation(Some(2))
        );
        assert!(
            after
                .transitions
                .iter()
                .any(|t| t.warning && t.reason == reasons::INVALID_SPEC)
        );
    }

    trait PipeGeneration {
        fn pipe_generation(self, g: Option<i64>) -> Self;
    }
    impl PipeGeneration for Condition {
        fn pipe_generation(mut self, g: Option<i64>) -> Self {
            self.observed_generation = g;
            self
        }
    }

    #[test]
    fn halted_and_blocked_deletion() {
        let tls = TlsSecretsState::NotConfigured;
        let o = Observation {
            halted: true,
            ..obs(&tls, WorkloadReport::Halted)
        };
        let halted = plan(None, &o, Some(1), "t");
        assert_eq!(halted.phase, DatabasePhase::Halted);
        assert_eq!(condition(&halted, types::HALTED).status, TRUE);
        let o = Observation {
            deletion_blocked: true,
            ..obs(
                &tls,
                WorkloadReport::Exists {
                    what: "w".into(),
                    ready: 1,
                    replicas: 1,
                },
            )
        };
        let blocked = plan(None, &o, Some(1), "t");
        assert!(
            blocked
                .transitions
                .iter()
                .any(|t| t.warning && t.reason == reasons::DELETION_BLOCKED)
        );
        assert_eq!(
            condition(&blocked, types::READY).reason.as_deref(),
            Some(reasons::DELETION_BLOCKED)
        );
    }
}
