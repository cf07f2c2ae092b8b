//! SyncAssigneeInbound for many calls in one transaction (group commit).
//!
//! Calls are applied one after another, in the order given, exactly as if each
//! had its own transaction: the same locks, the same choice of records, users
//! and groups, the same watermarks (a later call sees what an earlier one did),
//! the same activities, notifications and responses. What changes is the number
//! of statements: everything the calls read is read once for the whole group
//! (records, installations, links, groups, assignees, users, memberships,
//! stored responses), the decisions are taken in memory, and the writes go out
//! as multi-row statements, activities included (see [`insert_activities`] for
//! how their ids are matched to the notifications). On SQLite every statement is a
//! round trip to the connection's thread, so this, not the work, decided the
//! throughput (see docs/BENCHMARKS.md).
//!
//! A call whose request id was used before gets the stored response (or
//! ALREADY_EXISTS-like `RequestIdReused`) without being applied; two calls of
//! the group with one request id are applied once.

use std::collections::{BTreeSet, HashMap};

use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait as _, DatabaseTransaction, EntityTrait as _, QueryFilter as _, QueryOrder as _,
    QuerySelect as _,
};
use service_runtime::database::Database;
use service_runtime::idempotency::{self, IdempotencyKey};
use service_runtime::ids::{IssueKey, RequestId};

use super::{
    ActivityDraft, AssigneeChange, AssigneeTarget, Notifier, SyncResponse, activity_row, result,
};
use crate::domain::{ActivityId, ActivityKind, NotificationKind, SyncOutcome};
use crate::error::AssignmentError;
use crate::external_issues::{choose_records, lock_candidate_records};
use crate::notification_log::{self, NotificationDraft};
use crate::storage::entities::{
    activity, external_issue, group, group_assignee, group_link, installation, project_member,
    user, user_email,
};

/// The method name under which responses are stored.
const METHOD: &str = "SyncAssigneeInbound";

/// Rows per multi-row statement.
const ROWS_PER_STATEMENT: usize = 500;

/// One call.
#[derive(Debug, Clone)]
pub struct AssigneeCall {
    /// What Jira says.
    pub change: AssigneeChange,
    /// The caller's request id, when it sent one.
    pub request_id: Option<RequestId>,
}

/// Everything the group's calls read, loaded once, and updated in memory as the
/// calls apply.
struct Snapshot {
    /// Candidate records by id (current state, watermarks included).
    records: Vec<external_issue::Model>,
    /// Records changed by some call (to write back).
    dirty_records: BTreeSet<i64>,
    /// Installations by (integration, organization).
    installations: HashMap<(String, i64), installation::Model>,
    /// Linked group ids by record id, ascending.
    links: HashMap<i64, Vec<i64>>,
    /// Linked groups by id.
    groups: HashMap<i64, group::Model>,
    /// Current assignee by group (updated as calls apply).
    assignees: HashMap<i64, i64>,
    /// Groups whose assignee some call changed.
    dirty_groups: BTreeSet<i64>,
    /// Active users owning a verified address, by normalized address, ascending.
    users_by_email: HashMap<String, Vec<i64>>,
    /// Members by project.
    members: HashMap<i64, BTreeSet<i64>>,
}

