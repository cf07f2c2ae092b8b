//! The notifier end to end (issue 17): a real assignment service, the real
//! notifier, Slack, Discord and a webhook receiver faked at the HTTP level.
//! What a user sees is checked at the fakes: one message per thread, edited
//! through the thread's notifications in order, each notification once.

use std::collections::BTreeMap;

use chat_sim::{ChatSim, Failure};
use proto::assignment::v1 as assignment;
use proto::notifier::v1 as pb;
use system_tests::notifier::{NotifierApp, all_done, discord, slack, webhook};
use system_tests::{AssignmentApp, TestDatabase, wait};

/// The durable subscriber's name in these tests.
const NAME: &str = "notifier";

/// An assignment service, the fakes, and a notifier following the service
/// from its first notification.
struct World {
    assignment: AssignmentApp,
    chat: ChatSim,
    notifier_db: TestDatabase,
    _assignment_db: TestDatabase,
}

impl World {
    async fn start() -> Self {
        let assignment_db = TestDatabase::fresh().await;
        let assignment = AssignmentApp::spawn(assignment_db.url()).await;
        // The subscriber exists before the notifier starts, at 0: it delivers
        // everything the test does.
        assignment
            .notifications()
            .acknowledge_notifications(assignment::AcknowledgeNotificationsRequest {
                subscriber_name: NAME.into(),
                sequence: 0,
            })
            .await
            .unwrap();
        Self {
            assignment,
            chat: ChatSim::start().await,
            notifier_db: TestDatabase::fresh().await,
            _assignment_db: assignment_db,
        }
    }

    async fn notifier(&self) -> NotifierApp {
        NotifierApp::spawn_with(self.config()).await
    }

    fn config(&self) -> notifier::Config {
        NotifierApp::config(
            self.notifier_db.url(),
            self.assignment.grpc_addr,
            &self.chat,
        )
    }

    async fn user(&self, project: i64, name: &str) -> i64 {
        let user = self
            .assignment
            .create_user(name, &[(&format!("{name}@example.com"), true)])
            .await;
        self.assignment.grant(project, user).await;
        user
    }

    /// Every notification, by recipient, oldest first.
    async fn told(&self) -> BTreeMap<i64, Vec<assignment::Notification>> {
        let mut by_recipient: BTreeMap<i64, Vec<assignment::Notification>> = BTreeMap::new();
        for n in self.assignment.all_notifications().await {
            by_recipient.entry(n.recipient_user_id).or_default().push(n);
        }
        by_recipient
    }
}

/// Waits until the notifier recorded `expected` deliveries, all done.
async fn settled(notifier: &NotifierApp, expected: usize) -> Vec<pb::Delivery> {
    wait::until("every delivery done", wait::DEFAULT_DEADLINE, || async {
        let deliveries = notifier.deliveries().await;
        (deliveries.len() == expected && all_done(&deliveries)).then_some(deliveries)
    })
    .await
}

/// The texts a thread's notifications carry, in order (consecutive equal
/// texts show once: an edit to the same text changes nothing visible).
fn texts(notifications: &[&assignment::Notification]) -> Vec<String> {
    let mut texts: Vec<String> = Vec::new();
    for n in notifications {
        if texts.last() != Some(&n.message) {
            texts.push(n.message.clone());
        }
    }
    texts
}

