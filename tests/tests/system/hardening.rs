//! Production hardening (issue 9): authentication, TLS, tenant isolation,
//! metrics, overload, trace context.

use std::time::Duration;

use proto::assignment::v1 as assignment;
use proto::tracker::v1 as tracker;
use serde_json::json;
use service_runtime::database::{Database, PoolSettings, connect_options};
use service_runtime::secret::Secret;
use system_tests::fixtures::{assert_error, inbound_on};
use system_tests::pair::{API_TOKEN, WEBHOOK_SECRET, signature};
use system_tests::{
    AssignmentApi, AssignmentApp, JiraSim, Pair, TestDatabase, TrackerApi, TrackerApp, wait,
};
use tonic::Code;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

const JIRA: &str = "acme-jira";
const TRACKER_TOKEN: &str = "tracker-token-6d1f0c9e8b7a";
const BOT_TOKEN: &str = "bot-token-3a4b5c6d7e8f90";

fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

/// `--auth-token` values: (name, role, token).
fn token_args(entries: &[(&str, &str, &str)]) -> Vec<Secret<String>> {
    entries
        .iter()
        .map(|(name, role, token)| Secret::new(format!("{name}:{role}={token}")))
        .collect()
}

/// Sets a tenant up through the API as `api`'s caller: two groups linked to
/// APP-123, Jess with access. Returns (org, groups, Jess).
async fn tenant(api: &AssignmentApi) -> (i64, Vec<i64>, i64) {
    let org = api.create_org("acme").await;
    let project = api.create_project(org, "web").await;
    let user = api.create_user("Jess", &[("jess@sentry.io", true)]).await;
    api.grant(project, user).await;
    let mut groups = Vec::new();
    for title in ["one", "two"] {
        groups.push(api.create_group(project, title).await);
    }
    api.install(org, JIRA, inbound_on()).await;
    api.link(org, JIRA, "APP-123", "101", &groups).await;
    (org, groups, user)
}

#[tokio::test]
async fn calls_without_a_valid_token_are_unauthenticated_and_the_pair_works_with_tokens() {
    let assignment_db = TestDatabase::fresh().await;
    let tracker_db = TestDatabase::fresh().await;
    let jira = JiraSim::start().await;
    let mut config = AssignmentApp::config(assignment_db.url());
    config.grpc.auth_tokens = token_args(&[
        ("tracker", "service", TRACKER_TOKEN),
        ("bot", "admin", BOT_TOKEN),
    ]);
    let assignment_app = AssignmentApp::spawn_with(config).await;

    let mut groups = assignment_app.groups();
    let request = || assignment::GetGroupRequest { group_id: 1 };
    let missing = groups.get_group(request()).await;
    let status = assert_error(missing, Code::Unauthenticated, None);
    assert!(status.message().contains("Bearer"));
    assert_error(
        groups
            .get_group(authed(request(), "wrong-token-0000000000"))
            .await,
        Code::Unauthenticated,
        None,
    );
    assert_error(
        groups.get_group(authed(request(), "x")).await,
        Code::Unauthenticated,
        None,
    );
    assert_error(
        groups
            .get_group(authed(request(), &format!("{BOT_TOKEN}0")))
            .await,
        Code::Unauthenticated,
        None,
    );
    // A valid token gets through (to a NOT_FOUND: there is no group yet).
    assert_error(
        groups.get_group(authed(request(), BOT_TOKEN)).await,
        Code::NotFound,
        None,
    );
    // Health and reflection stay open by default.
    let health = tonic_health::pb::health_client::HealthClient::new(assignment_app.channel())
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await;
    assert!(health.is_ok());

    // End to end: the tracker presents its token to the assignment service.
    let (_, groups_ids, jess) = tenant(&assignment_app.as_token(BOT_TOKEN)).await;
    let mut tracker_config = tracker_service::Config::for_tests(
        tracker_db.url(),
        format!("http://{}", assignment_app.grpc_addr),
    );
    tracker_config.assignment_token = Some(Secret::new(TRACKER_TOKEN.into()));
    tracker_config.grpc.auth_tokens = token_args(&[("backend", "admin", BOT_TOKEN)]);
    let tracker_app = TrackerApp::spawn_with(tracker_config).await;
    let create = tracker::CreateIntegrationRequest {
        integration_id: JIRA.into(),
        base_url: jira.base_url(),
        credentials: Some(tracker::Credentials {
            credential: Some(tracker::credentials::Credential::ApiToken(
                tracker::ApiTokenCredential {
                    account_email: "bot@example.com".into(),
                    api_token: API_TOKEN.into(),
                },
            )),
        }),
        webhook_secret: WEBHOOK_SECRET.into(),
        ..Default::default()
    };
    assert_error(
        tracker_app
            .tracker()
            .create_integration(create.clone())
            .await,
        Code::Unauthenticated,
        None,
    );
    tracker_app
        .tracker()
        .create_integration(authed(create, BOT_TOKEN))
        .await
        .unwrap();
    let body = jira_sim::fixture("edit_issue_assignee_payload.json");
    let (status, json) = tracker_app
        .post_webhook(JIRA, &body, Some("authed-1"))
        .await;
    assert_eq!(status, 200, "{json}");
    let id = json["delivery_id"].as_i64().unwrap();
    let delivery = wait::until("the delivery to be applied", wait::DEFAULT_DEADLINE, || {
        let mut client = tracker_app.tracker();
        async move {
            let d = client
                .get_webhook_delivery(authed(
                    tracker::GetWebhookDeliveryRequest { delivery_id: id },
                    BOT_TOKEN,
                ))
                .await
                .unwrap()
                .into_inner()
                .delivery
                .unwrap();
            (d.state() != tracker::DeliveryState::Pending).then_some(d)
        }
    })
    .await;
    assert_eq!(delivery.state(), tracker::DeliveryState::Delivered);
    let group = assignment_app
        .groups()
        .get_group(authed(
            assignment::GetGroupRequest {
                group_id: groups_ids[0],
            },
            BOT_TOKEN,
        ))
        .await
        .unwrap()
        .into_inner()
        .group
        .unwrap();
    assert_eq!(group.assignee_user_id, Some(jess));
}

