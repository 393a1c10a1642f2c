//! Building status conditions so that an unchanged state produces an unchanged object (no write,
//! no watch event): `lastTransitionTime` moves only when `status` changes.
use dbtls_contract::api::Condition;

/// A desired condition, before its transition time is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    pub type_: &'static str,
    pub status: &'static str,
    pub reason: &'static str,
    pub message: String,
}

impl Desired {
    pub fn new(
        type_: &'static str,
        status: &'static str,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason,
            message: message.into(),
        }
    }
}

/// The full condition for `desired`, keeping the existing transition time when the status is unchanged.
pub fn resolve(
    existing: &[Condition],
    desired: &Desired,
    generation: Option<i64>,
    now: &str,
) -> Condition {
    let previous = existing.iter().find(|c| c.type_ == desired.type_);
    let last_transition_time = match previous {
        Some(p) if p.status == desired.status => p.last_transition_time.clone(),
        _ => now.to_string(),
    };
    Condition {
        type_: desired.type_.to_string(),
        status: desired.status.to_string(),
        observed_generation: generation,
        severity: None,
        last_transition_time,
        reason: Some(desired.reason.to_string()),
        message: Some(desired.message.clone()),
    }
}

/// Whether `existing` already holds exactly `desired` (so no status write is needed).
pub fn up_to_date(existing: &[Condition], desired: &[Condition]) -> bool {
    desired.iter().all(|d| existing.iter().any(|e| e == d))
}

/// The current time in the RFC 3339 form Kubernetes uses (seconds, `Z`).
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_only_when_status_changes() {
        let first = resolve(
            &[],
            &Desired::new("Ready", "False", "Waiting", "x"),
            Some(1),
            "t1",
        );
        assert_eq!(first.last_transition_time, "t1");
        let same = resolve(
            std::slice::from_ref(&first),
            &Desired::new("Ready", "False", "Waiting", "y"),
            Some(1),
            "t2",
        );
        assert_eq!(same.last_transition_time, "t1");
        assert_eq!(same.message.as_deref(), Some("y"));
        let flipped = resolve(
            std::slice::from_ref(&same),
            &Desired::new("Ready", "True", "Done", "z"),
            Some(1),
            "t3",
        );
        assert_eq!(flipped.last_transition_time, "t3");
    }

    #[test]
    fn up_to_date_compares_whole_conditions() {
        let a = resolve(
            &[],
            &Desired::new("Ready", "True", "Done", "ok"),
            Some(2),
            "t1",
        );
        assert!(up_to_date(
            std::slice::from_ref(&a),
            std::slice::from_ref(&a)
        ));
        let newer_generation = resolve(
            std::slice::from_ref(&a),
            &Desired::new("Ready", "True", "Done", "ok"),
            Some(3),
            "t2",
        );
        assert!(!up_to_date(&[a], &[newer_generation]));
    }
}
