//! The directory: organizations, projects, users with their e-mail addresses,
//! project access, and installations of integrations.
//!
//! This is set-up data: inbound sync reads it (who matches an e-mail, who may be
//! assigned in which project, which organizations enabled sync), operators write
//! it through `assignment.v1.DirectoryService`.

use sea_orm::sea_query::{Expr, ExprTrait as _, Query};
use sea_orm::{
    ActiveModelTrait as _, ActiveValue::Set, ColumnTrait as _, ConnectionTrait, EntityTrait as _,
    QueryFilter as _, QueryOrder as _, QuerySelect as _,
};
use serde::Serialize;
use service_runtime::database::{Database, is_unique_violation};
use service_runtime::ids::{IntegrationId, RequestId};
use service_runtime::pagination::PageRequest;
use service_runtime::secret::Secret;
use service_runtime::time::now;

use crate::domain::records::{
    Installation, Organization, Page, Project, SyncSettings, User, UserEmail,
};
use crate::domain::{Email, OrganizationId, ProjectId, Slug, UserId};
use crate::error::{AssignmentError, Reason};
use crate::storage::entities::{
    installation, integration_install_secret, organization, project, project_member, user,
    user_email,
};
use service_runtime::idempotency::{IdempotencyKey, idempotent_write};

/// A new organization.
#[derive(Debug, Clone, Serialize)]
pub struct NewOrganization {
    /// Unique short name.
    pub slug: Slug,
    /// Display name (the slug when not given).
    pub name: String,
}

/// A new project.
#[derive(Debug, Clone, Serialize)]
pub struct NewProject {
    /// The owning organization.
    pub organization_id: OrganizationId,
    /// Short name, unique in the organization.
    pub slug: Slug,
    /// Display name.
    pub name: String,
}

/// A new user.
#[derive(Debug, Clone, Serialize)]
pub struct NewUser {
    /// Display name.
    pub display_name: String,
    /// Addresses (no two equal ignoring case).
    pub emails: Vec<UserEmail>,
    /// Whether the user is active.
    pub active: bool,
    /// The organization creating the user through its own token, which then
    /// owns it (only it, or an operator, may change it).
    pub owner: Option<OrganizationId>,
}

/// Who asks to install an integration, and with what.
#[derive(Debug, Clone, Serialize)]
pub enum InstallAuthorization {
    /// An operator: no secret needed.
    Operator,
    /// The organization itself: it must present the integration's install
    /// secret.
    Secret(Option<Secret<String>>),
}

/// Changes to a user; `None` keeps the current value.
#[derive(Debug, Clone, Serialize)]
pub struct UserChanges {
    /// The user to change.
    pub user_id: UserId,
    /// New display name.
    pub display_name: Option<String>,
    /// New active flag.
    pub active: Option<bool>,
    /// New addresses, replacing all.
    pub emails: Option<Vec<UserEmail>>,
}

/// A user's access to a project.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ProjectAccess {
    /// The project.
    pub project_id: ProjectId,
    /// The user.
    pub user_id: UserId,
}

/// Identifies an installation.
#[derive(Debug, Clone, Serialize)]
pub struct InstallationRef {
    /// The organization.
    pub organization_id: OrganizationId,
    /// The integration.
    pub integration_id: IntegrationId,
}

/// Filters of [`list_installations`].
#[derive(Debug, Clone, Default)]
pub struct InstallationFilter {
    /// Only this organization's.
    pub organization_id: Option<OrganizationId>,
    /// Only this integration's.
    pub integration_id: Option<IntegrationId>,
}

fn corrupt(what: &str, detail: impl std::fmt::Display) -> AssignmentError {
    AssignmentError::Corrupt(format!("{what}: {detail}"))
}

fn organization_from_row(row: organization::Model) -> Result<Organization, AssignmentError> {
    Ok(Organization {
        id: OrganizationId::from_row(row.id),
        slug: Slug::parse(&row.slug).map_err(|e| corrupt("organization slug", e))?,
        name: row.name,
        created_at: row.created_at,
    })
}

fn project_from_row(row: project::Model) -> Result<Project, AssignmentError> {
    Ok(Project {
        id: ProjectId::from_row(row.id),
        organization_id: OrganizationId::from_row(row.organization_id),
        slug: Slug::parse(&row.slug).map_err(|e| corrupt("project slug", e))?,
        name: row.name,
        created_at: row.created_at,
    })
}

