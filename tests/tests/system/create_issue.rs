//! Creating Jira issues (DESIGN.md §2 "Create issue", issue 5): the POST body
//! Sentry's cases expect, Jira's errors, exactly-once creation, the durable link,
//! authentication per mode, and secrets that never show.

use std::time::Duration;

use axum::http::Method;
use proto::assignment::v1 as assignment;
use proto::tracker::v1 as pb;
use serde_json::json;
use system_tests::fixtures::{assert_error, inbound_on};
use system_tests::pair::API_TOKEN;
use system_tests::{AssignmentApp, JiraSim, Pair, TestDatabase, TrackerApp, wait};
use tonic::Code;
use tonic_types::StatusExt as _;

const JIRA: &str = "acme-jira";

/// An organization with two groups and the integration installed.
async fn tenant(assignment: &AssignmentApp) -> (i64, Vec<i64>) {
    let org = assignment.create_org("acme").await;
    let project = assignment.create_project(org, "web").await;
    let g1 = assignment
        .create_group(project, "TypeError in checkout")
        .await;
    let g2 = assignment.create_group(project, "TypeError in cart").await;
    assignment.install(org, JIRA, inbound_on()).await;
    (org, vec![g1, g2])
}

fn struct_of(value: serde_json::Value) -> Option<prost_types::Struct> {
    fn convert(v: serde_json::Value) -> prost_types::Value {
        use prost_types::value::Kind;
        let kind = match v {
            serde_json::Value::Null => Kind::NullValue(0),
            serde_json::Value::Bool(b) => Kind::BoolValue(b),
            serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap()),
            serde_json::Value::String(s) => Kind::StringValue(s),
            serde_json::Value::Array(items) => Kind::ListValue(prost_types::ListValue {
                values: items.into_iter().map(convert).collect(),
            }),
            serde_json::Value::Object(map) => Kind::StructValue(prost_types::Struct {
                fields: map.into_iter().map(|(k, v)| (k, convert(v))).collect(),
            }),
        };
        prost_types::Value { kind: Some(kind) }
    }
    match convert(value).kind {
        Some(prost_types::value::Kind::StructValue(s)) => Some(s),
        _ => None,
    }
}

fn create_request(
    org: i64,
    groups: &[i64],
    fields: serde_json::Value,
    request_id: &str,
) -> pb::CreateIssueRequest {
    pb::CreateIssueRequest {
        integration_id: JIRA.into(),
        organization_id: org,
        group_ids: groups.to_vec(),
        project_id: "10000".into(),
        issue_type_id: "1".into(),
        title: "example summary".into(),
        description: "example bug report".into(),
        fields: struct_of(fields),
        request_id: request_id.into(),
        acting_user_id: 0,
    }
}