/// Applies `calls` in one transaction; one answer per call, in order.
///
/// # Errors
/// A database error fails the whole group (nothing of it is kept); the caller
/// may then apply the calls one by one to isolate a failing one.
pub async fn sync_assignee_many(
    db: &Database,
    calls: &[AssigneeCall],
) -> Result<Vec<Result<SyncResponse, AssignmentError>>, AssignmentError> {
    let keys: Vec<Option<IdempotencyKey>> = calls
        .iter()
        .map(|c| IdempotencyKey::new(METHOD, c.request_id.as_ref(), &c.change))
        .collect();
    let write = db.begin_write().await?;
    let txn: &DatabaseTransaction = &write;

    let mut answers: Vec<Option<Result<SyncResponse, AssignmentError>>> =
        idempotency::replay_many(txn, &keys.iter().map(Option::as_ref).collect::<Vec<_>>())
            .await?
            .into_iter()
            .map(|stored| stored.map(|r| r.map_err(AssignmentError::from)))
            .collect();
    // A request id repeated within the group: the first call applies, the
    // others answer like a repeat (its response, or reuse for another body).
    let mut first_of: HashMap<&str, usize> = HashMap::new();
    let mut repeats: Vec<(usize, usize)> = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let Some(key) = key else { continue };
        if answers[i].is_some() {
            continue;
        }
        match first_of.get(key.request_id().as_str()) {
            None => {
                first_of.insert(key.request_id().as_str(), i);
            }
            Some(&first) => repeats.push((i, first)),
        }
    }
    let to_apply: Vec<usize> = (0..calls.len())
        .filter(|&i| answers[i].is_none() && !repeats.iter().any(|(r, _)| *r == i))
        .collect();

    let mut snapshot = load(txn, calls, &to_apply).await?;
    let mut effects = Effects::default();
    for &i in &to_apply {
        let response = apply(&calls[i], &mut snapshot, &mut effects)?;
        answers[i] = Some(Ok(response));
    }
    for (repeat, first) in repeats {
        let same = match (&keys[repeat], &keys[first]) {
            (Some(a), Some(b)) => idempotency::same_call(a, b),
            _ => false,
        };
        answers[repeat] = Some(if same {
            match &answers[first] {
                Some(Ok(response)) => Ok(response.clone()),
                _ => Err(AssignmentError::Corrupt(
                    "a repeated call lost its first".into(),
                )),
            }
        } else {
            Err(AssignmentError::from(
                idempotency::IdempotencyError::Reused(
                    calls[repeat]
                        .request_id
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                ),
            ))
        });
    }

    store(txn, &snapshot).await?;
    let activity_ids = insert_activities(txn, effects.activities).await?;
    let notifications = effects
        .notifications
        .into_iter()
        .map(|(mut draft, activity)| {
            draft.activity_id = *activity_ids.get(activity).ok_or_else(|| {
                AssignmentError::Corrupt("a notification lost its activity".into())
            })?;
            Ok(draft)
        })
        .collect::<Result<Vec<_>, AssignmentError>>()?;
    notification_log::append(txn, notifications).await?;
    let recorded: Vec<(&IdempotencyKey, &SyncResponse)> = to_apply
        .iter()
        .filter_map(|&i| match (&keys[i], &answers[i]) {
            (Some(key), Some(Ok(response))) => Some((key, response)),
            _ => None,
        })
        .collect();
    for chunk in recorded.chunks(ROWS_PER_STATEMENT) {
        idempotency::record_many(txn, chunk).await?;
    }
    write.commit().await?;
    Ok(answers
        .into_iter()
        .map(|a| a.unwrap_or_else(|| Err(AssignmentError::Corrupt("a call got no answer".into()))))
        .collect())
}

