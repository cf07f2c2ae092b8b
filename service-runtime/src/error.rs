//! The one error type both services return, and its one mapping to
//! `google.rpc.Status`.
//!
//! Logic modules return [`Error<D>`]; the domain marker `D` (one per service)
//! names the `ErrorInfo.domain` (`assignment.v1`, `tracker.v1`). Every status
//! carries an `ErrorInfo` whose reason is a [`Reason`] (a closed set, each with
//! its status code); field errors also carry a `BadRequest`, rate limits a
//! `RetryInfo`. Internal causes (database errors, corrupt rows) are logged with
//! an error id and never returned. Retryability, idempotency errors and the
//! retry helper for whole calls live here too, so each service states only what
//! is its own (the tracker's mapping of Jira's answers, say).

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use sea_orm::DbErr;
use tonic::Status;
use tonic_types::{ErrorDetails, StatusExt as _};

pub use proto::reason::Reason;

use crate::database::{is_transient, is_unique_violation};
use crate::idempotency::{IdempotencyError, WriteError};
use crate::status::{self, FieldViolation};

/// Names a service's `ErrorInfo.domain`; implemented by an empty marker type.
pub trait Domain: 'static {
    /// The domain: the service's proto package, e.g. `assignment.v1`.
    const NAME: &'static str;
}

/// A refusal with a specific reason and what the caller needs to act on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Why; fixes the status code.
    pub reason: Reason,
    /// What happened and what to do about it, for people.
    pub message: String,
    /// `ErrorInfo.metadata`.
    pub metadata: Vec<(&'static str, String)>,
    /// Fields to report in a `BadRequest` (e.g. Jira's field errors).
    pub violations: Vec<FieldViolation>,
    /// When to come back, sent as `RetryInfo`.
    pub retry_after: Option<Duration>,
}

impl Refusal {
    /// A refusal with only a reason and a message.
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
            metadata: Vec::new(),
            violations: Vec::new(),
            retry_after: None,
        }
    }

    /// Adds a metadata entry.
    #[must_use]
    pub fn with(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.metadata.push((key, value.into()));
        self
    }
}

/// Everything that can go wrong in a service whose errors are in domain `D`.
#[derive(thiserror::Error)]
pub enum Error<D: Domain> {
    /// The request is malformed; one violation per field.
    #[error("invalid argument: {}", list(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// A referenced resource does not exist (or is not the caller's to see).
    #[error("{resource} {id} not found")]
    NotFound {
        /// What kind of resource (`group`, `integration`, ...).
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
    /// A request id was reused for a different request (AIP-155).
    #[error("request id {request_id} was already used for a different request")]
    RequestIdReused {
        /// The reused id.
        request_id: String,
    },
    /// A concurrent call with the same request id committed first; a retry sees
    /// its stored response.
    #[error("a concurrent request with the same request id won")]
    ConcurrentDuplicate,
    /// The service is shutting down.
    #[error("shutting down")]
    ShuttingDown,
    /// Any other refusal, with its reason.
    #[error("{}", .0.message)]
    Refused(Box<Refusal>),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] DbErr),
    /// A stored value could not be read back (a defect or a manual edit).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// Never constructed: carries the domain.
    #[doc(hidden)]
    #[error("unreachable")]
    __Domain(std::convert::Infallible, PhantomData<fn() -> D>),
}

fn list(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl<D: Domain> fmt::Debug for Error<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidArgument(v) => f.debug_tuple("InvalidArgument").field(v).finish(),
            Self::NotFound { resource, id } => f
                .debug_struct("NotFound")
                .field("resource", resource)
                .field("id", id)
                .finish(),
            Self::AlreadyExists { resource, id } => f
                .debug_struct("AlreadyExists")
                .field("resource", resource)
                .field("id", id)
                .finish(),
            Self::RequestIdReused { request_id } => f
                .debug_struct("RequestIdReused")
                .field("request_id", request_id)
                .finish(),
            Self::ConcurrentDuplicate => f.write_str("ConcurrentDuplicate"),
            Self::ShuttingDown => f.write_str("ShuttingDown"),
            Self::Refused(r) => f.debug_tuple("Refused").field(r).finish(),
            Self::Database(e) => f.debug_tuple("Database").field(e).finish(),
            Self::Corrupt(what) => f.debug_tuple("Corrupt").field(what).finish(),
            Self::__Domain(never, _) => match *never {},
        }
    }
}

