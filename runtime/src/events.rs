//! Events on a database from an operator's own reporter, shaped so that kube-apiserver's
//! events.k8s.io/v1 validation accepts them: a reason and action of at most 128 bytes and a
//! note of at most 1 KiB (longer ones are cut at a character boundary, with a marker). A failed
//! Event is logged, never a reason to fail the reconcile: the status says the same.
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

/// events.k8s.io/v1 limits, in bytes (kube-apiserver `ValidateEventCreate`).
pub const NOTE_LIMIT: usize = 1024;
pub const REASON_LIMIT: usize = 128;
pub const ACTION_LIMIT: usize = 128;

const CUT_MARKER: &str = " …";

/// A recorder reporting as `controller` (a qualified name, e.g. `kubedb.com/provisioner`),
/// with the pod's name as instance when `POD_NAME` is set (kube-rs falls back to `controller`).
pub fn recorder(client: kube::Client, controller: &str) -> Recorder {
    let reporter = Reporter {
        controller: controller.to_string(),
        instance: std::env::var("POD_NAME").ok().filter(|p| !p.is_empty()),
    };
    Recorder::new(client, reporter)
}

/// `text` cut to at most `limit` bytes at a character boundary; a cut text ends in " …".
pub fn fit(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_string();
    }
    let mut end = limit.saturating_sub(CUT_MARKER.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{CUT_MARKER}", &text[..end])
}

/// Publishes one Event about `regarding`.
pub async fn publish(
    recorder: &Recorder,
    regarding: &ObjectReference,
    warning: bool,
    reason: &str,
    action: &str,
    note: &str,
) {
    publish_related(recorder, regarding, None, warning, reason, action, note).await;
}

/// Publishes one Event about `regarding` that concerns `related` too (a pod of the database):
/// kube's recorder counts repeats of the same reason as one Event series per related object, so
/// each pod keeps its own.
pub async fn publish_related(
    recorder: &Recorder,
    regarding: &ObjectReference,
    related: Option<ObjectReference>,
    warning: bool,
    reason: &str,
    action: &str,
    note: &str,
) {
    let event = Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: fit(reason, REASON_LIMIT),
        note: Some(fit(note, NOTE_LIMIT)),
        action: fit(action, ACTION_LIMIT),
        secondary: related,
    };
    if let Err(error) = recorder.publish(&event, regarding).await {
        tracing::warn!(%error, reason, object = ?regarding.name, "could not publish event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_texts_are_kept_whole() {
        assert_eq!(fit("ready", NOTE_LIMIT), "ready");
        let exact = "x".repeat(NOTE_LIMIT);
        assert_eq!(fit(&exact, NOTE_LIMIT), exact);
    }

    #[test]
    fn long_texts_are_cut_in_bytes_at_a_character_boundary() {
        // 'é' is two bytes: 600 of them are 1,200 bytes, which kube-apiserver refuses.
        let long = "é".repeat(600);
        let cut = fit(&long, NOTE_LIMIT);
        assert!(cut.len() <= NOTE_LIMIT, "{} bytes", cut.len());
        assert!(cut.ends_with(CUT_MARKER));
        assert!(cut.len() > NOTE_LIMIT - 8, "cut no more than needed");
        let ascii = fit(&"y".repeat(5000), REASON_LIMIT);
        assert_eq!(ascii.len(), REASON_LIMIT);
    }
}
