//! Prints the notifications of an assignment service as they come, resuming
//! after restarts: `cargo run -p jira-sync-client --example follow -- URL [TOKEN]`
//! (URL e.g. `http://127.0.0.1:50061`). Ctrl-C stops it.

#![allow(clippy::print_stdout)] // printing is what the example does

use jira_sync_client::{Event, Start, Subscriber, SubscriberOptions};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:50061".to_owned());
    let mut options = SubscriberOptions::new(url, Start::Head);
    options.connect.token = args.next();
    let mut subscriber = Subscriber::new(options)?;
    subscriber
        .run(|event| async move {
            match event {
                Event::Notification(n) => println!(
                    "#{} to user {}: {} (group {}, update: {})",
                    n.sequence, n.recipient_user_id, n.message, n.group_id, n.update
                ),
                Event::Progress(sequence) => println!("… caught up at #{sequence}"),
            }
            Ok::<(), std::convert::Infallible>(())
        })
        .await?;
    Ok(())
}
