//! Signed webhooks per the Standard Webhooks scheme: a JSON POST with
//! `webhook-id` (stable per notification: receivers deduplicate by it),
//! `webhook-timestamp` (Unix seconds) and `webhook-signature`
//! (`v1,` + base64 HMAC-SHA256 over `id.timestamp.body`). An update names
//! the thread's first webhook id as `previous_webhook_id`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac as _};
use reqwest::StatusCode;
use serde_json::json;
use sha2::Sha256;

use super::{Outcome, Send, retry_after, unreachable};
use crate::domain::{Notification, WebhookSecret};

/// The webhook id of a notification's delivery.
pub fn webhook_id(sequence: i64) -> String {
    format!("msg_jira_sync_{sequence}")
}

/// The `webhook-signature` value for `body` sent as `id` at `timestamp`.
pub fn signature(secret: &WebhookSecret, id: &str, timestamp: i64, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.bytes()) else {
        return String::new();
    };
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The JSON body of a notification's webhook.
pub fn body(n: &Notification, previous: Option<&str>) -> serde_json::Value {
    json!({
        "type": if n.update { "notification.updated" } else { "notification.created" },
        "timestamp": n.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": {
            "sequence": n.sequence,
            "recipient_user_id": n.recipient,
            "organization_id": n.organization_id,
            "group_id": n.group_id,
            "external_issue_key": n.external_issue_key,
            "integration_id": n.integration_id,
            "kind": n.kind,
            "message": n.message,
            "message_key": n.message_key,
            "update": n.update,
            "previous_webhook_id": previous,
            "traceparent": n.traceparent,
        },
    })
}

pub(super) async fn send(
    http: &reqwest::Client,
    url: &str,
    secret: &WebhookSecret,
    send: Send<'_>,
) -> Outcome {
    let n = send.notification;
    let id = webhook_id(n.sequence);
    let payload = body(n, send.edit.map(|thread| thread.external_id.as_str()));
    let bytes = serde_json::to_vec(&payload).unwrap_or_default();
    let timestamp = chrono::Utc::now().timestamp();
    let answer = http
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", timestamp.to_string())
        .header(
            "webhook-signature",
            signature(secret, &id, timestamp, &bytes),
        )
        .body(bytes)
        .send()
        .await;
    let response = match answer {
        Ok(response) => response,
        Err(error) => return unreachable("the webhook endpoint", &error),
    };
    let status = response.status();
    let after = retry_after(response.headers());
    if status.is_success() {
        // An update is its own delivery; the thread keeps its first id.
        return Outcome::Sent { external_id: id };
    }
    if status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
    {
        return Outcome::retry(
            format!("the webhook endpoint answered HTTP {status}"),
            after,
        );
    }
    Outcome::stop(format!("the webhook endpoint answered HTTP {status}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification.
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("valid");
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature(&secret, id, 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }
}
