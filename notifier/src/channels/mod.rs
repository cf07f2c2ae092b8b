//! Sending one notification to its tool: a new message, or an edit of the
//! thread's message. Each tool's answers are classified into one
//! [`Outcome`]: sent (with the message's id there), retry (rate limited or
//! unavailable, with the tool's `Retry-After` when it gave one), stop (a
//! refusal retrying cannot fix: a bad token, an unknown channel), or the
//! thread's message is gone (deleted at the tool: a new message is posted).
//!
//! Each send carries an idempotency marker derived from the sequence, so a
//! send repeated after a crash does not post twice: Slack message metadata
//! (looked up before re-posting), Discord's `nonce` with `enforce_nonce`,
//! the webhook's `webhook-id`.

mod discord;
mod slack;
mod webhook;

use std::time::Duration;

use crate::deliveries::Thread;
use crate::domain::{Notification, Target};

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Posted or edited; the message's id at the tool.
    Sent {
        /// Slack `ts`, Discord message id, or the webhook id.
        external_id: String,
    },
    /// Not now: try again (after `after` when the tool said).
    Retry {
        /// What the tool said.
        reason: String,
        /// The tool's `Retry-After`.
        after: Option<Duration>,
    },
    /// Refused for good.
    Stop {
        /// What the tool said.
        reason: String,
    },
    /// The thread's message no longer exists at the tool.
    ThreadGone,
}

impl Outcome {
    fn retry(reason: impl Into<String>, after: Option<Duration>) -> Self {
        Self::Retry {
            reason: reason.into(),
            after,
        }
    }

    fn stop(reason: impl Into<String>) -> Self {
        Self::Stop {
            reason: reason.into(),
        }
    }
}

/// What to send.
#[derive(Debug, Clone, Copy)]
pub struct Send<'a> {
    /// The notification.
    pub notification: &'a Notification,
    /// The thread's message to edit (an update whose thread went to this
    /// destination); `None` posts a new message.
    pub edit: Option<&'a Thread>,
    /// Whether an earlier attempt may have reached the tool (the notifier
    /// stopped while sending): look the message up before posting again.
    pub maybe_sent: bool,
}

/// The clients of the tools.
#[derive(Debug, Clone)]
pub struct Channels {
    http: reqwest::Client,
    slack_url: String,
    discord_url: String,
}

/// Where the tools' APIs are, and how long a request may take.
#[derive(Debug, Clone)]
pub struct ChannelSettings {
    /// Slack's Web API base URL.
    pub slack_url: String,
    /// Discord's API base URL.
    pub discord_url: String,
    /// One request's timeout.
    pub timeout: Duration,
}

impl Channels {
    /// Clients for `settings`.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(settings: &ChannelSettings) -> Result<Self, reqwest::Error> {
        service_runtime::tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .user_agent(concat!("jira-sync-notifier/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            http,
            slack_url: settings.slack_url.trim_end_matches('/').to_owned(),
            discord_url: settings.discord_url.trim_end_matches('/').to_owned(),
        })
    }

    /// Sends `send` to `target`.
    pub async fn send(&self, target: &Target, send: Send<'_>) -> Outcome {
        match target {
            Target::Slack { channel, bot_token } => {
                slack::send(&self.http, &self.slack_url, channel, bot_token, send).await
            }
            Target::Discord {
                channel_id,
                bot_token,
            } => discord::send(&self.http, &self.discord_url, channel_id, bot_token, send).await,
            Target::Webhook { url, secret } => webhook::send(&self.http, url, secret, send).await,
        }
    }
}

/// The `Retry-After` header in seconds, when present.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(3600.0)))
}

/// A failed request (no answer): worth retrying.
fn unreachable(tool: &str, error: &reqwest::Error) -> Outcome {
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "unreachable"
    } else {
        "failed"
    };
    Outcome::retry(format!("{tool} {what}"), None)
}

/// `text` cut to at most `max` characters (with an ellipsis when cut).
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut clipped: String = text.chars().take(max.saturating_sub(1)).collect();
    clipped.push('…');
    clipped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_bounds_them() {
        let mut headers = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(
            reqwest::header::RETRY_AFTER,
            reqwest::header::HeaderValue::from_static("2"),
        );
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert(
            reqwest::header::RETRY_AFTER,
            reqwest::header::HeaderValue::from_static("0.5"),
        );
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(500)));
        headers.insert(
            reqwest::header::RETRY_AFTER,
            reqwest::header::HeaderValue::from_static("99999"),
        );
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3600)));
        headers.insert(
            reqwest::header::RETRY_AFTER,
            reqwest::header::HeaderValue::from_static("soon"),
        );
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn long_texts_are_clipped_with_an_ellipsis() {
        assert_eq!(clip("short", 10), "short");
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("ééééé", 3).chars().count(), 3);
    }
}
