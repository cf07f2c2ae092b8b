//! `jira-sim`: runs the Jira simulator until Ctrl-C, with a small world to
//! play with: users Jess (`jess@sentry.io`, account `acc-jess`) and Kim
//! (`kim@sentry.io`, `acc-kim`), and issue `EX-100` (id `20100`, project EX).
//! With `--webhook-url` it posts signed webhooks after every change, as Jira
//! does (so a tracker sees its own changes come back).

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

    /// Where to post webhooks after a change, e.g.
    /// `http://127.0.0.1:8051/webhooks/jira/sim-jira`; none: no webhooks.
    #[arg(long)]
    webhook_url: Option<String>,

    /// The secret webhooks are signed with (`X-Hub-Signature`).
    #[arg(long, default_value = "sim-webhook-secret-0123")]
    webhook_secret: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let sim = jira_sim::JiraSim::start_on(args.addr).await;
    sim.add_user("acc-jess", "jess@sentry.io", true);
    sim.add_user("acc-kim", "kim@sentry.io", true);
    sim.add_issue("EX-100", "20100", "10000");
    if let Some(url) = args.webhook_url {
        println!("jira-sim sends webhooks to {url}");
        sim.send_webhooks_to(jira_sim::WebhookTarget {
            url,
            secret: args.webhook_secret,
        });
    }
    println!("jira-sim listening on {}", sim.base_url());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
