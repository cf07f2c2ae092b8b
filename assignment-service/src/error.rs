//! The assignment service's error domain (`assignment.v1`).
//!
//! Logic modules return [`AssignmentError`], the runtime's one error type in this
//! domain; its one mapping to `google.rpc.Status` lives in
//! [`service_runtime::error`].

use service_runtime::error::{Domain, Error};

pub use service_runtime::error::{Reason, Refusal};

/// The `ErrorInfo.domain` of every error this service returns.
pub const ERROR_DOMAIN: &str = "assignment.v1";

/// Marks errors of the assignment service's domain.
#[derive(Debug)]
pub enum Assignment {}

impl Domain for Assignment {
    const NAME: &'static str = ERROR_DOMAIN;
}

/// Everything that can go wrong in the assignment service.
pub type AssignmentError = Error<Assignment>;
