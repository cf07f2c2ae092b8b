//! The tracker's errors and their one mapping to `google.rpc.Status`.
//!
//! Jira's answers map as DESIGN.md says: a `400` with `errors{field: msg}` is
//! INVALID_ARGUMENT with one `BadRequest` violation per field (named as the
//! CreateIssue request names it); `401` is a credentials error (FAILED_PRECONDITION,
//! the caller cannot fix it by retrying), `403` PERMISSION_DENIED; `429` and
//! `5xx` that outlast the retry budget are RESOURCE_EXHAUSTED (with `RetryInfo`)
//! and UNAVAILABLE. Internal causes are logged with an error id, never returned.

use std::collections::HashMap;

use sea_orm::DbErr;
use service_runtime::database::{is_transient, is_unique_violation};
use service_runtime::idempotency::{IdempotencyError, WriteError};
use service_runtime::status::{self, FieldViolation};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

use crate::jira::JiraError;

/// The `ErrorInfo.domain` of every error this service returns.
pub const ERROR_DOMAIN: &str = "tracker.v1";

/// Everything that can go wrong in the tracker.
#[derive(Debug, thiserror::Error)]
pub enum TrackerError {
    /// The request is malformed; one violation per field.
    #[error("invalid argument: {0:?}")]
    InvalidArgument(Vec<FieldViolation>),
    /// A referenced resource does not exist.
    #[error("{resource} {id} not found")]
    NotFound {
        /// What kind of resource.
        resource: &'static str,
        /// Its identifier.
        id: String,
    },
    /// A create would duplicate an existing resource.
    #[error("{resource} {id} already exists")]
    AlreadyExists {
        /// What kind of resource.
        resource: &'static str,
        /// The identifier that is taken.
        id: String,
    },
    /// The system is not in a state that allows the call.
    #[error("{message}")]
    FailedPrecondition {
        /// Machine-readable reason.
        reason: &'static str,
        /// What to do about it.
        message: String,
    },
    /// A request id was reused for a different request.
    #[error("request id {request_id} was already used for a different request")]
    RequestIdReused {
        /// The reused id.
        request_id: String,
    },
    /// A concurrent call with the same request id won; retry.
    #[error("concurrent duplicate request")]
    ConcurrentDuplicate,
    /// Jira failed or refused.
    #[error(transparent)]
    Jira(#[from] JiraError),
    /// An earlier attempt's outcome in Jira is not known yet; retrying later with
    /// the same request id is safe.
    #[error("{0}")]
    OutcomeUnknown(String),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] DbErr),
    /// A stored value could not be read back.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

impl TrackerError {
    /// A single field violation.
    pub fn invalid_field(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![FieldViolation::new(field, description)])
    }

    /// Whether retrying the whole call may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::ConcurrentDuplicate => true,
            Self::Database(err) => is_transient(err) || is_unique_violation(err),
            _ => false,
        }
    }
}

impl From<Vec<FieldViolation>> for TrackerError {
    fn from(violations: Vec<FieldViolation>) -> Self {
        Self::InvalidArgument(violations)
    }
}

impl From<IdempotencyError> for TrackerError {
    fn from(error: IdempotencyError) -> Self {
        match error {
            IdempotencyError::Reused(request_id) => Self::RequestIdReused { request_id },
            IdempotencyError::ConcurrentDuplicate => Self::ConcurrentDuplicate,
            IdempotencyError::Corrupt(what) => Self::Corrupt(what),
            IdempotencyError::Database(err) => Self::Database(err),
        }
    }
}

impl WriteError for TrackerError {
    fn is_already_exists(&self) -> bool {
        matches!(self, Self::AlreadyExists { .. })
    }
}

fn info(code: Code, message: String, reason: &str, metadata: &[(&str, String)]) -> Status {
    let metadata: HashMap<String, String> = metadata
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    status::error_status(code, message, ERROR_DOMAIN, reason, metadata)
}

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