fn installation_from_row(row: installation::Model) -> Result<Installation, AssignmentError> {
    Ok(Installation {
        organization_id: OrganizationId::from_row(row.organization_id),
        integration_id: IntegrationId::parse(&row.integration_id)
            .map_err(|e| corrupt("installation integration id", e))?,
        settings: SyncSettings {
            sync_reverse_assignment: row.sync_reverse_assignment,
            sync_status_reverse: row.sync_status_reverse,
            sync_forward_assignment: row.sync_forward_assignment,
            sync_status_forward: row.sync_status_forward,
        },
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

/// Reads users with their addresses, keeping the order of `rows`.
async fn users_with_emails<C: ConnectionTrait>(
    conn: &C,
    rows: Vec<user::Model>,
) -> Result<Vec<User>, AssignmentError> {
    let ids: Vec<i64> = rows.iter().map(|u| u.id).collect();
    let emails = user_email::Entity::find()
        .filter(user_email::Column::UserId.is_in(ids))
        .order_by_asc(user_email::Column::Id)
        .all(conn)
        .await?;
    rows.into_iter()
        .map(|row| {
            let emails = emails
                .iter()
                .filter(|e| e.user_id == row.id)
                .map(|e| {
                    Ok(UserEmail {
                        email: Email::parse(&e.email).map_err(|err| corrupt("user email", err))?,
                        verified: e.verified,
                    })
                })
                .collect::<Result<Vec<_>, AssignmentError>>()?;
            Ok(User {
                id: UserId::from_row(row.id),
                display_name: row.display_name,
                emails,
                active: row.active,
                created_at: row.created_at,
                owner_organization_id: row.owner_organization_id.map(OrganizationId::from_row),
            })
        })
        .collect()
}

/// Checks that no address is listed twice (ignoring case).
///
/// # Errors
/// A field violation naming the duplicate.
pub fn check_distinct_emails(emails: &[UserEmail], field: &str) -> Result<(), AssignmentError> {
    for (i, e) in emails.iter().enumerate() {
        if emails[..i].iter().any(|earlier| earlier.email == e.email) {
            return Err(AssignmentError::invalid_field(
                format!("{field}[{i}].email"),
                format!("{} is listed twice", e.email),
            ));
        }
    }
    Ok(())
}

async fn insert_emails<C: ConnectionTrait>(
    conn: &C,
    user_id: i64,
    emails: &[UserEmail],
) -> Result<(), AssignmentError> {
    if emails.is_empty() {
        return Ok(());
    }
    user_email::Entity::insert_many(emails.iter().map(|e| user_email::ActiveModel {
        user_id: Set(user_id),
        email: Set(e.email.as_str().to_owned()),
        email_normalized: Set(e.email.normalized().to_owned()),
        verified: Set(e.verified),
        ..Default::default()
    }))
    .exec(conn)
    .await?;
    Ok(())
}

/// Reads an organization, or NOT_FOUND.
///
/// # Errors
/// NOT_FOUND, or a database error.
pub async fn get_organization<C: ConnectionTrait>(
    conn: &C,
    id: OrganizationId,
) -> Result<Organization, AssignmentError> {
    let row = organization::Entity::find_by_id(id.get())
        .one(conn)
        .await?
        .ok_or_else(|| AssignmentError::NotFound {
            resource: "organization",
            id: id.to_string(),
        })?;
    organization_from_row(row)
}

/// Reads a project, or NOT_FOUND.
///
/// # Errors
/// NOT_FOUND, or a database error.
pub async fn get_project<C: ConnectionTrait>(
    conn: &C,
    id: ProjectId,
) -> Result<Project, AssignmentError> {
    let row = project::Entity::find_by_id(id.get())
        .one(conn)
        .await?
        .ok_or_else(|| AssignmentError::NotFound {
            resource: "project",
            id: id.to_string(),
        })?;
    project_from_row(row)
}

/// Reads a user with their addresses, or NOT_FOUND.
///
/// # Errors
/// NOT_FOUND, or a database error.
pub async fn get_user<C: ConnectionTrait>(conn: &C, id: UserId) -> Result<User, AssignmentError> {
    let row = user::Entity::find_by_id(id.get())
        .one(conn)
        .await?
        .ok_or_else(|| AssignmentError::NotFound {
            resource: "user",
            id: id.to_string(),
        })?;
    users_with_emails(conn, vec![row])
        .await?
        .pop()
        .ok_or_else(|| corrupt("user", "vanished while reading"))
}

/// Creates an organization.
///
/// # Errors
/// ALREADY_EXISTS when the slug is taken; database errors.
pub async fn create_organization(
    db: &Database,
    new: NewOrganization,
    request_id: Option<&RequestId>,
) -> Result<Organization, AssignmentError> {
    let key = IdempotencyKey::new("CreateOrganization", request_id, &new);
    idempotent_write(db, key, move |txn| {
        Box::pin(async move {
            let row = organization::ActiveModel {
                slug: Set(new.slug.as_str().to_owned()),
                name: Set(new.name),
                created_at: Set(now()),
                ..Default::default()
            }
            .insert(txn)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    AssignmentError::AlreadyExists {
                        resource: "organization",
                        id: new.slug.to_string(),
                    }
                } else {
                    e.into()
                }
            })?;
            organization_from_row(row)
        })
    })
    .await
}

