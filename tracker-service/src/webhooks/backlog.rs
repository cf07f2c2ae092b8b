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
//! The time bound also refuses early, as RED queues drop: past half of it, a
//! share of webhooks growing from none to all at the bound. `Retry-After` is
//! whole seconds, so a hard bound of less than a second's work turns every
//! sender away within moments of each other and the dispatcher then idles
//! until they return (a closed-loop bench applied half as much so); refusing
//! a few early keeps most senders sending and the backlog near half the bound.
//! The count stays a hard bound: it is a limit of storage, not of waiting.
//!
//! A refusal by the time bound asks for no longer than that bound (at least a
//! second): a pace measured low (the first deliveries after start-up or a
//! stall) puts the bound at its floor of `min_pending` deliveries and would
//! otherwise ask every sender to stay away for up to a minute, leaving the
//! dispatcher idle for it once the pace is right again (a bench's senders all
//! waited 60 s so). Coming back early costs a cheap 503 at worst.
//!
//! The estimate is the pending count read from the database at the last
//! recount (every [`RECOUNT_EVERY`]), plus what this replica queued since,
//! minus what it finished since. So it is exact for one replica between
//! recounts, and replicas learn of each other's work at the next recount.
//!
//! The pace is what every replica finished between two recounts, and it
//! follows what the dispatcher *can* do:
//! - while the dispatcher was busy through an interval (at least its
//!   concurrency pending at both recounts), what finished is what it can do,
//!   and the pace moves towards it as a running average ([`PACE_WEIGHT`]), so
//!   one fast or slow interval moves the bound by a fraction. (A maximum
//!   instead holds the bound at the fastest interval's pace, in a bench a
//!   third above the average, and a backlog at the bound is then more work
//!   than the bound names.) But a measurement over twice the pace replaces
//!   it, since noise does not double a rate: the pace was a warm-up's or a
//!   stall's first few deliveries, and climbing from there a quarter at a
//!   time would hold the bound far too low for seconds.
//! - otherwise what finished measures arrivals, which is no more than the
//!   dispatcher could do: it raises the pace but never lowers it, so a lull
//!   in traffic does not shrink the bound before the next burst.
//! - a busy interval in which nothing finished is a stalled dispatcher (the
//!   assignment service down, every delivery waiting for its retry): the pace
//!   is forgotten.
//!
//! Until something has finished there is no pace (at start-up, and after a
//! stall until something finishes again), and only the count bounds the
//! inbox: while the assignment service is down the inbox keeps accepting up
//! to its count. (Before, a stall decayed the pace towards nothing, which
//! shrank the time bound to `min_pending` within seconds and turned Jira
//! away for the whole outage.)
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

/// The weight of one busy interval's measurement in the pace (at
/// [`RECOUNT_EVERY`], an interval's weight halves in about 1.2 s).
const PACE_WEIGHT: f64 = 0.25;

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
    /// The bound that holds at `pace` finished per second; `None` when
    /// nothing bounds the inbox.
    fn limit(&self, pace: f64) -> Option<Limit> {
        let by_count = (self.max_pending > 0).then_some(self.max_pending);
        let by_wait = (!self.max_wait.is_zero() && pace > 0.0).then(|| {
            let work = (pace * self.max_wait.as_secs_f64()).ceil() as u64;
            work.max(self.min_pending).max(1)
        });
        match (by_count, by_wait) {
            (Some(count), Some(wait)) if count <= wait => Some(Limit::hard(count)),
            (_, Some(wait)) => Some(Limit {
                deliveries: wait,
                early: true,
            }),
            (Some(count), None) => Some(Limit::hard(count)),
            (None, None) => None,
        }
    }

    fn any(&self) -> bool {
        self.max_pending > 0 || !self.max_wait.is_zero()
    }
}

/// The bound that holds now, in deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Limit {
    /// The most pending deliveries.
    deliveries: u64,
    /// Whether a growing share of webhooks is refused from half of it (the
    /// time bound), rather than none until it is reached (the count).
    early: bool,
}

impl Limit {
    fn hard(deliveries: u64) -> Self {
        Self {
            deliveries,
            early: false,
        }
    }

