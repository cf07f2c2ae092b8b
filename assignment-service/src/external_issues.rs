//! Links between groups and external (Jira) issues.
//!
//! Each organization keeps its own record of an issue, keyed by (integration,
//! key) and also by Jira's stable issue id, because the key changes when the issue
//! moves to another project. A group is linked to a record at most once; the
//! record disappears with its last link.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait as _, ActiveValue::Set, ColumnTrait as _, ConnectionTrait,
    DatabaseTransaction, EntityTrait as _, QueryFilter as _, QueryOrder as _, QuerySelect as _,
};
use serde::Serialize;
use service_runtime::database::{Database, placeholders};
use service_runtime::ids::{IntegrationId, IssueKey, JiraIssueId, RequestId};
use service_runtime::pagination::PageRequest;
use service_runtime::shapes::{in_list, pairs_in_values, shaped_chunks};
use service_runtime::time::now;

use crate::domain::records::{ExternalIssue, Page};
use crate::domain::{ExternalIssueId, GroupId, OrganizationId};
use crate::error::{AssignmentError, Reason};
use crate::groups::effects::{Change, Effects, GroupFacts, Origin};
use crate::storage::entities::{external_issue, group, group_link, installation};
use service_runtime::idempotency::{IdempotencyKey, idempotent_write};

/// External issues one group may be linked to (so a group, with its links,
/// stays small enough to list a page of them).
pub const MAX_LINKS_PER_GROUP: usize = 20;
/// Groups one organization's record of an external issue may link.
pub const MAX_GROUPS_PER_ISSUE: usize = 1000;

/// Identifies an external issue within an integration: by Jira id, key, or both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IssueRef {
    /// The integration.
    pub integration_id: IntegrationId,
    /// The key, when given.
    pub key: Option<IssueKey>,
    /// Jira's issue id, when given.
    pub jira_issue_id: Option<JiraIssueId>,
}

impl IssueRef {
    /// The key or, failing that, the Jira id, for messages.
    pub fn describe(&self) -> String {
        match (&self.key, &self.jira_issue_id) {
            (Some(key), _) => key.to_string(),
            (None, Some(id)) => format!("issue id {id}"),
            (None, None) => "an unnamed issue".to_owned(),
        }
    }
}

/// Links groups to an issue.
#[derive(Debug, Clone, Serialize)]
pub struct LinkRequest {
    /// The organization.
    pub organization_id: OrganizationId,
    /// The integration and key (required) and Jira id (recommended).
    pub integration_id: IntegrationId,
    /// The issue key.
    pub key: IssueKey,
    /// Jira's issue id.
    pub jira_issue_id: Option<JiraIssueId>,
    /// The issue's title.
    pub title: String,
    /// The issue's browse URL.
    pub url: String,
    /// The groups (at least one).
    pub group_ids: Vec<GroupId>,
}

/// The result of a link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Linked {
    /// The record after linking.
    pub external_issue: ExternalIssue,
    /// The groups this call linked.
    pub newly_linked: Vec<GroupId>,
}

/// Which groups an unlink removes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum UnlinkScope {
    /// Every group linked to the issue.
    All,
    /// These groups (at least one).
    Groups(Vec<GroupId>),
}

/// Unlinks groups from an issue.
#[derive(Debug, Clone, Serialize)]
pub struct UnlinkRequest {
    /// The organization.
    pub organization_id: OrganizationId,
    /// The issue.
    pub issue: IssueRef,
    /// The groups.
    pub scope: UnlinkScope,
}

/// The result of an unlink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Unlinked {
    /// The record after unlinking; `None` when it was removed.
    pub external_issue: Option<ExternalIssue>,
    /// The groups this call unlinked.
    pub unlinked: Vec<GroupId>,
}

/// Records a key change.
#[derive(Debug, Clone, Serialize)]
pub struct MoveRequest {
    /// The issue before the move: its Jira id and/or its previous key.
    pub issue: IssueRef,
    /// The key after the move.
    pub new_key: IssueKey,
}