#[tokio::test]
async fn the_post_body_is_shaped_as_sentry_shapes_it_and_the_groups_are_linked() {
    let pair = Pair::start().await;
    pair.create_integration(JIRA, false).await;
    let (org, groups) = tenant(&pair.assignment).await;

    let response = pair
        .tracker
        .tracker()
        .create_issue(create_request(
            org,
            &groups,
            json!({
                "customfield_10200": "sad",
                "customfield_10300": ["Feature 1", "Feature 2"],
                "labels": "fuzzy , ,  bunnies",
                "reporter": "5b10a2844c20165700ede21g",
                "customfield_77777": "not on the create screen",
            }),
            "create-1",
        ))
        .await
        .unwrap()
        .into_inner();

    let posts = pair.jira.requests_to(Method::POST, "/rest/api/2/issue");
    assert_eq!(posts.len(), 1);
    let fields = &posts[0].body["fields"];
    let labels: Vec<&str> = fields["labels"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l.as_str())
        .filter(|l| !l.starts_with("jirasync-"))
        .collect();
    assert_eq!(labels, vec!["fuzzy", "bunnies"]);
    assert_eq!(fields["customfield_10200"], json!({"value": "sad"}));
    assert_eq!(
        fields["customfield_10300"],
        json!([{"value": "Feature 1"}, {"value": "Feature 2"}])
    );
    assert_eq!(
        fields["reporter"],
        json!({"accountId": "5b10a2844c20165700ede21g"})
    );
    assert_eq!(fields["project"], json!({"id": "10000"}));
    assert_eq!(fields["issuetype"], json!({"id": "1"}));
    assert_eq!(fields["summary"], json!("example summary"));
    assert!(
        fields.get("customfield_77777").is_none(),
        "fields not in createmeta are not sent"
    );

    let issue = response.issue.clone().unwrap();
    assert_eq!(issue.key, "EX-1");
    assert_eq!(issue.title, "example summary");
    assert_eq!(issue.url, format!("{}/browse/EX-1", pair.jira.base_url()));
    assert_eq!(response.link_state(), pb::LinkState::Linked);
    for group in groups {
        let linked = pair.assignment.group(group).await.linked_issues;
        assert_eq!(linked[0].key, "EX-1");
        assert_eq!(linked[0].integration_id, JIRA);
    }
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field_and_nothing_is_posted() {
    let pair = Pair::start().await;
    pair.create_integration(JIRA, false).await;
    let (org, groups) = tenant(&pair.assignment).await;
    let mut client = pair.tracker.tracker();

    let missing = pb::CreateIssueRequest {
        project_id: String::new(),
        issue_type_id: String::new(),
        ..create_request(org, &groups, json!({}), "")
    };
    let status = assert_error(
        client.create_issue(missing).await,
        Code::InvalidArgument,
        Some("project_id"),
    );
    let bad = status.get_details_bad_request().unwrap();
    let message = |field: &str| {
        bad.field_violations
            .iter()
            .find(|v| v.field == field)
            .map(|v| v.description.clone())
            .unwrap()
    };
    assert_eq!(message("project_id"), "Jira project is required");
    assert_eq!(message("issue_type_id"), "Issue type is required.");

    let bad_number = create_request(org, &groups, json!({"customfield_10500": "abcd"}), "");
    let status = assert_error(
        client.create_issue(bad_number).await,
        Code::InvalidArgument,
        Some("fields.customfield_10500"),
    );
    assert!(
        status.message().contains("Sprint"),
        "names the field: {status:?}"
    );

    let mut long_title = create_request(org, &groups, json!({}), "");
    long_title.title = "x".repeat(300);
    client.create_issue(long_title).await.unwrap();
    let posts = pair.jira.requests_to(Method::POST, "/rest/api/2/issue");
    assert_eq!(posts.len(), 1, "only the valid request reached Jira");
    assert_eq!(
        posts[0].body["fields"]["summary"].as_str().unwrap().len(),
        255
    );
}

#[tokio::test]
async fn jiras_errors_become_clear_grpc_errors() {
    let pair = Pair::start().await;
    pair.create_integration(JIRA, false).await;
    let (org, groups) = tenant(&pair.assignment).await;
    let mut client = pair.tracker.tracker();
    let jira = &pair.jira;

    jira.fail_next(
        Method::POST,
        "/rest/api/2/issue",
        1,
        400,
        &[("content-type", "application/json")],
        r#"{"errorMessages":["Check the fields"],"errors":{"customfield_10200":"Option id 'x' is not valid","summary":"You must specify a summary of the issue."}}"#,
    );
    let status = assert_error(
        client
            .create_issue(create_request(org, &groups, json!({}), ""))
            .await,
        Code::InvalidArgument,
        Some("fields.customfield_10200"),
    );
    let fields: Vec<String> = status
        .get_details_bad_request()
        .unwrap()
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert!(fields.contains(&"title".to_owned()));
    assert!(status.message().contains("Check the fields"));

    jira.fail_next(Method::POST, "/rest/api/2/issue", 1, 401, &[], "");
    let status = assert_error(
        client
            .create_issue(create_request(org, &groups, json!({}), ""))
            .await,
        Code::FailedPrecondition,
        None,
    );
    assert!(status.message().contains("credentials"));
    assert_eq!(
        status.get_details_error_info().unwrap().reason,
        "JIRA_CREDENTIALS_REJECTED"
    );

    jira.fail_next(
        Method::POST,
        "/rest/api/2/issue",
        1,
        503,
        &[("content-type", "text/html")],
        "<html><head><title>Atlassian Cloud Notifications - Product Unavailable</title></head><body>Our team is working on it</body></html>",
    );
    let status = assert_error(
        client
            .create_issue(create_request(org, &groups, json!({}), ""))
            .await,
        Code::Unavailable,
        None,
    );
    assert!(
        status.message().contains("Product Unavailable"),
        "{status:?}"
    );
    assert!(!status.message().contains("<html>"));
    assert!(
        jira.created_issues().len() <= 1,
        "a 503 create is not blindly repeated"
    );
}

#[tokio::test]
async fn a_rate_limited_create_is_retried_after_retry_after() {
    let pair = Pair::start().await;
    pair.create_integration(JIRA, false).await;
    let (org, groups) = tenant(&pair.assignment).await;
    pair.jira.fail_next(
        Method::POST,
        "/rest/api/2/issue",
        1,
        429,
        &[("retry-after", "1")],
        r#"{"errorMessages":["Rate limit exceeded"]}"#,
    );
    let started = std::time::Instant::now();
    let response = pair
        .tracker
        .tracker()
        .create_issue(create_request(org, &groups, json!({}), "rate-limited"))
        .await
        .unwrap()
        .into_inner();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );
    assert_eq!(response.issue.unwrap().key, "EX-1");
    assert_eq!(
        pair.jira
            .requests_to(Method::POST, "/rest/api/2/issue")
            .len(),
        2
    );
    assert_eq!(pair.jira.created_issues().len(), 1);
}

