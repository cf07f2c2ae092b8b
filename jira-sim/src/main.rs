//! `jira-sim`: runs the Jira simulator until Ctrl-C.

#![allow(clippy::print_stdout)]

use clap::Parser as _;

/// Runs a local Jira simulator serving Sentry's fixtures.
#[derive(Debug, clap::Parser)]
#[command(
    name = "jira-sim",
    about = "A local Jira simulator serving Sentry's fixtures"
)]
struct Args {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:8071")]
    addr: std::net::SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let sim = jira_sim::JiraSim::start_on(args.addr).await;
    println!("jira-sim listening on {}", sim.base_url());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
