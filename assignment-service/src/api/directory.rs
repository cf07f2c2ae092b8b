//! `assignment.v1.DirectoryService`: organizations, projects, users, project
//! access and installations.

use proto::assignment::v1 as pb;
use service_runtime::database::Database;
use service_runtime::ids::IntegrationId;
use service_runtime::secret::Secret;
use service_runtime::status::Violations;
use service_runtime::text;
use service_runtime::time::to_timestamp;
use tonic::{Request, Response, Status};

use super::limits::{MAX_EMAILS_PER_USER, MAX_NAME_CHARS, SMALL_ITEMS_PAGE, USERS_PAGE};
use super::{Mutation, Scope, optional_id, page, request_id, retrying};
use crate::directory::{
    self, InstallAuthorization, InstallationFilter, InstallationRef, NewOrganization, NewProject,
    NewUser, ProjectAccess, UserChanges,
};
use crate::domain::records::{Installation, Organization, Project, SyncSettings, User, UserEmail};
use crate::domain::{Email, OrganizationId, ProjectId, Slug, UserId};
use crate::error::{AssignmentError, Reason};

/// Serves `DirectoryService` over the service's database.
#[derive(Debug, Clone)]
pub struct DirectoryApi {
    db: Database,
}

impl DirectoryApi {
    /// A handler over `db`.
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

fn name_or(v: &mut Violations, field: &str, raw: &str, default: &str) -> String {
    let name = v
        .check(field, text::line(raw, MAX_NAME_CHARS))
        .unwrap_or_default();
    if name.is_empty() {
        default.to_owned()
    } else {
        name
    }
}

fn required_name(v: &mut Violations, field: &str, raw: &str) -> String {
    if raw.trim().is_empty() {
        v.add(field, "must not be empty");
    }
    name_or(v, field, raw, "")
}

fn emails(v: &mut Violations, field: &str, raw: Vec<pb::UserEmail>) -> Vec<UserEmail> {
    if v.check(field, text::count(&raw, MAX_EMAILS_PER_USER))
        .is_none()
    {
        return Vec::new();
    }
    raw.into_iter()
        .enumerate()
        .filter_map(|(i, e)| {
            let email = v.check(&format!("{field}[{i}].email"), Email::parse(&e.email))?;
            Some(UserEmail {
                email,
                verified: e.verified,
            })
        })
        .collect()
}

fn settings(raw: Option<pb::SyncSettings>) -> SyncSettings {
    raw.map(|s| SyncSettings {
        sync_reverse_assignment: s.sync_reverse_assignment,
        sync_status_reverse: s.sync_status_reverse,
        sync_forward_assignment: s.sync_forward_assignment,
        sync_status_forward: s.sync_status_forward,
    })
    .unwrap_or_default()
}

fn installation_ref(
    v: &mut Violations,
    organization_id: i64,
    integration_id: &str,
) -> Option<InstallationRef> {
    let organization_id = v.check("organization_id", OrganizationId::parse(organization_id));
    let integration_id = v.check("integration_id", IntegrationId::parse(integration_id));
    Some(InstallationRef {
        organization_id: organization_id?,
        integration_id: integration_id?,
    })
}

impl TryFrom<pb::CreateOrganizationRequest> for Mutation<NewOrganization> {
    type Error = AssignmentError;
    fn try_from(r: pb::CreateOrganizationRequest) -> Result<Self, Self::Error> {
        let mut v = Violations::new();
        let slug = v.check("slug", Slug::parse(&r.slug));
        let name = name_or(&mut v, "name", &r.name, &r.slug);
        let request_id = request_id(&mut v, &r.request_id);
        Ok(v.finish_with(|| {
            Some(Mutation {
                command: NewOrganization { slug: slug?, name },
                request_id: request_id?,
            })
        })?)
    }
}

impl TryFrom<pb::CreateProjectRequest> for Mutation<NewProject> {
    type Error = AssignmentError;
    fn try_from(r: pb::CreateProjectRequest) -> Result<Self, Self::Error> {
        let mut v = Violations::new();
        let organization_id = v.check("organization_id", OrganizationId::parse(r.organization_id));
        let slug = v.check("slug", Slug::parse(&r.slug));
        let name = name_or(&mut v, "name", &r.name, &r.slug);
        let request_id = request_id(&mut v, &r.request_id);
        Ok(v.finish_with(|| {
            Some(Mutation {
                command: NewProject {
                    organization_id: organization_id?,
                    slug: slug?,
                    name,
                },
                request_id: request_id?,
            })
        })?)
    }
}

impl TryFrom<pb::CreateUserRequest> for Mutation<NewUser> {
    type Error = AssignmentError;
    fn try_from(r: pb::CreateUserRequest) -> Result<Self, Self::Error> {
        let mut v = Violations::new();
        let display_name = required_name(&mut v, "display_name", &r.display_name);
        let emails = emails(&mut v, "emails", r.emails);
        let request_id = request_id(&mut v, &r.request_id);
        Ok(v.finish_with(|| {
            Some(Mutation {
                command: NewUser {
                    display_name,
                    emails,
                    active: r.active.unwrap_or(true),
                    owner: None,
                },
                request_id: request_id?,
            })
        })?)
    }
}

impl TryFrom<pb::UpdateUserRequest> for Mutation<UserChanges> {
    type Error = AssignmentError;
    fn try_from(r: pb::UpdateUserRequest) -> Result<Self, Self::Error> {
        let mut v = Violations::new();
        let user_id = v.check("user_id", UserId::parse(r.user_id));
        let display_name = r
            .display_name
            .map(|name| required_name(&mut v, "display_name", &name));
        let emails = r
            .emails
            .map(|list| emails(&mut v, "emails.emails", list.emails));
        let request_id = request_id(&mut v, &r.request_id);
        Ok(v.finish_with(|| {
            Some(Mutation {
                command: UserChanges {
                    user_id: user_id?,
                    display_name,
                    active: r.active,
                    emails,
                },
                request_id: request_id?,
            })
        })?)
    }
}

fn access(
    project_id: i64,
    user_id: i64,
    raw_request_id: &str,
) -> Result<Mutation<ProjectAccess>, AssignmentError> {
    let mut v = Violations::new();
    let project_id = v.check("project_id", ProjectId::parse(project_id));
    let user_id = v.check("user_id", UserId::parse(user_id));
    let request_id = request_id(&mut v, raw_request_id);
    Ok(v.finish_with(|| {
        Some(Mutation {
            command: ProjectAccess {
                project_id: project_id?,
                user_id: user_id?,
            },
            request_id: request_id?,
        })
    })?)
}

impl From<Organization> for pb::Organization {
    fn from(o: Organization) -> Self {
        Self {
            id: o.id.get(),
            slug: o.slug.to_string(),
            name: o.name,
            create_time: Some(to_timestamp(o.created_at)),
        }
    }
}

impl From<Project> for pb::Project {
    fn from(p: Project) -> Self {
        Self {
            id: p.id.get(),
            organization_id: p.organization_id.get(),
            slug: p.slug.to_string(),
            name: p.name,
            create_time: Some(to_timestamp(p.created_at)),
        }
    }
}

impl From<User> for pb::User {
    fn from(u: User) -> Self {
        Self {
            id: u.id.get(),
            display_name: u.display_name,
            emails: u
                .emails
                .into_iter()
                .map(|e| pb::UserEmail {
                    email: e.email.to_string(),
                    verified: e.verified,
                })
                .collect(),
            active: u.active,
            create_time: Some(to_timestamp(u.created_at)),
            owner_organization_id: u.owner_organization_id.map_or(0, OrganizationId::get),
        }
    }
}

impl From<Installation> for pb::Installation {
    fn from(i: Installation) -> Self {
        Self {
            organization_id: i.organization_id.get(),
            integration_id: i.integration_id.to_string(),
            sync_settings: Some(pb::SyncSettings {
                sync_reverse_assignment: i.settings.sync_reverse_assignment,
                sync_status_reverse: i.settings.sync_status_reverse,
                sync_forward_assignment: i.settings.sync_forward_assignment,
                sync_status_forward: i.settings.sync_status_forward,
            }),
            create_time: Some(to_timestamp(i.created_at)),
            update_time: Some(to_timestamp(i.updated_at)),
        }
    }
}

fn id_or_invalid<T, E: std::fmt::Display>(
    field: &str,
    parsed: Result<T, E>,
) -> Result<T, AssignmentError> {
    parsed.map_err(|e| AssignmentError::invalid_field(field, e.to_string()))
}

#[tonic::async_trait]
impl pb::directory_service_server::DirectoryService for DirectoryApi {
    async fn create_organization(
        &self,
        request: Request<pb::CreateOrganizationRequest>,
    ) -> Result<Response<pb::CreateOrganizationResponse>, Status> {
        let m = Mutation::<NewOrganization>::try_from(request.into_inner())?.traced();
        let organization = retrying(|| {
            directory::create_organization(&self.db, m.command.clone(), m.request_id.as_ref())
        })
        .await?;
        Ok(Response::new(pb::CreateOrganizationResponse {
            organization: Some(organization.into()),
        }))
    }

