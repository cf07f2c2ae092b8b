//! SyncAssigneeInbound for many calls in one transaction (group commit).
//!
//! Calls are applied one after another, in the order given, exactly as if each
//! had its own transaction: the same locks, the same choice of records, users
//! and groups, the same watermarks (a later call sees what an earlier one did),
//! the same activities, notifications and responses. What changes is the number
//! of statements: everything the calls read is read once for the whole group
//! (records, installations, links, groups, assignees, users, memberships,
//! stored responses) into a [`Snapshot`], the decisions are taken in memory by
//! [`apply`] (a pure function of the snapshot and the call, tested below
//! without a database), and the writes go out as multi-row statements. On
//! SQLite every statement is a round trip to the connection's thread, so this,
//! not the work, decided the throughput (see docs/BENCHMARKS.md).
//!
//! A call whose request id was used before gets the stored response (or
//! ALREADY_EXISTS-like `RequestIdReused`) without being applied; two calls of
//! the group with one request id are applied once.

use std::collections::{BTreeSet, HashMap, HashSet};

use sea_orm::{
    ColumnTrait as _, DatabaseTransaction, EntityTrait as _, QueryFilter as _, QueryOrder as _,
    QuerySelect as _,
};
use service_runtime::database::{Database, plan_each_execution};
use service_runtime::idempotency::{self, IdempotencyKey};
use service_runtime::ids::{IntegrationId, RequestId};
use service_runtime::shapes::{in_list, in_list_pair, shaped_chunks};

use super::rule::{Direction, Event, admit};
use super::{AssigneeChange, AssigneeTarget, SyncResponse, origin, result};
use crate::domain::{ExternalIssueId, GroupId, OrganizationId, ProjectId, SyncOutcome, UserId};
use crate::error::AssignmentError;
use crate::external_issues::{
    IssueRecord, choose_records, lock_candidate_records, store_sync_state,
};
use crate::groups::effects::{Change, Effects, GroupFacts};
use crate::storage::entities::{
    group, group_assignee, group_link, installation, project_member, user, user_email,
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

/// A linked group, as assignee sync needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LinkedGroup {
    id: GroupId,
    organization_id: OrganizationId,
    project_id: ProjectId,
    title: String,
}

/// Everything the group's calls read, loaded once, and updated in memory as the
/// calls apply.
#[derive(Debug, Default)]
struct Snapshot {
    /// Candidate records (current state, watermarks included).
    records: Vec<IssueRecord>,
    /// Records changed by some call (to write back).
    dirty_records: BTreeSet<ExternalIssueId>,
    /// (integration, organization) pairs whose installation syncs assignees
    /// inbound.
    assignee_sync_on: HashSet<(IntegrationId, OrganizationId)>,
    /// Linked group ids by record, ascending.
    links: HashMap<ExternalIssueId, Vec<GroupId>>,
    /// Linked groups by id.
    groups: HashMap<GroupId, LinkedGroup>,
    /// Current assignee by group (updated as calls apply).
    assignees: HashMap<GroupId, UserId>,
    /// Groups whose assignee some call changed.
    dirty_groups: BTreeSet<GroupId>,
    /// Active users owning a verified address, by normalized address, ascending.
    users_by_email: HashMap<String, Vec<UserId>>,
    /// Members by project.
    members: HashMap<ProjectId, BTreeSet<UserId>>,
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
    // The group's statements come in fixed shapes, so PostgreSQL would soon
    // plan them once (generic plans), for the tables' size at the time.
    plan_each_execution(txn).await?;

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
    effects.write(txn).await?;
    let recorded: Vec<(&IdempotencyKey, &SyncResponse)> = to_apply
        .iter()
        .filter_map(|&i| match (&keys[i], &answers[i]) {
            (Some(key), Some(Ok(response))) => Some((key, response)),
            _ => None,
        })
        .collect();
    idempotency::record_many(txn, &recorded).await?;
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
    if issues.is_empty() {
        return Ok(Snapshot::default());
    }
    let records = lock_candidate_records(txn, &issues).await?;
    if records.is_empty() {
        return Ok(Snapshot::default());
    }
    let organizations: BTreeSet<i64> = records.iter().map(|r| r.organization_id.get()).collect();
    let integrations: BTreeSet<&str> = records.iter().map(|r| r.integration_id.as_str()).collect();
    let [integrations, organizations] = in_list_pair(integrations, organizations);
    let assignee_sync_on = installation::Entity::find()
        .filter(installation::Column::IntegrationId.is_in(integrations))
        .filter(installation::Column::OrganizationId.is_in(organizations))
        .filter(installation::Column::SyncReverseAssignment.eq(true))
        .all(txn)
        .await?
        .into_iter()
        .map(|i| {
            let integration = IntegrationId::parse(&i.integration_id)
                .map_err(|_| AssignmentError::Corrupt("installation integration id".into()))?;
            Ok((integration, OrganizationId::from_row(i.organization_id)))
        })
        .collect::<Result<HashSet<_>, AssignmentError>>()?;

