//! Jira integrations: registering, changing, reading them. Secrets go in and never
//! come out: reads return [`IntegrationSummary`], and the stored response of an
//! idempotent create is the summary too.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::{
    ActiveModelTrait as _, ActiveValue::Set, ColumnTrait as _, ConnectionTrait, EntityTrait as _,
    QueryFilter as _, QueryOrder as _, QuerySelect as _,
};
use serde::Serialize;
use service_runtime::database::Database;
use service_runtime::idempotency::{IdempotencyKey, idempotent_write};
use service_runtime::ids::{IntegrationId, RequestId};
use service_runtime::pagination::PageRequest;
use service_runtime::secret::Secret;
use service_runtime::time::now;

use crate::cache::TtlCache;
use crate::domain::{
    AuthMode, BaseUrl, Credentials, GroupLinkTemplate, Integration, IntegrationSummary,
};
use crate::error::TrackerError;
use crate::storage::entities::integration;

/// A new integration.
#[derive(Debug, Clone, Serialize)]
pub struct NewIntegration {
    /// Its id.
    pub id: IntegrationId,
    /// Display name.
    pub display_name: String,
    /// The site.
    pub base_url: BaseUrl,
    /// The credential.
    #[serde(serialize_with = "credentials_fingerprint")]
    pub credentials: Credentials,
    /// HMAC secret for webhook signatures.
    pub webhook_secret: Option<Secret<String>>,
    /// Whether the e-mail API may be used.
    pub email_api_allowed: bool,
    /// The link back to each group, when configured.
    pub group_link_template: Option<GroupLinkTemplate>,
}

/// Changes to an integration; `None` keeps the current value.
#[derive(Debug, Clone, Serialize)]
pub struct IntegrationChanges {
    /// The integration.
    pub id: IntegrationId,
    /// New display name.
    pub display_name: Option<String>,
    /// New site.
    pub base_url: Option<BaseUrl>,
    /// New credential.
    #[serde(serialize_with = "optional_credentials_fingerprint")]
    pub credentials: Option<Credentials>,
    /// New webhook secret; `Some(None)` removes it.
    pub webhook_secret: Option<Option<Secret<String>>>,
    /// New e-mail API permission.
    pub email_api_allowed: Option<bool>,
    /// New link template; `Some(None)` removes it.
    pub group_link_template: Option<Option<GroupLinkTemplate>>,
}

/// Serialises credentials for request fingerprints: secrets as digests.
fn credentials_fingerprint<S: serde::Serializer>(c: &Credentials, s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    enum Print<'a> {
        ApiToken(&'a str, &'a Secret<String>),
        PersonalAccessToken(&'a Secret<String>),
        Connect(&'a str, &'a Secret<String>),
    }
    match c {
        Credentials::ApiToken {
            account_email,
            api_token,
        } => Print::ApiToken(account_email, api_token),
        Credentials::PersonalAccessToken { token } => Print::PersonalAccessToken(token),
        Credentials::Connect {
            client_key,
            shared_secret,
        } => Print::Connect(client_key, shared_secret),
    }
    .serialize(s)
}

fn optional_credentials_fingerprint<S: serde::Serializer>(
    c: &Option<Credentials>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match c {
        Some(c) => credentials_fingerprint(c, s),
        None => s.serialize_none(),
    }
}

fn corrupt(what: &str) -> TrackerError {
    TrackerError::Corrupt(what.to_owned())
}

