//! notify: the notifier delivering to a fake Slack (in this process, so its
//! arrival times share the bench's clock).
//!
//! - **throughput**: a backlog of notifications (groups reassigned round after
//!   round: each change tells the new assignee, the one replaced and the
//!   group's followers, so most deliveries after the first round are edits) is
//!   written before the notifier starts; it drains it, one Slack channel per
//!   user, unpaced. Figure: Slack requests per second from the first to the
//!   last, and the share of edits.
//! - **latency**: with the notifier running, signed assignee webhooks at a
//!   fixed rate; each one's "You were assigned" message is matched at the fake
//!   by channel (the user) and group. Latency counts from the webhook's
//!   scheduled send time to the Slack request's arrival (no coordinated
//!   omission).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chat_sim::ChatSim;
use proto::assignment::v1 as assignment;
use proto::notifier::v1 as pb;
use tokio_stream::StreamExt as _;

use crate::bed::{Bed, BedOptions, DbKind, Tenant, channel, create_database};
use crate::procs::{Process, Usage, free_addr};
use crate::report::Latency;
use crate::scenarios::ingest;

/// The durable subscriber the bench's notifier acknowledges as.
const SUBSCRIBER: &str = "bench-notifier";

/// The Slack channel of user index `k`.
fn slack_channel(k: usize) -> String {
    format!("U{k}")
}

/// A notifier process delivering to `chat`, and its database.
struct Notifier {
    process: Process,
    grpc: std::net::SocketAddr,
    /// Its PostgreSQL database, dropped after the run.
    database: Option<String>,
}

impl Notifier {
    async fn stop(self, options: &BedOptions) -> anyhow::Result<()> {
        self.process.stop().await;
        if let Some(name) = &self.database {
            crate::bed::drop_database(&options.postgres_url, name).await?;
        }
        Ok(())
    }
}

