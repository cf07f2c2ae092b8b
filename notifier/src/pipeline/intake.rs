//! Following the notification stream and storing each notification.
//!
//! The stream starts after the last sequence stored (or, on a fresh
//! database, after the durable subscriber's acknowledged cursor, or at the
//! head when the subscriber is new) and resumes after the last one handled
//! when it breaks ([`jira_sync_client::Subscriber`]). A notification is stored
//! once: one received again after a restart is ignored.

use std::time::Duration;

use jira_sync_client::{
    ConnectOptions, Event, Start, SubscribeError, Subscriber, SubscriberOptions, assignment as pb,
};
use service_runtime::shutdown::Shutdown;
use tokio::sync::mpsc;

use super::Wakers;
use crate::deliveries;
use crate::domain::Notification;
use service_runtime::database::Database;

/// Where the stream is and who we are.
#[derive(Debug, Clone)]
pub struct Source {
    /// The assignment service's gRPC URL.
    pub url: String,
    /// Token and TLS.
    pub connect: ConnectOptions,
    /// The durable subscriber's name.
    pub subscriber_name: String,
}

/// Converts a notification at the edge.
fn notification(n: pb::Notification) -> Result<Notification, String> {
    let kind = pb::NotificationKind::try_from(n.kind)
        .map_err(|_| format!("unknown notification kind {}", n.kind))?
        .as_str_name()
        .trim_start_matches("NOTIFICATION_KIND_")
        .to_lowercase();
    let sequence = i64::try_from(n.sequence).map_err(|_| "sequence out of range".to_owned())?;
    let created_at = n
        .create_time
        .and_then(|t| {
            chrono::DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0))
        })
        .unwrap_or_else(chrono::Utc::now);
    Ok(Notification {
        sequence,
        recipient: n.recipient_user_id,
        organization_id: n.organization_id,
        group_id: n.group_id,
        external_issue_key: n.external_issue_key,
        integration_id: n.integration_id,
        kind,
        message: n.message,
        message_key: n.message_key,
        update: n.update,
        created_at,
        traceparent: n.traceparent,
    })
}

/// Where to start: after the last stored sequence, else after the durable
/// subscriber's cursor, else at the head.
async fn start(db: &Database, source: &Source) -> anyhow::Result<Start> {
    if let Some((received, _)) = deliveries::position(db).await? {
        return Ok(Start::After(u64::try_from(received).unwrap_or(0)));
    }
    let mut client = pb::notification_service_client::NotificationServiceClient::new(
        jira_sync_client::connect(&source.url, &source.connect)?,
    );
    let answer = client
        .get_subscriber(pb::GetSubscriberRequest {
            subscriber_name: source.subscriber_name.clone(),
        })
        .await;
    match answer {
        Ok(found) => Ok(Start::After(
            found
                .into_inner()
                .subscriber
                .map_or(0, |s| s.acknowledged_sequence),
        )),
        Err(status) if status.code() == tonic::Code::NotFound => Ok(Start::Head),
        Err(status) => Err(status.into()),
    }
}

/// Follows the stream until shutdown, storing every notification.
pub async fn run(
    db: Database,
    source: Source,
    wakers: Wakers,
    arrivals: mpsc::Sender<i64>,
    shutdown: Shutdown,
) {
    let mut pause = Duration::from_millis(100);
    while !shutdown.is_triggered() {
        let followed = tokio::select! {
            () = shutdown.wait() => return,
            result = follow(&db, &source, &wakers, &arrivals) => result,
        };
        match followed {
            Ok(()) => {
                pause = Duration::from_millis(100);
                continue;
            }
            Err(error) => {
                tracing::warn!(%error, ?pause, "notification intake stopped; starting again");
            }
        }
        tokio::select! {
            () = shutdown.wait() => return,
            () = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(Duration::from_secs(10));
    }
}

async fn follow(
    db: &Database,
    source: &Source,
    wakers: &Wakers,
    arrivals: &mpsc::Sender<i64>,
) -> anyhow::Result<()> {
    let start = start(db, source).await?;
    tracing::info!(?start, "following the notification stream");
    let mut options = SubscriberOptions::new(source.url.clone(), start);
    options.connect = source.connect.clone();
    let mut subscriber = Subscriber::new(options)?;
    let result = subscriber
        .run(|event| async move {
            match event {
                Event::Notification(n) => {
                    let n = notification(n)?;
                    deliveries::receive(db, &n).await?;
                    // The dispatcher learns whose line grew; when it is
                    // behind, a full re-read finds the rest.
                    if arrivals.try_send(n.recipient).is_err() {
                        wakers.dispatch.notify_one();
                    }
                }
                Event::Progress(through) => {
                    deliveries::progress(db, i64::try_from(through).unwrap_or(i64::MAX)).await?;
                    wakers.acknowledge.notify_one();
                }
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        })
        .await;
    match result {
        Ok(()) => Ok(()),
        Err(SubscribeError::OutOfRange { cursor, oldest }) => {
            // Notifications between were pruned before we read them: they
            // cannot be delivered. Go on from the oldest, loudly.
            tracing::error!(
                ?cursor,
                oldest,
                "the stream no longer holds notifications after our cursor; they are lost to this notifier, resuming from the oldest available"
            );
            deliveries::progress(db, i64::try_from(oldest.saturating_sub(1)).unwrap_or(0)).await?;
            Ok(())
        }
        Err(error) => Err(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_convert_with_their_kind_name() {
        let converted = notification(pb::Notification {
            sequence: 7,
            recipient_user_id: 3,
            kind: pb::NotificationKind::AssigneeChanged.into(),
            message: "hi".into(),
            message_key: "k".into(),
            update: true,
            ..Default::default()
        })
        .expect("converts");
        assert_eq!(converted.kind, "assignee_changed");
        assert_eq!((converted.sequence, converted.recipient), (7, 3));
        assert!(converted.update);
        assert!(
            notification(pb::Notification {
                kind: 99,
                ..Default::default()
            })
            .is_err()
        );
    }
}
