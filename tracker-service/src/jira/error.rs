//! What can go wrong talking to Jira, read from its responses.

use std::collections::BTreeMap;
use std::time::Duration;

use super::model::ErrorBody;

/// A failed Jira call, after the client's retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JiraError {
    /// 400 (or another 4xx with a JSON error body): the request was refused.
    #[error(
        "Jira refused the request (HTTP {status}): {}",
        summarize(messages, field_errors)
    )]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// `errorMessages`.
        messages: Vec<String>,
        /// `errors`, per field key.
        field_errors: BTreeMap<String, String>,
    },
    /// 401: Jira did not accept the integration's credentials.
    #[error(
        "Jira rejected the integration's credentials (HTTP 401){}",
        suffix(message)
    )]
    Unauthorized {
        /// What Jira said, if anything.
        message: String,
    },
    /// 403: the credentials are valid but lack a permission.
    #[error(
        "the integration's Jira account lacks permission (HTTP 403){}",
        suffix(message)
    )]
    Forbidden {
        /// What Jira said, if anything.
        message: String,
    },
    /// 404.
    #[error("Jira has no such resource (HTTP 404){}", suffix(message))]
    NotFound {
        /// What Jira said, if anything.
        message: String,
    },
    /// 429 still after the retry budget.
    #[error("Jira is rate-limiting the integration (HTTP 429)")]
    RateLimited {
        /// When Jira said to come back.
        retry_after: Option<Duration>,
    },
    /// 5xx still after the retry budget.
    #[error("{message}")]
    Unavailable {
        /// The HTTP status.
        status: u16,
        /// A readable description (Atlassian's HTML pages reduced to their title).
        message: String,
    },
    /// The request's deadline passed; Jira may or may not have acted on it.
    #[error("Jira did not answer in time")]
    Timeout,
    /// The connection failed (before or after sending).
    #[error("could not talk to Jira: {0}")]
    Connection(String),
    /// A status the client does not expect (a 4xx other than those above).
    #[error("unexpected response from Jira (HTTP {status}): {message}")]
    Unexpected {
        /// The HTTP status.
        status: u16,
        /// What was wrong.
        message: String,
    },
    /// A success whose body cannot be read (not JSON, or missing what the
    /// answer must hold). For a write, Jira may well have acted.
    #[error("unreadable answer from Jira (HTTP {status}): {message}")]
    Unreadable {
        /// The HTTP status (a 2xx).
        status: u16,
        /// What was wrong.
        message: String,
    },
}

/// The most characters of Jira's text an error keeps (messages, field errors,
/// bodies): Jira's answers can be large, and errors travel into responses and
/// stored deliveries.
pub const MAX_ERROR_TEXT: usize = 300;

/// At most [`MAX_ERROR_TEXT`] characters of `text`, marked when cut.
pub fn capped(text: &str) -> String {
    let trimmed = text.trim();
    if trimmed.chars().count() <= MAX_ERROR_TEXT {
        return trimmed.to_owned();
    }
    let mut short: String = trimmed.chars().take(MAX_ERROR_TEXT).collect();
    short.push('…');
    short
}

