//! The rest of Sentry's issue flow (issue 16; docs/DESIGN.md "Create issue",
//! "Link an existing issue", "Webhook ingestion"): search-as-you-type for a
//! form's async fields (black-box equivalents of Sentry's search endpoint
//! tests), a form a UI can fill end to end, linking an issue that already
//! exists (with a comment posted once), issues deleted in Jira, and the
//! create form's back-links and remembered defaults.

use axum::http::Method;
use proto::assignment::v1 as assignment;
use proto::tracker::v1 as pb;
use serde_json::json;
use system_tests::fixtures::{assert_error, inbound_on};
use system_tests::pair::WEBHOOK_SECRET;
use system_tests::{JiraSim, Pair};
use tonic::Code;

const JIRA: &str = "acme-jira";

/// The pair with the integration, an organization that installed it, two
/// groups, and the simulator's issue EX-100 ("this is a test issue summary").
struct Flow {
    pair: Pair,
    org: i64,
    groups: Vec<i64>,
}

impl Flow {
    async fn start() -> Self {
        let pair = Pair::start().await;
        pair.create_integration(JIRA, false).await;
        pair.jira.send_webhooks_to(jira_sim::WebhookTarget {
            url: format!("{}/webhooks/jira/{JIRA}", pair.tracker.http_url()),
            secret: WEBHOOK_SECRET.into(),
        });
        pair.jira.add_user("acc-jess", "jess@sentry.io", true);
        pair.jira.add_user("acc-kim", "kim@sentry.io", true);
        pair.jira.add_issue("EX-100", "20100", "10000");
        pair.jira
            .set_summary("EX-100", "this is a test issue summary");
        let app = &pair.assignment;
        let org = app.create_org("acme").await;
        let project = app.create_project(org, "web").await;
        let mut groups = Vec::new();
        for title in ["TypeError in checkout", "TypeError in cart"] {
            groups.push(app.create_group(project, title).await);
        }
        app.install(org, JIRA, inbound_on()).await;
        Self { pair, org, groups }
    }

    fn jira(&self) -> &JiraSim {
        &self.pair.jira
    }

    async fn search(
        &self,
        field: &str,
        query: &str,
        project: &str,
    ) -> Result<Vec<(String, String)>, tonic::Status> {
        self.pair
            .tracker
            .tracker()
            .search_jira(pb::SearchJiraRequest {
                integration_id: JIRA.into(),
                field: field.into(),
                query: query.into(),
                project_id: project.into(),
            })
            .await
            .map(|r| {
                r.into_inner()
                    .choices
                    .into_iter()
                    .map(|c| (c.value, c.label))
                    .collect()
            })
    }

    /// The query string of the last GET to `path`.
    fn last_query(&self, path: &str) -> String {
        self.jira()
            .requests_to(Method::GET, path)
            .last()
            .map(|r| r.query.clone())
            .unwrap_or_default()
    }
}

