//! `assignment.v1.ExternalIssueService`: links to Jira issues and inbound sync.

use proto::assignment::v1 as pb;
use service_runtime::database::Database;
use service_runtime::ids::{IntegrationId, IssueKey, JiraIssueId};
use service_runtime::status::{FieldViolation, Violations};
use service_runtime::telemetry::context;
use service_runtime::text;
use service_runtime::time::{from_timestamp, to_timestamp};
use tonic::{Request, Response, Status};

use super::limits::{
    EXTERNAL_ISSUES_PAGE, MAX_BATCHED_CHANGES, MAX_GROUPS_PER_CALL, MAX_ISSUE_TITLE_CHARS,
    MAX_URL_BYTES,
};
use super::{Mutation, Scope, optional_id, page, request_id, retrying, traceparent};
use crate::domain::records::{ExternalIssue, GroupSyncResult};
use crate::domain::{Email, GroupId, OrganizationId, Sequence, StatusAction, SyncOutcome};
use crate::error::AssignmentError;
use crate::external_issues::{
    self, ExternalIssueFilter, IssueRef, LinkRequest, MoveRequest, ResetRequest, UnlinkRequest,
    UnlinkScope,
};
use crate::inbound_sync::batcher::AssigneeBatcher;
use crate::inbound_sync::{self, AssigneeChange, AssigneeTarget, StatusChange, SyncResponse};
use crate::outbound::{OutboundSync, OutboundTarget};
use crate::stream::LogWaker;
use crate::stream::StreamHub;
use crate::stream::outbound::OutboundItem;

/// Serves `ExternalIssueService` over the service's database.
#[derive(Debug, Clone)]
pub struct ExternalIssueApi {
    db: Database,
    /// Serves the outbound log.
    hub: StreamHub,
    waker: LogWaker,
    /// Applies SyncAssigneeInbound calls in groups.
    assignees: AssigneeBatcher,
}

impl ExternalIssueApi {
    /// A handler over `db` that wakes the stream after writing notifications.
    pub fn new(db: Database, hub: StreamHub, assignees: AssigneeBatcher) -> Self {
        Self {
            db,
            waker: hub.waker(),
            hub,
            assignees,
        }
    }
}

/// Parses an issue reference: the integration is required, and a key or a Jira
/// id (or both).
fn issue_ref(
    v: &mut Violations,
    field: &str,
    raw: Option<pb::ExternalIssueRef>,
    key_required: bool,
) -> Option<IssueRef> {
    let Some(raw) = raw else {
        v.add(field, "must be set");
        return None;
    };
    let integration_id = v.check(
        &format!("{field}.integration_id"),
        IntegrationId::parse(&raw.integration_id),
    );
    let key = if raw.key.is_empty() {
        if key_required {
            v.add(format!("{field}.key"), "must not be empty");
            None
        } else {
            Some(None)
        }
    } else {
        v.check(&format!("{field}.key"), IssueKey::parse(&raw.key))
            .map(Some)
    };
    let jira_issue_id = if raw.jira_issue_id.is_empty() {
        Some(None)
    } else {
        v.check(
            &format!("{field}.jira_issue_id"),
            JiraIssueId::parse(&raw.jira_issue_id),
        )
        .map(Some)
    };
    if raw.key.is_empty() && raw.jira_issue_id.is_empty() && !key_required {
        v.add(
            format!("{field}.key"),
            "either key or jira_issue_id must be set",
        );
    }
    Some(IssueRef {
        integration_id: integration_id?,
        key: key?,
        jira_issue_id: jira_issue_id?,
    })
}

fn group_ids(v: &mut Violations, raw: &[i64], required: bool) -> Vec<GroupId> {
    if required && raw.is_empty() {
        v.add("group_ids", "must list at least one group");
    }
    if v.check("group_ids", text::count(raw, MAX_GROUPS_PER_CALL))
        .is_none()
    {
        return Vec::new();
    }
    let mut ids = Vec::with_capacity(raw.len());
    for (i, id) in raw.iter().enumerate() {
        if let Some(id) = v.check(&format!("group_ids[{i}]"), GroupId::parse(*id)) {
            if ids.contains(&id) {
                v.add(format!("group_ids[{i}]"), format!("{id} is listed twice"));
            }
            ids.push(id);
        }
    }
    ids
}