#[tokio::test]
async fn a_repeated_request_id_posts_once() {
    let pair = Pair::start().await;
    pair.create_integration(JIRA, false).await;
    let (org, groups) = tenant(&pair.assignment).await;
    let mut client = pair.tracker.tracker();
    let request = create_request(org, &groups, json!({"labels": "a"}), "5d8c1a2e-once");
    let first = client
        .create_issue(request.clone())
        .await
        .unwrap()
        .into_inner();
    let second = client
        .create_issue(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, second);
    assert_eq!(
        pair.jira
            .requests_to(Method::POST, "/rest/api/2/issue")
            .len(),
        1
    );

    let mut other = request;
    other.title = "a different issue".into();
    assert_error(
        client.create_issue(other).await,
        Code::InvalidArgument,
        Some("request_id"),
    );
    assert_eq!(
        pair.jira
            .requests_to(Method::POST, "/rest/api/2/issue")
            .len(),
        1
    );
}

#[tokio::test]
async fn a_create_that_times_out_after_jira_created_the_issue_is_not_created_twice() {
    let assignment_db = TestDatabase::fresh().await;
    let tracker_db = TestDatabase::fresh().await;
    let jira = JiraSim::start().await;
    let assignment = AssignmentApp::spawn(assignment_db.url()).await;
    let mut config = tracker_service::Config::for_tests(
        tracker_db.url(),
        format!("http://{}", assignment.grpc_addr),
    );
    config.jira_timeout = Duration::from_millis(500);
    config.unknown_outcome_grace = Duration::ZERO;
    let tracker = TrackerApp::spawn_with(config).await;
    let pair_jira = jira.clone();
    let (org, groups) = tenant(&assignment).await;
    create_integration(&tracker, &jira).await;

    // Jira creates the issue but answers too late: the tracker's request times
    // out, and the search index does not know the issue yet on the first look.
    jira.delay_create_answers(Some(Duration::from_secs(2)));
    jira.fail_next(
        Method::GET,
        "/rest/api/2/search",
        1,
        200,
        &[("content-type", "application/json")],
        r#"{"issues":[]}"#,
    );
    let request = create_request(org, &groups, json!({}), "timeout-then-retry");
    let first = tracker.tracker().create_issue(request.clone()).await;
    let status = assert_error(first, Code::Unavailable, None);
    assert_eq!(
        status.get_details_error_info().unwrap().reason,
        "CREATE_OUTCOME_UNKNOWN"
    );
    assert_eq!(pair_jira.created_issues().len(), 1);

    // The retry finds the issue by its marker instead of creating another.
    jira.delay_create_answers(None);
    let retried = tracker
        .tracker()
        .create_issue(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retried.issue.as_ref().unwrap().key, "EX-1");
    assert_eq!(pair_jira.created_issues().len(), 1);
    assert_eq!(
        pair_jira
            .requests_to(Method::POST, "/rest/api/2/issue")
            .len(),
        1
    );
    assert_eq!(retried.link_state(), pb::LinkState::Linked);
}

