//! Jira webhooks end to end (DESIGN.md §2 "Webhook ingestion", §3; issue 6): the
//! real HTTP endpoint, a real assignment service, Jira faked over HTTP.

use axum::http::Method;
use jira_sim::{fixture, fixture_json};
use proto::assignment::v1 as assignment;
use proto::tracker::v1 as pb;
use serde_json::{Value, json};
use system_tests::fixtures::inbound_on;
use system_tests::{AssignmentApp, Pair, TrackerApp, wait};

const JIRA: &str = "acme-jira";

/// A tenant whose groups are linked to APP-123 (Jira id 101), with Jess (stored
/// capitalised) and Kim able to be assigned.
struct Tenant {
    org: i64,
    project: i64,
    groups: Vec<i64>,
    jess: i64,
    kim: i64,
}

async fn tenant(app: &AssignmentApp) -> Tenant {
    let org = app.create_org("acme").await;
    let project = app.create_project(org, "web").await;
    let g1 = app.create_group(project, "TypeError in checkout").await;
    let g2 = app.create_group(project, "TypeError in cart").await;
    app.install(org, JIRA, inbound_on()).await;
    app.link(org, JIRA, "APP-123", "101", &[g1, g2]).await;
    let jess = app.create_user("Jess", &[("Jess@Sentry.io", true)]).await;
    let kim = app.create_user("Kim", &[("kim@sentry.io", true)]).await;
    app.grant(project, jess).await;
    app.grant(project, kim).await;
    Tenant {
        org,
        project,
        groups: vec![g1, g2],
        jess,
        kim,
    }
}

fn body(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}

/// An assignee webhook for `key` (Jira id 101 unless `id` is None).
fn assignee_payload(key: &str, id: Option<&str>, email: Option<&str>, updated: &str) -> Value {
    let mut payload = fixture_json("edit_issue_assignee_payload.json");
    payload["issue"]["key"] = json!(key);
    match id {
        Some(id) => payload["issue"]["id"] = json!(id),
        None => {
            payload["issue"].as_object_mut().unwrap().remove("id");
        }
    }
    match email {
        Some(email) => payload["issue"]["fields"]["assignee"]["emailAddress"] = json!(email),
        None => payload["issue"]["fields"]["assignee"] = Value::Null,
    }
    payload["issue"]["fields"]["updated"] = json!(updated);
    payload
}

async fn accepted(tracker: &TrackerApp, payload: &[u8], delivery: Option<&str>) -> i64 {
    let (status, json) = tracker.post_webhook(JIRA, payload, delivery).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["status"], "accepted", "{json}");
    json["delivery_id"].as_i64().unwrap()
}

/// Each group effect's outcome, by its enum value's name without the prefix.
fn outcomes(delivery: &pb::WebhookDelivery) -> Vec<String> {
    delivery
        .actions
        .iter()
        .flat_map(|a| {
            a.group_effects.iter().map(|e| {
                e.outcome()
                    .as_str_name()
                    .trim_start_matches("GROUP_OUTCOME_")
                    .to_owned()
            })
        })
        .collect()
}

#[tokio::test]
async fn a_signed_assignee_webhook_assigns_the_linked_groups() {
    let pair = Pair::start().await;
    pair.create_integration(JIRA, false).await;
    let t = tenant(&pair.assignment).await;

    let id = accepted(
        &pair.tracker,
        &fixture("edit_issue_assignee_payload.json"),
        Some("d-1"),
    )
    .await;
    let delivery = pair.tracker.settled(id).await;
    assert_eq!(delivery.state(), pb::DeliveryState::Delivered);
    assert_eq!(outcomes(&delivery), vec!["ASSIGNED", "ASSIGNED"]);
    assert!(delivery.actions[0].summary.contains("jess@sentry.io"));
    for group in &t.groups {
        assert_eq!(
            pair.assignment.group(*group).await.assignee_user_id,
            Some(t.jess)
        );
    }

    for (round, name) in [
        "edit_issue_no_assignee_payload.json",
        "edit_issue_assignee_missing_payload.json",
    ]
    .into_iter()
    .enumerate()
    {
        // Re-assign, then the fixture deassigns. (Each re-assignment is a new
        // event, so its body differs: an identical body is a replay.)
        let again = assignee_payload(
            "APP-123",
            Some("101"),
            Some("kim@sentry.io"),
            &format!("2023-01-01T00:00:0{round}.000+0000"),
        );
        let reassigned = accepted(
            &pair.tracker,
            &body(&again),
            Some(&format!("reassign-{name}")),
        )
        .await;
        pair.tracker.settled(reassigned).await;
        let id = accepted(&pair.tracker, &fixture(name), None).await;
        let delivery = pair.tracker.settled(id).await;
        assert_eq!(
            outcomes(&delivery),
            vec!["DEASSIGNED", "DEASSIGNED"],
            "{name}"
        );
        for group in &t.groups {
            assert_eq!(
                pair.assignment.group(*group).await.assignee_user_id,
                None,
                "{name}"
            );
        }
    }
    let _ = (t.org, t.project, t.kim);
}

