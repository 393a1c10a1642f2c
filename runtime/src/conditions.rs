//! Building status conditions so that an unchanged state produces an unchanged object (no write,
//! no watch event): `lastTransitionTime` moves only when `status` changes.
use dbtls_contract::api::Condition;
use dbtls_contract::conditions::{ConditionStatus, ConditionType, Reason};

/// A condition an operator wants, before its transition time is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    pub type_: ConditionType,
    pub status: ConditionStatus,
    pub reason: Reason,
    pub message: String,
    /// Whether a transition of this condition gets an Event (a condition that only repeats
    /// another one does not).
    pub announce: bool,
}

impl Desired {
    pub fn new(
        type_: ConditionType,
        status: ConditionStatus,
        reason: Reason,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason,
            message: message.into(),
            announce: true,
        }
    }

    pub fn ok(type_: ConditionType, reason: Reason, message: impl Into<String>) -> Self {
        Self::new(type_, ConditionStatus::True, reason, message)
    }

    pub fn not(type_: ConditionType, reason: Reason, message: impl Into<String>) -> Self {
        Self::new(type_, ConditionStatus::False, reason, message)
    }

    /// The same condition, without an Event on its transitions.
    pub fn quiet(mut self) -> Self {
        self.announce = false;
        self
    }

    pub fn is_true(&self) -> bool {
        self.status == ConditionStatus::True
    }
}

/// The full condition for `desired`, keeping the existing transition time when the status is unchanged.
pub fn resolve(
    existing: &[Condition],
    desired: &Desired,
    generation: Option<i64>,
    now: &str,
) -> Condition {
    let previous = find(existing, desired.type_);
    let last_transition_time = match previous {
        Some(p) if p.status == desired.status.as_str() => p.last_transition_time.clone(),
        _ => now.to_string(),
    };
    Condition {
        type_: desired.type_.as_str().to_string(),
        status: desired.status.as_str().to_string(),
        observed_generation: generation,
        severity: None,
        last_transition_time,
        reason: Some(desired.reason.as_str().to_string()),
        message: Some(desired.message.clone()),
    }
}

/// The condition of `type_` in `conditions`.
pub fn find(conditions: &[Condition], type_: ConditionType) -> Option<&Condition> {
    conditions.iter().find(|c| c.type_ == type_.as_str())
}

/// Whether `conditions` has `type_` with status True.
pub fn is_true(conditions: &[Condition], type_: ConditionType) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == ConditionStatus::True.as_str())
}

/// Whether `existing` already holds exactly `desired` (so no status write is needed).
pub fn up_to_date(existing: &[Condition], desired: &[Condition]) -> bool {
    desired.iter().all(|d| existing.iter().any(|e| e == d))
}

/// Whether the stored condition already has `desired`'s status and reason (no transition).
pub fn same_state(existing: &[Condition], desired: &Desired) -> bool {
    find(existing, desired.type_).is_some_and(|c| {
        c.status == desired.status.as_str() && c.reason.as_deref() == Some(desired.reason.as_str())
    })
}

/// The current time in the RFC 3339 form Kubernetes uses (seconds, `Z`).
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const READY: ConditionType = ConditionType::Ready;

    #[test]
    fn transition_time_moves_only_when_status_changes() {
        let waiting = Desired::not(READY, Reason::ReplicasNotReady, "x");
        let first = resolve(&[], &waiting, Some(1), "t1");
        assert_eq!(first.last_transition_time, "t1");
        let same = resolve(
            std::slice::from_ref(&first),
            &Desired::not(READY, Reason::ReplicasNotReady, "y"),
            Some(1),
            "t2",
        );
        assert_eq!(same.last_transition_time, "t1");
        assert_eq!(same.message.as_deref(), Some("y"));
        let flipped = resolve(
            std::slice::from_ref(&same),
            &Desired::ok(READY, Reason::AllReplicasReady, "z"),
            Some(1),
            "t3",
        );
        assert_eq!(flipped.last_transition_time, "t3");
        assert!(is_true(std::slice::from_ref(&flipped), READY));
    }

    #[test]
    fn up_to_date_compares_whole_conditions() {
        let done = Desired::ok(READY, Reason::AllReplicasReady, "ok");
        let a = resolve(&[], &done, Some(2), "t1");
        assert!(up_to_date(
            std::slice::from_ref(&a),
            std::slice::from_ref(&a)
        ));
        let newer_generation = resolve(std::slice::from_ref(&a), &done, Some(3), "t2");
        assert!(!up_to_date(std::slice::from_ref(&a), &[newer_generation]));
        assert!(same_state(&[a], &done));
    }
}