#[tokio::test]
async fn health_and_reflection_can_be_protected_too() {
    let db = TestDatabase::fresh().await;
    let mut config = AssignmentApp::config(db.url());
    config.grpc.auth_tokens = token_args(&[("bot", "admin", BOT_TOKEN)]);
    config.grpc.protect_health_and_reflection = true;
    let app = AssignmentApp::spawn_with(config).await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(app.channel());
    assert_error(
        health
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await,
        Code::Unauthenticated,
        None,
    );
    assert!(
        health
            .check(authed(
                tonic_health::pb::HealthCheckRequest::default(),
                BOT_TOKEN
            ))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn the_pair_works_over_tls_with_tokens() {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();

    let assignment_db = TestDatabase::fresh().await;
    let tracker_db = TestDatabase::fresh().await;
    let jira = JiraSim::start().await;
    let mut config = AssignmentApp::config(assignment_db.url());
    config.grpc.tls_cert = Some(cert.clone());
    config.grpc.tls_key = Some(key.clone());
    config.grpc.auth_tokens = token_args(&[
        ("tracker", "service", TRACKER_TOKEN),
        ("bot", "admin", BOT_TOKEN),
    ]);
    let assignment_app = AssignmentApp::spawn_with(config).await;

    service_runtime::tls::install_crypto_provider();
    let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(certified.cert.pem()));
    let secure = |addr: std::net::SocketAddr| {
        Endpoint::from_shared(format!("https://{addr}"))
            .unwrap()
            .tls_config(tls.clone())
            .unwrap()
            .connect_lazy()
    };
    // A plaintext client cannot talk to the TLS server.
    assert!(
        assignment_app
            .directory()
            .list_organizations(authed(
                assignment::ListOrganizationsRequest::default(),
                BOT_TOKEN
            ))
            .await
            .is_err()
    );
    let assignment_api = AssignmentApi::new(secure(assignment_app.grpc_addr), Some(BOT_TOKEN));
    assignment_api
        .directory()
        .list_organizations(assignment::ListOrganizationsRequest::default())
        .await
        .unwrap();

    let mut tracker_config = tracker_service::Config::for_tests(
        tracker_db.url(),
        format!("https://{}", assignment_app.grpc_addr),
    );
    tracker_config.assignment_token = Some(Secret::new(TRACKER_TOKEN.into()));
    tracker_config.assignment_ca_cert = Some(cert.clone());
    tracker_config.grpc.tls_cert = Some(cert);
    tracker_config.grpc.tls_key = Some(key);
    let tracker_app = TrackerApp::spawn_with(tracker_config).await;
    let mut tracker_client = TrackerApi::new(secure(tracker_app.grpc_addr), None).tracker();

    // The tenant, through TLS.
    let org = assignment_api.create_org("acme").await;
    let project = assignment_api.create_project(org, "web").await;
    let group = assignment_api.create_group(project, "tls").await;
    assignment_api.install(org, JIRA, inbound_on()).await;
    tracker_client
        .create_integration(tracker::CreateIntegrationRequest {
            integration_id: JIRA.into(),
            base_url: jira.base_url(),
            credentials: Some(tracker::Credentials {
                credential: Some(tracker::credentials::Credential::ApiToken(
                    tracker::ApiTokenCredential {
                        account_email: "bot@example.com".into(),
                        api_token: API_TOKEN.into(),
                    },
                )),
            }),
            webhook_secret: WEBHOOK_SECRET.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    // CreateIssue links over TLS with the tracker's token.
    let created = tracker_client
        .create_issue(tracker::CreateIssueRequest {
            integration_id: JIRA.into(),
            organization_id: org,
            group_ids: vec![group],
            project_id: "10000".into(),
            issue_type_id: "1".into(),
            title: "over TLS".into(),
            request_id: "tls-1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.link_state(), tracker::LinkState::Linked);
}

#[tokio::test]
async fn a_webhook_for_one_integration_never_touches_another_organizations_groups() {
    let pair = Pair::start().await;
    pair.create_integration("a-jira", false).await;
    pair.create_integration("b-jira", false).await;
    let app = &pair.assignment;
    let mut setups = Vec::new();
    for (slug, integration) in [("alpha", "a-jira"), ("beta", "b-jira")] {
        let org = app.create_org(slug).await;
        let project = app.create_project(org, "web").await;
        let group = app.create_group(project, "same key, other tenant").await;
        app.install(org, integration, inbound_on()).await;
        app.link(org, integration, "APP-123", "101", &[group]).await;
        let user = app
            .create_user(&format!("Jess of {slug}"), &[("jess@sentry.io", true)])
            .await;
        app.grant(project, user).await;
        setups.push((group, user));
    }
    let body = jira_sim::fixture("edit_issue_assignee_payload.json");
    let (status, json) = pair
        .tracker
        .post_webhook("a-jira", &body, Some("tenant-a"))
        .await;
    assert_eq!(status, 200, "{json}");
    pair.tracker
        .settled(json["delivery_id"].as_i64().unwrap())
        .await;

    let (a_group, a_user) = setups[0];
    let (b_group, _) = setups[1];
    assert_eq!(app.group(a_group).await.assignee_user_id, Some(a_user));
    assert_eq!(app.group(b_group).await.assignee_user_id, None);
    assert!(
        app.activities(b_group)
            .await
            .iter()
            .all(|a| a.kind() == assignment::ActivityKind::Linked)
    );
    assert!(
        app.all_notifications()
            .await
            .iter()
            .all(|n| n.group_id != b_group)
    );
}

#[tokio::test]
async fn metrics_show_every_family_after_a_run() {
    let pair = Pair::start().await;
    pair.create_integration(JIRA, true).await;
    let (_, groups, _) = tenant(&pair.assignment).await;
    let reader = pair
        .assignment
        .notifications()
        .subscribe(assignment::SubscribeRequest {
            start: Some(assignment::subscribe_request::Start::SubscriberName(
                "mailer".into(),
            )),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    pair.tracker
        .tracker()
        .create_issue(tracker::CreateIssueRequest {
            integration_id: JIRA.into(),
            organization_id: 1,
            group_ids: groups.clone(),
            project_id: "10000".into(),
            issue_type_id: "1".into(),
            title: "metrics".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let body = jira_sim::fixture("edit_issue_assignee_payload.json");
    let (_, json) = pair
        .tracker
        .post_webhook(JIRA, &body, Some("metrics-1"))
        .await;
    pair.tracker
        .settled(json["delivery_id"].as_i64().unwrap())
        .await;
    // A hidden address, and a first e-mail API call that fails: the client's
    // retry gets the address, and the failed call is counted.
    pair.jira.set_email("deadbeef123", "jess@sentry.io");
    pair.jira.fail_next(
        axum::http::Method::GET,
        "/rest/api/3/user/email",
        1,
        500,
        &[],
        "",
    );
    let mut hidden = jira_sim::fixture_json("edit_issue_assignee_payload.json");
    hidden["issue"]["fields"]["assignee"]
        .as_object_mut()
        .unwrap()
        .remove("emailAddress");
    let (_, json) = pair
        .tracker
        .post_webhook(
            JIRA,
            &serde_json::to_vec(&hidden).unwrap(),
            Some("metrics-2"),
        )
        .await;
    let settled = pair
        .tracker
        .settled(json["delivery_id"].as_i64().unwrap())
        .await;
    assert_eq!(settled.state(), tracker::DeliveryState::Delivered);

    let client = system_tests::http_client();
    let scrape = |addr: std::net::SocketAddr| {
        let client = client.clone();
        async move {
            client
                .get(format!("http://{addr}/metrics"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let tracker_families = [
        "tracker_grpc_server_handled_total{service=\"tracker.v1.TrackerService\",method=\"CreateIssue\",code=\"Ok\"}",
        "tracker_grpc_server_handling_seconds_bucket",
        "tracker_webhook_deliveries_total{outcome=\"accepted\"}",
        "tracker_inbox_pending ",
        "tracker_inbox_oldest_pending_age_seconds ",
        "tracker_dispatch_retries_total ",
        "tracker_jira_calls_total{endpoint=\"create_issue\",status=\"201\"}",
        "tracker_jira_calls_total{endpoint=\"user_email\",status=\"500\"}",
        "tracker_jira_calls_total{endpoint=\"user_email\",status=\"200\"}",
        "tracker_db_pool_connections{pool=\"main\",state=\"idle\"}",
    ];
    let assignment_families = [
        "assignment_grpc_server_handled_total{service=\"assignment.v1.ExternalIssueService\",method=\"SyncAssigneeInboundBatch\",code=\"Ok\"}",
        "assignment_notifications_total ",
        "assignment_notification_head_sequence ",
        "assignment_stream_subscribers 1",
        "assignment_stream_subscriber_max_lag ",
        "assignment_stream_subscriber_lag{subscriber=\"mailer\"}",
        "assignment_db_pool_connections{pool=\"stream\",state=\"idle\"}",
    ];
    for (addr, families) in [
        (pair.tracker.http_addr, &tracker_families[..]),
        (pair.assignment.http_addr, &assignment_families[..]),
    ] {
        wait::until("every metric family", wait::DEFAULT_DEADLINE, || {
            let scrape = scrape(addr);
            async move {
                let text = scrape.await;
                families.iter().all(|f| text.contains(f)).then_some(())
            }
        })
        .await;
    }
    drop(reader);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_beyond_the_limit_is_shed_and_every_accepted_webhook_is_applied() {
    let assignment_db = TestDatabase::fresh().await;
    let tracker_db = TestDatabase::fresh().await;
    let jira = JiraSim::start().await;
    let assignment_app = AssignmentApp::spawn(assignment_db.url()).await;
    let (_, groups, _) = tenant(&assignment_app).await;
    let mut config = tracker_service::Config::for_tests(
        tracker_db.url(),
        format!("http://{}", assignment_app.grpc_addr),
    );
    config.webhook_max_in_flight = 1;
    let tracker_app = TrackerApp::spawn_with(config).await;
    tracker_app
        .tracker()
        .create_integration(tracker::CreateIntegrationRequest {
            integration_id: JIRA.into(),
            base_url: jira.base_url(),
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

    let client = system_tests::http_client();
    let url = format!("{}/webhooks/jira/{JIRA}", tracker_app.http_url());
    let posts = (0..120).map(|i| {
        let client = client.clone();
        let url = url.clone();
        async move {
            let mut payload = jira_sim::fixture_json("edit_issue_assignee_payload.json");
            payload["issue"]["fields"]["updated"] = json!(format!(
                "2023-01-01T00:00:{:02}.{:03}+0000",
                i / 1000,
                i % 1000
            ));
            let body = serde_json::to_vec(&payload).unwrap();
            let response = client
                .post(&url)
                .header("x-hub-signature", signature(WEBHOOK_SECRET, &body))
                .header("x-atlassian-webhook-identifier", format!("burst-{i}"))
                .body(body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let retry_after = response.headers().get("retry-after").is_some();
            (status, retry_after)
        }
    });
    let results = futures_util::future::join_all(posts).await;
    let accepted = results.iter().filter(|(s, _)| *s == 200).count();
    let shed: Vec<_> = results.iter().filter(|(s, _)| *s == 503).collect();
    assert!(!shed.is_empty(), "some of the burst was shed: {results:?}");
    assert!(
        shed.iter().all(|(_, retry_after)| *retry_after),
        "503s say when to come back"
    );
    assert_eq!(accepted + shed.len(), results.len());

    wait::until(
        "every accepted webhook to be applied",
        wait::DEFAULT_DEADLINE,
        || async {
            let deliveries = tracker_app.deliveries().await;
            (deliveries.len() == accepted
                && deliveries
                    .iter()
                    .all(|d| d.state() == tracker::DeliveryState::Delivered))
            .then_some(())
        },
    )
    .await;
    assert!(
        assignment_app
            .group(groups[0])
            .await
            .assignee_user_id
            .is_some()
    );

    // gRPC sheds too: RESOURCE_EXHAUSTED beyond the in-flight limit.
    let db = TestDatabase::fresh().await;
    let mut config = AssignmentApp::config(db.url());
    config.grpc.max_in_flight = 1;
    let small = AssignmentApp::spawn_with(config).await;
    let calls = (0..60).map(|_| {
        let mut client = small.directory();
        async move {
            client
                .list_organizations(assignment::ListOrganizationsRequest::default())
                .await
        }
    });
    let outcomes = futures_util::future::join_all(calls).await;
    let exhausted = outcomes
        .iter()
        .filter(|r| matches!(r, Err(s) if s.code() == Code::ResourceExhausted))
        .count();
    assert!(exhausted > 0, "some calls were shed");
    assert!(
        outcomes
            .iter()
            .all(|r| r.is_ok() || matches!(r, Err(s) if s.code() == Code::ResourceExhausted))
    );
}

#[tokio::test]
async fn the_trace_context_travels_from_the_webhook_to_the_notification() {
    let pair = Pair::start().await;
    pair.create_integration(JIRA, false).await;
    tenant(&pair.assignment).await;
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let body = jira_sim::fixture("edit_issue_assignee_payload.json");
    let response = system_tests::http_client()
        .post(format!("{}/webhooks/jira/{JIRA}", pair.tracker.http_url()))
        .header("x-hub-signature", signature(WEBHOOK_SECRET, &body))
        .header("traceparent", traceparent)
        .body(body)
        .send()
        .await
        .unwrap();
    let id = response.json::<serde_json::Value>().await.unwrap()["delivery_id"]
        .as_i64()
        .unwrap();
    pair.tracker.settled(id).await;
    let notifications = pair.assignment.all_notifications().await;
    assert_eq!(notifications.len(), 2);
    assert!(notifications.iter().all(|n| n.traceparent == traceparent));
}

#[tokio::test]
async fn rate_limited_webhooks_get_429_with_retry_after() {
    let assignment_db = TestDatabase::fresh().await;
    let tracker_db = TestDatabase::fresh().await;
    let jira = JiraSim::start().await;
    let assignment_app = AssignmentApp::spawn(assignment_db.url()).await;
    let mut config = tracker_service::Config::for_tests(
        tracker_db.url(),
        format!("http://{}", assignment_app.grpc_addr),
    );
    config.webhook_rate = 0.5;
    config.webhook_burst = 2.0;
    let tracker_app = TrackerApp::spawn_with(config).await;
    tracker_app
        .tracker()
        .create_integration(tracker::CreateIntegrationRequest {
            integration_id: JIRA.into(),
            base_url: jira.base_url(),
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
    let body = jira_sim::fixture("edit_issue_assignee_payload.json");
    let mut answers = Vec::new();
    for i in 0..3 {
        let response = system_tests::http_client()
            .post(format!("{}/webhooks/jira/{JIRA}", tracker_app.http_url()))
            .header(
                "x-hub-signature",
                system_tests::pair::signature(WEBHOOK_SECRET, &body),
            )
            .header("x-atlassian-webhook-identifier", format!("rate-{i}"))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
        answers.push((response.status().as_u16(), retry_after));
    }
    // At 0.5 deliveries/s the bucket refills in 2 s: Jira is told to wait at
    // least a second (Retry-After is whole seconds) and at most two.
    assert_eq!(answers[..2], [(200, None), (200, None)]);
    assert_eq!(answers[2].0, 429);
    let wait = answers[2].1.expect("a 429 says when to come back");
    assert!((1..=2).contains(&wait), "Retry-After {wait}");
}

/// The idle timeout and maximum lifetime a pool's options set (sqlx runs
/// its reaper when either is set), and its minimum size (without the reaper,
/// sqlx keeps a minimum with a task that races the first connection).
fn reaper_of(conn: &sea_orm::DatabaseConnection) -> (Option<Duration>, Option<Duration>, u32) {
    fn of<DB: sea_orm::sqlx::Database>(
        options: &sea_orm::sqlx::pool::PoolOptions<DB>,
    ) -> (Option<Duration>, Option<Duration>, u32) {
        (
            options.get_idle_timeout(),
            options.get_max_lifetime(),
            options.get_min_connections(),
        )
    }
    if TestDatabase::on_postgres() {
        of(conn.get_postgres_connection_pool().options())
    } else {
        of(conn.get_sqlite_connection_pool().options())
    }
}

/// sqlx 0.9.0's idle reaper can spin a runtime worker forever (its idle
/// count wraps below zero in a race; sqlx issue #3645): every pool of ours,
/// the services' and the short-lived ones of tests and bench, runs without
/// it, and without a minimum size, whose keeper then races the first
/// connection (a fresh SQLite file failed to open: "database is locked").
#[tokio::test]
async fn database_pools_run_without_sqlx_idle_reaper() {
    let file = TestDatabase::fresh().await;
    let service = Database::connect(&file.url(), &PoolSettings::default())
        .await
        .unwrap();
    assert_eq!(reaper_of(service.conn()), (None, None, 0));
    let plain = sea_orm::Database::connect(connect_options(file.url().as_str()))
        .await
        .unwrap();
    assert_eq!(reaper_of(&plain), (None, None, 0));
}

/// An assignment service without SyncAssigneeInboundBatch (an older replica
/// during a rolling upgrade) answers UNIMPLEMENTED: the tracker sends the
/// change again as a single SyncAssigneeInbound call, and the webhook applies.
/// Between them, a gRPC proxy that refuses the batch path and forwards the
/// rest.
#[tokio::test]
async fn an_assignment_service_without_the_batch_rpc_gets_single_calls() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tonic::codegen::Service as _;

    let assignment_db = TestDatabase::fresh().await;
    let tracker_db = TestDatabase::fresh().await;
    let jira = JiraSim::start().await;
    let assignment_app = AssignmentApp::spawn(assignment_db.url()).await;
    let (_, groups, jess) = tenant(&assignment_app).await;

    let upstream = Endpoint::from_shared(format!("http://{}", assignment_app.grpc_addr))
        .unwrap()
        .connect_lazy();
    let refused = Arc::new(AtomicUsize::new(0));
    let singles = Arc::new(AtomicUsize::new(0));
    let (refused_seen, singles_seen) = (Arc::clone(&refused), Arc::clone(&singles));
    let proxy = axum::Router::new().fallback(move |request: axum::extract::Request| {
        let mut upstream = upstream.clone();
        let (refused, singles) = (Arc::clone(&refused_seen), Arc::clone(&singles_seen));
        async move {
            let path = request.uri().path().to_owned();
            if path.ends_with("/SyncAssigneeInboundBatch") {
                refused.fetch_add(1, Ordering::SeqCst);
                return tonic::Status::unimplemented("no such method")
                    .into_http::<axum::body::Body>();
            }
            if path.ends_with("/SyncAssigneeInbound") {
                singles.fetch_add(1, Ordering::SeqCst);
            }
            std::future::poll_fn(|cx| upstream.poll_ready(cx))
                .await
                .unwrap();
            let answer = upstream
                .call(request.map(tonic::body::Body::new))
                .await
                .unwrap();
            answer.map(axum::body::Body::new)
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, proxy).await });

    let config =
        tracker_service::Config::for_tests(tracker_db.url(), format!("http://{proxy_addr}"));
    let tracker_app = TrackerApp::spawn_with(config).await;
    tracker_app
        .create_pat_integration(JIRA, jira.base_url())
        .await;
    for (n, updated) in [
        "2023-01-01T00:00:01.000+0000",
        "2023-01-01T00:00:02.000+0000",
    ]
    .into_iter()
    .enumerate()
    {
        let mut payload = jira_sim::fixture_json("edit_issue_assignee_payload.json");
        payload["issue"]["fields"]["updated"] = json!(updated);
        let body = serde_json::to_vec(&payload).unwrap();
        let (status, answer) = tracker_app
            .post_webhook(JIRA, &body, Some(&format!("old-{n}")))
            .await;
        assert_eq!(status, 200, "{answer}");
        let settled = tracker_app
            .settled(answer["delivery_id"].as_i64().unwrap())
            .await;
        assert_eq!(settled.state(), tracker::DeliveryState::Delivered);
    }
    assert_eq!(
        assignment_app.group(groups[0]).await.assignee_user_id,
        Some(jess)
    );
    // One batch was refused; from then on, single calls only.
    assert_eq!(refused.load(Ordering::SeqCst), 1);
    assert_eq!(singles.load(Ordering::SeqCst), 2);
}
