//! `assignment.v1.GroupService`: groups and their audit trail.

use proto::assignment::v1 as pb;
use service_runtime::database::Database;
use service_runtime::status::Violations;
use service_runtime::text;
use service_runtime::time::to_timestamp;
use tonic::{Request, Response, Status};

use super::limits::{GROUPS_PAGE, MAX_GROUP_TITLE_CHARS, SMALL_ITEMS_PAGE};
use super::{Mutation, Scope, optional_id, page, request_id, retrying, traceparent};
use crate::directory;
use crate::domain::records::{Activity, Group, Participant};
use crate::domain::{
    ActivityKind, GroupId, GroupStatus, OrganizationId, ParticipantReason, ProjectId, UserId,
};
use crate::error::AssignmentError;
use crate::groups::actions::{self, Action, ActionResult, GroupAction};
use crate::groups::participants;
use crate::groups::{self, AssigneeFilter, GroupFilter, NewGroup};
use crate::stream::LogWaker;

/// Serves `GroupService` over the service's database.
#[derive(Debug, Clone)]
pub struct GroupApi {
    db: Database,
    /// Wakes the stream after an action wrote notifications.
    waker: LogWaker,
}

impl GroupApi {
    /// A handler over `db` that wakes the stream after writing notifications.
    pub fn new(db: Database, waker: LogWaker) -> Self {
        Self { db, waker }
    }
}

impl TryFrom<pb::CreateGroupRequest> for Mutation<NewGroup> {
    type Error = AssignmentError;
    fn try_from(r: pb::CreateGroupRequest) -> Result<Self, Self::Error> {
        let mut v = Violations::new();
        let project_id = v.check("project_id", ProjectId::parse(r.project_id));
        let title = v
            .check("title", text::line(&r.title, MAX_GROUP_TITLE_CHARS))
            .unwrap_or_default();
        if r.title.trim().is_empty() {
            v.add("title", "must not be empty");
        }
        let request_id = request_id(&mut v, &r.request_id);
        Ok(v.finish_with(|| {
            Some(Mutation {
                command: NewGroup {
                    project_id: project_id?,
                    title,
                },
                request_id: request_id?,
            })
        })?)
    }
}

/// Reads a status filter: UNSPECIFIED means "any".
pub(crate) fn status_filter(v: &mut Violations, raw: i32) -> Option<Option<GroupStatus>> {
    match pb::GroupStatus::try_from(raw) {
        Ok(pb::GroupStatus::Unspecified) => Some(None),
        Ok(pb::GroupStatus::Unresolved) => Some(Some(GroupStatus::Unresolved)),
        Ok(pb::GroupStatus::Resolved) => Some(Some(GroupStatus::Resolved)),
        Err(_) => {
            v.add("status", format!("{raw} is not a GroupStatus value"));
            None
        }
    }
}

impl From<GroupStatus> for pb::GroupStatus {
    fn from(status: GroupStatus) -> Self {
        match status {
            GroupStatus::Unresolved => Self::Unresolved,
            GroupStatus::Resolved => Self::Resolved,
        }
    }
}

impl From<Group> for pb::Group {
    fn from(g: Group) -> Self {
        Self {
            id: g.id.get(),
            organization_id: g.organization_id.get(),
            project_id: g.project_id.get(),
            title: g.title,
            status: pb::GroupStatus::from(g.status).into(),
            assignee_user_id: g.assignee.map(|(user, _)| user.get()),
            assign_time: g.assignee.map(|(_, at)| to_timestamp(at)),
            linked_issues: g
                .linked_issues
                .into_iter()
                .map(|l| pb::LinkedIssue {
                    integration_id: l.integration_id.to_string(),
                    key: l.key.to_string(),
                    url: l.url,
                })
                .collect(),
            create_time: Some(to_timestamp(g.created_at)),
        }
    }
}

impl From<ActivityKind> for pb::ActivityKind {
    fn from(kind: ActivityKind) -> Self {
        match kind {
            ActivityKind::Assigned => Self::Assigned,
            ActivityKind::Unassigned => Self::Unassigned,
            ActivityKind::Resolved => Self::Resolved,
            ActivityKind::Unresolved => Self::Unresolved,
            ActivityKind::Linked => Self::Linked,
            ActivityKind::Unlinked => Self::Unlinked,
        }
    }
}

