//! The gRPC edge: one module per service of `assignment.v1`.
//!
//! Handlers do three things: convert the request into domain values (`TryFrom`,
//! collecting every field violation), call a logic module, and convert the result
//! back. No protobuf type goes further in, no logic lives here.

pub mod access;
mod directory;
mod external_issues;
mod groups;
pub mod limits;
mod notifications;

use proto::assignment::v1 as pb;
use service_runtime::auth::Caller;
use service_runtime::database::Database;
use service_runtime::grpc::GrpcServices;
use service_runtime::ids::RequestId;
use service_runtime::pagination::PageRequest;
use service_runtime::status::Violations;
use service_runtime::telemetry::context;
use tonic::Request;

use crate::domain::OrganizationId;
use crate::error::AssignmentError;

pub(crate) use service_runtime::error::retrying;

use crate::inbound_sync::batcher::AssigneeBatcher;
use crate::stream::StreamHub;

/// The streaming RPC, which stays open and so does not count against the
/// in-flight limit.
pub const SUBSCRIBE_PATH: &str = "/assignment.v1.NotificationService/Subscribe";

/// The outbound log's streaming RPC, also left out of the in-flight limit.
pub const WATCH_OUTBOUND_PATH: &str = "/assignment.v1.ExternalIssueService/WatchOutboundSyncs";

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
            pb::group_service_server::GroupServiceServer::new(groups::GroupApi::new(
                db.clone(),
                hub.waker(),
            ))
            .max_decoding_message_size(max_message_bytes),
        )
        .with(
            pb::external_issue_service_server::ExternalIssueServiceServer::new(
                external_issues::ExternalIssueApi::new(db.clone(), hub.clone(), assignees.clone()),
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

/// Decodes `data` as each `assignment.v1` request that converts with
/// `TryFrom`, and converts what decodes, as a call would: the `grpc_request`
/// fuzz target's entry point. Any input is accepted or refused; none panics.
#[doc(hidden)]
pub fn fuzz_requests(data: &[u8]) {
    use crate::directory::{NewOrganization, NewProject, NewUser, UserChanges};
    use crate::external_issues::{LinkRequest, MoveRequest, ResetRequest, UnlinkRequest};
    use crate::groups::NewGroup;
    use crate::stream::SubscribeRequest;

    fn decode_then_convert<M: prost::Message + Default, T: TryFrom<M>>(data: &[u8]) {
        if let Ok(message) = M::decode(data) {
            let _ = T::try_from(message);
        }
    }
    decode_then_convert::<pb::CreateOrganizationRequest, Mutation<NewOrganization>>(data);
    decode_then_convert::<pb::CreateProjectRequest, Mutation<NewProject>>(data);
    decode_then_convert::<pb::CreateUserRequest, Mutation<NewUser>>(data);
    decode_then_convert::<pb::UpdateUserRequest, Mutation<UserChanges>>(data);
    decode_then_convert::<pb::CreateGroupRequest, Mutation<NewGroup>>(data);
    decode_then_convert::<pb::LinkExternalIssueRequest, Mutation<LinkRequest>>(data);
    decode_then_convert::<pb::UnlinkExternalIssueRequest, Mutation<UnlinkRequest>>(data);
    decode_then_convert::<pb::MoveExternalIssueRequest, Mutation<MoveRequest>>(data);
    decode_then_convert::<pb::ResetWatermarksRequest, Mutation<ResetRequest>>(data);
    decode_then_convert::<pb::SubscribeRequest, SubscribeRequest>(data);
    if let Ok(message) = <pb::SyncAssigneeInboundRequest as prost::Message>::decode(data) {
        let _ = external_issues::assignee_change(message, String::new());
    }
    if let Ok(batch) = <pb::SyncAssigneeInboundBatchRequest as prost::Message>::decode(data) {
        for change in batch.changes.into_iter().filter_map(|c| c.change) {
            let _ = external_issues::assignee_change(change, String::new());
        }
    }
    if let Ok(message) = <pb::SyncStatusInboundRequest as prost::Message>::decode(data) {
        let _ = external_issues::status_change(message, String::new());
    }
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

    /// Puts an organization's request id in a namespace of its own, so two
    /// organizations choosing the same id never see each other's responses.
    pub fn scoped(mut self, scope: Scope) -> Self {
        if let (Some(org), Some(id)) = (scope.organization(), &self.request_id) {
            self.request_id = Some(RequestId::derived(&[
                "organization",
                &org.to_string(),
                id.as_str(),
            ]));
        }
        self
    }
}

/// The organization a call is confined to: none for operators (admin) and the
/// other service, the token's organization for an organization's token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Scope(Option<OrganizationId>);

impl Scope {
    /// The scope of a request, from the caller the gate recorded.
    pub fn of<T>(request: &Request<T>) -> Self {
        Self(
            Caller::of(request)
                .organization()
                .map(OrganizationId::from_row),
        )
    }

    /// The organization the caller is confined to, if any.
    pub fn organization(self) -> Option<OrganizationId> {
        self.0
    }

    /// NOT_FOUND, as if it did not exist, unless the caller may see a resource
    /// of `owner`.
    pub fn check(
        self,
        owner: OrganizationId,
        resource: &'static str,
        id: impl std::fmt::Display,
    ) -> Result<(), AssignmentError> {
        match self.0 {
            Some(org) if org != owner => Err(AssignmentError::NotFound {
                resource,
                id: id.to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// The organization filter a list uses: the requested one for operators;
    /// the caller's own for an organization (asking for another is NOT_FOUND).
    pub fn filter(
        self,
        requested: Option<OrganizationId>,
    ) -> Result<Option<OrganizationId>, AssignmentError> {
        match (self.0, requested) {
            (None, requested) => Ok(requested),
            (Some(org), Some(other)) if other != org => Err(AssignmentError::NotFound {
                resource: "organization",
                id: other.to_string(),
            }),
            (Some(org), _) => Ok(Some(org)),
        }
    }
}

/// The W3C trace context the call's effects carry (activities, notifications):
/// the call's own span when exporting traces, else the caller's context when
/// it sent a well-formed one.
pub(crate) fn traceparent(metadata: &tonic::metadata::MetadataMap) -> String {
    let given = metadata
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .filter(|v| context::parse(v).is_some())
        .unwrap_or_default();
    context::current_or(given)
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