fn suffix(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

fn summarize(messages: &[String], field_errors: &BTreeMap<String, String>) -> String {
    let mut parts: Vec<String> = messages.to_vec();
    parts.extend(field_errors.iter().map(|(k, v)| format!("{k}: {v}")));
    if parts.is_empty() {
        "unknown error".to_owned()
    } else {
        parts.join("; ")
    }
}

impl JiraError {
    /// Whether Jira may have acted on the request although it failed (a write
    /// must then be checked before it is repeated).
    pub fn outcome_unknown(&self) -> bool {
        matches!(
            self,
            Self::Timeout
                | Self::Connection(_)
                | Self::Unavailable { .. }
                | Self::Unreadable { .. }
        )
    }

    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Timeout
                | Self::Connection(_)
                | Self::Unavailable { .. }
                | Self::RateLimited { .. }
                | Self::Unreadable { .. }
        )
    }

    /// Reads a non-success response.
    pub fn from_response(status: u16, content_type: &str, body: &str) -> Self {
        let json: Option<ErrorBody> =
            if content_type.contains("json") || body.trim_start().starts_with('{') {
                serde_json::from_str(body).ok()
            } else {
                None
            };
        let message = json
            .as_ref()
            .map(|b| capped(&b.error_messages.join(" ")))
            .unwrap_or_default();
        match status {
            401 => Self::Unauthorized { message },
            403 => Self::Forbidden { message },
            404 => Self::NotFound { message },
            429 => Self::RateLimited { retry_after: None },
            500..=599 => Self::Unavailable {
                status,
                message: unavailable_message(status, body),
            },
            400..=499 => match json {
                Some(body) if !body.error_messages.is_empty() || !body.errors.is_empty() => {
                    Self::Rejected {
                        status,
                        messages: body
                            .error_messages
                            .iter()
                            .take(MAX_FIELD_ERRORS)
                            .map(|m| capped(m))
                            .collect(),
                        field_errors: body
                            .errors
                            .into_iter()
                            .take(MAX_FIELD_ERRORS)
                            .map(|(k, v)| {
                                let text = match v {
                                    serde_json::Value::String(s) => s,
                                    serde_json::Value::Array(items) => items
                                        .iter()
                                        .map(|i| {
                                            i.as_str().map_or_else(|| i.to_string(), str::to_owned)
                                        })
                                        .collect::<Vec<_>>()
                                        .join(" "),
                                    other => other.to_string(),
                                };
                                (capped(&k), capped(&text))
                            })
                            .collect(),
                    }
                }
                _ => Self::Unexpected {
                    status,
                    message: excerpt(body),
                },
            },
            _ => Self::Unexpected {
                status,
                message: excerpt(body),
            },
        }
    }
}

/// A readable message for a 5xx: Atlassian's maintenance and outage pages are
/// HTML; their `<title>` says what happened.
fn unavailable_message(status: u16, body: &str) -> String {
    let title = body
        .find("<title>")
        .and_then(|start| {
            let rest = &body[start + "<title>".len()..];
            rest.find("</title>").map(|end| capped(&rest[..end]))
        })
        .filter(|t| !t.is_empty());
    match title {
        Some(title) if title.contains("Unavailable") => format!(
            "Jira is unavailable (HTTP {status}, Atlassian says \u{201c}{title}\u{201d}); try again later"
        ),
        Some(title) => {
            format!("Jira failed (HTTP {status}, \u{201c}{title}\u{201d}); try again later")
        }
        None => format!(
            "Jira failed (HTTP {status}): {}; try again later",
            excerpt(body)
        ),
    }
}

/// The most field errors kept from one answer.
const MAX_FIELD_ERRORS: usize = 50;

fn excerpt(body: &str) -> String {
    if body.trim().is_empty() {
        "empty body".to_owned()
    } else {
        capped(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_errors_are_read() {
        let e = JiraError::from_response(
            400,
            "application/json",
            r#"{"errorMessages":["Bad"],"errors":{"customfield_10200":"Option not valid","summary":["too long"]}}"#,
        );
        let JiraError::Rejected {
            messages,
            field_errors,
            ..
        } = e
        else {
            panic!("expected rejected");
        };
        assert_eq!(messages, vec!["Bad"]);
        assert_eq!(field_errors["customfield_10200"], "Option not valid");
        assert_eq!(field_errors["summary"], "too long");
    }

    #[test]
    fn atlassian_html_pages_become_readable() {
        let body = "<html><head><title>Atlassian Cloud Notifications - Product Unavailable</title></head><body>...</body></html>";
        let e = JiraError::from_response(503, "text/html", body);
        assert!(e.to_string().contains("Product Unavailable"));
        assert!(e.to_string().contains("unavailable"));
        assert!(!e.to_string().contains("<html>"));
        assert!(e.outcome_unknown());
    }

    #[test]
    fn credentials_errors_are_told_apart() {
        assert!(matches!(
            JiraError::from_response(401, "", ""),
            JiraError::Unauthorized { .. }
        ));
        assert!(matches!(
            JiraError::from_response(403, "", ""),
            JiraError::Forbidden { .. }
        ));
        let opaque = JiraError::from_response(400, "application/json", r#"{"error":"oops"}"#);
        assert!(matches!(opaque, JiraError::Unexpected { status: 400, .. }));
    }
}
