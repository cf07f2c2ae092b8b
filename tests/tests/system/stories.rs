//! End-to-end stories (issue 7): what a user of the whole system would tell.
//! They run on SQLite in the test command and on PostgreSQL in the PostgreSQL
//! suite (`TEST_DATABASE_URL`).

use std::sync::{Arc, Mutex};

use jira_sim::fixture_json;
use proto::assignment::v1 as assignment;
use proto::tracker::v1 as tracker;
use serde_json::json;
use system_tests::fixtures::inbound_on;
use system_tests::{AssignmentApp, Pair, TrackerApp, wait};
use tokio_stream::StreamExt as _;

const JIRA: &str = "acme-jira";

fn assignee_webhook(key: &str, jira_id: &str, email: &str, updated: &str) -> Vec<u8> {
    let mut payload = fixture_json("edit_issue_assignee_payload.json");
    payload["issue"]["key"] = json!(key);
    payload["issue"]["id"] = json!(jira_id);
    payload["issue"]["fields"]["assignee"]["emailAddress"] = json!(email);
    payload["issue"]["fields"]["updated"] = json!(updated);
    serde_json::to_vec(&payload).unwrap()
}

fn status_webhook(
    key: &str,
    jira_id: &str,
    from: (&str, &str),
    to: (&str, &str),
    updated: &str,
) -> Vec<u8> {
    let mut payload = fixture_json("edit_issue_status_payload.json");
    payload["issue"]["key"] = json!(key);
    payload["issue"]["id"] = json!(jira_id);
    payload["issue"]["fields"]["updated"] = json!(updated);
    let item = &mut payload["changelog"]["items"][0];
    item["from"] = json!(from.0);
    item["fromString"] = json!(from.1);
    item["to"] = json!(to.0);
    item["toString"] = json!(to.1);
    serde_json::to_vec(&payload).unwrap()
}

/// A stream read in the background: notifications in arrival order.
struct Reader {
    seen: Arc<Mutex<Vec<assignment::Notification>>>,
    task: tokio::task::JoinHandle<Result<(), tonic::Status>>,
}

impl Reader {
    async fn start(app: &AssignmentApp, after: Option<u64>) -> Self {
        let mut stream = app
            .notifications()
            .subscribe(assignment::SubscribeRequest {
                start: after.map(assignment::subscribe_request::Start::AfterSequence),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            while let Some(message) = stream.next().await {
                if let Some(assignment::subscribe_response::Event::Notification(n)) = message?.event
                {
                    sink.lock().unwrap().push(n);
                }
            }
            Ok(())
        });
        Self { seen, task }
    }

    fn snapshot(&self) -> Vec<assignment::Notification> {
        self.seen.lock().unwrap().clone()
    }

    async fn wait_for(&self, count: usize) -> Vec<assignment::Notification> {
        wait::until(
            "notifications to reach the subscriber",
            wait::DEFAULT_DEADLINE * 2,
            || async {
                assert!(!self.task.is_finished(), "the stream ended early");
                let seen = self.snapshot();
                (seen.len() >= count).then_some(seen)
            },
        )
        .await
    }
}

