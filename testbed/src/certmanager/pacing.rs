//! A steady issuance rate for the stand-in: a slow or busy cert-manager, so that the benchmark
//! can show what the operators write when Certificates are issued slowly.
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Hands out issuance slots `interval` apart, in the order they are asked for.
#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    next: Mutex<Option<Instant>>,
}

impl Pacer {
    /// A pacer for `rate` issuances per second; None for a rate that is not positive and finite.
    pub fn per_second(rate: f64) -> Option<Pacer> {
        (rate.is_finite() && rate > 0.0).then(|| Pacer {
            interval: Duration::from_secs_f64(1.0 / rate),
            next: Mutex::new(None),
        })
    }

    /// The next free slot, reserved: now if the previous slot is more than an interval ago.
    fn reserve(&self, now: Instant) -> Instant {
        let Ok(mut next) = self.next.lock() else {
            return now;
        };
        let slot = next.map_or(now, |n| n.max(now));
        *next = Some(slot + self.interval);
        slot
    }

    /// Waits for this issuance's slot.
    pub async fn wait(&self) {
        let slot = self.reserve(Instant::now());
        tokio::time::sleep_until(slot).await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_one_interval_apart_and_never_in_the_past() {
        let pacer = Pacer::per_second(4.0).unwrap();
        let t0 = Instant::now();
        let quarter = Duration::from_millis(250);
        assert_eq!(pacer.reserve(t0), t0);
        assert_eq!(pacer.reserve(t0), t0 + quarter);
        assert_eq!(pacer.reserve(t0), t0 + 2 * quarter);
        let later = t0 + Duration::from_secs(10);
        assert_eq!(
            pacer.reserve(later),
            later,
            "an idle pacer does not bank slots"
        );
        assert!(Pacer::per_second(0.0).is_none());
        assert!(Pacer::per_second(f64::NAN).is_none());
    }
}
