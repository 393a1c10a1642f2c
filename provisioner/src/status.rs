//! The provisioner's conditions and phase, computed purely from what the reconcile found out
//! (the [`Report`]); the runtime's status writer applies them only when they change.
use dbtls_contract::api::{Condition, DatabasePhase};
use dbtls_contract::conditions::{ConditionType as Type, Reason};
use dbtls_runtime::conditions::{Desired, find, is_true};
use dbtls_runtime::status::StatusUpdate;

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
        /// Why pods are not ready (kubelet's words), while fewer than `replicas` are.
        pods: Vec<String>,
        /// A rollout under way (what it waits for); None once every pod runs the current template.
        rolling: Option<String>,
    },
    /// The desired workload changes a field the API server refuses to update.
    ImmutableField {
        what: String,
        field: String,
    },
    /// Workloads of the database's other layout run (`spec.topology` was added or removed):
    /// nothing is created or deleted in place.
    TopologyChanged {
        running: String,
        planned: String,
    },
    Halted,
}

/// Everything the status is computed from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub invalid: Option<Invalid>,
    /// None when the TLS Secrets were not looked at (invalid spec): the stored condition stays.
    pub tls: Option<TlsSecretsState>,
    pub workload: WorkloadReport,
    pub halted: bool,
    pub deletion_blocked: bool,
}

impl Report {
    pub fn new(workload: WorkloadReport) -> Self {
        Self {
            invalid: None,
            tls: None,
            workload,
            halted: false,
            deletion_blocked: false,
        }
    }
}

