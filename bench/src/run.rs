//! The run: which scenarios, in what order, against which baselines, and the
//! report.

mod cost_curves;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use proto::assignment::v1 as assignment;

use crate::bed::{Bed, BedOptions, DbKind, ExtraFlags, Tenant};
use crate::bench_proto::WatchRequest;
use crate::procs::{Process, free_addr};
use crate::report::{ScenarioResult, table, write_json};
use crate::scenarios::baselines::{self, CallRate, WriteCeilings};
use crate::scenarios::fanout::{self, CONNECTIONS, GROUPS_PER_ISSUE, SUBSCRIBE};
use crate::scenarios::ingest::{self, Load};
use crate::scenarios::{Plan, drain, notify, outbound, peer, plans, skim_stream, sync_rpc};

/// The ingest scenario's `--inbox-max-wait`: the tracker holds at most that
/// much work at its recent pace (and refuses a growing share from half of
/// it), so the backlog at the stop stays under a second on any machine.
const INGEST_INBOX_MAX_WAIT: Duration = Duration::from_secs(1);

/// Arguments of `run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The database the services run on.
    #[arg(long, value_enum, default_value = "sqlite")]
    db: DbKind,
    /// Smaller sizes and shorter durations (under three minutes).
    #[arg(long)]
    quick: bool,
    /// Where the release binaries of the services and the simulator are.
    #[arg(long)]
    bin_dir: PathBuf,
    /// Where the JSON files and the table go.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// The PostgreSQL server (an admin database URL) for `--db postgres`.
    #[arg(
        long,
        env = "BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    postgres_url: String,
    /// Only these scenarios (comma-separated: plans, baselines, ingest,
    /// latency, sync-rpc, outbound, notify, drain, fanout, idle, peer,
    /// curves, or one curve by its name, such as curve-apply-vs-backlog).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

/// The machine, for the report.
#[derive(Debug, serde::Serialize)]
struct Machine {
    cpu: String,
    cores: usize,
    memory_gib: f64,
    date: String,
    db: DbKind,
    quick: bool,
}

fn machine(args: &RunArgs) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    Machine {
        cpu: cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or_else(|| "unknown".to_owned(), |(_, v)| v.trim().to_owned()),
        cores: std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        memory_gib: meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0 / 1024.0),
        date: chrono::Utc::now().to_rfc3339(),
        db: args.db,
        quick: args.quick,
    }
}

/// The baseline servers' process.
async fn baseline_server(
    options: &BedOptions,
    label: &str,
) -> anyhow::Result<(Process, std::net::SocketAddr)> {
    let addr = free_addr()?;
    let exe = std::env::current_exe()?;
    let process = Process::spawn(
        "baselines",
        &exe,
        &["serve-baselines".into(), "--addr".into(), addr.to_string()],
        &options.work_dir.join(format!("{label}.log")),
        None,
    )
    .await?;
    crate::procs::wait_listening(addr).await?;
    Ok((process, addr))
}

