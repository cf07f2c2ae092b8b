//! The outbound half of `tracker.v1`: status mappings (configured per
//! installation, checked with Jira) and the operators' view of outbound syncs.
//! The trait methods in `mod.rs` call these.

use proto::tracker::v1 as pb;
use service_runtime::ids::{IntegrationId, IssueKey, RequestId};
use service_runtime::pagination::PageRequest;
use service_runtime::status::Violations;
use service_runtime::text;
use service_runtime::time::to_timestamp;
use tonic::{Request, Response, Status};

use super::{Mutation, TrackerApi, scope};
use crate::domain::outbound::{OutboundRecord, OutboundState, OutboundTarget};
use crate::domain::sync::StatusAction;
use crate::error::TrackerError;
use crate::integrations;
use crate::outbound::mappings::{self, Installation, MAX_MAPPED_PROJECTS, StatusMapping};
use crate::outbound::store::{self, OutboundFilter};

/// The largest page of outbound syncs.
pub const OUTBOUND_PAGE: u64 = 100;

/// The longest Jira id accepted (project and status ids are short numbers).
const MAX_JIRA_ID_BYTES: usize = 64;

impl From<OutboundState> for pb::OutboundSyncState {
    fn from(state: OutboundState) -> Self {
        match state {
            OutboundState::Pending => Self::Pending,
            OutboundState::Done => Self::Done,
            OutboundState::Stopped => Self::Stopped,
            OutboundState::Superseded => Self::Superseded,
        }
    }
}

impl From<OutboundRecord> for pb::OutboundSync {
    fn from(r: OutboundRecord) -> Self {
        use pb::outbound_sync::Target;
        let target = match r.intent.target {
            OutboundTarget::Assignee { user_id, emails } => {
                Target::Assignee(pb::OutboundAssignee { user_id, emails })
            }
            OutboundTarget::Unassigned => Target::Unassigned(true),
            OutboundTarget::Status(action) => Target::Resolved(action == StatusAction::Resolve),
        };
        Self {
            id: r.id,
            source_sequence: i64::try_from(r.intent.source_sequence).unwrap_or(i64::MAX),
            organization_id: r.intent.organization_id,
            group_id: r.intent.group_id,
            integration_id: r.intent.issue.integration_id.to_string(),
            issue_key: r.intent.issue.key.to_string(),
            jira_issue_id: r
                .intent
                .issue
                .jira_issue_id
                .map(|i| i.to_string())
                .unwrap_or_default(),
            target: Some(target),
            from_source: r.intent.from_source,
            state: pb::OutboundSyncState::from(r.state).into(),
            attempts: r.attempts,
            result: r.result.unwrap_or_default(),
            last_error: r.last_error.unwrap_or_default(),
            next_attempt_time: r.next_attempt_at.map(to_timestamp),
            create_time: Some(to_timestamp(r.created_at)),
            update_time: Some(to_timestamp(r.updated_at)),
        }
    }
}

impl From<StatusMapping> for pb::StatusMapping {
    fn from(m: StatusMapping) -> Self {
        Self {
            jira_project_id: m.jira_project_id,
            on_resolve_status_id: m.on_resolve,
            on_unresolve_status_id: m.on_unresolve,
        }
    }
}

/// A Jira id: 1 to 64 ASCII digits or letters (Jira's are digits; some apps
/// use other characters, which would be refused by Jira anyway).
fn jira_id(v: &mut Violations, field: &str, raw: &str, required_message: &str) -> Option<String> {
    if raw.trim().is_empty() {
        v.add(field, required_message);
        return None;
    }
    v.check(field, text::token(raw.trim(), 1, MAX_JIRA_ID_BYTES))
}

/// Parses the mappings of a SetStatusMappings request: every entry complete
/// (Sentry: "Resolve and unresolve status are required."), every project once.
fn status_mappings(v: &mut Violations, raw: &[pb::StatusMapping]) -> Vec<StatusMapping> {
    if raw.len() > MAX_MAPPED_PROJECTS {
        v.add(
            "mappings",
            format!(
                "has {} projects; at most {MAX_MAPPED_PROJECTS} are accepted",
                raw.len()
            ),
        );
        return Vec::new();
    }
    let mut parsed: Vec<StatusMapping> = Vec::with_capacity(raw.len());
    for (i, m) in raw.iter().enumerate() {
        let project = jira_id(
            v,
            &format!("mappings[{i}].jira_project_id"),
            &m.jira_project_id,
            "Jira project is required",
        );
        let resolve = jira_id(
            v,
            &format!("mappings[{i}].on_resolve_status_id"),
            &m.on_resolve_status_id,
            "Resolve and unresolve status are required.",
        );
        let unresolve = jira_id(
            v,
            &format!("mappings[{i}].on_unresolve_status_id"),
            &m.on_unresolve_status_id,
            "Resolve and unresolve status are required.",
        );
        if let Some(project) = &project
            && parsed.iter().any(|p| &p.jira_project_id == project)
        {
            v.add(
                format!("mappings[{i}].jira_project_id"),
                format!("project {project} is mapped twice"),
            );
        }
        if let (Some(jira_project_id), Some(on_resolve), Some(on_unresolve)) =
            (project, resolve, unresolve)
        {
            parsed.push(StatusMapping {
                jira_project_id,
                on_resolve,
                on_unresolve,
            });
        }
    }
    parsed
}

