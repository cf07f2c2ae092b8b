//! Pacing messages to one chat channel: a generic cell rate algorithm (GCRA)
//! per channel, `rate` messages per second with bursts of `burst`. A message
//! that would exceed it is told when it may go instead of being sent (and
//! rate limited by the tool).

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

/// The pace of every channel.
#[derive(Debug)]
pub struct Pace<K> {
    /// Time between messages; zero: unpaced.
    interval: Duration,
    /// How far ahead of now a channel's schedule may run (the burst).
    tolerance: Duration,
    /// Each channel's theoretical arrival time of its next message.
    next: HashMap<K, Instant>,
}

impl<K: std::hash::Hash + Eq> Pace<K> {
    /// `rate` messages per second (0: unpaced), bursts of `burst`.
    pub fn new(rate: f64, burst: u32) -> Self {
        let interval = if rate > 0.0 && rate.is_finite() {
            Duration::from_secs_f64(1.0 / rate)
        } else {
            Duration::ZERO
        };
        Self {
            interval,
            tolerance: interval.saturating_mul(burst.max(1) - 1),
            next: HashMap::new(),
        }
    }

    /// Takes a slot for `key` at `now`: `Ok` when the message may go now,
    /// `Err(at)` with when it may.
    pub fn take(&mut self, key: K, now: Instant) -> Result<(), Instant> {
        if self.interval.is_zero() {
            return Ok(());
        }
        if self.next.len() > 100_000 {
            // Forget channels idle long enough to have a full burst again.
            let horizon = self.tolerance + self.interval;
            self.next.retain(|_, at| *at + horizon > now);
        }
        let tat = self.next.get(&key).copied().unwrap_or(now).max(now);
        if tat > now + self.tolerance {
            return Err(tat - self.tolerance);
        }
        self.next.insert(key, tat + self.interval);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_goes_then_the_pace_holds() {
        let start = Instant::now();
        let mut pace = Pace::new(2.0, 3);
        for _ in 0..3 {
            assert_eq!(pace.take("c", start), Ok(()));
        }
        // The fourth waits one interval (0.5 s) after the burst's first.
        let wait = pace.take("c", start).expect_err("the burst is spent");
        assert_eq!(wait - start, Duration::from_millis(500));
        assert_eq!(pace.take("c", wait), Ok(()));
        // Other channels are not held.
        assert_eq!(pace.take("d", start), Ok(()));
        // After a quiet second and a half, the burst is back.
        let later = start + Duration::from_millis(2500);
        for _ in 0..3 {
            assert_eq!(pace.take("c", later), Ok(()));
        }
        assert!(pace.take("c", later).is_err());
    }

    #[test]
    fn zero_rate_is_unpaced() {
        let mut pace = Pace::new(0.0, 1);
        let now = Instant::now();
        for _ in 0..1000 {
            assert_eq!(pace.take(1, now), Ok(()));
        }
    }
}
