//! The dispatcher's wake-up call: whoever stores or requeues a delivery (the
//! intake, the inbox writer, the retry RPC) wakes the dispatcher so it claims at
//! once instead of at its next poll. Wake-ups coalesce; a missed one costs at
//! most one poll interval.

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
