//! Applying one stored delivery: what Sentry's `handle_assignee_change` and
//! `handle_status_change` do, through the assignment service.
//!
//! - A move (changelog `Key` item) is recorded first, so the rest reaches the
//!   groups under the new key.
//! - Assignee: the issue's current snapshot decides, not the changelog's `to`.
//!   Nobody → unassign. An address → assign. A hidden address → one call to the
//!   e-mail API when the integration allows it; still none → nothing changes, and
//!   the delivery's outcome says why (never unassign because an address is
//!   hidden).
//! - Status: only a move into or out of Jira's done category acts (into → resolve,
//!   out of → reopen). Categories come from `GET /rest/api/2/status`, cached per
//!   integration and refreshed when an unknown status id appears; a status id
//!   Jira does not list is matched by name as a last resort.
//!
//! - Echoes: when the change is one this tracker sent to Jira (outbound sync)
//!   and a newer local change of the issue still waits to be sent, it is not
//!   applied (see [`crate::outbound`]); otherwise it is applied as usual.
//!
//! Every call carries a request id derived from the delivery, so a redelivered
//! or retried delivery changes nothing twice.

use std::sync::Arc;
use std::time::Duration;

use service_runtime::database::Database;
use service_runtime::ids::{IntegrationId, RequestId};

use crate::assignment_client::{AssignmentClient, CallContext, CallError};
use crate::cache::{METADATA_CACHE_CAPACITY, TtlCache};
use crate::domain::Integration;
use crate::domain::delivery::{
    AssigneeSnapshot, Classified, DeliveryAction, DeliveryRecord, IssueEvent, classify,
};
use crate::domain::sync::{
    AssigneeSync, AssigneeTarget, DeleteSync, IssueRef, MoveSync, StatusAction, StatusSync,
};
use crate::error::TrackerError;
use crate::integrations::IntegrationCache;
use crate::jira::model::Status;
use crate::jira::{JiraClient, JiraError};
use crate::outbound::store::{self as outbound, Echo};

/// Why a delivery could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// Worth retrying later.
    #[error("{0}")]
    Transient(String),
    /// Will not succeed as is; an operator may retry it after fixing the cause.
    #[error("{0}")]
    Permanent(String),
}

/// Whether to apply a change Jira reports (see [`Applier::echo`]).
enum EchoCheck {
    /// Apply it; the note (possibly empty) goes into the action's summary.
    Apply(String),
    /// Do not apply it: the reason is among the actions already.
    Skip,
}

impl From<CallError> for ApplyError {
    fn from(error: CallError) -> Self {
        match &error {
            CallError::Transient(_) => Self::Transient(error.to_string()),
            CallError::Permanent(_) => Self::Permanent(error.to_string()),
        }
    }
}

impl From<TrackerError> for ApplyError {
    fn from(error: TrackerError) -> Self {
        match error {
            TrackerError::NotFound { .. } => Self::Permanent(error.to_string()),
            TrackerError::Database(_) => Self::Transient(error.to_string()),
            other => Self::Permanent(other.to_string()),
        }
    }
}

/// How long a status list is reused before an unknown id triggers a refresh.
const STATUS_REFRESH_AFTER: Duration = Duration::from_secs(10);

/// Applies deliveries; cheap to clone.
#[derive(Debug, Clone)]
pub struct Applier {
    db: Database,
    integrations: IntegrationCache,
    jira: JiraClient,
    assignment: AssignmentClient,
    statuses: Arc<TtlCache<IntegrationId, Vec<Status>>>,
}

fn issue_ref(integration: &Integration, event: &IssueEvent) -> IssueRef {
    IssueRef {
        integration_id: integration.id.clone(),
        key: event.key.clone(),
        jira_issue_id: event.jira_issue_id.clone(),
    }
}

impl Applier {
    /// An applier over its dependencies.
    pub fn new(
        db: Database,
        integrations: IntegrationCache,
        jira: JiraClient,
        assignment: AssignmentClient,
        status_ttl: Duration,
    ) -> Self {
        Self {
            db,
            integrations,
            jira,
            assignment,
            statuses: Arc::new(TtlCache::new(status_ttl, METADATA_CACHE_CAPACITY)),
        }
    }