    let record_ids: Vec<i64> = records.iter().map(|r| r.id.get()).collect();
    let mut links: HashMap<ExternalIssueId, Vec<GroupId>> = HashMap::new();
    let mut group_ids = BTreeSet::new();
    for chunk in record_ids.chunks(ROWS_PER_STATEMENT) {
        for link in group_link::Entity::find()
            .filter(group_link::Column::ExternalIssueId.is_in(in_list(chunk.to_vec())))
            .all(txn)
            .await?
        {
            links
                .entry(ExternalIssueId::from_row(link.external_issue_id))
                .or_default()
                .push(GroupId::from_row(link.group_id));
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
                .filter(group::Column::Id.is_in(in_list(chunk.to_vec())))
                .order_by_asc(group::Column::Id)
                .lock_exclusive()
                .all(txn)
                .await?
                .into_iter()
                .map(|g| {
                    let id = GroupId::from_row(g.id);
                    (
                        id,
                        LinkedGroup {
                            id,
                            organization_id: OrganizationId::from_row(g.organization_id),
                            project_id: ProjectId::from_row(g.project_id),
                            title: g.title,
                        },
                    )
                }),
        );
        assignees.extend(
            group_assignee::Entity::find()
                .filter(group_assignee::Column::GroupId.is_in(in_list(chunk.to_vec())))
                .all(txn)
                .await?
                .into_iter()
                .map(|a| (GroupId::from_row(a.group_id), UserId::from_row(a.user_id))),
        );
    }

    let emails: BTreeSet<String> = indices
        .iter()
        .filter_map(|&i| match &calls[i].change.target {
            AssigneeTarget::Email(email) => Some(email.normalized().to_owned()),
            AssigneeTarget::Unassign => None,
        })
        .collect();
    let mut users_by_email: HashMap<String, Vec<UserId>> = HashMap::new();
    let mut members: HashMap<ProjectId, BTreeSet<UserId>> = HashMap::new();
    if !emails.is_empty() && !groups.is_empty() {
        let owners = user_email::Entity::find()
            .filter(user_email::Column::EmailNormalized.is_in(in_list(emails)))
            .filter(user_email::Column::Verified.eq(true))
            .all(txn)
            .await?;
        let active: BTreeSet<i64> = user::Entity::find()
            .filter(user::Column::Id.is_in(in_list(
                owners.iter().map(|o| o.user_id).collect::<BTreeSet<_>>(),
            )))
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
                    .push(UserId::from_row(owner.user_id));
            }
        }
        for candidates in users_by_email.values_mut() {
            candidates.sort_unstable();
            candidates.dedup();
        }
        let projects: BTreeSet<i64> = groups.values().map(|g| g.project_id.get()).collect();
        let candidates: BTreeSet<i64> =
            users_by_email.values().flatten().map(|u| u.get()).collect();
        if !candidates.is_empty() {
            let [projects, candidates] = in_list_pair(projects, candidates);
            for membership in project_member::Entity::find()
                .filter(project_member::Column::ProjectId.is_in(projects))
                .filter(project_member::Column::UserId.is_in(candidates))
                .all(txn)
                .await?
            {
                members
                    .entry(ProjectId::from_row(membership.project_id))
                    .or_default()
                    .insert(UserId::from_row(membership.user_id));
            }
        }
    }
    Ok(Snapshot {
        records,
        dirty_records: BTreeSet::new(),
        assignee_sync_on,
        links,
        groups,
        assignees,
        dirty_groups: BTreeSet::new(),
        users_by_email,
        members,
    })
}