/// How far ahead of this server's clock a provider time may be. Jira's clock
/// and ours are both synchronised; a time further ahead is a forged or broken
/// event, and accepting it would make every later real event stale.
pub const MAX_PROVIDER_CLOCK_SKEW: chrono::TimeDelta = chrono::TimeDelta::minutes(15);

/// An issue's browse URL: empty, or an absolute http(s) URL of at most
/// [`MAX_URL_BYTES`] bytes.
fn issue_url(raw: &str) -> Result<String, text::TextError> {
    let url = text::token(raw.trim(), 0, MAX_URL_BYTES).map_err(|_| {
        text::TextError::from("must be an http(s) URL of at most 1024 printable ASCII bytes")
    })?;
    if url.is_empty() || url.starts_with("https://") || url.starts_with("http://") {
        Ok(url)
    } else {
        Err(text::TextError::from("must start with https:// or http://"))
    }
}

fn provider_time(
    v: &mut Violations,
    raw: Option<prost_types::Timestamp>,
) -> Option<Option<chrono::DateTime<chrono::Utc>>> {
    match raw {
        None => Some(None),
        Some(ts) => match from_timestamp(&ts) {
            Some(time) if time > service_runtime::time::now() + MAX_PROVIDER_CLOCK_SKEW => {
                v.add(
                    "provider_update_time",
                    format!(
                        "{time} is more than {} minutes ahead of this server's clock",
                        MAX_PROVIDER_CLOCK_SKEW.num_minutes()
                    ),
                );
                None
            }
            Some(time) => Some(Some(time)),
            None => {
                v.add("provider_update_time", "is not a valid timestamp");
                None
            }
        },
    }
}

fn source(v: &mut Violations, raw: &str, issue: Option<&IssueRef>) -> Option<IntegrationId> {
    if raw.is_empty() {
        issue.map(|i| i.integration_id.clone())
    } else {
        v.check("source_integration_id", IntegrationId::parse(raw))
    }
}

impl TryFrom<pb::LinkExternalIssueRequest> for Mutation<LinkRequest> {
    type Error = AssignmentError;
    fn try_from(r: pb::LinkExternalIssueRequest) -> Result<Self, Self::Error> {
        let mut v = Violations::new();
        let organization_id = v.check("organization_id", OrganizationId::parse(r.organization_id));
        let issue = issue_ref(&mut v, "issue", r.issue, true);
        let group_ids = group_ids(&mut v, &r.group_ids, true);
        let title = v.check("title", text::line(&r.title, MAX_ISSUE_TITLE_CHARS));
        let url = v.check("url", issue_url(&r.url));
        let request_id = request_id(&mut v, &r.request_id);
        Ok(v.finish_with(|| {
            let issue = issue?;
            Some(Mutation {
                command: LinkRequest {
                    organization_id: organization_id?,
                    integration_id: issue.integration_id,
                    key: issue.key?,
                    jira_issue_id: issue.jira_issue_id,
                    title: title?,
                    url: url?,
                    group_ids,
                },
                request_id: request_id?,
            })
        })?)
    }
}

impl TryFrom<pb::UnlinkExternalIssueRequest> for Mutation<UnlinkRequest> {
    type Error = AssignmentError;
    fn try_from(r: pb::UnlinkExternalIssueRequest) -> Result<Self, Self::Error> {
        let mut v = Violations::new();
        let organization_id = v.check("organization_id", OrganizationId::parse(r.organization_id));
        let issue = issue_ref(&mut v, "issue", r.issue, false);
        let group_ids = group_ids(&mut v, &r.group_ids, false);
        let scope = match (r.all, r.group_ids.is_empty()) {
            (true, true) => Some(UnlinkScope::All),
            (false, false) => Some(UnlinkScope::Groups(group_ids)),
            (true, false) => {
                v.add("all", "cannot be combined with group_ids; send one of them");
                None
            }
            (false, true) => {
                v.add(
                    "group_ids",
                    "must list at least one group (or set all to unlink every group)",
                );
                None
            }
        };
        let request_id = request_id(&mut v, &r.request_id);
        Ok(v.finish_with(|| {
            Some(Mutation {
                command: UnlinkRequest {
                    organization_id: organization_id?,
                    issue: issue?,
                    scope: scope?,
                },
                request_id: request_id?,
            })
        })?)
    }
}

