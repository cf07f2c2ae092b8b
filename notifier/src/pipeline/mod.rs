//! From the stream to the chat tools, in three tasks sharing the delivery
//! record ([`crate::deliveries`]):
//!
//! - [`intake`] follows the assignment service's notification stream (resuming
//!   after the last notification stored) and stores each notification before
//!   anything else happens to it;
//! - [`dispatch`] sends stored deliveries: per recipient in sequence order (an
//!   edit never overtakes its message), different recipients in parallel up
//!   to `--concurrency`, honouring each destination's rate limit;
//! - [`acknowledge`] acknowledges the stream as the durable subscriber up to
//!   the highest sequence below which every delivery is done (sent, stopped or
//!   undeliverable), so the service's cursor says what reached people.
//!
//! One notifier process per subscriber name: the dispatcher keeps which
//! recipients are in flight in memory.
//!
//! Lifecycle: the three start with the service and stop at shutdown; a
//! delivery interrupted by the stop stays `sending` and is resent with the
//! same idempotency marker at the next start.

pub mod acknowledge;
pub mod dispatch;
pub mod intake;
pub mod pace;

use std::sync::Arc;

use tokio::sync::Notify;

/// Wakes the dispatcher (a notification stored, a delivery retried) and the
/// acknowledger (a delivery done); carries the destinations the API changes.
#[derive(Debug, Clone, Default)]
pub struct Wakers {
    /// The dispatcher's.
    pub dispatch: Arc<Notify>,
    /// The acknowledger's.
    pub acknowledge: Arc<Notify>,
    /// Destinations as the dispatcher reads them; the API forgets an entry it
    /// changes.
    pub destinations: crate::destinations::Cache,
}
