//! The tracker's client of the assignment service: the calls it makes, each with
//! a deadline, and a classification of failures into "retry later" and "will not
//! succeed as is". It takes and returns the tracker's domain values
//! ([`crate::domain::sync`]) and converts to and from `assignment.v1` inside
//! itself.

mod batches;

use std::time::Duration;

use proto::assignment::v1 as pb;
use proto::assignment::v1::directory_service_client::DirectoryServiceClient;
use proto::assignment::v1::external_issue_service_client::ExternalIssueServiceClient;
use service_runtime::ids::IntegrationId;
use service_runtime::secret::Secret;
use service_runtime::telemetry::rpc::{ClientTraceLayer, TracedClient};
use service_runtime::time::to_timestamp;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Request, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tower::Layer as _;

use crate::domain::outbound::{OutboundIntent, OutboundIssue, OutboundTarget};
use crate::domain::sync::{
    AssigneeSync, AssigneeTarget, DeleteSync, GroupEffect, IssueRef, LinkRequest, MoveSync,
    Retired, StatusAction, StatusSync, SyncOutcome,
};

/// A failed call to the assignment service.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// Worth retrying later (unavailable, deadline, overload, lost race).
    #[error("assignment service temporarily failed: {}: {}", .0.code(), .0.message())]
    Transient(Status),
    /// Will fail again as is (invalid input, unknown group, ...).
    #[error("assignment service refused: {}: {}", .0.code(), .0.message())]
    Permanent(Status),
}

impl From<Status> for CallError {
    fn from(status: Status) -> Self {
        match status.code() {
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::Aborted
            | Code::Cancelled
            | Code::Unknown => Self::Transient(status),
            // tonic reports a connection torn down mid-call (the service
            // stopping, a proxy resetting the stream) as INTERNAL "h2 protocol
            // error: …", though the service never answered. Every call carries a
            // request id, so repeating it is safe; failing the delivery for good
            // would drop a webhook Jira will not send again.
            Code::Internal if status.message().starts_with(H2_ERROR) => Self::Transient(status),
            _ => Self::Permanent(status),
        }
    }
}

/// How tonic's messages for HTTP/2 transport failures begin.
const H2_ERROR: &str = "h2 protocol error";

/// The channel, with a client span per call when exporting traces.
type Traced = TracedClient<Channel>;

/// A lazily connected client with per-call deadlines.
#[derive(Debug, Clone)]
pub struct AssignmentClient {
    external_issues: ExternalIssueServiceClient<Traced>,
    /// Installations, to confine an organization's calls to what it installed.
    directory: DirectoryServiceClient<Traced>,
    /// The service's gRPC health, for the tracker's `/readyz`.
    health: HealthClient<Traced>,
    deadline: Duration,
    authorization: Option<MetadataValue<Ascii>>,
    /// Carries concurrent assignee changes in one call; none: one call each.
    batches: Option<batches::AssigneeBatches>,
}

/// The W3C trace context to pass along, when there is one.
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    /// `traceparent`, or empty.
    pub traceparent: String,
}

impl AssignmentClient {
    /// A client of the service at `url` (connects on first use, reconnects after
    /// failures), presenting `token` when given, verifying the server against
    /// `ca_pem` for `https://` URLs.
    ///
    /// # Errors
    /// When `url` is not a valid URI, or the TLS or token set-up is invalid.
    pub fn new(
        url: &str,
        deadline: Duration,
        token: Option<&Secret<String>>,
        ca_pem: Option<Vec<u8>>,
    ) -> anyhow::Result<Self> {
        // `timeout` bounds each call on this side too: the deadline the server
        // enforces (`grpc-timeout`) does nothing if the server never sees the
        // request (a connection that accepts but does not answer).
        let mut endpoint = Endpoint::from_shared(url.to_owned())?
            .connect_timeout(deadline)
            .timeout(deadline)
            .tcp_nodelay(true);
        if url.starts_with("https://") {
            service_runtime::tls::install_crypto_provider();
            let mut tls = ClientTlsConfig::new();
            if let Some(ca) = ca_pem {
                tls = tls.ca_certificate(Certificate::from_pem(ca));
            }
            endpoint = endpoint.tls_config(tls)?;
        }
        let authorization = token
            .map(|t| {
                let mut value: MetadataValue<Ascii> = format!("Bearer {}", t.expose()).parse()?;
                value.set_sensitive(true);
                anyhow::Ok(value)
            })
            .transpose()?;
        let channel = ClientTraceLayer.layer(endpoint.connect_lazy());
        Ok(Self {
            external_issues: ExternalIssueServiceClient::new(channel.clone()),
            directory: DirectoryServiceClient::new(channel.clone()),
            health: HealthClient::new(channel),
            deadline,
            authorization,
            batches: None,
        })
    }