fn tls_condition(state: &TlsSecretsState) -> Desired {
    let t = Type::TlsSecretsReady;
    match state {
        TlsSecretsState::NotConfigured => Desired::ok(
            t,
            Reason::TlsNotConfigured,
            "spec.tls is not set: the server runs without TLS",
        ),
        TlsSecretsState::Ready => Desired::ok(
            t,
            Reason::TlsSecretsReady,
            "every TLS Secret exists with ca.crt, tls.crt and tls.key",
        ),
        TlsSecretsState::Missing(names) => Desired::not(
            t,
            Reason::WaitingForTlsSecrets,
            format!(
                "waiting for Secret(s) {} (cert-manager issues the TLS Secrets from the ops-manager's Certificates; the ops-manager writes the CA bundle); the workload is created once all exist",
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
            Desired::not(t, Reason::TlsSecretInvalid, message)
        }
    }
}

fn workload_condition(report: &WorkloadReport) -> Desired {
    let t = Type::WorkloadReady;
    match report {
        WorkloadReport::NotCreated(why) => Desired::not(t, Reason::WorkloadNotCreated, why.clone()),
        WorkloadReport::Exists {
            what,
            ready,
            replicas,
            pods,
            rolling,
        } => {
            let mut message = format!("{what}: {ready}/{replicas} replicas ready");
            if ready < replicas && !pods.is_empty() {
                message.push_str(&format!("; {}", pods.join("; ")));
            }
            if let Some(rolling) = rolling {
                message.push_str(&format!("; rolling out: {rolling}"));
            }
            if *replicas > 0 && ready >= replicas && rolling.is_none() {
                Desired::ok(t, Reason::AllReplicasReady, message)
            } else {
                Desired::not(t, Reason::ReplicasNotReady, message)
            }
        }
        WorkloadReport::ImmutableField { what, field } => Desired::not(
            t,
            Reason::ImmutableFieldChanged,
            format!(
                "{what}: the change needs {field} to change, which the API server refuses; revert the spec change, or delete the workload (PVCs are kept) so that it is created again"
            ),
        ),
        WorkloadReport::TopologyChanged { running, planned } => Desired::not(
            t,
            Reason::ImmutableFieldChanged,
            format!(
                "{running} runs the database as spec.topology was before; it cannot become {planned} in place: revert spec.topology, or delete {running} (PVCs are kept) so that {planned} is created"
            ),
        ),
        WorkloadReport::Halted => Desired::not(
            t,
            Reason::Halted,
            "spec.halted is true: the workload and Services are deleted; data and Secrets are kept",
        ),
    }
}

/// The conditions and phase for `report`, given the stored conditions (Provisioned stays True
/// once reached; Halted, once present, is set False rather than dropped).
pub fn update(report: &Report, existing: &[Condition]) -> StatusUpdate {
    let mut desired = Vec::new();
    desired.push(match &report.invalid {
        Some(invalid) => Desired::not(
            Type::ProvisioningStarted,
            invalid.reason(),
            invalid.to_string(),
        ),
        None => Desired::ok(
            Type::ProvisioningStarted,
            Reason::ProvisioningStarted,
            "auth Secret and Services are in place",
        ),
    });
    let tls = report.tls.as_ref().map(tls_condition);
    desired.extend(tls.clone());
    let workload = workload_condition(&report.workload);
    desired.push(workload.clone());

    let ready = workload.is_true()
        && report.invalid.is_none()
        && !report.halted
        && !report.deletion_blocked;
    desired.push(ready_condition(report, ready, tls, &workload));

    let provisioned = ready || is_true(existing, Type::Provisioned);
    if provisioned {
        desired.push(
            Desired::ok(
                Type::Provisioned,
                Reason::Provisioned,
                "the database has been ready at least once",
            )
            .quiet(),
        );
    }
    if report.halted {
        desired.push(Desired::ok(
            Type::Halted,
            Reason::Halted,
            "spec.halted is true",
        ));
    } else if find(existing, Type::Halted).is_some() {
        desired.push(Desired::not(
            Type::Halted,
            Reason::Halted,
            "spec.halted is false",
        ));
    }

    let phase = if report.halted {
        DatabasePhase::Halted
    } else if ready {
        DatabasePhase::Ready
    } else if provisioned {
        DatabasePhase::Critical
    } else {
        DatabasePhase::Provisioning
    };
    StatusUpdate {
        conditions: desired,
        phase: Some(phase),
    }
}

/// The `state` label of `dbtls_databases`: the reason the database waits for its TLS Secrets
/// while it does (the wait an alert watches), else its phase.
pub fn metric_state(report: &Report, phase: DatabasePhase) -> &'static str {
    match &report.tls {
        Some(TlsSecretsState::Missing(_)) => Reason::WaitingForTlsSecrets.as_str(),
        Some(TlsSecretsState::Invalid { .. }) => Reason::TlsSecretInvalid.as_str(),
        _ => phase.as_str(),
    }
}