    async fn get_organization(
        &self,
        request: Request<pb::GetOrganizationRequest>,
    ) -> Result<Response<pb::GetOrganizationResponse>, Status> {
        let scope = Scope::of(&request);
        let id = id_or_invalid(
            "organization_id",
            OrganizationId::parse(request.into_inner().organization_id),
        )?;
        scope.check(id, "organization", id)?;
        let organization = directory::get_organization(self.db.conn(), id).await?;
        Ok(Response::new(pb::GetOrganizationResponse {
            organization: Some(organization.into()),
        }))
    }

    async fn list_organizations(
        &self,
        request: Request<pb::ListOrganizationsRequest>,
    ) -> Result<Response<pb::ListOrganizationsResponse>, Status> {
        if let Some(own) = Scope::of(&request).organization() {
            let organization = directory::get_organization(self.db.conn(), own).await?;
            return Ok(Response::new(pb::ListOrganizationsResponse {
                organizations: vec![organization.into()],
                next_page_token: String::new(),
            }));
        }
        let r = request.into_inner();
        let mut v = Violations::new();
        let page = page(&mut v, r.page_size, &r.page_token, "", SMALL_ITEMS_PAGE);
        let page = v
            .finish_with(|| page)
            .map_err(AssignmentError::InvalidArgument)?;
        let result = directory::list_organizations(&self.db, &page).await?;
        Ok(Response::new(pb::ListOrganizationsResponse {
            organizations: result.items.into_iter().map(Into::into).collect(),
            next_page_token: result.next_page_token,
        }))
    }

