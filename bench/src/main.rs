//! `jira-sync-bench`: the benchmarks behind `cargo xtask bench`.
//!
//! `run` starts the services (release binaries) on fresh databases, drives each
//! scenario, measures the baselines in the same run, prints a table and writes
//! one JSON file per scenario. `serve-baselines` is the baseline servers'
//! process, started by `run`.

// The table is the program's output.
#![allow(clippy::print_stdout)]

mod bed;
mod plot;
mod procs;
mod report;
mod run;
mod scenarios;

/// The baseline services' generated code.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
mod bench_proto {
    tonic::include_proto!("bench.v1");
}

use std::net::SocketAddr;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(about = "Benchmarks of the jira-sync pair against same-run baselines")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the scenarios and writes the figures.
    Run(run::RunArgs),
    /// Serves the echo and broadcast baselines (started by `run`).
    ServeBaselines {
        /// Where to listen.
        #[arg(long)]
        addr: SocketAddr,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run(args) => run::run(args).await,
        Command::ServeBaselines { addr } => scenarios::baselines::serve(addr).await,
    }
}