    /// Applies a delivery; on failure also returns the actions already taken.
    ///
    /// # Errors
    /// Why it could not be applied (and what was done before).
    pub async fn apply(
        &self,
        row: &DeliveryRecord,
    ) -> Result<Vec<DeliveryAction>, (ApplyError, Vec<DeliveryAction>)> {
        let mut actions = Vec::new();
        match self.apply_into(row, &mut actions).await {
            Ok(()) => Ok(actions),
            Err(error) => Err((error, actions)),
        }
    }

    async fn apply_into(
        &self,
        row: &DeliveryRecord,
        actions: &mut Vec<DeliveryAction>,
    ) -> Result<(), ApplyError> {
        let integration = self.integrations.load(&row.integration_id).await?;
        let event = match classify(row.body.as_bytes()) {
            Ok(Classified::Actionable(event)) => event,
            Ok(Classified::Ignored(ignored)) => {
                actions.push(DeliveryAction {
                    summary: format!("nothing to do: {}", ignored.reason),
                    group_effects: Vec::new(),
                });
                return Ok(());
            }
            Err(error) => return Err(ApplyError::Permanent(error.to_string())),
        };
        let context = CallContext {
            traceparent: row.traceparent.clone(),
        };
        let request_id = |action: &str| {
            RequestId::derived(&[row.integration_id.as_str(), &row.delivery_key, action])
        };
        if event.deleted {
            let sync = DeleteSync {
                issue: issue_ref(&integration, &event),
                request_id: request_id("delete"),
            };
            let retired = self.assignment.delete_issue(&sync, &context).await?;
            let groups: usize = retired.iter().map(|r| r.unlinked_group_ids.len()).sum();
            actions.push(DeliveryAction {
                summary: if retired.is_empty() {
                    "deleted in Jira: no organization had the issue linked; nothing to do".into()
                } else {
                    format!(
                        "deleted in Jira: unlinked {groups} group(s) in {} organization(s) and retired their records",
                        retired.len()
                    )
                },
                group_effects: Vec::new(),
            });
            return Ok(());
        }

        if let (Some(previous), Some(new_key)) = (event.moved_from(), event.key.as_ref())
            && previous != new_key.as_str()
        {
            // A previous key Jira sends that is not a valid key cannot find a
            // record; the Jira id still can.
            let sync = MoveSync {
                issue: IssueRef {
                    integration_id: integration.id.clone(),
                    key: service_runtime::ids::IssueKey::parse(&previous).ok(),
                    jira_issue_id: event.jira_issue_id.clone(),
                },
                new_key: new_key.clone(),
                request_id: request_id("move"),
            };
            let moved = self.assignment.move_issue(&sync, &context).await?;
            actions.push(DeliveryAction {
                summary: format!(
                    "moved {previous} to {new_key} ({moved} linked record(s) updated)"
                ),
                group_effects: Vec::new(),
            });
        }

        if event.change("assignee").is_some() {
            self.apply_assignee(
                &integration,
                &event,
                &context,
                request_id("assignee"),
                actions,
            )
            .await?;
        }
        if event.change("status").is_some() {
            self.apply_status(
                &integration,
                &event,
                &context,
                request_id("status"),
                actions,
            )
            .await?;
        }
        if actions.is_empty() {
            actions.push(DeliveryAction {
                summary: "no assignee, status or key change: nothing to do".into(),
                group_effects: Vec::new(),
            });
        }
        Ok(())
    }