    async fn create_project(
        &self,
        request: Request<pb::CreateProjectRequest>,
    ) -> Result<Response<pb::CreateProjectResponse>, Status> {
        let scope = Scope::of(&request);
        let m = Mutation::<NewProject>::try_from(request.into_inner())?
            .scoped(scope)
            .traced();
        let org = m.command.organization_id;
        scope.check(org, "organization", org)?;
        let project = retrying(|| {
            directory::create_project(&self.db, m.command.clone(), m.request_id.as_ref())
        })
        .await?;
        Ok(Response::new(pb::CreateProjectResponse {
            project: Some(project.into()),
        }))
    }

    async fn get_project(
        &self,
        request: Request<pb::GetProjectRequest>,
    ) -> Result<Response<pb::GetProjectResponse>, Status> {
        let scope = Scope::of(&request);
        let id = id_or_invalid(
            "project_id",
            ProjectId::parse(request.into_inner().project_id),
        )?;
        let project = directory::get_project(self.db.conn(), id).await?;
        scope.check(project.organization_id, "project", id)?;
        Ok(Response::new(pb::GetProjectResponse {
            project: Some(project.into()),
        }))
    }

    async fn list_projects(
        &self,
        request: Request<pb::ListProjectsRequest>,
    ) -> Result<Response<pb::ListProjectsResponse>, Status> {
        let scope = Scope::of(&request);
        let r = request.into_inner();
        let mut v = Violations::new();
        let organization_id = v.check("organization_id", OrganizationId::parse(r.organization_id));
        let page = page(
            &mut v,
            r.page_size,
            &r.page_token,
            &format!("organization={}", r.organization_id),
            SMALL_ITEMS_PAGE,
        );
        let (organization_id, page) = v
            .finish_with(|| Some((organization_id?, page?)))
            .map_err(AssignmentError::InvalidArgument)?;
        scope.check(organization_id, "organization", organization_id)?;
        let result = directory::list_projects(&self.db, organization_id, &page).await?;
        Ok(Response::new(pb::ListProjectsResponse {
            projects: result.items.into_iter().map(Into::into).collect(),
            next_page_token: result.next_page_token,
        }))
    }