impl From<Activity> for pb::Activity {
    fn from(a: Activity) -> Self {
        Self {
            id: a.id.get(),
            group_id: a.group_id.get(),
            organization_id: a.organization_id.get(),
            kind: pb::ActivityKind::from(a.kind).into(),
            user_id: a.user_id.map(UserId::get),
            previous_user_id: a.previous_user_id.map(UserId::get),
            source_integration_id: a
                .source_integration_id
                .map(|i| i.to_string())
                .unwrap_or_default(),
            external_issue_key: a.external_issue_key.unwrap_or_default(),
            request_id: a.request_id.unwrap_or_default(),
            create_time: Some(to_timestamp(a.created_at)),
            actor_user_id: a.actor.map(UserId::get),
        }
    }
}

/// Parses a group action's fields into the command.
fn group_action(
    group_id: i64,
    action: impl FnOnce(&mut Violations) -> Option<Action>,
    acting_user_id: i64,
    raw_request_id: &str,
) -> Result<Mutation<GroupAction>, AssignmentError> {
    let mut v = Violations::new();
    let group = v.check("group_id", GroupId::parse(group_id));
    let action = action(&mut v);
    let actor = optional_id(&mut v, "acting_user_id", acting_user_id, UserId::parse);
    let request_id = request_id(&mut v, raw_request_id);
    Ok(v.finish_with(|| {
        Some(Mutation {
            command: GroupAction {
                group_id: group?,
                action: action?,
                actor: actor?,
            },
            request_id: request_id?,
        })
    })?)
}

impl From<ActionResult> for pb::GroupActionResult {
    fn from(r: ActionResult) -> Self {
        Self {
            group: Some(r.group.into()),
            changed: r.changed,
        }
    }
}

impl From<Participant> for pb::Participant {
    fn from(p: Participant) -> Self {
        Self {
            user_id: p.user_id.get(),
            reason: match p.reason {
                ParticipantReason::Subscribed => pb::ParticipantReason::Subscribed,
                ParticipantReason::Assignee => pb::ParticipantReason::Assignee,
            }
            .into(),
            create_time: Some(to_timestamp(p.since)),
        }
    }
}

/// Parses the (group, user) of a subscribe or unsubscribe.
fn group_and_user(group_id: i64, user_id: i64) -> Result<(GroupId, UserId), AssignmentError> {
    let mut v = Violations::new();
    let group = v.check("group_id", GroupId::parse(group_id));
    let user = v.check("user_id", UserId::parse(user_id));
    Ok(v.finish_with(|| Some((group?, user?)))?)
}