#[tokio::test]
async fn the_story_ends_with_one_message_per_thread_edited_in_order() {
    let world = World::start().await;
    let app = &world.assignment;
    let org = app.create_org("acme").await;
    let project = app.create_project(org, "web").await;
    let group = app.create_group(project, "TypeError in checkout").await;
    let jess = world.user(project, "jess").await;
    let kim = world.user(project, "kim").await;
    let lee = world.user(project, "lee").await;
    let wes = world.user(project, "wes").await;
    let notifier = world.notifier().await;
    notifier.set_destination(jess, slack("DJESS")).await;
    notifier.set_destination(kim, discord("1001")).await;
    notifier
        .set_destination(wes, webhook(&world.chat, "wes"))
        .await;
    // Lee has no destination.

    app.groups()
        .subscribe_to_group(assignment::SubscribeToGroupRequest {
            group_id: group,
            user_id: wes,
        })
        .await
        .unwrap();
    app.assign(group, lee, 0).await;
    app.assign(group, jess, 0).await;
    app.assign(group, kim, 0).await;
    app.resolve(group, 0).await;

    let told = world.told().await;
    let total: usize = told.values().map(Vec::len).sum();
    let deliveries = settled(&notifier, total).await;
    for d in &deliveries {
        let expected = if d.recipient_user_id == lee {
            pb::DeliveryState::Undeliverable
        } else {
            pb::DeliveryState::Sent
        };
        assert_eq!(d.state(), expected, "{d:?}");
        assert!(d.attempts <= 1, "one attempt each: {d:?}");
    }

    // Jess: assigned, unassigned, then told of the resolution as a participant:
    // one Slack message, edited twice.
    let jess_told: Vec<_> = told[&jess].iter().collect();
    assert_eq!(jess_told.len(), 3);
    let posted = world.chat.messages("slack", "DJESS");
    assert_eq!(posted.len(), 1, "{posted:?}");
    assert_eq!(posted[0].history, texts(&jess_told));
    // Kim: assigned, then the resolution: one Discord message, edited once.
    let kim_told: Vec<_> = told[&kim].iter().collect();
    assert_eq!(kim_told.len(), 2);
    let posted = world.chat.messages("discord", "1001");
    assert_eq!(posted.len(), 1, "{posted:?}");
    assert_eq!(posted[0].history, texts(&kim_told));
    // Wes follows the group: every change, in one thread of signed webhooks.
    let wes_told: Vec<_> = told[&wes].iter().collect();
    assert!(wes_told.len() >= 3, "{wes_told:?}");
    let hooked = world.chat.messages("webhook", "wes");
    assert_eq!(hooked.len(), 1, "one thread: {hooked:?}");
    assert_eq!(hooked[0].history, texts(&wes_told));
    assert_eq!(
        hooked[0].metadata["edits"].as_array().map(Vec::len),
        Some(wes_told.len() - 1)
    );
    // The Slack calls: a post, then edits of it.
    let slack_calls: Vec<String> = world
        .chat
        .recorded()
        .into_iter()
        .filter(|r| r.tool == "slack")
        .map(|r| r.action)
        .collect();
    assert_eq!(
        slack_calls,
        ["chat.postMessage", "chat.update", "chat.update"]
    );

    // The durable subscriber is acknowledged up to the last notification.
    let last = told.values().flatten().map(|n| n.sequence).max().unwrap();
    wait::until("the acknowledgement", wait::DEFAULT_DEADLINE, || async {
        let subscriber = app
            .notifications()
            .get_subscriber(assignment::GetSubscriberRequest {
                subscriber_name: NAME.into(),
            })
            .await
            .ok()?
            .into_inner()
            .subscriber?;
        (subscriber.acknowledged_sequence == last).then_some(())
    })
    .await;
    notifier.stop().await;
}

#[tokio::test]
async fn a_rate_limit_storm_and_outages_delay_but_lose_nothing() {
    let world = World::start().await;
    let app = &world.assignment;
    let org = app.create_org("acme").await;
    let project = app.create_project(org, "web").await;
    let mut users = Vec::new();
    for name in ["ann", "bob", "cat", "dan"] {
        users.push(world.user(project, name).await);
    }
    let notifier = world.notifier().await;
    notifier.set_destination(users[0], slack("DANN")).await;
    notifier.set_destination(users[1], slack("DBOB")).await;
    notifier.set_destination(users[2], discord("2002")).await;
    notifier
        .set_destination(users[3], webhook(&world.chat, "dan"))
        .await;
    world
        .chat
        .fail_next("discord", (0..6).map(|_| Failure::RateLimited(0.05)));
    world.chat.fail_next(
        "slack",
        [
            Failure::Status(503),
            Failure::Error("internal_error"),
            Failure::Status(502),
        ],
    );
    world
        .chat
        .fail_next("webhook", [Failure::Status(500), Failure::Status(429)]);
    for i in 0..5 {
        let group = app.create_group(project, &format!("error {i}")).await;
        for user in &users {
            app.assign(group, *user, 0).await;
        }
    }
    let told = world.told().await;
    let total: usize = told.values().map(Vec::len).sum();
    let deliveries = settled(&notifier, total).await;
    assert!(
        deliveries
            .iter()
            .all(|d| d.state() == pb::DeliveryState::Sent),
        "{deliveries:?}"
    );
    assert!(
        deliveries.iter().any(|d| d.attempts > 1),
        "the failures were retried"
    );
    let statuses: Vec<u16> = world.chat.recorded().iter().map(|r| r.status).collect();
    assert!(statuses.contains(&429) && statuses.contains(&503));
    // Each recipient's threads hold exactly their notifications, in order.
    assert_threads(&world, &told, &users).await;
    notifier.stop().await;
}

