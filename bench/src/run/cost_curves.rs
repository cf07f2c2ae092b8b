//! The cost curves' results and plots: each curve runs its points (see
//! [`crate::scenarios::curves`]), becomes one [`ScenarioResult`] with a
//! figure per point, and is drawn as an SVG next to the JSON.

use crate::bed::BedOptions;
use crate::plot;
use crate::report::ScenarioResult;
use crate::scenarios::Plan;
use crate::scenarios::curves::{self, ApplyPoint, SyncPoint};

/// How a curve is named in the results and drawn.
struct Curve {
    /// The scenario's name, also the SVG's file stem.
    name: &'static str,
    /// The headline figure: the last point against the first.
    headline: &'static str,
    /// The goal the headline is held to.
    goal: &'static str,
    /// The chart's title.
    title: &'static str,
    /// What the x axis counts.
    x_desc: &'static str,
}

/// A point count as the charts label it: `0`, `100`, `10 k`, `1 M`.
fn label(n: usize) -> String {
    match n {
        0 => "0".to_owned(),
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{} M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{} k", n / 1_000),
        n => n.to_string(),
    }
}

/// The last of `values` divided by the first (NaN without points).
fn last_over_first(values: impl DoubleEndedIterator<Item = f64> + Clone) -> f64 {
    values.clone().next_back().unwrap_or(f64::NAN) / values.clone().next().unwrap_or(f64::NAN)
}

/// A curve of applied rates: its result (applied/s at the last point ÷ at
/// the first; applied and accepted per point) and its chart.
fn apply_curve(
    out: &std::path::Path,
    curve: &Curve,
    points: &[ApplyPoint],
) -> anyhow::Result<ScenarioResult> {
    let flat = last_over_first(points.iter().map(|p| p.applied_per_s));
    let mut result = ScenarioResult::new(curve.name, curve.headline, flat, curve.goal);
    for p in points {
        result
            .figure(&format!("applied_per_s_at_{}", p.at), p.applied_per_s)
            .figure(&format!("accepted_per_s_at_{}", p.at), p.accepted_per_s);
        if let Some(bytes) = p.bytes_per_webhook {
            result.figure(&format!("tracker_db_bytes_per_webhook_at_{}", p.at), bytes);
        }
    }
    plot::svg(
        &out.join(format!("{}.svg", curve.name)),
        &plot::Chart {
            title: curve.title,
            x_desc: curve.x_desc,
            categories: points.iter().map(|p| label(p.at)).collect(),
            y_desc: "per second",
            series: vec![
                plot::Series {
                    name: "applied/s".into(),
                    values: points.iter().map(|p| p.applied_per_s).collect(),
                },
                plot::Series {
                    name: "accepted/s".into(),
                    values: points.iter().map(|p| p.accepted_per_s).collect(),
                },
            ],
        },
    )?;
    Ok(result)
}

/// A curve of sync calls: its result (p99 at the last point ÷ at the first;
/// calls/s, group changes/s, p50, p99 and errors per point) and its chart.
fn sync_curve(
    out: &std::path::Path,
    curve: &Curve,
    points: &[SyncPoint],
) -> anyhow::Result<ScenarioResult> {
    let growth = last_over_first(points.iter().map(|p| p.latency.p99_ms));
    let mut result = ScenarioResult::new(curve.name, curve.headline, growth, curve.goal);
    for p in points {
        let n = p.at;
        result
            .figure(&format!("calls_per_s_at_{n}"), p.calls_per_s)
            .figure(
                &format!("group_changes_per_s_at_{n}"),
                p.calls_per_s * p.groups_per_call as f64,
            )
            .figure(&format!("p50_ms_at_{n}"), p.latency.p50_ms)
            .figure(&format!("p99_ms_at_{n}"), p.latency.p99_ms)
            .figure(&format!("errors_at_{n}"), p.errors as f64);
    }
    plot::svg(
        &out.join(format!("{}.svg", curve.name)),
        &plot::Chart {
            title: curve.title,
            x_desc: curve.x_desc,
            categories: points.iter().map(|p| label(p.at)).collect(),
            y_desc: "ms",
            series: vec![
                plot::Series {
                    name: "p50 ms".into(),
                    values: points.iter().map(|p| p.latency.p50_ms).collect(),
                },
                plot::Series {
                    name: "p99 ms".into(),
                    values: points.iter().map(|p| p.latency.p99_ms).collect(),
                },
            ],
        },
    )?;
    Ok(result)
}