/// Forgets an issue's watermarks.
#[derive(Debug, Clone, Serialize)]
pub struct ResetRequest {
    /// The issue.
    pub issue: IssueRef,
    /// Only this organization's record, when given.
    pub organization_id: Option<OrganizationId>,
}

/// Filters of [`list_external_issues`].
#[derive(Debug, Clone, Default)]
pub struct ExternalIssueFilter {
    /// Only this organization's records.
    pub organization_id: Option<OrganizationId>,
    /// Only this integration's issues.
    pub integration_id: Option<IntegrationId>,
}

fn corrupt(what: &str) -> AssignmentError {
    AssignmentError::Corrupt(what.to_owned())
}

/// One organization's record of an external issue, as inbound sync reads and
/// advances it (the linked groups are read separately).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueRecord {
    /// The record.
    pub id: ExternalIssueId,
    /// Its organization.
    pub organization_id: OrganizationId,
    /// The integration the issue lives in.
    pub integration_id: IntegrationId,
    /// The current key.
    pub key: IssueKey,
    /// Jira's stable id, once known.
    pub jira_issue_id: Option<JiraIssueId>,
    /// Provider time of the newest assignee event applied.
    pub assignee_watermark: Option<DateTime<Utc>>,
    /// Provider time of the newest status event applied.
    pub status_watermark: Option<DateTime<Utc>>,
}

impl TryFrom<external_issue::Model> for IssueRecord {
    type Error = AssignmentError;
    fn try_from(row: external_issue::Model) -> Result<Self, Self::Error> {
        Ok(Self {
            id: ExternalIssueId::from_row(row.id),
            organization_id: OrganizationId::from_row(row.organization_id),
            integration_id: IntegrationId::parse(&row.integration_id)
                .map_err(|_| corrupt("external issue integration id"))?,
            key: IssueKey::parse(&row.issue_key).map_err(|_| corrupt("external issue key"))?,
            jira_issue_id: row
                .jira_issue_id
                .map(|id| JiraIssueId::parse(&id).map_err(|_| corrupt("jira issue id")))
                .transpose()?,
            assignee_watermark: row.assignee_watermark,
            status_watermark: row.status_watermark,
        })
    }
}

/// Turns a record row into the API's record, with its linked groups.
async fn record_with_groups<C: ConnectionTrait>(
    conn: &C,
    row: external_issue::Model,
) -> Result<ExternalIssue, AssignmentError> {
    let group_ids = group_link::Entity::find()
        .filter(group_link::Column::ExternalIssueId.eq(row.id))
        .order_by_asc(group_link::Column::GroupId)
        .all(conn)
        .await?
        .into_iter()
        .map(|l| GroupId::from_row(l.group_id))
        .collect();
    let title = row.title.clone();
    let url = row.url.clone();
    let created_at = row.created_at;
    let record = IssueRecord::try_from(row)?;
    Ok(ExternalIssue {
        id: record.id,
        organization_id: record.organization_id,
        integration_id: record.integration_id,
        key: record.key,
        jira_issue_id: record.jira_issue_id,
        title,
        url,
        group_ids,
        assignee_watermark: record.assignee_watermark,
        status_watermark: record.status_watermark,
        created_at,
    })
}

/// Finds one organization's record of `issue`: by Jira id first, then by key.
async fn find_record<C: ConnectionTrait>(
    conn: &C,
    organization_id: OrganizationId,
    issue: &IssueRef,
) -> Result<Option<external_issue::Model>, AssignmentError> {
    let base = external_issue::Entity::find()
        .filter(external_issue::Column::OrganizationId.eq(organization_id.get()))
        .filter(external_issue::Column::IntegrationId.eq(issue.integration_id.as_str()));
    if let Some(id) = &issue.jira_issue_id
        && let Some(row) = base
            .clone()
            .filter(external_issue::Column::JiraIssueId.eq(id.as_str()))
            .one(conn)
            .await?
    {
        return Ok(Some(row));
    }
    if let Some(key) = &issue.key {
        return Ok(base
            .filter(external_issue::Column::IssueKey.eq(key.as_str()))
            .one(conn)
            .await?);
    }
    Ok(None)
}

