//! Two-way sync (issue 15; docs/DESIGN.md "Two-way sync"): our side's changes
//! reach Jira with Sentry's semantics (black-box equivalents of Sentry's
//! `sync_assignee_outbound` and `sync_status_outbound` tests, named after what
//! they show), Jira's answers to our changes (echoes) change nothing, nothing
//! is sent back to where it came from, and crossing changes converge.
//!
//! The Jira simulator holds the issue, its users and its workflow, and posts a
//! signed webhook to the tracker after every change, as Jira does.

use std::time::Duration;

use axum::http::Method;
use proto::assignment::v1 as assignment;
use proto::tracker::v1 as tracker;
use system_tests::fixtures::{assert_error, inbound_on, two_way};
use system_tests::pair::WEBHOOK_SECRET;
use system_tests::{JiraSim, Pair, TrackerApp, wait};
use tonic::Code;

const JIRA: &str = "acme-jira";
/// The Jira issue the group is linked to (project EX, 10000).
const ISSUE: &str = "EX-100";
const ISSUE_ID: &str = "20100";

/// The pair, the simulator sending webhooks to the tracker, and a group linked
/// to EX-100 in an organization that installed the integration.
struct TwoWay {
    pair: Pair,
    org: i64,
    group: i64,
    jess: i64,
    kim: i64,
}

impl TwoWay {
    async fn start() -> Self {
        Self::start_with(two_way(), false).await
    }

    async fn start_with(settings: assignment::SyncSettings, email_api_allowed: bool) -> Self {
        let pair = Pair::start().await;
        pair.create_integration(JIRA, email_api_allowed).await;
        pair.jira.send_webhooks_to(jira_sim::WebhookTarget {
            url: format!("{}/webhooks/jira/{JIRA}", pair.tracker.http_url()),
            secret: WEBHOOK_SECRET.into(),
        });
        pair.jira.add_user("acc-jess", "jess@sentry.io", true);
        pair.jira.add_user("acc-kim", "kim@sentry.io", true);
        pair.jira.add_issue(ISSUE, ISSUE_ID, "10000");
        let app = &pair.assignment;
        let org = app.create_org("acme").await;
        let project = app.create_project(org, "web").await;
        let jess = app.create_user("Jess", &[("jess@sentry.io", true)]).await;
        let kim = app.create_user("Kim", &[("kim@sentry.io", true)]).await;
        app.grant(project, jess).await;
        app.grant(project, kim).await;
        let group = app.create_group(project, "TypeError in checkout").await;
        app.install(org, JIRA, settings).await;
        app.link(org, JIRA, ISSUE, ISSUE_ID, &[group]).await;
        Self {
            pair,
            org,
            group,
            jess,
            kim,
        }
    }

    fn jira(&self) -> &JiraSim {
        &self.pair.jira
    }

    /// The tracker's outbound syncs, oldest first.
    async fn outbound(&self) -> Vec<tracker::OutboundSync> {
        outbound_of(&self.pair.tracker).await
    }

    /// Waits until the tracker stored `count` outbound syncs and none is
    /// pending; returns them, oldest first.
    async fn outbound_settled(&self, count: usize) -> Vec<tracker::OutboundSync> {
        wait::until(
            &format!("{count} settled outbound syncs"),
            wait::DEFAULT_DEADLINE,
            || async {
                let all = self.outbound().await;
                (all.len() == count
                    && all
                        .iter()
                        .all(|s| s.state() != tracker::OutboundSyncState::Pending))
                .then_some(all)
            },
        )
        .await
    }

    /// Waits until the simulator posted `count` webhooks and the tracker
    /// applied every delivery; returns the deliveries, oldest first.
    async fn webhooks_applied(&self, count: usize) -> Vec<tracker::WebhookDelivery> {
        wait::until(
            &format!("{count} webhooks applied"),
            wait::DEFAULT_DEADLINE,
            || async {
                let sent = self.jira().webhooks_sent();
                if sent.len() < count {
                    return None;
                }
                assert!(
                    sent.iter().all(|(_, status)| status == &Ok(200)),
                    "{sent:?}"
                );
                let mut deliveries = self.pair.tracker.deliveries().await;
                deliveries.reverse();
                (deliveries.len() == count
                    && deliveries
                        .iter()
                        .all(|d| d.state() != tracker::DeliveryState::Pending))
                .then_some(deliveries)
            },
        )
        .await
    }

    /// Waits until Jira shows `what`.
    async fn jira_shows(&self, what: &str, check: impl Fn(&jira_sim::IssueView) -> bool) {
        wait::until(what, wait::DEFAULT_DEADLINE, || async {
            self.jira().issue(ISSUE).filter(|i| check(i)).map(drop)
        })
        .await;
    }

