//! Baselines measured in the same run: the cheapest one gRPC hop, one gRPC
//! fan-out and one durable write can be on this machine.
//!
//! The echo and broadcast servers run in their own process (this binary's
//! `serve-baselines` command), as the services do, so their CPU does not mix
//! with the load generator's and their memory can be read from `/proc`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use proto::assignment::v1 as assignment;
use sea_orm::{ConnectionTrait as _, Statement, TransactionTrait as _};
use service_runtime::config::{DatabaseKind, DatabaseUrl};
use service_runtime::database::{Database, PoolSettings};
use tokio::sync::watch;
use tokio_stream::StreamExt as _;
use tonic::{Request, Response, Status};

use crate::bench_proto::broadcast_service_server::{BroadcastService, BroadcastServiceServer};
use crate::bench_proto::echo_service_client::EchoServiceClient;
use crate::bench_proto::echo_service_server::{EchoService, EchoServiceServer};
use crate::bench_proto::{EchoRequest, EchoResponse, WatchRequest};
use crate::report::Latency;

/// A notification like the ones the service sends (same fields, similar sizes).
pub fn sample_notification(sequence: u64) -> assignment::SubscribeResponse {
    let group = 1_000 + (sequence % 1_000) as i64;
    assignment::SubscribeResponse::from(assignment::subscribe_response::Event::Notification(
        assignment::Notification {
            sequence,
            recipient_user_id: 1 + (sequence % 200) as i64,
            organization_id: 1,
            group_id: group,
            external_issue_key: format!("BENCH-{}", sequence % 1_000),
            integration_id: "bench-jira".into(),
            kind: assignment::NotificationKind::Assigned.into(),
            message: format!(
                "You were assigned to \"TypeError in handler {group}\" by Jira (BENCH-{}).",
                sequence % 1_000
            ),
            message_key: format!("group-{group}-assignment"),
            update: sequence.is_multiple_of(2),
            create_time: Some(prost_types::Timestamp {
                seconds: 1_764_000_000,
                nanos: 0,
            }),
            activity_id: sequence as i64,
            traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
        },
    ))
}

/// Echo and broadcast servers.
#[derive(Debug)]
struct Baselines {
    /// Watchers joined in the current round, and the round's start signal.
    round: std::sync::Mutex<(u32, watch::Sender<u64>)>,
    /// The messages broadcast, built once.
    messages: std::sync::Mutex<Arc<Vec<assignment::SubscribeResponse>>>,
}

#[tonic::async_trait]
impl EchoService for Arc<Baselines> {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoResponse>, Status> {
        Ok(Response::new(EchoResponse {
            payload: request.into_inner().payload,
        }))
    }
}

type WatchStream = std::pin::Pin<
    Box<dyn tokio_stream::Stream<Item = Result<assignment::SubscribeResponse, Status>> + Send>,
>;

#[tonic::async_trait]
impl BroadcastService for Arc<Baselines> {
    type WatchStream = WatchStream;

    /// Joins the round; when the `expected`-th watcher joins, every watcher of
    /// the round streams the same `messages` notifications.
    async fn watch(&self, request: Request<WatchRequest>) -> Result<Response<WatchStream>, Status> {
        let WatchRequest { expected, messages } = request.into_inner();
        let mut started = {
            let mut round = self.round.lock().unwrap_or_else(|e| e.into_inner());
            let receiver = round.1.subscribe();
            round.0 += 1;
            if round.0 >= expected {
                round.0 = 0;
                let mut built = self.messages.lock().unwrap_or_else(|e| e.into_inner());
                if built.len() != messages as usize {
                    *built = Arc::new((1..=u64::from(messages)).map(sample_notification).collect());
                }
                round.1.send_modify(|generation| *generation += 1);
            }
            receiver
        };
        let state = Arc::clone(self);
        let (sender, receiver) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            if started.changed().await.is_err() {
                return;
            }
            // Read after the start: the watcher that started the round built them.
            let messages = Arc::clone(&state.messages.lock().unwrap_or_else(|e| e.into_inner()));
            for message in messages.iter() {
                if sender.send(Ok(message.clone())).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(receiver),
        )))
    }
}