/// Runs the scenarios.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    service_runtime::tls::install_crypto_provider();
    let plan = Plan::new(args.quick);
    let wants = |name: &str| args.only.is_empty() || args.only.iter().any(|o| o == name);
    let work_dir = args.out.join("work");
    let _ = std::fs::remove_dir_all(&work_dir);
    std::fs::create_dir_all(&work_dir)?;
    let options = BedOptions {
        bin_dir: args.bin_dir.clone(),
        db: args.db,
        postgres_url: args.postgres_url.clone(),
        work_dir: work_dir.clone(),
    };
    let machine = machine(&args);
    eprintln!("bench: {machine:?}");
    let started = Instant::now();
    let mut results: Vec<ScenarioResult> = Vec::new();
    let mut record = |result: ScenarioResult| -> anyhow::Result<()> {
        eprintln!(
            "bench: {} done at {:.0} s: {} = {:.1}",
            result.name,
            started.elapsed().as_secs_f64(),
            result.headline.0,
            result.headline.1
        );
        write_json(&args.out, &result)?;
        results.push(result);
        Ok(())
    };

    // Plans first: no services, only the tracker's queue statements.
    if wants("plans") && args.db == DbKind::Postgres {
        let sizes: &[(u64, u64)] = if args.quick {
            &[(0, 0), (10_000, 1_000), (100_000, 10_000)]
        } else {
            &[(0, 0), (10_000, 1_000), (1_000_000, 100_000)]
        };
        let measured = plans::run(&args.postgres_url, sizes).await?;
        std::fs::write(args.out.join("plans.md"), plans::markdown(&measured))?;
        let at = |pending: u64, statement: &str| {
            measured
                .iter()
                .find(|m| {
                    m.pending == pending && m.statement == statement && m.mode == plans::MODES[1].0
                })
                .map_or(f64::NAN, |m| m.execution_ms)
        };
        let largest = sizes.last().map_or(0, |s| s.0);
        let mut result = ScenarioResult::new(
            "plans",
            "claim ms (generic plan, pinned, largest backlog)",
            at(largest, "claim"),
            "bounded: the same at 0 and at the largest backlog",
        );
        for &(pending, _) in sizes {
            for statement in ["claim", "lock", "advance", "remove_emptied", "renew"] {
                result.figure(
                    &format!("{statement}_ms_at_{pending}"),
                    at(pending, statement),
                );
            }
        }
        record(result)?;
    }

    // Baselines first: the ceilings every scenario is compared with.
    let (server, addr) = baseline_server(&options, "baselines-echo").await?;
    let echo = baselines::echo(addr, plan.concurrency, plan.sync_for).await?;
    server.stop().await;
    let ceilings = write_ceilings(&options, &plan).await?;
    if wants("baselines") {
        let mut result = ScenarioResult::new(
            "baseline-echo",
            "calls/s",
            echo.per_s,
            "ceiling for one gRPC hop",
        );
        result.latency = Some(echo.latency);
        result.figure("concurrency", plan.concurrency as f64);
        record(result)?;
        let mut result = ScenarioResult::new(
            "baseline-db-writes",
            "single-row commits/s",
            ceilings.commits_per_s,
            "ceiling for durable writes",
        );
        result.figure(
            "rows_per_s_in_100_row_transactions",
            ceilings.batched_rows_per_s,
        );
        if let Some(eight) = ceilings.commits_per_s_8 {
            result.figure("single_row_commits_per_s_8_connections", eight);
        }
        record(result)?;
    }

    let min_rate = match args.db {
        DbKind::Sqlite => 5_000.0,
        DbKind::Postgres => 2_000.0,
    };
    if wants("ingest") {
        let bound_flag = format!("{}ms", INGEST_INBOX_MAX_WAIT.as_millis());
        let bed = Bed::start_with(
            &options,
            "ingest",
            ExtraFlags {
                tracker: &["--inbox-max-wait", &bound_flag],
                ..ExtraFlags::default()
            },
        )
        .await?;
        let tenant = Tenant::create(&bed, 1_000, 1, 200).await?;
        let outcome = ingest::run(
            &bed,
            &tenant,
            Load::Closed {
                concurrency: plan.concurrency,
            },
            plan.ingest_for,
        )
        .await?;
        let mut result = ScenarioResult::new(
            "ingest",
            "applied/s",
            outcome.applied_per_s,
            &format!(
                "≥ {min_rate:.0}/s applied for {} s, accepted within 5 %, backlog at the stop < 1 s of work, none lost",
                plan.ingest_for.as_secs()
            ),
        );
        result.baseline = Some(("single-row commits/s".into(), ceilings.commits_per_s));
        result
            .figure("accepted", outcome.accepted as f64)
            .figure("applied", outcome.applied as f64)
            .figure("lost", outcome.lost as f64)
            .figure("stale_or_unchanged", outcome.stale_or_unchanged as f64)
            .figure("accepted_per_s", outcome.accepted_per_s)
            .figure("applied_per_s", outcome.applied_per_s)
            .figure("refused_and_retried", outcome.refused as f64)
            .figure("pushed_back_with_retry_after", outcome.pushed_back as f64)
            .figure("inbox_max_wait_s", INGEST_INBOX_MAX_WAIT.as_secs_f64())
            .figure("backlog_at_stop", outcome.backlog_at_stop as f64)
            .figure(
                "backlog_at_stop_seconds_of_work",
                outcome.backlog_at_stop as f64 / outcome.applied_per_s.max(1e-9),
            )
            .figure(
                "applied_per_s_while_sending",
                outcome.applied_per_s_while_sending,
            )
            .figure(
                "accepted_to_applied_ratio",
                outcome.accepted_per_s / outcome.applied_per_s.max(1e-9),
            );
        result.latency = Some(outcome.latency);
        let (a, t) = bed.usage();
        (result.assignment, result.tracker) = (Some(a), Some(t));
        bed.stop().await?;
        record(result)?;
    }

    // The open loop at the goal's rate, then higher (reported, no goal).
    let latency_runs = [
        (
            "latency",
            plan.latency_rate,
            "p50 ≤ 3 ms, p99 ≤ 10 ms at 500/s",
        ),
        ("latency-2000", plan.latency_high_rate, "– (reported)"),
    ];
    for (name, rate, goal) in latency_runs {
        if !wants(name) {
            continue;
        }
        let bed = Bed::start(&options, name, &[]).await?;
        let tenant = Tenant::create(&bed, 1_000, 1, 200).await?;
        let outcome = ingest::run(&bed, &tenant, Load::Open { rate }, plan.latency_for).await?;
        let mut result = ScenarioResult::new(name, "p99 ms", outcome.latency.p99_ms, goal);
        result
            .figure("rate", rate)
            .figure("accepted", outcome.accepted as f64)
            .figure("applied", outcome.applied as f64)
            .figure("lost", outcome.lost as f64)
            .figure("stale_or_unchanged", outcome.stale_or_unchanged as f64)
            .figure("intake_p50_ms", outcome.intake.p50_ms)
            .figure("intake_p99_ms", outcome.intake.p99_ms);
        result.latency = Some(outcome.latency);
        let (a, t) = bed.usage();
        (result.assignment, result.tracker) = (Some(a), Some(t));
        bed.stop().await?;
        record(result)?;
    }

    if wants("sync-rpc") {
        let bed = Bed::start(&options, "sync-rpc", &[]).await?;
        let tenant = Tenant::create(&bed, 1_000, 1, 200).await?;
        let rate: CallRate = sync_rpc::run(&bed, &tenant, plan.concurrency, plan.sync_for).await?;
        let goal = match args.db {
            DbKind::Sqlite => "≥ 10000 calls/s, p99 ≤ 10 ms at 64 in flight",
            DbKind::Postgres => "≥ 5000 calls/s",
        };
        let mut result = ScenarioResult::new("sync-rpc", "calls/s", rate.per_s, goal);
        result.baseline = Some(("echo calls/s".into(), echo.per_s));
        result
            .figure("concurrency", plan.concurrency as f64)
            .figure("errors", rate.errors as f64)
            .figure(
                "ratio_to_single_row_commits",
                rate.per_s / ceilings.commits_per_s,
            );
        result.latency = Some(rate.latency);
        result.assignment = Some(bed.assignment.usage());
        bed.stop().await?;
        record(result)?;
    }

    if wants("outbound") {
        let issues = 1_000;
        let bed = Bed::start(&options, "outbound", &[]).await?;
        let tenant = Tenant::create(&bed, issues, 1, 200).await?;
        tenant.enable_outbound(&bed, issues).await?;
        let run = outbound::throughput(&bed, &tenant, plan.concurrency, plan.outbound_for).await?;
        let goal = match args.db {
            DbKind::Sqlite => "≥ 2000 assigns/s with their Jira writes",
            DbKind::Postgres => "–",
        };
        let writes_per_s = run.jira_writes as f64 / run.drain_seconds;
        let mut result = ScenarioResult::new("outbound", "assigns/s", run.assigns.per_s, goal);
        result.baseline = Some(("single-row commits/s".into(), ceilings.commits_per_s));
        result
            .figure("concurrency", plan.concurrency as f64)
            .figure("assigns", run.assigned as f64)
            .figure("assign_errors", run.assigns.errors as f64)
            .figure("jira_writes", run.jira_writes as f64)
            .figure("jira_writes_per_s_until_drained", writes_per_s)
            .figure("seconds_until_drained", run.drain_seconds)
            .figure(
                "superseded_or_coalesced",
                run.assigned.saturating_sub(run.jira_writes) as f64,
            );
        result.latency = Some(run.assigns.latency);
        let (a, t) = bed.usage();
        (result.assignment, result.tracker) = (Some(a), Some(t));
        bed.stop().await?;
        record(result)?;

        let (rate, duration) = plan.outbound_latency;
        let bed = Bed::start(&options, "outbound-latency", &[]).await?;
        let tenant = Tenant::create(&bed, issues, 1, 200).await?;
        tenant.enable_outbound(&bed, issues).await?;
        let (latency, missing) = outbound::latency(&bed, &tenant, rate, duration).await?;
        let mut result = ScenarioResult::new(
            "outbound-latency",
            "p99 ms",
            latency.p99_ms,
            &format!("p99 ≤ 50 ms at {rate:.0}/s (RPC → Jira receives the PUT)"),
        );
        result
            .figure("rate", rate)
            .figure("missing", missing as f64);
        if missing > 0 {
            result
                .notes
                .push(format!("{missing} assigns never reached the simulator"));
        }
        result.latency = Some(latency);
        let (a, t) = bed.usage();
        (result.assignment, result.tracker) = (Some(a), Some(t));
        bed.stop().await?;
        record(result)?;
    }

    if wants("notify") {
        let (groups, users, rounds) = plan.notify_backlog;
        let run = notify::throughput(&options, groups, users, rounds).await?;
        let mut result = ScenarioResult::new(
            "notify",
            "Slack requests/s (posts and edits)",
            run.per_s,
            "–",
        );
        result
            .figure("delivered", run.delivered as f64)
            .figure("edit_share", run.edit_share)
            .figure("notifier_cpu_seconds", run.notifier.cpu_seconds)
            .figure("notifier_peak_rss_mib", run.notifier.peak_rss_mib);
        result.assignment = Some(run.assignment);
        record(result)?;

        let (rate, duration) = plan.notify_latency;
        // Two webhooks per issue: each tells the new assignee, and the second
        // also the one replaced and the first as a follower (about two
        // messages per webhook, as a team reassigning now and then).
        let issues = ((rate * duration.as_secs_f64()) as usize / 2).max(200);
        let (latency, missing, usage, messages) =
            notify::latency(&options, issues, 50, rate, duration).await?;
        let mut result = ScenarioResult::new(
            "notify-latency",
            "p99 ms",
            latency.p99_ms,
            &format!("p99 ≤ 50 ms at {rate:.0} webhooks/s (webhook → Slack post)"),
        );
        result
            .figure("rate", rate)
            .figure("missing", missing as f64)
            .figure("issues", issues as f64)
            .figure("slack_requests", messages as f64)
            .figure("notifier_cpu_seconds", usage.cpu_seconds);
        if missing > 0 {
            result
                .notes
                .push(format!("{missing} assignments never reached Slack"));
        }
        result.latency = Some(latency);
        record(result)?;
    }

    if wants("drain") && args.db == DbKind::Postgres {
        let backlog = if args.quick { 20_000 } else { 100_000 };
        let one = drain::run(&options, backlog, 1).await?;
        let two = drain::run(&options, backlog, 2).await?;
        let mut result = ScenarioResult::new(
            "drain",
            "deliveries/s, 2 tracker replicas",
            two.per_s,
            "≥ 1.6× one replica; never flat for more than 1 s",
        );
        result.baseline = Some(("deliveries/s, 1 tracker replica".into(), one.per_s));
        for run in [&one, &two] {
            let n = run.replicas;
            result
                .figure(&format!("per_s_{n}"), run.per_s)
                .figure(&format!("seconds_{n}"), run.seconds)
                .figure(&format!("longest_flat_s_{n}"), run.longest_flat_s)
                .figure(&format!("backlog_accepted_per_s_{n}"), run.loaded_per_s)
                .figure(&format!("tracker_cpu_s_{n}"), run.tracker_cpu_s)
                .figure(&format!("assignment_cpu_s_{n}"), run.assignment_cpu_s)
                .figure(&format!("postgres_cpu_s_{n}"), run.postgres_cpu_s)
                .figure(&format!("machine_busy_{n}"), run.machine_busy);
        }
        result.figure("backlog", backlog as f64);
        record(result)?;
    }

    if wants("fanout") || wants("peer") {
        let nats = peer::reachable().await;
        for &(subscribers, notifications) in &plan.fanout {
            let name = format!("fanout-{subscribers}");
            let (server, addr) = baseline_server(&options, &format!("baselines-{name}")).await?;
            let channels = fanout::connect(addr, CONNECTIONS).await?;
            let raw = baselines::fan_out(
                subscribers,
                &channels,
                |channel| {
                    skim_stream(
                        channel,
                        "/bench.v1.BroadcastService/Watch",
                        WatchRequest {
                            expected: u32::try_from(subscribers + 1).unwrap_or(u32::MAX),
                            messages: u32::try_from(notifications).unwrap_or(u32::MAX),
                        },
                    )
                },
                || {
                    let channel = channels[0].clone();
                    async move {
                        // The last watcher starts the round; it leaves at once.
                        drop(
                            skim_stream(
                                channel,
                                "/bench.v1.BroadcastService/Watch",
                                WatchRequest {
                                    expected: u32::try_from(subscribers + 1).unwrap_or(u32::MAX),
                                    messages: u32::try_from(notifications).unwrap_or(u32::MAX),
                                },
                            )
                            .await?,
                        );
                        Ok(notifications)
                    }
                },
            )
            .await?;
            let raw_usage = server.usage();
            drop(channels);
            server.stop().await;

            let bed = Bed::start(&options, &name, &[]).await?;
            let tenant = Tenant::create(
                &bed,
                (notifications / GROUPS_PER_ISSUE / 20).clamp(1, 10),
                GROUPS_PER_ISSUE,
                200,
            )
            .await?;
            // The same writes with nobody subscribed first: what they cost the
            // service alone, so the live run's CPU per delivery can leave it out.
            let cpu = || bed.assignment.usage().cpu_seconds;
            let before = cpu();
            let alone = fanout::write(&bed, &tenant, notifications, 0).await?;
            let write_cpu = cpu() - before;
            let before = cpu();
            let (ours, written) =
                fanout::live(&bed, &tenant, subscribers, notifications, alone.next_round).await?;
            let live_cpu = cpu() - before;
            let stream_cpu = (live_cpu
                - write_cpu * written.notifications as f64 / alone.notifications.max(1) as f64)
                .max(0.0);
            let per_delivery_us = |cpu: f64, delivered: usize| cpu * 1e6 / delivered.max(1) as f64;
            let mut result = ScenarioResult::new(
                &name,
                "deliveries/s",
                ours.deliveries_per_s,
                if subscribers <= 100 {
                    "≥ 0.8 of raw tonic broadcast, ahead of JetStream ordered replay"
                } else {
                    "ahead of JetStream ordered replay with as many consumers"
                },
            );
            result.baseline = Some((
                "raw tonic broadcast deliveries/s".into(),
                raw.deliveries_per_s,
            ));
            result
                .figure("subscribers", subscribers as f64)
                .figure("connections", CONNECTIONS as f64)
                .figure("notifications_requested", notifications as f64)
                .figure("notifications_written_per_s", written.per_s)
                .figure(
                    "deliveries_per_s_of_written_per_s",
                    ours.deliveries_per_s / (written.per_s * subscribers as f64).max(1e-9),
                )
                .figure("write_alone_cpu_seconds", write_cpu)
                .figure("live_cpu_seconds", live_cpu)
                .figure(
                    "stream_cpu_us_per_delivery",
                    per_delivery_us(stream_cpu, ours.delivered),
                )
                .figure(
                    "raw_cpu_us_per_delivery",
                    per_delivery_us(raw_usage.cpu_seconds, raw.delivered),
                )
                .figure("anomalies", ours.anomalies as f64)
                .figure("raw_anomalies", raw.anomalies as f64)
                .figure("raw_server_cpu_seconds", raw_usage.cpu_seconds);
            if ours.anomalies > 0 {
                result.notes.push(format!(
                    "{} notifications lost, duplicated or out of order",
                    ours.anomalies
                ));
            }
            if nats && wants("peer") {
                let messages = notifications.min(plan.peer_max_deliveries / subscribers);
                match peer::replay(subscribers, messages).await {
                    Ok(replay) => {
                        result.figure("jetstream_messages", messages as f64);
                        result.figure("jetstream_ordered_replay_deliveries_per_s", replay.per_s);
                        result.figure("ratio_to_jetstream", ours.deliveries_per_s / replay.per_s);
                        if replay.delivered < replay.expected {
                            result.notes.push(format!(
                                "JetStream: {} of {} delivered; some ordered consumers stalled (rate counted up to the last delivery)",
                                replay.delivered, replay.expected
                            ));
                        }
                    }
                    Err(e) => result.notes.push(format!("JetStream peer failed: {e:#}")),
                }
            } else if !nats {
                result.notes.push(format!(
                    "peer skipped: no NATS server at {}",
                    peer::NATS_URL
                ));
            }
            result.assignment = Some(bed.assignment.usage());
            bed.stop().await?;
            record(result)?;
        }
    }

    if wants("idle") {
        let count = plan.idle_subscribers;
        for per_connection in [1, 100] {
            let bed = Bed::start(&options, &format!("idle-{per_connection}"), &[]).await?;
            let assignment_process = &bed.assignment;
            let ours = fanout::idle(
                bed.assignment_grpc,
                count,
                per_connection,
                || assignment_process.usage().rss_mib,
                |channel| {
                    skim_stream(
                        channel,
                        SUBSCRIBE,
                        assignment::SubscribeRequest {
                            start: Some(
                                proto::assignment::v1::subscribe_request::Start::StartAtHead(true),
                            ),
                            ..Default::default()
                        },
                    )
                },
            )
            .await?;
            let usage = bed.assignment.usage();
            bed.stop().await?;
            let (server, addr) =
                baseline_server(&options, &format!("baselines-idle-{per_connection}")).await?;
            let raw = fanout::idle(
                addr,
                count,
                per_connection,
                || server.usage().rss_mib,
                |channel| {
                    skim_stream(
                        channel,
                        "/bench.v1.BroadcastService/Watch",
                        WatchRequest {
                            expected: u32::MAX,
                            messages: 1,
                        },
                    )
                },
            )
            .await?;
            server.stop().await;
            let goal = if per_connection == 1 {
                "≤ 16 KiB each"
            } else {
                "≤ 4 KiB each"
            };
            let mut result = ScenarioResult::new(
                &format!("idle-{per_connection}-per-connection"),
                "KiB RSS per idle subscriber",
                ours,
                goal,
            );
            result.baseline = Some(("raw tonic KiB per idle watcher".into(), raw));
            result
                .figure("subscribers", count as f64)
                .figure("per_connection", per_connection as f64);
            result.assignment = Some(usage);
            record(result)?;
        }
    }

    if wants("curves") || args.only.iter().any(|o| o.starts_with("curve-")) {
        for result in cost_curves::run(&options, &plan, &args.out, &args.only).await? {
            record(result)?;
        }
    }

    let report = format!(
        "Machine: {} ({} cores, {:.1} GiB), database {:?}, {} run, {}; total {:.0} s\n\n{}",
        machine.cpu,
        machine.cores,
        machine.memory_gib,
        machine.db,
        if machine.quick { "quick" } else { "full" },
        machine.date,
        started.elapsed().as_secs_f64(),
        table(&results)
    );
    println!("{report}");
    std::fs::write(args.out.join("summary.md"), &report)?;
    std::fs::write(
        args.out.join("machine.json"),
        serde_json::to_vec_pretty(&machine).context("machine")?,
    )?;
    Ok(())
}

/// The raw write loops on a fresh database of the run's kind.
async fn write_ceilings(options: &BedOptions, plan: &Plan) -> anyhow::Result<WriteCeilings> {
    match options.db {
        DbKind::Sqlite => {
            let path = options.work_dir.join("ceilings.db");
            baselines::write_ceilings(
                &format!("sqlite://{}?mode=rwc", path.display()),
                plan.db_for,
            )
            .await
        }
        DbKind::Postgres => {
            let url = crate::bed::create_database(&options.postgres_url, "bench_ceilings").await?;
            let ceilings = baselines::write_ceilings(&url, plan.db_for).await;
            crate::bed::drop_database(&options.postgres_url, "bench_ceilings").await?;
            ceilings
        }
    }
}
