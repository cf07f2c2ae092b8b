//! The scenarios, and how big each one is in a quick and a full run.

pub mod baselines;
pub mod curves;
pub mod drain;
pub mod fanout;
pub mod ingest;
pub mod notify;
pub mod outbound;
pub mod peer;
pub mod plans;
pub mod sync_rpc;

use std::time::Duration;

use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;

use crate::bench_proto::SkimResponse;

/// Sizes of one run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// How long the closed-loop ingest sends.
    pub ingest_for: Duration,
    /// Concurrent senders / callers in closed-loop scenarios (and the echo baseline).
    pub concurrency: usize,
    /// Open-loop rate of the latency scenario.
    pub latency_rate: f64,
    /// The second, higher rate the latency scenario reports.
    pub latency_high_rate: f64,
    /// How long the latency scenario sends.
    pub latency_for: Duration,
    /// How long sync-rpc calls.
    pub sync_for: Duration,
    /// How long each raw database loop runs.
    pub db_for: Duration,
    /// Fan-out runs: (subscribers, notifications written).
    pub fanout: Vec<(usize, usize)>,
    /// The most deliveries the JetStream peer replays per run (its messages are
    /// capped to this over the consumer count, to bound the run's length).
    pub peer_max_deliveries: usize,
    /// Idle subscribers held open.
    pub idle_subscribers: usize,
    /// How long the outbound throughput run calls.
    pub outbound_for: Duration,
    /// Open-loop rate and duration of the outbound latency run.
    pub outbound_latency: (f64, Duration),
    /// The notifier's backlog: groups, users, rounds of reassignment.
    pub notify_backlog: (usize, usize, usize),
    /// Open-loop webhook rate and duration of the notifier latency run.
    pub notify_latency: (f64, Duration),
    /// Inbox backlogs the apply-rate curve is measured at, and each run's
    /// length.
    pub backlog_curve: (Vec<usize>, Duration),
    /// Groups per issue the sync curve is measured at, and each run's length.
    pub groups_curve: (Vec<usize>, Duration),
    /// Notifications behind the catching-up subscriber.
    pub catch_up: usize,
    /// Integrations the ingest curve is measured at, the issues spread over
    /// them, and each run's length.
    pub integrations_curve: (Vec<usize>, usize, Duration),
    /// Organizations sharing each issue the sync curve is measured at, and
    /// each run's length.
    pub organizations_curve: (Vec<usize>, Duration),
    /// Rounds of ingest under one-second retention, and each round's length.
    pub retention_rounds: (usize, Duration),
}

impl Plan {
    /// The plan for `--quick` or a full run. A quick run measures each cost
    /// curve at its two ends only, to stay within three minutes.
    pub fn new(quick: bool) -> Self {
        if quick {
            Self {
                ingest_for: Duration::from_secs(5),
                concurrency: 64,
                latency_rate: 500.0,
                latency_high_rate: 2_000.0,
                latency_for: Duration::from_secs(3),
                sync_for: Duration::from_secs(4),
                db_for: Duration::from_secs(2),
                fanout: vec![(100, 10_000), (1000, 1_000)],
                peer_max_deliveries: 2_000_000,
                idle_subscribers: 2_000,
                outbound_for: Duration::from_secs(4),
                outbound_latency: (200.0, Duration::from_secs(3)),
                notify_backlog: (100, 20, 6),
                notify_latency: (200.0, Duration::from_secs(3)),
                backlog_curve: (vec![0, 50_000], Duration::from_secs(3)),
                groups_curve: (vec![1, 20], Duration::from_secs(2)),
                catch_up: 50_000,
                integrations_curve: (vec![1, 1_000], 1_000, Duration::from_secs(3)),
                organizations_curve: (vec![1, 20], Duration::from_secs(2)),
                retention_rounds: (2, Duration::from_secs(3)),
            }
        } else {
            Self {
                ingest_for: Duration::from_secs(60),
                concurrency: 64,
                latency_rate: 500.0,
                latency_high_rate: 2_000.0,
                latency_for: Duration::from_secs(20),
                sync_for: Duration::from_secs(10),
                db_for: Duration::from_secs(5),
                fanout: vec![(100, 100_000), (1000, 100_000)],
                peer_max_deliveries: 10_000_000,
                idle_subscribers: 10_000,
                outbound_for: Duration::from_secs(10),
                outbound_latency: (200.0, Duration::from_secs(20)),
                notify_backlog: (200, 30, 10),
                notify_latency: (200.0, Duration::from_secs(20)),
                backlog_curve: (vec![0, 100_000, 1_000_000], Duration::from_secs(10)),
                groups_curve: (vec![1, 10, 100], Duration::from_secs(5)),
                catch_up: 1_000_000,
                integrations_curve: (vec![1, 100, 10_000], 10_000, Duration::from_secs(10)),
                organizations_curve: (vec![1, 10, 100], Duration::from_secs(5)),
                retention_rounds: (3, Duration::from_secs(10)),
            }
        }
    }
}

/// The tonic client for server-streaming calls whose responses are decoded as
/// [`SkimResponse`].
pub async fn skim_stream<Req>(
    channel: Channel,
    path: &'static str,
    request: Req,
) -> Result<tonic::Streaming<SkimResponse>, tonic::Status>
where
    Req: prost::Message + Send + Sync + 'static,
{
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let codec = tonic_prost::ProstCodec::<Req, SkimResponse>::default();
    Ok(grpc
        .server_streaming(
            tonic::Request::new(request),
            PathAndQuery::from_static(path),
            codec,
        )
        .await?
        .into_inner())
}
