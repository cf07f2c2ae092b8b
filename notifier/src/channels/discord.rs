//! Discord's REST API: create a channel message (with the sequence as its
//! `nonce` and `enforce_nonce`, so Discord itself refuses a second message
//! for a repeated attempt within minutes), or edit the thread's message
//! (PATCH). Rate limits are HTTP 429 with `retry_after` in the body.

use reqwest::StatusCode;
use serde_json::{Value, json};
use service_runtime::secret::Secret;

use super::{Outcome, Send, clip, retry_after, unreachable};

/// Discord's limit on a message's content.
const MAX_CONTENT: usize = 2000;

pub(super) async fn send(
    http: &reqwest::Client,
    base: &str,
    channel_id: &str,
    token: &Secret<String>,
    send: Send<'_>,
) -> Outcome {
    let n = send.notification;
    let content = clip(&n.message, MAX_CONTENT);
    let request = match send.edit {
        Some(thread) => http
            .patch(format!(
                "{base}/channels/{channel_id}/messages/{}",
                thread.external_id
            ))
            .json(&json!({"content": content, "allowed_mentions": {"parse": []}})),
        None => http
            .post(format!("{base}/channels/{channel_id}/messages"))
            .json(&json!({
                "content": content,
                "nonce": format!("js{}", n.sequence),
                "enforce_nonce": true,
                "allowed_mentions": {"parse": []},
            })),
    };
    let response = match request
        .header("authorization", format!("Bot {}", token.expose()))
        .send()
        .await
    {
        Ok(response) => response,
        Err(error) => return unreachable("Discord", &error),
    };
    let status = response.status();
    let header_after = retry_after(response.headers());
    let body: Value = response.json().await.unwrap_or(Value::Null);
    classify(status, &body, send.edit.is_some(), header_after)
}

fn classify(
    status: StatusCode,
    body: &Value,
    editing: bool,
    header_after: Option<std::time::Duration>,
) -> Outcome {
    if status.is_success() {
        return match body["id"].as_str() {
            Some(id) => Outcome::Sent {
                external_id: id.to_owned(),
            },
            None => Outcome::retry("Discord answered without a message id", header_after),
        };
    }
    let message = body["message"].as_str().unwrap_or("no message");
    if status == StatusCode::TOO_MANY_REQUESTS {
        let after = body["retry_after"]
            .as_f64()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| std::time::Duration::from_secs_f64(s.min(3600.0)))
            .or(header_after);
        return Outcome::retry("Discord rate limited (HTTP 429)", after);
    }
    // 10008: Unknown Message.
    if editing && status == StatusCode::NOT_FOUND && body["code"] == json!(10008) {
        return Outcome::ThreadGone;
    }
    if status.is_server_error() {
        return Outcome::retry(format!("Discord answered HTTP {status}"), header_after);
    }
    Outcome::stop(format!("Discord answered HTTP {status}: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified() {
        assert_eq!(
            classify(StatusCode::OK, &json!({"id": "42"}), false, None),
            Outcome::Sent {
                external_id: "42".into()
            }
        );
        assert_eq!(
            classify(
                StatusCode::TOO_MANY_REQUESTS,
                &json!({"retry_after": 1.5}),
                false,
                None
            ),
            Outcome::Retry {
                reason: "Discord rate limited (HTTP 429)".into(),
                after: Some(std::time::Duration::from_millis(1500))
            }
        );
        assert_eq!(
            classify(StatusCode::NOT_FOUND, &json!({"code": 10008}), true, None),
            Outcome::ThreadGone
        );
        assert!(matches!(
            classify(
                StatusCode::NOT_FOUND,
                &json!({"code": 10003, "message": "Unknown Channel"}),
                false,
                None
            ),
            Outcome::Stop { .. }
        ));
        assert!(matches!(
            classify(StatusCode::UNAUTHORIZED, &json!({}), false, None),
            Outcome::Stop { .. }
        ));
        assert!(matches!(
            classify(StatusCode::BAD_GATEWAY, &Value::Null, false, None),
            Outcome::Retry { .. }
        ));
    }
}