impl GroupApi {
    /// Checks that the caller may see `group_id` (and `user`, when named):
    /// an organization only its own groups, and users it can see.
    async fn check_visible(
        &self,
        scope: Scope,
        group_id: GroupId,
        user: Option<UserId>,
    ) -> Result<(), AssignmentError> {
        if scope.organization().is_none() {
            return Ok(());
        }
        let group = groups::get_group(self.db.conn(), group_id).await?;
        scope.check(group.organization_id, "group", group_id)?;
        if let Some(user_id) = user {
            let user = directory::get_user(self.db.conn(), user_id).await?;
            if !directory::user_visible_to(self.db.conn(), &user, group.organization_id).await? {
                return Err(AssignmentError::NotFound {
                    resource: "user",
                    id: user_id.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Runs a group action for the caller: an organization acts only on its own
    /// groups, and names only an acting user it can see.
    async fn act(
        &self,
        scope: Scope,
        m: Mutation<GroupAction>,
        traceparent: &str,
    ) -> Result<pb::GroupActionResult, Status> {
        let m = m.scoped(scope).traced();
        self.check_visible(scope, m.command.group_id, m.command.actor)
            .await?;
        let result =
            retrying(|| actions::act(&self.db, m.command, m.request_id.as_ref(), traceparent))
                .await?;
        if result.changed {
            self.waker.committed(self.db.conn()).await;
        }
        Ok(result.into())
    }
}

#[tonic::async_trait]
impl pb::group_service_server::GroupService for GroupApi {
    async fn assign_group(
        &self,
        request: Request<pb::AssignGroupRequest>,
    ) -> Result<Response<pb::AssignGroupResponse>, Status> {
        let (scope, trace) = (Scope::of(&request), traceparent(request.metadata()));
        let r = request.into_inner();
        let m = group_action(
            r.group_id,
            |v| {
                v.check("user_id", UserId::parse(r.user_id))
                    .map(Action::Assign)
            },
            r.acting_user_id,
            &r.request_id,
        )?;
        Ok(Response::new(pb::AssignGroupResponse {
            result: Some(self.act(scope, m, &trace).await?),
        }))
    }

    async fn unassign_group(
        &self,
        request: Request<pb::UnassignGroupRequest>,
    ) -> Result<Response<pb::UnassignGroupResponse>, Status> {
        let (scope, trace) = (Scope::of(&request), traceparent(request.metadata()));
        let r = request.into_inner();
        let m = group_action(
            r.group_id,
            |_| Some(Action::Unassign),
            r.acting_user_id,
            &r.request_id,
        )?;
        Ok(Response::new(pb::UnassignGroupResponse {
            result: Some(self.act(scope, m, &trace).await?),
        }))
    }

    async fn resolve_group(
        &self,
        request: Request<pb::ResolveGroupRequest>,
    ) -> Result<Response<pb::ResolveGroupResponse>, Status> {
        let (scope, trace) = (Scope::of(&request), traceparent(request.metadata()));
        let r = request.into_inner();
        let m = group_action(
            r.group_id,
            |_| Some(Action::Resolve),
            r.acting_user_id,
            &r.request_id,
        )?;
        Ok(Response::new(pb::ResolveGroupResponse {
            result: Some(self.act(scope, m, &trace).await?),
        }))
    }

    async fn unresolve_group(
        &self,
        request: Request<pb::UnresolveGroupRequest>,
    ) -> Result<Response<pb::UnresolveGroupResponse>, Status> {
        let (scope, trace) = (Scope::of(&request), traceparent(request.metadata()));
        let r = request.into_inner();
        let m = group_action(
            r.group_id,
            |_| Some(Action::Unresolve),
            r.acting_user_id,
            &r.request_id,
        )?;
        Ok(Response::new(pb::UnresolveGroupResponse {
            result: Some(self.act(scope, m, &trace).await?),
        }))
    }

    async fn subscribe_to_group(
        &self,
        request: Request<pb::SubscribeToGroupRequest>,
    ) -> Result<Response<pb::SubscribeToGroupResponse>, Status> {
        let scope = Scope::of(&request);
        let r = request.into_inner();
        let (group_id, user_id) = group_and_user(r.group_id, r.user_id)?;
        self.check_visible(scope, group_id, Some(user_id)).await?;
        let followed = retrying(|| participants::subscribe(&self.db, group_id, user_id)).await?;
        Ok(Response::new(pb::SubscribeToGroupResponse {
            changed: followed.changed,
        }))
    }

    async fn unsubscribe_from_group(
        &self,
        request: Request<pb::UnsubscribeFromGroupRequest>,
    ) -> Result<Response<pb::UnsubscribeFromGroupResponse>, Status> {
        let scope = Scope::of(&request);
        let r = request.into_inner();
        let (group_id, user_id) = group_and_user(r.group_id, r.user_id)?;
        self.check_visible(scope, group_id, Some(user_id)).await?;
        let followed = retrying(|| participants::unsubscribe(&self.db, group_id, user_id)).await?;
        Ok(Response::new(pb::UnsubscribeFromGroupResponse {
            changed: followed.changed,
        }))
    }

    async fn list_group_participants(
        &self,
        request: Request<pb::ListGroupParticipantsRequest>,
    ) -> Result<Response<pb::ListGroupParticipantsResponse>, Status> {
        let scope = Scope::of(&request);
        let r = request.into_inner();
        let mut v = Violations::new();
        let group_id = v.check("group_id", GroupId::parse(r.group_id));
        let page = page(
            &mut v,
            r.page_size,
            &r.page_token,
            &format!("group={}", r.group_id),
            SMALL_ITEMS_PAGE,
        );
        let (group_id, page) = v
            .finish_with(|| Some((group_id?, page?)))
            .map_err(AssignmentError::InvalidArgument)?;
        self.check_visible(scope, group_id, None).await?;
        let result = participants::list(&self.db, group_id, &page).await?;
        Ok(Response::new(pb::ListGroupParticipantsResponse {
            participants: result.items.into_iter().map(Into::into).collect(),
            next_page_token: result.next_page_token,
        }))
    }

    async fn create_group(
        &self,
        request: Request<pb::CreateGroupRequest>,
    ) -> Result<Response<pb::CreateGroupResponse>, Status> {
        let scope = Scope::of(&request);
        let m = Mutation::<NewGroup>::try_from(request.into_inner())?
            .scoped(scope)
            .traced();
        if scope.organization().is_some() {
            let project = directory::get_project(self.db.conn(), m.command.project_id).await?;
            scope.check(project.organization_id, "project", project.id)?;
        }
        let group =
            retrying(|| groups::create_group(&self.db, m.command.clone(), m.request_id.as_ref()))
                .await?;
        Ok(Response::new(pb::CreateGroupResponse {
            group: Some(group.into()),
        }))
    }

    async fn get_group(
        &self,
        request: Request<pb::GetGroupRequest>,
    ) -> Result<Response<pb::GetGroupResponse>, Status> {
        let scope = Scope::of(&request);
        let id = GroupId::parse(request.into_inner().group_id)
            .map_err(|e| AssignmentError::invalid_field("group_id", e.to_string()))?;
        let group = groups::get_group(self.db.conn(), id).await?;
        scope.check(group.organization_id, "group", id)?;
        Ok(Response::new(pb::GetGroupResponse {
            group: Some(group.into()),
        }))
    }

    async fn list_groups(
        &self,
        request: Request<pb::ListGroupsRequest>,
    ) -> Result<Response<pb::ListGroupsResponse>, Status> {
        let scope = Scope::of(&request);
        let r = request.into_inner();
        let mut v = Violations::new();
        let organization_id = optional_id(
            &mut v,
            "organization_id",
            r.organization_id,
            OrganizationId::parse,
        );
        let project_id = optional_id(&mut v, "project_id", r.project_id, ProjectId::parse);
        let assignee = match r.assignee_filter {
            None => Some(None),
            Some(pb::list_groups_request::AssigneeFilter::Unassigned(true)) => {
                Some(Some(AssigneeFilter::Unassigned))
            }
            Some(pb::list_groups_request::AssigneeFilter::Unassigned(false)) => Some(None),
            Some(pb::list_groups_request::AssigneeFilter::AssigneeUserId(id)) => v
                .check("assignee_user_id", UserId::parse(id))
                .map(|u| Some(AssigneeFilter::User(u))),
        };
        let status = status_filter(&mut v, r.status);
        let filters = format!(
            "org={};project={};assignee={:?};status={}",
            r.organization_id, r.project_id, r.assignee_filter, r.status
        );
        let page = page(&mut v, r.page_size, &r.page_token, &filters, GROUPS_PAGE);
        let (filter, page) = v
            .finish_with(|| {
                Some((
                    GroupFilter {
                        organization_id: organization_id?,
                        project_id: project_id?,
                        assignee: assignee?,
                        status: status?,
                    },
                    page?,
                ))
            })
            .map_err(AssignmentError::InvalidArgument)?;
        let filter = GroupFilter {
            organization_id: scope.filter(filter.organization_id)?,
            ..filter
        };
        let result = groups::list_groups(&self.db, &filter, &page).await?;
        Ok(Response::new(pb::ListGroupsResponse {
            groups: result.items.into_iter().map(Into::into).collect(),
            next_page_token: result.next_page_token,
        }))
    }

    async fn list_activities(
        &self,
        request: Request<pb::ListActivitiesRequest>,
    ) -> Result<Response<pb::ListActivitiesResponse>, Status> {
        let scope = Scope::of(&request);
        let r = request.into_inner();
        let mut v = Violations::new();
        let group_id = v.check("group_id", GroupId::parse(r.group_id));
        let page = page(
            &mut v,
            r.page_size,
            &r.page_token,
            &format!("group={}", r.group_id),
            SMALL_ITEMS_PAGE,
        );
        let (group_id, page) = v
            .finish_with(|| Some((group_id?, page?)))
            .map_err(AssignmentError::InvalidArgument)?;
        self.check_visible(scope, group_id, None).await?;
        let result = groups::list_activities(&self.db, group_id, &page).await?;
        Ok(Response::new(pb::ListActivitiesResponse {
            activities: result.items.into_iter().map(Into::into).collect(),
            next_page_token: result.next_page_token,
        }))
    }
}