    /// The share of webhooks refused with `pending` deliveries: all at the
    /// limit; below it none, or, for an early limit, a share growing from
    /// none at half the limit.
    fn refused_share(self, pending: u64) -> f64 {
        if pending >= self.deliveries {
            return 1.0;
        }
        if !self.early {
            return 0.0;
        }
        let half = self.deliveries as f64 / 2.0;
        ((pending as f64 - half) / half).max(0.0)
    }

    /// Where refusing starts.
    fn threshold(self) -> u64 {
        if self.early {
            self.deliveries / 2
        } else {
            self.deliveries
        }
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
    /// Deliveries the dispatchers can finish per second, as measured between
    /// recounts (an `f64`'s bits; see the module doc), for `Retry-After` and
    /// the time bound.
    pace: AtomicU64,
    /// The running sum of the shares refused early, in millionths: a webhook
    /// is refused each time it passes a whole number, which spreads early
    /// refusals evenly over the webhooks.
    shed: AtomicU64,
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
            shed: AtomicU64::new(0),
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

    /// `Err` when a new delivery must wait: the inbox is at its bound, or
    /// past half of its time bound and this delivery is one of the share
    /// refused there.
    pub fn admit(&self) -> Result<(), Full> {
        let pace = self.pace();
        let Some(limit) = self.bounds.limit(pace) else {
            return Ok(());
        };
        let pending = self.pending();
        let share = limit.refused_share(pending);
        if share <= 0.0 || (share < 1.0 && !self.shed(share)) {
            return Ok(());
        }
        let longest = if limit.early {
            self.bounds.max_wait
        } else {
            MAX_RETRY_AFTER
        };
        Err(Full {
            pending,
            limit: limit.deliveries,
            retry_after: retry_after(
                (pending + 1).saturating_sub(limit.threshold()),
                pace,
                longest,
            ),
        })
    }

    /// Whether this webhook is one of the `share` (0 to 1) refused.
    fn shed(&self, share: f64) -> bool {
        const WHOLE: u64 = 1_000_000;
        let step = (share * WHOLE as f64) as u64;
        let before = self.shed.fetch_add(step, Ordering::Relaxed);
        before / WHOLE != before.wrapping_add(step) / WHOLE
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
        let seen = self.seen();
        let count = inbox::pending_count(db).await?;
        self.counted_now(seen, count, elapsed);
        Ok(())
    }

    /// The estimate's parts, read just before a count.
    fn seen(&self) -> Seen {
        Seen {
            counted: self.counted.load(Ordering::Relaxed),
            queued: self.queued.load(Ordering::Relaxed),
            finished: self.finished.load(Ordering::Relaxed),
        }
    }

    /// Takes `count` pending, read after `seen`, `elapsed` after the previous
    /// count: the new estimate and pace.
    fn counted_now(&self, seen: Seen, count: u64, elapsed: Duration) {
        self.counted.store(count, Ordering::Relaxed);
        self.queued.fetch_sub(seen.queued, Ordering::Relaxed);
        self.finished.fetch_sub(seen.finished, Ordering::Relaxed);
        // Finished by all replicas ≈ what was pending plus what came in
        // (here) minus what is pending now.
        let done = (seen.counted + seen.queued)
            .saturating_sub(count)
            .max(seen.finished);
        let busy = seen.counted.min(count) >= self.bounds.min_pending.max(1);
        let pace = next_pace(self.pace(), done, elapsed, busy);
        self.set_pace(pace);
    }

    fn set_pace(&self, pace: f64) {
        self.pace.store(pace.to_bits(), Ordering::Relaxed);
    }
}

/// The estimate's parts as they were just before a count of the inbox.
#[derive(Debug, Clone, Copy)]
struct Seen {
    /// Pending at the count before.
    counted: u64,
    /// Queued here since that count.
    queued: u64,
    /// Finished here since that count.
    finished: u64,
}

/// The pace after `done` deliveries finished in `elapsed`: with the
/// dispatcher `busy` throughout, the running average moved towards what was
/// measured (what was measured if that is over twice the average), or none
/// at all if nothing finished (a stall); otherwise the
/// higher of the two (what finished then is what arrived, which says only
/// that the dispatcher can do at least that).
fn next_pace(previous: f64, done: u64, elapsed: Duration, busy: bool) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        return previous;
    }
    if busy && done == 0 {
        return 0.0;
    }
    let measured = done as f64 / secs;
    if busy && previous > 0.0 && measured <= 2.0 * previous {
        previous + PACE_WEIGHT * (measured - previous)
    } else {
        measured.max(previous)
    }
}

