//! What a new user tripped over (issue 21, points 1 to 5): answers that explain
//! themselves. A redelivery names the delivery it duplicates and takes no id;
//! an integration reports the path its sender really posts to; a delivery
//! being retried shows what its attempt did; the head-sequence gauge is
//! current when the writing RPC answers.

use axum::http::Method;
use jira_sim::fixture_json;
use proto::tracker::v1 as pb;
use serde_json::{Value, json};
use system_tests::fixtures::inbound_on;
use system_tests::{AssignmentApp, Pair, TestDatabase, wait};

const JIRA: &str = "acme-jira";

fn assignee_event(changelog_id: &str) -> Vec<u8> {
    let mut payload = fixture_json("edit_issue_assignee_payload.json");
    payload["changelog"]["id"] = json!(changelog_id);
    serde_json::to_vec(&payload).unwrap()
}

#[tokio::test]
async fn a_redelivery_names_the_delivery_it_duplicates_and_takes_no_id() {
    let pair = Pair::start().await;
    pair.create_integration(JIRA, false).await;
    let first = assignee_event("1");
    let (status, answer) = pair
        .tracker
        .post_webhook(JIRA, &first, Some("delivery-a"))
        .await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("accepted")));
    let a = answer["delivery_id"].as_i64().unwrap();

    // Jira redelivers three times: each answer names delivery a.
    for _ in 0..3 {
        let (status, answer) = pair
            .tracker
            .post_webhook(JIRA, &first, Some("delivery-a"))
            .await;
        assert_eq!(status, 200);
        assert_eq!(answer["status"], "duplicate", "{answer}");
        assert_eq!(answer["delivery_id"], a, "{answer}");
        assert!(
            ["pending", "delivered"].contains(&answer["state"].as_str().unwrap()),
            "{answer}"
        );
    }
    // The next delivery takes the next id: the duplicates consumed none.
    let second = assignee_event("2");
    let (_, answer) = pair.tracker.post_webhook(JIRA, &second, None).await;
    assert_eq!(answer["status"], "accepted", "{answer}");
    let b = answer["delivery_id"].as_i64().unwrap();
    assert_eq!(b, a + 1);

    // Once applied, a duplicate says so; one recognised by its body (no
    // identifier) names its original too.
    pair.tracker.settled(a).await;
    let (_, answer) = pair
        .tracker
        .post_webhook(JIRA, &first, Some("delivery-a"))
        .await;
    assert_eq!(
        answer,
        json!({ "status": "duplicate", "delivery_id": a, "state": "delivered" })
    );
    let (_, answer) = pair.tracker.post_webhook(JIRA, &second, None).await;
    assert_eq!(
        (answer["status"].as_str(), answer["delivery_id"].as_i64()),
        (Some("duplicate"), Some(b))
    );
    let ids: Vec<i64> = pair
        .tracker
        .deliveries()
        .await
        .iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(ids, vec![b, a]);
}