/// Every organization's record of `issue`, one per organization (the one matching
/// the Jira id wins over one matching only the key), ordered by organization,
/// locked for update (in id order, so concurrent syncs of one issue serialise
/// without deadlocks).
pub(crate) async fn lock_records(
    txn: &DatabaseTransaction,
    issue: &IssueRef,
) -> Result<Vec<IssueRecord>, AssignmentError> {
    let records = lock_candidate_records(txn, std::slice::from_ref(issue)).await?;
    Ok(choose_records(&records, issue))
}

/// Every record any of `issues` may designate (same integration, same key or
/// same Jira id), locked for update in id order.
///
/// The ids are found first with indexed lookups by attribute (an `OR` across
/// attributes made SQLite scan every record of the integration): on
/// PostgreSQL one per attribute ([`ids_by_pairs`]), on SQLite one per
/// integration and attribute. Then the rows are read and locked in id order, the order every
/// writer locks records in.
pub(crate) async fn lock_candidate_records(
    txn: &DatabaseTransaction,
    issues: &[IssueRef],
) -> Result<Vec<IssueRecord>, AssignmentError> {
    use std::collections::{BTreeMap, BTreeSet};
    let mut by_integration: BTreeMap<&str, (BTreeSet<&str>, BTreeSet<&str>)> = BTreeMap::new();
    for issue in issues {
        let (ids, keys) = by_integration
            .entry(issue.integration_id.as_str())
            .or_default();
        if let Some(id) = &issue.jira_issue_id {
            ids.insert(id.as_str());
        }
        if let Some(key) = &issue.key {
            keys.insert(key.as_str());
        }
    }
    let mut found: BTreeSet<i64> = BTreeSet::new();
    if txn.get_database_backend() == sea_orm::DbBackend::Postgres {
        for (column, pairs) in [
            (
                "jira_issue_id",
                by_integration
                    .iter()
                    .flat_map(|(i, (ids, _))| ids.iter().map(move |id| (*i, *id)))
                    .collect::<Vec<_>>(),
            ),
            (
                "issue_key",
                by_integration
                    .iter()
                    .flat_map(|(i, (_, keys))| keys.iter().map(move |key| (*i, *key)))
                    .collect(),
            ),
        ] {
            for chunk in pairs.chunks(PAIRS_PER_LOOKUP) {
                found.extend(ids_by_pairs(txn, column, chunk).await?);
            }
        }
    } else {
        for (integration, (ids, keys)) in by_integration {
            for (column, values) in [
                (external_issue::Column::JiraIssueId, ids),
                (external_issue::Column::IssueKey, keys),
            ] {
                if values.is_empty() {
                    continue;
                }
                found.extend(
                    external_issue::Entity::find()
                        .select_only()
                        .column(external_issue::Column::Id)
                        .filter(external_issue::Column::IntegrationId.eq(integration))
                        .filter(column.is_in(in_list(values)))
                        .into_tuple::<i64>()
                        .all(txn)
                        .await?,
                );
            }
        }
    }
    if found.is_empty() {
        return Ok(Vec::new());
    }
    external_issue::Entity::find()
        .filter(external_issue::Column::Id.is_in(in_list(found)))
        .order_by_asc(external_issue::Column::Id)
        .lock_exclusive()
        .all(txn)
        .await?
        .into_iter()
        .map(IssueRecord::try_from)
        .collect()
}

/// (integration, value) pairs looked up by one statement at most.
const PAIRS_PER_LOOKUP: usize = 256;