/// Ready repeats the first condition that is not True (so it is not announced itself), except
/// for a refused deletion, which only Ready reports.
fn ready_condition(
    report: &Report,
    ready: bool,
    tls: Option<Desired>,
    workload: &Desired,
) -> Desired {
    let t = Type::Ready;
    if ready {
        return Desired::ok(t, Reason::AllReplicasReady, workload.message.clone()).quiet();
    }
    if report.deletion_blocked {
        return Desired::not(
            t,
            Reason::DeletionBlocked,
            "deletion refused: deletionPolicy is DoNotTerminate; set spec.deletionPolicy to Halt, Delete or WipeOut first",
        );
    }
    let repeated = match (&report.invalid, tls.filter(|t| !t.is_true())) {
        (Some(invalid), _) => Desired::not(t, invalid.reason(), invalid.to_string()),
        (None, Some(tls)) => Desired::not(t, tls.reason, tls.message),
        (None, None) => Desired::not(t, workload.reason, workload.message.clone()),
    };
    repeated.quiet()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use dbtls_contract::api::DatabaseStatus;
    use dbtls_contract::conditions::{ConditionStatus, Writer};
    use dbtls_runtime::status::{PlannedStatus, plan};

    fn report(tls: TlsSecretsState, workload: WorkloadReport) -> Report {
        Report {
            tls: Some(tls),
            ..Report::new(workload)
        }
    }

    /// The status the writer would store for `report` over `existing`, at `generation`.
    fn write(report: &Report, existing: Option<&DatabaseStatus>, generation: i64) -> PlannedStatus {
        let old = existing.map(|s| s.conditions.as_slice()).unwrap_or(&[]);
        plan(
            Writer::Provisioner,
            existing,
            &update(report, old),
            Some(generation),
            &format!("t{generation}"),
        )
    }

    fn stored(planned: &PlannedStatus) -> DatabaseStatus {
        DatabaseStatus {
            phase: planned.phase,
            observed_generation: planned.observed_generation,
            conditions: planned.conditions.clone(),
        }
    }

    fn condition(planned: &PlannedStatus, type_: Type) -> Condition {
        find(&planned.conditions, type_).cloned().unwrap()
    }

    fn announced(planned: &PlannedStatus) -> Vec<Reason> {
        planned.transitions.iter().map(|t| t.reason).collect()
    }

    #[test]
    fn waiting_for_tls_secrets_names_them_and_is_announced_once() {
        let missing =
            TlsSecretsState::Missing(vec!["db-server-cert".into(), "db-client-cert".into()]);
        let r = report(missing, WorkloadReport::NotCreated("waiting".into()));
        let first = write(&r, None, 1);
        let c = condition(&first, Type::TlsSecretsReady);
        assert_eq!(c.status, ConditionStatus::False.as_str());
        assert_eq!(c.reason.as_deref(), Some("WaitingForTLSSecrets"));
        assert!(
            c.message
                .unwrap()
                .contains("db-server-cert, db-client-cert")
        );
        assert_eq!(first.phase, Some(DatabasePhase::Provisioning));
        assert!(announced(&first).contains(&Reason::WaitingForTlsSecrets));
        assert!(!Reason::WaitingForTlsSecrets.is_warning());

        let again = write(&r, Some(&stored(&first)), 1);
        assert!(!again.changed, "an unchanged report must not write");
        assert!(again.transitions.is_empty());
    }

    #[test]
    fn ready_then_a_replica_drop_is_critical() {
        let exists = |ready| WorkloadReport::Exists {
            what: "StatefulSet db".into(),
            ready,
            replicas: 1,
            pods: Vec::new(),
            rolling: None,
        };
        let ready = write(&report(TlsSecretsState::Ready, exists(1)), None, 1);
        assert_eq!(ready.phase, Some(DatabasePhase::Ready));
        assert_eq!(condition(&ready, Type::Provisioned).status, "True");
        // Ready and Provisioned repeat WorkloadReady: one Event, not three.
        assert_eq!(
            announced(&ready),
            [
                Reason::ProvisioningStarted,
                Reason::TlsSecretsReady,
                Reason::AllReplicasReady
            ]
        );
        let dropped = write(
            &report(TlsSecretsState::Ready, exists(0)),
            Some(&stored(&ready)),
            1,
        );
        assert_eq!(dropped.phase, Some(DatabasePhase::Critical));
        assert_eq!(
            condition(&dropped, Type::WorkloadReady).message.as_deref(),
            Some("StatefulSet db: 0/1 replicas ready")
        );
        assert_eq!(condition(&dropped, Type::Provisioned).status, "True");
    }

    #[test]
    fn a_workload_still_rolling_out_is_not_ready() {
        let rolling = WorkloadReport::Exists {
            what: "StatefulSet db".into(),
            ready: 3,
            replicas: 3,
            pods: Vec::new(),
            rolling: Some("1/3 pods on the current template".into()),
        };
        let planned = write(&report(TlsSecretsState::Ready, rolling), None, 1);
        let workload = condition(&planned, Type::WorkloadReady);
        assert_eq!(workload.status, "False");
        assert!(
            workload
                .message
                .unwrap()
                .ends_with("3/3 replicas ready; rolling out: 1/3 pods on the current template")
        );
    }

    #[test]
    fn not_ready_pods_are_named_in_workload_ready() {
        let crashing = WorkloadReport::Exists {
            what: "StatefulSet db".into(),
            ready: 0,
            replicas: 1,
            pods: vec![
                "pod db-0: container mysql: CrashLoopBackOff, last exit 1: [ERROR] x".into(),
            ],
            rolling: None,
        };
        let planned = write(&report(TlsSecretsState::Ready, crashing), None, 1);
        let message = condition(&planned, Type::WorkloadReady).message.unwrap();
        assert_eq!(
            message,
            "StatefulSet db: 0/1 replicas ready; pod db-0: container mysql: CrashLoopBackOff, last exit 1: [ERROR] x"
        );
        assert_eq!(condition(&planned, Type::Ready).message.unwrap(), message);
    }

    #[test]
    fn invalid_specs_warn_and_keep_unevaluated_conditions() {
        let waiting = report(
            TlsSecretsState::Missing(vec!["x".into()]),
            WorkloadReport::NotCreated("w".into()),
        );
        let before = write(&waiting, None, 1);
        let invalid = Report {
            invalid: Some(Invalid::BackendMissing),
            ..Report::new(WorkloadReport::NotCreated("spec invalid".into()))
        };
        let after = write(&invalid, Some(&stored(&before)), 2);
        assert_eq!(condition(&after, Type::ProvisioningStarted).status, "False");
        assert_eq!(
            condition(&after, Type::Ready).reason.as_deref(),
            Some("InvalidSpec")
        );
        // TLSSecretsReady was not re-evaluated: kept exactly as it was.
        assert_eq!(
            condition(&after, Type::TlsSecretsReady),
            condition(&before, Type::TlsSecretsReady)
        );
        assert!(announced(&after).contains(&Reason::InvalidSpec));
        assert!(Reason::InvalidSpec.is_warning());
    }

    #[test]
    fn halted_then_resumed() {
        let halted = Report {
            halted: true,
            tls: Some(TlsSecretsState::NotConfigured),
            ..Report::new(WorkloadReport::Halted)
        };
        let planned = write(&halted, None, 1);
        assert_eq!(planned.phase, Some(DatabasePhase::Halted));
        assert_eq!(condition(&planned, Type::Halted).status, "True");
        let resumed = write(
            &report(
                TlsSecretsState::NotConfigured,
                WorkloadReport::NotCreated("x".into()),
            ),
            Some(&stored(&planned)),
            2,
        );
        assert_eq!(condition(&resumed, Type::Halted).status, "False");
    }

    #[test]
    fn the_metric_state_names_a_tls_wait_else_the_phase() {
        let waiting = report(
            TlsSecretsState::Missing(vec!["x".into()]),
            WorkloadReport::NotCreated("w".into()),
        );
        assert_eq!(
            metric_state(&waiting, DatabasePhase::Provisioning),
            "WaitingForTLSSecrets"
        );
        let ready = report(TlsSecretsState::Ready, WorkloadReport::Halted);
        assert_eq!(metric_state(&ready, DatabasePhase::Ready), "Ready");
    }

    #[test]
    fn a_blocked_deletion_is_announced_by_ready() {
        let blocked = Report {
            deletion_blocked: true,
            tls: Some(TlsSecretsState::NotConfigured),
            ..Report::new(WorkloadReport::Exists {
                what: "w".into(),
                ready: 1,
                replicas: 1,
                pods: Vec::new(),
                rolling: None,
            })
        };
        let planned = write(&blocked, None, 1);
        assert_eq!(
            condition(&planned, Type::Ready).reason.as_deref(),
            Some("DeletionBlocked")
        );
        assert!(announced(&planned).contains(&Reason::DeletionBlocked));
        assert!(Reason::DeletionBlocked.is_warning());
    }
}