    /// The group's assignee and status changes (its audit trail without the
    /// link), as (kind, user).
    async fn changes(&self) -> Vec<(assignment::ActivityKind, Option<i64>)> {
        self.pair
            .assignment
            .activities(self.group)
            .await
            .iter()
            .filter(|a| {
                !matches!(
                    a.kind(),
                    assignment::ActivityKind::Linked | assignment::ActivityKind::Unlinked
                )
            })
            .map(|a| (a.kind(), a.user_id))
            .collect()
    }

    /// Unassigns the group on our side (GroupService.UnassignGroup).
    async fn unassign(&self) {
        self.pair
            .assignment
            .groups()
            .unassign_group(assignment::UnassignGroupRequest {
                group_id: self.group,
                ..Default::default()
            })
            .await
            .unwrap();
    }

    fn puts(&self) -> usize {
        self.jira()
            .requests_to(
                Method::PUT,
                &format!("/rest/api/2/issue/{ISSUE_ID}/assignee"),
            )
            .len()
    }

    fn transition_posts(&self) -> usize {
        self.jira()
            .requests_to(
                Method::POST,
                &format!("/rest/api/2/issue/{ISSUE_ID}/transitions"),
            )
            .len()
    }

    async fn set_mapping(&self, project: &str, resolve: &str, unresolve: &str) {
        self.pair
            .tracker
            .tracker()
            .set_status_mappings(mappings_request(self.org, project, resolve, unresolve))
            .await
            .unwrap();
    }
}