/// Serves the baselines on `addr` until killed.
pub async fn serve(addr: SocketAddr) -> anyhow::Result<()> {
    let state = Arc::new(Baselines {
        round: std::sync::Mutex::new((0, watch::channel(0).0)),
        messages: std::sync::Mutex::new(Arc::new(Vec::new())),
    });
    tonic::transport::Server::builder()
        .add_service(EchoServiceServer::new(Arc::clone(&state)))
        .add_service(BroadcastServiceServer::new(state))
        .serve(addr)
        .await?;
    Ok(())
}

/// Calls per second and latency of a closed loop of `concurrency` callers.
#[derive(Debug, Clone, Copy)]
pub struct CallRate {
    /// Completed calls per second.
    pub per_s: f64,
    /// Call latency.
    pub latency: Latency,
    /// Calls that failed.
    pub errors: usize,
}

/// Runs `call` in a closed loop from `concurrency` tasks for `duration`.
pub async fn closed_loop<F, Fut>(concurrency: usize, duration: Duration, call: F) -> CallRate
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let call = Arc::new(call);
    let next = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let end = start + duration;
    let workers = (0..concurrency).map(|_| {
        let (call, next, errors) = (Arc::clone(&call), Arc::clone(&next), Arc::clone(&errors));
        tokio::spawn(async move {
            let mut samples = Vec::new();
            while Instant::now() < end {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let sent = Instant::now();
                if call(n).await {
                    samples.push(sent.elapsed());
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            samples
        })
    });
    let mut samples = Vec::new();
    for worker in futures_util::future::join_all(workers).await {
        samples.extend(worker.unwrap_or_default());
    }
    let elapsed = start.elapsed().as_secs_f64();
    CallRate {
        per_s: samples.len() as f64 / elapsed,
        latency: Latency::of(samples),
        errors: errors.load(Ordering::Relaxed),
    }
}

/// The echo ceiling: `concurrency` callers over one channel, 200-byte payloads
/// (about a SyncAssigneeInbound request).
pub async fn echo(
    addr: SocketAddr,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<CallRate> {
    let client = EchoServiceClient::new(crate::bed::channel(addr)?);
    let payload = vec![7_u8; 200];
    Ok(closed_loop(concurrency, duration, move |_| {
        let (mut client, payload) = (client.clone(), payload.clone());
        async move { client.echo(EchoRequest { payload }).await.is_ok() }
    })
    .await)
}

/// Durable-write ceilings on the database kind the services use.
#[derive(Debug, Clone, Copy)]
pub struct WriteCeilings {
    /// Single-row insert-and-commit statements (autocommit) per second, one
    /// connection.
    pub commits_per_s: f64,
    /// The same with eight connections (PostgreSQL only; SQLite has one writer).
    pub commits_per_s_8: Option<f64>,
    /// Rows per second in 100-row transactions.
    pub batched_rows_per_s: f64,
}

/// Runs the raw sea-orm write loops against `url` (a fresh database).
pub async fn write_ceilings(url: &str, duration: Duration) -> anyhow::Result<WriteCeilings> {
    let url: DatabaseUrl = url.parse()?;
    let db = Database::connect(&url, &PoolSettings::default()).await?;
    let backend = db.backend();
    let create = match db.kind() {
        DatabaseKind::Sqlite => {
            "CREATE TABLE bench_rows (id INTEGER PRIMARY KEY AUTOINCREMENT, payload TEXT NOT NULL, created_at TEXT NOT NULL)"
        }
        DatabaseKind::Postgres => {
            "CREATE TABLE bench_rows (id BIGSERIAL PRIMARY KEY, payload TEXT NOT NULL, created_at TEXT NOT NULL)"
        }
    };
    db.conn().execute_unprepared(create).await?;
    let insert = match db.kind() {
        DatabaseKind::Sqlite => "INSERT INTO bench_rows (payload, created_at) VALUES (?, ?)",
        DatabaseKind::Postgres => "INSERT INTO bench_rows (payload, created_at) VALUES ($1, $2)",
    };
    let row = move |n: usize| {
        Statement::from_sql_and_values(
            backend,
            insert,
            [
                format!("notification payload {n:08} for group {}", n % 1000).into(),
                chrono::Utc::now().to_rfc3339().into(),
            ],
        )
    };

    let commit_loop = |connections: usize| {
        let db = db.clone();
        async move {
            let count = Arc::new(AtomicUsize::new(0));
            let start = Instant::now();
            let end = start + duration;
            let workers = (0..connections).map(|_| {
                let (db, count) = (db.clone(), Arc::clone(&count));
                tokio::spawn(async move {
                    while Instant::now() < end {
                        let n = count.fetch_add(1, Ordering::Relaxed);
                        // An autocommit insert: one statement, one commit.
                        db.conn().execute_raw(row(n)).await?;
                    }
                    anyhow::Ok(())
                })
            });
            for worker in futures_util::future::join_all(workers).await {
                worker??;
            }
            anyhow::Ok(count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64())
        }
    };
    let commits_per_s = commit_loop(1).await?;
    let commits_per_s_8 = match db.kind() {
        DatabaseKind::Postgres => Some(commit_loop(8).await?),
        DatabaseKind::Sqlite => None,
    };

    let start = Instant::now();
    let mut rows = 0;
    while start.elapsed() < duration {
        let txn = db.conn().begin().await?;
        for _ in 0..100 {
            txn.execute_raw(row(rows)).await?;
            rows += 1;
        }
        txn.commit().await?;
    }
    let batched_rows_per_s = rows as f64 / start.elapsed().as_secs_f64();
    db.close().await?;
    Ok(WriteCeilings {
        commits_per_s,
        commits_per_s_8,
        batched_rows_per_s,
    })
}

/// Deliveries of a fan-out run.
#[derive(Debug, Clone, Copy)]
pub struct Fanout {
    /// Messages received per second, summed over subscribers.
    pub deliveries_per_s: f64,
    /// Messages received, summed over subscribers.
    pub delivered: usize,
    /// Messages lost or duplicated (must be zero).
    pub anomalies: usize,
}

/// Opens `subscribers` streams spread over `channels` with `open`, then runs
/// `start` (which publishes and returns how many notifications each subscriber
/// must receive) and times, from its beginning, how long until every subscriber
/// received that many consecutive notifications.
pub async fn fan_out<Open, OpenFut, Start, StartFut>(
    subscribers: usize,
    channels: &[tonic::transport::Channel],
    open: Open,
    start: Start,
) -> anyhow::Result<Fanout>
where
    Open: Fn(tonic::transport::Channel) -> OpenFut,
    OpenFut: Future<Output = Result<tonic::Streaming<crate::bench_proto::SkimResponse>, Status>>
        + Send
        + 'static,
    Start: FnOnce() -> StartFut,
    StartFut: Future<Output = anyhow::Result<usize>>,
{
    // Open every stream before anything is published.
    let mut streams = Vec::with_capacity(subscribers);
    let indices: Vec<usize> = (0..subscribers).collect();
    for chunk in indices.chunks(128) {
        let opened = futures_util::future::join_all(
            chunk
                .iter()
                .map(|i| open(channels[i % channels.len()].clone())),
        )
        .await;
        for stream in opened {
            streams.push(stream?);
        }
    }
    let (target_sender, target) = watch::channel(None::<usize>);
    let (done_sender, mut done) = tokio::sync::mpsc::unbounded_channel();
    // A subscriber that misses notifications would wait forever: give up after
    // this long and count what is missing.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    for mut stream in streams {
        let (done_sender, mut target) = (done_sender.clone(), target.clone());
        tokio::spawn(async move {
            let mut received = 0_usize;
            let mut anomalies = 0_usize;
            let mut last: Option<u64> = None;
            loop {
                if target.borrow().is_some_and(|t| received >= t) {
                    break;
                }
                tokio::select! {
                    message = stream.next() => match message {
                        Some(Ok(message)) => {
                            if let Some(notification) = message.notification {
                                if last.is_some_and(|l| notification.sequence != l + 1) {
                                    anomalies += 1;
                                }
                                last = Some(notification.sequence);
                                received += 1;
                            }
                        }
                        _ => break,
                    },
                    changed = target.changed() => if changed.is_err() { break },
                    () = tokio::time::sleep_until(deadline) => break,
                }
            }
            let _ = done_sender.send((Instant::now(), received, anomalies));
        });
    }
    drop(done_sender);
    let began = Instant::now();
    let expected = start().await?;
    let _ = target_sender.send(Some(expected));
    let mut last = began;
    let mut anomalies = 0;
    let mut total = 0;
    while let Some((at, received, bad)) = done.recv().await {
        last = last.max(at);
        anomalies += bad;
        total += received;
    }
    anomalies += (expected * subscribers).abs_diff(total);
    Ok(Fanout {
        deliveries_per_s: total as f64 / last.duration_since(began).as_secs_f64().max(1e-9),
        delivered: total,
        anomalies,
    })
}
