//! The dispatcher's wake-up call: whoever makes a delivery due (the inbox
//! writer after a commit that stored one or moved an issue's queue on to its
//! next, a claim that moved a stale head on, the retry RPC) wakes the
//! dispatcher so it claims at once instead of at its next poll. Only then:
//! the dispatcher claims on nothing else but its poll, so a wake-up for
//! nothing costs a claim that finds nothing. Wake-ups coalesce; a missed one
//! costs at most one poll interval.

use std::sync::Arc;

use tokio::sync::Notify;

/// Wakes the dispatcher; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct DispatchWaker(Arc<Notify>);

impl DispatchWaker {
    /// There may be new work.
    pub fn wake(&self) {
        self.0.notify_one();
    }

    /// Completes at the next wake-up (or at once if one is pending).
    pub async fn woken(&self) {
        self.0.notified().await;
    }
}
