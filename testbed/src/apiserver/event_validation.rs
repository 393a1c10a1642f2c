//! kube-apiserver's validation of Events (`ValidateEventCreate` / `ValidateEventUpdate`), on
//! the stored core form, with its exact messages. Every write gets the legacy rules (which, for
//! an Event with an `eventTime`, require a qualified `reportingController`, a
//! `reportingInstance`, an `action` and a `reason` of at most 128 bytes and a note of at most
//! 1 KiB); a write through events.k8s.io/v1 also gets the strict rules.
use serde_json::Value;

use super::qualified_name::qualified_name_errors;
use super::status::{Cause, cause};

const REPORTING_INSTANCE_LIMIT: usize = 128;
const ACTION_LIMIT: usize = 128;
const REASON_LIMIT: usize = 128;
const NOTE_LIMIT: usize = 1024;

fn text<'a>(event: &'a Value, field: &str) -> &'a str {
    event.get(field).and_then(Value::as_str).unwrap_or_default()
}

fn set(event: &Value, field: &str) -> bool {
    event.get(field).is_some_and(|v| !v.is_null())
}

fn quoted(value: &str) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// The 422 causes for writing `event` (core v1 form). `events_api`: the request came through
/// events.k8s.io/v1 (field names as that API calls them, and the strict rules on create).
pub fn validate(event: &Value, old: Option<&Value>, events_api: bool) -> Vec<Cause> {
    let mut causes = legacy(event, events_api);
    if !events_api {
        return causes;
    }
    match old {
        None => causes.extend(strict_create(event)),
        Some(old) => causes.extend(immutable(event, old)),
    }
    causes
}

fn legacy(event: &Value, events_api: bool) -> Vec<Cause> {
    let mut causes = Vec::new();
    let namespace = event
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let involved_ns = event
        .pointer("/involvedObject/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mismatch = || {
        cause(
            "FieldValueInvalid",
            "involvedObject.namespace",
            format!(
                "Invalid value: {}: does not match event.namespace",
                quoted(involved_ns)
            ),
        )
    };
    if !set(event, "eventTime") {
        let fine = if involved_ns.is_empty() {
            namespace.is_empty() || namespace == "default"
        } else {
            namespace == involved_ns
        };
        if !fine {
            causes.push(mismatch());
        }
        return causes;
    }
    if involved_ns.is_empty() && namespace != "default" && namespace != "kube-system" {
        causes.push(mismatch());
    }
    let controller_field = if events_api {
        "reportingController"
    } else {
        "reportingComponent"
    };
    let controller = text(event, "reportingComponent");
    if controller.is_empty() {
        causes.push(cause(
            "FieldValueRequired",
            controller_field,
            "Required value",
        ));
    }
    for message in qualified_name_errors(controller) {
        causes.push(cause(
            "FieldValueInvalid",
            controller_field,
            format!("Invalid value: {}: {message}", quoted(controller)),
        ));
    }
    let limited = [
        (
            "reportingInstance",
            "reportingInstance",
            REPORTING_INSTANCE_LIMIT,
            true,
        ),
        ("action", "action", ACTION_LIMIT, true),
        ("reason", "reason", REASON_LIMIT, true),
        ("message", "message", NOTE_LIMIT, false),
    ];
    for (stored, field, limit, required) in limited {
        let value = text(event, stored);
        if required && value.is_empty() {
            causes.push(cause("FieldValueRequired", field, "Required value"));
        }
        if value.len() > limit {
            causes.push(cause(
                "FieldValueInvalid",
                field,
                format!("Invalid value: \"\": can have at most {limit} characters"),
            ));
        }
    }
    causes
}

fn strict_create(event: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    if !set(event, "eventTime") {
        causes.push(cause("FieldValueRequired", "eventTime", "Required value"));
    }
    let type_ = text(event, "type");
    if type_ != "Normal" && type_ != "Warning" {
        causes.push(cause(
            "FieldValueInvalid",
            "type",
            format!("Invalid value: \"\": has invalid value: {type_}"),
        ));
    }
    for (stored, field) in [
        ("firstTimestamp", "firstTimestamp"),
        ("lastTimestamp", "lastTimestamp"),
    ] {
        if set(event, stored) {
            causes.push(cause(
                "FieldValueInvalid",
                field,
                "Invalid value: \"\": needs to be unset",
            ));
        }
    }
    if event.get("count").and_then(Value::as_i64).unwrap_or(0) != 0 {
        causes.push(cause(
            "FieldValueInvalid",
            "count",
            "Invalid value: \"\": needs to be unset",
        ));
    }
    let source = event.get("source");
    let source_set = ["component", "host"].iter().any(|f| {
        source
            .and_then(|s| s.get(f))
            .and_then(Value::as_str)
            .is_some_and(|v| !v.is_empty())
    });
    if source_set {
        causes.push(cause(
            "FieldValueInvalid",
            "source",
            "Invalid value: \"\": needs to be unset",
        ));
    }
    causes
}