    /// This client, carrying up to `max` concurrent assignee changes in one
    /// `SyncAssigneeInboundBatch` call (see [`batches`]; starts a task, so call
    /// it within the runtime); `max` of 0 or 1 keeps one `SyncAssigneeInbound`
    /// call per change.
    #[must_use]
    pub fn batching(mut self, max: usize) -> Self {
        if max > 1 {
            let unbatched = Self {
                batches: None,
                ..self.clone()
            };
            self.batches = Some(batches::AssigneeBatches::start(unbatched, max));
        }
        self
    }

    fn request<T>(&self, message: T, context: &CallContext) -> Request<T> {
        let mut request = Request::new(message);
        request.set_timeout(self.deadline);
        if let Some(authorization) = &self.authorization {
            request
                .metadata_mut()
                .insert("authorization", authorization.clone());
        }
        if !context.traceparent.is_empty()
            && let Ok(value) = context.traceparent.parse()
        {
            request.metadata_mut().insert("traceparent", value);
        }
        request
    }

    /// Whether the assignment service answers its gRPC health check as
    /// serving; otherwise a few words for `/readyz`.
    ///
    /// # Errors
    /// Why it is not usable.
    pub async fn ready(&self) -> Result<(), String> {
        let request = self.request(
            HealthCheckRequest {
                service: String::new(),
            },
            &CallContext::default(),
        );
        match self.health.clone().check(request).await {
            Ok(answer) if answer.get_ref().status() == ServingStatus::Serving => Ok(()),
            Ok(answer) => Err(format!("{:?}", answer.get_ref().status()).to_lowercase()),
            Err(status) => {
                tracing::debug!(%status, "readiness: assignment service health check failed");
                Err(format!("unreachable ({:?})", status.code()))
            }
        }
    }

    /// Whether `organization_id` installed `integration` (`GetInstallation`).
    ///
    /// # Errors
    /// The classified failure; an unknown organization or installation is
    /// `Ok(false)`.
    pub async fn installed(
        &self,
        organization_id: i64,
        integration: &IntegrationId,
        context: &CallContext,
    ) -> Result<bool, CallError> {
        let message = pb::GetInstallationRequest {
            organization_id,
            integration_id: integration.to_string(),
        };
        let request = self.request(message, context);
        match self.directory.clone().get_installation(request).await {
            Ok(_) => Ok(true),
            Err(status) if status.code() == Code::NotFound => Ok(false),
            Err(status) => Err(status.into()),
        }
    }

    /// Links groups to a Jira issue (`LinkExternalIssue`).
    ///
    /// # Errors
    /// The classified failure.
    pub async fn link(&self, link: &LinkRequest, context: &CallContext) -> Result<(), CallError> {
        let message = pb::LinkExternalIssueRequest {
            organization_id: link.organization_id,
            issue: Some(pb::ExternalIssueRef {
                integration_id: link.integration_id.to_string(),
                key: link.key.to_string(),
                jira_issue_id: text(link.jira_issue_id.as_ref()),
            }),
            title: link.title.clone(),
            url: link.url.clone(),
            group_ids: link.group_ids.clone(),
            request_id: link.request_id.to_string(),
        };
        let request = self.request(message, context);
        self.external_issues
            .clone()
            .link_external_issue(request)
            .await?;
        Ok(())
    }

