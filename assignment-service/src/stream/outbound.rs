//! Serving the outbound log ([`crate::outbound`]) to its reader, the tracker.
//!
//! Each watch is a task with a small bounded channel to its gRPC stream: it
//! reads the log after its cursor in batches, sends them, and when it is
//! caught up waits for the tailer's next look at the database (woken by local
//! commits, PostgreSQL `NOTIFY` from other replicas, or the poll), sending a
//! heartbeat with the head after a silent progress interval. The log is small
//! and has one or two readers, so there is no shared ring: a slow reader only
//! delays itself. A cursor behind retention ends the stream with OUT_OF_RANGE;
//! shutdown ends it with UNAVAILABLE.

use tokio::sync::mpsc;

use super::StreamHub;
use crate::domain::Sequence;
use crate::error::AssignmentError;
use crate::outbound::{self, OutboundSync};

/// Entries per message.
pub const BATCH: u64 = 500;

/// What a watch sends: consecutive entries (none for a heartbeat) and the
/// head, or the error that ends it.
pub type OutboundItem = Result<(Vec<OutboundSync>, Sequence), Box<AssignmentError>>;

/// Starts a watch after `after`.
///
/// # Errors
/// OUT_OF_RANGE for a cursor behind retention or beyond the head; database
/// errors.
pub async fn watch(
    hub: &StreamHub,
    after: Sequence,
) -> Result<mpsc::Receiver<OutboundItem>, AssignmentError> {
    let bounds = outbound::bounds(hub.db.conn()).await?;
    if after > bounds.head {
        return Err(bounds.beyond_head(format!(
            "sequence {} is beyond the outbound log's head {}",
            after.get(),
            bounds.head.get()
        )));
    }
    if after < bounds.pruned_through {
        return Err(bounds.behind_retention(format!(
            "entries after {} were pruned; resume from {}",
            after.get(),
            bounds.oldest_available().get()
        )));
    }
    let (sender, receiver) = mpsc::channel(4);
    tokio::spawn(run(hub.clone(), after, sender));
    Ok(receiver)
}

async fn run(hub: StreamHub, mut cursor: Sequence, sender: mpsc::Sender<OutboundItem>) {
    let mut rounds = hub.rounds.subscribe();
    let mut idle_since = tokio::time::Instant::now();
    loop {
        // Mark the current round seen before reading, so a commit after the
        // read wakes the next wait.
        rounds.borrow_and_update();
        match outbound::read_after(hub.db.conn(), cursor, BATCH).await {
            Ok(entries) if !entries.is_empty() => {
                let full = entries.len() as u64 == BATCH;
                let last = entries.last().map_or(cursor, |e| e.sequence);
                if entries.first().map(|e| e.sequence) != Some(cursor.next()) {
                    // Pruned from under the reader (or a defect): never skip
                    // silently.
                    let error = match outbound::bounds(hub.db.conn()).await {
                        Ok(bounds) => bounds.behind_retention(format!(
                            "entries after {} were pruned while the stream read them",
                            cursor.get()
                        )),
                        Err(error) => error,
                    };
                    let _ = sender.send(Err(Box::new(error))).await;
                    return;
                }
                if sender.send(Ok((entries, last))).await.is_err() {
                    return;
                }
                cursor = last;
                idle_since = tokio::time::Instant::now();
                if full {
                    continue;
                }
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "outbound watch cannot read the log; retrying");
            }
        }
        let heartbeat_at = idle_since + hub.settings.progress_interval;
        tokio::select! {
            () = hub.shutdown.wait() => {
                let _ = sender.send(Err(Box::new(AssignmentError::ShuttingDown))).await;
                return;
            }
            () = sender.closed() => return,
            _ = rounds.changed() => {}
            () = tokio::time::sleep(hub.settings.poll_interval) => {}
            () = tokio::time::sleep_until(heartbeat_at) => {
                let head = outbound::bounds(hub.db.conn()).await.map_or(cursor, |b| b.head);
                if sender.send(Ok((Vec::new(), head))).await.is_err() {
                    return;
                }
                idle_since = tokio::time::Instant::now();
            }
        }
    }
}
