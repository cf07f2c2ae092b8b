//! The linker: retries pending links of created issues until the assignment
//! service accepts them. Links survive restarts (they are rows); every replica
//! may run a linker, and a link done twice is harmless (its request id is
//! derived from the creation, so the assignment service applies it once).

use std::time::Duration;

use sea_orm::{
    ColumnTrait as _, Condition, EntityTrait as _, QueryFilter as _, QueryOrder as _,
    QuerySelect as _,
};
use service_runtime::shutdown::Shutdown;
use service_runtime::time::now;

use super::IssueService;
use crate::storage::entities::issue_creation;

/// Backoff before link attempt `attempt + 1`: exponential, capped at 5 minutes,
/// with jitter.
pub fn backoff(attempt: i32) -> Duration {
    let exp = u32::try_from(attempt.clamp(0, 20)).unwrap_or(20);
    let base = Duration::from_millis(500).saturating_mul(2u32.saturating_pow(exp));
    let capped = base.min(Duration::from_secs(300));
    let millis = u64::try_from(capped.as_millis()).unwrap_or(300_000);
    Duration::from_millis(millis / 2 + rand::random_range(0..=millis / 2))
}

/// Links due creations until shutdown.
pub async fn run_linker(service: IssueService, shutdown: Shutdown) {
    loop {
        let due = issue_creation::Entity::find()
            .filter(issue_creation::Column::LinkState.eq("pending"))
            .filter(
                Condition::any()
                    .add(issue_creation::Column::NextLinkAt.is_null())
                    .add(issue_creation::Column::NextLinkAt.lte(now())),
            )
            .order_by_asc(issue_creation::Column::NextLinkAt)
            .limit(50)
            .all(service.db.conn())
            .await;
        match due {
            Ok(rows) => {
                for row in rows {
                    let id = row.id.clone();
                    if let Err(error) = service.try_link(row).await {
                        tracing::warn!(%error, creation = %id, "link attempt failed to record");
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "linker cannot read due links"),
        }
        tokio::select! {
            () = shutdown.wait() => return,
            () = service.links_due.notified() => {}
            () = tokio::time::sleep(service.settings.link_poll_interval) => {}
        }
    }
}
