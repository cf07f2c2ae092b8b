//! Group commit reuses its prepared statements whatever the groups' sizes
//! (service_runtime::shapes): a statement over a group's rows has one text per
//! power of two, so once each has been seen, no group of any size makes the
//! connection parse, plan and describe a statement again. PostgreSQL only:
//! its sessions list their prepared statements (SQLite's do not), and it is
//! where a new text costs a round trip more.

use assignment_service::domain::Email;
use assignment_service::external_issues::IssueRef;
use assignment_service::inbound_sync::{
    AssigneeCall, AssigneeChange, AssigneeTarget, sync_assignee_many,
};
use sea_orm::{ConnectionTrait as _, DbBackend, Statement};
use service_runtime::database::{Database, PoolSettings};
use service_runtime::ids::{IntegrationId, IssueKey};
use system_tests::fixtures::inbound_on;
use system_tests::{AssignmentApp, TestDatabase};

const JIRA: &str = "acme-jira";
/// Issues (one group each) and the largest group of calls.
const ISSUES: usize = 48;
/// Users the calls assign, in turn.
const USERS: usize = 6;

/// The highest statement number the session gave so far (sqlx names its
/// prepared statements `sqlx_s_<n>`, counting up per connection).
async fn statements_prepared(db: &Database) -> i64 {
    db.conn()
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT COALESCE(max(substring(name FROM 8)::bigint), 0) AS n \
             FROM pg_prepared_statements WHERE name LIKE 'sqlx\\_s\\_%'",
        ))
        .await
        .unwrap()
        .expect("one row")
        .try_get("", "n")
        .unwrap()
}

/// The statements the session prepared after number `after`.
async fn prepared_after(db: &Database, after: i64) -> Vec<String> {
    db.conn()
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT statement FROM pg_prepared_statements WHERE name LIKE 'sqlx\\_s\\_%' \
             AND substring(name FROM 8)::bigint > $1 AND statement NOT LIKE '%pg_prepared%' \
             ORDER BY substring(name FROM 8)::bigint",
            [after.into()],
        ))
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get::<String>("", "statement").unwrap())
        .collect()
}

/// Groups of every size from 1 to [`ISSUES`] (in `sizes` order), each call
/// reassigning its issue's group to the next user of round `round`.
async fn apply_groups(db: &Database, sizes: impl Iterator<Item = usize>, round: usize) {
    let integration = IntegrationId::parse(JIRA).unwrap();
    for size in sizes {
        let calls: Vec<AssigneeCall> = (0..size)
            .map(|i| AssigneeCall {
                change: AssigneeChange {
                    issue: IssueRef {
                        integration_id: integration.clone(),
                        key: Some(IssueKey::parse(&format!("APP-{}", i + 1)).unwrap()),
                        jira_issue_id: None,
                    },
                    target: AssigneeTarget::Email(
                        Email::parse(&format!("u{}@example.com", (i + size + round) % USERS))
                            .unwrap(),
                    ),
                    provider_time: None,
                    source: integration.clone(),
                    traceparent: String::new(),
                },
                request_id: None,
            })
            .collect();
        for answer in sync_assignee_many(db, &calls).await.unwrap() {
            answer.unwrap();
        }
    }
}

#[tokio::test]
async fn on_postgres_groups_of_any_size_reuse_the_prepared_statements() {
    if !TestDatabase::on_postgres() {
        return;
    }
    let file = TestDatabase::fresh().await;
    let app = AssignmentApp::spawn(file.url()).await;
    let org = app.create_org("acme").await;
    let project = app.create_project(org, "web").await;
    app.install(org, JIRA, inbound_on()).await;
    for u in 0..USERS {
        let user = app
            .create_user(
                &format!("User {u}"),
                &[(&format!("u{u}@example.com"), true)],
            )
            .await;
        app.grant(project, user).await;
    }
    for i in 1..=ISSUES {
        let group = app.create_group(project, &format!("Error {i}")).await;
        app.link(org, JIRA, &format!("APP-{i}"), "", &[group]).await;
    }
    // One connection: every group's statements go through one session and
    // its statement cache, as on a busy service's connections.
    let one = PoolSettings {
        max_connections: 1,
        statement_cache_capacity: service_runtime::shapes::STATEMENT_CACHE_CAPACITY,
        ..PoolSettings::default()
    };
    let db = Database::connect(&file.url(), &one).await.unwrap();

    apply_groups(&db, 1..=ISSUES, 0).await;
    let after_warm_up = statements_prepared(&db).await;
    apply_groups(&db, (1..=ISSUES).rev(), 1).await;
    let after_second_round = statements_prepared(&db).await;

    // Before fixed shapes each group size had its own texts (48 sizes × the
    // group's statements, beyond sqlx's cache of 100): the first round
    // prepared 761 statements and the second 672 again.
    assert_eq!(
        after_second_round - after_warm_up,
        0,
        "statements prepared again in the second round ({after_warm_up} in the first); \
         of them still cached: {:#?}",
        prepared_after(&db, after_warm_up).await
    );
    app.stop().await;
}
