//! `cargo xtask demo`: the whole flow in one command.
//!
//! Starts both services in-process on a temporary SQLite database and a local
//! Jira simulator, sets up an organization with two users and two groups,
//! creates a Jira issue for the groups, posts signed webhooks (assign, reassign,
//! resolve) and prints the notification stream as it arrives. Then the round
//! trip: our side assigns a group, the change reaches Jira, and Jira's webhook
//! about it comes back and is recognised as our own.

use std::time::Duration;

use anyhow::{Context as _, bail};
use hmac::{Hmac, Mac as _};
use proto::assignment::v1 as assignment;
use proto::tracker::v1 as tracker;
use service_runtime::config::DatabaseUrl;
use service_runtime::shutdown::Shutdown;
use tokio_stream::StreamExt as _;
use tonic::transport::{Channel, Endpoint};

const INTEGRATION: &str = "acme-jira";
const WEBHOOK_SECRET: &str = "demo-webhook-secret";

fn channel(addr: std::net::SocketAddr) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))?.connect_lazy())
}

fn sign(body: &[u8]) -> anyhow::Result<String> {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes())?;
    mac.update(body);
    Ok(format!(
        "sha256={}",
        hex::encode(mac.finalize().into_bytes())
    ))
}

fn payload(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> anyhow::Result<Vec<u8>> {
    let path = crate::workspace::root().join("fixtures/jira").join(name);
    let mut value: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
    )?;
    edit(&mut value);
    Ok(serde_json::to_vec(&value)?)
}

