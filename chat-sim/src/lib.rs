//! Chat tools faked at the HTTP level, for the notifier: Slack's Web API
//! (`chat.postMessage`, `chat.update`, `conversations.history` with message
//! metadata), Discord's REST API (create and edit a channel message, with
//! `nonce` + `enforce_nonce` deduplication) and a receiver of Standard
//! Webhooks that verifies signatures and deduplicates by `webhook-id`.
//!
//! Each keeps what a user would see (the messages of each channel, with their
//! edits) and records every request; failures are scripted per tool (a queue of
//! answers served before the normal ones): Slack `ok:false` errors, HTTP 429
//! with `Retry-After` / Discord's `retry_after`, 5xx. Only HTTP is simulated:
//! the notifier's real clients talk to it over a real socket.
//!
//! Routes: Slack under `/slack/api/`, Discord under `/discord/api/v10/`,
//! webhooks at `/hooks/{name}` (register the name's secret first), and
//! `GET /_sim/messages`, every channel's messages as JSON. The `chat-sim`
//! binary serves them on their own (for `cargo xtask up`), with the hook
//! `local` verifying the secret it is given.

#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac as _};
use serde_json::{Value, json};
use sha2::Sha256;

/// A message as the channel shows it: its id, its current text, and how many
/// times it was edited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Slack `ts`, Discord message id, or the webhook's `webhook-id`.
    pub id: String,
    /// The text now.
    pub text: String,
    /// Every text it had, first to last.
    pub history: Vec<String>,
    /// Slack message metadata's `event_payload`, or the webhook's body.
    pub metadata: Value,
}

/// One request received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `slack`, `discord` or `webhook`.
    pub tool: &'static str,
    /// What it asked for (`chat.postMessage`, `create`, `edit`, `hook`, ...).
    pub action: String,
    /// The channel (or hook name).
    pub channel: String,
    /// The answer's HTTP status.
    pub status: u16,
    /// When it arrived.
    pub at: std::time::Instant,
    /// The message text it carried (Slack `text`, Discord `content`, the
    /// webhook's `data.message`), or empty.
    pub text: String,
}

/// A scripted answer, served instead of the normal one.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// HTTP 429, with `Retry-After` (and Discord's `retry_after`) in seconds.
    RateLimited(f64),
    /// Slack: HTTP 200 with `{"ok": false, "error": …}`; Discord and webhooks:
    /// HTTP 403/404 with the text.
    Error(&'static str),
    /// This HTTP status (500, 503).
    Status(u16),
    /// The request is applied (the message posted), but the answer is lost:
    /// HTTP 502, as when a proxy or the network fails after the tool acted.
    LostAnswer,
}