impl TryFrom<pb::MoveExternalIssueRequest> for Mutation<MoveRequest> {
    type Error = AssignmentError;
    fn try_from(r: pb::MoveExternalIssueRequest) -> Result<Self, Self::Error> {
        let mut v = Violations::new();
        let issue = issue_ref(&mut v, "issue", r.issue, false);
        let new_key = v.check("new_key", IssueKey::parse(&r.new_key));
        let request_id = request_id(&mut v, &r.request_id);
        Ok(v.finish_with(|| {
            Some(Mutation {
                command: MoveRequest {
                    issue: issue?,
                    new_key: new_key?,
                },
                request_id: request_id?,
            })
        })?)
    }
}

impl TryFrom<pb::ResetWatermarksRequest> for Mutation<ResetRequest> {
    type Error = AssignmentError;
    fn try_from(r: pb::ResetWatermarksRequest) -> Result<Self, Self::Error> {
        let mut v = Violations::new();
        let issue = issue_ref(&mut v, "issue", r.issue, false);
        let organization_id = optional_id(
            &mut v,
            "organization_id",
            r.organization_id,
            OrganizationId::parse,
        );
        let request_id = request_id(&mut v, &r.request_id);
        Ok(v.finish_with(|| {
            Some(Mutation {
                command: ResetRequest {
                    issue: issue?,
                    organization_id: organization_id?,
                },
                request_id: request_id?,
            })
        })?)
    }
}

pub(super) fn assignee_change(
    r: pb::SyncAssigneeInboundRequest,
    traceparent: String,
) -> Result<Mutation<AssigneeChange>, AssignmentError> {
    use pb::sync_assignee_inbound_request::Assignee;
    let mut v = Violations::new();
    let issue = issue_ref(&mut v, "issue", r.issue, false);
    let target = match r.assignee {
        Some(Assignee::Email(email)) => v
            .check("email", Email::parse(&email))
            .map(AssigneeTarget::Email),
        Some(Assignee::Unassign(true)) => Some(AssigneeTarget::Unassign),
        Some(Assignee::Unassign(false)) => {
            v.add("unassign", "must be true when set (send email to assign)");
            None
        }
        None => {
            v.add(
                "email",
                "set email to assign, or unassign to remove the assignee",
            );
            None
        }
    };
    let provider_time = provider_time(&mut v, r.provider_update_time);
    let source = source(&mut v, &r.source_integration_id, issue.as_ref());
    let request_id = request_id(&mut v, &r.request_id);
    Ok(v.finish_with(|| {
        Some(Mutation {
            command: AssigneeChange {
                issue: issue?,
                target: target?,
                provider_time: provider_time?,
                source: source?,
                traceparent,
            },
            request_id: request_id?,
        })
    })?)
}

pub(super) fn status_change(
    r: pb::SyncStatusInboundRequest,
    traceparent: String,
) -> Result<Mutation<StatusChange>, AssignmentError> {
    let mut v = Violations::new();
    let issue = issue_ref(&mut v, "issue", r.issue, false);
    let action = match pb::StatusAction::try_from(r.action) {
        Ok(pb::StatusAction::Resolve) => Some(StatusAction::Resolve),
        Ok(pb::StatusAction::Unresolve) => Some(StatusAction::Unresolve),
        Ok(pb::StatusAction::Unspecified) => {
            v.add(
                "action",
                "must be STATUS_ACTION_RESOLVE or STATUS_ACTION_UNRESOLVE",
            );
            None
        }
        Err(_) => {
            v.add(
                "action",
                format!("{} is not a StatusAction value", r.action),
            );
            None
        }
    };
    let provider_time = provider_time(&mut v, r.provider_update_time);
    let source = source(&mut v, &r.source_integration_id, issue.as_ref());
    let request_id = request_id(&mut v, &r.request_id);
    Ok(v.finish_with(|| {
        Some(Mutation {
            command: StatusChange {
                issue: issue?,
                action: action?,
                provider_time: provider_time?,
                source: source?,
                traceparent,
            },
            request_id: request_id?,
        })
    })?)
}