fn say(line: &str) {
    #[allow(clippy::print_stdout)]
    {
        println!("{line}");
    }
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    if !args.is_empty() {
        bail!("demo takes no arguments");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(demo())
}

async fn demo() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let shutdown = Shutdown::new();
    let jira = jira_sim::JiraSim::start().await;

    let assignment_app =
        assignment_service::Application::build(assignment_service::Config::for_tests(
            DatabaseUrl::sqlite_file(&data.path().join("assignment.db")),
        ))
        .await?;
    let assignment_addr = assignment_app.grpc_addr();
    let assignment_task = tokio::spawn(assignment_app.run_until_stopped(shutdown.clone()));
    let tracker_app = tracker_service::Application::build(tracker_service::Config::for_tests(
        DatabaseUrl::sqlite_file(&data.path().join("tracker.db")),
        format!("http://{assignment_addr}"),
    ))
    .await?;
    let (tracker_addr, tracker_http) = (tracker_app.grpc_addr(), tracker_app.http_addr());
    let tracker_task = tokio::spawn(tracker_app.run_until_stopped(shutdown.clone()));
    let chat = chat_sim::ChatSim::start().await;
    // The notifier starts at the head of the stream (a new durable subscriber),
    // before anything happens.
    let mut notifier_config = notifier::Config::for_tests(
        DatabaseUrl::sqlite_file(&data.path().join("notifier.db")),
        format!("http://{assignment_addr}"),
    );
    notifier_config.slack_api_url = chat.slack_url();
    notifier_config.discord_api_url = chat.discord_url();
    let notifier_app = notifier::Application::build(notifier_config).await?;
    let notifier_addr = notifier_app.grpc_addr();
    let notifier_task = tokio::spawn(notifier_app.run_until_stopped(shutdown.clone()));
    say(&format!(
        "jira simulator   {}\nassignment-service gRPC {assignment_addr}\ntracker-service    gRPC {tracker_addr}, webhooks http://{tracker_http}/webhooks/jira/{INTEGRATION}\n",
        jira.base_url()
    ));

    let assignment_channel = channel(assignment_addr)?;
    let mut directory = assignment::directory_service_client::DirectoryServiceClient::new(
        assignment_channel.clone(),
    );
    let mut groups =
        assignment::group_service_client::GroupServiceClient::new(assignment_channel.clone());
    let mut notifications =
        assignment::notification_service_client::NotificationServiceClient::new(assignment_channel);
    let mut tracker_client =
        tracker::tracker_service_client::TrackerServiceClient::new(channel(tracker_addr)?);

    say("== setting up: organization, project, users, groups, integration");
    let org = directory
        .create_organization(assignment::CreateOrganizationRequest {
            slug: "acme".into(),
            name: "Acme Inc.".into(),
            request_id: String::new(),
        })
        .await?
        .into_inner()
        .organization
        .context("organization")?
        .id;
    let project = directory
        .create_project(assignment::CreateProjectRequest {
            organization_id: org,
            slug: "web".into(),
            name: "Web".into(),
            request_id: String::new(),
        })
        .await?
        .into_inner()
        .project
        .context("project")?
        .id;
    let mut users = Vec::new();
    for (name, email) in [("Jess", "jess@sentry.io"), ("Kim", "kim@sentry.io")] {
        let user = directory
            .create_user(assignment::CreateUserRequest {
                display_name: name.into(),
                emails: vec![assignment::UserEmail {
                    email: email.into(),
                    verified: true,
                }],
                active: Some(true),
                request_id: String::new(),
            })
            .await?
            .into_inner()
            .user
            .context("user")?
            .id;
        directory
            .grant_project_access(assignment::GrantProjectAccessRequest {
                project_id: project,
                user_id: user,
                request_id: String::new(),
            })
            .await?;
        users.push((user, name));
    }
    let mut group_ids = Vec::new();
    for title in ["TypeError: cart is undefined", "ValueError: bad coupon"] {
        group_ids.push(
            groups
                .create_group(assignment::CreateGroupRequest {
                    project_id: project,
                    title: title.into(),
                    request_id: String::new(),
                })
                .await?
                .into_inner()
                .group
                .context("group")?
                .id,
        );
    }
    directory
        .install_integration(assignment::InstallIntegrationRequest {
            organization_id: org,
            integration_id: INTEGRATION.into(),
            sync_settings: Some(assignment::SyncSettings {
                sync_reverse_assignment: true,
                sync_status_reverse: true,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await?;
    tracker_client
        .create_integration(tracker::CreateIntegrationRequest {
            integration_id: INTEGRATION.into(),
            display_name: "Acme Jira".into(),
            base_url: jira.base_url(),
            credentials: Some(tracker::Credentials {
                credential: Some(tracker::credentials::Credential::ApiToken(
                    tracker::ApiTokenCredential {
                        account_email: "bot@acme.example".into(),
                        api_token: "demo-token".into(),
                    },
                )),
            }),
            webhook_secret: WEBHOOK_SECRET.into(),
            email_api_allowed: false,
            request_id: String::new(),
            group_link_template: String::new(),
        })
        .await?;

    // The subscriber: prints every notification as it arrives.
    let mut stream = notifications
        .subscribe(assignment::SubscribeRequest {
            start: Some(proto::assignment::v1::subscribe_request::Start::StartAtHead(true)),
            ..Default::default()
        })
        .await?
        .into_inner();
    let names = users.clone();
    let printer = tokio::spawn(async move {
        let mut printed = 0;
        while let Some(Ok(message)) = stream.next().await {
            if let Some(assignment::subscribe_response::Event::Notification(n)) = message.event {
                let who = names
                    .iter()
                    .find(|(id, _)| *id == n.recipient_user_id)
                    .map_or("?", |(_, name)| *name);
                say(&format!(
                    "   notification #{} to {who} [{}]: {}",
                    n.sequence,
                    if n.update {
                        "edit the thread's message"
                    } else {
                        "new message"
                    },
                    n.message
                ));
                printed += 1;
                if printed == NOTIFICATIONS {
                    return;
                }
            }
        }
    });

    say("== the notifier delivers Jess's notifications to Slack, Kim's to Discord");
    let mut notifier_client =
        proto::notifier::v1::notifier_service_client::NotifierServiceClient::new(channel(
            notifier_addr,
        )?);
    set_destinations(&mut notifier_client, users[0].0, users[1].0).await?;

    say("== creating a Jira issue for both groups");
    let created = tracker_client
        .create_issue(tracker::CreateIssueRequest {
            integration_id: INTEGRATION.into(),
            organization_id: org,
            group_ids: group_ids.clone(),
            project_id: "10000".into(),
            issue_type_id: "1".into(),
            title: "Checkout is broken".into(),
            description: "Two error groups point at the cart".into(),
            fields: None,
            request_id: "demo-create-1".into(),
            acting_user_id: 0,
        })
        .await?
        .into_inner();
    let link_state = created.link_state();
    let issue = created.issue.context("issue")?;
    say(&format!(
        "   created {} ({}), link {:?}",
        issue.key, issue.url, link_state
    ));

    let http = {
        service_runtime::tls::install_crypto_provider();
        reqwest::Client::new()
    };
    let steps: [(&str, Vec<u8>); 3] = [
        (
            "Jira assigns the issue to Jess",
            payload("edit_issue_assignee_payload.json", |p| {
                p["issue"]["key"] = issue.key.clone().into();
                p["issue"]["id"] = issue.id.clone().into();
                p["issue"]["fields"]["updated"] = "2026-01-01T10:00:00.000+0000".into();
            })?,
        ),
        (
            "Jira reassigns it to Kim",
            payload("edit_issue_assignee_payload.json", |p| {
                p["issue"]["key"] = issue.key.clone().into();
                p["issue"]["id"] = issue.id.clone().into();
                p["issue"]["fields"]["assignee"]["emailAddress"] = "kim@sentry.io".into();
                p["issue"]["fields"]["updated"] = "2026-01-01T11:00:00.000+0000".into();
            })?,
        ),
        (
            "Jira moves it to Done",
            payload("edit_issue_status_payload.json", |p| {
                p["issue"]["key"] = issue.key.clone().into();
                p["issue"]["id"] = issue.id.clone().into();
                p["issue"]["fields"]["updated"] = "2026-01-01T12:00:00.000+0000".into();
                let item = &mut p["changelog"]["items"][0];
                item["from"] = "3".into();
                item["fromString"] = "In Progress".into();
                item["to"] = "10002".into();
                item["toString"] = "Done".into();
            })?,
        ),
    ];
    for (i, (what, body)) in steps.into_iter().enumerate() {
        say(&format!("== {what}: signed webhook"));
        let response = http
            .post(format!("http://{tracker_http}/webhooks/jira/{INTEGRATION}"))
            .header("x-hub-signature", sign(&body)?)
            .header("x-atlassian-webhook-identifier", format!("demo-{i}"))
            .body(body)
            .send()
            .await?;
        say(&format!("   tracker answered {}", response.status()));
        // Let this step's notifications print before the next step.
        tokio::time::sleep(Duration::from_millis(400)).await;
    }

    round_trip(&RoundTrip {
        jira: &jira,
        tracker_http,
        groups: &mut groups,
        directory: &mut directory,
        tracker: &mut tracker_client,
        org,
        group: group_ids[0],
        jess: users[0].0,
    })
    .await?;

    tokio::time::timeout(Duration::from_secs(20), printer)
        .await
        .context("the notifications did not all arrive in time")??;
    show_chat(&mut notifier_client, &chat).await?;
    say("\n== done: every change reached the subscriber and the chat tools. Shutting down.");
    shutdown.trigger();
    let _ = notifier_task.await;
    let _ = tracker_task.await;
    let _ = assignment_task.await;
    Ok(())
}

/// Notifications the demo waits for: 8 from the webhooks (assign, reassign,
/// resolve; two groups), 4 from the round trip (group 1 reassigned by us; group 2
/// following Jira).
const NOTIFICATIONS: usize = 12;

/// What the round trip uses.
struct RoundTrip<'a> {
    jira: &'a jira_sim::JiraSim,
    tracker_http: std::net::SocketAddr,
    groups: &'a mut assignment::group_service_client::GroupServiceClient<Channel>,
    directory: &'a mut assignment::directory_service_client::DirectoryServiceClient<Channel>,
    tracker: &'a mut tracker::tracker_service_client::TrackerServiceClient<Channel>,
    org: i64,
    group: i64,
    jess: i64,
}

/// Our side assigns group 1 to Jess; the tracker finds her Jira account by
/// her verified address and sets the issue's assignee; Jira's webhook about it
/// comes back: group 1 is unchanged (our own change), group 2, linked to the
/// same issue, follows Jira.
async fn round_trip(t: &RoundTrip<'_>) -> anyhow::Result<()> {
    say("== two-way: turning on outbound assignment sync");
    t.jira.add_user("acc-jess", "jess@sentry.io", true);
    t.jira.add_user("acc-kim", "kim@sentry.io", true);
    t.jira.send_webhooks_to(jira_sim::WebhookTarget {
        url: format!("http://{}/webhooks/jira/{INTEGRATION}", t.tracker_http),
        secret: WEBHOOK_SECRET.into(),
    });
    t.directory
        .clone()
        .update_installation(assignment::UpdateInstallationRequest {
            organization_id: t.org,
            integration_id: INTEGRATION.into(),
            sync_settings: Some(assignment::SyncSettings {
                sync_reverse_assignment: true,
                sync_status_reverse: true,
                sync_forward_assignment: true,
                sync_status_forward: false,
            }),
            request_id: String::new(),
        })
        .await?;
    say("== our side assigns group 1 to Jess (GroupService.AssignGroup)");
    t.groups
        .clone()
        .assign_group(assignment::AssignGroupRequest {
            group_id: t.group,
            user_id: t.jess,
            acting_user_id: 0,
            request_id: "demo-assign".into(),
        })
        .await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let issue = loop {
        if let Some(issue) = t.jira.issue("EX-1").filter(|i| i.assignee.is_some()) {
            break issue;
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the assignee never reached Jira");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    say(&format!(
        "   Jira now shows {} as {}'s assignee (one PUT /rest/api/2/issue/…/assignee)",
        issue.assignee.unwrap_or_default(),
        issue.key
    ));
    let echo = loop {
        let deliveries = t
            .tracker
            .clone()
            .list_webhook_deliveries(tracker::ListWebhookDeliveriesRequest::default())
            .await?
            .into_inner()
            .deliveries;
        if let Some(d) = deliveries.into_iter().find(|d| {
            d.delivery_key.starts_with("atlassian:sim-")
                && d.state() == tracker::DeliveryState::Delivered
        }) {
            break d;
        }
        if tokio::time::Instant::now() > deadline {
            bail!("Jira's webhook about our change never came back");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    for action in &echo.actions {
        let outcomes: Vec<String> = action
            .group_effects
            .iter()
            .map(|e| format!("group {} {:?}", e.group_id, e.outcome()))
            .collect();
        say(&format!(
            "   Jira's webhook came back: {} -> {}",
            action.summary,
            outcomes.join(", ")
        ));
    }
    Ok(())
}

async fn set_destinations(
    client: &mut proto::notifier::v1::notifier_service_client::NotifierServiceClient<Channel>,
    jess: i64,
    kim: i64,
) -> anyhow::Result<()> {
    use proto::notifier::v1 as pb;
    for (user, target) in [
        (
            jess,
            pb::destination::Target::Slack(pb::SlackDestination {
                channel: "DJESS".into(),
                bot_token: "xoxb-demo".into(),
            }),
        ),
        (
            kim,
            pb::destination::Target::Discord(pb::DiscordDestination {
                channel_id: "3003".into(),
                bot_token: "discord-demo".into(),
            }),
        ),
    ] {
        client
            .set_destination(pb::SetDestinationRequest {
                destination: Some(pb::Destination {
                    user_id: user,
                    target: Some(target),
                    update_time: None,
                }),
                request_id: format!("demo-destination-{user}"),
            })
            .await?;
    }
    Ok(())
}

/// Waits until the notifier has delivered every notification, then prints
/// what Jess sees in Slack and Kim in Discord: each message with its edits.
async fn show_chat(
    client: &mut proto::notifier::v1::notifier_service_client::NotifierServiceClient<Channel>,
    chat: &chat_sim::ChatSim,
) -> anyhow::Result<()> {
    use proto::notifier::v1 as pb;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let deliveries = client
            .list_deliveries(pb::ListDeliveriesRequest {
                page_size: 500,
                ..Default::default()
            })
            .await?
            .into_inner()
            .deliveries;
        let open = deliveries.iter().any(|d| {
            matches!(
                d.state(),
                pb::DeliveryState::Pending
                    | pb::DeliveryState::Sending
                    | pb::DeliveryState::Retrying
            )
        });
        if deliveries.len() >= NOTIFICATIONS && !open {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the notifier did not deliver everything in time");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (tool, channel, who) in [
        ("slack", "DJESS", "Jess in Slack"),
        ("discord", "3003", "Kim in Discord"),
    ] {
        say(&format!(
            "\n== what {who} sees (one message per group, edited in place)"
        ));
        for message in chat.messages(tool, channel) {
            for (i, text) in message.history.iter().enumerate() {
                let verb = if i == 0 { "posted" } else { "  edited to" };
                say(&format!("   {verb}: {text}"));
            }
        }
    }
    Ok(())
}