fn jira_status(error: JiraError) -> Status {
    let text = error.to_string();
    match error {
        JiraError::Rejected {
            status,
            messages,
            field_errors,
        } => {
            let mut details = ErrorDetails::with_error_info(
                "JIRA_REJECTED",
                ERROR_DOMAIN,
                HashMap::from([("jira_status".to_owned(), status.to_string())]),
            );
            for (field, message) in &field_errors {
                details.add_bad_request_violation(request_field(field), message.clone());
            }
            let summary = if messages.is_empty() {
                text
            } else {
                format!("{text} ({})", messages.join(" "))
            };
            Status::with_error_details(Code::InvalidArgument, summary, details)
        }
        JiraError::Unauthorized { .. } => info(
            Code::FailedPrecondition,
            format!("{text}; update the integration's credentials (UpdateIntegration)"),
            "JIRA_CREDENTIALS_REJECTED",
            &[("jira_status", "401".into())],
        ),
        JiraError::Forbidden { .. } => info(
            Code::PermissionDenied,
            text,
            "JIRA_PERMISSION_DENIED",
            &[("jira_status", "403".into())],
        ),
        JiraError::NotFound { .. } => info(
            Code::NotFound,
            text,
            "JIRA_NOT_FOUND",
            &[("jira_status", "404".into())],
        ),
        JiraError::RateLimited { retry_after } => {
            let mut details = ErrorDetails::with_error_info(
                "JIRA_RATE_LIMITED",
                ERROR_DOMAIN,
                HashMap::from([("jira_status".to_owned(), "429".to_owned())]),
            );
            if let Some(delay) = retry_after {
                details.set_retry_info(Some(delay));
            }
            Status::with_error_details(Code::ResourceExhausted, text, details)
        }
        JiraError::Unavailable { status, .. } => info(
            Code::Unavailable,
            text,
            "JIRA_UNAVAILABLE",
            &[("jira_status", status.to_string())],
        ),
        JiraError::Timeout => info(Code::Unavailable, text, "JIRA_TIMEOUT", &[]),
        JiraError::Connection(_) => info(Code::Unavailable, text, "JIRA_UNREACHABLE", &[]),
        JiraError::Unexpected { status, .. } => info(
            if (400..500).contains(&status) {
                Code::FailedPrecondition
            } else {
                Code::Unavailable
            },
            text,
            "JIRA_UNEXPECTED_RESPONSE",
            &[("jira_status", status.to_string())],
        ),
    }
}

impl From<TrackerError> for Status {
    fn from(error: TrackerError) -> Self {
        match error {
            TrackerError::InvalidArgument(violations) => {
                status::invalid_argument(ERROR_DOMAIN, &violations)
            }
            TrackerError::NotFound { resource, id } => info(
                Code::NotFound,
                format!("{resource} {id} not found"),
                &format!("{}_NOT_FOUND", resource.to_uppercase().replace(' ', "_")),
                &[("resource", resource.to_owned()), ("id", id)],
            ),
            TrackerError::AlreadyExists { resource, id } => info(
                Code::AlreadyExists,
                format!("{resource} {id} already exists"),
                &format!(
                    "{}_ALREADY_EXISTS",
                    resource.to_uppercase().replace(' ', "_")
                ),
                &[("resource", resource.to_owned()), ("id", id)],
            ),
            TrackerError::FailedPrecondition { reason, message } => {
                info(Code::FailedPrecondition, message, reason, &[])
            }
            TrackerError::RequestIdReused { request_id } => status::invalid_argument_with_reason(
                ERROR_DOMAIN,
                "REQUEST_ID_REUSED",
                &[FieldViolation::new(
                    "request_id",
                    format!(
                        "{request_id:?} was already used for a different request; use a new request id"
                    ),
                )],
            ),
            TrackerError::ConcurrentDuplicate => info(
                Code::Aborted,
                "a concurrent request with the same request id won; retry to read its response"
                    .to_owned(),
                "CONCURRENT_DUPLICATE",
                &[],
            ),
            TrackerError::Jira(error) => jira_status(error),
            TrackerError::OutcomeUnknown(message) => {
                info(Code::Unavailable, message, "CREATE_OUTCOME_UNKNOWN", &[])
            }
            TrackerError::Database(err) if is_transient(&err) => {
                status::unavailable(ERROR_DOMAIN, "the database", &err)
            }
            TrackerError::Database(err) => status::internal(ERROR_DOMAIN, &err),
            TrackerError::Corrupt(what) => status::internal(ERROR_DOMAIN, &what),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn jira_field_errors_become_violations_of_request_fields() {
        let status = Status::from(TrackerError::Jira(JiraError::Rejected {
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
        let status = Status::from(TrackerError::Jira(JiraError::RateLimited {
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
        let status = Status::from(TrackerError::Jira(JiraError::Unauthorized {
            message: String::new(),
        }));
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert!(status.message().contains("credentials"));
    }
}