impl From<ExternalIssue> for pb::ExternalIssue {
    fn from(e: ExternalIssue) -> Self {
        Self {
            id: e.id.get(),
            organization_id: e.organization_id.get(),
            integration_id: e.integration_id.to_string(),
            key: e.key.to_string(),
            jira_issue_id: e.jira_issue_id.map(|i| i.to_string()).unwrap_or_default(),
            title: e.title,
            url: e.url,
            group_ids: e.group_ids.into_iter().map(GroupId::get).collect(),
            assignee_watermark_time: e.assignee_watermark.map(to_timestamp),
            status_watermark_time: e.status_watermark.map(to_timestamp),
            create_time: Some(to_timestamp(e.created_at)),
        }
    }
}

impl From<SyncOutcome> for pb::SyncOutcome {
    fn from(outcome: SyncOutcome) -> Self {
        match outcome {
            SyncOutcome::Assigned => Self::Assigned,
            SyncOutcome::Deassigned => Self::Deassigned,
            SyncOutcome::Unchanged => Self::Unchanged,
            SyncOutcome::NoMatchingUser => Self::NoMatchingUser,
            SyncOutcome::Stale => Self::Stale,
            SyncOutcome::SyncDisabled => Self::SyncDisabled,
            SyncOutcome::Resolved => Self::Resolved,
            SyncOutcome::Unresolved => Self::Unresolved,
        }
    }
}

fn results(response: SyncResponse) -> Vec<pb::GroupSyncResult> {
    response
        .results
        .into_iter()
        .map(|r: GroupSyncResult| pb::GroupSyncResult {
            organization_id: r.organization_id.get(),
            group_id: r.group_id.get(),
            outcome: pb::SyncOutcome::from(r.outcome).into(),
            user_id: r.user_id.map(|u| u.get()),
            previous_user_id: r.previous_user_id.map(|u| u.get()),
        })
        .collect()
}

impl ExternalIssueApi {
    /// Applies one change of a SyncAssigneeInboundBatch call as its own
    /// SyncAssigneeInbound call would.
    async fn batched_assignee(
        &self,
        batched: pb::BatchedAssigneeChange,
    ) -> Result<SyncResponse, AssignmentError> {
        let change = batched
            .change
            .ok_or_else(|| vec![FieldViolation::new("change", "required")])?;
        // The change's own trace context, or the batch call's span when the
        // change belongs to the batch's trace (the nearer cause) or has none.
        let call = context::current_or("");
        let trace = match (context::parse(&batched.traceparent), context::parse(&call)) {
            (Some((own, ..)), Some((batch, ..))) if own == batch => call,
            (Some(_), _) => batched.traceparent,
            (None, _) => call,
        };
        self.sync_assignee(assignee_change(change, trace)?).await
    }

    /// Applies one parsed assignee change through the group-commit queue
    /// (what SyncAssigneeInbound and each change of a batch do).
    async fn sync_assignee(
        &self,
        m: Mutation<AssigneeChange>,
    ) -> Result<SyncResponse, AssignmentError> {
        retrying(|| {
            self.assignees.sync(inbound_sync::AssigneeCall {
                change: m.command.clone(),
                request_id: m.request_id.clone(),
            })
        })
        .await
    }
}

/// One change's outcome in a batch: its response, or the error its own call
/// would have returned (as that call's status).
fn batched_outcome(outcome: Result<SyncResponse, AssignmentError>) -> pb::BatchedAssigneeOutcome {
    use pb::batched_assignee_outcome::Outcome;
    pb::BatchedAssigneeOutcome {
        outcome: Some(match outcome {
            Ok(response) => Outcome::Response(pb::SyncAssigneeInboundResponse {
                results: results(response),
            }),
            Err(error) => {
                let status = Status::from(error);
                Outcome::Error(pb::BatchedError {
                    code: status.code() as i32,
                    message: status.message().to_owned(),
                    details: status.details().to_vec(),
                })
            }
        }),
    }
}