/// Reads a stored row into the full integration (with secrets).
fn from_row(row: integration::Model) -> Result<Integration, TrackerError> {
    let mode = AuthMode::from_stored(&row.auth_mode).ok_or_else(|| corrupt("auth mode"))?;
    let credential = Secret::new(row.credential);
    let credentials = match mode {
        AuthMode::ApiToken => Credentials::ApiToken {
            account_email: row.account_email,
            api_token: credential,
        },
        AuthMode::PersonalAccessToken => Credentials::PersonalAccessToken { token: credential },
        AuthMode::Connect => Credentials::Connect {
            client_key: row.connect_client_key.unwrap_or_default(),
            shared_secret: credential,
        },
    };
    Ok(Integration {
        id: IntegrationId::parse(&row.id).map_err(|_| corrupt("integration id"))?,
        display_name: row.display_name,
        base_url: BaseUrl::parse(&row.base_url).map_err(|_| corrupt("base url"))?,
        credentials,
        webhook_secret: row.webhook_secret.map(Secret::new),
        email_api_allowed: row.email_api_allowed,
        group_link_template: row
            .group_link_template
            .map(|t| GroupLinkTemplate::parse(&t).map_err(|_| corrupt("group link template")))
            .transpose()?,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

fn write_credentials(row: &mut integration::ActiveModel, credentials: &Credentials) {
    row.auth_mode = Set(credentials.mode().as_str().to_owned());
    match credentials {
        Credentials::ApiToken {
            account_email,
            api_token,
        } => {
            row.account_email = Set(account_email.clone());
            row.credential = Set(api_token.expose().clone());
            row.connect_client_key = Set(None);
        }
        Credentials::PersonalAccessToken { token } => {
            row.account_email = Set(String::new());
            row.credential = Set(token.expose().clone());
            row.connect_client_key = Set(None);
        }
        Credentials::Connect {
            client_key,
            shared_secret,
        } => {
            row.account_email = Set(String::new());
            row.credential = Set(shared_secret.expose().clone());
            row.connect_client_key = Set(Some(client_key.clone()));
        }
    }
}

/// Webhooks must be authenticated: by HMAC (webhook secret) or, for Connect, by
/// the JWT Jira signs with the shared secret.
fn check_authenticity(
    credentials: &Credentials,
    webhook_secret: Option<&Secret<String>>,
) -> Result<(), TrackerError> {
    if webhook_secret.is_none() && credentials.mode() != AuthMode::Connect {
        return Err(TrackerError::invalid_field(
            "webhook_secret",
            "must be set: webhooks of non-Connect integrations are verified by X-Hub-Signature",
        ));
    }
    Ok(())
}

fn taken_client_key(err: &sea_orm::DbErr, id: &IntegrationId) -> Option<TrackerError> {
    service_runtime::database::is_unique_violation(err).then(|| TrackerError::AlreadyExists {
        resource: "integration",
        id: format!("{id} (or its Connect client key)"),
    })
}

/// Loads an integration with its secrets.
///
/// # Errors
/// NOT_FOUND, or a database error.
pub async fn load<C: ConnectionTrait>(
    conn: &C,
    id: &IntegrationId,
) -> Result<Integration, TrackerError> {
    // By primary key, so `all` reads one row; `one` would add `LIMIT ?`,
    // which SQLite re-prepares on every call (see
    // `service_runtime::database::unique`).
    let row = service_runtime::database::unique(integration::Entity::find_by_id(id.as_str()), conn)
        .await?
        .ok_or_else(|| TrackerError::NotFound {
            resource: "integration",
            id: id.to_string(),
        })?;
    from_row(row)
}

/// Integrations as the hot paths read them (each webhook at its intake, by
/// id or by Connect client key, and again when applied; each outbound
/// change): from memory for up to the time to live
/// (`--integration-cache-ttl`), so a webhook costs no database read for its
/// integration. Changes made through this replica's API are seen at once
/// (the API forgets the changed integration); changes made on another
/// replica within the time to live. Operators' reads (`GetIntegration`)
/// read the database. Only integrations that exist are kept: an unknown id
/// or client key is read each time, so a webhook to an integration created
/// on another replica is accepted at once. Cheap to clone.
#[derive(Debug, Clone)]
pub struct IntegrationCache {
    db: Database,
    by_id: Arc<TtlCache<IntegrationId, Integration>>,
    by_client_key: Arc<TtlCache<String, Integration>>,
}

/// Integrations kept at most; past it (every one fresh), an integration is
/// read each time until some expire.
pub const INTEGRATION_CACHE_CAPACITY: usize = 65_536;

impl IntegrationCache {
    /// An empty cache over `db`, each integration kept for `ttl`.
    pub fn new(db: Database, ttl: Duration) -> Self {
        Self {
            db,
            by_id: Arc::new(TtlCache::new(ttl, INTEGRATION_CACHE_CAPACITY)),
            by_client_key: Arc::new(TtlCache::new(ttl, INTEGRATION_CACHE_CAPACITY)),
        }
    }

    /// The integration, with its secrets.
    ///
    /// # Errors
    /// NOT_FOUND, or a database error.
    pub async fn load(&self, id: &IntegrationId) -> Result<Arc<Integration>, TrackerError> {
        self.by_id
            .get_or_fetch(id.clone(), load(self.db.conn(), id))
            .await
    }

    /// The Connect integration whose client key is `client_key`, see
    /// [`find_by_client_key`].
    ///
    /// # Errors
    /// Database errors.
    pub async fn find_by_client_key(
        &self,
        client_key: &str,
    ) -> Result<Option<Arc<Integration>>, TrackerError> {
        let key = client_key.to_owned();
        if let Some((integration, _)) = self.by_client_key.get(&key) {
            return Ok(Some(integration));
        }
        let ticket = self.by_client_key.ticket();
        let Some(integration) = find_by_client_key(&self.db, client_key).await? else {
            return Ok(None);
        };
        let integration = Arc::new(integration);
        self.by_client_key
            .put(key, Arc::clone(&integration), ticket);
        Ok(Some(integration))
    }

    /// Forgets `id` (it changed, or may have), under its id and under any
    /// client key: a change may have given it another one, so every
    /// integration kept by client key is forgotten (changes are rare).
    pub fn forget(&self, id: &IntegrationId) {
        self.by_id.forget(|cached| cached == id);
        self.by_client_key.forget(|_| true);
    }
}

/// Finds the Connect integration whose client key is `client_key` (the `iss` of
/// Jira's JWTs).
///
/// # Errors
/// Database errors.
pub async fn find_by_client_key(
    db: &Database,
    client_key: &str,
) -> Result<Option<Integration>, TrackerError> {
    integration::Entity::find()
        .filter(integration::Column::ConnectClientKey.eq(client_key))
        .one(db.conn())
        .await?
        .map(from_row)
        .transpose()
}

/// Registers an integration.
///
/// # Errors
/// ALREADY_EXISTS when the id or Connect client key is taken; INVALID_ARGUMENT
/// when webhooks could not be authenticated.
pub async fn create(
    db: &Database,
    new: NewIntegration,
    request_id: Option<&RequestId>,
) -> Result<IntegrationSummary, TrackerError> {
    check_authenticity(&new.credentials, new.webhook_secret.as_ref())?;
    let key = IdempotencyKey::new("CreateIntegration", request_id, &new);
    idempotent_write(db, key, move |txn| {
        Box::pin(async move {
            let time = now();
            let mut row = integration::ActiveModel {
                id: Set(new.id.as_str().to_owned()),
                display_name: Set(new.display_name.clone()),
                base_url: Set(new.base_url.as_str().to_owned()),
                webhook_secret: Set(new.webhook_secret.as_ref().map(|s| s.expose().clone())),
                email_api_allowed: Set(new.email_api_allowed),
                group_link_template: Set(new
                    .group_link_template
                    .as_ref()
                    .map(|t| t.as_str().to_owned())),
                created_at: Set(time),
                updated_at: Set(time),
                ..Default::default()
            };
            write_credentials(&mut row, &new.credentials);
            let row = row
                .insert(txn)
                .await
                .map_err(|e| taken_client_key(&e, &new.id).unwrap_or_else(|| e.into()))?;
            Ok(from_row(row)?.summary())
        })
    })
    .await
}

/// Changes an integration.
///
/// # Errors
/// NOT_FOUND; INVALID_ARGUMENT when webhooks could no longer be authenticated.
pub async fn update(
    db: &Database,
    changes: IntegrationChanges,
    request_id: Option<&RequestId>,
) -> Result<IntegrationSummary, TrackerError> {
    let key = IdempotencyKey::new("UpdateIntegration", request_id, &changes);
    idempotent_write(db, key, move |txn| {
        Box::pin(async move {
            let current = load(txn, &changes.id).await?;
            let credentials = changes
                .credentials
                .clone()
                .unwrap_or_else(|| current.credentials.clone());
            let webhook_secret = changes
                .webhook_secret
                .clone()
                .unwrap_or_else(|| current.webhook_secret.clone());
            check_authenticity(&credentials, webhook_secret.as_ref())?;
            let row = integration::Entity::find_by_id(changes.id.as_str())
                .one(txn)
                .await?
                .ok_or_else(|| corrupt("integration vanished"))?;
            let mut row: integration::ActiveModel = row.into();
            if let Some(name) = &changes.display_name {
                row.display_name = Set(name.clone());
            }
            if let Some(url) = &changes.base_url {
                row.base_url = Set(url.as_str().to_owned());
            }
            write_credentials(&mut row, &credentials);
            row.webhook_secret = Set(webhook_secret.as_ref().map(|s| s.expose().clone()));
            if let Some(allowed) = changes.email_api_allowed {
                row.email_api_allowed = Set(allowed);
            }
            if let Some(template) = &changes.group_link_template {
                row.group_link_template = Set(template.as_ref().map(|t| t.as_str().to_owned()));
            }
            row.updated_at = Set(now());
            let row = row
                .update(txn)
                .await
                .map_err(|e| taken_client_key(&e, &changes.id).unwrap_or_else(|| e.into()))?;
            Ok(from_row(row)?.summary())
        })
    })
    .await
}

/// Lists integrations by id.
///
/// # Errors
/// Database errors.
pub async fn list(
    db: &Database,
    page: &PageRequest<String>,
) -> Result<(Vec<IntegrationSummary>, String), TrackerError> {
    let mut query = integration::Entity::find()
        .order_by_asc(integration::Column::Id)
        .limit(page.fetch_limit());
    if let Some(after) = &page.after {
        query = query.filter(integration::Column::Id.gt(after.as_str()));
    }
    let mut rows = query.all(db.conn()).await?;
    let next = page.finish(&mut rows, |r| r.id.clone());
    let items = rows
        .into_iter()
        .map(|r| from_row(r).map(|i| i.summary()))
        .collect::<Result<_, _>>()?;
    Ok((items, next))
}
