//! The tracker's error domain (`tracker.v1`) and how Jira's answers map into it.
//!
//! Logic modules return [`TrackerError`], the runtime's one error type in this
//! domain (its mapping to `google.rpc.Status` lives in
//! [`service_runtime::error`]). What is the tracker's own is the reading of
//! Jira's failures: a `400` with `errors{field: msg}` is INVALID_ARGUMENT
//! (`JIRA_REJECTED`) with one `BadRequest` violation per field, named as the
//! CreateIssue request names it; `401` is a credentials error
//! (FAILED_PRECONDITION: the caller cannot fix it by retrying), `403`
//! PERMISSION_DENIED; `429` and `5xx` that outlast the retry budget are
//! RESOURCE_EXHAUSTED (with `RetryInfo`) and UNAVAILABLE.

use service_runtime::error::{Domain, Error};
use service_runtime::status::FieldViolation;

pub use service_runtime::error::{Reason, Refusal};

use crate::jira::JiraError;

/// The `ErrorInfo.domain` of every error this service returns.
pub const ERROR_DOMAIN: &str = "tracker.v1";

/// Marks errors of the tracker's domain.
#[derive(Debug)]
pub enum Tracker {}

impl Domain for Tracker {
    const NAME: &'static str = ERROR_DOMAIN;
}

/// Everything that can go wrong in the tracker.
pub type TrackerError = Error<Tracker>;

/// The CreateIssue request field a Jira field error is about.
pub fn request_field(jira_key: &str) -> String {
    match jira_key {
        "summary" => "title".to_owned(),
        "description" => "description".to_owned(),
        "project" => "project_id".to_owned(),
        "issuetype" => "issue_type_id".to_owned(),
        other => format!("fields.{other}"),
    }
}

impl From<JiraError> for TrackerError {
    fn from(error: JiraError) -> Self {
        let text = error.to_string();
        let refusal = match error {
            JiraError::Rejected {
                status,
                messages,
                field_errors,
            } => {
                let message = if messages.is_empty() {
                    text
                } else {
                    format!("{text} ({})", messages.join(" "))
                };
                let mut refusal = Refusal::new(Reason::JiraRejected, message)
                    .with("jira_status", status.to_string());
                refusal.violations = field_errors
                    .iter()
                    .map(|(field, message)| FieldViolation::new(request_field(field), message))
                    .collect();
                refusal
            }
            JiraError::Unauthorized { .. } => Refusal::new(
                Reason::JiraCredentialsRejected,
                format!("{text}; update the integration's credentials (UpdateIntegration)"),
            )
            .with("jira_status", "401"),
            JiraError::Forbidden { .. } => {
                Refusal::new(Reason::JiraPermissionDenied, text).with("jira_status", "403")
            }
            JiraError::NotFound { .. } => {
                Refusal::new(Reason::JiraNotFound, text).with("jira_status", "404")
            }
            JiraError::RateLimited { retry_after } => {
                let mut refusal =
                    Refusal::new(Reason::JiraRateLimited, text).with("jira_status", "429");
                refusal.retry_after = retry_after;
                refusal
            }
            JiraError::Unavailable { status, .. } => {
                Refusal::new(Reason::JiraUnavailable, text).with("jira_status", status.to_string())
            }
            JiraError::Timeout => Refusal::new(Reason::JiraTimeout, text),
            JiraError::Connection(_) => Refusal::new(Reason::JiraUnreachable, text),
            JiraError::Unexpected { status, .. } => {
                let reason = if (400..500).contains(&status) {
                    Reason::JiraUnexpectedResponse
                } else {
                    Reason::JiraUnreadableResponse
                };
                Refusal::new(reason, text).with("jira_status", status.to_string())
            }
            JiraError::Unreadable { status, .. } => {
                Refusal::new(Reason::JiraUnreadableResponse, text)
                    .with("jira_status", status.to_string())
            }
        };
        refusal.into()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use tonic::{Code, Status};
    use tonic_types::StatusExt as _;

    use super::*;

    #[test]
    fn jira_field_errors_become_violations_of_request_fields() {
        let status = Status::from(TrackerError::from(JiraError::Rejected {
            status: 400,
            messages: vec![],
            field_errors: BTreeMap::from([
                ("summary".to_owned(), "too long".to_owned()),
                ("customfield_10200".to_owned(), "bad option".to_owned()),
            ]),
        }));
        assert_eq!(status.code(), Code::InvalidArgument);
        let fields: Vec<String> = status
            .get_details_bad_request()
            .expect("bad request")
            .field_violations
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(fields, vec!["fields.customfield_10200", "title"]);
    }

    #[test]
    fn rate_limits_carry_retry_info() {
        let status = Status::from(TrackerError::from(JiraError::RateLimited {
            retry_after: Some(std::time::Duration::from_secs(3)),
        }));
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(status.get_details_retry_info().is_some());
        assert_eq!(
            status.get_details_error_info().expect("info").reason,
            "JIRA_RATE_LIMITED"
        );
    }

    #[test]
    fn credential_errors_say_what_to_do() {
        let status = Status::from(TrackerError::from(JiraError::Unauthorized {
            message: String::new(),
        }));
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert!(status.message().contains("credentials"));
    }
}
