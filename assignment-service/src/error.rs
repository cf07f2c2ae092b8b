//! The assignment service's errors and their one mapping to `google.rpc.Status`.
//!
//! Logic modules return [`AssignmentError`]; the gRPC edge turns it into a status
//! with an `ErrorInfo` in the `assignment.v1` domain (and a `BadRequest` for field
//! errors). Internal causes are logged with an error id and never sent.

use std::collections::HashMap;

use sea_orm::DbErr;
use service_runtime::database::{is_transient, is_unique_violation};
use service_runtime::idempotency::{IdempotencyError, WriteError};
use service_runtime::status::{self, FieldViolation};
use tonic::{Code, Status};

/// The `ErrorInfo.domain` of every error this service returns.
pub const ERROR_DOMAIN: &str = "assignment.v1";

/// Everything that can go wrong in the assignment service.
#[derive(Debug, thiserror::Error)]
pub enum AssignmentError {
    /// The request is malformed; one violation per field.
    #[error("invalid argument: {0:?}")]
    InvalidArgument(Vec<FieldViolation>),
    /// A referenced resource does not exist.
    #[error("{resource} {id} not found")]
    NotFound {
        /// What kind of resource (`organization`, `group`, ...).
        resource: &'static str,
        /// Its identifier as the caller gave it.
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
        /// Machine-readable reason (`ErrorInfo.reason`).
        reason: &'static str,
        /// What to do about it.
        message: String,
    },
    /// A request id was reused for a different request (AIP-155).
    #[error("request id {request_id} was already used for a different request")]
    RequestIdReused {
        /// The reused id.
        request_id: String,
    },
    /// A stream cursor is behind retention, or a sequence beyond the head.
    #[error("{message}")]
    OutOfRange {
        /// What is out of range.
        message: String,
        /// The oldest sequence still available.
        oldest_available: u64,
        /// The newest sequence.
        head: u64,
    },
    /// The service is shutting down; retry on another replica or later.
    #[error("shutting down")]
    ShuttingDown,
    /// Two writers raced on the same request id; the caller retries and then
    /// sees the winner's stored response.
    #[error("concurrent duplicate request")]
    ConcurrentDuplicate,
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] DbErr),
    /// A stored value could not be read back (a defect or a manual edit).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

impl AssignmentError {
    /// A single field violation.
    pub fn invalid_field(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![FieldViolation::new(field, description)])
    }

    /// Whether retrying the whole call may succeed (a lost race, a transient
    /// database failure).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::ConcurrentDuplicate => true,
            Self::Database(err) => is_transient(err) || is_unique_violation(err),
            _ => false,
        }
    }
}

impl From<IdempotencyError> for AssignmentError {
    fn from(error: IdempotencyError) -> Self {
        match error {
            IdempotencyError::Reused(request_id) => Self::RequestIdReused { request_id },
            IdempotencyError::ConcurrentDuplicate => Self::ConcurrentDuplicate,
            IdempotencyError::Corrupt(what) => Self::Corrupt(what),
            IdempotencyError::Database(err) => Self::Database(err),
        }
    }
}

impl WriteError for AssignmentError {
    fn is_already_exists(&self) -> bool {
        matches!(self, Self::AlreadyExists { .. })
    }
}

impl From<Vec<FieldViolation>> for AssignmentError {
    fn from(violations: Vec<FieldViolation>) -> Self {
        Self::InvalidArgument(violations)
    }
}

fn info(code: Code, message: String, reason: &str, metadata: &[(&str, String)]) -> Status {
    let metadata: HashMap<String, String> = metadata
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    status::error_status(code, message, ERROR_DOMAIN, reason, metadata)
}

impl From<AssignmentError> for Status {
    fn from(error: AssignmentError) -> Self {
        match error {
            AssignmentError::InvalidArgument(violations) => {
                status::invalid_argument(ERROR_DOMAIN, &violations)
            }
            AssignmentError::NotFound { resource, id } => info(
                Code::NotFound,
                format!("{resource} {id} not found"),
                &format!("{}_NOT_FOUND", resource.to_uppercase().replace(' ', "_")),
                &[("resource", resource.to_owned()), ("id", id)],
            ),
            AssignmentError::AlreadyExists { resource, id } => info(
                Code::AlreadyExists,
                format!("{resource} {id} already exists"),
                &format!(
                    "{}_ALREADY_EXISTS",
                    resource.to_uppercase().replace(' ', "_")
                ),
                &[("resource", resource.to_owned()), ("id", id)],
            ),
            AssignmentError::FailedPrecondition { reason, message } => {
                info(Code::FailedPrecondition, message, reason, &[])
            }
            AssignmentError::RequestIdReused { request_id } => {
                status::invalid_argument_with_reason(
                    ERROR_DOMAIN,
                    "REQUEST_ID_REUSED",
                    &[FieldViolation::new(
                        "request_id",
                        format!(
                            "{request_id:?} was already used for a different request; use a new request id"
                        ),
                    )],
                )
            }
            AssignmentError::OutOfRange {
                message,
                oldest_available,
                head,
            } => info(
                Code::OutOfRange,
                message,
                "CURSOR_OUT_OF_RANGE",
                &[
                    ("oldest_available_sequence", oldest_available.to_string()),
                    ("head_sequence", head.to_string()),
                ],
            ),
            AssignmentError::ShuttingDown => info(
                Code::Unavailable,
                "the server is shutting down; reconnect".to_owned(),
                "SHUTTING_DOWN",
                &[],
            ),
            AssignmentError::ConcurrentDuplicate => info(
                Code::Aborted,
                "a concurrent request with the same request id won; retry to read its response"
                    .to_owned(),
                "CONCURRENT_DUPLICATE",
                &[],
            ),
            AssignmentError::Database(err) if is_transient(&err) => {
                status::unavailable(ERROR_DOMAIN, "the database", &err)
            }
            AssignmentError::Database(err) => status::internal(ERROR_DOMAIN, &err),
            AssignmentError::Corrupt(what) => status::internal(ERROR_DOMAIN, &what),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::StatusExt as _;

    #[test]
    fn every_status_carries_error_info() {
        let errors = vec![
            AssignmentError::invalid_field("slug", "must not be empty"),
            AssignmentError::NotFound {
                resource: "group",
                id: "7".into(),
            },
            AssignmentError::AlreadyExists {
                resource: "organization",
                id: "acme".into(),
            },
            AssignmentError::FailedPrecondition {
                reason: "NOT_INSTALLED",
                message: "x".into(),
            },
            AssignmentError::RequestIdReused {
                request_id: "r".into(),
            },
            AssignmentError::OutOfRange {
                message: "behind".into(),
                oldest_available: 5,
                head: 9,
            },
            AssignmentError::ShuttingDown,
            AssignmentError::ConcurrentDuplicate,
            AssignmentError::Database(DbErr::Custom("secret detail".into())),
            AssignmentError::Corrupt("bad".into()),
        ];
        for error in errors {
            let status = Status::from(error);
            let info = status.get_details_error_info().expect("error info");
            assert_eq!(info.domain, ERROR_DOMAIN);
            assert!(!info.reason.is_empty());
            assert!(!status.message().contains("secret detail"));
        }
    }

    #[test]
    fn out_of_range_names_the_oldest_sequence() {
        let status = Status::from(AssignmentError::OutOfRange {
            message: "behind".into(),
            oldest_available: 42,
            head: 50,
        });
        assert_eq!(status.code(), Code::OutOfRange);
        let info = status.get_details_error_info().expect("error info");
        assert_eq!(info.metadata["oldest_available_sequence"], "42");
    }
}