#[tokio::test]
async fn a_hidden_email_changes_nothing_unless_the_email_api_finds_it() {
    let pair = Pair::start().await;
    pair.create_integration(JIRA, false).await;
    let t = tenant(&pair.assignment).await;
    let mut hidden = fixture_json("edit_issue_assignee_payload.json");
    hidden["issue"]["fields"]["assignee"] =
        json!({ "accountId": "deadbeef123", "emailAddress": "" });

    // E-mail API not allowed: nothing changes, and the outcome says why.
    let id = accepted(&pair.tracker, &body(&hidden), Some("hidden-1")).await;
    let delivery = pair.tracker.settled(id).await;
    assert_eq!(delivery.state(), pb::DeliveryState::Delivered);
    assert!(
        delivery.actions[0]
            .summary
            .contains("assignee email hidden"),
        "{:?}",
        delivery.actions
    );
    assert_eq!(
        pair.assignment.group(t.groups[0]).await.assignee_user_id,
        None
    );
    assert!(
        pair.jira
            .requests_to(Method::GET, "/rest/api/3/user/email")
            .is_empty()
    );

    // Allowed: exactly one call, then assigned.
    pair.tracker
        .tracker()
        .update_integration(pb::UpdateIntegrationRequest {
            integration_id: JIRA.into(),
            email_api_allowed: Some(true),
            ..Default::default()
        })
        .await
        .unwrap();
    pair.jira.set_email("deadbeef123", "jess@sentry.io");
    // Jira's next event about the issue (a new changelog, so a new body).
    hidden["changelog"]["id"] = json!("10173");
    let id = accepted(&pair.tracker, &body(&hidden), Some("hidden-2")).await;
    let delivery = pair.tracker.settled(id).await;
    assert_eq!(outcomes(&delivery), vec!["ASSIGNED", "ASSIGNED"]);
    assert_eq!(
        pair.jira
            .requests_to(Method::GET, "/rest/api/3/user/email")
            .len(),
        1
    );
    assert_eq!(
        pair.assignment.group(t.groups[0]).await.assignee_user_id,
        Some(t.jess)
    );

    // The e-mail API failing with 500 (past the client's own retries): the
    // delivery is retried later, not lost.
    let mut for_kim = hidden.clone();
    for_kim["issue"]["fields"]["assignee"]["accountId"] = json!("kim-account");
    pair.jira.set_email("kim-account", "kim@sentry.io");
    pair.jira
        .fail_next(Method::GET, "/rest/api/3/user/email", 6, 500, &[], "boom");
    let id = accepted(&pair.tracker, &body(&for_kim), Some("hidden-3")).await;
    let delivery = pair.tracker.settled(id).await;
    assert_eq!(delivery.state(), pb::DeliveryState::Delivered);
    assert!(delivery.attempts >= 2, "retried: {delivery:?}");
    assert_eq!(
        pair.assignment.group(t.groups[0]).await.assignee_user_id,
        Some(t.kim)
    );
}

#[tokio::test]
async fn status_webhooks_resolve_and_reopen_only_across_the_done_category() {
    let pair = Pair::start().await;
    pair.create_integration(JIRA, false).await;
    let t = tenant(&pair.assignment).await;
    let status_change = |from: &str, from_name: &str, to: &str, to_name: &str, updated: &str| {
        let mut payload = fixture_json("edit_issue_status_payload.json");
        let item = &mut payload["changelog"]["items"][0];
        item["from"] = json!(from);
        item["fromString"] = json!(from_name);
        item["to"] = json!(to);
        item["toString"] = json!(to_name);
        payload["issue"]["fields"]["updated"] = json!(updated);
        body(&payload)
    };

    // In Progress → Done: resolved.
    let id = accepted(
        &pair.tracker,
        &status_change(
            "3",
            "In Progress",
            "10002",
            "Done",
            "2022-12-31T00:00:00.000+0000",
        ),
        None,
    )
    .await;
    assert_eq!(
        outcomes(&pair.tracker.settled(id).await),
        vec!["RESOLVED", "RESOLVED"]
    );
    assert_eq!(
        pair.assignment.group(t.groups[0]).await.status(),
        assignment::GroupStatus::Resolved
    );

    // Sentry's fixture, Done (10101) → In Progress: reopened.
    let id = accepted(
        &pair.tracker,
        &fixture("edit_issue_status_payload.json"),
        None,
    )
    .await;
    let delivery = pair.tracker.settled(id).await;
    assert_eq!(outcomes(&delivery), vec!["UNRESOLVED", "UNRESOLVED"]);
    assert_eq!(
        pair.assignment.group(t.groups[0]).await.status(),
        assignment::GroupStatus::Unresolved
    );

    // To Do → In Review: neither is done, nothing happens.
    let before = pair.assignment.activities(t.groups[0]).await.len();
    let id = accepted(
        &pair.tracker,
        &status_change(
            "10000",
            "To Do",
            "10001",
            "In Review",
            "2023-01-02T00:00:00.000+0000",
        ),
        None,
    )
    .await;
    let delivery = pair.tracker.settled(id).await;
    assert!(outcomes(&delivery).is_empty());
    assert!(
        delivery.actions[0].summary.contains("nothing to do"),
        "{:?}",
        delivery.actions
    );
    assert_eq!(pair.assignment.activities(t.groups[0]).await.len(), before);
}