    /// Applies an assignee change (`SyncAssigneeInbound`); one effect per
    /// linked group.
    ///
    /// # Errors
    /// The classified failure.
    pub async fn sync_assignee(
        &self,
        sync: &AssigneeSync,
        context: &CallContext,
    ) -> Result<Vec<GroupEffect>, CallError> {
        use pb::sync_assignee_inbound_request::Assignee;
        let message = pb::SyncAssigneeInboundRequest {
            issue: Some(issue_ref(&sync.issue)),
            assignee: Some(match &sync.target {
                AssigneeTarget::Email(email) => Assignee::Email(email.clone()),
                AssigneeTarget::Unassign => Assignee::Unassign(true),
            }),
            provider_update_time: sync.provider_time.map(to_timestamp),
            request_id: sync.request_id.to_string(),
            source_integration_id: sync.issue.integration_id.to_string(),
        };
        let response = match &self.batches {
            Some(batches) => batches.sync(message, context).await?,
            None => self.sync_assignee_single(message, context).await?,
        };
        effects(response.results)
    }

    /// One `SyncAssigneeInbound` call.
    async fn sync_assignee_single(
        &self,
        message: pb::SyncAssigneeInboundRequest,
        context: &CallContext,
    ) -> Result<pb::SyncAssigneeInboundResponse, Status> {
        let request = self.request(message, context);
        let response = self
            .external_issues
            .clone()
            .sync_assignee_inbound(request)
            .await?;
        Ok(response.into_inner())
    }

    /// One `SyncAssigneeInboundBatch` call: an outcome per change, in order.
    async fn sync_assignee_batch(
        &self,
        changes: Vec<pb::BatchedAssigneeChange>,
    ) -> Result<Vec<pb::BatchedAssigneeOutcome>, Status> {
        let request = self.request(
            pb::SyncAssigneeInboundBatchRequest { changes },
            &CallContext::default(),
        );
        let response = self
            .external_issues
            .clone()
            .sync_assignee_inbound_batch(request)
            .await?;
        Ok(response.into_inner().outcomes)
    }

    /// Applies a status change (`SyncStatusInbound`); one effect per linked
    /// group.
    ///
    /// # Errors
    /// The classified failure.
    pub async fn sync_status(
        &self,
        sync: &StatusSync,
        context: &CallContext,
    ) -> Result<Vec<GroupEffect>, CallError> {
        let action = match sync.action {
            StatusAction::Resolve => pb::StatusAction::Resolve,
            StatusAction::Unresolve => pb::StatusAction::Unresolve,
        };
        let message = pb::SyncStatusInboundRequest {
            issue: Some(issue_ref(&sync.issue)),
            action: action.into(),
            provider_update_time: sync.provider_time.map(to_timestamp),
            request_id: sync.request_id.to_string(),
            source_integration_id: sync.issue.integration_id.to_string(),
        };
        let request = self.request(message, context);
        let response = self
            .external_issues
            .clone()
            .sync_status_inbound(request)
            .await?
            .into_inner();
        effects(response.results)
    }

    /// Retires a deleted issue's records everywhere (`DeleteExternalIssue`).
    ///
    /// # Errors
    /// The classified failure.
    pub async fn delete_issue(
        &self,
        sync: &DeleteSync,
        context: &CallContext,
    ) -> Result<Vec<Retired>, CallError> {
        let message = pb::DeleteExternalIssueRequest {
            issue: Some(issue_ref(&sync.issue)),
            request_id: sync.request_id.to_string(),
        };
        let request = self.request(message, context);
        Ok(self
            .external_issues
            .clone()
            .delete_external_issue(request)
            .await?
            .into_inner()
            .retired
            .into_iter()
            .map(|r| Retired {
                organization_id: r.organization_id,
                unlinked_group_ids: r.unlinked_group_ids,
            })
            .collect())
    }

