//! Group participants: the users who follow a group and are told of its
//! assignment and status changes besides its assignee (Sentry's "participants").
//!
//! A user follows a group by subscribing ([`subscribe`]), or by being assigned
//! it: [`super::effects`] subscribes every new assignee in the assigning
//! transaction, and an unassigned user keeps following. Following is a plain
//! row per (group, user); subscribing twice or unsubscribing a non-follower
//! changes nothing. Only a user who could be assigned the group (active, with
//! access to its project) may subscribe, and only such a user is told: a
//! follower who is deactivated or loses access stays listed but is not told
//! until that is undone.
//!
//! A group has at most [`MAX_PARTICIPANTS`] followers; subscribing beyond is
//! refused, and a new assignee of a full group is told as assignee but not
//! added.

use std::collections::{BTreeSet, HashMap};

use sea_orm::sea_query::{Expr, ExprTrait as _, OnConflict, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait as _, ConnectionTrait, DatabaseTransaction, EntityTrait as _,
    PaginatorTrait as _, QueryFilter as _, QueryOrder as _, QuerySelect as _,
    TransactionTrait as _,
};
use service_runtime::database::Database;
use service_runtime::pagination::PageRequest;
use service_runtime::shapes::{in_list, shaped_chunks};
use service_runtime::time::now;

use crate::domain::records::{Page, Participant};
use crate::domain::{GroupId, ParticipantReason, UserId};
use crate::error::{AssignmentError, Reason, Refusal};
use crate::storage::entities::{group, group_participant, project_member, user};

/// The most users that may follow one group (explicit subscriptions and
/// assignees together): it bounds what one change fans out to.
pub const MAX_PARTICIPANTS: u64 = 1000;

/// Whether a subscribe or unsubscribe changed anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Followed {
    /// False when the user already was (or was not) following.
    pub changed: bool,
}

fn not_found(resource: &'static str, id: impl std::fmt::Display) -> AssignmentError {
    AssignmentError::NotFound {
        resource,
        id: id.to_string(),
    }
}

/// Subscribes `user_id` to `group_id`. A user already following (for any
/// reason) stays as they are.
///
/// # Errors
/// NOT_FOUND (group or user); FAILED_PRECONDITION `PARTICIPANT_NOT_ELIGIBLE`
/// (`why`: `inactive`, `no_project_access`) or `PARTICIPANT_LIMIT_REACHED`;
/// database errors.
pub async fn subscribe(
    db: &Database,
    group_id: GroupId,
    user_id: UserId,
) -> Result<Followed, AssignmentError> {
    let txn = db.conn().begin().await?;
    let group = group::Entity::find_by_id(group_id.get())
        .lock_exclusive()
        .one(&txn)
        .await?
        .ok_or_else(|| not_found("group", group_id))?;
    if find(&txn, group_id, user_id).await?.is_some() {
        return Ok(Followed { changed: false });
    }
    let user = user::Entity::find_by_id(user_id.get())
        .one(&txn)
        .await?
        .ok_or_else(|| not_found("user", user_id))?;
    let not_eligible = |why: &str, message: String| -> AssignmentError {
        Refusal::new(Reason::ParticipantNotEligible, message)
            .with("why", why)
            .with("user_id", user_id.to_string())
            .into()
    };
    if !user.active {
        return Err(not_eligible(
            "inactive",
            format!("user {user_id} is inactive and cannot follow a group"),
        ));
    }
    let member = project_member::Entity::find()
        .filter(project_member::Column::ProjectId.eq(group.project_id))
        .filter(project_member::Column::UserId.eq(user_id.get()))
        .one(&txn)
        .await?;
    if member.is_none() {
        return Err(not_eligible(
            "no_project_access",
            format!(
                "user {user_id} has no access to project {} of group {group_id}; grant it first (DirectoryService.GrantProjectAccess)",
                group.project_id
            ),
        ));
    }
    let count = group_participant::Entity::find()
        .filter(group_participant::Column::GroupId.eq(group_id.get()))
        .count(&txn)
        .await?;
    if count >= MAX_PARTICIPANTS {
        return Err(Refusal::new(
            Reason::ParticipantLimitReached,
            format!("group {group_id} already has {MAX_PARTICIPANTS} participants"),
        )
        .with("limit", MAX_PARTICIPANTS.to_string())
        .into());
    }
    group_participant::Entity::insert(group_participant::ActiveModel {
        group_id: Set(group_id.get()),
        user_id: Set(user_id.get()),
        reason: Set(ParticipantReason::Subscribed.as_str().to_owned()),
        created_at: Set(now()),
    })
    .on_conflict(already_following())
    .exec_without_returning(&txn)
    .await?;
    txn.commit().await?;
    Ok(Followed { changed: true })
}

