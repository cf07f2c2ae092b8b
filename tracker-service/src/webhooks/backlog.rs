//! The inbox's bounds: how much queued work the tracker holds before it
//! pushes back on Jira instead of accepting more.
//!
//! Accepting a webhook is cheaper than applying it, so a sender that keeps
//! sending can always outrun the dispatcher; without a bound the inbox, and
//! every delivery's wait, grows without limit. There are two bounds, and the
//! lower one holds: a count (`--inbox-max-pending`) and a time
//! (`--inbox-max-wait`: that many seconds of work at the dispatchers' recent
//! pace, never below one round of the dispatcher's concurrency). Once the
//! estimate reaches the bound an authentic webhook is answered `503` with a
//! `Retry-After` (how long the dispatcher needs, at its recent pace, to get
//! back under the bound), counted as the `backlog_full` outcome, and nothing is
//! stored; Jira delivers it again.
//!
//! The estimate is the pending count read from the database at the last
//! recount (every [`RECOUNT_EVERY`]), plus what this replica queued since,
//! minus what it finished since. So it is exact for one replica between
//! recounts, and replicas learn of each other's work at the next recount. The
//! pace is what every replica finished between two recounts; it is kept as a
//! decaying maximum, so one slow interval (or a lull in traffic, when the pace
//! measures arrivals rather than what the dispatcher could do) does not shrink
//! the time bound at once. Until something has finished there is no pace, and
//! only the count bounds the inbox: while the assignment service is down the
//! inbox keeps accepting up to its count.
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

/// What the recent pace keeps of its previous value at each recount (a
/// half-life of about 3 s at [`RECOUNT_EVERY`]).
const PACE_DECAY: f64 = 0.9;

/// How much the inbox may hold; a zero bound is no bound.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Bounds {
    /// The most pending deliveries.
    pub max_pending: u64,
    /// The most work pending, in time at the recent pace.
    pub max_wait: Duration,
    /// The fewest pending deliveries the time bound allows (the dispatcher's
    /// concurrency: less would idle it).
    pub min_pending: u64,
}

impl Bounds {
    /// The pending deliveries allowed at `pace` finished per second; `None`
    /// when nothing bounds the inbox.
    fn limit(&self, pace: f64) -> Option<u64> {
        let by_count = (self.max_pending > 0).then_some(self.max_pending);
        let by_wait = (!self.max_wait.is_zero() && pace > 0.0).then(|| {
            let work = (pace * self.max_wait.as_secs_f64()).ceil() as u64;
            work.max(self.min_pending).max(1)
        });
        match (by_count, by_wait) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn any(&self) -> bool {
        self.max_pending > 0 || !self.max_wait.is_zero()
    }
}

/// The estimate of the inbox's queued deliveries, and its bounds.
#[derive(Debug)]
pub struct Backlog {
    /// How much the inbox may hold.
    bounds: Bounds,
    /// Pending deliveries at the last recount.
    counted: AtomicU64,
    /// Queued by this replica since the last recount.
    queued: AtomicU64,
    /// Finished by this replica since the last recount.
    finished: AtomicU64,
    /// Deliveries finished per second, a decaying maximum of what was
    /// measured between recounts (an `f64`'s bits), for `Retry-After` and
    /// the time bound.
    pace: AtomicU64,
}

/// Why a webhook is not accepted now, and when to deliver it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full {
    /// The estimate that reached the bound.
    pub pending: u64,
    /// The bound it reached, in deliveries.
    pub limit: u64,
    /// When the inbox is expected to be under its bound again.
    pub retry_after: Duration,
}

impl Backlog {
    /// A backlog within `bounds`, with `pending` queued now.
    pub fn new(bounds: Bounds, pending: u64) -> Self {
        Self {
            bounds,
            counted: AtomicU64::new(pending),
            queued: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            pace: AtomicU64::new(0f64.to_bits()),
        }
    }

    /// Counts the inbox once, then bounds it.
    ///
    /// # Errors
    /// Database errors.
    pub async fn counted(db: &Database, bounds: Bounds) -> Result<Self, TrackerError> {
        Ok(Self::new(bounds, inbox::pending_count(db).await?))
    }

