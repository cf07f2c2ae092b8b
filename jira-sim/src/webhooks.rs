//! Webhooks the simulator sends after a change, as Jira does: a signed
//! `jira:issue_updated` with the current fields and a changelog, posted
//! once the change's answer went out (so a tracker sees its own changes come
//! back: echoes).
//!
//! The HTTP client is a minimal HTTP/1.1 POST over a TCP connection: the
//! receiver is a local test service on `http://127.0.0.1:…`.

use hmac::{Hmac, Mac as _};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Where to send webhooks, and the secret to sign them with.
#[derive(Debug, Clone)]
pub struct WebhookTarget {
    /// `http://host:port/path`.
    pub url: String,
    /// The integration's webhook secret (`X-Hub-Signature`).
    pub secret: String,
}

/// The `X-Hub-Signature` of a body.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Posts `payload` to `target`; returns the HTTP status, or an error text.
pub async fn post(
    target: &WebhookTarget,
    identifier: &str,
    payload: &Value,
) -> Result<u16, String> {
    let body = serde_json::to_vec(payload).map_err(|e| e.to_string())?;
    let rest = target
        .url
        .strip_prefix("http://")
        .ok_or_else(|| format!("only http:// targets: {}", target.url))?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut stream = tokio::net::TcpStream::connect(host)
        .await
        .map_err(|e| e.to_string())?;
    let head = format!(
        "POST /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nX-Hub-Signature: {}\r\nX-Atlassian-Webhook-Identifier: {identifier}\r\n\
         Connection: close\r\n\r\n",
        body.len(),
        signature(&target.secret, &body)
    );
    stream
        .write_all(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    stream.write_all(&body).await.map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .await
        .map_err(|e| e.to_string())?;
    let status_line = String::from_utf8_lossy(&answer);
    status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| "no HTTP status in the answer".to_owned())
}