async fn create_integration(tracker: &TrackerApp, jira: &JiraSim) {
    tracker
        .tracker()
        .create_integration(pb::CreateIntegrationRequest {
            integration_id: JIRA.into(),
            display_name: "Acme Jira".into(),
            base_url: jira.base_url(),
            credentials: Some(pb::Credentials {
                credential: Some(pb::credentials::Credential::ApiToken(
                    pb::ApiTokenCredential {
                        account_email: "bot@example.com".into(),
                        api_token: API_TOKEN.into(),
                    },
                )),
            }),
            webhook_secret: "s3cret-webhook-0123".into(),
            email_api_allowed: false,
            request_id: String::new(),
            group_link_template: String::new(),
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn the_link_waits_for_the_assignment_service_and_is_never_lost() {
    let assignment_db = TestDatabase::fresh().await;
    let tracker_db = TestDatabase::fresh().await;
    let jira = JiraSim::start().await;
    // Set the tenant up, then stop the assignment service.
    let assignment = AssignmentApp::spawn(assignment_db.url()).await;
    let proxy = system_tests::proxy::CuttableProxy::start(assignment.grpc_addr).await;
    let (org, groups) = tenant(&assignment).await;
    assignment.stop().await;

    let tracker = TrackerApp::spawn(tracker_db.url(), proxy.addr).await;
    create_integration(&tracker, &jira).await;
    let created = tracker
        .tracker()
        .create_issue(create_request(org, &groups, json!({}), "link-later"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.issue.as_ref().unwrap().key, "EX-1");
    assert_eq!(created.link_state(), pb::LinkState::Pending);

    // Back, on the same data: the linker finishes the job.
    let assignment = AssignmentApp::spawn(assignment_db.url()).await;
    proxy.retarget(assignment.grpc_addr);
    let linked = wait::until(
        "the pending link to be done",
        wait::DEFAULT_DEADLINE,
        || {
            let mut client = tracker.tracker();
            async move {
                let state = client
                    .get_issue_creation(pb::GetIssueCreationRequest {
                        request_id: "link-later".into(),
                    })
                    .await
                    .unwrap()
                    .into_inner();
                (state.link_state() == pb::LinkState::Linked).then_some(state)
            }
        },
    )
    .await;
    assert_eq!(linked.group_ids, groups);
    for group in &groups {
        assert_eq!(assignment.group(*group).await.linked_issues[0].key, "EX-1");
    }
    let links: Vec<_> = assignment
        .activities(groups[0])
        .await
        .into_iter()
        .filter(|a| a.kind() == assignment::ActivityKind::Linked)
        .collect();
    assert_eq!(links.len(), 1, "linked exactly once");
}

#[tokio::test]
async fn each_auth_mode_sends_the_right_authorization() {
    let pair = Pair::start().await;
    let mut client = pair.tracker.tracker();
    let modes = [
        (
            "cloud",
            pb::credentials::Credential::ApiToken(pb::ApiTokenCredential {
                account_email: "bot@example.com".into(),
                api_token: "tok".into(),
            }),
        ),
        (
            "server",
            pb::credentials::Credential::PersonalAccessToken(pb::PersonalAccessTokenCredential {
                token: "pat-123".into(),
            }),
        ),
        (
            "connect",
            pb::credentials::Credential::Connect(pb::ConnectCredential {
                client_key: "jira:client-1".into(),
                shared_secret: "shared-secret".into(),
            }),
        ),
    ];
    for (id, credential) in modes {
        client
            .create_integration(pb::CreateIntegrationRequest {
                integration_id: id.into(),
                display_name: String::new(),
                base_url: pair.jira.base_url(),
                credentials: Some(pb::Credentials {
                    credential: Some(credential),
                }),
                webhook_secret: "s3cret-webhook-0123".into(),
                email_api_allowed: false,
                request_id: String::new(),
                group_link_template: String::new(),
            })
            .await
            .unwrap();
        client
            .get_create_issue_config(pb::GetCreateIssueConfigRequest {
                integration_id: id.into(),
                project_id: "10000".into(),
                issue_type_id: "1".into(),
                organization_id: 0,
                acting_user_id: 0,
            })
            .await
            .unwrap();
    }
    let requests = pair.jira.requests();
    let auth_of = |path: &str| -> Vec<String> {
        requests
            .iter()
            .filter(|r| r.path == path)
            .map(|r| r.headers["authorization"].to_str().unwrap().to_owned())
            .collect()
    };
    let auths = auth_of("/rest/api/2/project/search");
    assert_eq!(auths.len(), 3);
    use base64::Engine as _;
    assert_eq!(
        auths[0],
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("bot@example.com:tok")
        )
    );
    assert_eq!(auths[1], "Bearer pat-123");
    let token = auths[2]
        .strip_prefix("JWT ")
        .expect("Connect requests carry a JWT");
    let claims = tracker_service::jira::connect_jwt::unverified_claims(token).unwrap();
    let request = requests
        .iter()
        .find(|r| {
            r.path == "/rest/api/2/project/search"
                && r.headers["authorization"]
                    .to_str()
                    .unwrap()
                    .starts_with("JWT")
        })
        .unwrap();
    assert_eq!(
        claims.qsh,
        tracker_service::jira::connect_jwt::query_hash(
            "GET",
            &request.path,
            &request.query,
            tracker_service::jira::connect_jwt::BlankValues::Drop
        )
    );
    tracker_service::jira::connect_jwt::verify_request(
        token,
        "shared-secret",
        "GET",
        &request.path,
        &request.query,
        chrono::Utc::now().timestamp(),
    )
    .expect("the JWT verifies with the shared secret");
}

#[tokio::test]
async fn the_create_form_follows_sentrys_config() {
    let pair = Pair::start().await;
    pair.create_integration(JIRA, false).await;
    let config = pair
        .tracker
        .tracker()
        .get_create_issue_config(pb::GetCreateIssueConfigRequest {
            integration_id: JIRA.into(),
            project_id: String::new(),
            issue_type_id: String::new(),
            organization_id: 0,
            acting_user_id: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (config.project_id.as_str(), config.issue_type_id.as_str()),
        ("10000", "1")
    );
    let kinds: Vec<(String, pb::FieldKind)> = config
        .fields
        .iter()
        .map(|f| (f.name.clone(), f.kind()))
        .collect();
    let expect = |name: &str, kind: pb::FieldKind| {
        assert!(
            kinds.contains(&(name.to_owned(), kind)),
            "{name} should be {kind:?} in {kinds:?}"
        );
    };
    expect("customfield_10200", pb::FieldKind::Select);
    expect("customfield_10300", pb::FieldKind::MultiSelect);
    expect("customfield_10400", pb::FieldKind::AsyncSelect);
    expect("customfield_10500", pb::FieldKind::AsyncSelect);
    expect("parent", pb::FieldKind::AsyncSelect);
    expect("reporter", pb::FieldKind::AsyncSelect);
    expect("labels", pb::FieldKind::Text);
    let mood = config
        .fields
        .iter()
        .find(|f| f.name == "customfield_10200")
        .unwrap();
    assert_eq!(mood.label, "Mood");
    let choices: Vec<&str> = mood.choices.iter().map(|c| c.value.as_str()).collect();
    assert_eq!(choices, vec!["sad", "happy"]);
    let names: Vec<&str> = config.fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        &names[..4],
        &["project", "title", "description", "issuetype"]
    );
}

#[tokio::test(flavor = "current_thread")]
async fn no_secret_appears_in_responses_or_logs() {
    use std::sync::{Arc, Mutex};
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // Everything in this test runs on this thread (current-thread runtime), so
    // this subscriber sees every log line of both services and the clients.
    let _guard = tracing::subscriber::set_default(subscriber);

    let pair = Pair::start().await;
    let created = pair.create_integration(JIRA, true).await;
    let (org, groups) = tenant(&pair.assignment).await;
    let mut client = pair.tracker.tracker();
    let fetched = client
        .get_integration(pb::GetIntegrationRequest {
            integration_id: JIRA.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let listed = client
        .list_integrations(pb::ListIntegrationsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let updated = client
        .update_integration(pb::UpdateIntegrationRequest {
            integration_id: JIRA.into(),
            webhook_secret: Some("rotated-webhook-secret-99".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    client
        .create_issue(create_request(org, &groups, json!({}), "secret-check"))
        .await
        .unwrap();
    let body = jira_sim::fixture("edit_issue_assignee_payload.json");
    let _ = pair
        .tracker
        .post_webhook(JIRA, &body, Some("secret-check-delivery"))
        .await;

    let responses = format!("{created:?} {fetched:?} {listed:?} {updated:?}");
    let logs = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    assert!(!logs.is_empty(), "the scenario logged something");
    for secret in [
        API_TOKEN,
        system_tests::pair::WEBHOOK_SECRET,
        "rotated-webhook-secret-99",
    ] {
        assert!(!responses.contains(secret), "{secret} in an RPC response");
        assert!(!logs.contains(secret), "{secret} in the logs");
    }
    use base64::Engine as _;
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("bot@example.com:{API_TOKEN}"));
    assert!(!logs.contains(&basic), "the Basic credential in the logs");
    assert!(fetched.integration.unwrap().webhook_secret_set);
}

#[tokio::test]
async fn a_success_without_an_id_is_an_unknown_outcome_resolved_without_a_second_issue() {
    let pair = Pair::start().await;
    pair.create_integration(JIRA, false).await;
    let (org, groups) = tenant(&pair.assignment).await;
    // Jira creates the issue but answers 201 with a body lacking `id` (valid
    // against its schema: CreatedIssue requires nothing)...
    pair.jira.answer_next_create_with(201, "{}");
    let request = create_request(org, &groups, json!({}), "odd-answer-1");
    let resolved = pair
        .tracker
        .tracker()
        .create_issue(request.clone())
        .await
        .unwrap()
        .into_inner();
    // ...which is an unknown outcome, resolved at once by the marker search.
    assert_eq!(resolved.issue.unwrap().key, "EX-1");

    // When the search cannot tell yet, the creation is kept and reported as
    // unknown; the retry finds the issue instead of posting a second one.
    pair.jira.answer_next_create_with(201, r#"{"key": "EX-2"}"#);
    pair.jira
        .fail_next(Method::GET, "/rest/api/2/search", 5, 500, &[], "");
    let request = create_request(org, &groups, json!({}), "odd-answer-2");
    let first = pair.tracker.tracker().create_issue(request.clone()).await;
    let status = assert_error(first, Code::Unavailable, None);
    assert_eq!(
        status.get_details_error_info().unwrap().reason,
        "CREATE_OUTCOME_UNKNOWN"
    );
    assert!(
        status.message().contains("HTTP 201"),
        "{}",
        status.message()
    );
    // The retry finds the issue by its marker instead of posting again.
    let created = pair
        .tracker
        .tracker()
        .create_issue(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.issue.unwrap().key, "EX-2");
    assert_eq!(pair.jira.created_issues().len(), 2);
    assert_eq!(
        pair.jira
            .requests_to(Method::POST, "/rest/api/2/issue")
            .len(),
        2,
        "one POST per creation"
    );
}

#[tokio::test]
async fn errors_keep_only_an_excerpt_of_what_jira_sent() {
    let pair = Pair::start().await;
    pair.create_integration(JIRA, false).await;
    let huge = format!("\"{}\"", "x".repeat(300_000));
    pair.jira.fail_next(
        Method::GET,
        "/rest/api/2/project/search",
        1,
        200,
        &[],
        &huge,
    );
    let failed = pair
        .tracker
        .tracker()
        .get_create_issue_config(pb::GetCreateIssueConfigRequest {
            integration_id: JIRA.into(),
            ..Default::default()
        })
        .await;
    let status = assert_error(failed, Code::Unavailable, None);
    assert!(
        status.message().len() < 1000,
        "{} bytes of message",
        status.message().len()
    );
    let huge_field_error = json!({"errors": {"summary": "y".repeat(100_000)}}).to_string();
    pair.jira.fail_next(
        Method::POST,
        "/rest/api/2/issue",
        1,
        400,
        &[],
        &huge_field_error,
    );
    let (org, groups) = tenant(&pair.assignment).await;
    let refused = pair
        .tracker
        .tracker()
        .create_issue(create_request(org, &groups, json!({}), "huge-error-1"))
        .await;
    let status = assert_error(refused, Code::InvalidArgument, Some("title"));
    assert!(status.message().len() < 1000);
    let violation = &status.get_details_bad_request().unwrap().field_violations[0];
    assert!(violation.description.len() < 1000);
}