/// Lists organizations by id.
///
/// # Errors
/// Database errors.
pub async fn list_organizations(
    db: &Database,
    page: &PageRequest<i64>,
) -> Result<Page<Organization>, AssignmentError> {
    let mut rows = organization::Entity::find()
        .filter(organization::Column::Id.gt(page.after.unwrap_or(0)))
        .order_by_asc(organization::Column::Id)
        .limit(page.fetch_limit())
        .all(db.conn())
        .await?;
    let next_page_token = page.finish(&mut rows, |r| r.id);
    Ok(Page {
        items: rows
            .into_iter()
            .map(organization_from_row)
            .collect::<Result<_, _>>()?,
        next_page_token,
    })
}

/// Creates a project.
///
/// # Errors
/// NOT_FOUND for an unknown organization, ALREADY_EXISTS for a taken slug.
pub async fn create_project(
    db: &Database,
    new: NewProject,
    request_id: Option<&RequestId>,
) -> Result<Project, AssignmentError> {
    let key = IdempotencyKey::new("CreateProject", request_id, &new);
    idempotent_write(db, key, move |txn| {
        Box::pin(async move {
            get_organization(txn, new.organization_id).await?;
            let row = project::ActiveModel {
                organization_id: Set(new.organization_id.get()),
                slug: Set(new.slug.as_str().to_owned()),
                name: Set(new.name),
                created_at: Set(now()),
                ..Default::default()
            }
            .insert(txn)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    AssignmentError::AlreadyExists {
                        resource: "project",
                        id: format!("{} in organization {}", new.slug, new.organization_id),
                    }
                } else {
                    e.into()
                }
            })?;
            project_from_row(row)
        })
    })
    .await
}

/// Lists an organization's projects by id.
///
/// # Errors
/// NOT_FOUND for an unknown organization; database errors.
pub async fn list_projects(
    db: &Database,
    organization_id: OrganizationId,
    page: &PageRequest<i64>,
) -> Result<Page<Project>, AssignmentError> {
    get_organization(db.conn(), organization_id).await?;
    let mut rows = project::Entity::find()
        .filter(project::Column::OrganizationId.eq(organization_id.get()))
        .filter(project::Column::Id.gt(page.after.unwrap_or(0)))
        .order_by_asc(project::Column::Id)
        .limit(page.fetch_limit())
        .all(db.conn())
        .await?;
    let next_page_token = page.finish(&mut rows, |r| r.id);
    Ok(Page {
        items: rows
            .into_iter()
            .map(project_from_row)
            .collect::<Result<_, _>>()?,
        next_page_token,
    })
}

/// Creates a user with their addresses.
///
/// # Errors
/// INVALID_ARGUMENT for an address listed twice; database errors.
pub async fn create_user(
    db: &Database,
    new: NewUser,
    request_id: Option<&RequestId>,
) -> Result<User, AssignmentError> {
    check_distinct_emails(&new.emails, "emails")?;
    let key = IdempotencyKey::new("CreateUser", request_id, &new);
    idempotent_write(db, key, move |txn| {
        Box::pin(async move {
            let row = user::ActiveModel {
                display_name: Set(new.display_name),
                active: Set(new.active),
                created_at: Set(now()),
                owner_organization_id: Set(new.owner.map(OrganizationId::get)),
                ..Default::default()
            }
            .insert(txn)
            .await?;
            insert_emails(txn, row.id, &new.emails).await?;
            get_user(txn, UserId::from_row(row.id)).await
        })
    })
    .await
}