async fn start_notifier(
    options: &BedOptions,
    bed: &Bed,
    chat: &ChatSim,
    label: &str,
    fresh: bool,
) -> anyhow::Result<Notifier> {
    let dir = options.work_dir.join(label);
    std::fs::create_dir_all(&dir)?;
    let (database, dropped) = match options.db {
        DbKind::Sqlite => (
            format!("sqlite://{}?mode=rwc", dir.join("notifier.db").display()),
            None,
        ),
        DbKind::Postgres => {
            let name = format!("bench_{label}").replace('-', "_");
            let url = if fresh {
                create_database(&options.postgres_url, &name).await?
            } else {
                let base = options
                    .postgres_url
                    .rsplit_once('/')
                    .map_or(options.postgres_url.as_str(), |(b, _)| b);
                format!("{base}/{name}")
            };
            (url, Some(name))
        }
    };
    let (grpc, http) = (free_addr()?, free_addr()?);
    let args: Vec<String> = [
        "--grpc-addr",
        &grpc.to_string(),
        "--http-addr",
        &http.to_string(),
        "--database-url",
        &database,
        "--assignment-url",
        &format!("http://{}", bed.assignment_grpc),
        "--subscriber-name",
        SUBSCRIBER,
        "--slack-api-url",
        &chat.slack_url(),
        "--discord-api-url",
        &chat.discord_url(),
        "--channel-rate",
        "0",
        "--concurrency",
        "32",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let process = Process::spawn(
        "notifier",
        &options.bin_dir.join("notifier"),
        &args,
        &dir.join("notifier.log"),
        Some(format!("http://{http}/healthz")),
    )
    .await?;
    Ok(Notifier {
        process,
        grpc,
        database: dropped,
    })
}

/// Gives every user of `tenant` a Slack channel of their own.
async fn set_destinations(notifier: &Notifier, tenant: &Tenant) -> anyhow::Result<()> {
    let client = pb::notifier_service_client::NotifierServiceClient::new(channel(notifier.grpc)?);
    for (k, user) in tenant.users.iter().enumerate() {
        client
            .clone()
            .set_destination(pb::SetDestinationRequest {
                destination: Some(pb::Destination {
                    user_id: *user,
                    target: Some(pb::destination::Target::Slack(pb::SlackDestination {
                        channel: slack_channel(k),
                        bot_token: "xoxb-bench".into(),
                    })),
                    update_time: None,
                }),
                request_id: format!("bench-destination-{user}"),
            })
            .await?;
    }
    Ok(())
}

/// Creates the durable subscriber at 0, so the notifier starts from the
/// first notification.
async fn subscriber_at_zero(bed: &Bed) -> anyhow::Result<()> {
    assignment::notification_service_client::NotificationServiceClient::new(channel(
        bed.assignment_grpc,
    )?)
    .acknowledge_notifications(assignment::AcknowledgeNotificationsRequest {
        subscriber_name: SUBSCRIBER.into(),
        sequence: 0,
    })
    .await?;
    Ok(())
}

/// Notifications committed so far (read from the start until the stream is
/// idle for a second).
async fn notifications_written(bed: &Bed) -> anyhow::Result<usize> {
    let mut stream = assignment::notification_service_client::NotificationServiceClient::new(
        channel(bed.assignment_grpc)?,
    )
    .max_decoding_message_size(64 * 1024 * 1024)
    .subscribe(assignment::SubscribeRequest {
        start: Some(assignment::subscribe_request::Start::AfterSequence(0)),
        ..Default::default()
    })
    .await?
    .into_inner();
    let mut count = 0;
    while let Ok(Some(message)) = tokio::time::timeout(Duration::from_secs(1), stream.next()).await
    {
        if let Some(assignment::subscribe_response::Event::Notification(_)) = message?.event {
            count += 1;
        }
    }
    Ok(count)
}

/// What the throughput run measured.
#[derive(Debug, Clone)]
pub struct Throughput {
    /// Notifications delivered.
    pub delivered: usize,
    /// Slack requests per second, first to last.
    pub per_s: f64,
    /// Share of edits (`chat.update`).
    pub edit_share: f64,
    /// The notifier's CPU and memory.
    pub notifier: Usage,
    /// The assignment service's.
    pub assignment: Usage,
}

/// The throughput run: `groups` groups reassigned `rounds` times among
/// `users`, then drained by a notifier started afterwards.
pub async fn throughput(
    options: &BedOptions,
    groups: usize,
    users: usize,
    rounds: usize,
) -> anyhow::Result<Throughput> {
    let bed = Bed::start(options, "notify", &[]).await?;
    let tenant = Tenant::create(&bed, groups, 1, users).await?;
    subscriber_at_zero(&bed).await?;
    let chat = ChatSim::start().await;
    let first = start_notifier(options, &bed, &chat, "notify-notifier", true).await?;
    set_destinations(&first, &tenant).await?;
    first.process.stop().await;
    let client =
        assignment::group_service_client::GroupServiceClient::new(channel(bed.assignment_grpc)?);
    for round in 0..rounds {
        let calls = (0..groups).map(|i| {
            let mut client = client.clone();
            let (group, user) = (tenant.groups[i], tenant.users[(i + round) % users]);
            async move {
                client
                    .assign_group(assignment::AssignGroupRequest {
                        group_id: group,
                        user_id: user,
                        acting_user_id: 0,
                        request_id: String::new(),
                    })
                    .await
            }
        });
        for result in futures_util::future::join_all(calls).await {
            result?;
        }
    }
    let total = notifications_written(&bed).await?;
    // The destinations were set by a first start, before the backlog; this
    // start finds them and the backlog together.
    let notifier = start_notifier(options, &bed, &chat, "notify-notifier", false).await?;
    let give_up = Instant::now() + Duration::from_secs(600);
    let sent = loop {
        let sent: Vec<chat_sim::Recorded> = chat
            .recorded()
            .into_iter()
            .filter(|r| r.status == 200)
            .collect();
        if sent.len() >= total || Instant::now() > give_up {
            break sent;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    anyhow::ensure!(
        sent.len() >= total,
        "the notifier delivered {} of {total}",
        sent.len()
    );
    let first = sent.iter().map(|r| r.at).min().context("no request")?;
    let last = sent.iter().map(|r| r.at).max().context("no request")?;
    let edits = sent.iter().filter(|r| r.action == "chat.update").count();
    let result = Throughput {
        delivered: sent.len(),
        per_s: sent.len() as f64 / (last - first).as_secs_f64().max(1e-3),
        edit_share: edits as f64 / sent.len() as f64,
        notifier: notifier.process.usage(),
        assignment: bed.assignment.usage(),
    };
    notifier.stop(options).await?;
    bed.stop().await?;
    Ok(result)
}

/// The group id named in a notification's text (`… (group 12) …`).
fn group_in(text: &str) -> Option<i64> {
    let rest = text.split("(group ").nth(1)?;
    rest.split(')').next()?.parse().ok()
}

/// The latency run: assignee webhooks at `rate` for `duration`, to `issues`
/// issues and `users` users (more users than rounds, so each (user, group)
/// pair is assigned once and its message is unambiguous). Returns the
/// latencies, the webhooks whose message never came, the notifier's usage
/// and the Slack requests it made.
pub async fn latency(
    options: &BedOptions,
    issues: usize,
    users: usize,
    rate: f64,
    duration: Duration,
) -> anyhow::Result<(Latency, usize, Usage, usize)> {
    let bed = Bed::start(options, "notify-latency", &[]).await?;
    let tenant = Tenant::create(&bed, issues, 1, users).await?;
    subscriber_at_zero(&bed).await?;
    let chat = ChatSim::start().await;
    let notifier = start_notifier(options, &bed, &chat, "notify-latency-notifier", true).await?;
    set_destinations(&notifier, &tenant).await?;
    let http = {
        service_runtime::tls::install_crypto_provider();
        reqwest::Client::builder().build()?
    };
    let url = format!(
        "http://{}/webhooks/jira/{}",
        bed.tracker_http,
        crate::bed::INTEGRATION
    );
    let count = (rate * duration.as_secs_f64()) as usize;
    let start = Instant::now();
    // (channel, group) → when the webhook was scheduled.
    let mut expected: HashMap<(String, i64), Instant> = HashMap::new();
    let mut tasks = Vec::with_capacity(count);
    for n in 0..count {
        let scheduled = start + Duration::from_secs_f64(n as f64 / rate);
        tokio::time::sleep_until(scheduled.into()).await;
        let (issue, round) = (n % issues, n / issues);
        let user = crate::bed::assignee(issue, round, users);
        expected.insert((slack_channel(user), tenant.groups[issue]), scheduled);
        let (http, url) = (http.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            ingest::send(&http, std::slice::from_ref(&url), n, issues, users).await
        }));
    }
    for task in tasks {
        task.await?;
    }
    let give_up = Instant::now() + Duration::from_secs(120);
    let mut samples = Vec::new();
    loop {
        samples.clear();
        let mut seen = expected.clone();
        for r in chat.recorded() {
            if r.status != 200 || !r.text.starts_with("You were assigned") {
                continue;
            }
            if let Some(group) = group_in(&r.text)
                && let Some(at) = seen.remove(&(r.channel.clone(), group))
            {
                samples.push(r.at.saturating_duration_since(at));
            }
        }
        if seen.is_empty() || Instant::now() > give_up {
            let missing = seen.len();
            let usage = notifier.process.usage();
            let messages = chat.recorded().iter().filter(|r| r.status == 200).count();
            notifier.stop(options).await?;
            bed.stop().await?;
            return Ok((Latency::of(samples), missing, usage, messages));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_group_is_read_from_the_text() {
        assert_eq!(
            super::group_in("You were assigned to “x” (group 12) in Jira issue A-1."),
            Some(12)
        );
        assert_eq!(super::group_in("nothing here"), None);
    }
}
