//! The gRPC edge of `tracker.v1`: converts requests into domain values (every
//! field violation at once), calls the logic modules, converts results back.

pub mod access;
mod convert;
mod link;
mod outbound;

use proto::tracker::v1 as pb;
use service_runtime::database::Database;
use service_runtime::error::retrying;
use service_runtime::grpc::GrpcServices;
use service_runtime::ids::{IntegrationId, RequestId};
use service_runtime::pagination::PageRequest;
use service_runtime::status::Violations;
use tonic::{Request, Response, Status};

use service_runtime::auth::Caller;

use crate::assignment_client::{AssignmentClient, CallContext};
use crate::error::{Reason, TrackerError};
use crate::integrations;
use crate::integrations::{IntegrationCache, IntegrationChanges, NewIntegration};
use crate::issues::CreateIssueCommand;
use crate::issues::{FormRequest, IssueService, SearchRequest};
use crate::jira::JiraClient;
use crate::jira::targets::TargetPolicy;
use crate::webhooks::inbox;
use crate::webhooks::waker::DispatchWaker;

/// What the tracker API serves with.
#[derive(Debug, Clone)]
pub struct TrackerApi {
    /// The tracker's database.
    pub db: Database,
    /// The integrations the hot paths read: an integration changed here is
    /// forgotten, so the change takes effect at once on this replica.
    pub integrations: IntegrationCache,
    /// Issue creation and the create form.
    pub issues: IssueService,
    /// Wakes the dispatcher after a delivery is queued again.
    pub waker: DispatchWaker,
    /// Asks the assignment service which integrations an organization
    /// installed, to confine an organization's calls.
    pub assignment: AssignmentClient,
    /// Which Jira hosts integrations may point at.
    pub targets: TargetPolicy,
    /// The Jira client (statuses and projects for status mappings).
    pub jira: JiraClient,
    /// Wakes the outbound worker after a retry.
    pub outbound_waker: DispatchWaker,
}

impl TrackerApi {
    /// Every gRPC service of the tracker API, ready to serve; requests larger
    /// than `max_message_bytes` are refused.
    pub fn into_services(self, max_message_bytes: usize) -> GrpcServices {
        GrpcServices::new().with(
            pb::tracker_service_server::TrackerServiceServer::new(self)
                .max_decoding_message_size(max_message_bytes),
        )
    }

    /// NOT_FOUND, as if the integration did not exist, unless the caller may
    /// act through it: operators always, an organization when it installed it
    /// (asked of the assignment service).
    async fn check_installed(
        &self,
        scope: Option<i64>,
        integration: &IntegrationId,
    ) -> Result<(), TrackerError> {
        let Some(organization) = scope else {
            return Ok(());
        };
        match self
            .assignment
            .installed(organization, integration, &CallContext::default())
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(TrackerError::NotFound {
                resource: "integration",
                id: integration.to_string(),
            }),
            Err(error) => {
                tracing::warn!(%error, "could not check an organization's installation");
                Err(TrackerError::refused(
                    Reason::Unavailable,
                    "could not check the organization's installation with the assignment service; retry",
                ))
            }
        }
    }
}

/// The organization a call is confined to: none for operators, the token's
/// organization for an organization's token.
fn scope<T>(request: &Request<T>) -> Option<i64> {
    Caller::of(request).organization()
}

/// An organization's request id, in a namespace of its own so two
/// organizations choosing the same id never see each other's creations.
fn scoped_request_id(scope: Option<i64>, id: RequestId) -> RequestId {
    match scope {
        Some(org) => RequestId::derived(&["organization", &org.to_string(), id.as_str()]),
        None => id,
    }
}

/// Decodes `data` as each `tracker.v1` request that converts with `TryFrom`,
/// and converts what decodes, as a call would: the `grpc_request` fuzz
/// target's entry point. Any input is accepted or refused; none panics.
#[doc(hidden)]
pub fn fuzz_requests(data: &[u8]) {
    fn decode_then_convert<M: prost::Message + Default, T: TryFrom<M>>(data: &[u8]) {
        if let Ok(message) = M::decode(data) {
            let _ = T::try_from(message);
        }
    }
    decode_then_convert::<pb::CreateIntegrationRequest, Mutation<NewIntegration>>(data);
    decode_then_convert::<pb::UpdateIntegrationRequest, Mutation<IntegrationChanges>>(data);
    decode_then_convert::<pb::CreateIssueRequest, Mutation<CreateIssueCommand>>(data);
    decode_then_convert::<pb::ListWebhookDeliveriesRequest, convert::DeliveryQuery>(data);
}

