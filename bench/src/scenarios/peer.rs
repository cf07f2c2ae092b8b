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

/// Publishes `messages` notifications to a fresh file-backed stream, then
/// replays them with `consumers` ordered consumers at once; deliveries per
/// second, summed over consumers.
pub async fn replay(consumers: usize, messages: usize) -> anyhow::Result<f64> {
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
            let Ok(mut messages_stream) = consumer.messages().await else {
                return received;
            };
            while received < messages {
                // An ordered consumer that stalls (seen once in 1,000) would
                // hang the run: give up after 10 s without a message.
                match tokio::time::timeout(STALL, messages_stream.next()).await {
                    Ok(Some(Ok(_))) => received += 1,
                    _ => break,
                }
            }
            received
        })
    });
    let mut total = 0;
    for task in futures_util::future::join_all(tasks).await {
        total += task?;
    }
    let per_s = total as f64 / start.elapsed().as_secs_f64();
    js.delete_stream(&name).await?;
    if total != consumers * messages {
        anyhow::bail!(
            "JetStream replay delivered {total} of {}",
            consumers * messages
        );
    }
    Ok(per_s)
}
