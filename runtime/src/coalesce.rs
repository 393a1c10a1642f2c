//! Coalescing of status writes that only move progress ("waiting for TLS Secrets a, b" ->
//! "waiting for b") without changing any condition's status. Transitions (status,
//! observedGeneration, phase, a reason that is not the next step of the same wait) are always
//! written at once; progress waits for a timer, per database:
//! - **Issuance waits** ([`Reason::is_issuance_wait`]): their messages move with every
//!   Certificate cert-manager issues, so how many writes they would cost depends on how fast
//!   cert-manager issues (`docs/benchmarks.md`). Such progress is held until `first` has passed
//!   since this process's previous status write for the database, and each further progress
//!   write in a row doubles that interval (up to `longest`): a wait costs a handful of writes
//!   however long it lasts, and still shows its exact message within `longest`.
//! - **Other message-only changes** (a rollout's pods, a reload): held for a fixed `window`
//!   after the previous write.
//!
//! A step of a wait gets its Event when it happens, even while its write is held.
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::sweep::Sweep;

use dbtls_contract::api::Condition;
use dbtls_contract::conditions::{ConditionStatus, ConditionType, Reason};

use crate::key::DbKey;

/// The first interval of an issuance wait's progress: longer than cert-manager takes to issue
/// one database's Certificates when it keeps up.
pub const FIRST_INTERVAL: Duration = Duration::from_secs(30);

/// The longest interval of an issuance wait's progress: the oldest its message can be.
pub const LONGEST_INTERVAL: Duration = Duration::from_secs(300);

/// The window of other message-only changes.
pub const MESSAGE_WINDOW: Duration = Duration::from_secs(10);

/// Above this many remembered databases, entries older than the longest interval are dropped,
/// so memory stays proportional to the databases written recently (at most once a minute:
/// [`crate::sweep`]).
const PRUNE_ABOVE: usize = 1024;

/// What kind of progress a status change is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Every changed condition waits for issuance, and moved on in it (its message, or the
    /// next step of the wait, while no other condition is False for another reason).
    IssuanceWait,
    /// Only messages changed.
    Message,
}

/// The progress `desired` makes over `existing`, or None for a transition: every desired
/// condition must have an existing one with the same type, status and observedGeneration.
pub fn progress(existing: &[Condition], desired: &[Condition]) -> Option<Progress> {
    let issuance_wait = |c: &Condition| {
        c.status == ConditionStatus::False.as_str()
            && c.reason
                .as_deref()
                .and_then(Reason::parse)
                .is_some_and(Reason::is_issuance_wait)
    };
    let only_waits = desired
        .iter()
        .filter(|d| d.status == ConditionStatus::False.as_str())
        .all(issuance_wait);
    let mut all_waits = true;
    for d in desired {
        let e = existing.iter().find(|e| e.type_ == d.type_)?;
        if e.status != d.status || e.observed_generation != d.observed_generation {
            return None;
        }
        let changed = e.reason != d.reason || e.message != d.message;
        if e.reason != d.reason && !(only_waits && issuance_wait(e) && issuance_wait(d)) {
            return None;
        }
        all_waits &= !changed || (issuance_wait(e) && issuance_wait(d));
    }
    Some(if all_waits {
        Progress::IssuanceWait
    } else {
        Progress::Message
    })
}

/// The last status write for one database.
#[derive(Clone, Debug)]
struct LastWrite {
    at: Instant,
    /// Issuance-wait progress writes since the last transition.
    progress_in_a_row: u32,
    /// Steps announced (an Event each) while their write was held: not announced again when
    /// the write happens.
    announced: Vec<(ConditionType, Reason)>,
    /// What was written and over which cached version (`crate::status::fingerprint`).
    fingerprint: u64,
}

/// Remembers when each database's status was last written by this process.
#[derive(Debug)]
pub struct StatusCoalescer {
    first: Duration,
    longest: Duration,
    window: Duration,
    last_write: Mutex<HashMap<DbKey, LastWrite>>,
    sweep: Mutex<Sweep>,
}

impl Default for StatusCoalescer {
    fn default() -> Self {
        Self::new(FIRST_INTERVAL, LONGEST_INTERVAL, MESSAGE_WINDOW)
    }
}

/// How long issuance-wait progress waits after the previous write, when `in_a_row` such writes
/// followed the last transition.
pub fn progress_interval(first: Duration, longest: Duration, in_a_row: u32) -> Duration {
    first
        .checked_mul(1u32.checked_shl(in_a_row).unwrap_or(u32::MAX))
        .unwrap_or(longest)
        .min(longest)
}