/// A mutating command with its optional idempotency key.
#[derive(Debug)]
pub(crate) struct Mutation<T> {
    pub command: T,
    pub request_id: Option<RequestId>,
}

impl<T> Mutation<T> {
    /// Records the request id on the request's span, for the logs.
    fn traced(self) -> Self {
        if let Some(id) = &self.request_id {
            tracing::Span::current().record("request_id", id.as_str());
        }
        self
    }

    /// Puts an organization's request id in its own namespace.
    fn scoped(mut self, scope: Option<i64>) -> Self {
        self.request_id = self.request_id.map(|id| scoped_request_id(scope, id));
        self
    }
}

fn integration_id(v: &mut Violations, field: &str, raw: &str) -> Option<IntegrationId> {
    v.check(field, IntegrationId::parse(raw))
}

#[tonic::async_trait]
impl pb::tracker_service_server::TrackerService for TrackerApi {
    async fn create_integration(
        &self,
        request: Request<pb::CreateIntegrationRequest>,
    ) -> Result<Response<pb::CreateIntegrationResponse>, Status> {
        let m = Mutation::<NewIntegration>::try_from(request.into_inner())?.traced();
        self.targets
            .check(&m.command.base_url)
            .map_err(|why| TrackerError::invalid_field("base_url", why))?;
        let summary =
            retrying(|| integrations::create(&self.db, m.command.clone(), m.request_id.as_ref()))
                .await?;
        Ok(Response::new(pb::CreateIntegrationResponse {
            integration: Some(summary.into()),
        }))
    }

    async fn update_integration(
        &self,
        request: Request<pb::UpdateIntegrationRequest>,
    ) -> Result<Response<pb::UpdateIntegrationResponse>, Status> {
        let m = Mutation::<IntegrationChanges>::try_from(request.into_inner())?.traced();
        if let Some(url) = &m.command.base_url {
            self.targets
                .check(url)
                .map_err(|why| TrackerError::invalid_field("base_url", why))?;
        }
        let summary =
            retrying(|| integrations::update(&self.db, m.command.clone(), m.request_id.as_ref()))
                .await?;
        self.integrations.forget(&m.command.id);
        self.issues.forget_integration(&m.command.id);
        Ok(Response::new(pb::UpdateIntegrationResponse {
            integration: Some(summary.into()),
        }))
    }

    async fn get_integration(
        &self,
        request: Request<pb::GetIntegrationRequest>,
    ) -> Result<Response<pb::GetIntegrationResponse>, Status> {
        let scope = scope(&request);
        let mut v = Violations::new();
        let id = integration_id(
            &mut v,
            "integration_id",
            &request.into_inner().integration_id,
        );
        let id = v.finish_with(|| id).map_err(TrackerError::from)?;
        self.check_installed(scope, &id).await?;
        let integration = integrations::load(self.db.conn(), &id).await?;
        Ok(Response::new(pb::GetIntegrationResponse {
            integration: Some(integration.summary().into()),
        }))
    }

