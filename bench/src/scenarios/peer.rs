//! peer: the same notifications in a file-backed NATS JetStream stream,
//! replayed by as many ordered consumers as the fan-out has subscribers. The
//! figure a team would get by putting a broker where our stream is.

use std::time::{Duration, Instant};

use async_nats::jetstream;
use futures_util::StreamExt as _;
use prost::Message as _;

use crate::scenarios::baselines::sample_notification;

/// Where the NATS server is expected.
pub const NATS_URL: &str = "127.0.0.1:4222";

/// How long a consumer may go without a message before it counts as stalled.
const STALL: Duration = Duration::from_secs(10);

/// Whether a NATS server answers at [`NATS_URL`].
pub async fn reachable() -> bool {
    tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect(NATS_URL),
    )
    .await
    .is_ok_and(|c| c.is_ok())
}

/// What a replay measured.
#[derive(Debug, Clone, Copy)]
pub struct Replay {
    /// Deliveries per second, summed over consumers, up to the last delivery.
    pub per_s: f64,
    /// Messages delivered, over all consumers.
    pub delivered: usize,
    /// Messages that should have been (consumers × messages).
    pub expected: usize,
}

/// Publishes `messages` notifications to a fresh file-backed stream, then
/// replays them with `consumers` ordered consumers at once.
pub async fn replay(consumers: usize, messages: usize) -> anyhow::Result<Replay> {
    let client = async_nats::connect(NATS_URL).await?;
    let js = jetstream::new(client);
    let name = format!("BENCH_{}", std::process::id());
    let subject = format!("bench.{}.notifications", std::process::id());
    let _ = js.delete_stream(&name).await;
    let stream = js
        .create_stream(jetstream::stream::Config {
            name: name.clone(),
            subjects: vec![subject.clone()],
            storage: jetstream::stream::StorageType::File,
            ..Default::default()
        })
        .await?;
    // Publish with acknowledgements pipelined in windows, as a producer would.
    let mut pending = Vec::with_capacity(1024);
    for sequence in 1..=messages as u64 {
        let payload = sample_notification(sequence).encode_to_vec();
        pending.push(js.publish(subject.clone(), payload.into()).await?);
        if pending.len() == 1024 {
            for ack in pending.drain(..) {
                ack.await?;
            }
        }
    }
    for ack in pending.drain(..) {
        ack.await?;
    }

    // Consumers are created first (pull consumers receive nothing until they
    // pull); the clock starts when they all start pulling.
    let mut readers = Vec::with_capacity(consumers);
    for _ in 0..consumers {
        readers.push(
            stream
                .create_consumer(jetstream::consumer::pull::OrderedConfig {
                    deliver_policy: jetstream::consumer::DeliverPolicy::All,
                    ..Default::default()
                })
                .await?,
        );
    }
    let start = Instant::now();
    let tasks = readers.into_iter().map(|consumer| {
        tokio::spawn(async move {
            let mut received = 0;
            let mut last = Instant::now();
            let Ok(mut messages_stream) = consumer.messages().await else {
                return (received, last);
            };
            while received < messages {
                // An ordered consumer that stalls (seen with 1,000 of them)
                // would hang the run: give up after STALL without a message.
                match tokio::time::timeout(STALL, messages_stream.next()).await {
                    Ok(Some(Ok(_))) => {
                        received += 1;
                        last = Instant::now();
                    }
                    _ => break,
                }
            }
            (received, last)
        })
    });
    let mut total = 0;
    let mut last = start;
    for task in futures_util::future::join_all(tasks).await {
        let (received, at) = task?;
        total += received;
        last = last.max(at);
    }
    js.delete_stream(&name).await?;
    Ok(Replay {
        per_s: total as f64 / last.duration_since(start).as_secs_f64().max(1e-9),
        delivered: total,
        expected: consumers * messages,
    })
}
