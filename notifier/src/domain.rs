//! The notifier's own types, parsed from the wire at the edge: destinations
//! (with their write-only secrets), notifications to deliver, and where a
//! delivery stands.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use service_runtime::secret::Secret;

/// Longest bot token or webhook URL accepted.
pub const MAX_TOKEN_LEN: usize = 256;
/// Longest webhook URL accepted.
pub const MAX_URL_LEN: usize = 2048;
/// Longest Slack conversation id accepted.
pub const MAX_CHANNEL_LEN: usize = 64;

/// Which chat tool a destination uses; stored as its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// Slack's Web API.
    Slack,
    /// Discord's REST API.
    Discord,
    /// A signed webhook.
    Webhook,
}

impl Channel {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Slack => "slack",
            Self::Discord => "discord",
            Self::Webhook => "webhook",
        }
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "slack" => Some(Self::Slack),
            "discord" => Some(Self::Discord),
            "webhook" => Some(Self::Webhook),
            _ => None,
        }
    }
}

/// A Standard Webhooks signing secret: `whsec_` and base64 of 24–64 bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Vec<u8>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

impl WebhookSecret {
    /// Parses the `whsec_…` form.
    ///
    /// # Errors
    /// What is wrong with it.
    pub fn parse(s: &str) -> Result<Self, String> {
        let encoded = s
            .strip_prefix("whsec_")
            .ok_or("must start with whsec_ (the Standard Webhooks form)")?;
        let raw = STANDARD
            .decode(encoded)
            .map_err(|_| "after whsec_ must come standard base64")?;
        if !(24..=64).contains(&raw.len()) {
            return Err(format!("must hold 24 to 64 bytes, not {}", raw.len()));
        }
        Ok(Self(raw))
    }

    /// The raw key.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// The `whsec_…` form (stored, never returned).
    pub fn encoded(&self) -> String {
        format!("whsec_{}", STANDARD.encode(&self.0))
    }
}

/// Where one user's notifications go, with the credential to get there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A Slack conversation.
    Slack {
        /// Channel (`C…`) or user (`U…`, a DM) id.
        channel: String,
        /// `xoxb-…`.
        bot_token: Secret<String>,
    },
    /// A Discord channel.
    Discord {
        /// The channel's snowflake.
        channel_id: String,
        /// The bot's token.
        bot_token: Secret<String>,
    },
    /// A signed webhook.
    Webhook {
        /// Where to POST.
        url: String,
        /// The signing key.
        secret: WebhookSecret,
    },
}

impl Target {
    /// The tool.
    pub fn channel(&self) -> Channel {
        match self {
            Self::Slack { .. } => Channel::Slack,
            Self::Discord { .. } => Channel::Discord,
            Self::Webhook { .. } => Channel::Webhook,
        }
    }

    /// The address at the tool (channel id or URL), without the secret.
    pub fn address(&self) -> &str {
        match self {
            Self::Slack { channel, .. } => channel,
            Self::Discord { channel_id, .. } => channel_id,
            Self::Webhook { url, .. } => url,
        }
    }

    /// The stored secret.
    pub fn secret(&self) -> String {
        match self {
            Self::Slack { bot_token, .. } | Self::Discord { bot_token, .. } => {
                bot_token.expose().clone()
            }
            Self::Webhook { secret, .. } => secret.encoded(),
        }
    }

    /// Rebuilds a target from its stored parts.
    ///
    /// # Errors
    /// A stored value that does not parse (a manual edit).
    pub fn from_stored(channel: &str, address: String, secret: String) -> Result<Self, String> {
        match Channel::parse(channel) {
            Some(Channel::Slack) => Ok(Self::Slack {
                channel: address,
                bot_token: Secret::new(secret),
            }),
            Some(Channel::Discord) => Ok(Self::Discord {
                channel_id: address,
                bot_token: Secret::new(secret),
            }),
            Some(Channel::Webhook) => Ok(Self::Webhook {
                url: address,
                secret: WebhookSecret::parse(&secret)?,
            }),
            None => Err(format!("unknown channel {channel:?}")),
        }
    }
}

/// Checks a Slack conversation id.
///
/// # Errors
/// Why it is not one.
pub fn slack_channel(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > MAX_CHANNEL_LEN || !s.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!(
            "must be a Slack conversation id (1–{MAX_CHANNEL_LEN} letters and digits, e.g. C0123ABCD)"
        ));
    }
    Ok(s.to_owned())
}

/// Checks a Discord channel id (a snowflake).
///
/// # Errors
/// Why it is not one.
pub fn discord_channel(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err("must be a Discord channel id (1–20 digits)".into());
    }
    Ok(s.to_owned())
}

/// Checks a bot token: printable ASCII without spaces, bounded.
///
/// # Errors
/// Why it is not one.
pub fn bot_token(s: &str) -> Result<Secret<String>, String> {
    if s.is_empty() || s.len() > MAX_TOKEN_LEN || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "must be 1–{MAX_TOKEN_LEN} printable ASCII characters without spaces"
        ));
    }
    Ok(Secret::new(s.to_owned()))
}

