//! `google.rpc.Status` details (AIP-193).
//!
//! Every error a service returns carries an `ErrorInfo` (a machine-readable
//! `reason` in the service's `domain`, plus metadata); field errors also carry a
//! `BadRequest` with one violation per field. Each service owns one error enum and
//! one exhaustive mapping into these builders; internal causes are logged here and
//! never sent to the caller.

use std::collections::HashMap;
use std::fmt;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The field's path in the request, e.g. `issue.key` or `group_ids[2]`.
    pub field: String,
    /// What is wrong with it, in words a caller can act on.
    pub description: String,
}

impl FieldViolation {
    /// A violation of `field`.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

impl fmt::Display for FieldViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.description)
    }
}

/// Collects every violation of a request, so a caller learns all of them at once.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    /// No violations yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a violation.
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    /// Keeps the value of `result`, or records its error against `field`.
    pub fn check<T, E: fmt::Display>(&mut self, field: &str, result: Result<T, E>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.add(field, error.to_string());
                None
            }
        }
    }

    /// Records the violations of a nested message under `prefix.`.
    pub fn extend_nested(&mut self, prefix: &str, nested: Vec<FieldViolation>) {
        self.0.extend(nested.into_iter().map(|v| FieldViolation {
            field: format!("{prefix}.{}", v.field),
            description: v.description,
        }));
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` when nothing was recorded, else every violation.
    ///
    /// # Errors
    /// The recorded violations, when there are any.
    pub fn finish(self) -> Result<(), Vec<FieldViolation>> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.0)
        }
    }

    /// Returns `value` when nothing was recorded (all the `Option`s the caller
    /// holds are then `Some`).
    ///
    /// # Errors
    /// The recorded violations, when there are any.
    pub fn finish_with<T>(
        self,
        value: impl FnOnce() -> Option<T>,
    ) -> Result<T, Vec<FieldViolation>> {
        self.finish()?;
        value().ok_or_else(|| {
            vec![FieldViolation::new(
                "",
                "request could not be read (internal validation error)",
            )]
        })
    }
}

/// Builds a status with an `ErrorInfo`.
pub fn error_status(
    code: Code,
    message: impl Into<String>,
    domain: &str,
    reason: &str,
    metadata: HashMap<String, String>,
) -> Status {
    let details = ErrorDetails::with_error_info(reason, domain, metadata);
    Status::with_error_details(code, message, details)
}

/// INVALID_ARGUMENT with an `ErrorInfo` (reason `INVALID_ARGUMENT`) and a
/// `BadRequest` listing every violation. The message names the fields too, so a
/// grpcurl user sees them without decoding details.
pub fn invalid_argument(domain: &str, violations: &[FieldViolation]) -> Status {
    invalid_argument_with_reason(domain, "INVALID_ARGUMENT", violations)
}

/// INVALID_ARGUMENT as [`invalid_argument`], with a more specific `ErrorInfo`
/// reason (e.g. `REQUEST_ID_REUSED`).
pub fn invalid_argument_with_reason(
    domain: &str,
    reason: &str,
    violations: &[FieldViolation],
) -> Status {
    let message = match violations {
        [] => "invalid argument".to_owned(),
        [one] => format!("invalid argument: {one}"),
        many => format!(
            "invalid arguments: {}",
            many.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        ),
    };
    let mut details = ErrorDetails::with_error_info(reason, domain, HashMap::new());
    for v in violations {
        details.add_bad_request_violation(v.field.clone(), v.description.clone());
    }
    Status::with_error_details(Code::InvalidArgument, message, details)
}

/// INTERNAL for a cause the caller must not see: the cause is logged with an
/// error id, and only the id is returned (in the message and the metadata).
pub fn internal(domain: &str, cause: &dyn fmt::Display) -> Status {
    let error_id = error_id();
    tracing::error!(%error_id, error = %cause, "internal error");
    error_status(
        Code::Internal,
        format!("internal error (error id {error_id}); the cause is in the server log"),
        domain,
        "INTERNAL",
        HashMap::from([("error_id".to_owned(), error_id)]),
    )
}

/// UNAVAILABLE for a dependency (the database, another service) that failed in a
/// way worth retrying. The cause is logged, not returned.
pub fn unavailable(domain: &str, what: &str, cause: &dyn fmt::Display) -> Status {
    let error_id = error_id();
    tracing::warn!(%error_id, error = %cause, "{what} unavailable");
    error_status(
        Code::Unavailable,
        format!("{what} is unavailable, retry later (error id {error_id})"),
        domain,
        "UNAVAILABLE",
        HashMap::from([("error_id".to_owned(), error_id)]),
    )
}

fn error_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or_default();
    format!("{:x}-{n:x}", t & 0xffff_ffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_lists_every_field() {
        let status = invalid_argument(
            "test.v1",
            &[
                FieldViolation::new("a", "must be set"),
                FieldViolation::new("b.c", "too long"),
            ],
        );
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("a: must be set"));
        assert!(status.message().contains("b.c: too long"));
        let bad = status.get_details_bad_request().expect("bad request");
        assert_eq!(bad.field_violations.len(), 2);
        let info = status.get_details_error_info().expect("error info");
        assert_eq!(info.domain, "test.v1");
        assert_eq!(info.reason, "INVALID_ARGUMENT");
    }

    #[test]
    fn internal_hides_the_cause() {
        let status = internal("test.v1", &"password=hunter2 in query");
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("hunter2"));
        let info = status.get_details_error_info().expect("error info");
        assert!(info.metadata.contains_key("error_id"));
    }
}
