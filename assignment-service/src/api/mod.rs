//! The gRPC edge: one module per service of `assignment.v1`.
//!
//! Handlers do three things: convert the request into domain values (`TryFrom`,
//! collecting every field violation), call a logic module, and convert the result
//! back. No protobuf type goes further in, no logic lives here.

mod directory;
mod external_issues;
mod groups;
pub mod limits;
mod notifications;

use proto::assignment::v1 as pb;
use service_runtime::database::Database;
use service_runtime::grpc::GrpcServices;
use service_runtime::ids::RequestId;
use service_runtime::pagination::PageRequest;
use service_runtime::status::Violations;

pub(crate) use service_runtime::error::retrying;

use crate::inbound_sync::batcher::AssigneeBatcher;
use crate::stream::StreamHub;

/// The streaming RPC, which stays open and so does not count against the
/// in-flight limit.
pub const SUBSCRIBE_PATH: &str = "/assignment.v1.NotificationService/Subscribe";

/// Every gRPC service of the assignment API, ready to serve; requests larger
/// than `max_message_bytes` are refused.
pub fn services(
    db: &Database,
    hub: &StreamHub,
    assignees: &AssigneeBatcher,
    max_message_bytes: usize,
) -> GrpcServices {
    GrpcServices::new()
        .with(
            pb::directory_service_server::DirectoryServiceServer::new(
                directory::DirectoryApi::new(db.clone()),
            )
            .max_decoding_message_size(max_message_bytes),
        )
        .with(
            pb::group_service_server::GroupServiceServer::new(groups::GroupApi::new(db.clone()))
                .max_decoding_message_size(max_message_bytes),
        )
        .with(
            pb::external_issue_service_server::ExternalIssueServiceServer::new(
                external_issues::ExternalIssueApi::new(db.clone(), hub.waker(), assignees.clone()),
            )
            .max_decoding_message_size(max_message_bytes),
        )
        .with(
            pb::notification_service_server::NotificationServiceServer::new(
                notifications::NotificationApi::new(db.clone(), hub.clone()),
            )
            .max_decoding_message_size(max_message_bytes),
        )
}

/// A mutating command with its optional idempotency key.
#[derive(Debug)]
pub(crate) struct Mutation<T> {
    pub command: T,
    pub request_id: Option<RequestId>,
}

impl<T> Mutation<T> {
    /// Records the request id on the request's span, for the logs.
    pub fn traced(self) -> Self {
        if let Some(id) = &self.request_id {
            tracing::Span::current().record("request_id", id.as_str());
        }
        self
    }
}

/// Parses a request id field.
pub(crate) fn request_id(v: &mut Violations, raw: &str) -> Option<Option<RequestId>> {
    v.check("request_id", RequestId::parse_optional(raw))
}

/// Parses `page_size` and `page_token` for a list whose filters are described by
/// `filters`, with pages of at most `max` items (see [`limits`]).
pub(crate) fn page(
    v: &mut Violations,
    page_size: i32,
    page_token: &str,
    filters: &str,
    max: u64,
) -> Option<PageRequest<i64>> {
    match PageRequest::parse(page_size, page_token, filters) {
        Ok(page) => Some(page.at_most(max)),
        Err(violation) => {
            v.add(violation.field, violation.description);
            None
        }
    }
}

/// Parses an optional id filter: 0 means "not set".
pub(crate) fn optional_id<T, E: std::fmt::Display>(
    v: &mut Violations,
    field: &str,
    raw: i64,
    parse: impl FnOnce(i64) -> Result<T, E>,
) -> Option<Option<T>> {
    if raw == 0 {
        Some(None)
    } else {
        v.check(field, parse(raw)).map(Some)
    }
}
