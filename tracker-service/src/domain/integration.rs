//! A Jira integration: where the site is, how to authenticate, how to verify its
//! webhooks. Secrets live in [`Secret`] so they cannot be printed by accident.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use service_runtime::ids::IntegrationId;
use service_runtime::secret::Secret;

/// Why a base URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidBaseUrl(String);

/// A Jira site's base URL: http or https, a host, no query or fragment; kept
/// without a trailing `/` so paths can be appended.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BaseUrl(String);

impl BaseUrl {
    /// Parses a base URL.
    ///
    /// # Errors
    /// When it is not an absolute http(s) URL without query or fragment.
    pub fn parse(raw: &str) -> Result<Self, InvalidBaseUrl> {
        let url = reqwest::Url::parse(raw.trim())
            .map_err(|e| InvalidBaseUrl(format!("{raw:?} is not a URL ({e})")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(InvalidBaseUrl(format!("{raw:?} must use http or https")));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(InvalidBaseUrl(format!("{raw:?} has no host")));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(InvalidBaseUrl(format!(
                "{raw:?} must not have a query or fragment"
            )));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(InvalidBaseUrl(
                "must not carry credentials; use the credentials field".into(),
            ));
        }
        Ok(Self(url.as_str().trim_end_matches('/').to_owned()))
    }

    /// The URL without a trailing `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The host (a name, an IPv4 address, or an IPv6 address in brackets).
    pub fn host(&self) -> String {
        reqwest::Url::parse(&self.0)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// The path part of the base URL (empty for a site at the root), which
    /// Connect's query hash leaves out.
    pub fn path(&self) -> String {
        reqwest::Url::parse(&self.0)
            .map(|u| u.path().trim_end_matches('/').to_owned())
            .unwrap_or_default()
    }
}

impl TryFrom<String> for BaseUrl {
    type Error = InvalidBaseUrl;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<BaseUrl> for String {
    fn from(value: BaseUrl) -> Self {
        value.0
    }
}

impl fmt::Debug for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BaseUrl({:?})", self.0)
    }
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How requests to Jira authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthMode {
    /// Basic auth with an account e-mail and API token.
    ApiToken,
    /// A bearer personal access token.
    PersonalAccessToken,
    /// Atlassian Connect: a JWT per request, signed with the shared secret.
    Connect,
}

impl AuthMode {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApiToken => "api_token",
            Self::PersonalAccessToken => "personal_access_token",
            Self::Connect => "connect",
        }
    }

    /// Reads the stored spelling back.
    pub fn from_stored(s: &str) -> Option<Self> {
        match s {
            "api_token" => Some(Self::ApiToken),
            "personal_access_token" => Some(Self::PersonalAccessToken),
            "connect" => Some(Self::Connect),
            _ => None,
        }
    }
}

/// The credential for a Jira site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// Basic auth (Jira Cloud).
    ApiToken {
        /// The account e-mail.
        account_email: String,
        /// The API token.
        api_token: Secret<String>,
    },
    /// Bearer token (Jira Data Center / Server).
    PersonalAccessToken {
        /// The token.
        token: Secret<String>,
    },
    /// Atlassian Connect.
    Connect {
        /// The installation's client key (`iss` of Jira's JWTs).
        client_key: String,
        /// The shared secret.
        shared_secret: Secret<String>,
    },
}

impl Credentials {
    /// Whether the site addresses users by name (Jira Data Center / Server)
    /// rather than by account id (Cloud).
    pub fn addresses_users_by_name(&self) -> bool {
        matches!(self, Self::PersonalAccessToken { .. })
    }

    /// The auth mode this credential selects.
    pub fn mode(&self) -> AuthMode {
        match self {
            Self::ApiToken { .. } => AuthMode::ApiToken,
            Self::PersonalAccessToken { .. } => AuthMode::PersonalAccessToken,
            Self::Connect { .. } => AuthMode::Connect,
        }
    }
}

/// An integration with its secrets (never leaves the service).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Integration {
    /// Its id.
    pub id: IntegrationId,
    /// Display name.
    pub display_name: String,
    /// The site.
    pub base_url: BaseUrl,
    /// How to authenticate.
    pub credentials: Credentials,
    /// HMAC secret for `X-Hub-Signature`, when set.
    pub webhook_secret: Option<Secret<String>>,
    /// Whether the e-mail API may be called for hidden assignee addresses.
    pub email_api_allowed: bool,
    /// The link back to a group, when configured.
    pub group_link_template: Option<GroupLinkTemplate>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// The link back to a group that issues carry: an http(s) URL with a
