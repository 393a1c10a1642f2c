//! When to forget expired entries of a remembered map (Event series, status writes, adoptions,
//! absent Secrets). Forgetting scans every entry; done on every insert, that made an operator's
//! CPU grow with the square of the databases. A [`Sweep`] allows one scan per [`EVERY`].
use std::time::{Duration, Instant};

/// The least time between two sweeps of one map.
pub const EVERY: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug)]
pub struct Sweep {
    last: Instant,
}

impl Default for Sweep {
    fn default() -> Self {
        Sweep::since(Instant::now())
    }
}

impl Sweep {
    /// A sweep counted as done at `last`.
    pub fn since(last: Instant) -> Self {
        Sweep { last }
    }

    /// Whether a sweep is due at `now`; if so, it counts as done then.
    pub fn due(&mut self, now: Instant) -> bool {
        if now.saturating_duration_since(self.last) >= EVERY {
            self.last = now;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_is_due_once_per_interval() {
        let start = Instant::now();
        let mut sweep = Sweep::since(start);
        assert!(!sweep.due(start + EVERY - Duration::from_secs(1)));
        assert!(sweep.due(start + EVERY));
        assert!(!sweep.due(start + EVERY), "done: not due again at once");
        assert!(sweep.due(start + EVERY * 2));
    }
}