async fn all_delivered(tracker: &TrackerApp, expected: usize) {
    wait::until(
        "every delivery to be applied",
        wait::DEFAULT_DEADLINE * 4,
        || async {
            let deliveries = tracker.deliveries().await;
            (deliveries.len() == expected
                && deliveries
                    .iter()
                    .all(|d| d.state() == tracker::DeliveryState::Delivered))
            .then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn story_create_assign_reassign_resolve() {
    let pair = Pair::start().await;
    pair.create_integration(JIRA, false).await;
    let org = pair.assignment.create_org("acme").await;
    let project = pair.assignment.create_project(org, "web").await;
    let g1 = pair
        .assignment
        .create_group(project, "TypeError in checkout")
        .await;
    let g2 = pair
        .assignment
        .create_group(project, "TypeError in cart")
        .await;
    pair.assignment.install(org, JIRA, inbound_on()).await;
    let jess = pair
        .assignment
        .create_user("Jess", &[("jess@sentry.io", true)])
        .await;
    let kim = pair
        .assignment
        .create_user("Kim", &[("kim@sentry.io", true)])
        .await;
    pair.assignment.grant(project, jess).await;
    pair.assignment.grant(project, kim).await;
    let reader = Reader::start(&pair.assignment, None).await;

    // 1. A backend creates a Jira issue for both groups; both are linked.
    let created = pair
        .tracker
        .tracker()
        .create_issue(tracker::CreateIssueRequest {
            integration_id: JIRA.into(),
            organization_id: org,
            group_ids: vec![g1, g2],
            project_id: "10000".into(),
            issue_type_id: "1".into(),
            title: "TypeError in checkout".into(),
            description: "Seen 1,204 times".into(),
            fields: None,
            request_id: "story-create".into(),
            acting_user_id: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.link_state(), tracker::LinkState::Linked);
    let issue = created.issue.unwrap();
    for group in [g1, g2] {
        assert_eq!(
            pair.assignment.group(group).await.linked_issues[0].key,
            issue.key
        );
    }

    // ... Jira assigns Jess: both groups follow, one "assigned" each, new messages.
    pair.tracker
        .post_webhook(
            JIRA,
            &assignee_webhook(
                &issue.key,
                &issue.id,
                "jess@sentry.io",
                "2023-01-01T10:00:00.000+0000",
            ),
            Some("story-1"),
        )
        .await;
    let first = reader.wait_for(2).await;
    for n in &first {
        assert_eq!(
            (n.kind(), n.recipient_user_id, n.update),
            (assignment::NotificationKind::Assigned, jess, false)
        );
        assert_eq!(n.external_issue_key, issue.key);
    }
    assert_eq!(
        first.iter().map(|n| n.group_id).collect::<Vec<_>>(),
        vec![g1, g2]
    );
    for group in [g1, g2] {
        assert_eq!(
            pair.assignment.group(group).await.assignee_user_id,
            Some(jess)
        );
    }

    // 2. Jira reassigns to Kim: Jess's threads are edited ("unassigned"), Kim's
    // start with new messages.
    pair.tracker
        .post_webhook(
            JIRA,
            &assignee_webhook(
                &issue.key,
                &issue.id,
                "kim@sentry.io",
                "2023-01-01T11:00:00.000+0000",
            ),
            Some("story-2"),
        )
        .await;
    let after_reassign = reader.wait_for(6).await;
    let second = &after_reassign[2..];
    for group in [g1, g2] {
        let jess_first = first.iter().find(|n| n.group_id == group).unwrap();
        let unassigned = second
            .iter()
            .find(|n| n.group_id == group && n.recipient_user_id == jess)
            .unwrap();
        assert_eq!(
            (unassigned.kind(), unassigned.update),
            (assignment::NotificationKind::Unassigned, true)
        );
        assert_eq!(unassigned.message_key, jess_first.message_key);
        let assigned = second
            .iter()
            .find(|n| n.group_id == group && n.recipient_user_id == kim)
            .unwrap();
        assert_eq!(
            (assigned.kind(), assigned.update),
            (assignment::NotificationKind::Assigned, false)
        );
    }

    // 3. The issue moves into done: both groups resolved; Kim's threads are
    // edited, and so are Jess's: she was assigned once, so she follows them.
    pair.tracker
        .post_webhook(
            JIRA,
            &status_webhook(
                &issue.key,
                &issue.id,
                ("3", "In Progress"),
                ("10002", "Done"),
                "2023-01-01T12:00:00.000+0000",
            ),
            Some("story-3"),
        )
        .await;
    let all = reader.wait_for(10).await;
    let resolved = &all[6..];
    for (user, follower) in [(kim, false), (jess, true)] {
        let threads: Vec<&assignment::Notification> = all[..6]
            .iter()
            .filter(|n| n.recipient_user_id == user)
            .collect();
        let told: Vec<&assignment::Notification> = resolved
            .iter()
            .filter(|n| n.recipient_user_id == user)
            .collect();
        assert_eq!(told.len(), 2, "{user}: {told:?}");
        for n in told {
            assert_eq!(
                (n.kind(), n.update),
                (assignment::NotificationKind::Resolved, true)
            );
            let thread = threads.iter().find(|t| t.group_id == n.group_id).unwrap();
            assert_eq!(n.message_key, thread.message_key);
            assert!(n.message.contains(&issue.key) && n.message.contains("resolved"));
            assert_eq!(
                n.message.contains("which you follow"),
                follower,
                "{}",
                n.message
            );
        }
    }
    for group in [g1, g2] {
        assert_eq!(
            pair.assignment.group(group).await.status(),
            assignment::GroupStatus::Resolved
        );
    }
    assert!(all.windows(2).all(|w| w[0].sequence < w[1].sequence));
}

/// 50 issues, one group each, 20 deliveries per issue alternating two users.
struct Burst {
    keys: Vec<(String, String)>,
    groups: Vec<i64>,
}

async fn burst_tenant(pair: &Pair) -> Burst {
    pair.create_integration(JIRA, false).await;
    let app = &pair.assignment;
    let org = app.create_org("acme").await;
    let project = app.create_project(org, "web").await;
    app.install(org, JIRA, inbound_on()).await;
    for email in ["jess@sentry.io", "kim@sentry.io"] {
        let user = app.create_user(email, &[(email, true)]).await;
        app.grant(project, user).await;
    }
    let mut keys = Vec::new();
    let mut groups = Vec::new();
    for i in 0..50 {
        let group = app.create_group(project, &format!("group {i}")).await;
        let (key, id) = (format!("BURST-{}", i + 1), format!("{}", 7000 + i));
        app.link(org, JIRA, &key, &id, &[group]).await;
        keys.push((key, id));
        groups.push(group);
    }
    Burst { keys, groups }
}

fn burst_payloads(burst: &Burst, rounds: usize) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for round in 0..rounds {
        for (i, (key, id)) in burst.keys.iter().enumerate() {
            let email = if round % 2 == 0 {
                "jess@sentry.io"
            } else {
                "kim@sentry.io"
            };
            out.push((
                format!("burst-{i}-{round}"),
                assignee_webhook(
                    key,
                    id,
                    email,
                    &format!("2023-01-01T00:{round:02}:00.000+0000"),
                ),
            ));
        }
    }
    out
}

async fn post_all(tracker: &TrackerApp, payloads: &[(String, Vec<u8>)]) {
    for chunk in payloads.chunks(16) {
        let posts = chunk.iter().map(|(id, body)| async move {
            let (status, json) = tracker.post_webhook(JIRA, body, Some(id)).await;
            assert_eq!(status, 200, "{json}");
        });
        futures_util::future::join_all(posts).await;
    }
}

/// Notifications for 50 issues × `rounds` alternating assignments: one for the
/// first round, two (unassigned + assigned) for every later one.
fn expected_notifications(rounds: usize) -> usize {
    50 * (1 + 2 * (rounds - 1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn story_a_subscriber_that_drops_mid_burst_resumes_with_everything_once() {
    let pair = Pair::start().await;
    let burst = burst_tenant(&pair).await;
    let payloads = burst_payloads(&burst, 20);
    assert_eq!(payloads.len(), 1000);
    let total = expected_notifications(20);

    let first = Reader::start(&pair.assignment, None).await;
    post_all(&pair.tracker, &payloads[..500]).await;
    // Drop the connection mid-burst, after it has seen something.
    let seen = first.wait_for(100).await;
    first.task.abort();
    let last = seen.last().unwrap().sequence;

    post_all(&pair.tracker, &payloads[500..]).await;
    let resumed = Reader::start(&pair.assignment, Some(last)).await;
    all_delivered(&pair.tracker, 1000).await;
    let rest = resumed.wait_for(total - seen.len()).await;

    let sequences: Vec<u64> = seen.iter().chain(rest.iter()).map(|n| n.sequence).collect();
    assert_eq!(sequences, (1..=total as u64).collect::<Vec<_>>());
    let _ = burst.groups;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn story_the_assignment_service_stops_mid_burst_and_every_webhook_applies_once() {
    let pair = Pair::start().await;
    let burst = burst_tenant(&pair).await;
    let payloads = burst_payloads(&burst, 6);
    let Pair {
        assignment,
        tracker,
        assignment_db,
        assignment_proxy,
        ..
    } = pair;

    post_all(&tracker, &payloads[..150]).await;
    assignment.stop().await;
    post_all(&tracker, &payloads[150..]).await;
    let assignment = AssignmentApp::spawn(assignment_db.url()).await;
    assignment_proxy.retarget(assignment.grpc_addr);

    all_delivered(&tracker, payloads.len()).await;
    for group in &burst.groups {
        let assigned = assignment
            .activities(*group)
            .await
            .into_iter()
            .filter(|a| a.kind() == assignment::ActivityKind::Assigned)
            .count();
        assert_eq!(
            assigned, 6,
            "group {group}: every webhook applied exactly once, in order"
        );
    }
    let notifications = assignment.all_notifications().await;
    assert_eq!(notifications.len(), expected_notifications(6));
    let unique: std::collections::HashSet<u64> = notifications.iter().map(|n| n.sequence).collect();
    assert_eq!(unique.len(), notifications.len());
}