/// Changes a user.
///
/// # Errors
/// NOT_FOUND for an unknown user, INVALID_ARGUMENT for duplicate addresses.
pub async fn update_user(
    db: &Database,
    changes: UserChanges,
    request_id: Option<&RequestId>,
) -> Result<User, AssignmentError> {
    if let Some(emails) = &changes.emails {
        check_distinct_emails(emails, "emails.emails")?;
    }
    let key = IdempotencyKey::new("UpdateUser", request_id, &changes);
    idempotent_write(db, key, move |txn| {
        Box::pin(async move {
            let row = user::Entity::find_by_id(changes.user_id.get())
                .one(txn)
                .await?
                .ok_or_else(|| AssignmentError::NotFound {
                    resource: "user",
                    id: changes.user_id.to_string(),
                })?;
            let mut active: user::ActiveModel = row.into();
            if let Some(name) = changes.display_name {
                active.display_name = Set(name);
            }
            if let Some(flag) = changes.active {
                active.active = Set(flag);
            }
            active.update(txn).await?;
            if let Some(emails) = changes.emails {
                user_email::Entity::delete_many()
                    .filter(user_email::Column::UserId.eq(changes.user_id.get()))
                    .exec(txn)
                    .await?;
                insert_emails(txn, changes.user_id.get(), &emails).await?;
            }
            get_user(txn, changes.user_id).await
        })
    })
    .await
}

/// Lists users by id, optionally only those with access to a project of
/// `organization_id`.
///
/// # Errors
/// Database errors.
pub async fn list_users(
    db: &Database,
    organization_id: Option<OrganizationId>,
    visible_to: Option<OrganizationId>,
    page: &PageRequest<i64>,
) -> Result<Page<User>, AssignmentError> {
    let mut query = user::Entity::find()
        .filter(user::Column::Id.gt(page.after.unwrap_or(0)))
        .order_by_asc(user::Column::Id)
        .limit(page.fetch_limit());
    if let Some(org) = organization_id {
        query = query.filter(user::Column::Id.in_subquery(members_of(org)));
    }
    if let Some(org) = visible_to {
        query = query.filter(
            sea_orm::Condition::any()
                .add(user::Column::OwnerOrganizationId.eq(org.get()))
                .add(user::Column::Id.in_subquery(members_of(org))),
        );
    }
    let mut rows = query.all(db.conn()).await?;
    let next_page_token = page.finish(&mut rows, |r| r.id);
    Ok(Page {
        items: users_with_emails(db.conn(), rows).await?,
        next_page_token,
    })
}

/// The ids of users with access to a project of `org`.
fn members_of(org: OrganizationId) -> sea_orm::sea_query::SelectStatement {
    Query::select()
        .column((project_member::Entity, project_member::Column::UserId))
        .from(project_member::Entity)
        .inner_join(
            project::Entity,
            Expr::col((project::Entity, project::Column::Id))
                .equals((project_member::Entity, project_member::Column::ProjectId)),
        )
        .and_where(Expr::col((project::Entity, project::Column::OrganizationId)).eq(org.get()))
        .to_owned()
}

/// Whether `org` may see a user: it owns the user, or the user has access to
/// one of its projects.
///
/// # Errors
/// Database errors.
pub async fn user_visible_to<C: ConnectionTrait>(
    conn: &C,
    user: &User,
    org: OrganizationId,
) -> Result<bool, AssignmentError> {
    if user.owner_organization_id == Some(org) {
        return Ok(true);
    }
    Ok(user::Entity::find()
        .filter(user::Column::Id.eq(user.id.get()))
        .filter(user::Column::Id.in_subquery(members_of(org)))
        .one(conn)
        .await?
        .is_some())
}