impl StatusCoalescer {
    pub fn new(first: Duration, longest: Duration, window: Duration) -> Self {
        Self {
            first,
            longest: longest.max(first).max(window),
            window,
            last_write: Mutex::default(),
            sweep: Mutex::default(),
        }
    }

    /// For a change that is `progress`: `Some(delay)` to hold it back and look again after
    /// `delay`, or None to write now (its interval has passed, or no write is known).
    pub fn hold(&self, key: &DbKey, progress: Progress) -> Option<Duration> {
        let last = self.last_write.lock().ok()?.get(key).cloned()?;
        let interval = match progress {
            Progress::IssuanceWait => {
                progress_interval(self.first, self.longest, last.progress_in_a_row)
            }
            Progress::Message => self.window,
        };
        let since = last.at.elapsed();
        (since < interval).then(|| interval - since)
    }

    /// Of the `steps` of a held write, those not announced yet, which are now noted as
    /// announced: a step gets its Event when it happens, even while its write waits.
    pub fn announce_held(
        &self,
        key: &DbKey,
        steps: &[(ConditionType, Reason)],
    ) -> Vec<(ConditionType, Reason)> {
        let Ok(mut last) = self.last_write.lock() else {
            return steps.to_vec();
        };
        let Some(entry) = last.get_mut(key) else {
            return steps.to_vec();
        };
        let fresh: Vec<_> = steps
            .iter()
            .filter(|s| !entry.announced.contains(s))
            .copied()
            .collect();
        entry.announced.extend(fresh.iter().copied());
        fresh
    }

    /// Whether this process's last status write for `key` was `fingerprint`: the same
    /// conditions, planned over the same cached version. The watch cache has not caught up
    /// with that write yet (another object's event came first); writing it again would change
    /// nothing but cost a request.
    pub fn already_wrote(&self, key: &DbKey, fingerprint: u64) -> bool {
        self.last_write
            .lock()
            .is_ok_and(|last| last.get(key).is_some_and(|w| w.fingerprint == fingerprint))
    }