fn record_key(issue: &IssueRef) {
    tracing::Span::current().record("jira_key", issue.describe());
}

impl From<OutboundSync> for pb::OutboundSync {
    fn from(e: OutboundSync) -> Self {
        use pb::outbound_sync::Target;
        let target = match e.target {
            OutboundTarget::Assignee { user, emails } => Target::Assignee(pb::OutboundAssignee {
                user_id: user.get(),
                emails,
            }),
            OutboundTarget::Unassigned => Target::Unassigned(true),
            OutboundTarget::Status(action) => Target::Status(
                match action {
                    StatusAction::Resolve => pb::StatusAction::Resolve,
                    StatusAction::Unresolve => pb::StatusAction::Unresolve,
                }
                .into(),
            ),
        };
        Self {
            sequence: e.sequence.to_row(),
            organization_id: e.organization_id.get(),
            group_id: e.group_id.get(),
            issue: Some(pb::ExternalIssueRef {
                integration_id: e.integration_id.to_string(),
                key: e.issue_key.to_string(),
                jira_issue_id: e.jira_issue_id.map(|i| i.to_string()).unwrap_or_default(),
            }),
            target: Some(target),
            from_source: e.from_source,
            request_id: e.request_id.unwrap_or_default(),
            traceparent: e.traceparent,
            create_time: Some(to_timestamp(e.created_at)),
        }
    }
}

/// The gRPC side of an outbound watch: converts entries, and ends with the
/// error status that ended the watch, never a clean OK.
pub struct OutboundStream {
    receiver: tokio::sync::mpsc::Receiver<OutboundItem>,
    ended: bool,
}

impl futures_util::Stream for OutboundStream {
    type Item = Result<pb::WatchOutboundSyncsResponse, Status>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        if self.ended {
            return Poll::Ready(None);
        }
        match self.receiver.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok((entries, head)))) => {
                Poll::Ready(Some(Ok(pb::WatchOutboundSyncsResponse {
                    syncs: entries.into_iter().map(Into::into).collect(),
                    head_sequence: head.to_row(),
                })))
            }
            Poll::Ready(Some(Err(error))) => {
                self.ended = true;
                Poll::Ready(Some(Err((*error).into())))
            }
            Poll::Ready(None) => {
                self.ended = true;
                Poll::Ready(Some(Err(AssignmentError::ShuttingDown.into())))
            }
        }
    }
}

#[tonic::async_trait]
impl pb::external_issue_service_server::ExternalIssueService for ExternalIssueApi {
    type WatchOutboundSyncsStream = OutboundStream;

    async fn watch_outbound_syncs(
        &self,
        request: Request<pb::WatchOutboundSyncsRequest>,
    ) -> Result<Response<Self::WatchOutboundSyncsStream>, Status> {
        let after = request.into_inner().after_sequence;
        let after = u64::try_from(after).map_err(|_| {
            AssignmentError::invalid_field("after_sequence", "must not be negative")
        })?;
        let receiver = crate::stream::outbound::watch(&self.hub, Sequence::new(after)).await?;
        Ok(Response::new(OutboundStream {
            receiver,
            ended: false,
        }))
    }

    async fn link_external_issue(
        &self,
        request: Request<pb::LinkExternalIssueRequest>,
    ) -> Result<Response<pb::LinkExternalIssueResponse>, Status> {
        let scope = Scope::of(&request);
        let m = Mutation::<LinkRequest>::try_from(request.into_inner())?
            .scoped(scope)
            .traced();
        let org = m.command.organization_id;
        scope.check(org, "organization", org)?;
        tracing::Span::current().record("jira_key", m.command.key.as_str());
        let linked =
            retrying(|| external_issues::link(&self.db, m.command.clone(), m.request_id.as_ref()))
                .await?;
        Ok(Response::new(pb::LinkExternalIssueResponse {
            external_issue: Some(linked.external_issue.into()),
            newly_linked_group_ids: linked.newly_linked.into_iter().map(GroupId::get).collect(),
        }))
    }