/// Reads, once, everything the calls at `indices` need, locking the records and
/// groups (id order, as single calls do).
async fn load(
    txn: &DatabaseTransaction,
    calls: &[AssigneeCall],
    indices: &[usize],
) -> Result<Snapshot, AssignmentError> {
    let issues: Vec<_> = indices
        .iter()
        .map(|&i| calls[i].change.issue.clone())
        .collect();
    let records = if issues.is_empty() {
        Vec::new()
    } else {
        lock_candidate_records(txn, &issues).await?
    };
    let record_ids: Vec<i64> = records.iter().map(|r| r.id).collect();
    let organizations: BTreeSet<i64> = records.iter().map(|r| r.organization_id).collect();
    let integrations: BTreeSet<String> = records.iter().map(|r| r.integration_id.clone()).collect();

    let installations = if records.is_empty() {
        HashMap::new()
    } else {
        installation::Entity::find()
            .filter(installation::Column::IntegrationId.is_in(integrations))
            .filter(installation::Column::OrganizationId.is_in(organizations))
            .all(txn)
            .await?
            .into_iter()
            .map(|i| ((i.integration_id.clone(), i.organization_id), i))
            .collect()
    };
    let mut links: HashMap<i64, Vec<i64>> = HashMap::new();
    let mut group_ids = BTreeSet::new();
    for chunk in record_ids.chunks(ROWS_PER_STATEMENT) {
        for link in group_link::Entity::find()
            .filter(group_link::Column::ExternalIssueId.is_in(chunk.to_vec()))
            .all(txn)
            .await?
        {
            links
                .entry(link.external_issue_id)
                .or_default()
                .push(link.group_id);
            group_ids.insert(link.group_id);
        }
    }
    for linked in links.values_mut() {
        linked.sort_unstable();
    }
    let group_ids: Vec<i64> = group_ids.into_iter().collect();
    let mut groups = HashMap::new();
    let mut assignees = HashMap::new();
    for chunk in group_ids.chunks(ROWS_PER_STATEMENT) {
        groups.extend(
            group::Entity::find()
                .filter(group::Column::Id.is_in(chunk.to_vec()))
                .order_by_asc(group::Column::Id)
                .lock_exclusive()
                .all(txn)
                .await?
                .into_iter()
                .map(|g| (g.id, g)),
        );
        assignees.extend(
            group_assignee::Entity::find()
                .filter(group_assignee::Column::GroupId.is_in(chunk.to_vec()))
                .all(txn)
                .await?
                .into_iter()
                .map(|a| (a.group_id, a.user_id)),
        );
    }

    let emails: BTreeSet<String> = indices
        .iter()
        .filter_map(|&i| match &calls[i].change.target {
            AssigneeTarget::Email(email) => Some(email.normalized().to_owned()),
            AssigneeTarget::Unassign => None,
        })
        .collect();
    let mut users_by_email: HashMap<String, Vec<i64>> = HashMap::new();
    let mut members: HashMap<i64, BTreeSet<i64>> = HashMap::new();
    if !emails.is_empty() && !groups.is_empty() {
        let owners = user_email::Entity::find()
            .filter(user_email::Column::EmailNormalized.is_in(emails))
            .filter(user_email::Column::Verified.eq(true))
            .all(txn)
            .await?;
        let active: BTreeSet<i64> = user::Entity::find()
            .filter(
                user::Column::Id.is_in(owners.iter().map(|o| o.user_id).collect::<BTreeSet<_>>()),
            )
            .filter(user::Column::Active.eq(true))
            .all(txn)
            .await?
            .into_iter()
            .map(|u| u.id)
            .collect();
        for owner in owners {
            if active.contains(&owner.user_id) {
                users_by_email
                    .entry(owner.email_normalized)
                    .or_default()
                    .push(owner.user_id);
            }
        }
        for candidates in users_by_email.values_mut() {
            candidates.sort_unstable();
            candidates.dedup();
        }
        let projects: BTreeSet<i64> = groups.values().map(|g| g.project_id).collect();
        let candidates: BTreeSet<i64> = users_by_email.values().flatten().copied().collect();
        if !candidates.is_empty() {
            for membership in project_member::Entity::find()
                .filter(project_member::Column::ProjectId.is_in(projects))
                .filter(project_member::Column::UserId.is_in(candidates))
                .all(txn)
                .await?
            {
                members
                    .entry(membership.project_id)
                    .or_default()
                    .insert(membership.user_id);
            }
        }
    }
    Ok(Snapshot {
        records,
        dirty_records: BTreeSet::new(),
        installations,
        links,
        groups,
        assignees,
        dirty_groups: BTreeSet::new(),
        users_by_email,
        members,
    })
}

/// What the group's calls write besides the snapshot, in call order.
#[derive(Default)]
struct Effects {
    /// Activity rows to insert.
    activities: Vec<activity::ActiveModel>,
    /// Notification drafts, each with the index in `activities` of the activity
    /// that caused it (its id is known only once the activities are inserted).
    notifications: Vec<(NotificationDraft, usize)>,
}

impl Effects {
    /// Queues an activity; returns its index.
    fn activity(&mut self, row: activity::ActiveModel) -> usize {
        self.activities.push(row);
        self.activities.len() - 1
    }

