//! fanout: many unfiltered subscribers following the stream live while
//! notifications are written; then many idle subscribers and what each costs
//! in resident memory.
//!
//! The notifications come from SyncAssigneeInbound calls on issues linked to
//! 100 groups each, so one call writes 100 to 200 notifications in one
//! transaction (an assignment, plus an "unassigned" for the previous assignee).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use proto::assignment::v1 as assignment;
use tonic::transport::{Channel, Endpoint};

use crate::bed::{Bed, INTEGRATION, Tenant, email, issue};
use crate::scenarios::baselines::Fanout;
use crate::scenarios::skim_stream;

/// The notification stream's path, called with the skimming codec.
pub const SUBSCRIBE: &str = "/assignment.v1.NotificationService/Subscribe";

/// Groups linked to each issue of the fan-out tenant.
pub const GROUPS_PER_ISSUE: usize = 100;

/// Connections the fan-out subscribers share.
pub const CONNECTIONS: usize = 10;

/// Opens `count` channels to `addr`, connected now.
pub async fn connect(addr: std::net::SocketAddr, count: usize) -> anyhow::Result<Vec<Channel>> {
    let mut channels = Vec::with_capacity(count);
    let indices: Vec<usize> = (0..count).collect();
    for chunk in indices.chunks(256) {
        let connected = futures_util::future::join_all(chunk.iter().map(|_| async move {
            Endpoint::from_shared(format!("http://{addr}"))?
                .tcp_nodelay(true)
                .connect()
                .await
                .map_err(anyhow::Error::from)
        }))
        .await;
        for channel in connected {
            channels.push(channel?);
        }
    }
    Ok(channels)
}

/// What [`write`] did.
#[derive(Debug, Clone, Copy)]
pub struct Written {
    /// Notifications written.
    pub notifications: usize,
    /// Notifications written per second.
    pub per_s: f64,
    /// The round the next write starts at (each round reassigns every issue
    /// once, with its own request ids and a later provider time).
    pub next_round: usize,
}

/// Writes at least `notifications` notifications through SyncAssigneeInbound
/// (one writer per issue, in provider-time order), starting at `first_round`.
pub async fn write(
    bed: &Bed,
    tenant: &Tenant,
    notifications: usize,
    first_round: usize,
) -> anyhow::Result<Written> {
    let client = assignment::external_issue_service_client::ExternalIssueServiceClient::new(
        crate::bed::channel(bed.assignment_grpc)?,
    );
    let issues = tenant.groups.len() / GROUPS_PER_ISSUE;
    let users = tenant.users.len();
    let written = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let writers = (0..issues).map(|i| {
        let (mut client, written) = (client.clone(), Arc::clone(&written));
        tokio::spawn(async move {
            let (key, jira_issue_id) = issue(i);
            let mut round = first_round;
            while written.load(Ordering::Relaxed) < notifications {
                let response = client
                    .sync_assignee_inbound(assignment::SyncAssigneeInboundRequest {
                        issue: Some(assignment::ExternalIssueRef {
                            integration_id: INTEGRATION.into(),
                            key: key.clone(),
                            jira_issue_id: jira_issue_id.clone(),
                        }),
                        assignee: Some(assignment::sync_assignee_inbound_request::Assignee::Email(
                            email(crate::bed::assignee(i, round, users)),
                        )),
                        provider_update_time: Some(prost_types::Timestamp {
                            seconds: 1_700_000_000 + i64::try_from(round)?,
                            nanos: 0,
                        }),
                        request_id: format!("fanout-{i}-{round}"),
                        source_integration_id: String::new(),
                    })
                    .await?
                    .into_inner();
                let produced: usize = response
                    .results
                    .iter()
                    .map(|r| match r.outcome() {
                        assignment::SyncOutcome::Assigned => {
                            1 + usize::from(r.previous_user_id.is_some())
                        }
                        assignment::SyncOutcome::Deassigned => 1,
                        _ => 0,
                    })
                    .sum();
                written.fetch_add(produced, Ordering::Relaxed);
                round += 1;
            }
            anyhow::Ok(round)
        })
    });
    let mut next_round = first_round;
    for writer in futures_util::future::join_all(writers).await {
        next_round = next_round.max(writer??);
    }
    let total = written.load(Ordering::Relaxed);
    Ok(Written {
        notifications: total,
        per_s: total as f64 / start.elapsed().as_secs_f64(),
        next_round,
    })
}

/// `subscribers` unfiltered subscribers over [`CONNECTIONS`] connections,
/// following the stream from the head while `notifications` are written
/// (from `first_round`). Returns the deliveries and what was written.
pub async fn live(
    bed: &Bed,
    tenant: &Tenant,
    subscribers: usize,
    notifications: usize,
    first_round: usize,
) -> anyhow::Result<(Fanout, Written)> {
    let channels = connect(bed.assignment_grpc, CONNECTIONS).await?;
    let written = Arc::new(std::sync::Mutex::new(None));
    let record = Arc::clone(&written);
    let fanout = crate::scenarios::baselines::fan_out(
        subscribers,
        &channels,
        |channel| {
            skim_stream(
                channel,
                SUBSCRIBE,
                assignment::SubscribeRequest {
                    start: Some(proto::assignment::v1::subscribe_request::Start::StartAtHead(true)),
                    ..Default::default()
                },
            )
        },
        || async move {
            let done = write(bed, tenant, notifications, first_round).await?;
            *record.lock().unwrap_or_else(|e| e.into_inner()) = Some(done);
            Ok(done.notifications)
        },
    )
    .await?;
    let written = written
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .ok_or_else(|| anyhow::anyhow!("the writers never finished"))?;
    Ok((fanout, written))
}

/// Resident memory per idle subscriber, in KiB: `count` subscribers, `per_connection`
/// on each connection, measured on `rss` (the serving process's VmRSS, MiB).
pub async fn idle<Rss, Open, OpenFut>(
    addr: std::net::SocketAddr,
    count: usize,
    per_connection: usize,
    rss: Rss,
    open: Open,
) -> anyhow::Result<f64>
where
    Rss: Fn() -> f64,
    Open: Fn(Channel) -> OpenFut,
    OpenFut:
        Future<Output = Result<tonic::Streaming<crate::bench_proto::SkimResponse>, tonic::Status>>,
{
    let before = settled(&rss).await;
    let channels = connect(addr, count.div_ceil(per_connection)).await?;
    let mut streams = Vec::with_capacity(count);
    let indices: Vec<usize> = (0..count).collect();
    for chunk in indices.chunks(256) {
        let opened = futures_util::future::join_all(
            chunk
                .iter()
                .map(|i| open(channels[i / per_connection].clone())),
        )
        .await;
        for stream in opened {
            streams.push(stream?);
        }
    }
    let after = settled(&rss).await;
    drop(streams);
    drop(channels);
    Ok((after - before) * 1024.0 / count as f64)
}

/// The RSS once it stopped moving (two readings 200 ms apart within 0.5%), or
/// after 10 s.
async fn settled(rss: &impl Fn() -> f64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut previous = rss();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = rss();
        if (now - previous).abs() <= previous * 0.005 || Instant::now() > deadline {
            return now;
        }
        previous = now;
    }
}
