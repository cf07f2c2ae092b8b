//! `chat-sim`: runs the chat fakes until Ctrl-C, for trying the notifier
//! locally (`cargo xtask up`). `GET /_sim/messages` shows what people would
//! see.

#![allow(clippy::print_stdout)]

use clap::Parser as _;

/// Runs Slack, Discord and a webhook receiver faked at the HTTP level.
#[derive(Debug, clap::Parser)]
#[command(
    name = "chat-sim",
    about = "Slack, Discord and a Standard Webhooks receiver, faked locally"
)]
struct Args {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:8091")]
    addr: std::net::SocketAddr,

    /// The signing secret of the hook `local` (`/hooks/local`).
    #[arg(
        long,
        default_value = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYo="
    )]
    hook_secret: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let sim = chat_sim::ChatSim::start_on(args.addr).await;
    let hook = sim.hook("local", &args.hook_secret);
    println!(
        "chat-sim listening: Slack {} · Discord {} · webhook {hook} · messages http://{}/_sim/messages",
        sim.slack_url(),
        sim.discord_url(),
        sim.addr()
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}