/// PostgreSQL: the ids of the records whose (integration, `column`) is one of
/// `pairs`, as a join with a `VALUES` list. As `integration_id = ? AND column
/// IN (…)`, a table without statistics (autovacuum off, or not yet run) made
/// the planner guess an integration had a handful of records, probe the
/// index on the integration only and filter all of its records: 1.5 ms a
/// lookup at 1,000 records in the bench's `sync-rpc`, growing with them
/// (docs/BENCHMARKS.md "Stop 36"). Joined, each pair is one probe of the
/// (integration, column) index. (SQLite plans the list on both columns, and
/// scans the table for a `VALUES` join, so it keeps the lists.)
async fn ids_by_pairs(
    txn: &DatabaseTransaction,
    column: &str,
    pairs: &[(&str, &str)],
) -> Result<Vec<i64>, AssignmentError> {
    use sea_orm::{ConnectionTrait as _, DbBackend, Statement};
    let (pairs_in, values) = pairs_in_values("integration_id", column, pairs);
    let sql = format!("SELECT id FROM external_issues WHERE {pairs_in}");
    txn.query_all_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        placeholders(DbBackend::Postgres, &sql),
        values,
    ))
    .await?
    .iter()
    .map(|row| row.try_get::<i64>("", "id").map_err(AssignmentError::from))
    .collect()
}

/// Whether `issue` may designate `record`: same integration, and the same Jira
/// id or the same key.
fn designates(issue: &IssueRef, record: &IssueRecord) -> bool {
    record.integration_id == issue.integration_id
        && (matches_id(issue, record) || issue.key.as_ref() == Some(&record.key))
}

fn matches_id(issue: &IssueRef, record: &IssueRecord) -> bool {
    issue
        .jira_issue_id
        .as_ref()
        .is_some_and(|id| record.jira_issue_id.as_ref() == Some(id))
}

/// The records `issue` designates among `records`: per organization, the one
/// whose Jira id matches, else the one whose key matches; ordered by
/// organization.
pub(crate) fn choose_records<'a>(
    records: impl IntoIterator<Item = &'a IssueRecord>,
    issue: &IssueRef,
) -> Vec<IssueRecord> {
    let mut chosen: Vec<IssueRecord> = Vec::new();
    for record in records {
        if !designates(issue, record) {
            continue;
        }
        match chosen
            .iter_mut()
            .find(|c| c.organization_id == record.organization_id)
        {
            Some(existing) => {
                if matches_id(issue, record) && !matches_id(issue, existing) {
                    *existing = record.clone();
                }
            }
            None => chosen.push(record.clone()),
        }
    }
    chosen.sort_by_key(|r| r.organization_id);
    chosen
}

/// Writes back what sync changed in `records` (Jira's issue id, the
/// watermarks), with one statement per few hundred records.
pub(crate) async fn store_sync_state(
    txn: &DatabaseTransaction,
    records: &[IssueRecord],
) -> Result<(), AssignmentError> {
    use sea_orm::{ConnectionTrait as _, Statement};
    let backend = txn.get_database_backend();
    for chunk in shaped_chunks(records, ROWS_PER_STATEMENT) {
        // One `CASE id WHEN … THEN …` per column; the values go in the order
        // the placeholders appear: column by column, then the ids.
        let case = format!("CASE id{} END", " WHEN ? THEN ?".repeat(chunk.len()));
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(chunk.len() * 7);
        let columns: [fn(&IssueRecord) -> sea_orm::Value; 3] = [
            |r| {
                r.jira_issue_id
                    .as_ref()
                    .map(|j| j.as_str().to_owned())
                    .into()
            },
            |r| r.assignee_watermark.into(),
            |r| r.status_watermark.into(),
        ];
        for column in columns {
            for record in chunk {
                values.push(record.id.get().into());
                values.push(column(record));
            }
        }
        values.extend(chunk.iter().map(|r| sea_orm::Value::from(r.id.get())));
        let ids = vec!["?"; chunk.len()].join(", ");
        let sql = format!(
            "UPDATE external_issues SET jira_issue_id = {case}, \
             assignee_watermark = {case}, status_watermark = {case} WHERE id IN ({ids})"
        );
        txn.execute_raw(Statement::from_sql_and_values(
            backend,
            placeholders(backend, &sql),
            values,
        ))
        .await?;
    }
    Ok(())
}

/// Records per multi-row statement (well under both engines' parameter limits).
const ROWS_PER_STATEMENT: usize = 300;