/// For every recipient with a destination, one message per thread at its
/// tool, whose history is the thread's notifications in order.
async fn assert_threads(
    world: &World,
    told: &BTreeMap<i64, Vec<assignment::Notification>>,
    users: &[i64],
) {
    let places = [
        ("slack", "DANN"),
        ("slack", "DBOB"),
        ("discord", "2002"),
        ("webhook", "dan"),
    ];
    for (user, (tool, channel)) in users.iter().zip(places) {
        let mut threads: BTreeMap<&str, Vec<&assignment::Notification>> = BTreeMap::new();
        for n in &told[user] {
            threads.entry(n.message_key.as_str()).or_default().push(n);
        }
        let mut expected: Vec<Vec<String>> = threads.values().map(|ns| texts(ns)).collect();
        let mut seen: Vec<Vec<String>> = world
            .chat
            .messages(tool, channel)
            .into_iter()
            .map(|m| m.history)
            .collect();
        expected.sort();
        seen.sort();
        assert_eq!(seen, expected, "{tool} {channel}");
    }
}

#[tokio::test]
async fn refusals_stop_with_their_reason_and_an_operator_retries_them() {
    let world = World::start().await;
    world
        .chat
        .accept_tokens("slack", &[system_tests::notifier::SLACK_TOKEN]);
    let app = &world.assignment;
    let org = app.create_org("acme").await;
    let project = app.create_project(org, "web").await;
    let group = app.create_group(project, "boom").await;
    let ann = world.user(project, "ann").await;
    let bob = world.user(project, "bob").await;
    let notifier = world.notifier().await;
    notifier.set_destination(ann, slack("missingchannel")).await;
    notifier
        .client()
        .set_destination(pb::SetDestinationRequest {
            destination: Some(pb::Destination {
                user_id: bob,
                target: Some(pb::destination::Target::Slack(pb::SlackDestination {
                    channel: "DBOB".into(),
                    bot_token: "xoxb-revoked".into(),
                })),
                update_time: None,
            }),
            request_id: "bob-1".into(),
        })
        .await
        .unwrap();
    app.assign(group, ann, 0).await;
    app.assign(group, bob, 0).await;
    let deliveries = settled(&notifier, 3).await;
    let reasons: Vec<(i64, pb::DeliveryState, String)> = deliveries
        .iter()
        .map(|d| (d.recipient_user_id, d.state(), d.reason.clone()))
        .collect();
    assert!(
        reasons.contains(&(
            bob,
            pb::DeliveryState::Stopped,
            "Slack: invalid_auth".into()
        )),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&(
            ann,
            pb::DeliveryState::Stopped,
            "Slack: channel_not_found".into()
        )),
        "{reasons:?}"
    );
    // Ann's second notification waited behind her first (order), and stopped
    // the same way; nothing was posted.
    assert!(world.chat.messages("slack", "missingchannel").is_empty());

    // The operator fixes Bob's token and retries his delivery.
    notifier.set_destination(bob, slack("DBOB")).await;
    let bobs = deliveries
        .iter()
        .find(|d| d.recipient_user_id == bob)
        .unwrap();
    let retried = notifier
        .client()
        .retry_delivery(pb::RetryDeliveryRequest {
            sequence: bobs.sequence,
        })
        .await
        .unwrap()
        .into_inner()
        .delivery
        .unwrap();
    assert_eq!(retried.state(), pb::DeliveryState::Pending);
    settled(&notifier, 3).await;
    assert_eq!(world.chat.messages("slack", "DBOB").len(), 1);
    // A delivery that is not stopped cannot be retried.
    let again = notifier
        .client()
        .retry_delivery(pb::RetryDeliveryRequest {
            sequence: bobs.sequence,
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), tonic::Code::FailedPrecondition);
    notifier.stop().await;
}