/// Checks a webhook URL: `https://` (or `http://` when allowed), bounded.
///
/// # Errors
/// Why it is not acceptable.
pub fn webhook_url(s: &str, allow_http: bool) -> Result<String, String> {
    if s.len() > MAX_URL_LEN {
        return Err(format!("must be at most {MAX_URL_LEN} characters"));
    }
    let parsed = reqwest::Url::parse(s).map_err(|e| format!("is not a URL: {e}"))?;
    match parsed.scheme() {
        "https" => {}
        "http" if allow_http => {}
        "http" => {
            return Err(
                "must be https:// (http:// is allowed only with --allow-http-webhooks)".into(),
            );
        }
        other => return Err(format!("must be https://, not {other}://")),
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("must name a host".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not carry credentials (the signature authenticates us)".into());
    }
    Ok(parsed.to_string())
}

/// A user's destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The recipient.
    pub user_id: i64,
    /// Where and how.
    pub target: Target,
    /// When it was set.
    pub updated_at: DateTime<Utc>,
}

/// A notification as the notifier keeps it until delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Its sequence in the assignment service's stream.
    pub sequence: i64,
    /// Who is told.
    pub recipient: i64,
    /// The recipient's organization.
    pub organization_id: i64,
    /// The group it is about.
    pub group_id: i64,
    /// The Jira issue key, or empty.
    pub external_issue_key: String,
    /// The integration, or empty.
    pub integration_id: String,
    /// `assigned`, `unassigned`, `resolved`, `unresolved`, `assignee_changed`.
    pub kind: String,
    /// The text to show.
    pub message: String,
    /// The thread: notifications with one key are one message, edited.
    pub message_key: String,
    /// Whether it edits the thread's message.
    pub update: bool,
    /// When the assignment service wrote it.
    pub created_at: DateTime<Utc>,
    /// W3C trace context of the call that wrote it.
    pub traceparent: String,
}

/// Where a delivery stands; stored as its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    /// Waiting for its turn.
    Pending,
    /// Being sent (or was, when the notifier stopped).
    Sending,
    /// Failed for now; tried again later.
    Retrying,
    /// Sent once.
    Sent,
    /// Refused for good.
    Stopped,
    /// No destination.
    Undeliverable,
}

impl DeliveryState {
    /// Every state.
    pub const ALL: [Self; 6] = [
        Self::Pending,
        Self::Sending,
        Self::Retrying,
        Self::Sent,
        Self::Stopped,
        Self::Undeliverable,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sending => "sending",
            Self::Retrying => "retrying",
            Self::Sent => "sent",
            Self::Stopped => "stopped",
            Self::Undeliverable => "undeliverable",
        }
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == s)
    }

    /// Whether nothing more will happen to it (unless an operator retries).
    pub fn is_final(self) -> bool {
        matches!(self, Self::Sent | Self::Stopped | Self::Undeliverable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_secrets_follow_the_standard_form() {
        let good = format!("whsec_{}", STANDARD.encode([7_u8; 32]));
        let secret = WebhookSecret::parse(&good).expect("valid");
        assert_eq!(secret.encoded(), good);
        assert!(!format!("{secret:?}").contains(&good[6..]));
        for bad in [
            "whsec_".to_owned(),
            STANDARD.encode([7_u8; 32]),
            format!("whsec_{}", STANDARD.encode([7_u8; 8])),
            format!("whsec_{}", STANDARD.encode([7_u8; 65])),
            "whsec_not base64!".to_owned(),
        ] {
            assert!(WebhookSecret::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn addresses_are_checked() {
        assert!(slack_channel("C0123ABCD").is_ok());
        for bad in ["", "C01 23", "#general", &"C".repeat(65)] {
            assert!(slack_channel(bad).is_err(), "{bad}");
        }
        assert!(discord_channel("112233445566778899").is_ok());
        for bad in ["", "12a", &"1".repeat(21)] {
            assert!(discord_channel(bad).is_err(), "{bad}");
        }
        assert!(webhook_url("https://hooks.example.com/x", false).is_ok());
        assert!(webhook_url("http://127.0.0.1:8080/x", true).is_ok());
        for (bad, allow_http) in [
            ("http://hooks.example.com/x", false),
            ("ftp://hooks.example.com/x", true),
            ("https://user:pw@hooks.example.com/x", false),
            ("not a url", true),
        ] {
            assert!(webhook_url(bad, allow_http).is_err(), "{bad}");
        }
        assert!(bot_token("xoxb-1-2-abc").is_ok());
        assert!(bot_token("has space").is_err());
        assert!(bot_token("").is_err());
    }

    #[test]
    fn states_round_trip_and_know_when_they_are_final() {
        for state in DeliveryState::ALL {
            assert_eq!(DeliveryState::parse(state.as_str()), Some(state));
        }
        assert!(DeliveryState::Sent.is_final());
        assert!(DeliveryState::Undeliverable.is_final());
        assert!(!DeliveryState::Sending.is_final());
        assert!(!DeliveryState::Retrying.is_final());
    }
}