/// Refuses a link that would give a group more than [`MAX_LINKS_PER_GROUP`]
/// external issues, or the record more than [`MAX_GROUPS_PER_ISSUE`] groups.
async fn check_link_limits(
    txn: &DatabaseTransaction,
    record_id: i64,
    groups: &[group::Model],
) -> Result<(), AssignmentError> {
    let links = group_link::Entity::find()
        .filter(
            sea_orm::Condition::any()
                .add(group_link::Column::ExternalIssueId.eq(record_id))
                .add(group_link::Column::GroupId.is_in(in_list(groups.iter().map(|g| g.id)))),
        )
        .all(txn)
        .await?;
    let new: Vec<&group::Model> = groups
        .iter()
        .filter(|g| {
            !links
                .iter()
                .any(|l| l.group_id == g.id && l.external_issue_id == record_id)
        })
        .collect();
    let on_record = links
        .iter()
        .filter(|l| l.external_issue_id == record_id)
        .count();
    if on_record + new.len() > MAX_GROUPS_PER_ISSUE {
        return Err(AssignmentError::refused(
            Reason::LinkLimitReached,
            format!(
                "the issue would link {} groups; at most {MAX_GROUPS_PER_ISSUE} are allowed",
                on_record + new.len()
            ),
        ));
    }
    for group in new {
        let of_group = links.iter().filter(|l| l.group_id == group.id).count();
        if of_group >= MAX_LINKS_PER_GROUP {
            return Err(AssignmentError::refused(
                Reason::LinkLimitReached,
                format!(
                    "group {} is linked to {of_group} external issues, the most one group may be; unlink one first",
                    group.id
                ),
            ));
        }
    }
    Ok(())
}

/// What notifications and activities say of a group row.
fn facts(group: &group::Model) -> GroupFacts<'_> {
    GroupFacts {
        id: GroupId::from_row(group.id),
        organization_id: OrganizationId::from_row(group.organization_id),
        title: &group.title,
    }
}

/// Links groups of one organization to an issue.
///
/// # Errors
/// FAILED_PRECONDITION when the organization has not installed the integration;
/// NOT_FOUND for a group that is not in the organization.
pub async fn link(
    db: &Database,
    request: LinkRequest,
    request_id: Option<&RequestId>,
) -> Result<Linked, AssignmentError> {
    let key = IdempotencyKey::new("LinkExternalIssue", request_id, &request);
    let request_id = request_id.cloned();
    idempotent_write(db, key, move |txn| {
        Box::pin(async move {
            let installed = installation::Entity::find()
                .filter(installation::Column::OrganizationId.eq(request.organization_id.get()))
                .filter(installation::Column::IntegrationId.eq(request.integration_id.as_str()))
                .one(txn)
                .await?;
            if installed.is_none() {
                return Err(AssignmentError::refused(
                    Reason::IntegrationNotInstalled,
                    format!(
                        "organization {} has not installed integration {}; install it first (DirectoryService.InstallIntegration)",
                        request.organization_id, request.integration_id
                    ),
                ));
            }
            let mut groups = Vec::with_capacity(request.group_ids.len());
            for group_id in &request.group_ids {
                let row = group::Entity::find_by_id(group_id.get())
                    .one(txn)
                    .await?
                    .filter(|g| g.organization_id == request.organization_id.get())
                    .ok_or_else(|| AssignmentError::NotFound {
                        resource: "group",
                        id: format!("{group_id} in organization {}", request.organization_id),
                    })?;
                groups.push(row);
            }

            let issue = IssueRef {
                integration_id: request.integration_id.clone(),
                key: Some(request.key.clone()),
                jira_issue_id: request.jira_issue_id.clone(),
            };
            let record = match find_record(txn, request.organization_id, &issue).await? {
                Some(row) => {
                    let mut active: external_issue::ActiveModel = row.clone().into();
                    if row.issue_key != request.key.as_str() {
                        active.issue_key = Set(request.key.as_str().to_owned());
                    }
                    if row.jira_issue_id.is_none()
                        && let Some(id) = &request.jira_issue_id
                    {
                        active.jira_issue_id = Set(Some(id.as_str().to_owned()));
                    }
                    if !request.title.is_empty() {
                        active.title = Set(request.title.clone());
                    }
                    if !request.url.is_empty() {
                        active.url = Set(request.url.clone());
                    }
                    active.update(txn).await?
                }
                None => {
                    external_issue::ActiveModel {
                        organization_id: Set(request.organization_id.get()),
                        integration_id: Set(request.integration_id.as_str().to_owned()),
                        issue_key: Set(request.key.as_str().to_owned()),
                        jira_issue_id: Set(request
                            .jira_issue_id
                            .as_ref()
                            .map(|id| id.as_str().to_owned())),
                        title: Set(request.title.clone()),
                        url: Set(request.url.clone()),
                        assignee_watermark: Set(None),
                        status_watermark: Set(None),
                        created_at: Set(now()),
                        ..Default::default()
                    }
                    .insert(txn)
                    .await?
                }
            };

            check_link_limits(txn, record.id, &groups).await?;
            let origin = Origin {
                source_integration_id: Some(request.integration_id.clone()),
                integration_id: Some(request.integration_id.clone()),
                issue_key: Some(request.key.clone()),
                request_id: request_id.clone(),
                traceparent: String::new(),
                actor: None,
            };
            let mut effects = Effects::default();
            let mut newly_linked = Vec::new();
            for group in &groups {
                let existing = group_link::Entity::find()
                    .filter(group_link::Column::ExternalIssueId.eq(record.id))
                    .filter(group_link::Column::GroupId.eq(group.id))
                    .one(txn)
                    .await?;
                if existing.is_some() || newly_linked.contains(&GroupId::from_row(group.id)) {
                    continue;
                }
                group_link::ActiveModel {
                    external_issue_id: Set(record.id),
                    group_id: Set(group.id),
                    created_at: Set(now()),
                    ..Default::default()
                }
                .insert(txn)
                .await?;
                effects.record(facts(group), Change::Linked, &origin);
                newly_linked.push(GroupId::from_row(group.id));
            }
            effects.write(txn).await?;
            Ok(Linked {
                external_issue: record_with_groups(txn, record).await?,
                newly_linked,
            })
        })
    })
    .await
}

