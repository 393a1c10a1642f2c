//! Coalescing of status writes that only move a progress message ("waiting for TLS Secrets a, b"
//! -> "waiting for b") without changing any condition's status or reason. When cert-manager
//! issues a database's Certificates one after another, each issuance would otherwise cost both
//! operators a status write; the benchmark (`docs/benchmarks.md`) measured that as the excess
//! over the design's 1.25x write budget. A message-only change within `window` of this
//! process's previous status write for the same database is held back and written at the end
//! of the window (the caller requeues) unless a real transition has superseded it by then.
//! Transitions (status, reason, observedGeneration, phase) are always written at once.
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dbtls_contract::api::Condition;

use crate::key::DbKey;

/// The default window: longer than a busy cert-manager takes to issue one database's set of
/// Certificates (2 s was not, with 100 databases created at once: `docs/benchmarks.md`), short
/// enough that a stuck wait shows its exact message within seconds.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(10);

/// Above this many remembered databases, entries older than the window are dropped, so memory
/// stays proportional to the databases written recently.
const PRUNE_ABOVE: usize = 1024;

/// Whether `desired` differs from `existing` only in messages: every desired condition has an
/// existing one with the same type, status, reason and observedGeneration.
pub fn only_messages_changed(existing: &[Condition], desired: &[Condition]) -> bool {
    desired.iter().all(|d| {
        existing.iter().any(|e| {
            e.type_ == d.type_
                && e.status == d.status
                && e.reason == d.reason
                && e.observed_generation == d.observed_generation
        })
    })
}

/// Remembers when each database's status was last written by this process.
#[derive(Debug)]
pub struct StatusCoalescer {
    window: Duration,
    last_write: Mutex<HashMap<DbKey, Instant>>,
}

impl Default for StatusCoalescer {
    fn default() -> Self {
        Self::new(DEFAULT_WINDOW)
    }
}

impl StatusCoalescer {
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            last_write: Mutex::default(),
        }
    }

    /// For a write that only changes messages: `Some(delay)` to hold it back and look again
    /// after `delay`, or None to write now (no recent write for `key`).
    pub fn hold(&self, key: &DbKey) -> Option<Duration> {
        let last = self.last_write.lock().ok()?.get(key).copied()?;
        let since = last.elapsed();
        (since < self.window).then(|| self.window - since)
    }

    /// Records a status write for `key`.
    pub fn wrote(&self, key: &DbKey) {
        let Ok(mut last) = self.last_write.lock() else {
            return;
        };
        if last.len() > PRUNE_ABOVE {
            let window = self.window;
            last.retain(|_, at| at.elapsed() < window);
        }
        last.insert(key.clone(), Instant::now());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn condition(status: &str, reason: &str, message: &str, generation: i64) -> Condition {
        Condition {
            type_: "TLSSecretsReady".into(),
            status: status.into(),
            observed_generation: Some(generation),
            severity: None,
            last_transition_time: "t".into(),
            reason: Some(reason.into()),
            message: Some(message.into()),
        }
    }

    #[test]
    fn message_only_changes_are_told_apart_from_transitions() {
        let waiting = condition("False", "Waiting", "waiting for a, b", 1);
        let progress = condition("False", "Waiting", "waiting for b", 1);
        let ready = condition("True", "Ready", "all there", 1);
        let new_generation = condition("False", "Waiting", "waiting for a, b", 2);
        let old = std::slice::from_ref(&waiting);
        assert!(only_messages_changed(old, std::slice::from_ref(&progress)));
        assert!(!only_messages_changed(old, std::slice::from_ref(&ready)));
        assert!(!only_messages_changed(
            old,
            std::slice::from_ref(&new_generation)
        ));
        assert!(!only_messages_changed(&[], std::slice::from_ref(&progress)));
    }

    fn key(name: &str) -> DbKey {
        kube::runtime::reflector::ObjectRef::<k8s_openapi::api::core::v1::ConfigMap>::new(name)
            .within("ns")
            .erase()
    }

    #[test]
    fn holds_only_within_the_window_after_a_write() {
        let coalescer = StatusCoalescer::new(Duration::from_secs(60));
        assert_eq!(coalescer.hold(&key("db")), None, "no write yet: write now");
        coalescer.wrote(&key("db"));
        let delay = coalescer
            .hold(&key("db"))
            .expect("held right after a write");
        assert!(delay <= Duration::from_secs(60) && delay > Duration::from_secs(50));
        assert_eq!(coalescer.hold(&key("other")), None);
        let expired = StatusCoalescer::new(Duration::ZERO);
        expired.wrote(&key("db"));
        assert_eq!(expired.hold(&key("db")), None);
    }
}