#[tokio::test]
async fn every_integration_reports_the_path_its_sender_posts_to() {
    const CLIENT_KEY: &str = "connect-client-1";
    const SHARED_SECRET: &str = "connect-shared-secret-0123456789";
    let pair = Pair::start().await;
    let hmac = pair.create_integration(JIRA, false).await;
    let connect = pair
        .tracker
        .tracker()
        .create_integration(pb::CreateIntegrationRequest {
            integration_id: "acme-connect".into(),
            base_url: pair.jira.base_url(),
            credentials: Some(pb::Credentials {
                credential: Some(pb::credentials::Credential::Connect(
                    pb::ConnectCredential {
                        client_key: CLIENT_KEY.into(),
                        shared_secret: SHARED_SECRET.into(),
                    },
                )),
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .integration
        .unwrap();
    assert_eq!(hmac.webhook_path, "/webhooks/jira/acme-jira");
    assert_eq!(connect.webhook_path, "/webhooks/jira");
    let listed: Vec<(String, String)> = pair
        .tracker
        .tracker()
        .list_integrations(pb::ListIntegrationsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .integrations
        .into_iter()
        .map(|i| (i.integration_id, i.webhook_path))
        .collect();
    assert!(listed.contains(&("acme-connect".into(), "/webhooks/jira".into())));

    // Each sender, posting to the reported path with its authentication, is
    // accepted.
    let (status, answer) = pair
        .tracker
        .post_webhook(JIRA, &assignee_event("1"), None)
        .await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("accepted")));
    let token = tracker_service::jira::connect_jwt::sign_request(
        CLIENT_KEY,
        SHARED_SECRET,
        "POST",
        &connect.webhook_path,
        "",
        chrono::Utc::now().timestamp(),
    );
    let response = system_tests::http_client()
        .post(format!(
            "{}{}",
            pair.tracker.http_url(),
            connect.webhook_path
        ))
        .header("authorization", format!("JWT {token}"))
        .header("content-type", "application/json")
        .body(assignee_event("2"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["status"], "accepted", "{answer}");
    let delivery = pair
        .tracker
        .delivery(answer["delivery_id"].as_i64().unwrap())
        .await;
    assert_eq!(delivery.integration_id, "acme-connect");
}

#[tokio::test]
async fn a_delivery_being_retried_shows_what_each_attempt_did() {
    let pair = Pair::start().await;
    pair.create_integration(JIRA, false).await;
    let app = &pair.assignment;
    let org = app.create_org("acme").await;
    let project = app.create_project(org, "web").await;
    let group = app.create_group(project, "TypeError in checkout").await;
    app.install(org, JIRA, inbound_on()).await;
    app.link(org, JIRA, "APP-123", "101", &[group]).await;
    let jess = app.create_user("Jess", &[("jess@sentry.io", true)]).await;
    app.grant(project, jess).await;

    // One event changing the assignee (applied) and the status (which needs
    // Jira's status list, failing until further notice).
    let mut payload = fixture_json("edit_issue_assignee_payload.json");
    let status_item =
        fixture_json("edit_issue_status_payload.json")["changelog"]["items"][0].clone();
    payload["changelog"]["items"]
        .as_array_mut()
        .unwrap()
        .push(status_item);
    pair.jira
        .fail_next(Method::GET, "/rest/api/2/status", 100_000, 500, &[], "down");
    let (_, answer) = pair
        .tracker
        .post_webhook(JIRA, &serde_json::to_vec(&payload).unwrap(), None)
        .await;
    let id = answer["delivery_id"].as_i64().unwrap();
    let retried = wait::until("two failed attempts", wait::DEFAULT_DEADLINE, || async {
        let d = pair.tracker.delivery(id).await;
        (d.attempts >= 2 && d.state() == pb::DeliveryState::Pending).then_some(d)
    })
    .await;
    let summaries: Vec<&str> = retried.actions.iter().map(|a| a.summary.as_str()).collect();
    assert_eq!(summaries.len(), 2, "{summaries:#?}");
    // What the attempt did before it failed, with its result per group ...
    assert!(
        summaries[0].starts_with("assign to jess@sentry.io"),
        "{summaries:#?}"
    );
    assert_eq!(retried.actions[0].group_effects.len(), 1);
    assert_eq!(retried.actions[0].group_effects[0].group_id, group);
    // ... and how it failed and when it is tried again.
    let failure = summaries[1];
    assert!(
        failure.starts_with(&format!("attempt {} failed, retried at ", retried.attempts)),
        "{failure}"
    );
    assert!(failure.contains("status list"), "{failure}");
    assert_eq!(app.group(group).await.assignee_user_id, Some(jess));

    // Jira back: the delivery completes and shows its final attempt only.
    pair.jira.clear_failures();
    let delivered = pair.tracker.settled(id).await;
    assert_eq!(delivered.state(), pb::DeliveryState::Delivered);
    let summaries: Vec<&str> = delivered
        .actions
        .iter()
        .map(|a| a.summary.as_str())
        .collect();
    assert_eq!(summaries.len(), 2, "{summaries:#?}");
    assert!(summaries[1].starts_with("status"), "{summaries:#?}");
}

#[tokio::test]
async fn the_head_sequence_is_current_when_the_writing_rpc_answers() {
    let db = TestDatabase::fresh().await;
    let app = AssignmentApp::spawn(db.url()).await;
    let org = app.create_org("acme").await;
    let project = app.create_project(org, "web").await;
    let group = app.create_group(project, "TypeError").await;
    let mut users = Vec::new();
    for name in ["jess", "kim"] {
        let user = app
            .create_user(name, &[(&format!("{name}@sentry.io"), true)])
            .await;
        app.grant(project, user).await;
        users.push(user);
    }
    let scrape = || async {
        let page = system_tests::http_client()
            .get(format!("http://{}/metrics", app.http_addr))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        system_tests::metric_value(&page, "assignment_notification_head_sequence")
    };
    // Each reassignment writes notifications; the gauge, read right after
    // the answer, is at the last of them.
    let mut read = Vec::new();
    for round in 0..10 {
        app.assign(group, users[round % 2], 0).await;
        read.push(scrape().await);
    }
    let notifications = app.all_notifications().await;
    // The first assignment tells one user, each reassignment two.
    let mut expected = Vec::new();
    let mut written = 0;
    for round in 0..10 {
        written += if round == 0 { 1 } else { 2 };
        expected.push(Some(notifications[written - 1].sequence));
    }
    assert_eq!(notifications.len(), written);
    assert_eq!(read, expected);
}