    async fn unlink_external_issue(
        &self,
        request: Request<pb::UnlinkExternalIssueRequest>,
    ) -> Result<Response<pb::UnlinkExternalIssueResponse>, Status> {
        let scope = Scope::of(&request);
        let m = Mutation::<UnlinkRequest>::try_from(request.into_inner())?
            .scoped(scope)
            .traced();
        let org = m.command.organization_id;
        scope.check(org, "organization", org)?;
        record_key(&m.command.issue);
        let unlinked = retrying(|| {
            external_issues::unlink(&self.db, m.command.clone(), m.request_id.as_ref())
        })
        .await?;
        Ok(Response::new(pb::UnlinkExternalIssueResponse {
            external_issue: unlinked.external_issue.map(Into::into),
            unlinked_group_ids: unlinked.unlinked.into_iter().map(GroupId::get).collect(),
        }))
    }

    async fn get_external_issue(
        &self,
        request: Request<pb::GetExternalIssueRequest>,
    ) -> Result<Response<pb::GetExternalIssueResponse>, Status> {
        let scope = Scope::of(&request);
        let r = request.into_inner();
        let mut v = Violations::new();
        let organization_id = v.check("organization_id", OrganizationId::parse(r.organization_id));
        let issue = issue_ref(&mut v, "issue", r.issue, false);
        let (organization_id, issue) = v
            .finish_with(|| Some((organization_id?, issue?)))
            .map_err(AssignmentError::InvalidArgument)?;
        scope.check(organization_id, "organization", organization_id)?;
        record_key(&issue);
        let record = external_issues::get(&self.db, organization_id, &issue).await?;
        Ok(Response::new(pb::GetExternalIssueResponse {
            external_issue: Some(record.into()),
        }))
    }

    async fn list_external_issues(
        &self,
        request: Request<pb::ListExternalIssuesRequest>,
    ) -> Result<Response<pb::ListExternalIssuesResponse>, Status> {
        let scope = Scope::of(&request);
        let r = request.into_inner();
        let mut v = Violations::new();
        let organization_id = optional_id(
            &mut v,
            "organization_id",
            r.organization_id,
            OrganizationId::parse,
        );
        let integration_id = if r.integration_id.is_empty() {
            Some(None)
        } else {
            v.check("integration_id", IntegrationId::parse(&r.integration_id))
                .map(Some)
        };
        let page = page(
            &mut v,
            r.page_size,
            &r.page_token,
            &format!("org={};integration={}", r.organization_id, r.integration_id),
            EXTERNAL_ISSUES_PAGE,
        );
        let (filter, page) = v
            .finish_with(|| {
                Some((
                    ExternalIssueFilter {
                        organization_id: organization_id?,
                        integration_id: integration_id?,
                    },
                    page?,
                ))
            })
            .map_err(AssignmentError::InvalidArgument)?;
        let filter = ExternalIssueFilter {
            organization_id: scope.filter(filter.organization_id)?,
            ..filter
        };
        let result = external_issues::list_external_issues(&self.db, &filter, &page).await?;
        Ok(Response::new(pb::ListExternalIssuesResponse {
            external_issues: result.items.into_iter().map(Into::into).collect(),
            next_page_token: result.next_page_token,
        }))
    }

    async fn delete_external_issue(
        &self,
        request: Request<pb::DeleteExternalIssueRequest>,
    ) -> Result<Response<pb::DeleteExternalIssueResponse>, Status> {
        let r = request.into_inner();
        let mut v = Violations::new();
        let issue = issue_ref(&mut v, "issue", r.issue, false);
        let request_id = request_id(&mut v, &r.request_id);
        let m = v
            .finish_with(|| {
                Some(Mutation {
                    command: issue?,
                    request_id: request_id?,
                })
            })
            .map_err(AssignmentError::InvalidArgument)?
            .traced();
        record_key(&m.command);
        let retired = retrying(|| {
            external_issues::retire(&self.db, m.command.clone(), m.request_id.as_ref())
        })
        .await?;
        self.waker.committed(self.db.conn()).await;
        Ok(Response::new(pb::DeleteExternalIssueResponse {
            retired: retired
                .into_iter()
                .map(|r| pb::RetiredExternalIssue {
                    organization_id: r.organization_id.get(),
                    unlinked_group_ids: r.unlinked.into_iter().map(GroupId::get).collect(),
                })
                .collect(),
        }))
    }