impl<D: Domain> Error<D> {
    /// A single field violation.
    pub fn invalid_field(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![FieldViolation::new(field, description)])
    }

    /// A refusal with `reason` and `message`.
    pub fn refused(reason: Reason, message: impl Into<String>) -> Self {
        Self::Refused(Box::new(Refusal::new(reason, message)))
    }

    /// The reason the caller receives.
    pub fn reason(&self) -> Reason {
        match self {
            Self::InvalidArgument(_) => Reason::InvalidArgument,
            Self::NotFound { .. } => Reason::NotFound,
            Self::AlreadyExists { .. } => Reason::AlreadyExists,
            Self::RequestIdReused { .. } => Reason::RequestIdReused,
            Self::ConcurrentDuplicate => Reason::ConcurrentDuplicate,
            Self::ShuttingDown => Reason::ShuttingDown,
            Self::Refused(r) => r.reason,
            Self::Database(err) if is_transient(err) => Reason::Unavailable,
            Self::Database(_) | Self::Corrupt(_) => Reason::Internal,
            Self::__Domain(never, _) => match *never {},
        }
    }

    /// Whether retrying the whole call may succeed (a lost race on a request
    /// id, a serialization failure, a dropped connection).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::ConcurrentDuplicate => true,
            Self::Database(err) => is_transient(err) || is_unique_violation(err),
            _ => false,
        }
    }

    /// Whether the error says a dependency is unavailable for now (the
    /// database, or a refusal whose code is UNAVAILABLE).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Database(err) => is_transient(err),
            Self::ShuttingDown => true,
            Self::Refused(r) => r.reason.code() == tonic::Code::Unavailable,
            _ => false,
        }
    }
}

impl<D: Domain> From<IdempotencyError> for Error<D> {
    fn from(error: IdempotencyError) -> Self {
        match error {
            IdempotencyError::Reused(request_id) => Self::RequestIdReused { request_id },
            IdempotencyError::ConcurrentDuplicate => Self::ConcurrentDuplicate,
            IdempotencyError::Corrupt(what) => Self::Corrupt(what),
            IdempotencyError::Database(err) => Self::Database(err),
        }
    }
}

impl<D: Domain> From<Vec<FieldViolation>> for Error<D> {
    fn from(violations: Vec<FieldViolation>) -> Self {
        Self::InvalidArgument(violations)
    }
}

impl<D: Domain> From<Refusal> for Error<D> {
    fn from(refusal: Refusal) -> Self {
        Self::Refused(Box::new(refusal))
    }
}

impl<D: Domain + Send> WriteError for Error<D> {
    fn is_already_exists(&self) -> bool {
        matches!(self, Self::AlreadyExists { .. })
    }
}

fn with_info(refusal: Refusal, domain: &str) -> Status {
    let Refusal {
        reason,
        message,
        metadata,
        violations,
        retry_after,
    } = refusal;
    let mut details = ErrorDetails::with_error_info(
        reason.as_str(),
        domain,
        metadata
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect::<std::collections::HashMap<_, _>>(),
    );
    for v in violations {
        details.add_bad_request_violation(v.field, v.description);
    }
    if let Some(delay) = retry_after {
        details.set_retry_info(Some(delay));
    }
    Status::with_error_details(reason.code(), message, details)
}

impl<D: Domain> From<Error<D>> for Status {
    fn from(error: Error<D>) -> Self {
        let domain = D::NAME;
        match error {
            Error::InvalidArgument(violations) => status::invalid_argument(domain, &violations),
            Error::NotFound { resource, id } => with_info(
                Refusal::new(Reason::NotFound, format!("{resource} {id} not found"))
                    .with("resource", resource)
                    .with("id", id),
                domain,
            ),
            Error::AlreadyExists { resource, id } => with_info(
                Refusal::new(
                    Reason::AlreadyExists,
                    format!("{resource} {id} already exists"),
                )
                .with("resource", resource)
                .with("id", id),
                domain,
            ),
            Error::RequestIdReused { request_id } => status::invalid_argument_with_reason(
                domain,
                Reason::RequestIdReused.as_str(),
                &[FieldViolation::new(
                    "request_id",
                    format!(
                        "{request_id:?} was already used for a different request; use a new request id"
                    ),
                )],
            ),
            Error::ConcurrentDuplicate => with_info(
                Refusal::new(
                    Reason::ConcurrentDuplicate,
                    "a concurrent request with the same request id won; retry to read its response",
                ),
                domain,
            ),
            Error::ShuttingDown => with_info(
                Refusal::new(
                    Reason::ShuttingDown,
                    "the server is shutting down; retry on another replica or later",
                ),
                domain,
            ),
            Error::Refused(refusal) => with_info(*refusal, domain),
            Error::Database(err) if is_transient(&err) => {
                status::unavailable(domain, "the database", &err)
            }
            Error::Database(err) => status::internal(domain, &err),
            Error::Corrupt(what) => status::internal(domain, &what),
            Error::__Domain(never, _) => match never {},
        }
    }
}