    /// Whether the event's change of `direction` is Jira reporting what an
    /// outbound sync sent (`value`: the account id, user name or status id
    /// now shown), and whether to apply it.
    async fn echo(
        &self,
        integration: &Integration,
        event: &IssueEvent,
        direction: crate::domain::outbound::Direction,
        value: &str,
        actions: &mut Vec<DeliveryAction>,
    ) -> Result<EchoCheck, ApplyError> {
        let mut keys = Vec::new();
        if let Some(id) = &event.jira_issue_id {
            keys.push(format!("{}:id:{}", direction.as_str(), id.as_str()));
        }
        if let Some(key) = &event.key {
            keys.push(format!("{}:key:{}", direction.as_str(), key.as_str()));
        }
        match outbound::recognise_echo(&self.db, &integration.id, &keys, value).await? {
            Echo::NotOurs => Ok(EchoCheck::Apply(String::new())),
            Echo::Ours { id } => Ok(EchoCheck::Apply(format!(
                " (Jira reporting outbound sync {id})"
            ))),
            Echo::Overtaken { id, newer } => {
                actions.push(DeliveryAction {
                    summary: format!(
                        "{}: Jira reporting outbound sync {id}, while a newer local change (outbound sync {newer}) waits to be sent: not applied",
                        direction.as_str()
                    ),
                    group_effects: Vec::new(),
                });
                Ok(EchoCheck::Skip)
            }
        }
    }

    async fn apply_assignee(
        &self,
        integration: &Integration,
        event: &IssueEvent,
        context: &CallContext,
        request_id: RequestId,
        actions: &mut Vec<DeliveryAction>,
    ) -> Result<(), ApplyError> {
        let shown = match &event.assignee {
            AssigneeSnapshot::Nobody => Some(String::new()),
            AssigneeSnapshot::Person {
                account_id, name, ..
            } => {
                if integration.credentials.addresses_users_by_name() {
                    name.clone()
                } else {
                    account_id.clone()
                }
            }
        };
        let note = match shown {
            Some(value) => {
                match self
                    .echo(
                        integration,
                        event,
                        crate::domain::outbound::Direction::Assignee,
                        &value,
                        actions,
                    )
                    .await?
                {
                    EchoCheck::Apply(note) => note,
                    EchoCheck::Skip => return Ok(()),
                }
            }
            None => String::new(),
        };
        let (target, summary) = match &event.assignee {
            AssigneeSnapshot::Nobody => (AssigneeTarget::Unassign, "unassign".to_owned()),
            AssigneeSnapshot::Person {
                email: Some(email), ..
            } => (
                AssigneeTarget::Email(email.clone()),
                format!("assign to {email}"),
            ),
            AssigneeSnapshot::Person {
                email: None,
                account_id,
                ..
            } => match self
                .hidden_email(integration, account_id.as_deref())
                .await?
            {
                Ok(email) => (
                    AssigneeTarget::Email(email.clone()),
                    format!("assign to {email} (address from the e-mail API)"),
                ),
                Err(why) => {
                    actions.push(DeliveryAction {
                        summary: format!("assignee email hidden: nothing changed ({why})"),
                        group_effects: Vec::new(),
                    });
                    return Ok(());
                }
            },
        };
        let sync = AssigneeSync {
            issue: issue_ref(integration, event),
            target,
            provider_time: event.updated,
            request_id,
        };
        let group_effects = self.assignment.sync_assignee(&sync, context).await?;
        actions.push(DeliveryAction::with_effects(
            format!("{summary}{note}"),
            group_effects,
        ));
        Ok(())
    }

    /// The hidden address of an assignee through the e-mail API: `Ok(Ok(email))`,
    /// or `Ok(Err(why))` when there is still none (nothing is changed then).
    async fn hidden_email(
        &self,
        integration: &Integration,
        account_id: Option<&str>,
    ) -> Result<Result<String, String>, ApplyError> {
        if !integration.email_api_allowed {
            return Ok(Err(
                "the integration does not allow the e-mail API".to_owned()
            ));
        }
        let Some(account_id) = account_id else {
            return Ok(Err("the assignee has no account id to look up".to_owned()));
        };
        match self.jira.site(integration).user_email(account_id).await {
            Ok(user) => Ok(user
                .email
                .filter(|e| !e.is_empty())
                .ok_or_else(|| "the e-mail API returned no address".to_owned())),
            Err(error) if error.is_transient() => {
                Err(ApplyError::Transient(format!("e-mail API: {error}")))
            }
            Err(error @ (JiraError::Forbidden { .. } | JiraError::NotFound { .. })) => {
                Ok(Err(format!("the e-mail API refused: {error}")))
            }
            Err(error) => Ok(Err(format!("the e-mail API failed: {error}"))),
        }
    }

