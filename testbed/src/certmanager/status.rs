//! cert-manager conditions: `lastTransitionTime` moves only when the status changes, so an
//! unchanged state produces an unchanged object (and no write).
use dbtls_contract::certmanager::CertManagerCondition;

/// RFC 3339 with whole seconds, as cert-manager's metav1.Time.
pub fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The condition `type_`, keeping the existing transition time when the status is unchanged.
pub fn condition(
    existing: &[CertManagerCondition],
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) -> CertManagerCondition {
    let status = if status { "True" } else { "False" }.to_string();
    let previous = existing.iter().find(|c| c.type_ == type_);
    let last_transition_time = match previous {
        Some(p) if p.status == status => p.last_transition_time.clone(),
        _ => Some(rfc3339(chrono::Utc::now())),
    };
    CertManagerCondition {
        type_: type_.to_string(),
        status,
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        last_transition_time,
        observed_generation: generation,
    }
}