/// Runs the cost curves of `plan` named in `only` (every one when it is
/// empty or names `curves`): a result per curve, and an SVG plot each in
/// `out`.
pub(super) async fn run(
    options: &BedOptions,
    plan: &Plan,
    out: &std::path::Path,
    only: &[String],
) -> anyhow::Result<Vec<ScenarioResult>> {
    // All of them, or those named (alone or as `curves`).
    let wants = |name: &str| only.is_empty() || only.iter().any(|o| o == "curves" || o == name);
    let mut results = Vec::new();

    if wants("curve-apply-vs-backlog") {
        let (backlogs, run_for) = &plan.backlog_curve;
        let mut points = Vec::new();
        for &backlog in backlogs {
            points.push(
                curves::apply_vs_backlog(options, backlog, plan.concurrency, *run_for).await?,
            );
        }
        results.push(apply_curve(
            out,
            &Curve {
                name: "curve-apply-vs-backlog",
                headline: "applied/s at the largest backlog ÷ at none",
                goal: "flat: ≥ 0.9",
                title: "Webhooks applied per second vs deliveries waiting in the inbox",
                x_desc: "pending deliveries parked in the inbox",
            },
            &points,
        )?);
    }

    if wants("curve-sync-vs-groups") {
        let (sizes, run_for) = &plan.groups_curve;
        let mut points = Vec::new();
        for &groups in sizes {
            points.push(curves::sync_vs_groups(options, groups, plan.concurrency, *run_for).await?);
        }
        results.push(sync_curve(
            out,
            &Curve {
                name: "curve-sync-vs-groups",
                headline: "p99 at the most groups per issue ÷ at one",
                goal: "– (grows with the work: one notification per group)",
                title: "SyncAssigneeInbound latency vs groups linked per issue (64 in flight)",
                x_desc: "groups linked to each issue",
            },
            &points,
        )?);
    }

    if wants("curve-ingest-vs-integrations") {
        let (sizes, issues, run_for) = &plan.integrations_curve;
        let mut points = Vec::new();
        for &integrations in sizes {
            points.push(
                curves::ingest_vs_integrations(
                    options,
                    integrations,
                    *issues,
                    plan.concurrency,
                    *run_for,
                )
                .await?,
            );
        }
        let mut result = apply_curve(
            out,
            &Curve {
                name: "curve-ingest-vs-integrations",
                headline: "applied/s at the most integrations ÷ at one",
                goal: "flat: ≥ 0.9",
                title: "Webhooks applied per second vs integrations they are spread over",
                x_desc: "integrations (each issue belongs to one)",
            },
            &points,
        )?;
        result.figure("issues", *issues as f64);
        results.push(result);
    }

    if wants("curve-sync-vs-organizations") {
        let (sizes, run_for) = &plan.organizations_curve;
        let mut points = Vec::new();
        for &organizations in sizes {
            points.push(
                curves::sync_vs_organizations(options, organizations, plan.concurrency, *run_for)
                    .await?,
            );
        }
        results.push(sync_curve(
        out,
        &Curve {
            name: "curve-sync-vs-organizations",
            headline: "p99 at the most organizations per issue ÷ at one",
            goal: "– (grows with the work: one group per organization)",
            title: "SyncAssigneeInbound latency vs organizations sharing an issue (64 in flight)",
            x_desc: "organizations each issue is linked in",
        },
        &points,
    )?);
    }

    if wants("curve-bytes-under-retention") {
        let (count, run_for) = plan.retention_rounds;
        let rounds =
            curves::bytes_under_retention(options, count, plan.concurrency, run_for).await?;
        let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
        // What the tracker's database holds once a round is pruned and, on
        // PostgreSQL, vacuumed.
        let settled = |r: &curves::RetentionRound| {
            r.vacuumed_bytes
                .map_or(r.tracker_bytes_pruned, |(tracker, _)| tracker) as f64
        };
        let growth = last_over_first(rounds.iter().map(settled));
        let mut result = ScenarioResult::new(
            "curve-bytes-under-retention",
            "tracker DB bytes after the last round's pruning (and VACUUM) ÷ after the first",
            growth,
            "bounded: ≤ 1.1",
        );
        for (i, r) in rounds.iter().enumerate() {
            let n = i + 1;
            result
                .figure(&format!("accepted_round_{n}"), r.accepted as f64)
                .figure(
                    &format!("tracker_mib_loaded_round_{n}"),
                    mib(r.tracker_bytes_loaded),
                )
                .figure(
                    &format!("tracker_mib_pruned_round_{n}"),
                    mib(r.tracker_bytes_pruned),
                )
                .figure(
                    &format!("assignment_mib_pruned_round_{n}"),
                    mib(r.assignment_bytes_pruned),
                )
                .figure(&format!("rows_left_round_{n}"), r.rows_left as f64);
            if let Some((tracker, assignment)) = r.vacuumed_bytes {
                result
                    .figure(&format!("tracker_mib_vacuumed_round_{n}"), mib(tracker))
                    .figure(
                        &format!("assignment_mib_vacuumed_round_{n}"),
                        mib(assignment),
                    );
            }
        }
        results.push(result);
        plot::svg(
            &out.join("curve-bytes-under-retention.svg"),
            &plot::Chart {
                title: "Database size over rounds of ingest with one-second retention",
                x_desc: "round",
                categories: (1..=rounds.len()).map(|r| r.to_string()).collect(),
                y_desc: "MiB",
                series: [
                    plot::Series {
                        name: "tracker, after the round's ingest".into(),
                        values: rounds.iter().map(|r| mib(r.tracker_bytes_loaded)).collect(),
                    },
                    plot::Series {
                        name: "tracker, after retention".into(),
                        values: rounds.iter().map(|r| mib(r.tracker_bytes_pruned)).collect(),
                    },
                    plot::Series {
                        name: "assignment, after retention".into(),
                        values: rounds
                            .iter()
                            .map(|r| mib(r.assignment_bytes_pruned))
                            .collect(),
                    },
                ]
                .into_iter()
                .chain(rounds.iter().all(|r| r.vacuumed_bytes.is_some()).then(|| {
                    plot::Series {
                        name: "tracker, after VACUUM".into(),
                        values: rounds
                            .iter()
                            .filter_map(|r| r.vacuumed_bytes.map(|(tracker, _)| mib(tracker)))
                            .collect(),
                    }
                }))
                .collect(),
            },
        )?;
    }

    if wants("curve-catch-up") {
        let caught = curves::catch_up(options, plan.catch_up).await?;
        let mut result = ScenarioResult::new(
            "curve-catch-up",
            "replayed deliveries/s",
            caught.replayed_per_s,
            "– (memory flat while replaying)",
        );
        result
            .figure("behind", caught.behind as f64)
            .figure("written_per_s", caught.written_per_s)
            .figure("anomalies", caught.anomalies as f64)
            .figure("rss_before_replay_mib", caught.rss_before_mib)
            .figure("rss_after_replay_mib", caught.rss_after_mib)
            .figure("peak_rss_mib", caught.peak_rss_mib)
            .figure(
                "assignment_db_bytes_per_notification",
                caught.bytes_per_notification,
            );
        results.push(result);
        plot::svg(
            &out.join("curve-catch-up.svg"),
            &plot::Chart {
                title: "A subscriber catching up: each second of its replay",
                x_desc: "second of the replay",
                categories: (1..=caught.per_second.len())
                    .map(|s| s.to_string())
                    .collect(),
                y_desc: "thousands delivered / MiB resident",
                series: vec![
                    plot::Series {
                        name: "thousand notifications delivered".into(),
                        values: caught
                            .per_second
                            .iter()
                            .map(|(n, _)| *n as f64 / 1000.0)
                            .collect(),
                    },
                    plot::Series {
                        name: "assignment service RSS MiB".into(),
                        values: caught.per_second.iter().map(|(_, rss)| *rss).collect(),
                    },
                ],
            },
        )?;
    }

    Ok(results)
}
