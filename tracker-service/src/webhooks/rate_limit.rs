//! A token bucket per integration for webhook intake: a sustained rate and a
//! burst. Over the limit, a delivery is answered 429 with `Retry-After`, which
//! Jira honours by delivering again later; nothing is lost.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use service_runtime::ids::IntegrationId;

/// Buckets by integration.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<IntegrationId, (f64, Instant)>>,
}

impl RateLimiter {
    /// `rate` deliveries per second sustained, `burst` at once.
    pub fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate: rate.max(0.001),
            burst: burst.max(1.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `integration`; `Err(wait)` when none is left, with
    /// how long until one is.
    pub fn take(&self, integration: &IntegrationId) -> Result<(), Duration> {
        self.take_at(integration, Instant::now())
    }

    fn take_at(&self, integration: &IntegrationId, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, last) = buckets
            .entry(integration.clone())
            .or_insert((self.burst, now));
        let refill = now.saturating_duration_since(*last).as_secs_f64() * self.rate;
        *tokens = (*tokens + refill).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_the_sustained_rate() {
        let limiter = RateLimiter::new(10.0, 3.0);
        let id = IntegrationId::parse("acme").expect("id");
        let other = IntegrationId::parse("globex").expect("id");
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.take_at(&id, start).is_ok());
        }
        let wait = limiter.take_at(&id, start).expect_err("bucket empty");
        assert!(wait <= Duration::from_millis(100));
        assert!(
            limiter.take_at(&other, start).is_ok(),
            "buckets are per integration"
        );
        assert!(
            limiter
                .take_at(&id, start + Duration::from_millis(100))
                .is_ok()
        );
    }
}