    async fn apply_status(
        &self,
        integration: &Integration,
        event: &IssueEvent,
        context: &CallContext,
        request_id: RequestId,
        actions: &mut Vec<DeliveryAction>,
    ) -> Result<(), ApplyError> {
        let Some(item) = event.change("status") else {
            return Ok(());
        };
        let from_done = self
            .is_done(
                integration,
                item.from.as_deref(),
                item.from_string.as_deref(),
            )
            .await?;
        let to_done = self
            .is_done(integration, item.to.as_deref(), item.to_string.as_deref())
            .await?;
        let name = |id: &Option<String>, name: &Option<String>| {
            name.clone()
                .or_else(|| id.clone())
                .unwrap_or_else(|| "?".into())
        };
        let change = format!(
            "{} → {}",
            name(&item.from, &item.from_string),
            name(&item.to, &item.to_string)
        );
        let action = match (from_done, to_done) {
            (false, true) => StatusAction::Resolve,
            (true, false) => StatusAction::Unresolve,
            _ => {
                actions.push(DeliveryAction {
                    summary: format!(
                        "status {change}: not into or out of the done category; nothing to do"
                    ),
                    group_effects: Vec::new(),
                });
                return Ok(());
            }
        };
        let note = match &item.to {
            Some(to) => {
                match self
                    .echo(
                        integration,
                        event,
                        crate::domain::outbound::Direction::Status,
                        to,
                        actions,
                    )
                    .await?
                {
                    EchoCheck::Apply(note) => note,
                    EchoCheck::Skip => return Ok(()),
                }
            }
            None => String::new(),
        };
        let sync = StatusSync {
            issue: issue_ref(integration, event),
            action,
            provider_time: event.updated,
            request_id,
        };
        let group_effects = self.assignment.sync_status(&sync, context).await?;
        let verb = match action {
            StatusAction::Resolve => "resolve",
            StatusAction::Unresolve => "reopen",
        };
        actions.push(DeliveryAction::with_effects(
            format!("status {change}: {verb}{note}"),
            group_effects,
        ));
        Ok(())
    }

    /// Whether a status is in Jira's done category.
    async fn is_done(
        &self,
        integration: &Integration,
        id: Option<&str>,
        name: Option<&str>,
    ) -> Result<bool, ApplyError> {
        let find = |statuses: &[Status]| {
            id.and_then(|id| statuses.iter().find(|s| s.id == id))
                .map(|s| s.status_category.key == "done")
        };
        let (mut statuses, age) = match self.statuses.get(&integration.id) {
            Some(cached) => cached,
            None => (self.fetch_statuses(integration).await?, Duration::ZERO),
        };
        if let Some(done) = find(&statuses) {
            return Ok(done);
        }
        if age >= STATUS_REFRESH_AFTER {
            statuses = self.fetch_statuses(integration).await?;
            if let Some(done) = find(&statuses) {
                return Ok(done);
            }
        }
        // Unknown id: match the changelog's status name.
        Ok(name
            .and_then(|name| statuses.iter().find(|s| s.name == name))
            .is_some_and(|s| s.status_category.key == "done"))
    }

    async fn fetch_statuses(
        &self,
        integration: &Integration,
    ) -> Result<Arc<Vec<Status>>, ApplyError> {
        let ticket = self.statuses.ticket();
        let statuses = self
            .jira
            .site(integration)
            .statuses()
            .await
            .map_err(|error| {
                if error.is_transient() {
                    ApplyError::Transient(format!("status list: {error}"))
                } else {
                    ApplyError::Permanent(format!("status list: {error}"))
                }
            })?;
        let statuses = Arc::new(statuses);
        self.statuses
            .put(integration.id.clone(), Arc::clone(&statuses), ticket);
        Ok(statuses)
    }
}
