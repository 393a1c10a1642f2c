//! Exponential backoff per database, kept by the operators between reconciles: `first` doubled
//! per consecutive call for the same key, capped; reset when the database reconciles cleanly.
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

/// The longest delay either operator waits before looking at a database again.
pub const CAP: Duration = Duration::from_secs(300);

/// One series of consecutive attempts per key.
pub struct BackoffSeries<K> {
    attempts: Mutex<HashMap<K, u32>>,
}

impl<K> Default for BackoffSeries<K> {
    fn default() -> Self {
        Self {
            attempts: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq + Clone> BackoffSeries<K> {
    /// The delay for this attempt of `key`: `first` × 2^(earlier attempts), at most [`CAP`].
    pub fn next(&self, key: &K, first: Duration) -> Duration {
        let Ok(mut attempts) = self.attempts.lock() else {
            return CAP;
        };
        let n = attempts.entry(key.clone()).or_insert(0);
        let delay = first.saturating_mul(2u32.saturating_pow((*n).min(16)));
        *n = n.saturating_add(1);
        delay.min(CAP)
    }

    /// Forgets the attempts of `key` (it succeeded, or the database is gone).
    pub fn reset(&self, key: &K) {
        if let Ok(mut attempts) = self.attempts.lock() {
            attempts.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_per_attempt_caps_and_resets() {
        let series = BackoffSeries::default();
        let first = Duration::from_secs(30);
        let delays: Vec<_> = (0..6).map(|_| series.next(&"db", first)).collect();
        assert_eq!(delays[..4], [30, 60, 120, 240].map(Duration::from_secs));
        assert_eq!(delays[4], CAP);
        assert_eq!(series.next(&"other", first), first);
        series.reset(&"db");
        assert_eq!(series.next(&"db", first), first);
    }
}