fn installation(
    v: &mut Violations,
    integration_id: &str,
    organization_id: i64,
) -> Option<Installation> {
    let integration_id = v.check("integration_id", IntegrationId::parse(integration_id));
    if organization_id <= 0 {
        v.add("organization_id", "must be a positive id");
    }
    Some(Installation {
        integration_id: integration_id?,
        organization_id: (organization_id > 0).then_some(organization_id)?,
    })
}

impl TrackerApi {
    /// An installation the caller may configure: an organization only its own,
    /// and only one it installed (for operators too: a mapping for an
    /// installation that does not exist would never be used).
    async fn check_installation<T>(
        &self,
        request: &Request<T>,
        at: &Installation,
    ) -> Result<(), TrackerError> {
        if let Some(own) = scope(request)
            && own != at.organization_id
        {
            return Err(TrackerError::NotFound {
                resource: "organization",
                id: at.organization_id.to_string(),
            });
        }
        self.check_installed(Some(at.organization_id), &at.integration_id)
            .await
    }

    pub(super) async fn get_status_sync_config_impl(
        &self,
        request: Request<pb::GetStatusSyncConfigRequest>,
    ) -> Result<Response<pb::GetStatusSyncConfigResponse>, Status> {
        let mut v = Violations::new();
        let at = installation(
            &mut v,
            &request.get_ref().integration_id,
            request.get_ref().organization_id,
        );
        let at = v.finish_with(|| at).map_err(TrackerError::from)?;
        self.check_installation(&request, &at).await?;
        let integration = integrations::load(self.db.conn(), &at.integration_id).await?;
        let projects = self
            .jira
            .site(&integration)
            .all_projects()
            .await
            .map_err(TrackerError::from)?;
        let mappings = mappings::list(self.db.conn(), &at).await?;
        Ok(Response::new(pb::GetStatusSyncConfigResponse {
            projects: projects
                .into_iter()
                .map(|p| pb::JiraProject {
                    id: p.id,
                    key: p.key,
                    name: p.name,
                })
                .collect(),
            mappings: mappings.into_iter().map(Into::into).collect(),
        }))
    }

    pub(super) async fn list_jira_project_statuses_impl(
        &self,
        request: Request<pb::ListJiraProjectStatusesRequest>,
    ) -> Result<Response<pb::ListJiraProjectStatusesResponse>, Status> {
        let caller = scope(&request);
        let r = request.into_inner();
        let mut v = Violations::new();
        let integration_id = v.check("integration_id", IntegrationId::parse(&r.integration_id));
        let project = jira_id(
            &mut v,
            "jira_project_id",
            &r.jira_project_id,
            "Jira project is required",
        );
        let (integration_id, project) = v
            .finish_with(|| Some((integration_id?, project?)))
            .map_err(TrackerError::from)?;
        self.check_installed(caller, &integration_id).await?;
        let integration = integrations::load(self.db.conn(), &integration_id).await?;
        let statuses = mappings::project_statuses(&self.jira, &integration, &project)
            .await
            .map_err(TrackerError::from)?;
        Ok(Response::new(pb::ListJiraProjectStatusesResponse {
            statuses: statuses
                .into_iter()
                .map(|s| pb::JiraStatus {
                    id: s.id,
                    name: s.name,
                    category: s.status_category.key,
                })
                .collect(),
        }))
    }