/// Unlinks groups from an issue; the record goes with its last link.
///
/// # Errors
/// NOT_FOUND when the organization has no record of the issue.
pub async fn unlink(
    db: &Database,
    request: UnlinkRequest,
    request_id: Option<&RequestId>,
) -> Result<Unlinked, AssignmentError> {
    let key = IdempotencyKey::new("UnlinkExternalIssue", request_id, &request);
    let request_id = request_id.cloned();
    idempotent_write(db, key, move |txn| {
        Box::pin(async move {
            let record = find_record(txn, request.organization_id, &request.issue)
                .await?
                .ok_or_else(|| AssignmentError::NotFound {
                    resource: "external issue",
                    id: format!(
                        "{} of integration {} in organization {}",
                        request.issue.describe(),
                        request.issue.integration_id,
                        request.organization_id
                    ),
                })?;
            let mut effects = Effects::default();
            let (unlinked, removed) = cut_links(
                txn,
                record.id,
                &record.issue_key,
                &request.scope,
                request_id.as_ref(),
                &mut effects,
            )
            .await?;
            effects.write(txn).await?;
            let external_issue = if removed {
                None
            } else {
                Some(record_with_groups(txn, record).await?)
            };
            Ok(Unlinked {
                external_issue,
                unlinked,
            })
        })
    })
    .await
}

