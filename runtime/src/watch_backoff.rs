//! The backoff of a controller's trigger watches.
//!
//! kube-rs applies one backoff to the merged stream of all of a controller's watches (the
//! database, `.owns()` and `.watches()`), so an error on any one of them pauses every trigger.
//! Its default (0.8 s doubling to 30 s, reset only after 2 minutes without an error) then keeps
//! the whole controller deaf for up to 30 s at a time on an API server that answers the odd 5xx
//! or expires watch history (410 Gone) every few seconds; databases waited over a minute for the
//! event that their Certificates were ready. A short cap and a quick reset keep triggers flowing
//! while still spacing out re-lists when the API server is down.
use std::time::Duration;

use kube::runtime::utils::{Backoff, ResetTimerBackoff};

const FIRST: Duration = Duration::from_millis(200);
const CAP: Duration = Duration::from_secs(5);
/// Time without an error after which the next error starts again from [`FIRST`].
const RESET_AFTER: Duration = Duration::from_secs(15);

/// The trigger backoff both operators give their controllers (`Controller::trigger_backoff`).
pub fn trigger_backoff() -> ResetTimerBackoff<Doubling> {
    ResetTimerBackoff::new(Doubling::default(), RESET_AFTER)
}

/// [`FIRST`] doubled per consecutive error, capped at [`CAP`].
#[derive(Debug, Default)]
pub struct Doubling {
    errors: u32,
}

impl Iterator for Doubling {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let delay = FIRST.saturating_mul(2u32.saturating_pow(self.errors.min(16)));
        self.errors = self.errors.saturating_add(1);
        Some(delay.min(CAP))
    }
}

impl Backoff for Doubling {
    fn reset(&mut self) {
        self.errors = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_and_starts_over_after_a_reset() {
        let mut backoff = Doubling::default();
        let delays: Vec<Duration> = backoff.by_ref().take(7).collect();
        assert_eq!(delays[0], FIRST);
        assert_eq!(delays[1], FIRST * 2);
        assert_eq!(delays[6], CAP);
        backoff.reset();
        assert_eq!(backoff.next(), Some(FIRST));
    }
}