async fn outbound_of(tracker: &TrackerApp) -> Vec<tracker::OutboundSync> {
    let mut all = tracker
        .tracker()
        .list_outbound_syncs(tracker::ListOutboundSyncsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .outbound_syncs;
    all.reverse();
    all
}

fn mappings_request(
    org: i64,
    project: &str,
    resolve: &str,
    unresolve: &str,
) -> tracker::SetStatusMappingsRequest {
    tracker::SetStatusMappingsRequest {
        integration_id: JIRA.into(),
        organization_id: org,
        mappings: vec![tracker::StatusMapping {
            jira_project_id: project.into(),
            on_resolve_status_id: resolve.into(),
            on_unresolve_status_id: unresolve.into(),
        }],
        request_id: String::new(),
    }
}

fn summaries(delivery: &tracker::WebhookDelivery) -> String {
    delivery
        .actions
        .iter()
        .map(|a| a.summary.clone())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Sentry: `test_syncs_outbound_assignee`. The local assign reaches Jira once;
/// Jira's webhook about it ends as a no-op (no activity, no notification, no
/// new outbound sync).
#[tokio::test]
async fn a_local_assign_reaches_jira_once_and_its_echo_changes_nothing() {
    let t = TwoWay::start().await;
    t.pair.assignment.assign(t.group, t.jess, t.kim).await;
    t.jira_shows("Jess assigned in Jira", |i| {
        i.assignee.as_deref() == Some("acc-jess")
    })
    .await;
    let echo = t.webhooks_applied(1).await;
    assert!(
        summaries(&echo[0]).contains("Jira reporting outbound sync"),
        "{}",
        summaries(&echo[0])
    );
    assert_eq!(
        echo[0].actions[0].group_effects[0].outcome(),
        tracker::GroupOutcome::Unchanged
    );
    let synced = t.outbound_settled(1).await;
    assert_eq!(synced[0].state(), tracker::OutboundSyncState::Done);
    assert!(
        synced[0]
            .result
            .contains("assigned EX-100 to jess@sentry.io")
    );
    assert_eq!(t.puts(), 1);
    let put = &t.jira().requests_to(
        Method::PUT,
        &format!("/rest/api/2/issue/{ISSUE_ID}/assignee"),
    )[0];
    assert_eq!(put.body, serde_json::json!({ "accountId": "acc-jess" }));
    // The echo wrote nothing on our side.
    assert_eq!(t.changes().await.len(), 1);
    assert_eq!(t.pair.assignment.all_notifications().await.len(), 1);
    assert_eq!(t.pair.assignment.outbound_after(0).await.len(), 1);

    // Unassigning sends `null`.
    t.unassign().await;
    t.jira_shows("nobody assigned in Jira", |i| i.assignee.is_none())
        .await;
    t.webhooks_applied(2).await;
    let unassign = &t.jira().requests_to(
        Method::PUT,
        &format!("/rest/api/2/issue/{ISSUE_ID}/assignee"),
    )[1];
    assert_eq!(unassign.body, serde_json::json!({ "accountId": null }));
    assert_eq!(t.changes().await.len(), 2);
}

/// Sentry: `test_sync_assignee_outbound_case_insensitive`.
#[tokio::test]
async fn the_jira_user_is_found_by_a_verified_address_ignoring_case() {
    let t = TwoWay::start().await;
    t.jira().add_user("acc-upper", "Upper@Sentry.IO", true);
    let app = &t.pair.assignment;
    let upper = app.create_user("Upper", &[("upper@sentry.io", true)]).await;
    let project = app.group(t.group).await.project_id;
    app.grant(project, upper).await;
    app.assign(t.group, upper, 0).await;
    t.jira_shows("Upper assigned", |i| {
        i.assignee.as_deref() == Some("acc-upper")
    })
    .await;
}

/// Sentry: `test_integration_sync_target_not_found` and
/// `test_sync_assignee_outbound_no_email`: no Jira user matches (or the user
/// has no verified address): stopped with the reason, nothing sent, not
/// retried.
#[tokio::test]
async fn no_matching_jira_user_stops_the_sync_without_sending_anything() {
    let t = TwoWay::start().await;
    let app = &t.pair.assignment;
    let project = app.group(t.group).await.project_id;
    let stranger = app
        .create_user("Stranger", &[("stranger@elsewhere.io", true)])
        .await;
    let unverified = app.create_user("Una", &[("una@sentry.io", false)]).await;
    app.grant(project, stranger).await;
    app.grant(project, unverified).await;
    app.assign(t.group, stranger, 0).await;
    let first = t.outbound_settled(1).await;
    assert_eq!(first[0].state(), tracker::OutboundSyncState::Stopped);
    assert!(
        first[0].result.contains("no Jira user matches"),
        "{}",
        first[0].result
    );
    app.assign(t.group, unverified, 0).await;
    let second = t.outbound_settled(2).await;
    assert_eq!(second[1].state(), tracker::OutboundSyncState::Stopped);
    assert!(
        second[1].result.contains("no verified e-mail"),
        "{}",
        second[1].result
    );
    assert_eq!(second[1].attempts, 1, "a stop is not retried");
    assert_eq!(t.puts(), 0);
    assert_eq!(t.jira().issue(ISSUE).unwrap().assignee, None);
}

/// Sentry: `test_sync_assignee_outbound_use_email_api`: Jira hides the
/// address; the e-mail API gives it when the integration allows it.
#[tokio::test]
async fn a_hidden_address_is_read_through_the_email_api_when_allowed() {
    let t = TwoWay::start_with(two_way(), true).await;
    t.jira().add_user("acc-shy", "shy@sentry.io", false);
    let app = &t.pair.assignment;
    let project = app.group(t.group).await.project_id;
    let shy = app.create_user("Shy", &[("shy@sentry.io", true)]).await;
    app.grant(project, shy).await;
    app.assign(t.group, shy, 0).await;
    t.jira_shows("Shy assigned", |i| i.assignee.as_deref() == Some("acc-shy"))
        .await;
    assert!(
        !t.jira()
            .requests_to(Method::GET, "/rest/api/3/user/email")
            .is_empty()
    );
}

/// Without the e-mail API, a hidden address cannot match: stopped.
#[tokio::test]
async fn a_hidden_address_without_the_email_api_stops_the_sync() {
    let t = TwoWay::start().await;
    t.jira().add_user("acc-shy", "shy@sentry.io", false);
    let app = &t.pair.assignment;
    let project = app.group(t.group).await.project_id;
    let shy = app.create_user("Shy", &[("shy@sentry.io", true)]).await;
    app.grant(project, shy).await;
    app.assign(t.group, shy, 0).await;
    let synced = t.outbound_settled(1).await;
    assert_eq!(synced[0].state(), tracker::OutboundSyncState::Stopped);
    assert!(
        t.jira()
            .requests_to(Method::GET, "/rest/api/3/user/email")
            .is_empty()
    );
}

/// Sentry: `test_sync_assignee_outbound_api_unauthorized` and
/// `test_api_unauthorized_error_halts`: 401/403 stop with "insufficient
/// permissions", nothing is retried.
#[tokio::test]
async fn unauthorized_answers_stop_with_insufficient_permissions() {
    let t = TwoWay::start().await;
    t.jira().fail_next(
        Method::PUT,
        "/rest/api/2/issue/",
        1,
        401,
        &[],
        r#"{"errorMessages":["You are not authenticated."],"errors":{}}"#,
    );
    t.pair.assignment.assign(t.group, t.jess, 0).await;
    let synced = t.outbound_settled(1).await;
    assert_eq!(synced[0].state(), tracker::OutboundSyncState::Stopped);
    assert!(
        synced[0]
            .result
            .contains("insufficient permissions to assign the Jira issue"),
        "{}",
        synced[0].result
    );

    t.set_mapping("10000", "10002", "10000").await;
    t.jira().fail_next(
        Method::POST,
        "/rest/api/2/issue/",
        1,
        403,
        &[],
        r#"{"errorMessages":["You do not have permission to transition this issue."],"errors":{}}"#,
    );
    t.pair.assignment.resolve(t.group, 0).await;
    let synced = t.outbound_settled(2).await;
    assert_eq!(synced[1].state(), tracker::OutboundSyncState::Stopped);
    assert!(
        synced[1]
            .result
            .contains("insufficient permissions to transition the Jira issue"),
        "{}",
        synced[1].result
    );
    assert_eq!(t.jira().issue(ISSUE).unwrap().status_id, "10000");

    // An operator retries the stopped one once the permission is fixed.
    let stopped = synced[0].id;
    let retried = t
        .pair
        .tracker
        .tracker()
        .retry_outbound_sync(tracker::RetryOutboundSyncRequest {
            outbound_sync_id: stopped,
            request_id: "retry-1".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .outbound_sync
        .unwrap();
    assert_eq!(retried.state(), tracker::OutboundSyncState::Pending);
    t.jira_shows("Jess assigned after the retry", |i| {
        i.assignee.as_deref() == Some("acc-jess")
    })
    .await;
    // A done one cannot be retried.
    wait::until(
        "the retried sync to be done",
        wait::DEFAULT_DEADLINE,
        || async {
            let all = t.outbound().await;
            (all[0].state() == tracker::OutboundSyncState::Done).then_some(())
        },
    )
    .await;
    let again = t
        .pair
        .tracker
        .tracker()
        .retry_outbound_sync(tracker::RetryOutboundSyncRequest {
            outbound_sync_id: stopped,
            request_id: "retry-2".into(),
        })
        .await;
    assert_error(again, Code::FailedPrecondition, None);
}

/// Sentry: `test_sync_assignee_outbound_api_error` and `test_failed_sync`;
/// issue 15: "a local assign while Jira answers 503 reaches Jira once it
/// recovers". Jira fails beyond the client's own retries: the sync is
/// retried with backoff and lands once Jira is back.
#[tokio::test]
async fn a_jira_outage_delays_the_sync_and_it_lands_when_jira_recovers() {
    let t = TwoWay::start().await;
    t.jira().fail_next(
        Method::PUT,
        "/rest/api/2/issue/",
        12,
        503,
        &[("retry-after", "0")],
        "Service Unavailable",
    );
    t.pair.assignment.assign(t.group, t.jess, 0).await;
    t.jira_shows("Jess assigned once Jira recovered", |i| {
        i.assignee.as_deref() == Some("acc-jess")
    })
    .await;
    let synced = t.outbound_settled(1).await;
    assert_eq!(synced[0].state(), tracker::OutboundSyncState::Done);
    assert!(synced[0].attempts >= 2, "{:?}", synced[0]);
    assert!(
        synced[0].last_error.contains("503"),
        "{}",
        synced[0].last_error
    );
    // Thirteen PUTs reached the simulator: twelve refused, one applied.
    assert_eq!(t.puts(), 13);
}

/// Sentry: `test_skips_syncing_if_should_sync_false`: with forward sync off,
/// nothing is recorded or sent.
#[tokio::test]
async fn with_forward_sync_off_nothing_is_sent() {
    let t = TwoWay::start_with(inbound_on(), false).await;
    t.pair.assignment.assign(t.group, t.jess, 0).await;
    t.pair.assignment.resolve(t.group, 0).await;
    assert!(t.pair.assignment.outbound_after(0).await.is_empty());
    assert!(t.outbound().await.is_empty());
    assert!(t.jira().writes().is_empty());
}

/// Sentry: `test_outbound_issue_sync` / `test_successful_outbound_sync`: a
/// resolve moves the issue through the transition to the mapped status, a
/// reopen back; Jira's webhooks about it change nothing here.
#[tokio::test]
async fn resolve_and_reopen_move_the_issue_to_the_mapped_statuses() {
    let t = TwoWay::start().await;
    t.set_mapping("10000", "10002", "3").await;
    t.pair.assignment.resolve(t.group, 0).await;
    t.jira_shows("Done in Jira", |i| i.status_id == "10002")
        .await;
    let posts = t.jira().requests_to(
        Method::POST,
        &format!("/rest/api/2/issue/{ISSUE_ID}/transitions"),
    );
    assert_eq!(posts.len(), 1);
    assert_eq!(
        posts[0].body,
        serde_json::json!({ "transition": { "id": "41" } })
    );
    let echo = t.webhooks_applied(1).await;
    assert!(summaries(&echo[0]).contains("Jira reporting outbound sync"));

    t.pair
        .assignment
        .groups()
        .unresolve_group(assignment::UnresolveGroupRequest {
            group_id: t.group,
            ..Default::default()
        })
        .await
        .unwrap();
    t.jira_shows("In Progress in Jira", |i| i.status_id == "3")
        .await;
    t.webhooks_applied(2).await;
    let group = t.pair.assignment.group(t.group).await;
    assert_eq!(group.status(), assignment::GroupStatus::Unresolved);
    // Resolved and reopened once each: the echoes wrote nothing.
    assert_eq!(t.changes().await.len(), 2);
    assert_eq!(t.transition_posts(), 2);
}

/// Sentry: `test_should_not_sync`: a project without a mapping gets nothing.
#[tokio::test]
async fn a_project_without_a_mapping_gets_no_transition() {
    let t = TwoWay::start().await;
    t.set_mapping("10001", "20001", "20000").await;
    t.pair.assignment.resolve(t.group, 0).await;
    let synced = t.outbound_settled(1).await;
    assert_eq!(synced[0].state(), tracker::OutboundSyncState::Done);
    assert!(
        synced[0].result.contains("has no status mapping"),
        "{}",
        synced[0].result
    );
    assert_eq!(t.transition_posts(), 0);
}

/// Sentry: `test_missing_external_issue`: the issue is gone in Jira: stopped,
/// nothing sent.
#[tokio::test]
async fn a_missing_jira_issue_stops_the_sync() {
    let t = TwoWay::start().await;
    let app = &t.pair.assignment;
    let project = app.group(t.group).await.project_id;
    let orphan = app.create_group(project, "linked to a ghost").await;
    app.link(t.org, JIRA, "EX-404", "20404", &[orphan]).await;
    app.assign(orphan, t.jess, 0).await;
    let synced = t.outbound_settled(1).await;
    assert_eq!(synced[0].state(), tracker::OutboundSyncState::Stopped);
    assert!(
        synced[0].result.contains("no longer exists"),
        "{}",
        synced[0].result
    );
    assert!(t.jira().writes().is_empty());
}

/// Sentry: `test_integration_form_error`: Jira refuses the transition with a
/// field error (a required resolution): stopped with Jira's words.
#[tokio::test]
async fn a_form_error_stops_the_transition_with_jiras_words() {
    let t = TwoWay::start().await;
    t.set_mapping("10000", "10002", "10000").await;
    t.jira().fail_next(
        Method::POST,
        "/rest/api/2/issue/",
        1,
        400,
        &[("content-type", "application/json")],
        r#"{"errorMessages":[],"errors":{"resolution":"Resolution is required."}}"#,
    );
    t.pair.assignment.resolve(t.group, 0).await;
    let synced = t.outbound_settled(1).await;
    assert_eq!(synced[0].state(), tracker::OutboundSyncState::Stopped);
    assert!(
        synced[0].result.contains("Resolution is required"),
        "{}",
        synced[0].result
    );
    assert_eq!(t.jira().issue(ISSUE).unwrap().status_id, "10000");
}

/// Sentry: `test_update_organization_config_sync_keys`,
/// `…_rejects_incomplete_mappings`, `…_rejects_malformed_mapping_payloads`.
/// Statuses are offered per project; a mapping names both statuses of its
/// project; a bad one is refused naming the field and leaves the stored
/// mapping as it was.
#[tokio::test]
async fn status_mappings_are_offered_per_project_checked_and_replaced_whole() {
    let t = TwoWay::start().await;
    let mut api = t.pair.tracker.tracker();
    let config = api
        .get_status_sync_config(tracker::GetStatusSyncConfigRequest {
            integration_id: JIRA.into(),
            organization_id: t.org,
        })
        .await
        .unwrap()
        .into_inner();
    let projects: Vec<&str> = config.projects.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(projects, vec!["EX", "ABC"]);
    assert!(config.mappings.is_empty());
    let statuses = api
        .list_jira_project_statuses(tracker::ListJiraProjectStatusesRequest {
            integration_id: JIRA.into(),
            jira_project_id: "10001".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .statuses;
    let names: Vec<(&str, &str)> = statuses
        .iter()
        .map(|s| (s.name.as_str(), s.category.as_str()))
        .collect();
    assert_eq!(names, vec![("Backlog", "new"), ("Shipped", "done")]);

    t.set_mapping("10000", "10002", "10000").await;
    let stored = || async {
        t.pair
            .tracker
            .tracker()
            .get_status_sync_config(tracker::GetStatusSyncConfigRequest {
                integration_id: JIRA.into(),
                organization_id: t.org,
            })
            .await
            .unwrap()
            .into_inner()
            .mappings
    };
    let expected = vec![tracker::StatusMapping {
        jira_project_id: "10000".into(),
        on_resolve_status_id: "10002".into(),
        on_unresolve_status_id: "10000".into(),
    }];
    assert_eq!(stored().await, expected);

    let refused = [
        // Incomplete: the reopen status is missing.
        (
            mappings_request(t.org, "10000", "10002", ""),
            "mappings[0].on_unresolve_status_id",
        ),
        // Malformed: not an id.
        (
            mappings_request(t.org, "ten thousand", "10002", "10000"),
            "mappings[0].jira_project_id",
        ),
        // A status of another project's workflow.
        (
            mappings_request(t.org, "10000", "20001", "10000"),
            "mappings[0].on_resolve_status_id",
        ),
        // A project Jira does not have.
        (
            mappings_request(t.org, "99999", "1", "2"),
            "mappings[0].jira_project_id",
        ),
    ];
    for (request, field) in refused {
        let answer = api.set_status_mappings(request).await;
        assert_error(answer, Code::InvalidArgument, Some(field));
    }
    let mut duplicated = mappings_request(t.org, "10000", "10002", "10000");
    duplicated.mappings.push(duplicated.mappings[0].clone());
    assert_error(
        api.set_status_mappings(duplicated).await,
        Code::InvalidArgument,
        Some("mappings[1].jira_project_id"),
    );
    assert_eq!(
        stored().await,
        expected,
        "refusals left the mapping as it was"
    );

    // Replaced whole; an empty list clears it.
    t.set_mapping("10001", "20001", "20000").await;
    assert_eq!(stored().await[0].jira_project_id, "10001");
    assert_eq!(stored().await.len(), 1);
    api.set_status_mappings(tracker::SetStatusMappingsRequest {
        integration_id: JIRA.into(),
        organization_id: t.org,
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(stored().await.is_empty());

    // Not installed by that organization: NOT_FOUND.
    let other = t.pair.assignment.create_org("globex").await;
    let absent = api
        .set_status_mappings(mappings_request(other, "10000", "10002", "10000"))
        .await;
    assert_error(absent, Code::NotFound, None);
}

/// Issue 15 §4: a change Jira sends us is never sent back to Jira.
#[tokio::test]
async fn an_inbound_change_is_never_sent_back_to_its_jira() {
    let t = TwoWay::start().await;
    t.set_mapping("10000", "10002", "10000").await;
    t.jira().assign_in_jira(ISSUE, Some("acc-kim"));
    t.jira().move_in_jira(ISSUE, "10002");
    let applied = t.webhooks_applied(2).await;
    assert!(summaries(&applied[0]).contains("assign to kim@sentry.io"));
    let group = t.pair.assignment.group(t.group).await;
    assert_eq!(group.assignee_user_id, Some(t.kim));
    assert_eq!(group.status(), assignment::GroupStatus::Resolved);
    // Recorded (they supersede older local changes) but nothing sent.
    let synced = t.outbound_settled(2).await;
    assert!(synced.iter().all(|s| s.from_source));
    assert!(t.jira().writes().is_empty(), "{:?}", t.jira().writes());
}

/// Sentry: `test_equal_event_is_stale`: a status event with the same `updated`
/// time as the last one applied does not undo a local change made since.
#[tokio::test]
async fn a_status_event_as_old_as_the_last_one_does_not_undo_a_local_reopen() {
    let t = TwoWay::start_with(inbound_on(), false).await;
    let event = |changelog: &str| {
        serde_json::json!({
            "webhookEvent": "jira:issue_updated",
            "issue": {
                "id": ISSUE_ID, "key": ISSUE,
                "fields": { "updated": "2026-01-01T00:00:00.000+0000" },
            },
            "changelog": { "id": changelog, "items": [{
                "field": "status", "from": "10000", "fromString": "To Do",
                "to": "10002", "toString": "Done",
            }]},
        })
    };
    let post = |changelog: &'static str| {
        let body = serde_json::to_vec(&event(changelog)).unwrap();
        let tracker = &t.pair.tracker;
        async move {
            let (status, json) = tracker.post_webhook(JIRA, &body, None).await;
            assert_eq!(status, 200, "{json}");
            tracker.settled(json["delivery_id"].as_i64().unwrap()).await
        }
    };
    post("1").await;
    assert_eq!(
        t.pair.assignment.group(t.group).await.status(),
        assignment::GroupStatus::Resolved
    );
    t.pair
        .assignment
        .groups()
        .unresolve_group(assignment::UnresolveGroupRequest {
            group_id: t.group,
            ..Default::default()
        })
        .await
        .unwrap();
    let again = post("2").await;
    assert_eq!(
        again.actions[0].group_effects[0].outcome(),
        tracker::GroupOutcome::Stale
    );
    assert_eq!(
        t.pair.assignment.group(t.group).await.status(),
        assignment::GroupStatus::Unresolved
    );
}

/// Issue 15: "a local assign while the tracker is stopped reaches Jira after
/// it starts".
#[tokio::test]
async fn a_local_assign_while_the_tracker_is_stopped_reaches_jira_after_it_starts() {
    let t = TwoWay::start().await;
    let Pair {
        assignment,
        tracker,
        assignment_proxy,
        jira,
        tracker_db,
        assignment_db: _assignment_db,
    } = t.pair;
    tracker.stop().await;
    assignment.assign(t.group, t.jess, 0).await;
    let tracker = TrackerApp::spawn(tracker_db.url(), assignment_proxy.addr).await;
    wait::until("Jess assigned in Jira", wait::DEFAULT_DEADLINE, || async {
        jira.issue(ISSUE)
            .filter(|i| i.assignee.as_deref() == Some("acc-jess"))
            .map(drop)
    })
    .await;
    assert_eq!(outbound_of(&tracker).await.len(), 1);
}

/// Issue 15: "nothing is sent twice to Jira for one intent when the tracker is
/// killed mid-apply": Jira applied the PUT but its answer never reached the
/// killed tracker; the next tracker finds Jira already showing the assignee and
/// sends nothing.
#[tokio::test]
async fn a_tracker_killed_mid_apply_sends_nothing_twice() {
    let t = TwoWay::start().await;
    t.jira().delay_answers(
        Method::PUT,
        "/rest/api/2/issue/",
        "/assignee",
        Some(Duration::from_secs(60)),
    );
    t.pair.assignment.assign(t.group, t.jess, 0).await;
    t.jira_shows("the PUT applied in Jira", |i| {
        i.assignee.as_deref() == Some("acc-jess")
    })
    .await;
    let Pair {
        assignment: _assignment,
        tracker,
        assignment_proxy,
        jira,
        tracker_db,
        assignment_db: _assignment_db,
    } = t.pair;
    let in_flight = outbound_of(&tracker).await;
    assert_eq!(in_flight[0].state(), tracker::OutboundSyncState::Pending);
    tracker.kill().await;
    jira.delay_answers(Method::PUT, "/rest/api/2/issue/", "/assignee", None);
    let tracker = TrackerApp::spawn(tracker_db.url(), assignment_proxy.addr).await;
    let done = wait::until("the sync to be done", wait::DEFAULT_DEADLINE, || async {
        let all = outbound_of(&tracker).await;
        (all[0].state() == tracker::OutboundSyncState::Done).then_some(all)
    })
    .await;
    assert!(
        done[0].result.contains("already assigned"),
        "{}",
        done[0].result
    );
    assert_eq!(
        jira.requests_to(
            Method::PUT,
            &format!("/rest/api/2/issue/{ISSUE_ID}/assignee")
        )
        .len(),
        1
    );
}

/// Issue 15 §4, scripted races. Both sides converge on the change that
/// reached Jira last, with at most one round trip.
///
/// 1. Jira's webhook about our change (Jess) arrives while a newer local
///    change (Kim) still waits to be sent: the echo is not applied (it would
///    flip the group back to Jess); Kim is sent; both end on Kim.
#[tokio::test]
async fn an_echo_overtaken_by_a_newer_local_change_is_not_applied() {
    let t = TwoWay::start().await;
    t.jira().hold_webhooks();
    t.pair.assignment.assign(t.group, t.jess, 0).await;
    t.jira_shows("Jess in Jira", |i| {
        i.assignee.as_deref() == Some("acc-jess")
    })
    .await;
    t.outbound_settled(1).await;
    // Jira is unavailable for a while: Kim waits to be sent.
    t.jira().fail_next(
        Method::PUT,
        "/rest/api/2/issue/",
        1000,
        503,
        &[("retry-after", "0")],
        "Service Unavailable",
    );
    t.pair.assignment.assign(t.group, t.kim, 0).await;
    wait::until(
        "Kim's sync to have failed once",
        wait::DEFAULT_DEADLINE,
        || async {
            let all = t.outbound().await;
            (all.len() == 2 && all[1].attempts >= 1).then_some(())
        },
    )
    .await;
    t.jira().release_webhooks();
    let echo = t.webhooks_applied(1).await;
    assert!(
        summaries(&echo[0]).contains("not applied"),
        "{}",
        summaries(&echo[0])
    );
    assert_eq!(
        t.pair.assignment.group(t.group).await.assignee_user_id,
        Some(t.kim)
    );
    t.jira().clear_failures();
    t.jira_shows("Kim in Jira", |i| i.assignee.as_deref() == Some("acc-kim"))
        .await;
    t.webhooks_applied(2).await;
    use assignment::ActivityKind::Assigned;
    assert_eq!(
        t.changes().await,
        vec![(Assigned, Some(t.jess)), (Assigned, Some(t.kim))],
        "never flipped back"
    );
    assert_eq!(
        t.jira().issue(ISSUE).unwrap().assignee.as_deref(),
        Some("acc-kim")
    );
}

/// 2. Someone assigns the issue in Jira while our local change waits to be
///    sent: the Jira change, applied after ours on our side, supersedes it;
///    nothing is sent; both end on the Jira change.
#[tokio::test]
async fn a_jira_change_supersedes_a_local_change_not_yet_sent() {
    let t = TwoWay::start().await;
    t.jira().fail_next(
        Method::PUT,
        "/rest/api/2/issue/",
        1000,
        503,
        &[("retry-after", "0")],
        "Service Unavailable",
    );
    t.pair.assignment.assign(t.group, t.jess, 0).await;
    wait::until(
        "Jess's sync to have failed once",
        wait::DEFAULT_DEADLINE,
        || async {
            let all = t.outbound().await;
            (all.len() == 1 && all[0].attempts >= 1).then_some(())
        },
    )
    .await;
    t.jira().assign_in_jira(ISSUE, Some("acc-kim"));
    t.webhooks_applied(1).await;
    let synced = t.outbound_settled(2).await;
    assert_eq!(synced[0].state(), tracker::OutboundSyncState::Superseded);
    assert!(synced[1].from_source);
    assert_eq!(
        t.pair.assignment.group(t.group).await.assignee_user_id,
        Some(t.kim)
    );
    assert_eq!(
        t.jira().issue(ISSUE).unwrap().assignee.as_deref(),
        Some("acc-kim")
    );
    // Only the Jira user's change went out as a webhook: Jess never reached
    // Jira, and nothing is pending that could still send her.
    assert_eq!(t.jira().webhooks_sent().len(), 1);
}

/// 3. Jira changes the issue right after our change reached it: Jira's last
///    change wins on both sides; one round trip.
#[tokio::test]
async fn a_jira_change_right_after_ours_wins_on_both_sides() {
    let t = TwoWay::start().await;
    t.pair.assignment.assign(t.group, t.jess, 0).await;
    t.jira_shows("Jess in Jira", |i| {
        i.assignee.as_deref() == Some("acc-jess")
    })
    .await;
    t.jira().assign_in_jira(ISSUE, Some("acc-kim"));
    t.webhooks_applied(2).await;
    assert_eq!(
        t.pair.assignment.group(t.group).await.assignee_user_id,
        Some(t.kim)
    );
    assert_eq!(
        t.jira().issue(ISSUE).unwrap().assignee.as_deref(),
        Some("acc-kim")
    );
    assert_eq!(t.puts(), 1, "one round trip");
    t.outbound_settled(2).await;
}

/// 4. Jira's webhook about our change (Jess) overtakes Jira's answer to it,
///    and a newer local change (unassign) waits behind it: the echo is still
///    recognised while the change is in flight, so it does not undo the newer
///    change; both end unassigned.
#[tokio::test]
async fn an_echo_that_overtakes_jiras_answer_is_still_recognised() {
    let t = TwoWay::start().await;
    t.jira()
        .hold_answers(Method::PUT, "/rest/api/2/issue/", "/assignee");
    t.jira().hold_webhooks();
    t.pair.assignment.assign(t.group, t.jess, 0).await;
    t.jira_shows("Jess in Jira", |i| {
        i.assignee.as_deref() == Some("acc-jess")
    })
    .await;
    t.unassign().await;
    wait::until(
        "the unassign waiting behind Jess's sync",
        wait::DEFAULT_DEADLINE,
        || async { (t.outbound().await.len() == 2).then_some(()) },
    )
    .await;
    t.jira().release_webhooks();
    let echo = t.webhooks_applied(1).await;
    assert!(
        summaries(&echo[0]).contains("Jira reporting outbound sync")
            && summaries(&echo[0]).contains("not applied"),
        "{}",
        summaries(&echo[0])
    );
    assert_eq!(
        t.outbound().await[0].state(),
        tracker::OutboundSyncState::Pending,
        "the webhook came while Jess's sync waited for Jira's answer"
    );
    assert_eq!(
        t.pair.assignment.group(t.group).await.assignee_user_id,
        None
    );
    t.jira().release_answers();
    t.jira_shows("nobody in Jira", |i| i.assignee.is_none())
        .await;
    t.webhooks_applied(2).await;
    let synced = t.outbound_settled(2).await;
    assert!(
        synced
            .iter()
            .all(|s| s.state() == tracker::OutboundSyncState::Done),
        "{synced:?}"
    );
    use assignment::ActivityKind::{Assigned, Unassigned};
    assert_eq!(
        t.changes().await,
        vec![(Assigned, Some(t.jess)), (Unassigned, None)],
        "never flipped back"
    );
    assert_eq!(t.puts(), 2);
}