/// Removes the links `scope` names from record `record_id`, recording each
/// group's unlink (its source is the record's integration); deletes the record
/// when no link is left. Returns the unlinked groups and whether the record is
/// gone.
async fn cut_links(
    txn: &DatabaseTransaction,
    record_id: i64,
    issue_key: &str,
    scope: &UnlinkScope,
    request_id: Option<&RequestId>,
    effects: &mut Effects,
) -> Result<(Vec<GroupId>, bool), AssignmentError> {
    let record = external_issue::Entity::find_by_id(record_id)
        .one(txn)
        .await?
        .ok_or_else(|| corrupt("an external issue vanished while it was unlinked"))?;
    let integration =
        IntegrationId::parse(&record.integration_id).map_err(|_| corrupt("integration id"))?;
    let links = group_link::Entity::find()
        .filter(group_link::Column::ExternalIssueId.eq(record_id))
        .order_by_asc(group_link::Column::GroupId)
        .all(txn)
        .await?;
    let origin = Origin {
        source_integration_id: Some(integration.clone()),
        integration_id: Some(integration),
        issue_key: Some(IssueKey::parse(issue_key).map_err(|_| corrupt("external issue key"))?),
        request_id: request_id.cloned(),
        traceparent: String::new(),
        actor: None,
    };
    let mut unlinked = Vec::new();
    for link in &links {
        let group_id = GroupId::from_row(link.group_id);
        if let UnlinkScope::Groups(ids) = scope
            && !ids.contains(&group_id)
        {
            continue;
        }
        group_link::Entity::delete_by_id(link.id).exec(txn).await?;
        if let Some(group) = group::Entity::find_by_id(link.group_id).one(txn).await? {
            effects.record(facts(&group), Change::Unlinked, &origin);
        }
        unlinked.push(group_id);
    }
    let removed = unlinked.len() == links.len();
    if removed {
        external_issue::Entity::delete_by_id(record_id)
            .exec(txn)
            .await?;
    }
    Ok((unlinked, removed))
}

/// What deleting an issue did to one organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Retired {
    /// The organization.
    pub organization_id: OrganizationId,
    /// Its groups that were linked to the issue.
    pub unlinked: Vec<GroupId>,
}

/// The issue was deleted in Jira (Sentry's `jira:issue_deleted`): every
/// organization's record of it is retired, in one transaction: its groups are
/// unlinked (their unlink recorded) and the record removed, so later events
/// about the issue find nothing. An issue no organization has is a no-op.
///
/// # Errors
/// Database errors; `RequestIdReused`.
pub async fn retire(
    db: &Database,
    issue: IssueRef,
    request_id: Option<&RequestId>,
) -> Result<Vec<Retired>, AssignmentError> {
    let key = IdempotencyKey::new("DeleteExternalIssue", request_id, &issue);
    let request_id = request_id.cloned();
    idempotent_write(db, key, move |txn| {
        Box::pin(async move {
            let records = lock_records(txn, &issue).await?;
            let mut effects = Effects::default();
            let mut retired = Vec::new();
            for record in records {
                let (unlinked, _) = cut_links(
                    txn,
                    record.id.get(),
                    record.key.as_str(),
                    &UnlinkScope::All,
                    request_id.as_ref(),
                    &mut effects,
                )
                .await?;
                retired.push(Retired {
                    organization_id: record.organization_id,
                    unlinked,
                });
            }
            effects.write(txn).await?;
            Ok(retired)
        })
    })
    .await
}

/// Reads one organization's record of an issue.
///
/// # Errors
/// NOT_FOUND when there is none.
pub async fn get(
    db: &Database,
    organization_id: OrganizationId,
    issue: &IssueRef,
) -> Result<ExternalIssue, AssignmentError> {
    let row = find_record(db.conn(), organization_id, issue)
        .await?
        .ok_or_else(|| AssignmentError::NotFound {
            resource: "external issue",
            id: format!(
                "{} of integration {} in organization {organization_id}",
                issue.describe(),
                issue.integration_id
            ),
        })?;
    record_with_groups(db.conn(), row).await
}

/// Lists records by id.
///
/// # Errors
/// Database errors.
pub async fn list_external_issues(
    db: &Database,
    filter: &ExternalIssueFilter,
    page: &PageRequest<i64>,
) -> Result<Page<ExternalIssue>, AssignmentError> {
    let mut query = external_issue::Entity::find()
        .filter(external_issue::Column::Id.gt(page.after.unwrap_or(0)))
        .order_by_asc(external_issue::Column::Id)
        .limit(page.fetch_limit());
    if let Some(org) = filter.organization_id {
        query = query.filter(external_issue::Column::OrganizationId.eq(org.get()));
    }
    if let Some(integration) = &filter.integration_id {
        query = query.filter(external_issue::Column::IntegrationId.eq(integration.as_str()));
    }
    let mut rows = query.all(db.conn()).await?;
    let next_page_token = page.finish(&mut rows, |r| r.id);
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        items.push(record_with_groups(db.conn(), row).await?);
    }
    Ok(Page {
        items,
        next_page_token,
    })
}