/// Applies one call to the snapshot: its decisions (per record the sync rule,
/// per linked group the assignee), recording the changes they make in
/// `effects`. Pure: no I/O.
fn apply(
    call: &AssigneeCall,
    snapshot: &mut Snapshot,
    effects: &mut Effects,
) -> Result<SyncResponse, AssignmentError> {
    let change = &call.change;
    let event = Event {
        direction: Direction::Assignee,
        provider_time: change.provider_time,
        jira_issue_id: change.issue.jira_issue_id.as_ref(),
    };
    let chosen: Vec<ExternalIssueId> = choose_records(&snapshot.records, &change.issue)
        .iter()
        .map(|r| r.id)
        .collect();
    let mut results = Vec::new();
    for id in chosen {
        let record = snapshot
            .records
            .iter_mut()
            .find(|r| r.id == id)
            .ok_or_else(|| AssignmentError::Corrupt("a chosen record vanished".into()))?;
        let enabled = snapshot
            .assignee_sync_on
            .contains(&(record.integration_id.clone(), record.organization_id));
        let admission = admit(record, enabled, &event);
        if admission.changed {
            snapshot.dirty_records.insert(id);
        }
        let origin = origin(
            record,
            &change.issue,
            &change.source,
            call.request_id.as_ref(),
            &change.traceparent,
        );
        let linked = snapshot.links.get(&id).cloned().unwrap_or_default();
        for group_id in linked {
            let Some(group) = snapshot.groups.get(&group_id) else {
                continue;
            };
            let current = snapshot.assignees.get(&group_id).copied();
            let outcome =
                |outcome, user| result(group.organization_id, group_id, outcome, user, None);
            if let Some(verdict) = admission.verdict {
                results.push(outcome(verdict, current));
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
                            results.push(outcome(SyncOutcome::NoMatchingUser, current));
                            continue;
                        }
                    }
                }
            };
            let facts = GroupFacts {
                id: group_id,
                organization_id: group.organization_id,
                title: &group.title,
            };
            match (wanted, current) {
                (wanted, current) if wanted == current => {
                    results.push(outcome(SyncOutcome::Unchanged, current));
                }
                (Some(user), previous) => {
                    effects.record(facts, Change::Assigned { user, previous }, &origin);
                    results.push(result(
                        group.organization_id,
                        group_id,
                        SyncOutcome::Assigned,
                        Some(user),
                        previous,
                    ));
                    snapshot.assignees.insert(group_id, user);
                    snapshot.dirty_groups.insert(group_id);
                }
                (None, Some(previous)) => {
                    effects.record(facts, Change::Unassigned { previous }, &origin);
                    results.push(result(
                        group.organization_id,
                        group_id,
                        SyncOutcome::Deassigned,
                        None,
                        Some(previous),
                    ));
                    snapshot.assignees.remove(&group_id);
                    snapshot.dirty_groups.insert(group_id);
                }
                (None, None) => results.push(outcome(SyncOutcome::Unchanged, None)),
            }
        }
    }
    Ok(SyncResponse { results })
}

