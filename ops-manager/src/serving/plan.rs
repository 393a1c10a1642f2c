//! What brings every pod of a database to present the current certificate, decided purely from
//! what each pod presents now and what was tried: reload the pods that can reload (at once: a
//! reload drops no connection), restart the others one at a time, and only while every other pod
//! is ready, highest ordinal first (ordinal 0 is where KubeDB's primaries start).
//!
//! The ops-manager cannot see a pod's files, only what its server presents. kubelet refreshes a
//! projected Secret within its sync period (a minute by default), so a reload that still shows
//! the old serial is repeated every [`RELOAD_RETRY`], up to [`MAX_RELOADS`] times, before the pod
//! is restarted. A server that refuses the reload statement is restarted at once; one that cannot
//! be reached or logged into is not (a restart would not fix the credentials): the condition says
//! why and the reload is retried with backoff.
use std::time::Duration;

use dbtls_contract::conditions::{ConditionType, Reason};
use dbtls_runtime::conditions::Desired;

/// Between a reload and the next look at a pod that still presents the old certificate.
pub const RELOAD_RETRY: Duration = Duration::from_secs(10);
/// Reloads per pod and serial before a restart: [`RELOAD_RETRY`] apart, two minutes in all.
pub const MAX_RELOADS: u32 = 12;
/// After a probe or an admin connection failed.
pub const CHECK_RETRY: Duration = Duration::from_secs(30);
/// A look now and then while waiting for a pod (its watch events come first).
pub const POD_RECHECK: Duration = Duration::from_secs(60);

/// What a pod presents, as far as the ops-manager can tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Served {
    Current,
    /// An older certificate, described (`serial 0A1B…`).
    Stale(String),
    /// Ready, but the probe failed (why).
    Unknown(String),
    /// Not ready (kubelet's words, or that it does not exist yet).
    NotReady(String),
}

/// Why the last reload of a pod did not bring the current certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReloadFailure {
    /// The server was not reached or refused the login: a restart would not help.
    Unreachable(String),
    /// The server refused the reload statement: only a restart will do.
    Refused(String),
}

/// One pod's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodState {
    pub name: String,
    pub ordinal: u32,
    pub served: Served,
    /// Reloads tried for the current serial.
    pub reloads: u32,
    pub failure: Option<ReloadFailure>,
}

/// How the database's engine takes a new certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Way {
    Reload,
    /// Restart only (the engine cannot reload, or the operator is told to restart).
    Restart,
}

/// What to do now.
#[derive(Clone, Debug, PartialEq)]
pub struct ServingPlan {
    /// `TLSServing`; None while the database has no pods.
    pub condition: Option<Desired>,
    /// Pods to reload now.
    pub reload: Vec<String>,
    /// The pod to evict now.
    pub evict: Option<String>,
    /// When to look again without a watch event.
    pub requeue: Option<Duration>,
}

fn needs_restart(pod: &PodState, way: Way) -> bool {
    matches!(pod.served, Served::Stale(_))
        && (way == Way::Restart
            || matches!(pod.failure, Some(ReloadFailure::Refused(_)))
            || (pod.reloads >= MAX_RELOADS && pod.failure.is_none()))
}

/// The plan for a database whose server Secret holds `serial`.
pub fn plan(serial: &str, pods: &[PodState], way: Way) -> ServingPlan {
    if pods.is_empty() {
        return ServingPlan {
            condition: None,
            reload: Vec::new(),
            evict: None,
            requeue: None,
        };
    }
    let current = pods.iter().filter(|p| p.served == Served::Current).count();
    if current == pods.len() {
        return ServingPlan {
            condition: Some(Desired::ok(
                ConditionType::TlsServing,
                Reason::CurrentCertificateServed,
                format!(
                    "{} serve{} the current certificate (serial {serial})",
                    count(pods.len()),
                    if pods.len() == 1 { "s" } else { "" }
                ),
            )),
            reload: Vec::new(),
            evict: None,
            requeue: None,
        };
    }
    let not_ready = pods.iter().any(|p| matches!(p.served, Served::NotReady(_)));
    let restart: Vec<&PodState> = pods.iter().filter(|p| needs_restart(p, way)).collect();
    let reload: Vec<String> = pods
        .iter()
        .filter(|p| matches!(p.served, Served::Stale(_)) && !needs_restart(p, way))
        .map(|p| p.name.clone())
        .collect();
    // One pod down at a time: restart only while every pod is ready.
    let evict = if not_ready {
        None
    } else {
        restart
            .iter()
            .max_by_key(|p| p.ordinal)
            .map(|p| p.name.clone())
    };
    let troubled = pods.iter().any(|p| {
        matches!(p.served, Served::Unknown(_))
            || matches!(p.failure, Some(ReloadFailure::Unreachable(_)))
    });
    let reason = if !restart.is_empty() {
        Reason::RestartingForCertificate
    } else if troubled {
        Reason::ServingCheckFailed
    } else if !reload.is_empty() {
        Reason::ReloadingCertificate
    } else {
        Reason::PodsNotReady
    };
    let requeue = if troubled {
        CHECK_RETRY
    } else if !reload.is_empty() {
        RELOAD_RETRY
    } else {
        POD_RECHECK
    };
    let details: Vec<String> = pods
        .iter()
        .filter(|p| p.served != Served::Current)
        .map(|p| describe(p, way))
        .collect();
    let message = format!(
        "{current} of {} serve{} the current certificate (serial {serial}); {}",
        count(pods.len()),
        if pods.len() == 1 { "s" } else { "" },
        details.join("; ")
    );
    ServingPlan {
        condition: Some(Desired::not(ConditionType::TlsServing, reason, message)),
        reload,
        evict,
        requeue: Some(requeue),
    }
}