/// Records a key change in every organization's record of the issue.
///
/// # Errors
/// FAILED_PRECONDITION when an organization already has another record under the
/// new key.
pub async fn move_issue(
    db: &Database,
    request: MoveRequest,
    request_id: Option<&RequestId>,
) -> Result<Vec<ExternalIssue>, AssignmentError> {
    let key = IdempotencyKey::new("MoveExternalIssue", request_id, &request);
    idempotent_write(db, key, move |txn| {
        Box::pin(async move {
            let records = lock_records(txn, &request.issue).await?;
            let mut moved = Vec::with_capacity(records.len());
            for record in records {
                let taken = external_issue::Entity::find()
                    .filter(external_issue::Column::OrganizationId.eq(record.organization_id.get()))
                    .filter(
                        external_issue::Column::IntegrationId
                            .eq(request.issue.integration_id.as_str()),
                    )
                    .filter(external_issue::Column::IssueKey.eq(request.new_key.as_str()))
                    .filter(external_issue::Column::Id.ne(record.id.get()))
                    .one(txn)
                    .await?;
                if taken.is_some() {
                    return Err(AssignmentError::refused(
                        Reason::IssueKeyTaken,
                        format!(
                            "organization {} already has another record of {}; unlink it first",
                            record.organization_id, request.new_key
                        ),
                    ));
                }
                let row = external_issue::Entity::find_by_id(record.id.get())
                    .one(txn)
                    .await?
                    .ok_or_else(|| corrupt("a locked record vanished"))?;
                let mut active: external_issue::ActiveModel = row.into();
                active.issue_key = Set(request.new_key.as_str().to_owned());
                if record.jira_issue_id.is_none()
                    && let Some(id) = &request.issue.jira_issue_id
                {
                    active.jira_issue_id = Set(Some(id.as_str().to_owned()));
                }
                let row = active.update(txn).await?;
                moved.push(record_with_groups(txn, row).await?);
            }
            Ok(moved)
        })
    })
    .await
}

/// Forgets both watermarks of an issue's records (ResetWatermarks).
///
/// # Errors
/// NOT_FOUND when no (matching) organization has a record of the issue.
pub async fn reset_watermarks(
    db: &Database,
    request: ResetRequest,
    request_id: Option<&RequestId>,
) -> Result<Vec<ExternalIssue>, AssignmentError> {
    let key = IdempotencyKey::new("ResetWatermarks", request_id, &request);
    idempotent_write(db, key, move |txn| {
        Box::pin(async move {
            let mut records: Vec<IssueRecord> = lock_records(txn, &request.issue)
                .await?
                .into_iter()
                .filter(|r| request.organization_id.is_none_or(|o| r.organization_id == o))
                .collect();
            if records.is_empty() {
                return Err(AssignmentError::NotFound {
                    resource: "external issue",
                    id: format!(
                        "{} of integration {}",
                        request.issue.describe(),
                        request.issue.integration_id
                    ),
                });
            }
            for record in &mut records {
                record.assignee_watermark = None;
                record.status_watermark = None;
            }
            store_sync_state(txn, &records).await?;
            tracing::info!(issue = %request.issue.describe(), records = records.len(), "watermarks reset");
            let mut reset = Vec::with_capacity(records.len());
            for record in records {
                let row = external_issue::Entity::find_by_id(record.id.get())
                    .one(txn)
                    .await?
                    .ok_or_else(|| corrupt("a locked record vanished"))?;
                reset.push(record_with_groups(txn, row).await?);
            }
            Ok(reset)
        })
    })
    .await
}