/// `{group_id}` placeholder and optionally `{organization}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupLinkTemplate(String);

/// The longest template accepted, in characters.
pub const MAX_GROUP_LINK_TEMPLATE_CHARS: usize = 500;

impl GroupLinkTemplate {
    /// Parses a template.
    ///
    /// # Errors
    /// When it is not an http(s) URL with `{group_id}`, or too long, or has
    /// spaces or control characters.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.chars().count() > MAX_GROUP_LINK_TEMPLATE_CHARS {
            return Err(format!(
                "is longer than {MAX_GROUP_LINK_TEMPLATE_CHARS} characters"
            ));
        }
        if !(raw.starts_with("https://") || raw.starts_with("http://")) {
            return Err("must be an http:// or https:// URL".into());
        }
        if !raw.contains("{group_id}") {
            return Err("must contain the {group_id} placeholder".into());
        }
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("must not contain spaces or control characters".into());
        }
        Ok(Self(raw.to_owned()))
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The link to one group.
    pub fn render(&self, organization_id: i64, group_id: i64) -> String {
        self.0
            .replace("{organization}", &organization_id.to_string())
            .replace("{group_id}", &group_id.to_string())
    }
}

/// What the API may show of an integration: everything but the secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntegrationSummary {
    /// Its id.
    pub id: IntegrationId,
    /// Display name.
    pub display_name: String,
    /// The site.
    pub base_url: BaseUrl,
    /// How requests authenticate.
    pub auth_mode: AuthMode,
    /// The account e-mail (API-token auth), else empty.
    pub account_email: String,
    /// The Connect client key (Connect auth), else empty.
    pub connect_client_key: String,
    /// Whether webhooks must be HMAC-signed.
    pub webhook_secret_set: bool,
    /// Whether the e-mail API may be used.
    pub email_api_allowed: bool,
    /// The link back to a group, when configured.
    pub group_link_template: Option<GroupLinkTemplate>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl Integration {
    /// The secret-free view.
    pub fn summary(&self) -> IntegrationSummary {
        let (account_email, connect_client_key) = match &self.credentials {
            Credentials::ApiToken { account_email, .. } => (account_email.clone(), String::new()),
            Credentials::PersonalAccessToken { .. } => (String::new(), String::new()),
            Credentials::Connect { client_key, .. } => (String::new(), client_key.clone()),
        };
        IntegrationSummary {
            id: self.id.clone(),
            display_name: self.display_name.clone(),
            base_url: self.base_url.clone(),
            auth_mode: self.credentials.mode(),
            account_email,
            connect_client_key,
            webhook_secret_set: self.webhook_secret.is_some(),
            email_api_allowed: self.email_api_allowed,
            group_link_template: self.group_link_template.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_normalised_and_checked() {
        let url = BaseUrl::parse("https://example.atlassian.net/").expect("valid");
        assert_eq!(url.as_str(), "https://example.atlassian.net");
        assert_eq!(url.path(), "");
        let nested = BaseUrl::parse("http://127.0.0.1:8080/jira/").expect("valid");
        assert_eq!(nested.path(), "/jira");
        for bad in [
            "",
            "example.net",
            "ftp://x.net",
            "https://x.net/?a=1",
            "https://u:p@x.net",
        ] {
            assert!(BaseUrl::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let integration = Integration {
            id: IntegrationId::parse("acme").expect("valid"),
            display_name: "Acme".into(),
            base_url: BaseUrl::parse("https://acme.atlassian.net").expect("valid"),
            credentials: Credentials::ApiToken {
                account_email: "bot@acme.example".into(),
                api_token: Secret::new("hunter2-token".into()),
            },
            webhook_secret: Some(Secret::new("hook-secret".into())),
            email_api_allowed: false,
            group_link_template: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        };
        let shown = format!("{integration:?} {:?}", integration.summary());
        assert!(!shown.contains("hunter2-token"));
        assert!(!shown.contains("hook-secret"));
    }
}