#[derive(Debug, Default)]
struct World {
    /// Messages per tool and channel, in creation order.
    channels: HashMap<(&'static str, String), Vec<Message>>,
    recorded: Vec<Recorded>,
    failures: HashMap<&'static str, VecDeque<Failure>>,
    /// Valid bot tokens per tool; empty: any.
    tokens: HashMap<&'static str, HashSet<String>>,
    /// Webhook signing secrets (raw bytes) by hook name.
    secrets: HashMap<String, Vec<u8>>,
    /// Discord nonces already used, with the message they created.
    nonces: HashMap<String, String>,
    /// Webhook ids received (a receiver deduplicates by them).
    hook_ids: HashSet<String>,
    next_id: u64,
}

type Shared = Arc<Mutex<World>>;

/// The running fake.
#[derive(Debug, Clone)]
pub struct ChatSim {
    addr: SocketAddr,
    world: Shared,
}

impl ChatSim {
    /// Starts on a free port of 127.0.0.1.
    pub async fn start() -> Self {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts on `addr`.
    pub async fn start_on(addr: SocketAddr) -> Self {
        let world: Shared = Arc::default();
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = router(Arc::clone(&world));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, world }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL of Slack's Web API here (`…/slack/api`).
    pub fn slack_url(&self) -> String {
        format!("http://{}/slack/api", self.addr)
    }

    /// The base URL of Discord's API here (`…/discord/api/v10`).
    pub fn discord_url(&self) -> String {
        format!("http://{}/discord/api/v10", self.addr)
    }

    /// The URL of hook `name`, which verifies signatures with `secret` (the
    /// `whsec_…` form).
    pub fn hook(&self, name: &str, secret: &str) -> String {
        let raw = STANDARD
            .decode(secret.trim_start_matches("whsec_"))
            .unwrap();
        self.world
            .lock()
            .unwrap()
            .secrets
            .insert(name.to_owned(), raw);
        format!("http://{}/hooks/{name}", self.addr)
    }

    /// Accepts only these bot tokens for `tool` (`slack`, `discord`).
    pub fn accept_tokens(&self, tool: &'static str, tokens: &[&str]) {
        self.world
            .lock()
            .unwrap()
            .tokens
            .insert(tool, tokens.iter().map(|t| (*t).to_owned()).collect());
    }

    /// Serves `failures` to `tool`'s next requests, in order.
    pub fn fail_next(&self, tool: &'static str, failures: impl IntoIterator<Item = Failure>) {
        self.world
            .lock()
            .unwrap()
            .failures
            .entry(tool)
            .or_default()
            .extend(failures);
    }

    /// The messages of `tool`'s `channel` (hook name for webhooks), oldest first.
    pub fn messages(&self, tool: &'static str, channel: &str) -> Vec<Message> {
        self.world
            .lock()
            .unwrap()
            .channels
            .get(&(tool, channel.to_owned()))
            .cloned()
            .unwrap_or_default()
    }

    /// Every request so far.
    pub fn recorded(&self) -> Vec<Recorded> {
        self.world.lock().unwrap().recorded.clone()
    }
}

fn router(world: Shared) -> Router {
    Router::new()
        .route("/slack/api/chat.postMessage", post(slack_post))
        .route("/slack/api/chat.update", post(slack_update))
        .route("/slack/api/conversations.history", get(slack_history))
        .route(
            "/discord/api/v10/channels/{channel}/messages",
            post(discord_create),
        )
        .route(
            "/discord/api/v10/channels/{channel}/messages/{message}",
            patch(discord_edit),
        )
        .route("/hooks/{name}", post(hook))
        .route("/_sim/messages", get(all_messages))
        .with_state(world)
}

/// Every channel's messages, for people trying the notifier locally.
async fn all_messages(State(world): State<Shared>) -> Response {
    let world = world.lock().unwrap();
    let mut channels: Vec<Value> = world
        .channels
        .iter()
        .map(|((tool, channel), messages)| {
            json!({
                "tool": tool,
                "channel": channel,
                "messages": messages.iter().map(|m| json!({"id": m.id, "text": m.text, "history": m.history})).collect::<Vec<_>>(),
            })
        })
        .collect();
    channels.sort_by_key(|c| (c["tool"].to_string(), c["channel"].to_string()));
    axum::Json(json!({ "channels": channels })).into_response()
}

fn record(world: &mut World, tool: &'static str, action: &str, channel: &str, status: u16) {
    record_text(world, tool, action, channel, status, String::new());
}

fn record_text(
    world: &mut World,
    tool: &'static str,
    action: &str,
    channel: &str,
    status: u16,
    text: String,
) {
    world.recorded.push(Recorded {
        tool,
        action: action.to_owned(),
        channel: channel.to_owned(),
        status,
        at: std::time::Instant::now(),
        text,
    });
}

/// The scripted failure for `tool`'s next request, as a response.
fn scripted(world: &mut World, tool: &'static str) -> Option<Response> {
    let queue = world.failures.get_mut(tool)?;
    if queue.front() == Some(&Failure::LostAnswer) {
        return None;
    }
    let failure = queue.pop_front()?;
    Some(match failure {
        Failure::LostAnswer => lost(),
        Failure::RateLimited(seconds) => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", format!("{}", seconds.ceil()))],
            axum::Json(json!({"ok": false, "error": "ratelimited", "message": "You are being rate limited.", "retry_after": seconds, "global": false})),
        )
            .into_response(),
        Failure::Error(error) if tool == "slack" => {
            axum::Json(json!({"ok": false, "error": error})).into_response()
        }
        Failure::Error(error) => (
            StatusCode::FORBIDDEN,
            axum::Json(json!({"message": error, "code": 50001})),
        )
            .into_response(),
        Failure::Status(status) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "scripted failure",
        )
            .into_response(),
    })
}

fn lost() -> Response {
    (StatusCode::BAD_GATEWAY, "the answer was lost").into_response()
}

/// Whether the next scripted failure is a lost answer (consumed if so): the
/// request is applied, then answered 502.
fn loses_answer(world: &mut World, tool: &'static str) -> bool {
    let queue = world.failures.entry(tool).or_default();
    if queue.front() == Some(&Failure::LostAnswer) {
        queue.pop_front();
        true
    } else {
        false
    }
}