/// What of `condition` to report, given whether the status already shows `TLSServing`. Until
/// it does, pods that are only starting are the provisioner's to report (`WorkloadReady`):
/// `TLSServing` first appears once there is something to say about certificates, which saves
/// every new database a status write.
pub fn reported(condition: Option<Desired>, shown_before: bool) -> Option<Desired> {
    condition.filter(|c| shown_before || c.reason != Reason::PodsNotReady)
}

fn count(pods: usize) -> String {
    if pods == 1 {
        "1 pod".to_string()
    } else {
        format!("{pods} pods")
    }
}

fn describe(pod: &PodState, way: Way) -> String {
    let name = &pod.name;
    match (&pod.served, &pod.failure) {
        (Served::NotReady(why), _) => format!("pod {name} is not ready: {why}"),
        (Served::Unknown(why), _) => format!("pod {name}: cannot tell what it presents: {why}"),
        (Served::Current, _) => format!("pod {name} serves it"),
        (Served::Stale(old), Some(ReloadFailure::Unreachable(why))) => {
            format!("pod {name} presents {old}; reload not possible: {why}")
        }
        (Served::Stale(old), Some(ReloadFailure::Refused(why))) => {
            format!("pod {name} presents {old}; reload refused ({why}): restarting it")
        }
        (Served::Stale(old), None) if needs_restart(pod, way) => {
            if way == Way::Restart {
                format!("pod {name} presents {old}: restarting it")
            } else {
                format!(
                    "pod {name} presents {old} after {} reloads: restarting it",
                    pod.reloads
                )
            }
        }
        (Served::Stale(old), None) if pod.reloads == 0 => {
            format!("pod {name} presents {old}: reloading")
        }
        (Served::Stale(old), None) => format!(
            "pod {name} presents {old}: reloading (attempt {})",
            pod.reloads + 1
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn pod(ordinal: u32, served: Served) -> PodState {
        PodState {
            name: format!("db-{ordinal}"),
            ordinal,
            served,
            reloads: 0,
            failure: None,
        }
    }

    fn stale(ordinal: u32) -> PodState {
        pod(ordinal, Served::Stale("serial OLD".into()))
    }

    fn reason(plan: &ServingPlan) -> Reason {
        plan.condition.as_ref().unwrap().reason
    }

    /// One table per decision: (case, pods, way) → (reload, evict, reason).
    #[test]
    fn what_to_do_for_each_mix_of_pods() {
        let tried = |mut p: PodState, reloads: u32, failure: Option<ReloadFailure>| {
            p.reloads = reloads;
            p.failure = failure;
            p
        };
        /// (case, pods, way) → (pods reloaded, pod evicted, condition reason).
        type Case<'a> = (
            &'a str,
            Vec<PodState>,
            Way,
            Vec<&'a str>,
            Option<&'a str>,
            Reason,
        );
        let cases: Vec<Case> = vec![
            (
                "all current",
                vec![pod(0, Served::Current), pod(1, Served::Current)],
                Way::Reload,
                vec![],
                None,
                Reason::CurrentCertificateServed,
            ),
            (
                "stale pods reload together",
                vec![stale(0), pod(1, Served::Current), stale(2)],
                Way::Reload,
                vec!["db-0", "db-2"],
                None,
                Reason::ReloadingCertificate,
            ),
            (
                "no reload: the highest ordinal restarts first",
                vec![stale(0), stale(1), stale(2)],
                Way::Restart,
                vec![],
                Some("db-2"),
                Reason::RestartingForCertificate,
            ),
            (
                "no restart while a pod is not ready",
                vec![
                    stale(0),
                    stale(1),
                    pod(2, Served::NotReady("starting".into())),
                ],
                Way::Restart,
                vec![],
                None,
                Reason::RestartingForCertificate,
            ),
            (
                "a refused reload restarts that pod; the others keep reloading",
                vec![
                    tried(stale(0), 1, None),
                    tried(stale(1), 1, Some(ReloadFailure::Refused("bad key".into()))),
                ],
                Way::Reload,
                vec!["db-0"],
                Some("db-1"),
                Reason::RestartingForCertificate,
            ),
            (
                "reloads used up without the new serial: restart",
                vec![tried(stale(0), MAX_RELOADS, None)],
                Way::Reload,
                vec![],
                Some("db-0"),
                Reason::RestartingForCertificate,
            ),
            (
                "an unreachable admin is retried, never restarted",
                vec![tried(
                    stale(0),
                    MAX_RELOADS + 3,
                    Some(ReloadFailure::Unreachable("access denied".into())),
                )],
                Way::Reload,
                vec!["db-0"],
                None,
                Reason::ServingCheckFailed,
            ),
            (
                "a failed probe is reported and nothing is done to that pod",
                vec![
                    pod(0, Served::Unknown("connection refused".into())),
                    pod(1, Served::Current),
                ],
                Way::Reload,
                vec![],
                None,
                Reason::ServingCheckFailed,
            ),
            (
                "a pod not ready and nothing stale: wait",
                vec![
                    pod(0, Served::NotReady("CrashLoopBackOff".into())),
                    pod(1, Served::Current),
                ],
                Way::Reload,
                vec![],
                None,
                Reason::PodsNotReady,
            ),
        ];
        for (case, pods, way, reload, evict, expected) in cases {
            let plan = plan("NEW", &pods, way);
            assert_eq!(plan.reload, reload, "{case}");
            assert_eq!(plan.evict.as_deref(), evict, "{case}");
            assert_eq!(reason(&plan), expected, "{case}");
        }
    }

    #[test]
    fn the_condition_names_each_pod_and_what_it_presents() {
        let mut refused = stale(1);
        refused.failure = Some(ReloadFailure::Refused(
            "ERROR 1105: Failed to refresh SSL".into(),
        ));
        let pods = [
            pod(0, Served::Current),
            refused,
            pod(2, Served::NotReady("CrashLoopBackOff".into())),
        ];
        let plan = plan("AB12", &pods, Way::Reload);
        let condition = plan.condition.unwrap();
        assert!(!condition.is_true());
        assert_eq!(
            condition.message,
            "1 of 3 pods serve the current certificate (serial AB12); pod db-1 presents serial OLD; reload refused (ERROR 1105: Failed to refresh SSL): restarting it; pod db-2 is not ready: CrashLoopBackOff"
        );
        let all = plan_all_current();
        assert!(all.condition.as_ref().unwrap().is_true());
        assert_eq!(
            all.condition.unwrap().message,
            "1 pod serves the current certificate (serial AB12)"
        );
        assert_eq!(all.requeue, None);
    }

    fn plan_all_current() -> ServingPlan {
        plan("AB12", &[pod(0, Served::Current)], Way::Reload)
    }

    #[test]
    fn starting_pods_are_reported_once_the_condition_is_shown() {
        let starting = plan(
            "N",
            &[pod(0, Served::NotReady("ContainersNotReady".into()))],
            Way::Reload,
        );
        let stale = plan("N", &[stale(0)], Way::Reload);
        let cases = [
            ("starting pods, never shown", &starting, false, false),
            ("starting pods during a rollout", &starting, true, true),
            ("a stale pod, never shown", &stale, false, true),
            ("all current, never shown", &plan_all_current(), false, true),
        ];
        for (case, plan, shown_before, expected) in cases {
            assert_eq!(
                reported(plan.condition.clone(), shown_before).is_some(),
                expected,
                "{case}"
            );
        }
        // The look again stays: the pods' watch events may be the only news otherwise.
        assert_eq!(starting.requeue, Some(POD_RECHECK));
    }

    #[test]
    fn when_to_look_again() {
        assert_eq!(
            plan("N", &[stale(0)], Way::Reload).requeue,
            Some(RELOAD_RETRY)
        );
        let unknown = [pod(0, Served::Unknown("timeout".into()))];
        assert_eq!(plan("N", &unknown, Way::Reload).requeue, Some(CHECK_RETRY));
        assert_eq!(
            plan("N", &[stale(0)], Way::Restart).requeue,
            Some(POD_RECHECK)
        );
        let none = plan("N", &[], Way::Reload);
        assert_eq!(none.condition, None);
        assert_eq!(none.requeue, None);
    }
}