    /// Records a key change (`MoveExternalIssue`); returns how many
    /// organizations' records moved.
    ///
    /// # Errors
    /// The classified failure.
    pub async fn move_issue(
        &self,
        sync: &MoveSync,
        context: &CallContext,
    ) -> Result<usize, CallError> {
        let message = pb::MoveExternalIssueRequest {
            issue: Some(issue_ref(&sync.issue)),
            new_key: sync.new_key.to_string(),
            request_id: sync.request_id.to_string(),
        };
        let request = self.request(message, context);
        Ok(self
            .external_issues
            .clone()
            .move_external_issue(request)
            .await?
            .into_inner()
            .external_issues
            .len())
    }
}

/// A watch of the assignment service's outbound log (`WatchOutboundSyncs`).
#[derive(Debug)]
pub struct OutboundWatch {
    stream: tonic::Streaming<pb::WatchOutboundSyncsResponse>,
}

/// One message of an outbound watch: consecutive entries (none when the
/// stream is idle) and the newest sequence the server knew of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundBatch {
    /// The entries, in sequence order.
    pub intents: Vec<OutboundIntent>,
    /// The head (at least the last entry's sequence).
    pub head: u64,
}

/// Why an outbound watch ended or could not start.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WatchError {
    /// The call failed (transient or not).
    #[error(transparent)]
    Call(#[from] CallError),
    /// The cursor is behind the log's retention: entries were lost to this
    /// reader; it may resume from `oldest_available`.
    #[error(
        "the outbound log no longer has the entries after the cursor; the oldest available is {oldest_available}"
    )]
    OutOfRange {
        /// The oldest sequence still available.
        oldest_available: u64,
    },
    /// An entry could not be read.
    #[error("malformed outbound entry: {0}")]
    Malformed(String),
}

impl From<Status> for WatchError {
    fn from(status: Status) -> Self {
        use tonic_types::StatusExt as _;
        if status.code() == Code::OutOfRange
            && let Some(info) = status.get_details_error_info()
            && info.reason == "CURSOR_OUT_OF_RANGE"
            && let Some(oldest) = info
                .metadata
                .get("oldest_available_sequence")
                .and_then(|s| s.parse().ok())
        {
            return Self::OutOfRange {
                oldest_available: oldest,
            };
        }
        Self::Call(status.into())
    }
}

impl AssignmentClient {
    /// Watches the outbound log after `after` (`WatchOutboundSyncs`). The
    /// call has no deadline: it stays open.
    ///
    /// # Errors
    /// The classified failure of opening the stream.
    pub async fn watch_outbound(&self, after: u64) -> Result<OutboundWatch, WatchError> {
        let mut request = Request::new(pb::WatchOutboundSyncsRequest {
            after_sequence: i64::try_from(after).unwrap_or(i64::MAX),
        });
        if let Some(authorization) = &self.authorization {
            request
                .metadata_mut()
                .insert("authorization", authorization.clone());
        }
        let stream = self
            .external_issues
            .clone()
            .watch_outbound_syncs(request)
            .await?
            .into_inner();
        Ok(OutboundWatch { stream })
    }
}

impl OutboundWatch {
    /// The next message; `None` when the server closed the stream cleanly
    /// (it never should: treat it as a reason to reconnect).
    ///
    /// # Errors
    /// The status the stream ended with, or a malformed entry.
    pub async fn next(&mut self) -> Result<Option<OutboundBatch>, WatchError> {
        let Some(message) = self.stream.message().await? else {
            return Ok(None);
        };
        let intents = message
            .syncs
            .into_iter()
            .map(OutboundIntent::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(OutboundBatch {
            intents,
            head: u64::try_from(message.head_sequence).unwrap_or(0),
        }))
    }
}

