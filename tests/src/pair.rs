//! Both services and a fake Jira, wired together, with helpers for the tracker's
//! side: integrations and signed webhooks.

use proto::tracker::v1 as tracker;
use service_runtime::config::DatabaseUrl;

use crate::apps::{AssignmentApp, TrackerApp};
use crate::database::TestDatabase;
use crate::proxy::CuttableProxy;
use jira_sim::JiraSim;

/// The webhook secret test integrations use.
pub const WEBHOOK_SECRET: &str = "whsec-test-7f3a9c";

/// The API token test integrations use (a secret that must never show).
pub const API_TOKEN: &str = "atlassian-api-token-5e1d0b";

/// A running pair on fresh databases, and a fake Jira.
#[derive(Debug)]
pub struct Pair {
    /// The assignment service.
    pub assignment: AssignmentApp,
    /// The tracker, which reaches the assignment service through
    /// `assignment_proxy`.
    pub tracker: TrackerApp,
    /// Stands between the tracker and the assignment service, so a test can
    /// restart the assignment service on a new port without the tracker knowing.
    pub assignment_proxy: CuttableProxy,
    /// The Jira simulator.
    pub jira: JiraSim,
    /// The assignment service's database (kept for restarts).
    pub assignment_db: TestDatabase,
    /// The tracker's database (kept for restarts).
    pub tracker_db: TestDatabase,
}

impl Pair {
    /// Starts everything.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts everything, the tracker with its test configuration changed by
    /// `configure`.
    pub async fn start_with(configure: impl FnOnce(&mut tracker_service::Config)) -> Self {
        let assignment_db = TestDatabase::fresh().await;
        let tracker_db = TestDatabase::fresh().await;
        let jira = JiraSim::start().await;
        let assignment = AssignmentApp::spawn(assignment_db.url()).await;
        let assignment_proxy = CuttableProxy::start(assignment.grpc_addr).await;
        let mut config = tracker_service::Config::for_tests(
            tracker_db.url(),
            format!("http://{}", assignment_proxy.addr),
        );
        configure(&mut config);
        let tracker = TrackerApp::spawn_with(config).await;
        Self {
            assignment,
            tracker,
            assignment_proxy,
            jira,
            assignment_db,
            tracker_db,
        }
    }

    /// Registers an API-token integration for the fake Jira with the test
    /// webhook secret.
    pub async fn create_integration(
        &self,
        id: &str,
        email_api_allowed: bool,
    ) -> tracker::Integration {
        self.tracker
            .tracker()
            .create_integration(tracker::CreateIntegrationRequest {
                integration_id: id.into(),
                display_name: String::new(),
                base_url: self.jira.base_url(),
                credentials: Some(tracker::Credentials {
                    credential: Some(tracker::credentials::Credential::ApiToken(
                        tracker::ApiTokenCredential {
                            account_email: "bot@example.com".into(),
                            api_token: API_TOKEN.into(),
                        },
                    )),
                }),
                webhook_secret: WEBHOOK_SECRET.into(),
                email_api_allowed,
                request_id: String::new(),
                group_link_template: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .integration
            .unwrap()
    }

    /// The tracker's database URL (to restart it on the same data).
    pub fn tracker_url(&self) -> DatabaseUrl {
        self.tracker_db.url()
    }
}

/// The `X-Hub-Signature` for a body.
pub fn signature(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac as _};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl TrackerApp {
    /// Posts a webhook signed with the test secret; returns the status and body.
    pub async fn post_webhook(
        &self,
        integration: &str,
        body: &[u8],
        delivery_id: Option<&str>,
    ) -> (u16, serde_json::Value) {
        self.post_webhook_signed_with(WEBHOOK_SECRET, integration, body, delivery_id)
            .await
    }

    /// Posts a webhook signed with `secret`; returns the status and body.
    pub async fn post_webhook_signed_with(
        &self,
        secret: &str,
        integration: &str,
        body: &[u8],
        delivery_id: Option<&str>,
    ) -> (u16, serde_json::Value) {
        let mut request = crate::http_client()
            .post(format!("{}/webhooks/jira/{integration}", self.http_url()))
            .header("content-type", "application/json")
            .header("x-hub-signature", signature(secret, body))
            .body(body.to_vec());
        if let Some(id) = delivery_id {
            request = request.header("x-atlassian-webhook-identifier", id);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let json = response.json().await.unwrap_or(serde_json::Value::Null);
        (status, json)
    }
}

impl crate::apps::TrackerApi {
    /// Registers integration `id` for the Jira at `base_url` with a personal
    /// access token and the test webhook secret.
    pub async fn create_pat_integration(&self, id: &str, base_url: String) {
        self.tracker()
            .create_integration(tracker::CreateIntegrationRequest {
                integration_id: id.into(),
                base_url,
                credentials: Some(tracker::Credentials {
                    credential: Some(tracker::credentials::Credential::PersonalAccessToken(
                        tracker::PersonalAccessTokenCredential {
                            token: "pat-0123456789".into(),
                        },
                    )),
                }),
                webhook_secret: WEBHOOK_SECRET.into(),
                ..Default::default()
            })
            .await
            .unwrap();
    }

    /// Every stored delivery, newest first.
    pub async fn deliveries(&self) -> Vec<tracker::WebhookDelivery> {
        let mut all = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .tracker()
                .list_webhook_deliveries(tracker::ListWebhookDeliveriesRequest {
                    page_size: 1000,
                    page_token,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            all.extend(page.deliveries);
            if page.next_page_token.is_empty() {
                return all;
            }
            page_token = page.next_page_token;
        }
    }

    /// One delivery with its body and outcome.
    pub async fn delivery(&self, id: i64) -> tracker::WebhookDelivery {
        self.tracker()
            .get_webhook_delivery(tracker::GetWebhookDeliveryRequest { delivery_id: id })
            .await
            .unwrap()
            .into_inner()
            .delivery
            .unwrap()
    }

    /// Waits until delivery `id` left the pending state; returns it.
    pub async fn settled(&self, id: i64) -> tracker::WebhookDelivery {
        crate::wait::until(
            "the delivery to be applied",
            crate::wait::DEFAULT_DEADLINE,
            || async move {
                let d = self.delivery(id).await;
                (d.state() != tracker::DeliveryState::Pending).then_some(d)
            },
        )
        .await
    }
}
