//! The tailer: the one reader of new log rows in a process.

use sea_orm::sqlx::postgres::PgListener;
use service_runtime::config::DatabaseKind;
use std::sync::Arc;

use super::{BATCH_SIZE, Batch, StreamHub};
use crate::domain::Sequence;
use crate::notification_log::{self, NOTIFY_CHANNEL};

/// Reads new rows and publishes them on the ring until shutdown.
pub async fn run_tailer(hub: StreamHub) {
    // LISTEN before reading the head, so no commit can fall between the two.
    let mut listener = None;
    if hub.db.kind() == DatabaseKind::Postgres {
        listener = listen(&hub).await;
    }
    let mut published = loop {
        match notification_log::bounds(hub.db.conn()).await {
            Ok(bounds) => {
                hub.head
                    .store(bounds.head.get(), std::sync::atomic::Ordering::Relaxed);
                super::raise(&hub.metrics.head, bounds.head);
                break bounds.head;
            }
            Err(error) => {
                tracing::warn!(%error, "stream tailer cannot read the log head; retrying");
                tokio::select! {
                    () = hub.shutdown.wait() => return,
                    () = tokio::time::sleep(hub.settings.poll_interval) => {}
                }
            }
        }
    };
    loop {
        if listener.is_none() && hub.db.kind() == DatabaseKind::Postgres {
            listener = listen(&hub).await;
        }
        published = publish_new_rows(&hub, published).await;
        hub.rounds
            .send_modify(|round| *round = round.wrapping_add(1));
        tokio::select! {
            () = hub.shutdown.wait() => return,
            () = hub.waker.woken() => {}
            () = tokio::time::sleep(hub.settings.poll_interval) => {}
            received = recv(&mut listener) => {
                if let Err(error) = received {
                    tracing::warn!(%error, "stream tailer lost its LISTEN connection; polling until it is back");
                    listener = None;
                }
            }
        }
    }
}

/// Publishes every row after `published`; returns the new position.
async fn publish_new_rows(hub: &StreamHub, mut published: Sequence) -> Sequence {
    loop {
        let rows = match notification_log::read_after(hub.db.conn(), published, BATCH_SIZE).await {
            Ok(rows) => rows,
            Err(error) => {
                tracing::warn!(%error, "stream tailer cannot read new notifications");
                return published;
            }
        };
        let Some(last) = rows.last().map(|n| n.sequence) else {
            return published;
        };
        let full = rows.len() as u64 == BATCH_SIZE;
        let batch = Batch {
            after: published,
            last,
            notifications: rows.into_iter().map(Arc::new).collect(),
        };
        published = last;
        hub.metrics
            .notifications
            .inc_by(batch.notifications.len() as u64);
        hub.head
            .store(last.get(), std::sync::atomic::Ordering::Relaxed);
        // Other replicas' commits reach the gauge here; this process's were
        // counted when they committed (`LogWaker::committed`).
        super::raise(&hub.metrics.head, last);
        // No receivers is not an error: nobody is subscribed right now.
        let _ = hub.ring.send(Arc::new(batch));
        if !full {
            return published;
        }
    }
}

/// Opens a `LISTEN` connection of its own (not from the pool: a pool busy with
/// writers must not delay the wake-ups), giving up after the poll interval.
async fn listen(hub: &StreamHub) -> Option<PgListener> {
    let connect = PgListener::connect(hub.db.url().as_str());
    let connected = tokio::time::timeout(hub.settings.poll_interval, connect).await;
    let mut listener = match connected.unwrap_or_else(|_| {
        Err(sea_orm::sqlx::Error::Protocol(
            "timed out connecting for LISTEN".into(),
        ))
    }) {
        Ok(listener) => listener,
        Err(error) => {
            tracing::warn!(%error, "stream tailer cannot LISTEN; polling");
            return None;
        }
    };
    match listener.listen(NOTIFY_CHANNEL).await {
        Ok(()) => Some(listener),
        Err(error) => {
            tracing::warn!(%error, "stream tailer cannot LISTEN; polling");
            None
        }
    }
}

async fn recv(listener: &mut Option<PgListener>) -> Result<(), sea_orm::sqlx::Error> {
    match listener {
        Some(listener) => listener.recv().await.map(|_| ()),
        None => std::future::pending().await,
    }
}