fn decoded(query: &str) -> String {
    let mut out = Vec::new();
    let bytes = query.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Ok(b) = u8::from_str_radix(&query[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Sentry: `test_issue_search_text` and `test_issue_search_id`.
#[tokio::test]
async fn issue_search_finds_by_text_and_an_issue_key_by_id() {
    let t = Flow::start().await;
    let expected = vec![(
        "EX-100".to_owned(),
        "(EX-100) this is a test issue summary".to_owned(),
    )];
    assert_eq!(
        t.search("externalIssue", "test", "").await.unwrap(),
        expected
    );
    assert!(
        decoded(&t.last_query("/rest/api/2/search/jql")).contains(r#"jql=text ~ "test""#),
        "{}",
        t.last_query("/rest/api/2/search/jql")
    );
    for field in ["externalIssue", "parent"] {
        assert_eq!(t.search(field, "ex-100", "").await.unwrap(), expected);
        assert!(decoded(&t.last_query("/rest/api/2/search/jql")).contains(r#"jql=id="ex-100""#));
    }
}

/// Sentry: `test_issue_search_error`, `test_assignee_search_error`,
/// `test_customfield_search_error`: Jira's failure keeps its reason and says
/// what could not be fetched.
#[tokio::test]
async fn a_failing_search_says_what_jira_could_not_give() {
    let t = Flow::start().await;
    for (prefix, field, project, words) in [
        (
            "/rest/api/2/search",
            "externalIssue",
            "",
            "something went wrong while communicating with Jira",
        ),
        (
            "/rest/api/2/user/assignable",
            "assignee",
            "10000",
            "unable to fetch users from Jira",
        ),
        (
            "/rest/api/2/jql/autocompletedata",
            "customfield_0123",
            "",
            "unable to fetch autocomplete for customfield_0123 from Jira",
        ),
    ] {
        // Beyond the client's own retries of a read.
        t.jira()
            .fail_next(Method::GET, prefix, 5, 500, &[], "Totally broken");
        let status = assert_error(
            t.search(field, "sp", project).await,
            Code::Unavailable,
            None,
        );
        assert!(status.message().starts_with(words), "{}", status.message());
    }
}

/// Sentry: `test_assignee_search`: the project's assignable users, labelled
/// as Jira names them.
#[tokio::test]
async fn assignee_search_lists_the_projects_assignable_users() {
    let t = Flow::start().await;
    let users = t.search("assignee", "jess", "10000").await.unwrap();
    assert_eq!(
        users,
        vec![(
            "acc-jess".to_owned(),
            "jess - jess@sentry.io (jess)".to_owned()
        )]
    );
    let query = decoded(&t.last_query("/rest/api/2/user/assignable/search"));
    assert!(
        query.contains("project=EX") && query.contains("query=jess"),
        "{query}"
    );
    // A user field needs the form's project.
    let status = assert_error(
        t.search("reporter", "jess", "").await,
        Code::InvalidArgument,
        Some("project_id"),
    );
    assert!(status.message().contains("project_id"));
}

/// Sentry: `test_customfield_search`: Jira's JQL autocomplete, `cf[N]`, HTML
/// stripped from the labels.
#[tokio::test]
async fn custom_field_search_uses_jira_autocomplete() {
    let t = Flow::start().await;
    assert_eq!(
        t.search("customfield_0123", "sp", "").await.unwrap(),
        vec![
            ("1".to_owned(), "Sprint 1 (1)".to_owned()),
            ("2".to_owned(), "Sprint 2 (2)".to_owned()),
        ]
    );
    let query = decoded(&t.last_query("/rest/api/2/jql/autocompletedata/suggestions"));
    assert!(
        query.contains("fieldName=cf[0123]") && query.contains("fieldValue=sp"),
        "{query}"
    );
    for (field, query, name) in [("", "sp", "field"), ("parent", " ", "query")] {
        assert_error(
            t.search(field, query, "").await,
            Code::InvalidArgument,
            Some(name),
        );
    }
}

/// Issue 16's first "done when": a form whose reporter is a required async
/// user field, filled with RPCs only (config → search → create), creates the
/// issue with what was chosen.
#[tokio::test]
async fn a_ui_fills_a_form_with_a_required_user_field_using_only_rpcs() {
    let t = Flow::start().await;
    let mut tracker = t.pair.tracker.tracker();
    let form = tracker
        .get_create_issue_config(pb::GetCreateIssueConfigRequest {
            integration_id: JIRA.into(),
            project_id: "10000".into(),
            issue_type_id: "1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let field = |name: &str| {
        form.fields
            .iter()
            .find(|f| f.name == name)
            .cloned()
            .unwrap()
    };
    let reporter = field("reporter");
    assert!(reporter.required);
    assert_eq!(reporter.kind(), pb::FieldKind::AsyncSelect);
    assert_eq!(reporter.search_field, "reporter");
    assert!(reporter.search_url.is_empty());
    assert!(!reporter.multiple);
    // The sprint is one sprint, although its schema says array.
    let sprint = field("customfield_10500");
    assert_eq!(sprint.search_field, "customfield_10500");
    assert!(!sprint.multiple);
    // The metadata came from the current, paged endpoints (the simulator
    // pages by 5: more than one page of fields).
    let pages = t.jira().requests_to(
        Method::GET,
        "/rest/api/2/issue/createmeta/10000/issuetypes/1",
    );
    assert!(pages.len() >= 2, "{} pages", pages.len());
    assert!(
        t.jira()
            .requests_to(Method::GET, "/rest/api/2/issue/createmeta")
            .is_empty()
    );

    let kim = t
        .search(&reporter.search_field, "kim", &form.project_id)
        .await
        .unwrap()
        .remove(0)
        .0;
    let sprint_1 = t
        .search(&sprint.search_field, "sprint 1", "")
        .await
        .unwrap()
        .remove(0)
        .0;
    let fields = prost_types::Struct {
        fields: [
            (
                "reporter".to_owned(),
                prost_types::Value {
                    kind: Some(prost_types::value::Kind::StringValue(kim.clone())),
                },
            ),
            (
                "customfield_10500".to_owned(),
                prost_types::Value {
                    kind: Some(prost_types::value::Kind::StringValue(sprint_1)),
                },
            ),
        ]
        .into(),
    };
    let created = tracker
        .create_issue(pb::CreateIssueRequest {
            integration_id: JIRA.into(),
            organization_id: t.org,
            group_ids: vec![t.groups[0]],
            project_id: form.project_id.clone(),
            issue_type_id: form.issue_type_id.clone(),
            title: "Checkout is broken".into(),
            fields: Some(fields),
            request_id: "form-1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.link_state(), pb::LinkState::Linked);
    let post = &t.jira().requests_to(Method::POST, "/rest/api/2/issue")[0];
    assert_eq!(post.body["fields"]["reporter"], json!({ "accountId": kim }));
    assert_eq!(post.body["fields"]["customfield_10500"], json!(1));
}

/// Priorities come from the issue type's own metadata, with Jira's default;
/// an integral number is sent as an integer.
#[tokio::test]
async fn priorities_come_from_the_issue_type_and_numbers_stay_integers() {
    let t = Flow::start().await;
    let mut tracker = t.pair.tracker.tracker();
    let form = tracker
        .get_create_issue_config(pb::GetCreateIssueConfigRequest {
            integration_id: JIRA.into(),
            project_id: "10000".into(),
            issue_type_id: "3".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let priority = form.fields.iter().find(|f| f.name == "priority").unwrap();
    let choices: Vec<(&str, &str)> = priority
        .choices
        .iter()
        .map(|c| (c.value.as_str(), c.label.as_str()))
        .collect();
    assert_eq!(choices, vec![("2", "High"), ("3", "Medium")]);
    assert_eq!(priority.default_value, "3");
    assert!(
        t.jira()
            .requests_to(Method::GET, "/rest/api/2/priority")
            .is_empty(),
        "the global list is not used when the issue type has its own"
    );
    let points = form
        .fields
        .iter()
        .find(|f| f.name == "customfield_10600")
        .unwrap();
    assert_eq!(points.kind(), pb::FieldKind::Number);

    tracker
        .create_issue(pb::CreateIssueRequest {
            integration_id: JIRA.into(),
            organization_id: t.org,
            group_ids: vec![t.groups[0]],
            project_id: "10000".into(),
            issue_type_id: "3".into(),
            title: "Points".into(),
            fields: Some(prost_types::Struct {
                fields: [
                    (
                        "customfield_10600".to_owned(),
                        prost_types::Value {
                            kind: Some(prost_types::value::Kind::NumberValue(12.0)),
                        },
                    ),
                    (
                        "reporter".to_owned(),
                        prost_types::Value {
                            kind: Some(prost_types::value::Kind::StringValue("acc-jess".into())),
                        },
                    ),
                ]
                .into(),
            }),
            request_id: "points-1".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let post = &t.jira().requests_to(Method::POST, "/rest/api/2/issue")[0];
    let points = &post.body["fields"]["customfield_10600"];
    assert!(points.is_i64(), "{points}");
    assert_eq!(points, &json!(12));
}

/// Data Center before 8.4 has only the deprecated createmeta: the form still
/// builds.
#[tokio::test]
async fn the_form_falls_back_to_the_deprecated_createmeta() {
    let t = Flow::start().await;
    t.jira().legacy_createmeta(true);
    let form = t
        .pair
        .tracker
        .tracker()
        .get_create_issue_config(pb::GetCreateIssueConfigRequest {
            integration_id: JIRA.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(form.fields.iter().any(|f| f.name == "reporter"));
    assert_eq!(
        t.jira()
            .requests_to(Method::GET, "/rest/api/2/issue/createmeta")
            .len(),
        1
    );
}

/// The integration's link template puts a line pointing back at each group
/// first in the description; the organization's last choices pre-fill its
/// next form, and the acting user's reporter theirs.
#[tokio::test]
async fn back_links_and_remembered_defaults() {
    let t = Flow::start().await;
    let mut tracker = t.pair.tracker.tracker();
    tracker
        .update_integration(pb::UpdateIntegrationRequest {
            integration_id: JIRA.into(),
            group_link_template: Some(
                "https://errors.example.com/{organization}/issues/{group_id}".into(),
            ),
            ..Default::default()
        })
        .await
        .unwrap();
    let bad = tracker
        .update_integration(pb::UpdateIntegrationRequest {
            integration_id: JIRA.into(),
            group_link_template: Some("https://errors.example.com/issues".into()),
            ..Default::default()
        })
        .await;
    assert_error(bad, Code::InvalidArgument, Some("group_link_template"));

    let text = |s: &str| prost_types::Value {
        kind: Some(prost_types::value::Kind::StringValue(s.into())),
    };
    tracker
        .create_issue(pb::CreateIssueRequest {
            integration_id: JIRA.into(),
            organization_id: t.org,
            group_ids: t.groups.clone(),
            project_id: "10001".into(),
            issue_type_id: "3".into(),
            title: "Remember me".into(),
            description: "Seen 12 times".into(),
            fields: Some(prost_types::Struct {
                fields: [
                    ("priority".to_owned(), text("2")),
                    ("labels".to_owned(), text("checkout, web")),
                    ("reporter".to_owned(), text("acc-kim")),
                ]
                .into(),
            }),
            request_id: "remember-1".into(),
            acting_user_id: 7,
        })
        .await
        .unwrap();
    let post = &t.jira().requests_to(Method::POST, "/rest/api/2/issue")[0];
    let org = t.org;
    let (g1, g2) = (t.groups[0], t.groups[1]);
    assert_eq!(
        post.body["fields"]["description"],
        json!(format!(
            "Error group: [group {g1}|https://errors.example.com/{org}/issues/{g1}]\n\
             Error group: [group {g2}|https://errors.example.com/{org}/issues/{g2}]\n\nSeen 12 times"
        ))
    );

    let form = |acting_user_id: i64| pb::GetCreateIssueConfigRequest {
        integration_id: JIRA.into(),
        organization_id: org,
        acting_user_id,
        ..Default::default()
    };
    let mine = tracker
        .get_create_issue_config(form(7))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (mine.project_id.as_str(), mine.issue_type_id.as_str()),
        ("10001", "3")
    );
    let default = |fields: &[pb::FormField], name: &str| {
        fields
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.default_value.clone())
            .unwrap_or_default()
    };
    assert_eq!(default(&mine.fields, "priority"), "2");
    assert_eq!(default(&mine.fields, "labels"), "checkout, web");
    assert_eq!(default(&mine.fields, "reporter"), "acc-kim");
    let reporter = mine.fields.iter().find(|f| f.name == "reporter").unwrap();
    assert_eq!(reporter.choices[0].label, "kim");
    // Another user of the organization: its defaults, not the reporter.
    let theirs = tracker
        .get_create_issue_config(form(8))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(theirs.project_id, "10001");
    assert_eq!(default(&theirs.fields, "reporter"), "");
    // A project given explicitly wins.
    let explicit = tracker
        .get_create_issue_config(pb::GetCreateIssueConfigRequest {
            project_id: "10000".into(),
            ..form(7)
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(explicit.project_id, "10000");
}

/// Issue 16: linking a key Jira does not have is NOT_FOUND and links nothing;
/// linking an existing one links every group and posts the comment once, even
/// when the call is repeated.
#[tokio::test]
async fn linking_an_existing_issue_links_every_group_and_comments_once() {
    let t = Flow::start().await;
    let mut tracker = t.pair.tracker.tracker();
    let link = |key: &str, request_id: &str| pb::LinkIssueRequest {
        integration_id: JIRA.into(),
        organization_id: t.org,
        group_ids: t.groups.clone(),
        key: key.into(),
        comment: "Linked 2 error groups".into(),
        request_id: request_id.into(),
    };
    let missing = tracker.link_issue(link("EX-404", "link-0")).await;
    let status = assert_error(missing, Code::NotFound, None);
    use tonic_types::StatusExt as _;
    assert_eq!(
        status.get_details_error_info().unwrap().reason,
        "JIRA_NOT_FOUND"
    );
    for group in &t.groups {
        assert!(
            t.pair
                .assignment
                .group(*group)
                .await
                .linked_issues
                .is_empty()
        );
    }

    let config = tracker
        .get_link_issue_config(pb::GetLinkIssueConfigRequest {
            integration_id: JIRA.into(),
            organization_id: t.org,
            group_ids: t.groups.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let names: Vec<&str> = config.fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, vec!["externalIssue", "comment"]);
    assert_eq!(config.fields[0].search_field, "externalIssue");
    assert!(config.fields[0].required);

    let first = tracker
        .link_issue(link("EX-100", "link-1"))
        .await
        .unwrap()
        .into_inner();
    let again = tracker
        .link_issue(link("EX-100", "link-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, again);
    assert_eq!(first.link_state(), pb::LinkState::Linked);
    assert_eq!(first.comment_state(), pb::CommentState::Posted);
    let issue = first.issue.unwrap();
    // Title and URL come from Jira.
    assert_eq!(issue.title, "this is a test issue summary");
    assert_eq!(issue.url, format!("{}/browse/EX-100", t.jira().base_url()));
    assert_eq!(t.jira().comments("EX-100"), vec!["Linked 2 error groups"]);
    for group in &t.groups {
        let linked = t.pair.assignment.group(*group).await.linked_issues;
        assert_eq!(linked.len(), 1);
        assert_eq!(linked[0].key, "EX-100");
    }
    // A different call under the same request id is refused.
    let mut other = link("EX-100", "link-1");
    other.comment = "something else".into();
    assert_error(tracker.link_issue(other).await, Code::InvalidArgument, None);
}

/// A comment Jira did not confirm stays pending; the repeat finds it on the
/// issue (by its property) instead of posting it twice.
#[tokio::test]
async fn a_comment_whose_answer_was_lost_is_not_posted_twice() {
    let t = Flow::start().await;
    t.jira().delay_answers(
        Method::POST,
        "/rest/api/2/issue/EX-100/comment",
        "",
        Some(std::time::Duration::from_secs(30)),
    );
    let request = pb::LinkIssueRequest {
        integration_id: JIRA.into(),
        organization_id: t.org,
        group_ids: vec![t.groups[0]],
        key: "EX-100".into(),
        comment: "Linked from the tracker".into(),
        request_id: "link-lost".into(),
    };
    // The tracker's Jira deadline (5 s in tests) passes before the answer.
    let first = t
        .pair
        .tracker
        .tracker()
        .link_issue(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.comment_state(), pb::CommentState::Pending);
    assert_eq!(
        t.jira().comments("EX-100").len(),
        1,
        "Jira took the comment"
    );
    t.jira()
        .delay_answers(Method::POST, "/rest/api/2/issue/EX-100/comment", "", None);
    let second = t
        .pair
        .tracker
        .tracker()
        .link_issue(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.comment_state(), pb::CommentState::Posted);
    assert_eq!(t.jira().comments("EX-100").len(), 1, "not posted twice");
}

/// Issue 16: a deletion webhook unlinks the issue's groups (recording it) and
/// retires the record; its redelivery does nothing; a later update webhook for
/// that issue id changes no group.
#[tokio::test]
async fn a_deleted_issue_is_unlinked_once_and_later_events_reach_nothing() {
    let t = Flow::start().await;
    let app = &t.pair.assignment;
    app.link(t.org, JIRA, "EX-100", "20100", &t.groups).await;
    t.jira().delete_in_jira("EX-100");
    let deleted = system_tests::wait::until(
        "the deletion to be applied",
        system_tests::wait::DEFAULT_DEADLINE,
        || async {
            let deliveries = t.pair.tracker.deliveries().await;
            deliveries
                .into_iter()
                .find(|d| d.state() == pb::DeliveryState::Delivered)
        },
    )
    .await;
    assert!(
        deleted.actions[0]
            .summary
            .contains("unlinked 2 group(s) in 1 organization(s)"),
        "{:?}",
        deleted.actions
    );
    for group in &t.groups {
        assert!(app.group(*group).await.linked_issues.is_empty());
        let kinds: Vec<assignment::ActivityKind> = app
            .activities(*group)
            .await
            .iter()
            .map(|a| a.kind())
            .collect();
        assert_eq!(
            kinds,
            vec![
                assignment::ActivityKind::Linked,
                assignment::ActivityKind::Unlinked
            ]
        );
    }
    let records = app
        .external_issues()
        .list_external_issues(assignment::ListExternalIssuesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .external_issues;
    assert!(records.is_empty());

    // The same deletion again (Jira redelivers with a new identifier).
    let body = serde_json::to_vec(&json!({
        "webhookEvent": "jira:issue_deleted",
        "issue": { "id": "20100", "key": "EX-100", "fields": {} },
    }))
    .unwrap();
    let (status, json) = t
        .pair
        .tracker
        .post_webhook(JIRA, &body, Some("again"))
        .await;
    assert_eq!(status, 200, "{json}");
    let again = t
        .pair
        .tracker
        .settled(json["delivery_id"].as_i64().unwrap())
        .await;
    assert!(
        again.actions[0].summary.contains("nothing to do"),
        "{:?}",
        again.actions
    );
    // A later update about the issue id reaches no group.
    let mut update = jira_sim::fixture_json("edit_issue_assignee_payload.json");
    update["issue"]["id"] = "20100".into();
    update["issue"]["key"] = "EX-100".into();
    let (status, json) = t
        .pair
        .tracker
        .post_webhook(JIRA, &serde_json::to_vec(&update).unwrap(), Some("later"))
        .await;
    assert_eq!(status, 200, "{json}");
    let later = t
        .pair
        .tracker
        .settled(json["delivery_id"].as_i64().unwrap())
        .await;
    assert!(
        later.actions[0].group_effects.is_empty(),
        "{:?}",
        later.actions
    );
    for group in &t.groups {
        assert_eq!(app.activities(*group).await.len(), 2);
    }
}