#[tokio::test]
async fn destinations_are_checked_and_never_give_their_secret_back() {
    let world = World::start().await;
    let notifier = world.notifier().await;
    let mut client = notifier.client();
    for (target, field) in [
        (slack("C 1"), "destination.slack.channel"),
        (discord("abc"), "destination.discord.channel_id"),
        (
            pb::destination::Target::Webhook(pb::WebhookDestination {
                url: "ftp://x".into(),
                secret: "nope".into(),
            }),
            "destination.webhook.url",
        ),
    ] {
        let refused = client
            .set_destination(pb::SetDestinationRequest {
                destination: Some(pb::Destination {
                    user_id: 7,
                    target: Some(target),
                    update_time: None,
                }),
                request_id: "r-1".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument);
        assert!(refused.message().contains(field), "{refused:?}");
    }
    let set = pb::SetDestinationRequest {
        destination: Some(pb::Destination {
            user_id: 7,
            target: Some(slack("C0123")),
            update_time: None,
        }),
        request_id: "r-2".into(),
    };
    let first = client
        .set_destination(set.clone())
        .await
        .unwrap()
        .into_inner();
    let repeat = client
        .set_destination(set.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, repeat, "a repeat answers the same");
    let mut other = set.clone();
    other.destination.as_mut().unwrap().target = Some(slack("C9999"));
    let reused = client.set_destination(other).await.unwrap_err();
    assert_eq!(reused.code(), tonic::Code::InvalidArgument);
    let got = client
        .get_destination(pb::GetDestinationRequest { user_id: 7 })
        .await
        .unwrap()
        .into_inner();
    match got.destination.unwrap().target {
        Some(pb::destination::Target::Slack(s)) => {
            assert_eq!(s.channel, "C0123");
            assert!(s.bot_token.is_empty(), "the token is write-only");
        }
        other => panic!("{other:?}"),
    }
    let deleted = client
        .delete_destination(pb::DeleteDestinationRequest { user_id: 7 })
        .await
        .unwrap()
        .into_inner();
    assert!(deleted.deleted);
    let missing = client
        .get_destination(pb::GetDestinationRequest { user_id: 7 })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    notifier.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_burst_the_notifier_resumes_and_sends_every_message_once() {
    let world = World::start().await;
    let app = &world.assignment;
    let org = app.create_org("acme").await;
    let project = app.create_project(org, "web").await;
    let mut users = Vec::new();
    for name in ["ann", "bob", "cat", "dan"] {
        users.push(world.user(project, name).await);
    }
    // Destinations are stored before the burst exists: a notifier reading a
    // backlog while they are still being set marks a recipient without one
    // undeliverable.
    let setup = world.notifier().await;
    setup.set_destination(users[0], slack("DANN")).await;
    setup.set_destination(users[1], slack("DBOB")).await;
    setup.set_destination(users[2], discord("2002")).await;
    setup
        .set_destination(users[3], webhook(&world.chat, "dan"))
        .await;
    setup.stop().await;
    // Four users in turn on 100 groups: each turn tells the new assignee, the
    // one replaced and the others following; well over 1,000 notifications.
    for i in 0..100 {
        let group = app.create_group(project, &format!("error {i}")).await;
        for user in &users {
            app.assign(group, *user, 0).await;
        }
    }
    let told = world.told().await;
    let total: usize = told.values().map(Vec::len).sum();
    assert!(total >= 1000, "{total} notifications");

    // Paced at 100 messages/s per chat channel, the burst takes seconds, so
    // the kill lands mid-burst however loaded the machine is (unpaced, a
    // loaded run once sent everything before the kill).
    let paced = || notifier::Config {
        channel_rate: 100.0,
        ..world.config()
    };
    let notifier = NotifierApp::spawn_with(paced()).await;
    wait::until(
        "a third of the burst sent",
        wait::DEFAULT_DEADLINE,
        || async { (world.chat.recorded().len() >= total / 3).then_some(()) },
    )
    .await;
    notifier.kill().await;
    let before_restart = world.chat.recorded().len();
    assert!(before_restart < total, "killed mid-burst");

    let notifier = NotifierApp::spawn_with(paced()).await;
    let deliveries = settled(&notifier, total).await;
    let not_sent: Vec<&pb::Delivery> = deliveries
        .iter()
        .filter(|d| d.state() != pb::DeliveryState::Sent)
        .collect();
    assert!(
        not_sent.is_empty(),
        "every notification sent; not sent: {not_sent:#?}"
    );
    // Nothing posted twice, nothing lost, order kept: each thread is one
    // message whose history is its notifications in order.
    assert_threads(&world, &told, &users).await;
    notifier.stop().await;
}

#[tokio::test]
async fn a_lost_answer_does_not_post_twice_on_any_tool() {
    let world = World::start().await;
    let app = &world.assignment;
    let org = app.create_org("acme").await;
    let project = app.create_project(org, "web").await;
    let group = app.create_group(project, "boom").await;
    let ann = world.user(project, "ann").await;
    let bob = world.user(project, "bob").await;
    let cat = world.user(project, "cat").await;
    let notifier = world.notifier().await;
    notifier.set_destination(ann, slack("DANN")).await;
    notifier.set_destination(bob, discord("2002")).await;
    notifier
        .set_destination(cat, webhook(&world.chat, "cat"))
        .await;
    // Each tool applies the first request it gets, then loses its answer.
    for tool in ["slack", "discord", "webhook"] {
        world.chat.fail_next(tool, [Failure::LostAnswer]);
    }
    for user in [ann, bob, cat] {
        let group = app.create_group(project, &format!("for {user}")).await;
        app.assign(group, user, 0).await;
    }
    let _ = group;
    let deliveries = settled(&notifier, 3).await;
    for d in &deliveries {
        assert_eq!(d.state(), pb::DeliveryState::Sent, "{d:?}");
        assert_eq!(d.attempts, 2, "retried after the lost answer: {d:?}");
    }
    assert_eq!(world.chat.messages("slack", "DANN").len(), 1);
    assert_eq!(world.chat.messages("discord", "2002").len(), 1);
    assert_eq!(world.chat.messages("webhook", "cat").len(), 1);
    notifier.stop().await;
}

#[tokio::test]
async fn messages_to_one_channel_are_paced_and_other_channels_are_not_held() {
    let world = World::start().await;
    let app = &world.assignment;
    let org = app.create_org("acme").await;
    let project = app.create_project(org, "web").await;
    let ann = world.user(project, "ann").await;
    let bob = world.user(project, "bob").await;
    let mut config = world.config();
    config.channel_rate = 10.0;
    config.channel_burst = 2;
    let notifier = NotifierApp::spawn_with(config).await;
    notifier.set_destination(ann, slack("DANN")).await;
    notifier.set_destination(bob, slack("DBOB")).await;
    for i in 0..8 {
        let group = app.create_group(project, &format!("error {i}")).await;
        app.assign(group, ann, 0).await;
    }
    let group = app.create_group(project, "bob's").await;
    app.assign(group, bob, 0).await;
    let deliveries = settled(&notifier, 9).await;
    assert!(
        deliveries
            .iter()
            .all(|d| d.state() == pb::DeliveryState::Sent)
    );
    let sent_at = |channel: &str| -> Vec<std::time::Instant> {
        world
            .chat
            .recorded()
            .into_iter()
            .filter(|r| r.channel == channel && r.status == 200)
            .map(|r| r.at)
            .collect()
    };
    let ann_at = sent_at("DANN");
    assert_eq!(ann_at.len(), 8);
    // Two at once, then one every 100 ms: six intervals at least.
    let spread = ann_at[7] - ann_at[0];
    assert!(
        spread >= std::time::Duration::from_millis(550),
        "{spread:?}"
    );
    // Bob's one message did not wait for Ann's channel.
    let bob_at = sent_at("DBOB");
    assert_eq!(bob_at.len(), 1);
    assert!(bob_at[0] < ann_at[7], "Bob was not held behind Ann's pace");
    notifier.stop().await;
}
