//! The tracker's client of the assignment service: the calls it makes, each with
//! a deadline, and a classification of failures into "retry later" and "will not
//! succeed as is".

use std::time::Duration;

use proto::assignment::v1 as pb;
use proto::assignment::v1::external_issue_service_client::ExternalIssueServiceClient;
use service_runtime::config::Secret;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Request, Status};

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

/// A lazily connected client with per-call deadlines.
#[derive(Debug, Clone)]
pub struct AssignmentClient {
    external_issues: ExternalIssueServiceClient<Channel>,
    deadline: Duration,
    authorization: Option<MetadataValue<Ascii>>,
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
        let mut endpoint = Endpoint::from_shared(url.to_owned())?
            .connect_timeout(deadline)
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
        Ok(Self {
            external_issues: ExternalIssueServiceClient::new(endpoint.connect_lazy()),
            deadline,
            authorization,
        })
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

    /// `LinkExternalIssue`.
    ///
    /// # Errors
    /// The classified failure.
    pub async fn link(
        &self,
        message: pb::LinkExternalIssueRequest,
        context: &CallContext,
    ) -> Result<pb::LinkExternalIssueResponse, CallError> {
        let request = self.request(message, context);
        Ok(self
            .external_issues
            .clone()
            .link_external_issue(request)
            .await?
            .into_inner())
    }

    /// `SyncAssigneeInbound`.
    ///
    /// # Errors
    /// The classified failure.
    pub async fn sync_assignee(
        &self,
        message: pb::SyncAssigneeInboundRequest,
        context: &CallContext,
    ) -> Result<pb::SyncAssigneeInboundResponse, CallError> {
        let request = self.request(message, context);
        Ok(self
            .external_issues
            .clone()
            .sync_assignee_inbound(request)
            .await?
            .into_inner())
    }

    /// `SyncStatusInbound`.
    ///
    /// # Errors
    /// The classified failure.
    pub async fn sync_status(
        &self,
        message: pb::SyncStatusInboundRequest,
        context: &CallContext,
    ) -> Result<pb::SyncStatusInboundResponse, CallError> {
        let request = self.request(message, context);
        Ok(self
            .external_issues
            .clone()
            .sync_status_inbound(request)
            .await?
            .into_inner())
    }

    /// `MoveExternalIssue`.
    ///
    /// # Errors
    /// The classified failure.
    pub async fn move_issue(
        &self,
        message: pb::MoveExternalIssueRequest,
        context: &CallContext,
    ) -> Result<pb::MoveExternalIssueResponse, CallError> {
        let request = self.request(message, context);
        Ok(self
            .external_issues
            .clone()
            .move_external_issue(request)
            .await?
            .into_inner())
    }
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