/// Stops `user_id` following `group_id`, whatever the reason they followed.
///
/// # Errors
/// NOT_FOUND (group or user); database errors.
pub async fn unsubscribe(
    db: &Database,
    group_id: GroupId,
    user_id: UserId,
) -> Result<Followed, AssignmentError> {
    if group::Entity::find_by_id(group_id.get())
        .one(db.conn())
        .await?
        .is_none()
    {
        return Err(not_found("group", group_id));
    }
    if user::Entity::find_by_id(user_id.get())
        .one(db.conn())
        .await?
        .is_none()
    {
        return Err(not_found("user", user_id));
    }
    let deleted = group_participant::Entity::delete_many()
        .filter(group_participant::Column::GroupId.eq(group_id.get()))
        .filter(group_participant::Column::UserId.eq(user_id.get()))
        .exec(db.conn())
        .await?;
    Ok(Followed {
        changed: deleted.rows_affected > 0,
    })
}

/// Lists a group's participants by ascending user id.
///
/// # Errors
/// NOT_FOUND (group); database errors.
pub async fn list(
    db: &Database,
    group_id: GroupId,
    page: &PageRequest<i64>,
) -> Result<Page<Participant>, AssignmentError> {
    if group::Entity::find_by_id(group_id.get())
        .one(db.conn())
        .await?
        .is_none()
    {
        return Err(not_found("group", group_id));
    }
    let mut rows = group_participant::Entity::find()
        .filter(group_participant::Column::GroupId.eq(group_id.get()))
        .filter(group_participant::Column::UserId.gt(page.after.unwrap_or(0)))
        .order_by_asc(group_participant::Column::UserId)
        .limit(page.fetch_limit())
        .all(db.conn())
        .await?;
    let next_page_token = page.finish(&mut rows, |r| r.user_id);
    Ok(Page {
        items: rows
            .into_iter()
            .map(|r| {
                Ok(Participant {
                    user_id: UserId::from_row(r.user_id),
                    reason: ParticipantReason::from_stored(&r.reason).ok_or_else(|| {
                        AssignmentError::Corrupt(format!("participant reason {:?}", r.reason))
                    })?,
                    since: r.created_at,
                })
            })
            .collect::<Result<_, AssignmentError>>()?,
        next_page_token,
    })
}

async fn find<C: ConnectionTrait>(
    conn: &C,
    group_id: GroupId,
    user_id: UserId,
) -> Result<Option<group_participant::Model>, AssignmentError> {
    Ok(
        group_participant::Entity::find_by_id((group_id.get(), user_id.get()))
            .one(conn)
            .await?,
    )
}

/// The participants of some groups, as [`super::effects`] needs them.
#[derive(Debug, Default)]
pub(crate) struct Followers {
    /// Each group's followers, by ascending user id, with whether they may be
    /// told (active, with access to the group's project).
    by_group: HashMap<i64, Vec<(UserId, bool)>>,
}