    async fn create_user(
        &self,
        request: Request<pb::CreateUserRequest>,
    ) -> Result<Response<pb::CreateUserResponse>, Status> {
        let scope = Scope::of(&request);
        let mut m = Mutation::<NewUser>::try_from(request.into_inner())?
            .scoped(scope)
            .traced();
        m.command.owner = scope.organization();
        let user =
            retrying(|| directory::create_user(&self.db, m.command.clone(), m.request_id.as_ref()))
                .await?;
        Ok(Response::new(pb::CreateUserResponse {
            user: Some(user.into()),
        }))
    }

    async fn get_user(
        &self,
        request: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::GetUserResponse>, Status> {
        let scope = Scope::of(&request);
        let id = id_or_invalid("user_id", UserId::parse(request.into_inner().user_id))?;
        let user = self.visible_user(scope, id).await?;
        Ok(Response::new(pb::GetUserResponse {
            user: Some(user.into()),
        }))
    }

    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        let scope = Scope::of(&request);
        let r = request.into_inner();
        let mut v = Violations::new();
        let organization_id = optional_id(
            &mut v,
            "organization_id",
            r.organization_id,
            OrganizationId::parse,
        );
        let page = page(
            &mut v,
            r.page_size,
            &r.page_token,
            &format!("organization={}", r.organization_id),
            USERS_PAGE,
        );
        let (organization_id, page) = v
            .finish_with(|| Some((organization_id?, page?)))
            .map_err(AssignmentError::InvalidArgument)?;
        if let Some(requested) = organization_id {
            scope.check(requested, "organization", requested)?;
        }
        let result =
            directory::list_users(&self.db, organization_id, scope.organization(), &page).await?;
        Ok(Response::new(pb::ListUsersResponse {
            users: result.items.into_iter().map(Into::into).collect(),
            next_page_token: result.next_page_token,
        }))
    }

    async fn update_user(
        &self,
        request: Request<pb::UpdateUserRequest>,
    ) -> Result<Response<pb::UpdateUserResponse>, Status> {
        let scope = Scope::of(&request);
        let m = Mutation::<UserChanges>::try_from(request.into_inner())?
            .scoped(scope)
            .traced();
        if let Some(org) = scope.organization() {
            // Only the organization that created a user may change it (others
            // share the person, not their record).
            let user = self.visible_user(scope, m.command.user_id).await?;
            if user.owner_organization_id != Some(org) {
                return Err(AssignmentError::refused(
                    Reason::RoleForbidden,
                    format!(
                        "user {} was not created by organization {org}; only an operator or its creator may change it",
                        user.id
                    ),
                )
                .into());
            }
        }
        let user =
            retrying(|| directory::update_user(&self.db, m.command.clone(), m.request_id.as_ref()))
                .await?;
        Ok(Response::new(pb::UpdateUserResponse {
            user: Some(user.into()),
        }))
    }

    async fn grant_project_access(
        &self,
        request: Request<pb::GrantProjectAccessRequest>,
    ) -> Result<Response<pb::GrantProjectAccessResponse>, Status> {
        let scope = Scope::of(&request);
        let r = request.into_inner();
        let m = access(r.project_id, r.user_id, &r.request_id)?
            .scoped(scope)
            .traced();
        self.check_access(scope, m.command).await?;
        let granted = retrying(|| {
            directory::grant_project_access(&self.db, m.command, m.request_id.as_ref())
        })
        .await?;
        Ok(Response::new(pb::GrantProjectAccessResponse { granted }))
    }

    async fn revoke_project_access(
        &self,
        request: Request<pb::RevokeProjectAccessRequest>,
    ) -> Result<Response<pb::RevokeProjectAccessResponse>, Status> {
        let scope = Scope::of(&request);
        let r = request.into_inner();
        let m = access(r.project_id, r.user_id, &r.request_id)?
            .scoped(scope)
            .traced();
        self.check_access(scope, m.command).await?;
        let revoked = retrying(|| {
            directory::revoke_project_access(&self.db, m.command, m.request_id.as_ref())
        })
        .await?;
        Ok(Response::new(pb::RevokeProjectAccessResponse { revoked }))
    }

