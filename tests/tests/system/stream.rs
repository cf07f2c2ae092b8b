//! The notification stream (DESIGN.md §4): resume without gap or duplicate,
//! filters, slow subscribers, retention, progress messages, durable subscribers.

use std::time::Duration;

use pb::subscribe_request::Start;
use pb::subscribe_response::Event;
use proto::assignment::v1 as pb;
use system_tests::fixtures::{assert_error, inbound_on};
use system_tests::{AssignmentApp, TestDatabase, wait};
use tokio_stream::StreamExt as _;
use tonic::{Code, Streaming};
use tonic_types::StatusExt as _;

const JIRA: &str = "acme-jira";

/// An organization whose `groups` are all linked to one issue, and two users with
/// access who take turns being assigned: every turn writes one notification per
/// group to the new assignee and one per group to the previous one.
pub(crate) struct Busy {
    key: String,
    org: i64,
    users: [i64; 2],
    groups: Vec<i64>,
    turn: usize,
}

impl Busy {
    pub(crate) async fn new(app: &AssignmentApp, slug: &str, groups: usize) -> Self {
        let org = app.create_org(slug).await;
        let project = app.create_project(org, "web").await;
        app.install(org, JIRA, inbound_on()).await;
        let mut ids = Vec::with_capacity(groups);
        for i in 0..groups {
            ids.push(app.create_group(project, &format!("group {i}")).await);
        }
        let key = format!("{}-1", slug.to_uppercase());
        app.link(org, JIRA, &key, "", &ids).await;
        let a = app
            .create_user(
                &format!("{slug}-a"),
                &[(&format!("a@{slug}.example"), true)],
            )
            .await;
        let b = app
            .create_user(
                &format!("{slug}-b"),
                &[(&format!("b@{slug}.example"), true)],
            )
            .await;
        app.grant(project, a).await;
        app.grant(project, b).await;
        Self {
            key,
            org,
            users: [a, b],
            groups: ids,
            turn: 0,
        }
    }

