//! Slack's Web API: `chat.postMessage` for a new message (with metadata
//! naming the notification's sequence), `chat.update` with the thread's `ts`
//! for an edit, and `conversations.history` to find a message an interrupted
//! attempt may have posted. Slack answers HTTP 200 with `ok: false` and an
//! error code for most failures; rate limits are HTTP 429 with `Retry-After`.

use reqwest::StatusCode;
use serde_json::{Value, json};
use service_runtime::secret::Secret;

use super::{Outcome, Send, clip, retry_after, unreachable};

/// Slack's limit on a message's text is 40,000 characters; we stay well under.
const MAX_TEXT: usize = 4000;

/// The metadata event type our messages carry.
const EVENT_TYPE: &str = "jira_sync_notification";

/// Errors retrying may fix (Slack's side).
const TRANSIENT: &[&str] = &[
    "ratelimited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
];

/// Errors meaning the thread's message is gone.
const GONE: &[&str] = &[
    "message_not_found",
    "cant_update_message",
    "edit_window_closed",
];

pub(super) async fn send(
    http: &reqwest::Client,
    base: &str,
    channel: &str,
    token: &Secret<String>,
    send: Send<'_>,
) -> Outcome {
    let n = send.notification;
    if send.edit.is_none()
        && send.maybe_sent
        && let Some(ts) = find_posted(http, base, channel, token, n.sequence).await
    {
        return Outcome::Sent { external_id: ts };
    }
    let (method, body) = match send.edit {
        Some(thread) => (
            "chat.update",
            json!({"channel": channel, "ts": thread.external_id, "text": clip(&n.message, MAX_TEXT)}),
        ),
        None => (
            "chat.postMessage",
            json!({
                "channel": channel,
                "text": clip(&n.message, MAX_TEXT),
                "unfurl_links": false,
                "metadata": {"event_type": EVENT_TYPE, "event_payload": {"sequence": n.sequence, "message_key": n.message_key}},
            }),
        ),
    };
    let answer = http
        .post(format!("{base}/{method}"))
        .bearer_auth(token.expose())
        .json(&body)
        .send()
        .await;
    let response = match answer {
        Ok(response) => response,
        Err(error) => return unreachable("Slack", &error),
    };
    let status = response.status();
    let after = retry_after(response.headers());
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Outcome::retry("Slack rate limited (HTTP 429)", after);
    }
    if status.is_server_error() {
        return Outcome::retry(format!("Slack answered HTTP {status}"), after);
    }
    let body: Value = match response.json().await {
        Ok(body) => body,
        Err(_) => {
            return Outcome::retry(format!("Slack answered HTTP {status} without JSON"), after);
        }
    };
    classify(&body, send.edit.is_some(), after)
}

/// Reads a Slack answer body.
fn classify(body: &Value, editing: bool, after: Option<std::time::Duration>) -> Outcome {
    if body["ok"] == json!(true) {
        return match body["ts"].as_str() {
            Some(ts) => Outcome::Sent {
                external_id: ts.to_owned(),
            },
            None => Outcome::retry("Slack answered ok without a ts", after),
        };
    }
    let error = body["error"].as_str().unwrap_or("unknown_error");
    if editing && GONE.contains(&error) {
        return Outcome::ThreadGone;
    }
    if TRANSIENT.contains(&error) {
        return Outcome::retry(format!("Slack: {error}"), after);
    }
    Outcome::stop(format!("Slack: {error}"))
}

/// The `ts` of a message this notifier posted for `sequence` in `channel`,
/// among the channel's latest messages.
async fn find_posted(
    http: &reqwest::Client,
    base: &str,
    channel: &str,
    token: &Secret<String>,
    sequence: i64,
) -> Option<String> {
    let body: Value = http
        .get(format!(
            "{base}/conversations.history?channel={channel}&limit=100&include_all_metadata=true"
        ))
        .bearer_auth(token.expose())
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    body["messages"].as_array()?.iter().find_map(|m| {
        (m["metadata"]["event_type"] == json!(EVENT_TYPE)
            && m["metadata"]["event_payload"]["sequence"] == json!(sequence))
        .then(|| m["ts"].as_str().map(ToOwned::to_owned))
        .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified() {
        let sent = classify(&json!({"ok": true, "ts": "1.2"}), false, None);
        assert_eq!(
            sent,
            Outcome::Sent {
                external_id: "1.2".into()
            }
        );
        for (body, editing, expected) in [
            (json!({"ok": false, "error": "ratelimited"}), false, "retry"),
            (
                json!({"ok": false, "error": "internal_error"}),
                false,
                "retry",
            ),
            (
                json!({"ok": false, "error": "channel_not_found"}),
                false,
                "stop",
            ),
            (json!({"ok": false, "error": "invalid_auth"}), true, "stop"),
            (
                json!({"ok": false, "error": "message_not_found"}),
                true,
                "gone",
            ),
            (
                json!({"ok": false, "error": "message_not_found"}),
                false,
                "stop",
            ),
            (json!({"ok": true}), false, "retry"),
        ] {
            let got = match classify(&body, editing, None) {
                Outcome::Retry { .. } => "retry",
                Outcome::Stop { .. } => "stop",
                Outcome::ThreadGone => "gone",
                Outcome::Sent { .. } => "sent",
            };
            assert_eq!(got, expected, "{body}");
        }
    }
}
