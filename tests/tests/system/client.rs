//! The Rust client library's subscriber (`jira-sync-client`) against the real
//! service: it resumes across a restart with no gap and no duplicate,
//! acknowledges what it handled, and reports a cursor behind retention as a
//! typed error.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jira_sync_client::{Event, Start, SubscribeError, Subscriber, SubscriberOptions};
use proto::assignment::v1 as pb;
use system_tests::proxy::CuttableProxy;
use system_tests::{AssignmentApp, TestDatabase, wait};

use crate::stream::Busy;

/// Runs `subscriber` in a task, collecting the notifications' sequences.
fn collect(mut subscriber: Subscriber) -> (Arc<Mutex<Vec<u64>>>, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let task = tokio::spawn(async move {
        let _ = subscriber
            .run(|event| {
                let sink = Arc::clone(&sink);
                async move {
                    if let Event::Notification(n) = event {
                        sink.lock().unwrap().push(n.sequence);
                    }
                    Ok::<(), std::convert::Infallible>(())
                }
            })
            .await;
    });
    (seen, task)
}

async fn stored_sequences(app: &AssignmentApp) -> Vec<u64> {
    app.all_notifications()
        .await
        .into_iter()
        .map(|n| n.sequence)
        .collect()
}

/// The oldest stored notification's sequence; `None` when there is none or
/// the read lost a race with retention.
async fn oldest_stored(app: &AssignmentApp) -> Option<u64> {
    use futures_util::StreamExt as _;
    let mut stream = app
        .notifications()
        .subscribe(proto::assignment::v1::SubscribeRequest::default())
        .await
        .ok()?
        .into_inner();
    match stream.next().await?.ok()?.event? {
        proto::assignment::v1::subscribe_response::Event::Notification(n) => Some(n.sequence),
        proto::assignment::v1::subscribe_response::Event::Progress(_) => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_subscriber_resumes_across_a_restart_with_no_gap_and_no_duplicate() {
    let db = TestDatabase::fresh().await;
    let first = AssignmentApp::spawn(db.url()).await;
    let proxy = CuttableProxy::start(first.grpc_addr).await;
    let mut busy = Busy::new(&first, "acme", 3).await;
    let subscriber = Subscriber::new(SubscriberOptions::new(
        format!("http://{}", proxy.addr),
        Start::Durable("rust-client".into()),
    ))
    .unwrap();
    let (seen, task) = collect(subscriber);
    for _ in 0..5 {
        busy.turn(&first, "acme").await;
    }
    let before = stored_sequences(&first).await;
    wait::until(
        "the first notifications",
        wait::DEFAULT_DEADLINE,
        || async { (*seen.lock().unwrap() == before).then_some(()) },
    )
    .await;

    // The service restarts (its streams end UNAVAILABLE) on a new port behind
    // the same address, and more notifications are written meanwhile.
    first.stop().await;
    let second = AssignmentApp::spawn(db.url()).await;
    for _ in 0..5 {
        busy.turn(&second, "acme").await;
    }
    proxy.retarget(second.grpc_addr);
    for _ in 0..5 {
        busy.turn(&second, "acme").await;
    }
    let all = stored_sequences(&second).await;
    assert!(all.len() > before.len());
    wait::until(
        "every notification, once, in order",
        wait::DEFAULT_DEADLINE,
        || async { (*seen.lock().unwrap() == all).then_some(()) },
    )
    .await;
    // What it handled is acknowledged: the durable cursor is the last one.
    let last = *all.last().unwrap();
    let acknowledged = wait::until("the last acknowledgement", wait::DEFAULT_DEADLINE, || {
        let mut client = second.notifications();
        async move {
            let subscriber = client
                .get_subscriber(pb::GetSubscriberRequest {
                    subscriber_name: "rust-client".into(),
                })
                .await
                .ok()?
                .into_inner()
                .subscriber?;
            (subscriber.acknowledged_sequence == last).then_some(subscriber.acknowledged_sequence)
        }
    })
    .await;
    assert_eq!(acknowledged, last);
    task.abort();
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_behind_retention_is_a_typed_error_naming_the_oldest_available() {
    let db = TestDatabase::fresh().await;
    let mut config = AssignmentApp::config(db.url());
    config.retention_max_count = 5;
    config.retention_interval = Duration::from_millis(20);
    let app = AssignmentApp::spawn_with(config).await;
    let mut busy = Busy::new(&app, "acme", 4).await;
    for _ in 0..3 {
        busy.turn(&app, "acme").await;
    }
    // Retention keeps the newest 5 of the 20 written. (Read while retention
    // runs every 20 ms: a prune between choosing the oldest and reading it
    // fails that read with OUT_OF_RANGE, which only means "look again".)
    wait::until("retention to prune", wait::DEFAULT_DEADLINE, || async {
        (oldest_stored(&app).await == Some(16)).then_some(())
    })
    .await;
    let mut subscriber = Subscriber::new(SubscriberOptions::new(
        format!("http://{}", app.grpc_addr),
        Start::After(3),
    ))
    .unwrap();
    let error = subscriber
        .run(|_| async { Ok::<(), std::convert::Infallible>(()) })
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            SubscribeError::OutOfRange {
                cursor: None,
                oldest: 16
            }
        ),
        "{error:?}"
    );
    app.stop().await;
}
