//! The notifier, started in-process on port 0 against an assignment service
//! and the chat fakes, with helpers to set destinations and read deliveries.

use std::net::SocketAddr;

use chat_sim::ChatSim;
use proto::notifier::v1 as pb;
use proto::notifier::v1::notifier_service_client::NotifierServiceClient;
use service_runtime::config::DatabaseUrl;
use service_runtime::shutdown::Shutdown;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use crate::apps::channel_to;

/// The bot token the fakes accept in tests.
pub const SLACK_TOKEN: &str = "xoxb-test-0000";
/// The Discord bot token the fakes accept in tests.
pub const DISCORD_TOKEN: &str = "discord-test-0000";
/// A Standard Webhooks secret (32 bytes).
pub const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYo=";

/// A running notifier.
#[derive(Debug)]
pub struct NotifierApp {
    /// Where its gRPC API listens.
    pub grpc_addr: SocketAddr,
    /// Where `/healthz` and `/metrics` listen.
    pub http_addr: SocketAddr,
    shutdown: Shutdown,
    task: JoinHandle<anyhow::Result<()>>,
}

impl NotifierApp {
    /// The configuration for a notifier on `database_url`, following the
    /// assignment service at `assignment_addr` and delivering to `chat`.
    pub fn config(
        database_url: DatabaseUrl,
        assignment_addr: SocketAddr,
        chat: &ChatSim,
    ) -> notifier::Config {
        let mut config =
            notifier::Config::for_tests(database_url, format!("http://{assignment_addr}"));
        config.slack_api_url = chat.slack_url();
        config.discord_api_url = chat.discord_url();
        config
    }

    /// Starts a notifier with `config`.
    pub async fn spawn_with(config: notifier::Config) -> Self {
        crate::init_test_logs();
        let app = notifier::Application::build(config)
            .await
            .expect("notifier builds");
        let grpc_addr = app.grpc_addr();
        let http_addr = app.http_addr();
        let shutdown = Shutdown::new();
        let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        Self {
            grpc_addr,
            http_addr,
            shutdown,
            task,
        }
    }

    /// A client of its API.
    pub fn client(&self) -> NotifierServiceClient<Channel> {
        NotifierServiceClient::new(channel_to(self.grpc_addr))
    }

    /// Sets `user_id`'s destination.
    pub async fn set_destination(&self, user_id: i64, target: pb::destination::Target) {
        self.client()
            .set_destination(pb::SetDestinationRequest {
                destination: Some(pb::Destination {
                    user_id,
                    target: Some(target),
                    update_time: None,
                }),
                request_id: format!("set-{user_id}-{}", rand_suffix()),
            })
            .await
            .expect("destination set");
    }

    /// Every delivery, newest first.
    pub async fn deliveries(&self) -> Vec<pb::Delivery> {
        let mut all = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .client()
                .list_deliveries(pb::ListDeliveriesRequest {
                    page_size: 500,
                    page_token,
                    ..Default::default()
                })
                .await
                .expect("deliveries listed")
                .into_inner();
            all.extend(page.deliveries);
            if page.next_page_token.is_empty() {
                return all;
            }
            page_token = page.next_page_token;
        }
    }

    /// Stops the notifier (as SIGTERM would) and waits until it exited.
    pub async fn stop(self) {
        self.shutdown.trigger();
        self.task
            .await
            .expect("notifier task")
            .expect("notifier stops cleanly");
    }

    /// Kills the notifier mid-flight, without draining (as a crash would).
    pub async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A Slack destination in the fake (`channel` must not start with
/// `missing`, which the fake does not know).
pub fn slack(channel: &str) -> pb::destination::Target {
    pb::destination::Target::Slack(pb::SlackDestination {
        channel: channel.into(),
        bot_token: SLACK_TOKEN.into(),
    })
}

/// A Discord destination in the fake.
pub fn discord(channel_id: &str) -> pb::destination::Target {
    pb::destination::Target::Discord(pb::DiscordDestination {
        channel_id: channel_id.into(),
        bot_token: DISCORD_TOKEN.into(),
    })
}

/// A webhook destination at the fake's hook `name`.
pub fn webhook(chat: &ChatSim, name: &str) -> pb::destination::Target {
    pb::destination::Target::Webhook(pb::WebhookDestination {
        url: chat.hook(name, WEBHOOK_SECRET),
        secret: WEBHOOK_SECRET.into(),
    })
}

/// Whether every delivery is done (sent, stopped or undeliverable).
pub fn all_done(deliveries: &[pb::Delivery]) -> bool {
    deliveries.iter().all(|d| {
        matches!(
            d.state(),
            pb::DeliveryState::Sent | pb::DeliveryState::Stopped | pb::DeliveryState::Undeliverable
        )
    })
}