    async fn list_project_members(
        &self,
        request: Request<pb::ListProjectMembersRequest>,
    ) -> Result<Response<pb::ListProjectMembersResponse>, Status> {
        let scope = Scope::of(&request);
        let r = request.into_inner();
        let mut v = Violations::new();
        let project_id = v.check("project_id", ProjectId::parse(r.project_id));
        let page = page(
            &mut v,
            r.page_size,
            &r.page_token,
            &format!("project={}", r.project_id),
            USERS_PAGE,
        );
        let (project_id, page) = v
            .finish_with(|| Some((project_id?, page?)))
            .map_err(AssignmentError::InvalidArgument)?;
        let project = directory::get_project(self.db.conn(), project_id).await?;
        scope.check(project.organization_id, "project", project_id)?;
        let result = directory::list_project_members(&self.db, project_id, &page).await?;
        Ok(Response::new(pb::ListProjectMembersResponse {
            users: result.items.into_iter().map(Into::into).collect(),
            next_page_token: result.next_page_token,
        }))
    }

    async fn install_integration(
        &self,
        request: Request<pb::InstallIntegrationRequest>,
    ) -> Result<Response<pb::InstallIntegrationResponse>, Status> {
        let scope = Scope::of(&request);
        let r = request.into_inner();
        let mut v = Violations::new();
        let at = installation_ref(&mut v, r.organization_id, &r.integration_id);
        let request_id = request_id(&mut v, &r.request_id);
        let secret = if r.install_secret.is_empty() {
            Some(None)
        } else {
            v.check("install_secret", text::token(&r.install_secret, 1, 256))
                .map(|s| Some(Secret::new(s)))
        };
        let (m, secret) = v
            .finish_with(|| {
                Some((
                    Mutation {
                        command: at?,
                        request_id: request_id?,
                    },
                    secret?,
                ))
            })
            .map_err(AssignmentError::InvalidArgument)?;
        let m = m.scoped(scope).traced();
        let org = m.command.organization_id;
        scope.check(org, "organization", org)?;
        let authorization = match scope.organization() {
            None => InstallAuthorization::Operator,
            Some(_) => InstallAuthorization::Secret(secret),
        };
        let settings = settings(r.sync_settings);
        let installation = retrying(|| {
            directory::install_integration(
                &self.db,
                m.command.clone(),
                settings,
                authorization.clone(),
                m.request_id.as_ref(),
            )
        })
        .await?;
        Ok(Response::new(pb::InstallIntegrationResponse {
            installation: Some(installation.into()),
        }))
    }

    async fn get_installation(
        &self,
        request: Request<pb::GetInstallationRequest>,
    ) -> Result<Response<pb::GetInstallationResponse>, Status> {
        let scope = Scope::of(&request);
        let r = request.into_inner();
        let mut v = Violations::new();
        let at = installation_ref(&mut v, r.organization_id, &r.integration_id);
        let at = v
            .finish_with(|| at)
            .map_err(AssignmentError::InvalidArgument)?;
        scope.check(at.organization_id, "organization", at.organization_id)?;
        let installation = directory::get_installation(&self.db, &at).await?;
        Ok(Response::new(pb::GetInstallationResponse {
            installation: Some(installation.into()),
        }))
    }

    async fn list_installations(
        &self,
        request: Request<pb::ListInstallationsRequest>,
    ) -> Result<Response<pb::ListInstallationsResponse>, Status> {
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
            &format!(
                "organization={};integration={}",
                r.organization_id, r.integration_id
            ),
            SMALL_ITEMS_PAGE,
        );
        let (filter, page) = v
            .finish_with(|| {
                Some((
                    InstallationFilter {
                        organization_id: organization_id?,
                        integration_id: integration_id?,
                    },
                    page?,
                ))
            })
            .map_err(AssignmentError::InvalidArgument)?;
        let filter = InstallationFilter {
            organization_id: scope.filter(filter.organization_id)?,
            ..filter
        };
        let result = directory::list_installations(&self.db, &filter, &page).await?;
        Ok(Response::new(pb::ListInstallationsResponse {
            installations: result.items.into_iter().map(Into::into).collect(),
            next_page_token: result.next_page_token,
        }))
    }

