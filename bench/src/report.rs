//! Figures: latency percentiles, one JSON file per scenario, and the table.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::procs::Usage;

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    /// Samples.
    pub count: usize,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Worst.
    pub max_ms: f64,
}

impl Latency {
    /// Percentiles of `samples`.
    pub fn of(mut samples: Vec<Duration>) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort();
        let at = |q: f64| {
            let index = ((samples.len() as f64 - 1.0) * q).round() as usize;
            samples[index.min(samples.len() - 1)].as_secs_f64() * 1000.0
        };
        Self {
            count: samples.len(),
            p50_ms: at(0.50),
            p90_ms: at(0.90),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        }
    }
}

/// One scenario's figures.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    /// Scenario name.
    pub name: String,
    /// The headline figure's name and value.
    pub headline: (String, f64),
    /// The baseline it is compared with, when any: name and value.
    pub baseline: Option<(String, f64)>,
    /// The goal, in words, when any.
    pub goal: String,
    /// Every figure.
    pub figures: BTreeMap<String, f64>,
    /// Latency, when measured.
    pub latency: Option<Latency>,
    /// Assignment service CPU and memory.
    pub assignment: Option<Usage>,
    /// Tracker CPU and memory.
    pub tracker: Option<Usage>,
    /// Remarks (skipped parts, lost messages).
    pub notes: Vec<String>,
}

impl ScenarioResult {
    /// A result with a headline figure.
    pub fn new(name: &str, headline: &str, value: f64, goal: &str) -> Self {
        Self {
            name: name.to_owned(),
            headline: (headline.to_owned(), value),
            baseline: None,
            goal: goal.to_owned(),
            figures: BTreeMap::new(),
            latency: None,
            assignment: None,
            tracker: None,
            notes: Vec::new(),
        }
    }

    /// Adds a figure.
    pub fn figure(&mut self, name: &str, value: f64) -> &mut Self {
        self.figures.insert(name.to_owned(), value);
        self
    }

    /// The headline over the baseline.
    pub fn ratio(&self) -> Option<f64> {
        self.baseline
            .as_ref()
            .filter(|(_, b)| *b > 0.0)
            .map(|(_, b)| self.headline.1 / b)
    }
}

/// Writes `result` as `dir/<name>.json`.
pub fn write_json(dir: &Path, result: &ScenarioResult) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("{}.json", result.name));
    std::fs::write(&path, serde_json::to_vec_pretty(result)?)?;
    Ok(())
}

fn human(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

/// The results as a Markdown table.
pub fn table(results: &[ScenarioResult]) -> String {
    let mut out = String::from(
        "| scenario | figure | value | baseline | ratio | p50 / p99 ms | CPU s (assign / track) | peak RSS MiB (assign / track) | goal |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in results {
        let baseline = r
            .baseline
            .as_ref()
            .map_or_else(|| "–".to_owned(), |(n, v)| format!("{n}: {}", human(*v)));
        let ratio = r
            .ratio()
            .map_or_else(|| "–".to_owned(), |x| format!("{x:.2}"));
        let latency = r.latency.map_or_else(
            || "–".to_owned(),
            |l| format!("{:.2} / {:.2}", l.p50_ms, l.p99_ms),
        );
        let cpu = match (&r.assignment, &r.tracker) {
            (Some(a), Some(t)) => format!("{:.1} / {:.1}", a.cpu_seconds, t.cpu_seconds),
            (Some(a), None) => format!("{:.1} / –", a.cpu_seconds),
            _ => "–".to_owned(),
        };
        let rss = match (&r.assignment, &r.tracker) {
            (Some(a), Some(t)) => format!("{:.0} / {:.0}", a.peak_rss_mib, t.peak_rss_mib),
            (Some(a), None) => format!("{:.0} / –", a.peak_rss_mib),
            _ => "–".to_owned(),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {baseline} | {ratio} | {latency} | {cpu} | {rss} | {} |\n",
            r.name,
            r.headline.0,
            human(r.headline.1),
            r.goal
        ));
    }
    out
}