/// How long `excess` deliveries take at `pace` per second, in whole seconds:
/// at least one, at most `longest` (also when nothing is finishing).
fn retry_after(excess: u64, pace: f64, longest: Duration) -> Duration {
    let longest = longest.as_secs_f64().ceil().max(1.0);
    let secs = if pace <= 0.0 {
        longest
    } else {
        (excess as f64 / pace).ceil().clamp(1.0, longest)
    };
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
                retry_after(excess, pace, MAX_RETRY_AFTER),
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
        let hard = |n| Some(Limit::hard(n));
        let early = |n| {
            Some(Limit {
                deliveries: n,
                early: true,
            })
        };
        let table = [
            // (bounds, pace per s, limit)
            (bounds(0, Duration::ZERO, 128), 1000.0, None),
            (bounds(100, Duration::ZERO, 128), 1000.0, hard(100)),
            (bounds(0, s(2), 128), 0.0, None),
            (bounds(100, s(2), 128), 0.0, hard(100)),
            (bounds(0, s(2), 128), 1000.0, early(2000)),
            (bounds(100_000, s(2), 128), 1000.0, early(2000)),
            (bounds(1_000, s(2), 128), 1000.0, hard(1000)),
            (bounds(2_000, s(2), 128), 1000.0, hard(2000)),
            (
                bounds(0, Duration::from_millis(500), 128),
                1000.5,
                early(501),
            ),
            (bounds(0, s(1), 128), 10.0, early(128)),
            (bounds(0, s(1), 0), 0.2, early(1)),
        ];
        for (bounds, pace, expected) in table {
            assert_eq!(bounds.limit(pace), expected, "{bounds:?} at {pace}/s");
        }
    }

    #[test]
    fn a_time_bound_refuses_a_growing_share_from_half_of_it() {
        let table = [
            // (limit, early, pending, share refused)
            (100, false, 0, 0.0),
            (100, false, 99, 0.0),
            (100, false, 100, 1.0),
            (100, true, 0, 0.0),
            (100, true, 50, 0.0),
            (100, true, 75, 0.5),
            (100, true, 99, 0.98),
            (100, true, 100, 1.0),
            (100, true, 1_000, 1.0),
            (1, true, 0, 0.0),
        ];
        for (deliveries, early, pending, expected) in table {
            let share = Limit { deliveries, early }.refused_share(pending);
            assert!(
                (share - expected).abs() < 1e-9,
                "{pending} of {deliveries} (early: {early}): {share}"
            );
        }
    }

    #[test]
    fn early_refusals_are_spread_evenly() {
        let backlog = Backlog::new(
            Bounds {
                max_wait: Duration::from_secs(1),
                ..Bounds::default()
            },
            75,
        );
        // No pace yet: no time bound.
        assert!((0..100).all(|_| backlog.admit().is_ok()));
        backlog.set_pace(100.0);
        // 75 of a bound of 100: half are refused, every other one.
        let refused: Vec<bool> = (0..100).map(|_| backlog.admit().is_err()).collect();
        assert_eq!(refused.iter().filter(|r| **r).count(), 50);
        assert!(refused.windows(2).all(|w| w[0] != w[1]), "{refused:?}");
        assert!(backlog.admit().is_ok());
        let full = backlog.admit().expect_err("every other one");
        assert_eq!((full.pending, full.limit), (75, 100));
        assert_eq!(full.retry_after, Duration::from_secs(1));
    }

    #[test]
    fn the_pace_averages_busy_intervals_and_only_rises_otherwise() {
        let half = Duration::from_millis(500);
        let table = [
            // (previous, done, elapsed, busy, expected)
            // Busy: a running average of what the dispatcher did.
            (0.0, 500, half, true, 1000.0),
            (1000.0, 600, half, true, 1050.0),
            (1000.0, 400, half, true, 950.0),
            (1000.0, 1000, half, true, 1250.0),
            // Busy and over twice the pace: the pace was a warm-up's.
            (10.0, 500, half, true, 1000.0),
            (1000.0, 1001, half, true, 2002.0),
            // Busy and nothing finished: stalled, no pace.
            (1000.0, 0, half, true, 0.0),
            (0.0, 0, half, true, 0.0),
            // Not busy: arrivals raise the pace, a lull keeps it.
            (0.0, 500, half, false, 1000.0),
            (1000.0, 600, half, false, 1200.0),
            (1000.0, 0, half, false, 1000.0),
            (1000.0, 400, half, false, 1000.0),
            (1000.0, 10, Duration::ZERO, true, 1000.0),
        ];
        for (previous, done, elapsed, busy, expected) in table {
            let pace = next_pace(previous, done, elapsed, busy);
            assert!(
                (pace - expected).abs() < 1e-9,
                "{previous} then {done} in {elapsed:?} (busy: {busy}): {pace}"
            );
        }
    }

    #[test]
    fn alternating_fast_and_slow_busy_intervals_bound_at_their_average() {
        // A dispatcher finishing 600 and 400 in alternate half seconds does
        // 1,000/s; the time bound must name that, not the fast half's 1,200/s.
        let half = Duration::from_millis(500);
        let mut pace = 1000.0;
        for round in 0..40 {
            let done = if round % 2 == 0 { 600 } else { 400 };
            pace = next_pace(pace, done, half, true);
        }
        assert!((pace - 1000.0).abs() < 60.0, "{pace}");
    }

    #[test]
    fn a_time_bound_asks_for_no_longer_than_itself() {
        // A pace measured at 2/s (the first deliveries after start-up): the
        // bound is its floor of 128, and 200 pending would take 68 s at 2/s.
        let backlog = Backlog::new(
            Bounds {
                max_pending: 100_000,
                max_wait: Duration::from_secs(1),
                min_pending: 128,
            },
            200,
        );
        backlog.set_pace(2.0);
        let full = backlog.admit().expect_err("past the floor");
        assert_eq!((full.pending, full.limit), (200, 128));
        assert_eq!(full.retry_after, Duration::from_secs(1));
        // The count bound still says how long its excess takes.
        let counted = Backlog::new(
            Bounds {
                max_pending: 100,
                max_wait: Duration::from_secs(1),
                min_pending: 1,
            },
            3_000,
        );
        counted.set_pace(200.0);
        let full = counted.admit().expect_err("past the count");
        assert_eq!(
            (full.limit, full.retry_after),
            (100, Duration::from_secs(15))
        );
    }

    #[test]
    fn a_stalled_dispatcher_leaves_only_the_count_bound() {
        let half = Duration::from_millis(500);
        let backlog = Backlog::new(
            Bounds {
                max_pending: 1_000,
                max_wait: Duration::from_secs(1),
                min_pending: 4,
            },
            0,
        );
        // 100 finished in each of two half seconds: a pace of 200/s, so the
        // time bound is 200 deliveries, refusing some from 100.
        for _ in 0..2 {
            for _ in 0..100 {
                backlog.queued();
                backlog.finished();
            }
            backlog.counted_now(backlog.seen(), 0, half);
        }
        assert!((backlog.pace() - 200.0).abs() < 1e-9);
        for _ in 0..150 {
            backlog.queued();
        }
        backlog.counted_now(backlog.seen(), 150, half);
        assert!((0..10).any(|_| backlog.admit().is_err()), "bounded in time");
        // Then the assignment service goes down: nothing finishes while 500
        // wait. Webhooks are accepted up to the count, however long it lasts.
        for _ in 0..350 {
            backlog.queued();
        }
        for _ in 0..20 {
            backlog.counted_now(backlog.seen(), 500, half);
        }
        assert!((0..100).all(|_| backlog.admit().is_ok()));
        let full = Backlog::new(backlog.bounds, 1_000);
        full.set_pace(0.0);
        assert_eq!(full.admit().map_err(|f| f.limit), Err(1_000));
        // It comes back: what finishes is the pace again.
        for _ in 0..100 {
            backlog.finished();
        }
        backlog.counted_now(backlog.seen(), 400, half);
        assert!((backlog.pace() - 200.0).abs() < 1e-9);
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