fn token_ok(world: &World, tool: &'static str, headers: &HeaderMap, scheme: &str) -> bool {
    let Some(valid) = world.tokens.get(tool) else {
        return true;
    };
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix(scheme))
        .is_some_and(|token| valid.contains(token.trim()))
}

fn next_id(world: &mut World) -> u64 {
    world.next_id += 1;
    world.next_id
}

/// Runs a Slack method: the scripted failure, the token check, then `act`.
fn slack(
    world: &Shared,
    action: &str,
    headers: &HeaderMap,
    body: &Value,
    act: impl FnOnce(&mut World, &str) -> Value,
) -> Response {
    let mut world = world.lock().unwrap();
    let channel = body["channel"].as_str().unwrap_or_default().to_owned();
    let text = body["text"].as_str().unwrap_or_default().to_owned();
    if let Some(response) = scripted(&mut world, "slack") {
        let status = response.status().as_u16();
        record_text(&mut world, "slack", action, &channel, status, text);
        return response;
    }
    let lose = loses_answer(&mut world, "slack");
    let answer = if token_ok(&world, "slack", headers, "Bearer ") {
        act(&mut world, &channel)
    } else {
        json!({"ok": false, "error": "invalid_auth"})
    };
    if lose {
        record_text(&mut world, "slack", action, &channel, 502, text);
        return lost();
    }
    record_text(&mut world, "slack", action, &channel, 200, text);
    axum::Json(answer).into_response()
}

async fn slack_post(State(world): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    slack(
        &world,
        "chat.postMessage",
        &headers,
        &body,
        |world, channel| {
            if channel.is_empty() || channel.starts_with("missing") {
                return json!({"ok": false, "error": "channel_not_found"});
            }
            let id = next_id(world);
            let ts = format!("1700000000.{id:06}");
            let text = body["text"].as_str().unwrap_or_default().to_owned();
            world
                .channels
                .entry(("slack", channel.to_owned()))
                .or_default()
                .push(Message {
                    id: ts.clone(),
                    text: text.clone(),
                    history: vec![text],
                    metadata: body["metadata"]["event_payload"].clone(),
                });
            json!({"ok": true, "channel": channel, "ts": ts})
        },
    )
}

async fn slack_update(State(world): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    slack(&world, "chat.update", &headers, &body, |world, channel| {
        let ts = body["ts"].as_str().unwrap_or_default();
        let text = body["text"].as_str().unwrap_or_default().to_owned();
        let found = world
            .channels
            .get_mut(&("slack", channel.to_owned()))
            .and_then(|messages| messages.iter_mut().find(|m| m.id == ts));
        match found {
            Some(message) => {
                // An edit to the same text changes nothing a user sees.
                if message.text != text {
                    message.text = text.clone();
                    message.history.push(text);
                }
                json!({"ok": true, "channel": channel, "ts": ts})
            }
            None => json!({"ok": false, "error": "message_not_found"}),
        }
    })
}

async fn slack_history(State(world): State<Shared>, headers: HeaderMap, uri: Uri) -> Response {
    let channel = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("channel="))
        .unwrap_or_default()
        .to_owned();
    let body = json!({ "channel": channel });
    slack(
        &world,
        "conversations.history",
        &headers,
        &body,
        |world, channel| {
            let messages: Vec<Value> = world
            .channels
            .get(&("slack", channel.to_owned()))
            .map(|messages| {
                messages
                    .iter()
                    .rev()
                    .map(|m| {
                        json!({"ts": m.id, "text": m.text,
                               "metadata": {"event_type": "jira_sync_notification", "event_payload": m.metadata}})
                    })
                    .collect()
            })
            .unwrap_or_default();
            json!({"ok": true, "messages": messages})
        },
    )
}

/// Runs a Discord call: the scripted failure, the token check, then `act`.
fn discord(
    world: &Shared,
    action: &str,
    channel: &str,
    headers: &HeaderMap,
    act: impl FnOnce(&mut World) -> Response,
) -> Response {
    let mut world = world.lock().unwrap();
    let response = match scripted(&mut world, "discord") {
        Some(response) => response,
        None if !token_ok(&world, "discord", headers, "Bot ") => (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"message": "401: Unauthorized", "code": 0})),
        )
            .into_response(),
        None => {
            let lose = loses_answer(&mut world, "discord");
            let response = act(&mut world);
            if lose { lost() } else { response }
        }
    };
    let status = response.status().as_u16();
    record(&mut world, "discord", action, channel, status);
    response
}

