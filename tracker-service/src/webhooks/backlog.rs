//! The inbox's bound: how many queued deliveries the tracker holds before it
//! pushes back on Jira instead of accepting more.
//!
//! Accepting a webhook is cheaper than applying it, so a sender that keeps
//! sending can always outrun the dispatcher; without a bound the inbox, and
//! every delivery's wait, grows without limit. With one, once the estimate
//! reaches `--inbox-max-pending` an authentic webhook is answered `503` with a
//! `Retry-After` (how long the dispatcher needs, at its recent pace, to get
//! back under the bound), counted as the `backlog_full` outcome, and nothing is
//! stored; Jira delivers it again.
//!
//! The estimate is the pending count read from the database at the last
//! recount (every [`RECOUNT_EVERY`]), plus what this replica queued since,
//! minus what it finished since. So it is exact for one replica between
//! recounts, and replicas learn of each other's work at the next recount.
//!
//! Lifecycle: made at start-up (counted once before the first request), then
//! recounted by [`run_recount`] until shutdown.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use service_runtime::database::Database;
use service_runtime::shutdown::Shutdown;
use tokio::time::Instant;

use super::inbox;
use crate::error::TrackerError;

/// How often the pending count is read from the database.
pub const RECOUNT_EVERY: Duration = Duration::from_millis(500);

/// The longest `Retry-After` given for a full inbox.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// The estimate of the inbox's queued deliveries, and its bound.
#[derive(Debug)]
pub struct Backlog {
    /// The most pending deliveries before webhooks are refused; 0 means no
    /// bound.
    limit: u64,
    /// Pending deliveries at the last recount.
    counted: AtomicU64,
    /// Queued by this replica since the last recount.
    queued: AtomicU64,
    /// Finished by this replica since the last recount.
    finished: AtomicU64,
    /// Deliveries finished per second, as last measured between recounts
    /// (an `f64`'s bits), for `Retry-After`.
    pace: AtomicU64,
}

/// Why a webhook is not accepted now, and when to deliver it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full {
    /// The estimate that reached the bound.
    pub pending: u64,
    /// When the inbox is expected to be under its bound again.
    pub retry_after: Duration,
}

impl Backlog {
    /// A backlog bounded at `limit` pending deliveries (0: unbounded), with
    /// `pending` queued now.
    pub fn new(limit: u64, pending: u64) -> Self {
        Self {
            limit,
            counted: AtomicU64::new(pending),
            queued: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            pace: AtomicU64::new(0f64.to_bits()),
        }
    }

    /// Counts the inbox once, then bounds it at `limit`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn counted(db: &Database, limit: u64) -> Result<Self, TrackerError> {
        Ok(Self::new(limit, inbox::pending_count(db).await?))
    }

    /// The estimated pending deliveries.
    pub fn pending(&self) -> u64 {
        let finished = self.finished.load(Ordering::Relaxed);
        let queued = self.queued.load(Ordering::Relaxed);
        (self.counted.load(Ordering::Relaxed) + queued).saturating_sub(finished)
    }

    /// `Err` when a new delivery must wait: the inbox is at its bound.
    pub fn admit(&self) -> Result<(), Full> {
        let pending = self.pending();
        if self.limit == 0 || pending < self.limit {
            return Ok(());
        }
        let pace = f64::from_bits(self.pace.load(Ordering::Relaxed));
        Err(Full {
            pending,
            retry_after: retry_after(pending + 1 - self.limit, pace),
        })
    }

    /// A delivery was queued here.
    pub fn queued(&self) {
        self.queued.fetch_add(1, Ordering::Relaxed);
    }

    /// A delivery this replica held is done (delivered or failed).
    pub fn finished(&self) {
        self.finished.fetch_add(1, Ordering::Relaxed);
    }

    /// Replaces the estimate with the database's count, keeping what happened
    /// here while it was read (over-estimating by a read's worth at most);
    /// `elapsed` since the previous recount measures the pace.
    async fn recount(&self, db: &Database, elapsed: Duration) -> Result<(), TrackerError> {
        let previous = self.counted.load(Ordering::Relaxed);
        let queued = self.queued.load(Ordering::Relaxed);
        let finished = self.finished.load(Ordering::Relaxed);
        let count = inbox::pending_count(db).await?;
        self.counted.store(count, Ordering::Relaxed);
        self.queued.fetch_sub(queued, Ordering::Relaxed);
        self.finished.fetch_sub(finished, Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        if secs > 0.0 {
            // Finished by all replicas ≈ what was pending plus what came in
            // (here) minus what is pending now.
            let done = (previous + queued).saturating_sub(count).max(finished);
            self.pace
                .store((done as f64 / secs).to_bits(), Ordering::Relaxed);
        }
        Ok(())
    }
}

/// How long `excess` deliveries take at `pace` per second: at least a second,
/// at most [`MAX_RETRY_AFTER`] (also when nothing is finishing).
fn retry_after(excess: u64, pace: f64) -> Duration {
    if pace <= 0.0 {
        return MAX_RETRY_AFTER;
    }
    let secs = (excess as f64 / pace)
        .ceil()
        .clamp(1.0, MAX_RETRY_AFTER.as_secs_f64());
    Duration::from_secs_f64(secs)
}

/// Recounts the inbox every [`RECOUNT_EVERY`] until shutdown (not at all
/// without a bound); a failed count keeps the previous estimate.
pub async fn run_recount(backlog: std::sync::Arc<Backlog>, db: Database, shutdown: Shutdown) {
    if backlog.limit == 0 {
        // Unbounded: nothing to estimate (the gauges count for `/metrics`).
        return;
    }
    let mut last = Instant::now();
    loop {
        tokio::select! {
            () = shutdown.wait() => return,
            () = tokio::time::sleep(RECOUNT_EVERY) => {}
        }
        let now = Instant::now();
        if let Err(error) = backlog.recount(&db, now - last).await {
            tracing::debug!(%error, "cannot count the inbox");
        }
        last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_follows_the_pace_within_bounds() {
        let table = [
            // (excess, pace per s, expected s)
            (1, 1000.0, 1),
            (5000, 1000.0, 5),
            (5001, 1000.0, 6),
            (1_000_000, 10.0, 60),
            (10, 0.0, 60),
        ];
        for (excess, pace, expected) in table {
            assert_eq!(
                retry_after(excess, pace),
                Duration::from_secs(expected),
                "{excess} at {pace}/s"
            );
        }
    }

    #[test]
    fn the_bound_admits_until_the_estimate_reaches_it() {
        let backlog = Backlog::new(3, 1);
        assert!(backlog.admit().is_ok());
        backlog.queued();
        assert!(backlog.admit().is_ok());
        backlog.queued();
        let full = backlog.admit().expect_err("the bound is reached");
        assert_eq!(full.pending, 3);
        backlog.finished();
        assert!(backlog.admit().is_ok());
        let unbounded = Backlog::new(0, 1_000_000);
        assert!(unbounded.admit().is_ok());
    }
}