    /// Queues a notification to `recipient` about `group`, caused by the
    /// activity at index `activity`. Its activity id is a stand-in until the
    /// activities are inserted.
    fn notify(
        &mut self,
        notifier: &Notifier<'_>,
        group: &group::Model,
        recipient: i64,
        kind: NotificationKind,
        activity: usize,
    ) {
        let draft = notifier.draft(group, recipient, kind, ActivityId::from_row(0));
        self.notifications.push((draft, activity));
    }
}

/// Inserts activity rows with multi-row statements; returns their ids in the
/// rows' order.
///
/// The ids come back through `RETURNING`, whose row order neither SQLite nor
/// PostgreSQL promises. What both do promise is that one `INSERT … VALUES`
/// gives its rows ids in the order of the VALUES list: SQLite allocates each
/// rowid above the largest so far as it inserts the rows in order, and
/// PostgreSQL evaluates the id column's `nextval` per row in order, so a
/// statement's ids increase along its list even when other sessions take
/// numbers in between. So each statement's ids are sorted, not trusted in the
/// order returned.
async fn insert_activities(
    txn: &DatabaseTransaction,
    rows: Vec<activity::ActiveModel>,
) -> Result<Vec<ActivityId>, AssignmentError> {
    let mut ids = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut chunk_ids: Vec<i64> = activity::Entity::insert_many(chunk.to_vec())
            .exec_with_returning_keys(txn)
            .await?;
        if chunk_ids.len() != chunk.len() {
            return Err(AssignmentError::Corrupt(format!(
                "{} activities inserted, {} ids returned",
                chunk.len(),
                chunk_ids.len()
            )));
        }
        chunk_ids.sort_unstable();
        ids.extend(chunk_ids.into_iter().map(ActivityId::from_row));
    }
    Ok(ids)
}

/// Applies one call to the snapshot: its decisions, and the activities and
/// notifications they cause (queued in `effects`, written with the group).
fn apply(
    call: &AssigneeCall,
    snapshot: &mut Snapshot,
    effects: &mut Effects,
) -> Result<SyncResponse, AssignmentError> {
    let change = &call.change;
    let chosen = choose_records(&snapshot.records, &change.issue);
    let mut results = Vec::new();
    for chosen in chosen {
        let enabled = snapshot
            .installations
            .get(&(chosen.integration_id.clone(), chosen.organization_id))
            .is_some_and(|i| i.sync_reverse_assignment);
        let watermark = chosen.assignee_watermark;
        let verdict = if !enabled {
            Some(SyncOutcome::SyncDisabled)
        } else if matches!((change.provider_time, watermark), (Some(t), Some(w)) if t < w) {
            Some(SyncOutcome::Stale)
        } else {
            None
        };
        let record = snapshot
            .records
            .iter_mut()
            .find(|r| r.id == chosen.id)
            .ok_or_else(|| AssignmentError::Corrupt("a chosen record vanished".into()))?;
        // Learn the Jira id from the call when the record lacks it.
        if record.jira_issue_id.is_none()
            && let Some(id) = &change.issue.jira_issue_id
        {
            record.jira_issue_id = Some(id.as_str().to_owned());
            snapshot.dirty_records.insert(record.id);
        }
        if verdict.is_none()
            && let Some(time) = change.provider_time
            && watermark.is_none_or(|w| time > w)
        {
            record.assignee_watermark = Some(time);
            snapshot.dirty_records.insert(record.id);
        }
        let record = record.clone();
        let notifier = Notifier {
            issue_key: IssueKey::parse(&record.issue_key).ok(),
            integration_id: &change.issue.integration_id,
            traceparent: &change.traceparent,
        };
        let linked = snapshot.links.get(&record.id).cloned().unwrap_or_default();
        for group_id in linked {
            let Some(group) = snapshot.groups.get(&group_id).cloned() else {
                continue;
            };
            let current = snapshot.assignees.get(&group.id).copied();
            if let Some(verdict) = verdict {
                results.push(result(&group, verdict, current, None));
                continue;
            }
            let wanted = match &change.target {
                AssigneeTarget::Unassign => None,
                AssigneeTarget::Email(email) => {
                    let members = snapshot.members.get(&group.project_id);
                    let user = snapshot
                        .users_by_email
                        .get(email.normalized())
                        .and_then(|candidates| {
                            candidates
                                .iter()
                                .find(|u| members.is_some_and(|m| m.contains(u)))
                        })
                        .copied();
                    match user {
                        Some(user) => Some(user),
                        None => {
                            results.push(result(
                                &group,
                                SyncOutcome::NoMatchingUser,
                                current,
                                None,
                            ));
                            continue;
                        }
                    }
                }
            };
            if wanted == current {
                results.push(result(&group, SyncOutcome::Unchanged, current, None));
                continue;
            }
            let draft = |kind, user_id, previous_user_id| ActivityDraft {
                group: &group,
                kind,
                user_id,
                previous_user_id,
                source: &change.source,
                issue_key: &record.issue_key,
                request_id: call.request_id.as_ref(),
            };
            snapshot.dirty_groups.insert(group.id);
            match wanted {
                Some(user) => {
                    snapshot.assignees.insert(group.id, user);
                    let activity = effects.activity(activity_row(draft(
                        ActivityKind::Assigned,
                        Some(user),
                        current,
                    )));
                    if let Some(previous) = current {
                        effects.notify(
                            &notifier,
                            &group,
                            previous,
                            NotificationKind::Unassigned,
                            activity,
                        );
                    }
                    effects.notify(
                        &notifier,
                        &group,
                        user,
                        NotificationKind::Assigned,
                        activity,
                    );
                    results.push(result(&group, SyncOutcome::Assigned, Some(user), current));
                }
                None => {
                    let previous = current.unwrap_or_default();
                    snapshot.assignees.remove(&group.id);
                    let activity = effects.activity(activity_row(draft(
                        ActivityKind::Unassigned,
                        None,
                        Some(previous),
                    )));
                    effects.notify(
                        &notifier,
                        &group,
                        previous,
                        NotificationKind::Unassigned,
                        activity,
                    );
                    results.push(result(
                        &group,
                        SyncOutcome::Deassigned,
                        None,
                        Some(previous),
                    ));
                }
            }
        }
    }
    Ok(SyncResponse { results })
}