/// Runs `call` again when it failed in a way a retry may fix (a lost race on a
/// request id, a serialization failure, a dropped connection): at most 3
/// attempts, 5 and 10 ms apart.
///
/// # Errors
/// The last attempt's error.
pub async fn retrying<T, D, F, Fut>(mut call: F) -> Result<T, Error<D>>
where
    D: Domain,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error<D>>>,
{
    let mut attempt = 1;
    loop {
        match call().await {
            Err(error) if error.is_retryable() && attempt < 3 => {
                tracing::debug!(%error, attempt, "retrying");
                tokio::time::sleep(Duration::from_millis(5 * attempt)).await;
                attempt += 1;
            }
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    #[derive(Debug)]
    enum Test {}
    impl Domain for Test {
        const NAME: &'static str = "test.v1";
    }
    type TestError = Error<Test>;

    #[test]
    fn every_status_carries_error_info_in_the_domain_and_hides_causes() {
        let errors = vec![
            TestError::invalid_field("slug", "must not be empty"),
            TestError::NotFound {
                resource: "group",
                id: "7".into(),
            },
            TestError::AlreadyExists {
                resource: "organization",
                id: "acme".into(),
            },
            TestError::refused(Reason::IntegrationNotInstalled, "install it"),
            TestError::RequestIdReused {
                request_id: "r".into(),
            },
            TestError::ShuttingDown,
            TestError::ConcurrentDuplicate,
            TestError::Database(DbErr::Custom("secret detail".into())),
            TestError::Corrupt("secret detail".into()),
        ];
        for error in errors {
            let reason = error.reason();
            let status = Status::from(error);
            let info = status.get_details_error_info().expect("error info");
            assert_eq!(info.domain, "test.v1");
            assert_eq!(info.reason, reason.as_str());
            assert_eq!(status.code(), reason.code());
            assert!(!status.message().contains("secret detail"));
        }
    }

    #[test]
    fn refusals_carry_metadata_violations_and_retry_info() {
        let mut refusal =
            Refusal::new(Reason::JiraRateLimited, "slow down").with("jira_status", "429");
        refusal.retry_after = Some(Duration::from_secs(3));
        refusal
            .violations
            .push(FieldViolation::new("title", "too long"));
        let status = Status::from(TestError::from(refusal));
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(
            status.get_details_error_info().expect("info").metadata["jira_status"],
            "429"
        );
        assert!(status.get_details_retry_info().is_some());
        assert_eq!(
            status
                .get_details_bad_request()
                .expect("bad request")
                .field_violations[0]
                .field,
            "title"
        );
    }

    #[test]
    fn not_found_names_the_resource() {
        let status = Status::from(TestError::NotFound {
            resource: "group",
            id: "7".into(),
        });
        let info = status.get_details_error_info().expect("info");
        assert_eq!(info.reason, "NOT_FOUND");
        assert_eq!(info.metadata["resource"], "group");
        assert_eq!(info.metadata["id"], "7");
    }

    #[test]
    fn only_races_and_transient_database_errors_are_retried() {
        assert!(TestError::ConcurrentDuplicate.is_retryable());
        assert!(!TestError::ShuttingDown.is_retryable());
        assert!(!TestError::invalid_field("a", "b").is_retryable());
        assert!(TestError::Database(DbErr::Custom("40001 serialization".into())).is_retryable());
        assert!(!TestError::Database(DbErr::Custom("syntax".into())).is_retryable());
    }
}
