//! The gRPC edge of `tracker.v1`.

use proto::tracker::v1 as pb;
use service_runtime::grpc::GrpcServices;
use tonic::{Request, Response, Status};

/// Every gRPC service of the tracker API, ready to serve.
pub fn services() -> GrpcServices {
    GrpcServices::new().with(pb::tracker_service_server::TrackerServiceServer::new(
        TrackerApi,
    ))
}

/// Serves `TrackerService`.
#[derive(Debug, Clone, Copy)]
pub struct TrackerApi;

fn not_yet(what: &str) -> Status {
    Status::unimplemented(format!("{what} is not implemented yet"))
}

#[tonic::async_trait]
impl pb::tracker_service_server::TrackerService for TrackerApi {
    async fn create_integration(
        &self,
        _: Request<pb::CreateIntegrationRequest>,
    ) -> Result<Response<pb::CreateIntegrationResponse>, Status> {
        Err(not_yet("CreateIntegration"))
    }
    async fn update_integration(
        &self,
        _: Request<pb::UpdateIntegrationRequest>,
    ) -> Result<Response<pb::UpdateIntegrationResponse>, Status> {
        Err(not_yet("UpdateIntegration"))
    }
    async fn get_integration(
        &self,
        _: Request<pb::GetIntegrationRequest>,
    ) -> Result<Response<pb::GetIntegrationResponse>, Status> {
        Err(not_yet("GetIntegration"))
    }
    async fn list_integrations(
        &self,
        _: Request<pb::ListIntegrationsRequest>,
    ) -> Result<Response<pb::ListIntegrationsResponse>, Status> {
        Err(not_yet("ListIntegrations"))
    }
    async fn get_create_issue_config(
        &self,
        _: Request<pb::GetCreateIssueConfigRequest>,
    ) -> Result<Response<pb::GetCreateIssueConfigResponse>, Status> {
        Err(not_yet("GetCreateIssueConfig"))
    }
    async fn create_issue(
        &self,
        _: Request<pb::CreateIssueRequest>,
    ) -> Result<Response<pb::CreateIssueResponse>, Status> {
        Err(not_yet("CreateIssue"))
    }
    async fn get_issue_creation(
        &self,
        _: Request<pb::GetIssueCreationRequest>,
    ) -> Result<Response<pb::GetIssueCreationResponse>, Status> {
        Err(not_yet("GetIssueCreation"))
    }
    async fn list_webhook_deliveries(
        &self,
        _: Request<pb::ListWebhookDeliveriesRequest>,
    ) -> Result<Response<pb::ListWebhookDeliveriesResponse>, Status> {
        Err(not_yet("ListWebhookDeliveries"))
    }
    async fn get_webhook_delivery(
        &self,
        _: Request<pb::GetWebhookDeliveryRequest>,
    ) -> Result<Response<pb::GetWebhookDeliveryResponse>, Status> {
        Err(not_yet("GetWebhookDelivery"))
    }
    async fn retry_webhook_delivery(
        &self,
        _: Request<pb::RetryWebhookDeliveryRequest>,
    ) -> Result<Response<pb::RetryWebhookDeliveryResponse>, Status> {
        Err(not_yet("RetryWebhookDelivery"))
    }
}
