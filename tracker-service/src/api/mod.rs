//! The gRPC edge of `tracker.v1`: converts requests into domain values (every
//! field violation at once), calls the logic modules, converts results back.

mod convert;

use proto::tracker::v1 as pb;
use service_runtime::database::Database;
use service_runtime::error::retrying;
use service_runtime::grpc::GrpcServices;
use service_runtime::ids::{IntegrationId, RequestId};
use service_runtime::pagination::PageRequest;
use service_runtime::status::Violations;
use tonic::{Request, Response, Status};

use crate::error::TrackerError;
use crate::integrations;
use crate::integrations::{IntegrationChanges, NewIntegration};
use crate::issues::CreateIssueCommand;
use crate::issues::{FormRequest, IssueService};
use crate::jira::targets::TargetPolicy;
use crate::webhooks::inbox;
use crate::webhooks::waker::DispatchWaker;

/// Every gRPC service of the tracker API, ready to serve; requests larger than
/// `max_message_bytes` are refused.
pub fn services(
    db: &Database,
    issues: &IssueService,
    waker: &DispatchWaker,
    targets: TargetPolicy,
    max_message_bytes: usize,
) -> GrpcServices {
    GrpcServices::new().with(
        pb::tracker_service_server::TrackerServiceServer::new(TrackerApi {
            db: db.clone(),
            issues: issues.clone(),
            waker: waker.clone(),
            targets,
        })
        .max_decoding_message_size(max_message_bytes),
    )
}

/// Serves `TrackerService`.
#[derive(Debug, Clone)]
pub struct TrackerApi {
    db: Database,
    issues: IssueService,
    waker: DispatchWaker,
    /// Which Jira hosts integrations may point at.
    targets: TargetPolicy,
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
        self.issues.forget_integration(&m.command.id);
        Ok(Response::new(pb::UpdateIntegrationResponse {
            integration: Some(summary.into()),
        }))
    }

    async fn get_integration(
        &self,
        request: Request<pb::GetIntegrationRequest>,
    ) -> Result<Response<pb::GetIntegrationResponse>, Status> {
        let mut v = Violations::new();
        let id = integration_id(
            &mut v,
            "integration_id",
            &request.into_inner().integration_id,
        );
        let id = v.finish_with(|| id).map_err(TrackerError::from)?;
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
        let r = request.into_inner();
        let mut v = Violations::new();
        let id = integration_id(&mut v, "integration_id", &r.integration_id);
        let id = v.finish_with(|| id).map_err(TrackerError::from)?;
        let config = self
            .issues
            .form_config(FormRequest {
                integration_id: id,
                project_id: r.project_id,
                issue_type_id: r.issue_type_id,
            })
            .await?;
        Ok(Response::new(pb::GetCreateIssueConfigResponse {
            fields: config.fields.into_iter().map(Into::into).collect(),
            project_id: config.project_id,
            issue_type_id: config.issue_type_id,
        }))
    }

    async fn create_issue(
        &self,
        request: Request<pb::CreateIssueRequest>,
    ) -> Result<Response<pb::CreateIssueResponse>, Status> {
        let m = Mutation::<CreateIssueCommand>::try_from(request.into_inner())?.traced();
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
        let raw = request.into_inner().request_id;
        let request_id = RequestId::parse(&raw)
            .map_err(|e| TrackerError::invalid_field("request_id", e.to_string()))?;
        let creation = self.issues.get(&request_id).await?;
        Ok(Response::new(pb::GetIssueCreationResponse {
            issue: Some((&creation.issue).into()),
            link_state: pb::LinkState::from(creation.link_state).into(),
            link_error: creation.link_error,
            integration_id: creation.integration_id.to_string(),
            organization_id: creation.organization_id,
            group_ids: creation.group_ids,
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
}