    async fn move_external_issue(
        &self,
        request: Request<pb::MoveExternalIssueRequest>,
    ) -> Result<Response<pb::MoveExternalIssueResponse>, Status> {
        let m = Mutation::<MoveRequest>::try_from(request.into_inner())?.traced();
        tracing::Span::current().record("jira_key", m.command.new_key.as_str());
        let moved = retrying(|| {
            external_issues::move_issue(&self.db, m.command.clone(), m.request_id.as_ref())
        })
        .await?;
        Ok(Response::new(pb::MoveExternalIssueResponse {
            external_issues: moved.into_iter().map(Into::into).collect(),
        }))
    }

    async fn sync_assignee_inbound(
        &self,
        request: Request<pb::SyncAssigneeInboundRequest>,
    ) -> Result<Response<pb::SyncAssigneeInboundResponse>, Status> {
        let trace = traceparent(request.metadata());
        let m = assignee_change(request.into_inner(), trace)?.traced();
        record_key(&m.command.issue);
        let response = self.sync_assignee(m).await?;
        self.waker.committed(self.db.conn()).await;
        Ok(Response::new(pb::SyncAssigneeInboundResponse {
            results: results(response),
        }))
    }

    async fn sync_assignee_inbound_batch(
        &self,
        request: Request<pb::SyncAssigneeInboundBatchRequest>,
    ) -> Result<Response<pb::SyncAssigneeInboundBatchResponse>, Status> {
        let changes = request.into_inner().changes;
        let mut v = Violations::new();
        if changes.is_empty() {
            v.add("changes", "must list at least one change");
        }
        v.check("changes", text::count(&changes, MAX_BATCHED_CHANGES));
        v.finish().map_err(AssignmentError::from)?;
        // Each change goes to the group-commit queue as its own call would, so
        // they share transactions exactly as that many concurrent calls do.
        let outcomes = futures_util::future::join_all(
            changes
                .into_iter()
                .map(|change| self.batched_assignee(change)),
        )
        .await;
        if outcomes.iter().any(Result::is_ok) {
            self.waker.committed(self.db.conn()).await;
        }
        Ok(Response::new(pb::SyncAssigneeInboundBatchResponse {
            outcomes: outcomes.into_iter().map(batched_outcome).collect(),
        }))
    }

    async fn sync_status_inbound(
        &self,
        request: Request<pb::SyncStatusInboundRequest>,
    ) -> Result<Response<pb::SyncStatusInboundResponse>, Status> {
        let trace = traceparent(request.metadata());
        let m = status_change(request.into_inner(), trace)?.traced();
        record_key(&m.command.issue);
        let response = retrying(|| {
            inbound_sync::sync_status(&self.db, m.command.clone(), m.request_id.as_ref())
        })
        .await?;
        self.waker.committed(self.db.conn()).await;
        Ok(Response::new(pb::SyncStatusInboundResponse {
            results: results(response),
        }))
    }

    async fn reset_watermarks(
        &self,
        request: Request<pb::ResetWatermarksRequest>,
    ) -> Result<Response<pb::ResetWatermarksResponse>, Status> {
        let m = Mutation::<ResetRequest>::try_from(request.into_inner())?.traced();
        record_key(&m.command.issue);
        let reset = retrying(|| {
            external_issues::reset_watermarks(&self.db, m.command.clone(), m.request_id.as_ref())
        })
        .await?;
        Ok(Response::new(pb::ResetWatermarksResponse {
            external_issues: reset.into_iter().map(Into::into).collect(),
        }))
    }
}
