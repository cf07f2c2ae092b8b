//! The notifier's error domain (`notifier.v1`): the runtime's one error type
//! (its mapping to `google.rpc.Status` lives in [`service_runtime::error`]).

use service_runtime::error::{Domain, Error};

pub use service_runtime::error::{Reason, Refusal};

/// The `ErrorInfo.domain` of every error this service returns.
pub const ERROR_DOMAIN: &str = "notifier.v1";

/// Marks errors of the notifier's domain.
#[derive(Debug)]
pub enum Notifier {}

impl Domain for Notifier {
    const NAME: &'static str = ERROR_DOMAIN;
}

/// Everything that can go wrong in the notifier's API and stores.
pub type NotifierError = Error<Notifier>;
