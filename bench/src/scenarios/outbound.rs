//! outbound: our side's assigns (GroupService.AssignGroup) carried to the Jira
//! simulator by the tracker (issue 15).
//!
//! - **Throughput**: AssignGroup in a closed loop, each an effective
//!   reassignment; then the time until the tracker has nothing pending. The
//!   figures are assign RPCs/s and Jira writes/s over the whole drain (each
//!   write preceded by a read of the issue and a user search: three HTTP calls
//!   per assign). Assigns of one issue that queue behind an earlier one are
//!   superseded (state-based sync), so writes ≤ assigns.
//! - **Latency**: AssignGroup at a fixed rate (open loop, no coordinated
//!   omission), each issue assigned once every few seconds so nothing is
//!   superseded; the latency is from the call's scheduled time to the
//!   simulator receiving the `PUT …/assignee` (both wall clocks of this
//!   machine).
//!
//! The simulator sends no webhooks here: echoes are the inbound path, measured
//! by the ingest scenarios.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use proto::assignment::v1 as assignment;
use proto::tracker::v1 as tracker;

use crate::bed::{Bed, Tenant, email, issue};
use crate::report::Latency;
use crate::scenarios::baselines::{CallRate, closed_loop};

/// The throughput run's figures.
#[derive(Debug, Clone)]
pub struct Throughput {
    /// AssignGroup calls answered per second.
    pub assigns: CallRate,
    /// Assigns made.
    pub assigned: usize,
    /// `PUT …/assignee` the simulator received.
    pub jira_writes: usize,
    /// Seconds from the first call until nothing was pending.
    pub drain_seconds: f64,
}

/// The user assign `n` picks for group `i`: never the one before, and a new
/// one each round, so the latency run can tell each Jira write's assign by
/// (issue, user). (Unlike [`crate::bed::assignee`], this makes each assignee a
/// participant; a run has a handful of rounds per group, so few are told.)
fn user_for(i: usize, n: usize, groups: usize, users: usize) -> usize {
    (i + n / groups + 1) % users
}

async fn assign(
    client: &mut assignment::group_service_client::GroupServiceClient<tonic::transport::Channel>,
    tenant: &Tenant,
    n: usize,
) -> bool {
    let groups = tenant.groups.len();
    let i = n % groups;
    let user = tenant.users[user_for(i, n, groups, tenant.users.len())];
    client
        .assign_group(assignment::AssignGroupRequest {
            group_id: tenant.groups[i],
            user_id: user,
            acting_user_id: 0,
            request_id: format!("outbound-{n}"),
        })
        .await
        .is_ok_and(|r| r.into_inner().result.is_some_and(|r| r.changed))
}

/// Waits until the tracker has no pending outbound sync (or `deadline`).
async fn drained(bed: &Bed, deadline: Duration) -> anyhow::Result<()> {
    let mut client = tracker::tracker_service_client::TrackerServiceClient::new(
        crate::bed::channel(bed.tracker_grpc)?,
    );
    let give_up = Instant::now() + deadline;
    // The receiver stores entries a moment after the calls: wait until at
    // least one is stored before trusting "none pending".
    loop {
        let pending = client
            .list_outbound_syncs(tracker::ListOutboundSyncsRequest {
                state: tracker::OutboundSyncState::Pending.into(),
                page_size: 1,
                ..Default::default()
            })
            .await?
            .into_inner()
            .outbound_syncs;
        let any = client
            .list_outbound_syncs(tracker::ListOutboundSyncsRequest {
                page_size: 1,
                ..Default::default()
            })
            .await?
            .into_inner()
            .outbound_syncs;
        if pending.is_empty() && !any.is_empty() {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < give_up,
            "outbound syncs still pending after {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One write the simulator received.
#[derive(Debug, serde::Deserialize)]
struct Write {
    path: String,
    body: serde_json::Value,
    at_us: u64,
}

async fn assignee_writes(bed: &Bed) -> anyhow::Result<Vec<Write>> {
    let http = reqwest::Client::new();
    Ok(http
        .get(format!("{}/_sim/writes?suffix=/assignee", bed.jira_url))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

/// The throughput run.
pub async fn throughput(
    bed: &Bed,
    tenant: &Tenant,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<Throughput> {
    let client = assignment::group_service_client::GroupServiceClient::new(crate::bed::channel(
        bed.assignment_grpc,
    )?);
    let tenant_for_calls = Arc::new(tenant.clone());
    let started = Instant::now();
    let assigns = closed_loop(concurrency, duration, move |n| {
        let (mut client, tenant) = (client.clone(), Arc::clone(&tenant_for_calls));
        async move { assign(&mut client, &tenant, n).await }
    })
    .await;
    let assigned = assigns.latency.count;
    drained(bed, Duration::from_secs(300)).await?;
    let drain_seconds = started.elapsed().as_secs_f64();
    let jira_writes = assignee_writes(bed).await?.len();
    Ok(Throughput {
        assigns,
        assigned,
        jira_writes,
        drain_seconds,
    })
}

/// The latency run: `rate` assigns per second for `duration`.
pub async fn latency(
    bed: &Bed,
    tenant: &Tenant,
    rate: f64,
    duration: Duration,
) -> anyhow::Result<(Latency, usize)> {
    let client = assignment::group_service_client::GroupServiceClient::new(crate::bed::channel(
        bed.assignment_grpc,
    )?);
    let groups = tenant.groups.len();
    let total = (rate * duration.as_secs_f64()) as usize;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now();
    let wall_start = SystemTime::now();
    let mut tasks = Vec::with_capacity(total);
    // (issue id, assignee name) → when the call was scheduled (µs since epoch).
    let mut expected: HashMap<(String, String), u64> = HashMap::new();
    for n in 0..total {
        let due = start + interval * u32::try_from(n).unwrap_or(u32::MAX);
        tokio::time::sleep_until(due.into()).await;
        let scheduled = wall_start + (due - start);
        let i = n % groups;
        let user = user_for(i, n, groups, tenant.users.len());
        let name = email(user).split('@').next().unwrap_or_default().to_owned();
        let at_us = scheduled
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        expected.insert((issue(i).1, name), at_us);
        let (mut client, tenant) = (client.clone(), tenant.clone());
        tasks.push(tokio::spawn(async move {
            assign(&mut client, &tenant, n).await
        }));
    }
    for task in tasks {
        task.await.context("assign task")?;
    }
    drained(bed, Duration::from_secs(120)).await?;
    let mut samples = Vec::new();
    for write in assignee_writes(bed).await? {
        let id = write
            .path
            .trim_start_matches("/rest/api/2/issue/")
            .trim_end_matches("/assignee")
            .to_owned();
        let name = write.body["name"]
            .as_str()
            .or_else(|| write.body["accountId"].as_str())
            .unwrap_or_default()
            .to_owned();
        if let Some(sent) = expected.remove(&(id, name)) {
            samples.push(Duration::from_micros(write.at_us.saturating_sub(sent)));
        }
    }
    let missing = expected.len();
    Ok((Latency::of(samples), missing))
}
