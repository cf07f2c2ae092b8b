//! LinkIssue and its form, for the trait methods in `mod.rs`.

use proto::tracker::v1 as pb;
use service_runtime::ids::{IntegrationId, IssueKey, RequestId};
use service_runtime::status::Violations;
use service_runtime::text;
use tonic::{Request, Response, Status};

use super::{Mutation, TrackerApi, scope};
use crate::error::TrackerError;
use crate::issues::{CommentState, LinkIssueCommand};

/// The most groups one call links.
const MAX_GROUPS: usize = 100;
/// The longest comment accepted, in characters (Jira's own limit).
const MAX_COMMENT_CHARS: usize = 32_767;

impl From<CommentState> for pb::CommentState {
    fn from(state: CommentState) -> Self {
        match state {
            CommentState::None => Self::Unspecified,
            CommentState::Pending => Self::Pending,
            CommentState::Posted => Self::Posted,
        }
    }
}

/// The groups of a request: 1 to 100 positive ids, each once.
fn group_ids(v: &mut Violations, raw: &[i64]) {
    if raw.is_empty() {
        v.add("group_ids", "must list at least one group to link");
    }
    v.check("group_ids", text::count(raw, MAX_GROUPS));
    for (i, id) in raw.iter().enumerate().take(MAX_GROUPS) {
        if *id <= 0 {
            v.add(format!("group_ids[{i}]"), "must be a positive id");
        } else if raw[..i].contains(id) {
            v.add(format!("group_ids[{i}]"), format!("{id} is listed twice"));
        }
    }
}

impl TryFrom<pb::LinkIssueRequest> for Mutation<LinkIssueCommand> {
    type Error = TrackerError;
    fn try_from(r: pb::LinkIssueRequest) -> Result<Self, Self::Error> {
        let mut v = Violations::new();
        let integration_id = v.check("integration_id", IntegrationId::parse(&r.integration_id));
        if r.organization_id <= 0 {
            v.add("organization_id", "must be a positive id");
        }
        group_ids(&mut v, &r.group_ids);
        let key = if r.key.trim().is_empty() {
            v.add("key", "Issue is required");
            None
        } else {
            v.check("key", IssueKey::parse(r.key.trim()))
        };
        let comment = v.check("comment", text::block(&r.comment, MAX_COMMENT_CHARS));
        let request_id = v.check("request_id", RequestId::parse_optional(&r.request_id));
        Ok(v.finish_with(|| {
            Some(Mutation {
                command: LinkIssueCommand {
                    integration_id: integration_id?,
                    organization_id: r.organization_id,
                    group_ids: r.group_ids.clone(),
                    key: key?,
                    comment: comment?,
                },
                request_id: request_id?,
            })
        })?)
    }
}

impl TrackerApi {
    pub(super) async fn get_link_issue_config_impl(
        &self,
        request: Request<pb::GetLinkIssueConfigRequest>,
    ) -> Result<Response<pb::GetLinkIssueConfigResponse>, Status> {
        let caller = scope(&request);
        let r = request.into_inner();
        let mut v = Violations::new();
        let id = v.check("integration_id", IntegrationId::parse(&r.integration_id));
        v.check("group_ids", text::count(&r.group_ids, MAX_GROUPS));
        let id = v.finish_with(|| id).map_err(TrackerError::from)?;
        if let Some(own) = caller
            && r.organization_id != 0
            && r.organization_id != own
        {
            return Err(TrackerError::NotFound {
                resource: "organization",
                id: r.organization_id.to_string(),
            }
            .into());
        }
        self.check_installed(caller, &id).await?;
        let fields = self
            .issues
            .link_config(&id, r.organization_id, &r.group_ids)
            .await?;
        Ok(Response::new(pb::GetLinkIssueConfigResponse {
            fields: fields.into_iter().map(Into::into).collect(),
        }))
    }

    pub(super) async fn link_issue_impl(
        &self,
        request: Request<pb::LinkIssueRequest>,
    ) -> Result<Response<pb::LinkIssueResponse>, Status> {
        let caller = scope(&request);
        let m = Mutation::<LinkIssueCommand>::try_from(request.into_inner())?
            .scoped(caller)
            .traced();
        if let Some(own) = caller
            && m.command.organization_id != own
        {
            return Err(TrackerError::NotFound {
                resource: "organization",
                id: m.command.organization_id.to_string(),
            }
            .into());
        }
        self.check_installed(caller, &m.command.integration_id)
            .await?;
        let linked = service_runtime::error::retrying(|| {
            self.issues
                .link_existing(m.command.clone(), m.request_id.as_ref())
        })
        .await?;
        tracing::Span::current().record("jira_key", linked.issue.key.as_str());
        Ok(Response::new(pb::LinkIssueResponse {
            issue: Some((&linked.issue).into()),
            link_state: pb::LinkState::from(linked.link_state).into(),
            link_error: linked.link_error,
            comment_state: pb::CommentState::from(linked.comment_state).into(),
        }))
    }
}