    async fn list_integrations(
        &self,
        request: Request<pb::ListIntegrationsRequest>,
    ) -> Result<Response<pb::ListIntegrationsResponse>, Status> {
        let r = request.into_inner();
        let page = PageRequest::<String>::parse(r.page_size, &r.page_token, "")
            .map_err(|v| TrackerError::InvalidArgument(vec![v]))?;
        let (items, next_page_token) = integrations::list(&self.db, &page).await?;
        Ok(Response::new(pb::ListIntegrationsResponse {
            integrations: items.into_iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn get_create_issue_config(
        &self,
        request: Request<pb::GetCreateIssueConfigRequest>,
    ) -> Result<Response<pb::GetCreateIssueConfigResponse>, Status> {
        let scope = scope(&request);
        let r = request.into_inner();
        let mut v = Violations::new();
        let id = integration_id(&mut v, "integration_id", &r.integration_id);
        let id = v.finish_with(|| id).map_err(TrackerError::from)?;
        if let Some(own) = scope
            && r.organization_id != 0
            && r.organization_id != own
        {
            return Err(TrackerError::NotFound {
                resource: "organization",
                id: r.organization_id.to_string(),
            }
            .into());
        }
        self.check_installed(scope, &id).await?;
        let config = self
            .issues
            .form_config(FormRequest {
                integration_id: id,
                project_id: r.project_id,
                issue_type_id: r.issue_type_id,
                organization_id: (r.organization_id > 0).then_some(r.organization_id),
                acting_user_id: (r.acting_user_id > 0).then_some(r.acting_user_id),
            })
            .await?;
        Ok(Response::new(pb::GetCreateIssueConfigResponse {
            fields: config.fields.into_iter().map(Into::into).collect(),
            project_id: config.project_id,
            issue_type_id: config.issue_type_id,
        }))
    }

    async fn search_jira(
        &self,
        request: Request<pb::SearchJiraRequest>,
    ) -> Result<Response<pb::SearchJiraResponse>, Status> {
        let scope = scope(&request);
        let r = request.into_inner();
        let mut v = Violations::new();
        let id = integration_id(&mut v, "integration_id", &r.integration_id);
        if r.field.trim().is_empty() {
            v.add("field", "field is a required parameter");
        }
        v.check(
            "field",
            service_runtime::text::token(r.field.trim(), 0, 255),
        );
        if r.query.trim().is_empty() {
            v.add("query", "query is a required parameter");
        }
        v.check("query", service_runtime::text::line(&r.query, 255));
        v.check(
            "project_id",
            service_runtime::text::token(r.project_id.trim(), 0, 64),
        );
        let id = v.finish_with(|| id).map_err(TrackerError::from)?;
        self.check_installed(scope, &id).await?;
        let choices = self
            .issues
            .search(SearchRequest {
                integration_id: id,
                field: r.field.trim().to_owned(),
                query: r.query.trim().to_owned(),
                project_id: Some(r.project_id.trim().to_owned()).filter(|p| !p.is_empty()),
            })
            .await?;
        Ok(Response::new(pb::SearchJiraResponse {
            choices: choices
                .into_iter()
                .map(|(value, label)| pb::FieldChoice { value, label })
                .collect(),
        }))
    }

    async fn create_issue(
        &self,
        request: Request<pb::CreateIssueRequest>,
    ) -> Result<Response<pb::CreateIssueResponse>, Status> {
        let scope = scope(&request);
        let m = Mutation::<CreateIssueCommand>::try_from(request.into_inner())?
            .scoped(scope)
            .traced();
        if let Some(own) = scope
            && m.command.organization_id != own
        {
            return Err(TrackerError::NotFound {
                resource: "organization",
                id: m.command.organization_id.to_string(),
            }
            .into());
        }
        self.check_installed(scope, &m.command.integration_id)
            .await?;
        let creation =
            retrying(|| self.issues.create(m.command.clone(), m.request_id.as_ref())).await?;
        tracing::Span::current().record("jira_key", creation.issue.key.as_str());
        Ok(Response::new(pb::CreateIssueResponse {
            issue: Some((&creation.issue).into()),
            link_state: pb::LinkState::from(creation.link_state).into(),
            link_error: creation.link_error,
        }))
    }

    async fn get_issue_creation(
        &self,
        request: Request<pb::GetIssueCreationRequest>,
    ) -> Result<Response<pb::GetIssueCreationResponse>, Status> {
        let scope = scope(&request);
        let raw = request.into_inner().request_id;
        let request_id = RequestId::parse(&raw)
            .map_err(|e| TrackerError::invalid_field("request_id", e.to_string()))?;
        let creation = self
            .issues
            .get(&scoped_request_id(scope, request_id))
            .await?;
        if scope.is_some_and(|own| own != creation.organization_id) {
            return Err(TrackerError::NotFound {
                resource: "issue creation",
                id: raw,
            }
            .into());
        }
        Ok(Response::new(pb::GetIssueCreationResponse {
            issue: Some((&creation.issue).into()),
            link_state: pb::LinkState::from(creation.link_state).into(),
            link_error: creation.link_error,
            integration_id: creation.integration_id.to_string(),
            organization_id: creation.organization_id,
            group_ids: creation.group_ids,
            comment_state: pb::CommentState::from(creation.comment_state).into(),
        }))
    }

    async fn list_webhook_deliveries(
        &self,
        request: Request<pb::ListWebhookDeliveriesRequest>,
    ) -> Result<Response<pb::ListWebhookDeliveriesResponse>, Status> {
        let query = convert::DeliveryQuery::try_from(request.into_inner())?;
        let (deliveries, next_page_token) =
            inbox::list(&self.db, &query.filter, &query.page).await?;
        Ok(Response::new(pb::ListWebhookDeliveriesResponse {
            deliveries: deliveries.into_iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn get_webhook_delivery(
        &self,
        request: Request<pb::GetWebhookDeliveryRequest>,
    ) -> Result<Response<pb::GetWebhookDeliveryResponse>, Status> {
        let id = request.into_inner().delivery_id;
        if id <= 0 {
            return Err(TrackerError::invalid_field("delivery_id", "must be a positive id").into());
        }
        let delivery = inbox::get(self.db.conn(), id).await?;
        Ok(Response::new(pb::GetWebhookDeliveryResponse {
            delivery: Some(convert::delivery_with_body(delivery)),
        }))
    }

    async fn retry_webhook_delivery(
        &self,
        request: Request<pb::RetryWebhookDeliveryRequest>,
    ) -> Result<Response<pb::RetryWebhookDeliveryResponse>, Status> {
        let r = request.into_inner();
        let mut v = Violations::new();
        if r.delivery_id <= 0 {
            v.add("delivery_id", "must be a positive id");
        }
        let request_id = v.check("request_id", RequestId::parse_optional(&r.request_id));
        let m = v
            .finish_with(|| {
                Some(Mutation {
                    command: r.delivery_id,
                    request_id: request_id?,
                })
            })
            .map_err(TrackerError::from)?
            .traced();
        let delivery =
            retrying(|| inbox::requeue(&self.db, m.command, m.request_id.as_ref())).await?;
        self.waker.wake();
        Ok(Response::new(pb::RetryWebhookDeliveryResponse {
            delivery: Some(delivery.into()),
        }))
    }

    async fn get_status_sync_config(
        &self,
        request: Request<pb::GetStatusSyncConfigRequest>,
    ) -> Result<Response<pb::GetStatusSyncConfigResponse>, Status> {
        self.get_status_sync_config_impl(request).await
    }

    async fn list_jira_project_statuses(
        &self,
        request: Request<pb::ListJiraProjectStatusesRequest>,
    ) -> Result<Response<pb::ListJiraProjectStatusesResponse>, Status> {
        self.list_jira_project_statuses_impl(request).await
    }

    async fn set_status_mappings(
        &self,
        request: Request<pb::SetStatusMappingsRequest>,
    ) -> Result<Response<pb::SetStatusMappingsResponse>, Status> {
        self.set_status_mappings_impl(request).await
    }

    async fn list_outbound_syncs(
        &self,
        request: Request<pb::ListOutboundSyncsRequest>,
    ) -> Result<Response<pb::ListOutboundSyncsResponse>, Status> {
        self.list_outbound_syncs_impl(request).await
    }

    async fn get_outbound_sync(
        &self,
        request: Request<pb::GetOutboundSyncRequest>,
    ) -> Result<Response<pb::GetOutboundSyncResponse>, Status> {
        self.get_outbound_sync_impl(request).await
    }

    async fn retry_outbound_sync(
        &self,
        request: Request<pb::RetryOutboundSyncRequest>,
    ) -> Result<Response<pb::RetryOutboundSyncResponse>, Status> {
        self.retry_outbound_sync_impl(request).await
    }

    async fn get_link_issue_config(
        &self,
        request: Request<pb::GetLinkIssueConfigRequest>,
    ) -> Result<Response<pb::GetLinkIssueConfigResponse>, Status> {
        self.get_link_issue_config_impl(request).await
    }

    async fn link_issue(
        &self,
        request: Request<pb::LinkIssueRequest>,
    ) -> Result<Response<pb::LinkIssueResponse>, Status> {
        self.link_issue_impl(request).await
    }
}