/// Sets an integration's install secret (stored as its SHA-256).
///
/// # Errors
/// Database errors.
pub async fn set_install_secret(
    db: &Database,
    integration_id: IntegrationId,
    secret: Secret<String>,
    request_id: Option<&RequestId>,
) -> Result<(), AssignmentError> {
    let key = IdempotencyKey::new("SetInstallSecret", request_id, &(&integration_id, &secret));
    idempotent_write(db, key, move |txn| {
        Box::pin(async move {
            integration_install_secret::Entity::insert(integration_install_secret::ActiveModel {
                integration_id: Set(integration_id.as_str().to_owned()),
                secret_sha256: Set(digest(&secret)),
                updated_at: Set(now()),
            })
            .on_conflict(
                sea_orm::sea_query::OnConflict::column(
                    integration_install_secret::Column::IntegrationId,
                )
                .update_columns([
                    integration_install_secret::Column::SecretSha256,
                    integration_install_secret::Column::UpdatedAt,
                ])
                .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
            Ok(())
        })
    })
    .await
}

fn digest(secret: &Secret<String>) -> String {
    use sha2::{Digest as _, Sha256};
    hex::encode(Sha256::digest(secret.expose().as_bytes()))
}

/// Refuses an organization's install unless it presents the integration's
/// install secret.
async fn check_install_secret<C: ConnectionTrait>(
    conn: &C,
    integration_id: &IntegrationId,
    authorization: &InstallAuthorization,
) -> Result<(), AssignmentError> {
    let InstallAuthorization::Secret(presented) = authorization else {
        return Ok(());
    };
    let stored = integration_install_secret::Entity::find_by_id(integration_id.as_str())
        .one(conn)
        .await?;
    let matches = match (stored, presented) {
        (Some(stored), Some(presented)) => service_runtime::secret::constant_time_eq(
            stored.secret_sha256.as_bytes(),
            digest(presented).as_bytes(),
        ),
        _ => false,
    };
    if matches {
        Ok(())
    } else {
        Err(AssignmentError::refused(
            Reason::InstallNotAuthorized,
            format!(
                "installing integration {integration_id} needs its install secret (install_secret); ask an operator for it"
            ),
        ))
    }
}

/// Gives a user access to a project; `false` when they had it already.
///
/// # Errors
/// NOT_FOUND for an unknown project or user.
pub async fn grant_project_access(
    db: &Database,
    access: ProjectAccess,
    request_id: Option<&RequestId>,
) -> Result<bool, AssignmentError> {
    let key = IdempotencyKey::new("GrantProjectAccess", request_id, &access);
    idempotent_write(db, key, move |txn| {
        Box::pin(async move {
            get_project(txn, access.project_id).await?;
            get_user(txn, access.user_id).await?;
            let existing =
                project_member::Entity::find_by_id((access.project_id.get(), access.user_id.get()))
                    .one(txn)
                    .await?;
            if existing.is_some() {
                return Ok(false);
            }
            project_member::ActiveModel {
                project_id: Set(access.project_id.get()),
                user_id: Set(access.user_id.get()),
                created_at: Set(now()),
            }
            .insert(txn)
            .await?;
            Ok(true)
        })
    })
    .await
}

/// Takes a user's access to a project away; `false` when they had none.
///
/// # Errors
/// NOT_FOUND for an unknown project or user.
pub async fn revoke_project_access(
    db: &Database,
    access: ProjectAccess,
    request_id: Option<&RequestId>,
) -> Result<bool, AssignmentError> {
    let key = IdempotencyKey::new("RevokeProjectAccess", request_id, &access);
    idempotent_write(db, key, move |txn| {
        Box::pin(async move {
            get_project(txn, access.project_id).await?;
            get_user(txn, access.user_id).await?;
            let deleted = project_member::Entity::delete_by_id((
                access.project_id.get(),
                access.user_id.get(),
            ))
            .exec(txn)
            .await?;
            Ok(deleted.rows_affected > 0)
        })
    })
    .await
}

/// Lists the users with access to a project, by id.
///
/// # Errors
/// NOT_FOUND for an unknown project.
pub async fn list_project_members(
    db: &Database,
    project_id: ProjectId,
    page: &PageRequest<i64>,
) -> Result<Page<User>, AssignmentError> {
    get_project(db.conn(), project_id).await?;
    let members = Query::select()
        .column(project_member::Column::UserId)
        .from(project_member::Entity)
        .and_where(project_member::Column::ProjectId.eq(project_id.get()))
        .to_owned();
    let mut rows = user::Entity::find()
        .filter(user::Column::Id.in_subquery(members))
        .filter(user::Column::Id.gt(page.after.unwrap_or(0)))
        .order_by_asc(user::Column::Id)
        .limit(page.fetch_limit())
        .all(db.conn())
        .await?;
    let next_page_token = page.finish(&mut rows, |r| r.id);
    Ok(Page {
        items: users_with_emails(db.conn(), rows).await?,
        next_page_token,
    })
}

async fn find_installation<C: ConnectionTrait>(
    conn: &C,
    at: &InstallationRef,
) -> Result<installation::Model, AssignmentError> {
    installation::Entity::find()
        .filter(installation::Column::OrganizationId.eq(at.organization_id.get()))
        .filter(installation::Column::IntegrationId.eq(at.integration_id.as_str()))
        .one(conn)
        .await?
        .ok_or_else(|| AssignmentError::NotFound {
            resource: "installation",
            id: format!(
                "of integration {} in organization {}",
                at.integration_id, at.organization_id
            ),
        })
}

/// Installs an integration in an organization.
///
/// # Errors
/// NOT_FOUND for an unknown organization, ALREADY_EXISTS when installed.
pub async fn install_integration(
    db: &Database,
    at: InstallationRef,
    settings: SyncSettings,
    authorization: InstallAuthorization,
    request_id: Option<&RequestId>,
) -> Result<Installation, AssignmentError> {
    let key = IdempotencyKey::new(
        "InstallIntegration",
        request_id,
        &(&at, &settings, &authorization),
    );
    idempotent_write(db, key, move |txn| {
        Box::pin(async move {
            get_organization(txn, at.organization_id).await?;
            check_install_secret(txn, &at.integration_id, &authorization).await?;
            let time = now();
            let row = installation::ActiveModel {
                organization_id: Set(at.organization_id.get()),
                integration_id: Set(at.integration_id.as_str().to_owned()),
                sync_reverse_assignment: Set(settings.sync_reverse_assignment),
                sync_status_reverse: Set(settings.sync_status_reverse),
                sync_forward_assignment: Set(settings.sync_forward_assignment),
                sync_status_forward: Set(settings.sync_status_forward),
                created_at: Set(time),
                updated_at: Set(time),
                ..Default::default()
            }
            .insert(txn)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    AssignmentError::AlreadyExists {
                        resource: "installation",
                        id: format!(
                            "of integration {} in organization {}",
                            at.integration_id, at.organization_id
                        ),
                    }
                } else {
                    e.into()
                }
            })?;
            installation_from_row(row)
        })
    })
    .await
}