#[tokio::test]
async fn ignored_webhooks_are_stored_with_their_reason_and_never_delay_their_issue() {
    let pair = Pair::start().await;
    pair.create_integration(JIRA, false).await;
    let t = tenant(&pair.assignment).await;

    // No changelog, and a comment event: 200 "ignored", stored with the reason.
    let mut no_changelog = fixture_json("edit_issue_assignee_payload.json");
    no_changelog.as_object_mut().unwrap().remove("changelog");
    let (status, json) = pair
        .tracker
        .post_webhook(JIRA, &body(&no_changelog), Some("quiet-1"))
        .await;
    assert_eq!(
        (status, json["status"].as_str()),
        (200, Some("ignored")),
        "{json}"
    );
    let quiet = json["delivery_id"]
        .as_i64()
        .expect("an ignored delivery has an id");
    let comment =
        json!({"webhookEvent": "comment_created", "issue": {"id": "101", "key": "APP-123"}});
    let (_, json) = pair
        .tracker
        .post_webhook(JIRA, &body(&comment), Some("comment-1"))
        .await;
    assert_eq!(json["status"], "ignored", "{json}");
    let chatty = json["delivery_id"].as_i64().unwrap();

    // The issue's next real delivery is applied at once: ignored ones are not
    // queued.
    let id = accepted(
        &pair.tracker,
        &fixture("edit_issue_assignee_payload.json"),
        Some("real-1"),
    )
    .await;
    assert_eq!(
        pair.tracker.settled(id).await.state(),
        pb::DeliveryState::Delivered
    );
    assert_eq!(
        pair.assignment.group(t.groups[0]).await.assignee_user_id,
        Some(t.jess)
    );

    // Operators see what Jira sent and why nothing happened.
    let stored = pair.tracker.delivery(quiet).await;
    assert_eq!(stored.state(), pb::DeliveryState::Ignored);
    assert!(stored.ignored_reason.contains("no changelog"), "{stored:?}");
    assert!(stored.last_error.is_empty());
    assert!(stored.complete_time.is_some());
    assert!(stored.body.contains("APP-123"));
    let comment = pair.tracker.delivery(chatty).await;
    assert_eq!(comment.event_type, "comment_created");
    assert!(comment.ignored_reason.contains("not an issue event"));
    let listed = pair
        .tracker
        .tracker()
        .list_webhook_deliveries(pb::ListWebhookDeliveriesRequest {
            state: pb::DeliveryState::Ignored.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .deliveries;
    let ids: Vec<i64> = listed.iter().map(|d| d.id).collect();
    assert_eq!(ids, vec![chatty, quiet]);
    // A redelivery of an ignored one is a duplicate like any other.
    let (_, json) = pair
        .tracker
        .post_webhook(JIRA, &body(&no_changelog), Some("quiet-1"))
        .await;
    assert_eq!(json["status"], "duplicate");
}

#[tokio::test]
async fn refused_webhooks_are_not_stored() {
    let pair = Pair::start().await;
    pair.create_integration(JIRA, false).await;
    let _ = tenant(&pair.assignment).await;
    let client = system_tests::http_client();
    let url = format!("{}/webhooks/jira/{JIRA}", pair.tracker.http_url());
    let signed =
        |body: &[u8]| system_tests::pair::signature(system_tests::pair::WEBHOOK_SECRET, body);

    // Malformed JSON: 400 with the parser's message.
    let bad = b"{\"issue\": ";
    let response = client
        .post(&url)
        .header("x-hub-signature", signed(bad))
        .body(bad.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let message = response.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("not valid JSON") && message.contains("line"),
        "{message}"
    );

    // Wrong and missing signatures: 401.
    let payload = fixture("edit_issue_assignee_payload.json");
    let wrong = client
        .post(&url)
        .header(
            "x-hub-signature",
            system_tests::pair::signature("not-the-secret", &payload),
        )
        .body(payload.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let missing = client
        .post(&url)
        .body(payload.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 401);
    assert!(missing.text().await.unwrap().contains("X-Hub-Signature"));

    // Oversized: 413.
    let huge = vec![b' '; 1024 * 1024 + 1];
    let response = client
        .post(&url)
        .header("x-hub-signature", signed(&huge))
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);

    // Unknown integration: 404.
    let response = client
        .post(format!("{}/webhooks/jira/nobody", pair.tracker.http_url()))
        .header("x-hub-signature", signed(&payload))
        .body(payload)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);

    assert!(
        pair.tracker.deliveries().await.is_empty(),
        "nothing was stored"
    );
    let metrics = system_tests::scrape_metrics(&pair.tracker.http_url()).await;
    for outcome in [
        "malformed",
        "unauthentic",
        "too_large",
        "unknown_integration",
    ] {
        assert!(
            metrics.contains(&format!(
                "tracker_webhook_deliveries_total{{outcome=\"{outcome}\"}} "
            )),
            "{outcome} counted in:\n{metrics}"
        );
    }
}

#[tokio::test]
async fn the_same_delivery_five_times_has_one_effect() {
    let pair = Pair::start().await;
    pair.create_integration(JIRA, false).await;
    let t = tenant(&pair.assignment).await;
    let payload = fixture("edit_issue_assignee_payload.json");
    let (status, first) = pair
        .tracker
        .post_webhook(JIRA, &payload, Some("same-delivery"))
        .await;
    assert_eq!(status, 200);
    for _ in 0..4 {
        let (status, json) = pair
            .tracker
            .post_webhook(JIRA, &payload, Some("same-delivery"))
            .await;
        assert_eq!((status, json["status"].as_str()), (200, Some("duplicate")));
    }
    // The same body without Jira's identifier is the same delivery too.
    let (_, replayed) = pair.tracker.post_webhook(JIRA, &payload, None).await;
    assert_eq!(replayed["status"], "duplicate");
    // Another event without an identifier is stored once, by its derived key.
    let mut other = fixture_json("edit_issue_assignee_payload.json");
    other["changelog"]["id"] = json!("10173");
    let other = body(&other);
    let (_, derived) = pair.tracker.post_webhook(JIRA, &other, None).await;
    assert_eq!(derived["status"], "accepted");
    let (_, again) = pair.tracker.post_webhook(JIRA, &other, None).await;
    assert_eq!(again["status"], "duplicate");

    pair.tracker
        .settled(first["delivery_id"].as_i64().unwrap())
        .await;
    pair.tracker
        .settled(derived["delivery_id"].as_i64().unwrap())
        .await;
    assert_eq!(pair.tracker.deliveries().await.len(), 2);
    let assigned: Vec<_> = pair
        .assignment
        .activities(t.groups[0])
        .await
        .into_iter()
        .filter(|a| a.kind() == assignment::ActivityKind::Assigned)
        .collect();
    assert_eq!(assigned.len(), 1);
    let notifications = pair.assignment.all_notifications().await;
    assert_eq!(notifications.len(), 2, "one per group: {notifications:?}");
}

#[tokio::test]
async fn deliveries_sent_newest_first_end_in_the_newest_state() {
    let pair = Pair::start().await;
    pair.create_integration(JIRA, false).await;
    let t = tenant(&pair.assignment).await;
    let newer = assignee_payload(
        "APP-123",
        Some("101"),
        Some("kim@sentry.io"),
        "2023-01-01T12:00:00.000+0000",
    );
    let older = assignee_payload(
        "APP-123",
        Some("101"),
        Some("jess@sentry.io"),
        "2023-01-01T11:00:00.000+0000",
    );
    let first = accepted(&pair.tracker, &body(&newer), Some("newer")).await;
    let second = accepted(&pair.tracker, &body(&older), Some("older")).await;
    pair.tracker.settled(first).await;
    let late = pair.tracker.settled(second).await;
    assert_eq!(outcomes(&late), vec!["STALE", "STALE"]);
    for group in &t.groups {
        assert_eq!(
            pair.assignment.group(*group).await.assignee_user_id,
            Some(t.kim)
        );
    }
}

#[tokio::test]
async fn a_moved_issue_keeps_reaching_its_groups_under_the_new_key() {
    let pair = Pair::start().await;
    pair.create_integration(JIRA, false).await;
    let t = tenant(&pair.assignment).await;
    let id = accepted(&pair.tracker, &fixture("moved_issue_payload.json"), None).await;
    let delivery = pair.tracker.settled(id).await;
    assert_eq!(delivery.state(), pb::DeliveryState::Delivered);
    assert!(
        delivery.actions[0].summary.contains("PLATFORM-45"),
        "{:?}",
        delivery.actions
    );

    // A later webhook that only knows the new key (no Jira id) still arrives.
    let later = assignee_payload(
        "PLATFORM-45",
        None,
        Some("jess@sentry.io"),
        "2023-01-02T00:00:00.000+0000",
    );
    let id = accepted(&pair.tracker, &body(&later), None).await;
    assert_eq!(
        outcomes(&pair.tracker.settled(id).await),
        vec!["ASSIGNED", "ASSIGNED"]
    );
    for group in &t.groups {
        let g = pair.assignment.group(*group).await;
        assert_eq!(g.assignee_user_id, Some(t.jess));
        assert_eq!(g.linked_issues[0].key, "PLATFORM-45");
    }
}

/// Per issue, deliveries alternate Jess and Kim with increasing `updated`
/// times: applied in order, every one is a change; out of order, some would be
/// STALE. So ten assignments per group, alternating, prove both exactly-once and
/// per-issue order.
async fn assert_applied_in_order(
    assignment: &AssignmentApp,
    groups: &[i64],
    per_issue: usize,
    users: [i64; 2],
) {
    for group in groups {
        let assigned: Vec<Option<i64>> = assignment
            .activities(*group)
            .await
            .into_iter()
            .filter(|a| a.kind() == assignment::ActivityKind::Assigned)
            .map(|a| a.user_id)
            .collect();
        let expected: Vec<Option<i64>> = (0..per_issue).map(|i| Some(users[i % 2])).collect();
        assert_eq!(assigned, expected, "group {group}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_accepted_while_the_assignment_service_is_down_and_applied_when_it_returns() {
    let pair = Pair::start().await;
    pair.create_integration(JIRA, false).await;
    let t = tenant(&pair.assignment).await;
    // 20 issues, each linked to a group of its own.
    let mut groups = Vec::new();
    for i in 0..20 {
        let group = pair
            .assignment
            .create_group(t.project, &format!("issue {i}"))
            .await;
        pair.assignment
            .link(
                t.org,
                JIRA,
                &format!("BURST-{}", i + 1),
                &format!("{}", 5000 + i),
                &[group],
            )
            .await;
        groups.push(group);
    }
    let Pair {
        assignment,
        tracker,
        assignment_db,
        assignment_proxy,
        ..
    } = pair;
    assignment.stop().await;

    // 200 signed webhooks, 10 per issue, all acknowledged while it is down.
    for round in 0..10 {
        for (i, _) in groups.iter().enumerate() {
            let email = if round % 2 == 0 {
                "jess@sentry.io"
            } else {
                "kim@sentry.io"
            };
            let payload = assignee_payload(
                &format!("BURST-{}", i + 1),
                Some(&format!("{}", 5000 + i)),
                Some(email),
                &format!("2023-01-01T00:{round:02}:00.000+0000"),
            );
            accepted(
                &tracker,
                &body(&payload),
                Some(&format!("burst-{i}-{round}")),
            )
            .await;
        }
    }

    let assignment = AssignmentApp::spawn(assignment_db.url()).await;
    assignment_proxy.retarget(assignment.grpc_addr);
    wait::until(
        "all 200 deliveries to be applied",
        wait::DEFAULT_DEADLINE * 2,
        || async {
            let deliveries = tracker.deliveries().await;
            deliveries
                .iter()
                .all(|d| d.state() == pb::DeliveryState::Delivered)
                .then_some(())
        },
    )
    .await;
    assert_eq!(tracker.deliveries().await.len(), 200);
    assert_applied_in_order(&assignment, &groups, 10, [t.jess, t.kim]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undelivered_entries_survive_a_tracker_restart() {
    let pair = Pair::start().await;
    pair.create_integration(JIRA, false).await;
    let t = tenant(&pair.assignment).await;
    let Pair {
        assignment,
        tracker,
        assignment_db,
        tracker_db,
        assignment_proxy,
        ..
    } = pair;
    assignment.stop().await;
    let id = accepted(
        &tracker,
        &fixture("edit_issue_assignee_payload.json"),
        Some("survivor"),
    )
    .await;
    tracker.stop().await;

    let assignment = AssignmentApp::spawn(assignment_db.url()).await;
    assignment_proxy.retarget(assignment.grpc_addr);
    let tracker = TrackerApp::spawn(tracker_db.url(), assignment_proxy.addr).await;
    let delivery = tracker.settled(id).await;
    assert_eq!(delivery.state(), pb::DeliveryState::Delivered);
    for group in &t.groups {
        assert_eq!(
            assignment.group(*group).await.assignee_user_id,
            Some(t.jess)
        );
    }
}

#[tokio::test]
async fn operators_can_list_inspect_and_retry_deliveries() {
    let pair = Pair::start().await;
    pair.create_integration(JIRA, false).await;
    let t = tenant(&pair.assignment).await;
    // An address the assignment service refuses: the delivery fails for good.
    let invalid = assignee_payload(
        "APP-123",
        Some("101"),
        Some("not an email"),
        "2023-01-01T00:00:00.000+0000",
    );
    let id = accepted(&pair.tracker, &body(&invalid), Some("bad-address")).await;
    let failed = pair.tracker.settled(id).await;
    assert_eq!(failed.state(), pb::DeliveryState::Failed);
    assert!(
        failed.last_error.contains("InvalidArgument") || failed.last_error.contains("email"),
        "{}",
        failed.last_error
    );
    assert!(!failed.body.is_empty());
    assert!(
        failed
            .headers
            .contains_key("x-atlassian-webhook-identifier")
    );
    assert!(
        !failed.headers.contains_key("x-hub-signature"),
        "authentication headers are not kept"
    );

    let mut client = pair.tracker.tracker();
    let listed = client
        .list_webhook_deliveries(pb::ListWebhookDeliveriesRequest {
            state: pb::DeliveryState::Failed.into(),
            issue_key: "APP-123".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.deliveries.len(), 1);
    assert!(
        listed.deliveries[0].body.is_empty(),
        "lists leave bodies out"
    );

    // Filters by Jira's identifier (the delivery key) and by Jira issue id.
    for (filter, expected) in [
        (
            pb::ListWebhookDeliveriesRequest {
                delivery_key: "atlassian:bad-address".into(),
                ..Default::default()
            },
            vec![id],
        ),
        (
            pb::ListWebhookDeliveriesRequest {
                delivery_key: "atlassian:nothing-like-it".into(),
                ..Default::default()
            },
            vec![],
        ),
        (
            pb::ListWebhookDeliveriesRequest {
                jira_issue_id: "101".into(),
                ..Default::default()
            },
            vec![id],
        ),
        (
            pb::ListWebhookDeliveriesRequest {
                jira_issue_id: "999".into(),
                ..Default::default()
            },
            vec![],
        ),
    ] {
        let ids: Vec<i64> = client
            .list_webhook_deliveries(filter.clone())
            .await
            .unwrap()
            .into_inner()
            .deliveries
            .iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(ids, expected, "{filter:?}");
    }
    let bad_filter = client
        .list_webhook_deliveries(pb::ListWebhookDeliveriesRequest {
            jira_issue_id: "APP-1".into(),
            ..Default::default()
        })
        .await;
    system_tests::fixtures::assert_error(
        bad_filter,
        tonic::Code::InvalidArgument,
        Some("jira_issue_id"),
    );

    let retry = |request_id: &str, delivery_id: i64| pb::RetryWebhookDeliveryRequest {
        delivery_id,
        request_id: request_id.into(),
    };
    let retried = client
        .retry_webhook_delivery(retry("retry-1", id))
        .await
        .unwrap()
        .into_inner()
        .delivery
        .unwrap();
    assert_eq!(retried.state(), pb::DeliveryState::Pending);
    let again = pair.tracker.settled(id).await;
    assert_eq!(again.state(), pb::DeliveryState::Failed);
    assert!(again.attempts >= 2);
    // The same request id again returns the first answer and queues nothing.
    let repeat = client
        .retry_webhook_delivery(retry("retry-1", id))
        .await
        .unwrap()
        .into_inner()
        .delivery
        .unwrap();
    assert_eq!(repeat, retried);
    let still = pair.tracker.delivery(id).await;
    assert_eq!(still.state(), pb::DeliveryState::Failed);
    assert_eq!(still.attempts, again.attempts);
    let reused = client
        .retry_webhook_delivery(retry("retry-1", id + 1))
        .await;
    system_tests::fixtures::assert_error(reused, tonic::Code::InvalidArgument, Some("request_id"));
    let good = accepted(
        &pair.tracker,
        &fixture("edit_issue_assignee_payload.json"),
        None,
    )
    .await;
    assert_eq!(
        pair.tracker.settled(good).await.state(),
        pb::DeliveryState::Delivered
    );
    let not_failed = client
        .retry_webhook_delivery(pb::RetryWebhookDeliveryRequest {
            delivery_id: good,
            request_id: String::new(),
        })
        .await;
    system_tests::fixtures::assert_error(not_failed, tonic::Code::FailedPrecondition, None);
    assert_eq!(
        pair.assignment.group(t.groups[0]).await.assignee_user_id,
        Some(t.jess)
    );
}

/// Posts `payload` as delivery `id`, returning the status, `Retry-After` and
/// body.
async fn post_raw(tracker: &TrackerApp, payload: &[u8], id: &str) -> (u16, Option<String>, Value) {
    let response = system_tests::http_client()
        .post(format!("{}/webhooks/jira/{JIRA}", tracker.http_url()))
        .header("content-type", "application/json")
        .header(
            "x-hub-signature",
            system_tests::pair::signature(system_tests::pair::WEBHOOK_SECRET, payload),
        )
        .header("x-atlassian-webhook-identifier", id)
        .body(payload.to_vec())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (
        status,
        retry_after,
        response.json().await.unwrap_or(Value::Null),
    )
}

/// The pending count the push-back bound and the inbox gauge read (kept as
/// deltas), and the pending rows counted one by one.
async fn pending_counts(pair: &Pair) -> (u64, u64) {
    use service_runtime::database::{Database, PoolSettings};
    use tracker_service::webhooks::inbox;
    let db = Database::connect(&pair.tracker_db.url(), &PoolSettings::default())
        .await
        .unwrap();
    let counted = inbox::pending_count(&db).await.unwrap();
    let rows = inbox::pending_rows(&db).await.unwrap();
    db.close().await.unwrap();
    (counted, rows)
}

/// The signed sum of the tracker's pending-count deltas.
async fn delta_sum(pair: &Pair) -> i64 {
    use sea_orm::ConnectionTrait as _;
    let conn = sea_orm::Database::connect(service_runtime::database::connect_options(
        pair.tracker_db.url().as_str(),
    ))
    .await
    .unwrap();
    let row = conn
        .query_one_raw(sea_orm::Statement::from_string(
            conn.get_database_backend(),
            "SELECT CAST(COALESCE(SUM(delta), 0) AS BIGINT) AS n FROM inbox_pending_deltas",
        ))
        .await
        .unwrap()
        .unwrap();
    let n: i64 = row.try_get("", "n").unwrap();
    conn.close().await.unwrap();
    n
}

/// Waits until `id` was attempted (and is waiting for its retry).
async fn attempted(pair: &Pair, id: i64) {
    wait::until(
        "the delivery to be attempted",
        wait::DEFAULT_DEADLINE,
        || async { (pair.tracker.delivery(id).await.attempts >= 1).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pending_count_follows_every_change_of_the_inbox() {
    let pair = Pair::start().await;
    pair.create_integration(JIRA, false).await;
    tenant(&pair.assignment).await;
    assert_eq!(pending_counts(&pair).await, (0, 0));

    // Stored and retried while the assignment service is unreachable; a
    // duplicate and an ignored webhook add nothing.
    pair.assignment_proxy.cut();
    let payload = assignee_payload(
        "APP-123",
        Some("101"),
        Some("kim@sentry.io"),
        "2023-01-01T00:00:00.000+0000",
    );
    let first = accepted(&pair.tracker, &body(&payload), Some("count-1")).await;
    let (status, json) = pair
        .tracker
        .post_webhook(JIRA, &body(&payload), Some("count-1"))
        .await;
    assert_eq!((status, json["status"].as_str()), (200, Some("duplicate")));
    let other = assignee_payload(
        "APP-9",
        Some("109"),
        Some("kim@sentry.io"),
        "2023-01-01T00:00:00.000+0000",
    );
    let second = accepted(&pair.tracker, &body(&other), Some("count-2")).await;
    let comment =
        json!({"webhookEvent": "comment_created", "issue": {"id": "109", "key": "APP-9"}});
    let (status, json) = pair
        .tracker
        .post_webhook(JIRA, &body(&comment), Some("count-3"))
        .await;
    assert_eq!((status, json["status"].as_str()), (200, Some("ignored")));
    attempted(&pair, first).await;
    attempted(&pair, second).await;
    assert_eq!(pending_counts(&pair).await, (2, 2));

    // Delivered.
    pair.assignment_proxy.restore();
    pair.tracker.settled(first).await;
    pair.tracker.settled(second).await;
    assert_eq!(pending_counts(&pair).await, (0, 0));

    // Failed for good, queued again by an operator, failed again.
    let invalid = assignee_payload(
        "APP-123",
        Some("101"),
        Some("not an email"),
        "2023-01-02T00:00:00.000+0000",
    );
    let failing = accepted(&pair.tracker, &body(&invalid), Some("count-4")).await;
    assert_eq!(
        pair.tracker.settled(failing).await.state(),
        pb::DeliveryState::Failed
    );
    assert_eq!(pending_counts(&pair).await, (0, 0));
    pair.tracker
        .tracker()
        .retry_webhook_delivery(pb::RetryWebhookDeliveryRequest {
            delivery_id: failing,
            request_id: "count-retry".into(),
        })
        .await
        .unwrap();
    // The retried delivery fails again in the tracker, whether or not the
    // assignment service is reachable, so when the count is read while it
    // waits is a race; read it once it has failed again.
    wait::until(
        "the retried delivery to fail again",
        wait::DEFAULT_DEADLINE,
        || async { (pair.tracker.delivery(failing).await.attempts >= 2).then_some(()) },
    )
    .await;
    assert_eq!(
        pair.tracker.settled(failing).await.state(),
        pb::DeliveryState::Failed
    );
    assert_eq!(pending_counts(&pair).await, (0, 0));
    // The kept count is read clamped at zero: were the retry's +1 left out,
    // its deltas would sum to -1 here.
    assert_eq!(delta_sum(&pair).await, 0);
}

/// The `n`th of a run of assignee webhooks for APP-123: Jess and Kim take
/// turns, and each is a second newer than the one before.
fn alternating_assignee(n: u32) -> Vec<u8> {
    body(&assignee_payload(
        "APP-123",
        Some("101"),
        Some(if n.is_multiple_of(2) {
            "jess@sentry.io"
        } else {
            "kim@sentry.io"
        }),
        &format!(
            "2023-01-01T{:02}:{:02}:{:02}.000+0000",
            n / 3600,
            n / 60 % 60,
            n % 60
        ),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_inbox_pushes_back_with_retry_after_until_the_backlog_drains() {
    let pair = Pair::start().await;
    pair.create_integration(JIRA, false).await;
    let t = tenant(&pair.assignment).await;
    let Pair {
        assignment,
        tracker,
        assignment_db,
        tracker_db,
        assignment_proxy,
        ..
    } = pair;
    tracker.stop().await;
    assignment.stop().await;
    let bounded = || {
        let mut config = tracker_service::Config::for_tests(
            tracker_db.url(),
            format!("http://{}", assignment_proxy.addr),
        );
        config.inbox_max_pending = 3;
        config
    };
    let tracker = TrackerApp::spawn_with(bounded()).await;
    // Nothing drains while the assignment service is down: three fill the
    // inbox, the fourth is pushed back and nothing of it is stored.
    for minute in 0..3 {
        accepted(
            &tracker,
            &alternating_assignee(minute),
            Some(&format!("full-{minute}")),
        )
        .await;
    }
    let (status, retry_after, json) = post_raw(&tracker, &alternating_assignee(3), "full-3").await;
    assert_eq!(status, 503, "{json}");
    let seconds: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&seconds), "{seconds}");
    assert!(
        json["error"]
            .as_str()
            .unwrap()
            .contains("inbox holds 3 deliveries"),
        "{json}"
    );
    assert_eq!(tracker.deliveries().await.len(), 3);
    let metrics = system_tests::scrape_metrics(&tracker.http_url()).await;
    assert!(
        metrics.contains("tracker_webhook_deliveries_total{outcome=\"backlog_full\"} 1"),
        "{metrics}"
    );

    // A restarted tracker counts what is already queued.
    tracker.stop().await;
    let tracker = TrackerApp::spawn_with(bounded()).await;
    assert_eq!(
        post_raw(&tracker, &alternating_assignee(3), "full-3")
            .await
            .0,
        503
    );

    // The assignment service returns: the backlog drains, in order, and the
    // pushed-back delivery is accepted when Jira sends it again.
    let assignment = AssignmentApp::spawn(assignment_db.url()).await;
    assignment_proxy.retarget(assignment.grpc_addr);
    wait::until(
        "the pushed-back delivery to be accepted once the inbox drained",
        wait::DEFAULT_DEADLINE,
        || async {
            let (status, _, json) = post_raw(&tracker, &alternating_assignee(3), "full-3").await;
            (status == 200).then_some(json)
        },
    )
    .await;
    wait::until("all four to be applied", wait::DEFAULT_DEADLINE, || async {
        let deliveries = tracker.deliveries().await;
        (deliveries.len() == 4
            && deliveries
                .iter()
                .all(|d| d.state() == pb::DeliveryState::Delivered))
        .then_some(())
    })
    .await;
    for group in &t.groups {
        assert_eq!(
            assignment.group(*group).await.assignee_user_id,
            Some(t.kim),
            "the last delivery (number 3) wins"
        );
    }
    tracker.stop().await;
    assignment.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbox_bounded_in_time_pushes_back_once_it_holds_more_work_than_that() {
    let pair = Pair::start().await;
    pair.create_integration(JIRA, false).await;
    tenant(&pair.assignment).await;
    let Pair {
        assignment,
        tracker,
        tracker_db,
        assignment_proxy,
        ..
    } = pair;
    tracker.stop().await;
    // One delivery applied at a time, and at most 100 ms of that work
    // queued: far below the count bound (100,000).
    let mut config = tracker_service::Config::for_tests(
        tracker_db.url(),
        format!("http://{}", assignment_proxy.addr),
    );
    config.inbox_max_wait = std::time::Duration::from_millis(100);
    config.dispatch_concurrency = 1;
    assert_eq!(config.inbox_max_pending, 100_000);
    let tracker = TrackerApp::spawn_with(config).await;
    // Eight senders at a time outrun one delivery at a time; once a pace is
    // measured, the bound is that pace's 100 ms of work.
    let sent = std::sync::atomic::AtomicU32::new(0);
    let accepted = std::sync::atomic::AtomicU32::new(0);
    let (retry_after, json) = wait::until(
        "a webhook to be pushed back",
        wait::DEFAULT_DEADLINE,
        || async {
            let answers = futures_util::future::join_all((0..8).map(|_| {
                let n = sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let payload = alternating_assignee(n);
                let tracker = &tracker;
                async move { post_raw(tracker, &payload, &format!("wait-{n}")).await }
            }))
            .await;
            let mut refused = None;
            for (status, retry_after, json) in answers {
                match status {
                    200 => {
                        accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    503 => refused = Some((retry_after, json)),
                    other => panic!("{other}: {json}"),
                }
            }
            refused
        },
    )
    .await;
    let seconds: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&seconds), "{seconds}");
    let message = json["error"].as_str().unwrap();
    let bound: u64 = message
        .split("its bound of ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{json}"));
    assert!(bound < 100_000, "{message}");
    let metrics = system_tests::scrape_metrics(&tracker.http_url()).await;
    assert!(
        metrics.contains("tracker_webhook_deliveries_total{outcome=\"backlog_full\"}"),
        "{metrics}"
    );
    // Nothing of a pushed-back webhook is stored, and every accepted one is
    // applied.
    let accepted = accepted.load(std::sync::atomic::Ordering::Relaxed) as usize;
    wait::until(
        "every accepted delivery to be applied",
        wait::DEFAULT_DEADLINE,
        || async {
            let deliveries = tracker.deliveries().await;
            assert!(
                deliveries.len() <= accepted,
                "{} stored, {accepted} accepted",
                deliveries.len()
            );
            (deliveries.len() == accepted
                && deliveries
                    .iter()
                    .all(|d| d.state() == pb::DeliveryState::Delivered))
            .then_some(())
        },
    )
    .await;
    tracker.stop().await;
    assignment.stop().await;
}

/// How many claims the tracker's dispatcher made that found `found`
/// (`items` or `none`), from `/metrics`.
async fn dispatcher_claims(tracker: &TrackerApp, found: &str) -> u64 {
    let page = system_tests::scrape_metrics(&tracker.http_url()).await;
    system_tests::metric_value(
        &page,
        &format!("tracker_queue_claims_total{{queue=\"dispatcher\",found=\"{found}\"}}"),
    )
    .unwrap_or(0)
}

/// The dispatcher claims when a delivery is due, not after each one: with its
/// poll an hour away, deliveries sent one after another are each claimed
/// once, without a claim that finds nothing per completion or per outcome
/// (at light load those were half its claims, each a write transaction); and
/// an issue's queued deliveries still follow one another at once, the
/// outcome's commit ringing for the next.
#[tokio::test]
async fn the_dispatcher_claims_only_when_a_delivery_is_due() {
    let pair =
        Pair::start_with(|c| c.dispatch_poll_interval = std::time::Duration::from_secs(3600)).await;
    pair.create_integration(JIRA, false).await;
    let t = tenant(&pair.assignment).await;
    // The dispatcher's first claim, at start, may find nothing.
    let at_start = wait::until(
        "the dispatcher's first claim",
        wait::DEFAULT_DEADLINE,
        || async {
            let none = dispatcher_claims(&pair.tracker, "none").await;
            (none > 0).then_some(none)
        },
    )
    .await;
    for n in 0..10 {
        let id = accepted(
            &pair.tracker,
            &alternating_assignee(n),
            Some(&format!("one-{n}")),
        )
        .await;
        let settled = pair.tracker.settled(id).await;
        assert_eq!(settled.state(), pb::DeliveryState::Delivered);
    }
    assert_eq!(dispatcher_claims(&pair.tracker, "none").await, at_start);
    assert_eq!(dispatcher_claims(&pair.tracker, "items").await, 10);

    let mut queued = Vec::new();
    for n in 10..15 {
        queued.push(
            accepted(
                &pair.tracker,
                &alternating_assignee(n),
                Some(&format!("queued-{n}")),
            )
            .await,
        );
    }
    for id in queued {
        let settled = pair.tracker.settled(id).await;
        assert_eq!(settled.state(), pb::DeliveryState::Delivered);
    }
    // The last one (14) assigned Jess.
    for group in &t.groups {
        assert_eq!(
            pair.assignment.group(*group).await.assignee_user_id,
            Some(t.jess)
        );
    }
}

/// The tracker keeps the integration a webhook names in memory
/// (`--integration-cache-ttl`); a secret rotated through its API is the one
/// checked from the next webhook on, not after the cached copy expires.
#[tokio::test]
async fn a_rotated_webhook_secret_is_checked_from_the_next_webhook_on() {
    const ROTATED: &str = "rotated-webhook-secret-99";
    let pair = Pair::start().await;
    pair.create_integration(JIRA, false).await;
    let old = system_tests::pair::WEBHOOK_SECRET;
    let body = fixture("edit_issue_assignee_payload.json");
    let post = |secret: &'static str, delivery: &'static str| {
        let (tracker, body) = (&pair.tracker, &body);
        async move {
            tracker
                .post_webhook_signed_with(secret, JIRA, body, Some(delivery))
                .await
        }
    };
    let (status, json) = post(old, "before").await;
    assert_eq!(status, 200, "{json}");

    pair.tracker
        .tracker()
        .update_integration(pb::UpdateIntegrationRequest {
            integration_id: JIRA.into(),
            webhook_secret: Some(ROTATED.into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let (status, json) = post(old, "after-old").await;
    assert_eq!(status, 401, "the replaced secret still accepted: {json}");
    let (status, json) = post(ROTATED, "after-new").await;
    assert_eq!(status, 200, "the new secret refused: {json}");
}