    pub(super) async fn set_status_mappings_impl(
        &self,
        request: Request<pb::SetStatusMappingsRequest>,
    ) -> Result<Response<pb::SetStatusMappingsResponse>, Status> {
        let caller = scope(&request);
        let mut v = Violations::new();
        let r = request.get_ref();
        let at = installation(&mut v, &r.integration_id, r.organization_id);
        let parsed = status_mappings(&mut v, &r.mappings);
        let request_id = v.check("request_id", RequestId::parse_optional(&r.request_id));
        let m = v
            .finish_with(|| {
                Some(Mutation {
                    command: (at?, parsed),
                    request_id: request_id?,
                })
            })
            .map_err(TrackerError::from)?
            .scoped(caller)
            .traced();
        let (at, parsed) = m.command;
        self.check_installation(&request, &at).await?;
        let integration = integrations::load(self.db.conn(), &at.integration_id).await?;
        let violations = mappings::check_against_jira(&self.jira, &integration, &parsed).await?;
        if !violations.is_empty() {
            return Err(TrackerError::InvalidArgument(violations).into());
        }
        let stored = service_runtime::error::retrying(|| {
            mappings::replace(&self.db, at.clone(), parsed.clone(), m.request_id.as_ref())
        })
        .await?;
        Ok(Response::new(pb::SetStatusMappingsResponse {
            mappings: stored.into_iter().map(Into::into).collect(),
        }))
    }

    pub(super) async fn list_outbound_syncs_impl(
        &self,
        request: Request<pb::ListOutboundSyncsRequest>,
    ) -> Result<Response<pb::ListOutboundSyncsResponse>, Status> {
        let r = request.into_inner();
        let mut v = Violations::new();
        let integration_id = if r.integration_id.is_empty() {
            Some(None)
        } else {
            v.check("integration_id", IntegrationId::parse(&r.integration_id))
                .map(Some)
        };
        let state = match pb::OutboundSyncState::try_from(r.state) {
            Ok(pb::OutboundSyncState::Unspecified) => Some(None),
            Ok(pb::OutboundSyncState::Pending) => Some(Some(OutboundState::Pending)),
            Ok(pb::OutboundSyncState::Done) => Some(Some(OutboundState::Done)),
            Ok(pb::OutboundSyncState::Stopped) => Some(Some(OutboundState::Stopped)),
            Ok(pb::OutboundSyncState::Superseded) => Some(Some(OutboundState::Superseded)),
            Err(_) => {
                v.add("state", format!("{} is not an OutboundSyncState", r.state));
                None
            }
        };
        let issue_key = if r.issue_key.is_empty() {
            Some(None)
        } else {
            v.check("issue_key", IssueKey::parse(&r.issue_key))
                .map(Some)
        };
        let filters = format!(
            "integration={};state={};issue={}",
            r.integration_id, r.state, r.issue_key
        );
        let page = match PageRequest::<i64>::parse(r.page_size, &r.page_token, &filters) {
            Ok(page) => Some(page.at_most(OUTBOUND_PAGE)),
            Err(violation) => {
                v.add(violation.field, violation.description);
                None
            }
        };
        let (filter, page) = v
            .finish_with(|| {
                Some((
                    OutboundFilter {
                        integration_id: integration_id?,
                        state: state?,
                        issue_key: issue_key?,
                    },
                    page?,
                ))
            })
            .map_err(TrackerError::from)?;
        let (records, next_page_token) = store::list(&self.db, &filter, &page).await?;
        Ok(Response::new(pb::ListOutboundSyncsResponse {
            outbound_syncs: records.into_iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    pub(super) async fn get_outbound_sync_impl(
        &self,
        request: Request<pb::GetOutboundSyncRequest>,
    ) -> Result<Response<pb::GetOutboundSyncResponse>, Status> {
        let id = request.into_inner().outbound_sync_id;
        if id <= 0 {
            return Err(
                TrackerError::invalid_field("outbound_sync_id", "must be a positive id").into(),
            );
        }
        let record = store::get(self.db.conn(), id).await?;
        Ok(Response::new(pb::GetOutboundSyncResponse {
            outbound_sync: Some(record.into()),
        }))
    }

    pub(super) async fn retry_outbound_sync_impl(
        &self,
        request: Request<pb::RetryOutboundSyncRequest>,
    ) -> Result<Response<pb::RetryOutboundSyncResponse>, Status> {
        let r = request.into_inner();
        let mut v = Violations::new();
        if r.outbound_sync_id <= 0 {
            v.add("outbound_sync_id", "must be a positive id");
        }
        let request_id = v.check("request_id", RequestId::parse_optional(&r.request_id));
        let m = v
            .finish_with(|| {
                Some(Mutation {
                    command: r.outbound_sync_id,
                    request_id: request_id?,
                })
            })
            .map_err(TrackerError::from)?
            .traced();
        let record = service_runtime::error::retrying(|| {
            store::retry(&self.db, m.command, m.request_id.as_ref())
        })
        .await?;
        self.outbound_waker.wake();
        Ok(Response::new(pb::RetryOutboundSyncResponse {
            outbound_sync: Some(record.into()),
        }))
    }
}
