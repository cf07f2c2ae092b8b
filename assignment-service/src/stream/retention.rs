//! Retention: a background task that prunes old notifications and old entries
//! of the outbound log (by age and by count, the same limits), and old
//! idempotency records.

use std::time::Duration;

use service_runtime::database::Database;
use service_runtime::idempotency;
use service_runtime::shutdown::Shutdown;
use service_runtime::time::now;

use crate::notification_log::{self, Retention};

/// What retention keeps and how often it runs.
#[derive(Debug, Clone, Copy)]
pub struct RetentionSettings {
    /// Notifications kept, and outbound log entries kept.
    pub notifications: Retention,
    /// How long stored responses of mutating calls are kept.
    pub request_ids: Duration,
    /// How often retention runs.
    pub interval: Duration,
}

/// Prunes once per interval until shutdown.
pub async fn run_retention(db: Database, settings: RetentionSettings, shutdown: Shutdown) {
    loop {
        match notification_log::prune(&db, settings.notifications).await {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, "retention pruned notifications"),
            Err(error) => tracing::warn!(%error, "retention could not prune notifications"),
        }
        match crate::outbound::prune(&db, settings.notifications).await {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, "retention pruned the outbound log"),
            Err(error) => tracing::warn!(%error, "retention could not prune the outbound log"),
        }
        let cutoff = now()
            - chrono::Duration::from_std(settings.request_ids).unwrap_or(chrono::Duration::MAX);
        if let Err(error) = idempotency::prune(&db, cutoff).await {
            tracing::warn!(%error, "retention could not prune request ids");
        }
        tokio::select! {
            () = shutdown.wait() => return,
            () = tokio::time::sleep(settings.interval) => {}
        }
    }
}
