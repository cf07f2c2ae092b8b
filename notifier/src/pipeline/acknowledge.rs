//! Acknowledging the stream as the durable subscriber, up to the highest
//! sequence below which every delivery is done: the service's cursor then
//! says what reached people (its lag metric is the notifier's backlog), and a
//! notifier whose database was lost resumes from there.

use std::time::Duration;

use jira_sync_client::assignment as pb;
use service_runtime::database::Database;
use service_runtime::shutdown::Shutdown;

use super::Wakers;
use super::intake::Source;
use crate::deliveries;
use crate::metrics::Metrics;

/// How often the position is checked when nothing wakes the task.
const INTERVAL: Duration = Duration::from_secs(1);

/// The shortest time between two acknowledgements: under load one covers
/// many deliveries instead of one each.
const COALESCE: Duration = Duration::from_millis(50);

/// How often the per-state gauges are refreshed (a scan of the record).
const GAUGES: Duration = Duration::from_secs(5);

/// Acknowledges until shutdown (and once more after it).
pub async fn run(
    db: Database,
    source: Source,
    metrics: Metrics,
    wakers: Wakers,
    shutdown: Shutdown,
) {
    let client = match jira_sync_client::connect(&source.url, &source.connect) {
        Ok(channel) => pb::notification_service_client::NotificationServiceClient::new(channel),
        Err(error) => {
            tracing::error!(%error, "cannot reach the assignment service to acknowledge");
            return;
        }
    };
    let mut acknowledged = deliveries::position(&db)
        .await
        .ok()
        .flatten()
        .map_or(0, |(_, acked)| acked);
    metrics.acknowledged(acknowledged);
    let mut gauges_at = tokio::time::Instant::now();
    loop {
        let stopping = shutdown.is_triggered();
        match deliveries::done_through(&db).await {
            Ok(through) if through > acknowledged => {
                let answer = client
                    .clone()
                    .acknowledge_notifications(pb::AcknowledgeNotificationsRequest {
                        subscriber_name: source.subscriber_name.clone(),
                        sequence: u64::try_from(through).unwrap_or(0),
                    })
                    .await;
                match answer {
                    Ok(_) => {
                        acknowledged = through;
                        metrics.acknowledged(through);
                        if let Err(error) = deliveries::acknowledged(&db, through).await {
                            tracing::warn!(%error, "acknowledged position not recorded");
                        }
                    }
                    Err(status) => {
                        tracing::warn!(%status, through, "acknowledgement failed; sent again later");
                    }
                }
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "cannot read what is done"),
        }
        if stopping || gauges_at.elapsed() >= GAUGES {
            gauges_at = tokio::time::Instant::now();
            match deliveries::counts(&db).await {
                Ok(counts) => metrics.deliveries(&counts),
                Err(error) => tracing::debug!(%error, "delivery counts unavailable"),
            }
        }
        if stopping {
            return;
        }
        tokio::select! {
            () = shutdown.wait() => {}
            () = wakers.acknowledge.notified() => {
                tokio::select! {
                    () = shutdown.wait() => {}
                    () = tokio::time::sleep(COALESCE) => {}
                }
            }
            () = tokio::time::sleep(INTERVAL) => {}
        }
    }
}