/// What an update through events.k8s.io/v1 may not change.
fn immutable(event: &Value, old: &Value) -> Vec<Cause> {
    [
        ("involvedObject", "involvedObject"),
        ("reason", "reason"),
        ("message", "message"),
        ("source", "source"),
        ("related", "related"),
        ("type", "type"),
        ("action", "action"),
        ("reportingComponent", "reportingController"),
        ("reportingInstance", "reportingInstance"),
    ]
    .iter()
    .filter(|(stored, _)| event.get(stored) != old.get(stored))
    .map(|(_, field)| cause("FieldValueInvalid", field, "field is immutable"))
    .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event() -> Value {
        json!({
            "metadata": {"name": "db.1", "namespace": "demo"},
            "involvedObject": {"kind": "MySQL", "name": "db", "namespace": "demo"},
            "eventTime": "2026-12-03T06:40:00.000000Z",
            "reportingComponent": "kubedb.com/provisioner",
            "reportingInstance": "pod-1",
            "action": "Provision", "reason": "Created", "type": "Normal", "message": "hi",
        })
    }

    fn fields(causes: &[Cause]) -> Vec<&str> {
        causes.iter().map(|c| c.field.as_str()).collect()
    }

    #[test]
    fn a_well_formed_event_passes() {
        assert!(validate(&event(), None, true).is_empty());
    }

    #[test]
    fn reporting_controller_must_be_a_qualified_name() {
        let mut e = event();
        e["reportingComponent"] = json!("KubeDB Provisioner");
        let causes = validate(&e, None, true);
        assert_eq!(fields(&causes), ["reportingController"]);
        assert!(causes[0].message.starts_with(
            "Invalid value: \"KubeDB Provisioner\": name part must consist of alphanumeric"
        ));
        e["reportingComponent"] = json!("a".repeat(64));
        assert!(
            validate(&e, None, true)[0]
                .message
                .ends_with("name part must be no more than 63 bytes")
        );
        e["reportingComponent"] = json!(format!("kubedb.com/{}", "a".repeat(63)));
        assert!(validate(&e, None, true).is_empty());
    }

    #[test]
    fn notes_are_limited_in_bytes() {
        let mut e = event();
        e["message"] = json!("x".repeat(1024));
        assert!(validate(&e, None, true).is_empty());
        e["message"] = json!("é".repeat(600));
        assert_eq!(fields(&validate(&e, None, true)), ["message"]);
    }

    #[test]
    fn required_fields_and_limits() {
        let mut e = event();
        for f in ["reportingInstance", "action", "reason"] {
            e.as_object_mut().unwrap().remove(f);
        }
        assert_eq!(
            fields(&validate(&e, None, true)),
            ["reportingInstance", "action", "reason"]
        );
        let mut e = event();
        e["action"] = json!("a".repeat(129));
        assert_eq!(fields(&validate(&e, None, true)), ["action"]);
    }

    #[test]
    fn strict_rules_only_through_events_k8s_io() {
        let mut e = event();
        e["type"] = json!("Info");
        e["count"] = json!(3);
        assert_eq!(fields(&validate(&e, None, true)), ["type", "count"]);
        assert!(validate(&e, None, false).is_empty());
    }

    #[test]
    fn events_without_event_time_follow_the_old_rules() {
        let mut e = event();
        e.as_object_mut().unwrap().remove("eventTime");
        e["reportingComponent"] = json!("Any Name Goes");
        assert!(validate(&e, None, false).is_empty());
        e["involvedObject"]["namespace"] = json!("other");
        assert_eq!(
            fields(&validate(&e, None, false)),
            ["involvedObject.namespace"]
        );
    }
}