async fn discord_create(
    State(world): State<Shared>,
    Path(channel): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    discord(&world, "create", &channel, &headers, |world| {
        if channel.starts_with("missing") {
            return (
                StatusCode::NOT_FOUND,
                axum::Json(json!({"message": "Unknown Channel", "code": 10003})),
            )
                .into_response();
        }
        let nonce = body["nonce"].as_str().map(ToOwned::to_owned);
        if body["enforce_nonce"] == json!(true)
            && let Some(id) = nonce.as_ref().and_then(|n| world.nonces.get(n))
        {
            let id = id.clone();
            let message = world
                .channels
                .get(&("discord", channel.clone()))
                .and_then(|ms| ms.iter().find(|m| m.id == id))
                .cloned();
            if let Some(message) = message {
                return axum::Json(
                    json!({"id": message.id, "channel_id": channel, "content": message.text}),
                )
                .into_response();
            }
        }
        let id = format!("{}", 1_100_000_000_000_000_000_u64 + next_id(world));
        let text = body["content"].as_str().unwrap_or_default().to_owned();
        if let Some(nonce) = nonce {
            world.nonces.insert(nonce, id.clone());
        }
        world
            .channels
            .entry(("discord", channel.clone()))
            .or_default()
            .push(Message {
                id: id.clone(),
                text: text.clone(),
                history: vec![text.clone()],
                metadata: Value::Null,
            });
        axum::Json(json!({"id": id, "channel_id": channel, "content": text})).into_response()
    })
}

async fn discord_edit(
    State(world): State<Shared>,
    Path((channel, message)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    discord(&world, "edit", &channel, &headers, |world| {
        let text = body["content"].as_str().unwrap_or_default().to_owned();
        let found = world
            .channels
            .get_mut(&("discord", channel.clone()))
            .and_then(|ms| ms.iter_mut().find(|m| m.id == message));
        match found {
            Some(m) => {
                if m.text != text {
                    m.text = text.clone();
                    m.history.push(text.clone());
                }
                axum::Json(json!({"id": message, "channel_id": channel, "content": text}))
                    .into_response()
            }
            None => (
                StatusCode::NOT_FOUND,
                axum::Json(json!({"message": "Unknown Message", "code": 10008})),
            )
                .into_response(),
        }
    })
}

/// The Standard Webhooks signature (`v1,<base64>`) of `body` sent as `id` at
/// `timestamp`, with the raw secret.
pub fn webhook_signature(secret: &[u8], id: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

async fn hook(
    State(world): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut world = world.lock().unwrap();
    let response = match scripted(&mut world, "webhook") {
        Some(response) => response,
        None => {
            let lose = loses_answer(&mut world, "webhook");
            let response = receive_hook(&mut world, &name, &headers, &body);
            if lose { lost() } else { response }
        }
    };
    let status = response.status().as_u16();
    record(&mut world, "webhook", "hook", &name, status);
    response
}

fn receive_hook(world: &mut World, name: &str, headers: &HeaderMap, body: &[u8]) -> Response {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (id, timestamp, signatures) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let Some(secret) = world.secrets.get(name) else {
        return (StatusCode::NOT_FOUND, "no such hook").into_response();
    };
    let expected = webhook_signature(secret, &id, &timestamp, body);
    if id.is_empty() || !signatures.split(' ').any(|s| s == expected) {
        return (StatusCode::UNAUTHORIZED, "bad signature").into_response();
    }
    if !world.hook_ids.insert(id.clone()) {
        // A redelivery of the same message: acknowledged, not applied twice.
        return StatusCode::NO_CONTENT.into_response();
    }
    let messages = world
        .channels
        .entry(("webhook", name.to_owned()))
        .or_default();
    let payload: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let text = payload["data"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let previous = payload["data"]["previous_webhook_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    // An update edits the thread's first message, as a chat tool would show it.
    if let Some(thread) = messages.iter_mut().find(|m| m.id == previous) {
        thread.text = text.clone();
        thread.history.push(text);
        let mut ids = thread.metadata["edits"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        ids.push(json!(id));
        thread.metadata["edits"] = json!(ids);
        return StatusCode::NO_CONTENT.into_response();
    }
    messages.push(Message {
        id,
        text: text.clone(),
        history: vec![text],
        metadata: payload,
    });
    StatusCode::NO_CONTENT.into_response()
}