    async fn update_installation(
        &self,
        request: Request<pb::UpdateInstallationRequest>,
    ) -> Result<Response<pb::UpdateInstallationResponse>, Status> {
        let scope = Scope::of(&request);
        let r = request.into_inner();
        let mut v = Violations::new();
        let at = installation_ref(&mut v, r.organization_id, &r.integration_id);
        if r.sync_settings.is_none() {
            v.add(
                "sync_settings",
                "must be set (it replaces the current settings)",
            );
        }
        let request_id = request_id(&mut v, &r.request_id);
        let m = v
            .finish_with(|| {
                Some(Mutation {
                    command: at?,
                    request_id: request_id?,
                })
            })
            .map_err(AssignmentError::InvalidArgument)?
            .scoped(scope)
            .traced();
        let org = m.command.organization_id;
        scope.check(org, "organization", org)?;
        let settings = settings(r.sync_settings);
        let installation = retrying(|| {
            directory::update_installation(
                &self.db,
                m.command.clone(),
                settings,
                m.request_id.as_ref(),
            )
        })
        .await?;
        Ok(Response::new(pb::UpdateInstallationResponse {
            installation: Some(installation.into()),
        }))
    }

    async fn uninstall_integration(
        &self,
        request: Request<pb::UninstallIntegrationRequest>,
    ) -> Result<Response<pb::UninstallIntegrationResponse>, Status> {
        let scope = Scope::of(&request);
        let r = request.into_inner();
        let mut v = Violations::new();
        let at = installation_ref(&mut v, r.organization_id, &r.integration_id);
        let request_id = request_id(&mut v, &r.request_id);
        let m = v
            .finish_with(|| {
                Some(Mutation {
                    command: at?,
                    request_id: request_id?,
                })
            })
            .map_err(AssignmentError::InvalidArgument)?
            .scoped(scope)
            .traced();
        let org = m.command.organization_id;
        scope.check(org, "organization", org)?;
        retrying(|| {
            directory::uninstall_integration(&self.db, m.command.clone(), m.request_id.as_ref())
        })
        .await?;
        Ok(Response::new(pb::UninstallIntegrationResponse {}))
    }

    async fn set_install_secret(
        &self,
        request: Request<pb::SetInstallSecretRequest>,
    ) -> Result<Response<pb::SetInstallSecretResponse>, Status> {
        let r = request.into_inner();
        let mut v = Violations::new();
        let integration_id = v.check("integration_id", IntegrationId::parse(&r.integration_id));
        let secret = v.check(
            "install_secret",
            text::token(&r.install_secret, MIN_INSTALL_SECRET_BYTES, 256),
        );
        let request_id = request_id(&mut v, &r.request_id);
        let (integration_id, secret, request_id) = v
            .finish_with(|| Some((integration_id?, secret?, request_id?)))
            .map_err(AssignmentError::InvalidArgument)?;
        let secret = Secret::new(secret);
        retrying(|| {
            directory::set_install_secret(
                &self.db,
                integration_id.clone(),
                secret.clone(),
                request_id.as_ref(),
            )
        })
        .await?;
        Ok(Response::new(pb::SetInstallSecretResponse {}))
    }
}

/// The shortest install secret accepted.
const MIN_INSTALL_SECRET_BYTES: usize = 16;

impl DirectoryApi {
    /// A user the caller may see (an organization: one it created or that has
    /// access to one of its projects), else NOT_FOUND.
    async fn visible_user(&self, scope: Scope, id: UserId) -> Result<User, AssignmentError> {
        let user = directory::get_user(self.db.conn(), id).await?;
        if let Some(org) = scope.organization()
            && !directory::user_visible_to(self.db.conn(), &user, org).await?
        {
            return Err(AssignmentError::NotFound {
                resource: "user",
                id: id.to_string(),
            });
        }
        Ok(user)
    }

    /// An organization may grant and revoke access only to its own projects,
    /// and only for users it can see.
    async fn check_access(
        &self,
        scope: Scope,
        access: ProjectAccess,
    ) -> Result<(), AssignmentError> {
        if scope.organization().is_some() {
            let project = directory::get_project(self.db.conn(), access.project_id).await?;
            scope.check(project.organization_id, "project", access.project_id)?;
            self.visible_user(scope, access.user_id).await?;
        }
        Ok(())
    }
}