/// Writes back the records and assignees the calls changed.
async fn store(txn: &DatabaseTransaction, snapshot: &Snapshot) -> Result<(), AssignmentError> {
    let records: Vec<IssueRecord> = snapshot
        .records
        .iter()
        .filter(|r| snapshot.dirty_records.contains(&r.id))
        .cloned()
        .collect();
    store_sync_state(txn, &records).await?;
    let dirty: Vec<i64> = snapshot.dirty_groups.iter().map(|g| g.get()).collect();
    let assigned_at = service_runtime::time::now();
    for chunk in dirty.chunks(ROWS_PER_STATEMENT) {
        group_assignee::Entity::delete_many()
            .filter(group_assignee::Column::GroupId.is_in(in_list(chunk.to_vec())))
            .exec(txn)
            .await?;
    }
    let rows: Vec<group_assignee::ActiveModel> = dirty
        .iter()
        .filter_map(|&g| {
            snapshot
                .assignees
                .get(&GroupId::from_row(g))
                .map(|user| group_assignee::ActiveModel {
                    group_id: sea_orm::ActiveValue::Set(g),
                    user_id: sea_orm::ActiveValue::Set(user.get()),
                    assigned_at: sea_orm::ActiveValue::Set(assigned_at),
                })
        })
        .collect();
    for chunk in shaped_chunks(&rows, ROWS_PER_STATEMENT) {
        group_assignee::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! [`apply`] on a hand-built snapshot: calls in order in, outcomes and
    //! writes out.

    use chrono::{DateTime, TimeZone as _, Utc};
    use service_runtime::ids::{IssueKey, JiraIssueId};

    use super::*;
    use crate::domain::{Email, NotificationKind};
    use crate::external_issues::IssueRef;

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, minute, 0)
            .single()
            .expect("valid time")
    }

    fn acme() -> IntegrationId {
        IntegrationId::parse("acme").expect("id")
    }

    fn record(id: i64, org: i64, key: &str, jira_id: Option<&str>) -> IssueRecord {
        IssueRecord {
            id: ExternalIssueId::from_row(id),
            organization_id: OrganizationId::from_row(org),
            integration_id: acme(),
            key: IssueKey::parse(key).expect("key"),
            jira_issue_id: jira_id.map(|j| JiraIssueId::parse(j).expect("id")),
            assignee_watermark: None,
            status_watermark: None,
        }
    }

    fn group(id: i64, org: i64, project: i64) -> (GroupId, LinkedGroup) {
        let id = GroupId::from_row(id);
        (
            id,
            LinkedGroup {
                id,
                organization_id: OrganizationId::from_row(org),
                project_id: ProjectId::from_row(project),
                title: format!("group {id}"),
            },
        )
    }

    fn users(ids: &[i64]) -> Vec<UserId> {
        ids.iter().map(|&u| UserId::from_row(u)).collect()
    }

    /// Organization 1 syncs assignees and links APP-1 (Jira id 101) to groups
    /// 100 (project 1000) and 101 (project 1001); organization 2 does not sync
    /// and links APP-1 to group 200. Jess (1) has access to project 1000, Kate
    /// (2) to both; user 3 shares Kate's address but has no access.
    fn world() -> Snapshot {
        let gid = GroupId::from_row;
        Snapshot {
            records: vec![
                record(10, 1, "APP-1", Some("101")),
                record(20, 2, "APP-1", None),
            ],
            assignee_sync_on: HashSet::from([(acme(), OrganizationId::from_row(1))]),
            links: HashMap::from([
                (ExternalIssueId::from_row(10), vec![gid(100), gid(101)]),
                (ExternalIssueId::from_row(20), vec![gid(200)]),
            ]),
            groups: HashMap::from([
                group(100, 1, 1000),
                group(101, 1, 1001),
                group(200, 2, 2000),
            ]),
            users_by_email: HashMap::from([
                ("jess@x.io".to_owned(), users(&[1])),
                ("kate@x.io".to_owned(), users(&[2, 3])),
            ]),
            members: HashMap::from([
                (
                    ProjectId::from_row(1000),
                    users(&[1, 2]).into_iter().collect(),
                ),
                (ProjectId::from_row(1001), users(&[2]).into_iter().collect()),
            ]),
            ..Snapshot::default()
        }
    }

    fn call(
        target: Option<&str>,
        minute: Option<u32>,
        key: Option<&str>,
        id: Option<&str>,
    ) -> AssigneeCall {
        AssigneeCall {
            change: AssigneeChange {
                issue: IssueRef {
                    integration_id: acme(),
                    key: key.map(|k| IssueKey::parse(k).expect("key")),
                    jira_issue_id: id.map(|j| JiraIssueId::parse(j).expect("id")),
                },
                target: target.map_or(AssigneeTarget::Unassign, |e| {
                    AssigneeTarget::Email(Email::parse(e).expect("email"))
                }),
                provider_time: minute.map(at),
                source: acme(),
                traceparent: String::new(),
            },
            request_id: None,
        }
    }

    fn assign(email: &str, minute: u32) -> AssigneeCall {
        call(Some(email), Some(minute), Some("APP-1"), None)
    }

    /// A step: its name, the call, the outcome per linked group, and who it
    /// tells what.
    type Step = (
        &'static str,
        AssigneeCall,
        Vec<(i64, SyncOutcome)>,
        Vec<(i64, NotificationKind)>,
    );

    /// Calls applied one after another on one snapshot.
    #[test]
    fn calls_apply_in_order() {
        use NotificationKind as N;
        use SyncOutcome::*;
        let unassign = call(None, Some(8), Some("APP-1"), None);
        #[rustfmt::skip]
        let steps: Vec<Step> = vec![
            ("first assign", assign("jess@x.io", 5),
             vec![(100, Assigned), (101, NoMatchingUser), (200, SyncDisabled)], vec![(1, N::Assigned)]),
            ("equal time, same user, other case", assign("JESS@x.io", 5),
             vec![(100, Unchanged), (101, NoMatchingUser), (200, SyncDisabled)], vec![]),
            ("older event", assign("kate@x.io", 4),
             vec![(100, Stale), (101, Stale), (200, SyncDisabled)], vec![]),
            ("reassign: lowest id with access", assign("kate@x.io", 6),
             vec![(100, Assigned), (101, Assigned), (200, SyncDisabled)],
             vec![(1, N::Unassigned), (2, N::Assigned), (2, N::Assigned)]),
            ("nobody matches", assign("nobody@x.io", 7),
             vec![(100, NoMatchingUser), (101, NoMatchingUser), (200, SyncDisabled)], vec![]),
            ("unassign", unassign.clone(),
             vec![(100, Deassigned), (101, Deassigned), (200, SyncDisabled)],
             vec![(2, N::Unassigned), (2, N::Unassigned)]),
            ("unassign again", unassign,
             vec![(100, Unchanged), (101, Unchanged), (200, SyncDisabled)], vec![]),
        ];
        let mut snapshot = world();
        let mut effects = Effects::default();
        for (name, call, outcomes, told) in steps {
            let before = effects.told().len();
            let response = apply(&call, &mut snapshot, &mut effects).expect("applies");
            let got: Vec<(i64, SyncOutcome)> = response
                .results
                .iter()
                .map(|r| (r.group_id.get(), r.outcome))
                .collect();
            assert_eq!(got, outcomes, "{name}: outcomes");
            assert_eq!(effects.told()[before..], told[..], "{name}: notifications");
        }
        // Writes: both groups of organization 1 changed and end unassigned; its
        // record's watermark is the newest applied event's; organization 2's
        // record was not touched.
        assert_eq!(
            snapshot.dirty_groups,
            BTreeSet::from([GroupId::from_row(100), GroupId::from_row(101)])
        );
        assert!(snapshot.assignees.is_empty());
        assert_eq!(snapshot.records[0].assignee_watermark, Some(at(8)));
        assert_eq!(
            snapshot.dirty_records,
            BTreeSet::from([ExternalIssueId::from_row(10)])
        );
        use crate::domain::ActivityKind as A;
        assert_eq!(
            effects.recorded(),
            vec![
                (A::Assigned, Some(1), None),
                (A::Assigned, Some(2), Some(1)),
                (A::Assigned, Some(2), None),
                (A::Unassigned, None, Some(2)),
                (A::Unassigned, None, Some(2)),
            ]
        );
    }

    /// A call naming the issue by Jira id reaches a record linked by key only
    /// once that record learned the id (from a call carrying both), and then
    /// still finds it after the key changed.
    #[test]
    fn records_learn_jira_ids_and_are_found_by_them() {
        let mut snapshot = world();
        let mut effects = Effects::default();
        let by_id = |minute| call(Some("jess@x.io"), Some(minute), Some("NEW-9"), Some("202"));
        let first = apply(&by_id(1), &mut snapshot, &mut effects).expect("applies");
        assert!(first.results.is_empty(), "nothing has learned id 202 yet");
        let both = call(Some("jess@x.io"), Some(2), Some("APP-1"), Some("202"));
        apply(&both, &mut snapshot, &mut effects).expect("applies");
        assert_eq!(
            snapshot.records[1]
                .jira_issue_id
                .as_ref()
                .map(JiraIssueId::as_str),
            Some("202"),
            "organization 2's record learned the id although its sync is off"
        );
        assert_eq!(
            snapshot.records[0]
                .jira_issue_id
                .as_ref()
                .map(JiraIssueId::as_str),
            Some("101"),
            "a known id is kept"
        );
        let again = apply(&by_id(3), &mut snapshot, &mut effects).expect("applies");
        let groups: Vec<i64> = again.results.iter().map(|r| r.group_id.get()).collect();
        assert_eq!(groups, vec![200], "found by id under another key");
    }
}