/// Writes back the records and assignees the calls changed.
async fn store(txn: &DatabaseTransaction, snapshot: &Snapshot) -> Result<(), AssignmentError> {
    let records: Vec<external_issue::ActiveModel> = snapshot
        .records
        .iter()
        .filter(|r| snapshot.dirty_records.contains(&r.id))
        // Every column is set: an upsert on the id rewrites the two that change.
        .map(|r| {
            sea_orm::ActiveModelTrait::reset_all(sea_orm::IntoActiveModel::into_active_model(
                r.clone(),
            ))
        })
        .collect();
    for chunk in records.chunks(ROWS_PER_STATEMENT) {
        external_issue::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::column(external_issue::Column::Id)
                    .update_columns([
                        external_issue::Column::JiraIssueId,
                        external_issue::Column::AssigneeWatermark,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
    }
    let dirty: Vec<i64> = snapshot.dirty_groups.iter().copied().collect();
    let assigned_at = service_runtime::time::now();
    for chunk in dirty.chunks(ROWS_PER_STATEMENT) {
        group_assignee::Entity::delete_many()
            .filter(group_assignee::Column::GroupId.is_in(chunk.to_vec()))
            .exec(txn)
            .await?;
        let rows: Vec<group_assignee::ActiveModel> = chunk
            .iter()
            .filter_map(|g| {
                snapshot
                    .assignees
                    .get(g)
                    .map(|user| group_assignee::ActiveModel {
                        group_id: sea_orm::ActiveValue::Set(*g),
                        user_id: sea_orm::ActiveValue::Set(*user),
                        assigned_at: sea_orm::ActiveValue::Set(assigned_at),
                    })
            })
            .collect();
        if !rows.is_empty() {
            group_assignee::Entity::insert_many(rows)
                .exec_without_returning(txn)
                .await?;
        }
    }
    Ok(())
}