    /// The estimated pending deliveries.
    pub fn pending(&self) -> u64 {
        let finished = self.finished.load(Ordering::Relaxed);
        let queued = self.queued.load(Ordering::Relaxed);
        (self.counted.load(Ordering::Relaxed) + queued).saturating_sub(finished)
    }

    fn pace(&self) -> f64 {
        f64::from_bits(self.pace.load(Ordering::Relaxed))
    }

    /// `Err` when a new delivery must wait: the inbox is at its bound.
    pub fn admit(&self) -> Result<(), Full> {
        let pace = self.pace();
        let Some(limit) = self.bounds.limit(pace) else {
            return Ok(());
        };
        let pending = self.pending();
        if pending < limit {
            return Ok(());
        }
        Err(Full {
            pending,
            limit,
            retry_after: retry_after(pending + 1 - limit, pace),
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
        // Finished by all replicas ≈ what was pending plus what came in
        // (here) minus what is pending now.
        let done = (previous + queued).saturating_sub(count).max(finished);
        let pace = next_pace(self.pace(), done, elapsed);
        self.pace.store(pace.to_bits(), Ordering::Relaxed);
        Ok(())
    }
}

/// The recent pace after `done` deliveries finished in `elapsed`: what was
/// measured, or the previous pace decayed if that is higher.
fn next_pace(previous: f64, done: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        return previous;
    }
    let measured = done as f64 / secs;
    measured.max(previous * PACE_DECAY)
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
    if !backlog.bounds.any() {
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
    fn the_lower_bound_holds_and_the_time_bound_waits_for_a_pace() {
        let s = Duration::from_secs;
        let bounds = |max_pending, max_wait, min_pending| Bounds {
            max_pending,
            max_wait,
            min_pending,
        };
        let table = [
            // (bounds, pace per s, limit)
            (bounds(0, Duration::ZERO, 128), 1000.0, None),
            (bounds(100, Duration::ZERO, 128), 1000.0, Some(100)),
            (bounds(0, s(2), 128), 0.0, None),
            (bounds(100, s(2), 128), 0.0, Some(100)),
            (bounds(0, s(2), 128), 1000.0, Some(2000)),
            (bounds(100_000, s(2), 128), 1000.0, Some(2000)),
            (bounds(1_000, s(2), 128), 1000.0, Some(1000)),
            (
                bounds(0, Duration::from_millis(500), 128),
                1000.5,
                Some(501),
            ),
            (bounds(0, s(1), 128), 10.0, Some(128)),
            (bounds(0, s(1), 0), 0.2, Some(1)),
        ];
        for (bounds, pace, expected) in table {
            assert_eq!(bounds.limit(pace), expected, "{bounds:?} at {pace}/s");
        }
    }

    #[test]
    fn the_pace_is_a_decaying_maximum() {
        let half = Duration::from_millis(500);
        let table = [
            // (previous, done, elapsed, expected)
            (0.0, 500, half, 1000.0),
            (1000.0, 600, half, 1200.0),
            (1000.0, 0, half, 900.0),
            (1000.0, 400, half, 900.0),
            (1000.0, 10, Duration::ZERO, 1000.0),
        ];
        for (previous, done, elapsed, expected) in table {
            let pace = next_pace(previous, done, elapsed);
            assert!(
                (pace - expected).abs() < 1e-9,
                "{previous} then {done} in {elapsed:?}: {pace}"
            );
        }
    }

    #[test]
    fn the_bound_admits_until_the_estimate_reaches_it() {
        let backlog = Backlog::new(
            Bounds {
                max_pending: 3,
                ..Bounds::default()
            },
            1,
        );
        assert!(backlog.admit().is_ok());
        backlog.queued();
        assert!(backlog.admit().is_ok());
        backlog.queued();
        let full = backlog.admit().expect_err("the bound is reached");
        assert_eq!((full.pending, full.limit), (3, 3));
        backlog.finished();
        assert!(backlog.admit().is_ok());
        let unbounded = Backlog::new(Bounds::default(), 1_000_000);
        assert!(unbounded.admit().is_ok());
    }
}