    /// Assigns the next user; returns how many notifications that wrote.
    pub(crate) async fn turn(&mut self, app: &AssignmentApp, slug: &str) -> usize {
        let who = if self.turn.is_multiple_of(2) {
            "a"
        } else {
            "b"
        };
        let results = app
            .external_issues()
            .sync_assignee_inbound(pb::SyncAssigneeInboundRequest {
                issue: Some(pb::ExternalIssueRef {
                    integration_id: JIRA.into(),
                    key: self.key.clone(),
                    jira_issue_id: String::new(),
                }),
                assignee: Some(pb::sync_assignee_inbound_request::Assignee::Email(format!(
                    "{who}@{slug}.example"
                ))),
                provider_update_time: None,
                request_id: String::new(),
                source_integration_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .results;
        let written = if self.turn == 0 {
            self.groups.len()
        } else {
            2 * self.groups.len()
        };
        assert!(
            results
                .iter()
                .all(|r| r.outcome() == pb::SyncOutcome::Assigned)
        );
        self.turn += 1;
        written
    }
}

async fn subscribe(
    app: &AssignmentApp,
    request: pb::SubscribeRequest,
) -> Streaming<pb::SubscribeResponse> {
    app.notifications()
        .subscribe(request)
        .await
        .unwrap()
        .into_inner()
}

fn from(after: u64) -> pb::SubscribeRequest {
    pb::SubscribeRequest {
        start: Some(Start::AfterSequence(after)),
        ..Default::default()
    }
}

/// The next notification, skipping progress messages.
async fn next_notification(stream: &mut Streaming<pb::SubscribeResponse>) -> pb::Notification {
    loop {
        let message = tokio::time::timeout(wait::DEFAULT_DEADLINE, stream.next())
            .await
            .expect("a message within the deadline")
            .expect("the stream stays open")
            .expect("the stream does not fail");
        if let Some(Event::Notification(n)) = message.event {
            return n;
        }
    }
}

async fn take(
    stream: &mut Streaming<pb::SubscribeResponse>,
    count: usize,
) -> Vec<pb::Notification> {
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        out.push(next_notification(stream).await);
    }
    out
}

fn sequences(notifications: &[pb::Notification]) -> Vec<u64> {
    notifications.iter().map(|n| n.sequence).collect()
}

#[tokio::test]
async fn a_subscriber_that_disconnects_resumes_with_exactly_what_it_missed() {
    let db = TestDatabase::fresh().await;
    let app = AssignmentApp::spawn(db.url()).await;
    let mut busy = Busy::new(&app, "acme", 10).await;
    let mut written = busy.turn(&app, "acme").await;
    written += busy.turn(&app, "acme").await;

    let mut stream = subscribe(&app, from(0)).await;
    let first = take(&mut stream, 7).await;
    drop(stream);
    let last_seen = first.last().unwrap().sequence;

    written += busy.turn(&app, "acme").await;
    let mut resumed = subscribe(&app, from(last_seen)).await;
    let rest = take(&mut resumed, written - first.len()).await;

    let all: Vec<u64> = sequences(&first)
        .into_iter()
        .chain(sequences(&rest))
        .collect();
    assert_eq!(all, (1..=written as u64).collect::<Vec<_>>());
    // And nothing more: the next message is a progress message at the head.
    let next = tokio::time::timeout(wait::DEFAULT_DEADLINE, resumed.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match next.event {
        Some(Event::Progress(p)) => assert_eq!(p.sequence, written as u64),
        other => panic!("expected progress, got {other:?}"),
    }
    app.stop().await;
}

#[tokio::test]
async fn three_subscribers_with_different_filters_each_get_exactly_theirs() {
    let db = TestDatabase::fresh().await;
    let app = AssignmentApp::spawn(db.url()).await;
    let mut acme = Busy::new(&app, "acme", 3).await;
    let mut globex = Busy::new(&app, "globex", 2).await;

    let mut by_user = subscribe(
        &app,
        pb::SubscribeRequest {
            filter: Some(pb::NotificationFilter {
                recipient_user_ids: vec![acme.users[0]],
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await;
    let mut by_org = subscribe(
        &app,
        pb::SubscribeRequest {
            filter: Some(pb::NotificationFilter {
                organization_ids: vec![globex.org],
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await;
    let mut by_kind = subscribe(
        &app,
        pb::SubscribeRequest {
            filter: Some(pb::NotificationFilter {
                kinds: vec![pb::NotificationKind::Unassigned.into()],
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await;

    // Live writes after the subscriptions started.
    for _ in 0..3 {
        acme.turn(&app, "acme").await;
        globex.turn(&app, "globex").await;
    }
    let all = app.all_notifications().await;
    let expect = |keep: &dyn Fn(&pb::Notification) -> bool| -> Vec<u64> {
        all.iter().filter(|n| keep(n)).map(|n| n.sequence).collect()
    };
    let user_expected = expect(&|n| n.recipient_user_id == acme.users[0]);
    let org_expected = expect(&|n| n.organization_id == globex.org);
    let kind_expected = expect(&|n| n.kind() == pb::NotificationKind::Unassigned);
    assert!(!user_expected.is_empty() && !org_expected.is_empty() && !kind_expected.is_empty());

    for (stream, expected) in [
        (&mut by_user, user_expected),
        (&mut by_org, org_expected),
        (&mut by_kind, kind_expected),
    ] {
        let got = take(stream, expected.len()).await;
        assert_eq!(sequences(&got), expected);
        // Nothing else follows: the next message is progress at the head.
        let next = tokio::time::timeout(wait::DEFAULT_DEADLINE, stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match next.event {
            Some(Event::Progress(p)) => assert_eq!(p.sequence, all.last().unwrap().sequence),
            other => panic!("expected progress, got {other:?}"),
        }
    }
    let _ = (acme.groups.len(), globex.groups.len());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_stops_reading_misses_nothing_and_holds_nobody_up() {
    let db = TestDatabase::fresh().await;
    let mut config = AssignmentApp::config(db.url());
    // A small ring, so the stalled subscriber certainly falls off it.
    config.stream_ring_batches = 4;
    let app = AssignmentApp::spawn_with(config).await;
    let mut busy = Busy::new(&app, "acme", 100).await;

    let mut stalled = subscribe(&app, from(0)).await;
    let mut live = subscribe(&app, from(0)).await;

    // 10,000 notifications: 100 for the first turn, 200 for each later one.
    let mut written = 0;
    let mut live_seen = Vec::new();
    while written < 10_000 {
        written += busy.turn(&app, "acme").await;
        // The live subscriber keeps up while the stalled one reads nothing.
        live_seen.extend(take(&mut live, written - live_seen.len()).await);
    }
    assert_eq!(written, 10_100);
    assert_eq!(
        sequences(&live_seen),
        (1..=written as u64).collect::<Vec<_>>()
    );

    let all = take(&mut stalled, written).await;
    assert_eq!(sequences(&all), (1..=written as u64).collect::<Vec<_>>());
    app.stop().await;
}

#[tokio::test]
async fn a_cursor_behind_retention_gets_out_of_range_with_the_oldest_available() {
    let db = TestDatabase::fresh().await;
    let mut config = AssignmentApp::config(db.url());
    config.retention_max_count = 5;
    config.retention_interval = Duration::from_millis(20);
    let app = AssignmentApp::spawn_with(config).await;
    let mut busy = Busy::new(&app, "acme", 4).await;
    let mut written = 0;
    for _ in 0..3 {
        written += busy.turn(&app, "acme").await;
    }
    assert_eq!(written, 20);

    // Retention runs in the background; wait until it pruned to the last 5.
    let status = wait::until("retention to prune", wait::DEFAULT_DEADLINE, || {
        let mut client = app.notifications();
        async move {
            client.subscribe(from(0)).await.err().filter(|s| {
                s.code() == Code::OutOfRange
                    && s.get_details_error_info()
                        .is_some_and(|i| i.metadata["oldest_available_sequence"] == "16")
            })
        }
    })
    .await;
    let info = status.get_details_error_info().expect("error info");
    assert_eq!(info.reason, "CURSOR_OUT_OF_RANGE");
    assert!(status.message().contains("pruned"));

    // From just before the oldest available, everything retained arrives.
    let mut stream = subscribe(&app, from(15)).await;
    assert_eq!(
        sequences(&take(&mut stream, 5).await),
        vec![16, 17, 18, 19, 20]
    );

    // A cursor beyond the head is refused too.
    let beyond = app.notifications().subscribe(from(999)).await;
    assert_error(beyond, Code::OutOfRange, None);
    app.stop().await;
}

#[tokio::test]
async fn an_idle_stream_gets_progress_messages_with_the_head_sequence() {
    let db = TestDatabase::fresh().await;
    let mut config = AssignmentApp::config(db.url());
    config.progress_interval = Duration::from_secs(10);
    // No background database work while time is paused (see below).
    config.poll_interval = Duration::from_secs(3600);
    config.retention_interval = Duration::from_secs(3600);
    let app = AssignmentApp::spawn_with(config).await;
    let mut busy = Busy::new(&app, "acme", 2).await;
    let mut written = busy.turn(&app, "acme").await as u64;
    written += busy.turn(&app, "acme").await as u64;

    // User a's notifications: assigned (1, 2), then unassigned (3, 5). The head
    // (6) is b's, which this stream filters out; progress must still reach it.
    let mut stream = subscribe(
        &app,
        pb::SubscribeRequest {
            filter: Some(pb::NotificationFilter {
                recipient_user_ids: vec![busy.users[0]],
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(sequences(&take(&mut stream, 4).await), vec![1, 2, 3, 5]);

    // The replay is done and the service has no database work in flight, so
    // time can be virtual from here: the 10 s intervals pass without waiting.
    // (While database I/O is in flight, paused time would fire the pool's
    // timeouts instead.)
    tokio::time::pause();
    let message = stream.next().await.unwrap().unwrap();
    match message.event {
        Some(Event::Progress(p)) => assert_eq!(p.sequence, written),
        other => panic!("expected progress, got {other:?}"),
    }
    let first_progress = tokio::time::Instant::now();
    let message = stream.next().await.unwrap().unwrap();
    match message.event {
        Some(Event::Progress(p)) => assert_eq!(p.sequence, written),
        other => panic!("expected progress, got {other:?}"),
    }
    assert!(first_progress.elapsed() >= Duration::from_secs(10));
    tokio::time::resume();
    app.stop().await;
}

#[tokio::test]
async fn a_durable_subscriber_resumes_after_its_last_acknowledgement() {
    let db = TestDatabase::fresh().await;
    let app = AssignmentApp::spawn(db.url()).await;
    let mut busy = Busy::new(&app, "acme", 5).await;
    let mut written = busy.turn(&app, "acme").await;
    written += busy.turn(&app, "acme").await;
    let named = || pb::SubscribeRequest {
        start: Some(Start::SubscriberName("mailer".into())),
        ..Default::default()
    };

    let mut stream = subscribe(&app, named()).await;
    let first = take(&mut stream, 6).await;
    let acked = app
        .notifications()
        .acknowledge_notifications(pb::AcknowledgeNotificationsRequest {
            subscriber_name: "mailer".into(),
            sequence: first[3].sequence,
        })
        .await
        .unwrap()
        .into_inner()
        .subscriber
        .unwrap();
    assert_eq!(acked.acknowledged_sequence, first[3].sequence);
    // Acknowledging an older sequence does not move the cursor back.
    let kept = app
        .notifications()
        .acknowledge_notifications(pb::AcknowledgeNotificationsRequest {
            subscriber_name: "mailer".into(),
            sequence: 1,
        })
        .await
        .unwrap()
        .into_inner()
        .subscriber
        .unwrap();
    assert_eq!(kept.acknowledged_sequence, first[3].sequence);
    drop(stream);

    let mut resumed = subscribe(&app, named()).await;
    let rest = take(&mut resumed, written - 4).await;
    assert_eq!(
        sequences(&rest),
        ((first[3].sequence + 1)..=written as u64).collect::<Vec<_>>()
    );

    let beyond = app
        .notifications()
        .acknowledge_notifications(pb::AcknowledgeNotificationsRequest {
            subscriber_name: "mailer".into(),
            sequence: 10_000,
        })
        .await;
    assert_error(beyond, Code::OutOfRange, None);
    let bad_name = app
        .notifications()
        .get_subscriber(pb::GetSubscriberRequest {
            subscriber_name: "no spaces allowed".into(),
        })
        .await;
    assert_error(bad_name, Code::InvalidArgument, Some("subscriber_name"));
    app.notifications()
        .delete_subscriber(pb::DeleteSubscriberRequest {
            subscriber_name: "mailer".into(),
        })
        .await
        .unwrap();
    let gone = app
        .notifications()
        .get_subscriber(pb::GetSubscriberRequest {
            subscriber_name: "mailer".into(),
        })
        .await;
    assert_error(gone, Code::NotFound, None);
    app.stop().await;
}

#[tokio::test]
async fn shutdown_ends_streams_with_unavailable_not_ok() {
    let db = TestDatabase::fresh().await;
    let app = AssignmentApp::spawn(db.url()).await;
    let mut stream = subscribe(
        &app,
        pb::SubscribeRequest {
            start: Some(Start::StartAtHead(true)),
            ..Default::default()
        },
    )
    .await;
    let stopping = tokio::spawn(app.stop());
    let ended = loop {
        match tokio::time::timeout(wait::DEFAULT_DEADLINE, stream.next())
            .await
            .expect("the stream ends within the deadline")
        {
            Some(Ok(_progress)) => continue,
            Some(Err(status)) => break status,
            None => panic!("the stream ended with OK"),
        }
    };
    assert_eq!(ended.code(), Code::Unavailable);
    stopping.await.unwrap();
}

#[tokio::test]
async fn invalid_start_positions_and_filters_are_refused() {
    let db = TestDatabase::fresh().await;
    let app = AssignmentApp::spawn(db.url()).await;
    let not_at_head = app
        .notifications()
        .subscribe(pb::SubscribeRequest {
            start: Some(Start::StartAtHead(false)),
            ..Default::default()
        })
        .await;
    assert_error(not_at_head, Code::InvalidArgument, Some("start_at_head"));
    let bad_name = app
        .notifications()
        .subscribe(pb::SubscribeRequest {
            start: Some(Start::SubscriberName("no spaces".into())),
            ..Default::default()
        })
        .await;
    assert_error(bad_name, Code::InvalidArgument, Some("subscriber_name"));
    let bad_kind = app
        .notifications()
        .subscribe(pb::SubscribeRequest {
            filter: Some(pb::NotificationFilter {
                kinds: vec![99],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await;
    assert_error(bad_kind, Code::InvalidArgument, Some("filter.kinds[0]"));
    app.stop().await;
}