impl Followers {
    /// Reads the participants of `groups`, in one statement.
    pub(crate) async fn load(
        txn: &DatabaseTransaction,
        groups: BTreeSet<i64>,
    ) -> Result<Self, AssignmentError> {
        if groups.is_empty() {
            return Ok(Self::default());
        }
        let gp = group_participant::Entity;
        let select = Query::select()
            .column((gp, group_participant::Column::GroupId))
            .column((gp, group_participant::Column::UserId))
            .column((user::Entity, user::Column::Active))
            .expr_as(
                Expr::col((project_member::Entity, project_member::Column::UserId)),
                "member",
            )
            .from(gp)
            .inner_join(
                group::Entity,
                Expr::col((group::Entity, group::Column::Id))
                    .equals((gp, group_participant::Column::GroupId)),
            )
            .left_join(
                user::Entity,
                Expr::col((user::Entity, user::Column::Id))
                    .equals((gp, group_participant::Column::UserId)),
            )
            .left_join(
                project_member::Entity,
                Expr::col((project_member::Entity, project_member::Column::ProjectId))
                    .equals((group::Entity, group::Column::ProjectId))
                    .and(
                        Expr::col((project_member::Entity, project_member::Column::UserId))
                            .equals((gp, group_participant::Column::UserId)),
                    ),
            )
            .and_where(Expr::col((gp, group_participant::Column::GroupId)).is_in(in_list(groups)))
            .order_by((gp, group_participant::Column::UserId), sea_orm::Order::Asc)
            .to_owned();
        let statement = txn.get_database_backend().build(&select);
        let mut by_group: HashMap<i64, Vec<(UserId, bool)>> = HashMap::new();
        for row in txn.query_all_raw(statement).await? {
            let group: i64 = row.try_get("", "group_id")?;
            let user: i64 = row.try_get("", "user_id")?;
            let active: Option<bool> = row.try_get("", "active")?;
            let member: Option<i64> = row.try_get("", "member")?;
            by_group.entry(group).or_default().push((
                UserId::from_row(user),
                active == Some(true) && member.is_some(),
            ));
        }
        Ok(Self { by_group })
    }

    /// The followers of `group` who may be told.
    pub(crate) fn to_tell(&self, group: GroupId) -> impl Iterator<Item = UserId> + '_ {
        self.by_group
            .get(&group.get())
            .into_iter()
            .flatten()
            .filter(|(_, tell)| *tell)
            .map(|(user, _)| *user)
    }

    /// Records `user` as following `group` from now on (a new assignee);
    /// returns whether they were added (false when already following, or
    /// the group is full).
    pub(crate) fn add(&mut self, group: GroupId, user: UserId) -> bool {
        let followers = self.by_group.entry(group.get()).or_default();
        if followers.iter().any(|(u, _)| *u == user) || followers.len() as u64 >= MAX_PARTICIPANTS {
            return false;
        }
        // A new assignee is told of the group's changes as assignee anyway.
        followers.push((user, true));
        true
    }
}

/// Makes `pairs` (group, new assignee) followers, in `txn`; a pair already
/// following stays as it is.
pub(crate) async fn add_assignees(
    txn: &DatabaseTransaction,
    pairs: &[(GroupId, UserId)],
) -> Result<(), AssignmentError> {
    if pairs.is_empty() {
        return Ok(());
    }
    let created_at = now();
    let rows: Vec<group_participant::ActiveModel> = pairs
        .iter()
        .map(|(group, user)| group_participant::ActiveModel {
            group_id: Set(group.get()),
            user_id: Set(user.get()),
            reason: Set(ParticipantReason::Assignee.as_str().to_owned()),
            created_at: Set(created_at),
        })
        .collect();
    for chunk in shaped_chunks(&rows, ROWS_PER_INSERT) {
        group_participant::Entity::insert_many(chunk.to_vec())
            .on_conflict(already_following())
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}

/// Rows per multi-row insert (well under both engines' parameter limits).
const ROWS_PER_INSERT: usize = 256;

/// Inserting a participant who already follows the group leaves the row as
/// it is (its first reason stays).
fn already_following() -> OnConflict {
    OnConflict::columns([
        group_participant::Column::GroupId,
        group_participant::Column::UserId,
    ])
    .do_nothing()
    .to_owned()
}