    /// Records a status write for `key` (`progress` when it only moved progress; `fingerprint`
    /// what it wrote over which version) and returns the steps already announced while it was
    /// held.
    pub fn wrote(
        &self,
        key: &DbKey,
        progress: Option<Progress>,
        fingerprint: u64,
    ) -> Vec<(ConditionType, Reason)> {
        let Ok(mut last) = self.last_write.lock() else {
            return Vec::new();
        };
        let now = Instant::now();
        if last.len() > PRUNE_ABOVE && self.sweep.lock().is_ok_and(|mut s| s.due(now)) {
            let longest = self.longest;
            last.retain(|_, w| now.duration_since(w.at) < longest);
        }
        let previous = last.remove(key);
        let in_a_row = previous.as_ref().map_or(0, |p| p.progress_in_a_row);
        let progress_in_a_row = match progress {
            Some(Progress::IssuanceWait) => in_a_row.saturating_add(1),
            Some(Progress::Message) => in_a_row,
            None => 0,
        };
        last.insert(
            key.clone(),
            LastWrite {
                at: Instant::now(),
                progress_in_a_row,
                announced: Vec::new(),
                fingerprint,
            },
        );
        previous.map(|p| p.announced).unwrap_or_default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn typed(condition: Condition, type_: &str) -> Condition {
        Condition {
            type_: type_.into(),
            ..condition
        }
    }

    fn condition(status: &str, reason: &str, message: &str, generation: i64) -> Condition {
        Condition {
            type_: "CertificatesReady".into(),
            status: status.into(),
            observed_generation: Some(generation),
            severity: None,
            last_transition_time: "t".into(),
            reason: Some(reason.into()),
            message: Some(message.into()),
        }
    }

    #[test]
    fn progress_is_told_apart_from_transitions() {
        let waiting = condition("False", "WaitingForDatabaseObjects", "waiting for a, b", 1);
        let rolling = typed(condition("False", "ReplicasNotReady", "0/3 ready", 1), "W");
        let issuer_missing = typed(condition("False", "IssuerNotFound", "no issuer", 1), "I");
        let wait = Some(Progress::IssuanceWait);
        for (old, desired, want, why) in [
            (
                vec![waiting.clone()],
                vec![condition(
                    "False",
                    "WaitingForDatabaseObjects",
                    "waiting for b",
                    1,
                )],
                wait,
                "the wait's message moved",
            ),
            (
                vec![waiting.clone()],
                vec![condition("False", "CertificatesNotReady", "issuing", 1)],
                wait,
                "the next step of the same wait",
            ),
            (
                vec![waiting.clone(), issuer_missing.clone()],
                vec![
                    condition("False", "CertificatesNotReady", "issuing", 1),
                    issuer_missing.clone(),
                ],
                None,
                "a step while a problem is shown is written at once",
            ),
            (
                vec![waiting.clone(), issuer_missing.clone()],
                vec![
                    condition("False", "WaitingForDatabaseObjects", "waiting for b", 1),
                    issuer_missing.clone(),
                ],
                wait,
                "the wait's message moved; the problem did not change",
            ),
            (
                vec![waiting.clone()],
                vec![condition("False", "SecretNameConflict", "taken", 1)],
                None,
                "a problem to fix is no step of the wait",
            ),
            (
                vec![waiting.clone()],
                vec![condition("True", "AllCertificatesReady", "all there", 1)],
                None,
                "the status changed",
            ),
            (
                vec![waiting.clone()],
                vec![condition(
                    "False",
                    "WaitingForDatabaseObjects",
                    "waiting",
                    2,
                )],
                None,
                "a new generation",
            ),
            (
                vec![rolling.clone()],
                vec![typed(
                    condition("False", "ReplicasNotReady", "1/3 ready", 1),
                    "W",
                )],
                Some(Progress::Message),
                "a rollout's message moved",
            ),
            (
                vec![rolling.clone(), waiting.clone()],
                vec![
                    typed(condition("False", "ReplicasNotReady", "1/3 ready", 1), "W"),
                    condition("False", "WaitingForDatabaseObjects", "waiting for b", 1),
                ],
                Some(Progress::Message),
                "not only issuance waits moved",
            ),
            (
                vec![],
                vec![waiting.clone()],
                None,
                "a first write is never held",
            ),
        ] {
            assert_eq!(progress(&old, &desired), want, "{why}");
        }
    }

    #[test]
    fn a_step_announced_while_held_is_not_announced_again_when_written() {
        let coalescer = StatusCoalescer::default();
        let step = (
            ConditionType::CertificatesReady,
            Reason::CertificatesNotReady,
        );
        assert_eq!(
            coalescer.announce_held(&key("db"), &[step]),
            [step],
            "no write known: announce"
        );
        coalescer.wrote(&key("db"), None, 0);
        assert_eq!(coalescer.announce_held(&key("db"), &[step]), [step]);
        assert!(coalescer.announce_held(&key("db"), &[step]).is_empty());
        assert_eq!(
            coalescer.wrote(&key("db"), Some(Progress::IssuanceWait), 0),
            [step]
        );
        assert_eq!(
            coalescer.announce_held(&key("db"), &[step]),
            [step],
            "a write forgets what was announced before it"
        );
    }

    fn key(name: &str) -> DbKey {
        DbKey::new("MySQL", "ns", name)
    }

    #[test]
    fn each_progress_write_in_a_row_doubles_the_interval_up_to_the_longest() {
        let s = Duration::from_secs;
        for (in_a_row, want) in [
            (0, s(15)),
            (1, s(30)),
            (2, s(60)),
            (3, s(120)),
            (4, s(240)),
            (5, s(240)),
            (40, s(240)),
            (u32::MAX, s(240)),
        ] {
            assert_eq!(
                progress_interval(s(15), s(240), in_a_row),
                want,
                "{in_a_row} in a row"
            );
        }
    }

    #[test]
    fn progress_waits_for_its_interval_and_a_transition_restarts_it() {
        let s = Duration::from_secs;
        let wait = Progress::IssuanceWait;
        let coalescer = StatusCoalescer::new(s(60), s(600), s(20));
        let held = |progress| coalescer.hold(&key("db"), progress).expect("held");
        let within = |delay: Duration, secs: u64| delay <= s(secs) && delay > s(secs - 10);
        assert_eq!(coalescer.hold(&key("db"), wait), None, "no write yet");
        coalescer.wrote(&key("db"), None, 0);
        assert!(within(held(wait), 60), "after a transition");
        assert!(
            within(held(Progress::Message), 20),
            "a message waits its window"
        );
        assert_eq!(coalescer.hold(&key("other"), wait), None);
        coalescer.wrote(&key("db"), Some(wait), 0);
        assert!(within(held(wait), 120), "one in a row");
        coalescer.wrote(&key("db"), Some(Progress::Message), 0);
        assert!(within(held(wait), 120), "a message write does not count");
        coalescer.wrote(&key("db"), Some(wait), 0);
        assert!(within(held(wait), 240), "two in a row");
        coalescer.wrote(&key("db"), None, 0);
        assert!(within(held(wait), 60), "a transition restarts the timer");
        let expired = StatusCoalescer::new(Duration::ZERO, Duration::ZERO, Duration::ZERO);
        expired.wrote(&key("db"), Some(wait), 0);
        assert_eq!(expired.hold(&key("db"), wait), None);
    }
}
