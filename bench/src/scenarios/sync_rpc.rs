//! sync-rpc: SyncAssigneeInbound called directly over gRPC by many callers,
//! each call an effective reassignment of one issue's group.

use std::time::Duration;

use proto::assignment::v1 as assignment;

use crate::bed::{Bed, Tenant, email, integration, issue};
use crate::scenarios::baselines::{CallRate, closed_loop};

/// Call `n` reassigns issue `n % issues` in round `n / issues` to a user other
/// than the round before, with provider time moving forward per round.
pub async fn run(
    bed: &Bed,
    tenant: &Tenant,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<CallRate> {
    let client = assignment::external_issue_service_client::ExternalIssueServiceClient::new(
        crate::bed::channel(bed.assignment_grpc)?,
    );
    let (issues, users, integrations) = (tenant.issues, tenant.users.len(), tenant.integrations);
    Ok(closed_loop(concurrency, duration, move |n| {
        let mut client = client.clone();
        async move {
            let (i, round) = (n % issues, n / issues);
            let (key, jira_issue_id) = issue(i);
            let response = client
                .sync_assignee_inbound(assignment::SyncAssigneeInboundRequest {
                    issue: Some(assignment::ExternalIssueRef {
                        integration_id: integration(i % integrations),
                        key,
                        jira_issue_id,
                    }),
                    assignee: Some(assignment::sync_assignee_inbound_request::Assignee::Email(
                        email(crate::bed::assignee(i, round, users)),
                    )),
                    provider_update_time: Some(prost_types::Timestamp {
                        seconds: 1_700_000_000 + i64::try_from(round).unwrap_or(0),
                        nanos: 0,
                    }),
                    request_id: format!("sync-{n}"),
                    source_integration_id: String::new(),
                })
                .await;
            response.is_ok()
        }
    })
    .await)
}