/// Reads an installation.
///
/// # Errors
/// NOT_FOUND when the organization did not install the integration.
pub async fn get_installation(
    db: &Database,
    at: &InstallationRef,
) -> Result<Installation, AssignmentError> {
    installation_from_row(find_installation(db.conn(), at).await?)
}

/// Lists installations by (organization, integration).
///
/// # Errors
/// Database errors.
pub async fn list_installations(
    db: &Database,
    filter: &InstallationFilter,
    page: &PageRequest<i64>,
) -> Result<Page<Installation>, AssignmentError> {
    let mut query = installation::Entity::find()
        .filter(installation::Column::Id.gt(page.after.unwrap_or(0)))
        .order_by_asc(installation::Column::Id)
        .limit(page.fetch_limit());
    if let Some(org) = filter.organization_id {
        query = query.filter(installation::Column::OrganizationId.eq(org.get()));
    }
    if let Some(integration) = &filter.integration_id {
        query = query.filter(installation::Column::IntegrationId.eq(integration.as_str()));
    }
    let mut rows = query.all(db.conn()).await?;
    let next_page_token = page.finish(&mut rows, |r| r.id);
    Ok(Page {
        items: rows
            .into_iter()
            .map(installation_from_row)
            .collect::<Result<_, _>>()?,
        next_page_token,
    })
}

/// Replaces an installation's sync settings.
///
/// # Errors
/// NOT_FOUND when not installed.
pub async fn update_installation(
    db: &Database,
    at: InstallationRef,
    settings: SyncSettings,
    request_id: Option<&RequestId>,
) -> Result<Installation, AssignmentError> {
    let key = IdempotencyKey::new("UpdateInstallation", request_id, &(&at, &settings));
    idempotent_write(db, key, move |txn| {
        Box::pin(async move {
            let row = find_installation(txn, &at).await?;
            let mut active: installation::ActiveModel = row.into();
            active.sync_reverse_assignment = Set(settings.sync_reverse_assignment);
            active.sync_status_reverse = Set(settings.sync_status_reverse);
            active.sync_forward_assignment = Set(settings.sync_forward_assignment);
            active.sync_status_forward = Set(settings.sync_status_forward);
            active.updated_at = Set(now());
            installation_from_row(active.update(txn).await?)
        })
    })
    .await
}

/// Removes an installation.
///
/// # Errors
/// NOT_FOUND when not installed.
pub async fn uninstall_integration(
    db: &Database,
    at: InstallationRef,
    request_id: Option<&RequestId>,
) -> Result<(), AssignmentError> {
    let key = IdempotencyKey::new("UninstallIntegration", request_id, &at);
    idempotent_write(db, key, move |txn| {
        Box::pin(async move {
            let row = find_installation(txn, &at).await?;
            installation::Entity::delete_by_id(row.id).exec(txn).await?;
            Ok(())
        })
    })
    .await
}
