//! Runtime-switchable fault injection, so tests can check how the operators ride out a flaky or
//! slow API server. Everything is off by default.
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::Rng;

use super::request_log::Verb;

#[derive(Debug, Default)]
struct FaultState {
    /// Per-verb error rates; `None` key = all verbs.
    error_rates: HashMap<Option<Verb>, f64>,
    conflict_rate: f64,
    latency: Duration,
    drop_watches_every: Option<Duration>,
    /// Bumped to ask the server to forget all watch history now.
    compact_requests: u64,
    /// What was injected so far (kept across `reset`).
    counts: FaultCounts,
}

/// How many faults the server has injected, for reports: 5xx and conflicts are also visible in
/// the request log, but dropped watches and in-stream 410s are not (the watch answered 200).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Requests answered 500/503 by the injector.
    pub errors: u64,
    /// Writes answered 409 by the injector.
    pub conflicts: u64,
    /// Watch streams closed by `drop_watches_every`.
    pub watches_dropped: u64,
    /// Watches answered with a 410 Gone ERROR event (resourceVersion older than history).
    pub watches_expired: u64,
}

/// Shared handle; clones control the same server.
#[derive(Debug, Clone, Default)]
pub struct FaultInjector {
    state: Arc<Mutex<FaultState>>,
}

/// What to do to a request before serving it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Injected {
    None,
    /// Answer with this status code (500 or 503).
    Error(u16),
    /// Answer a write with 409 Conflict.
    Conflict,
}

impl FaultInjector {
    fn lock(&self) -> MutexGuard<'_, FaultState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fail this fraction of requests with `verb` (or all verbs for `None`) with 500/503.
    pub fn set_error_rate(&self, verb: Option<Verb>, rate: f64) {
        self.lock().error_rates.insert(verb, rate.clamp(0.0, 1.0));
    }

    /// Fail this fraction of writes with 409 Conflict.
    pub fn set_conflict_rate(&self, rate: f64) {
        self.lock().conflict_rate = rate.clamp(0.0, 1.0);
    }

    /// Close every open watch stream this often (`None` = never).
    pub fn drop_watches_every(&self, every: Option<Duration>) {
        self.lock().drop_watches_every = every;
    }

    /// Delay every request by this much.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// Forget all watch history now: any watch or continue token from an older
    /// resourceVersion gets 410 Gone.
    pub fn compact_now(&self) {
        self.lock().compact_requests += 1;
    }

    /// Switch everything off.
    pub fn reset(&self) {
        let mut s = self.lock();
        *s = FaultState {
            compact_requests: s.compact_requests,
            counts: s.counts,
            ..FaultState::default()
        };
    }

    /// What has been injected since the server started.
    pub fn counts(&self) -> FaultCounts {
        self.lock().counts
    }

    pub(crate) fn note_watch_dropped(&self) {
        self.lock().counts.watches_dropped += 1;
    }

    pub(crate) fn note_watch_expired(&self) {
        self.lock().counts.watches_expired += 1;
    }

    pub(crate) fn latency(&self) -> Duration {
        self.lock().latency
    }

    pub(crate) fn watch_drop_interval(&self) -> Option<Duration> {
        self.lock().drop_watches_every
    }

    pub(crate) fn compact_requests(&self) -> u64 {
        self.lock().compact_requests
    }

    /// Roll the dice for one request.
    pub(crate) fn decide(&self, verb: Verb) -> Injected {
        let mut s = self.lock();
        let rate = s
            .error_rates
            .get(&Some(verb))
            .or_else(|| s.error_rates.get(&None))
            .copied()
            .unwrap_or(0.0);
        let mut rng = rand::rng();
        if rate > 0.0 && rng.random_bool(rate) {
            s.counts.errors += 1;
            return Injected::Error(if rng.random_bool(0.5) { 500 } else { 503 });
        }
        if verb.is_write() && s.conflict_rate > 0.0 && rng.random_bool(s.conflict_rate) {
            s.counts.conflicts += 1;
            return Injected::Conflict;
        }
        Injected::None
    }
}