impl TryFrom<pb::OutboundSync> for OutboundIntent {
    type Error = WatchError;
    fn try_from(e: pb::OutboundSync) -> Result<Self, Self::Error> {
        use pb::outbound_sync::Target;
        let malformed = |what: &str| WatchError::Malformed(format!("entry {}: {what}", e.sequence));
        let issue = e.issue.as_ref().ok_or_else(|| malformed("no issue"))?;
        let issue = OutboundIssue {
            integration_id: service_runtime::ids::IntegrationId::parse(&issue.integration_id)
                .map_err(|_| malformed("integration id"))?,
            key: service_runtime::ids::IssueKey::parse(&issue.key)
                .map_err(|_| malformed("issue key"))?,
            jira_issue_id: if issue.jira_issue_id.is_empty() {
                None
            } else {
                Some(
                    service_runtime::ids::JiraIssueId::parse(&issue.jira_issue_id)
                        .map_err(|_| malformed("Jira issue id"))?,
                )
            },
        };
        let target = match &e.target {
            Some(Target::Assignee(a)) => OutboundTarget::Assignee {
                user_id: a.user_id,
                emails: a.emails.clone(),
            },
            Some(Target::Unassigned(true)) => OutboundTarget::Unassigned,
            Some(Target::Status(raw)) => match pb::StatusAction::try_from(*raw) {
                Ok(pb::StatusAction::Resolve) => OutboundTarget::Status(StatusAction::Resolve),
                Ok(pb::StatusAction::Unresolve) => OutboundTarget::Status(StatusAction::Unresolve),
                _ => return Err(malformed("status action")),
            },
            Some(Target::Unassigned(false)) | None => return Err(malformed("no target")),
        };
        Ok(Self {
            source_sequence: u64::try_from(e.sequence).map_err(|_| malformed("sequence"))?,
            organization_id: e.organization_id,
            group_id: e.group_id,
            issue,
            target,
            from_source: e.from_source,
            request_id: (!e.request_id.is_empty()).then(|| e.request_id.clone()),
            traceparent: e.traceparent.clone(),
        })
    }
}

fn text<T: ToString>(value: Option<&T>) -> String {
    value.map(ToString::to_string).unwrap_or_default()
}

fn issue_ref(issue: &IssueRef) -> pb::ExternalIssueRef {
    pb::ExternalIssueRef {
        integration_id: issue.integration_id.to_string(),
        key: text(issue.key.as_ref()),
        jira_issue_id: text(issue.jira_issue_id.as_ref()),
    }
}

impl TryFrom<pb::GroupSyncResult> for GroupEffect {
    type Error = CallError;
    fn try_from(result: pb::GroupSyncResult) -> Result<Self, Self::Error> {
        let outcome = match result.outcome() {
            pb::SyncOutcome::Assigned => SyncOutcome::Assigned,
            pb::SyncOutcome::Deassigned => SyncOutcome::Deassigned,
            pb::SyncOutcome::Unchanged => SyncOutcome::Unchanged,
            pb::SyncOutcome::NoMatchingUser => SyncOutcome::NoMatchingUser,
            pb::SyncOutcome::Stale => SyncOutcome::Stale,
            pb::SyncOutcome::SyncDisabled => SyncOutcome::SyncDisabled,
            pb::SyncOutcome::Resolved => SyncOutcome::Resolved,
            pb::SyncOutcome::Unresolved => SyncOutcome::Unresolved,
            pb::SyncOutcome::Unspecified => {
                return Err(CallError::Permanent(Status::internal(format!(
                    "the assignment service sent no outcome for group {}",
                    result.group_id
                ))));
            }
        };
        Ok(Self {
            organization_id: result.organization_id,
            group_id: result.group_id,
            outcome,
        })
    }
}

fn effects(results: Vec<pb::GroupSyncResult>) -> Result<Vec<GroupEffect>, CallError> {
    results.into_iter().map(GroupEffect::try_from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_torn_down_mid_call_is_retried_but_a_real_internal_error_is_not() {
        let torn = Status::internal("h2 protocol error: http2 error");
        assert!(matches!(CallError::from(torn), CallError::Transient(_)));
        let answered = Status::internal("stored state is corrupt");
        assert!(matches!(CallError::from(answered), CallError::Permanent(_)));
        let refused = Status::invalid_argument("issue: empty");
        assert!(matches!(CallError::from(refused), CallError::Permanent(_)));
    }
}
