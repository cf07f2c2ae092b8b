//! Applying one outbound entry to Jira, with Sentry's semantics
//! (`JiraIntegration.sync_assignee_outbound`, `sync_status_outbound`), and
//! state-based: the issue is read first, and nothing is sent when it already
//! shows what the entry asks for (so a second attempt after a crash, or a
//! retried entry, sends nothing twice).
//!
//! **Assignee.** For each of the user's verified addresses in order, the
//! issue's assignable users matching it are searched
//! (`GET /rest/api/2/user/assignable/search?issueKey=…&query=…`; Data Center:
//! `username=`) and the first whose `emailAddress` equals it ignoring ASCII
//! case is taken; a hidden address is read through the e-mail API when the
//! integration allows it. No match: stopped ("no Jira user matches"), not
//! retried. Then `PUT /rest/api/2/issue/{id}/assignee` with the account id
//! (Data Center: the name), or `null` to unassign.
//!
//! **Status.** The issue's project is looked up in the installation's status
//! mapping; no mapping: done, nothing to do. Already in the mapped status:
//! done. Else the transition leading to it is found
//! (`GET …/transitions`, `to.id`) and posted; none: stopped.
//!
//! **Failures.** 401 and 403 stop ("insufficient permissions"), and so do 404
//! (the issue is gone) and Jira's form errors (400); 429, 5xx, timeouts and
//! connection errors are retried with backoff, honouring `Retry-After`, up to
//! the attempt budget, then stopped. Operators can retry a stopped entry.

use chrono::{DateTime, Utc};
use service_runtime::database::Database;
use service_runtime::time::now;

use super::mappings::{self, Installation};
use super::store::{self, Outcome};
use crate::domain::Integration;
use crate::domain::outbound::{OutboundRecord, OutboundTarget};
use crate::domain::sync::StatusAction;
use crate::error::TrackerError;
use crate::integrations::IntegrationCache;
use crate::jira::model::JiraUser;
use crate::jira::{JiraClient, JiraError, Site};
use crate::worker::backoff;

/// Applies outbound entries; cheap to clone.
#[derive(Debug, Clone)]
pub struct OutboundApplier {
    /// The tracker's database (integrations, status mappings).
    pub db: Database,
    /// The integrations, read through their cache.
    pub integrations: IntegrationCache,
    /// The Jira client.
    pub jira: JiraClient,
    /// Attempts before a failing entry is stopped.
    pub max_attempts: i32,
    /// The longest wait between attempts.
    pub max_backoff: std::time::Duration,
}

/// Why an attempt did not complete.
enum Failure {
    /// Will not succeed as is.
    Stop(String),
    /// Try again later (not before the hinted time, if any).
    Retry(String, Option<std::time::Duration>),
}

impl Failure {
    /// Reads Jira's error for an action (`what`, e.g. "assign the Jira issue").
    fn from_jira(error: JiraError, what: &str) -> Self {
        match error {
            JiraError::Unauthorized { .. } | JiraError::Forbidden { .. } => {
                Self::Stop(format!("insufficient permissions to {what}: {error}"))
            }
            JiraError::NotFound { .. } => {
                Self::Stop(format!("the Jira issue no longer exists: {error}"))
            }
            JiraError::RateLimited { retry_after } => Self::Retry(error.to_string(), retry_after),
            error if error.is_transient() => Self::Retry(error.to_string(), None),
            error => Self::Stop(format!("Jira refused to {what}: {error}")),
        }
    }
}

impl From<TrackerError> for Failure {
    fn from(error: TrackerError) -> Self {
        match error {
            TrackerError::NotFound { .. } => Self::Stop(error.to_string()),
            other => Self::Retry(other.to_string(), None),
        }
    }
}

impl OutboundApplier {
    /// Applies `entry`, which has been attempted `attempts - 1` times before.
    pub async fn apply(&self, entry: &OutboundRecord, attempts: i32) -> Outcome {
        match self.try_apply(entry).await {
            Ok(outcome) => outcome,
            Err(Failure::Stop(reason)) => Outcome::Stopped(reason),
            Err(Failure::Retry(error, _)) if attempts >= self.max_attempts => Outcome::Stopped(
                format!("gave up after {attempts} attempts; the last failed: {error}"),
            ),
            Err(Failure::Retry(error, hint)) => {
                let wait = backoff(attempts, self.max_backoff).max(hint.unwrap_or_default());
                Outcome::RetryLater(error, later(wait))
            }
        }
    }

    async fn try_apply(&self, entry: &OutboundRecord) -> Result<Outcome, Failure> {
        let integration = self
            .integrations
            .load(&entry.intent.issue.integration_id)
            .await?;
        let site = self.jira.site(&integration);
        let issue = entry.intent.issue.id_or_key();
        match &entry.intent.target {
            OutboundTarget::Assignee { emails, .. } => {
                self.assign(entry.id, &site, &integration, issue, Some(emails))
                    .await
            }
            OutboundTarget::Unassigned => {
                self.assign(entry.id, &site, &integration, issue, None)
                    .await
            }
            OutboundTarget::Status(action) => {
                let installation = Installation {
                    integration_id: integration.id.clone(),
                    organization_id: entry.intent.organization_id,
                };
                self.transition(entry.id, &site, &installation, issue, *action)
                    .await
            }
        }
    }

    /// Records that entry `entry_id` is about to send `value`, before it is sent
    /// (see [`store::expect_echo`]).
    async fn about_to_send(&self, entry_id: i64, value: &str) -> Result<(), Failure> {
        store::expect_echo(&self.db, entry_id, value).await?;
        Ok(())
    }

    async fn assign(
        &self,
        entry_id: i64,
        site: &Site<'_>,
        integration: &Integration,
        issue: &str,
        emails: Option<&Vec<String>>,
    ) -> Result<Outcome, Failure> {
        const WHAT: &str = "assign the Jira issue";
        let state = site
            .issue_state(issue)
            .await
            .map_err(|e| Failure::from_jira(e, WHAT))?;
        let by_name = integration.credentials.addresses_users_by_name();
        let id_of = |user: &JiraUser| {
            if by_name {
                user.name.clone()
            } else {
                user.account_id.clone()
            }
        };
        let current = state.fields.assignee.as_ref().and_then(id_of);
        let Some(emails) = emails else {
            if current.is_none() {
                return Ok(done(format!("{} already has no assignee", state.key), None));
            }
            self.about_to_send(entry_id, "").await?;
            site.set_assignee(issue, None)
                .await
                .map_err(|e| Failure::from_jira(e, WHAT))?;
            return Ok(done(
                format!("unassigned {}", state.key),
                Some(String::new()),
            ));
        };
        if emails.is_empty() {
            return Err(Failure::Stop(
                "the assignee has no verified e-mail address to find them in Jira by".into(),
            ));
        }
        let Some((user, email)) = self
            .find_user(site, integration, &state.key, emails)
            .await?
        else {
            return Err(Failure::Stop(format!(
                "no Jira user matches the assignee's verified e-mail addresses ({}); nothing sent",
                emails.join(", ")
            )));
        };
        let Some(user_id) = id_of(&user) else {
            return Err(Failure::Stop(format!(
                "the Jira user matching {email} has no {}",
                if by_name { "name" } else { "account id" }
            )));
        };
        if current.as_deref() == Some(user_id.as_str()) {
            return Ok(done(
                format!("{} is already assigned to {email} in Jira", state.key),
                None,
            ));
        }
        self.about_to_send(entry_id, &user_id).await?;
        site.set_assignee(issue, Some(&user_id))
            .await
            .map_err(|e| Failure::from_jira(e, WHAT))?;
        Ok(done(
            format!("assigned {} to {email} ({user_id})", state.key),
            Some(user_id),
        ))
    }

    /// The first assignable user whose address equals one of `emails` (in
    /// their order), with that address.
    async fn find_user(
        &self,
        site: &Site<'_>,
        integration: &Integration,
        issue_key: &str,
        emails: &[String],
    ) -> Result<Option<(JiraUser, String)>, Failure> {
        const WHAT: &str = "assign the Jira issue";
        for email in emails {
            let users = site
                .assignable_users(issue_key, email)
                .await
                .map_err(|e| Failure::from_jira(e, WHAT))?;
            for user in users {
                let address = match user.email_address.as_deref().filter(|a| !a.is_empty()) {
                    Some(address) => Some(address.to_owned()),
                    None if integration.email_api_allowed => match &user.account_id {
                        Some(account) => match site.user_email(account).await {
                            Ok(found) => found.email,
                            Err(error) if error.is_transient() => {
                                return Err(Failure::Retry(format!("e-mail API: {error}"), None));
                            }
                            Err(_) => None,
                        },
                        None => None,
                    },
                    None => None,
                };
                if address.is_some_and(|a| a.eq_ignore_ascii_case(email)) {
                    return Ok(Some((user, email.clone())));
                }
            }
        }
        Ok(None)
    }

    async fn transition(
        &self,
        entry_id: i64,
        site: &Site<'_>,
        installation: &Installation,
        issue: &str,
        action: StatusAction,
    ) -> Result<Outcome, Failure> {
        const WHAT: &str = "transition the Jira issue";
        let state = site
            .issue_state(issue)
            .await
            .map_err(|e| Failure::from_jira(e, WHAT))?;
        let Some(project) = state.fields.project.as_ref() else {
            return Err(Failure::Stop(format!(
                "Jira did not say which project {} is in",
                state.key
            )));
        };
        let Some(mapping) =
            mappings::for_project(self.db.conn(), installation, &project.id).await?
        else {
            return Ok(done(
                format!(
                    "project {} ({}) has no status mapping for organization {}: nothing to do",
                    project.key, project.id, installation.organization_id
                ),
                None,
            ));
        };
        let target = match action {
            StatusAction::Resolve => &mapping.on_resolve,
            StatusAction::Unresolve => &mapping.on_unresolve,
        };
        let current = state.fields.status.as_ref();
        if current.is_some_and(|s| &s.id == target) {
            return Ok(done(
                format!("{} is already in status {target}", state.key),
                None,
            ));
        }
        let transitions = site
            .transitions(issue)
            .await
            .map_err(|e| Failure::from_jira(e, WHAT))?;
        let Some(transition) = transitions.transitions.iter().find(|t| &t.to.id == target) else {
            return Err(Failure::Stop(format!(
                "no transition leads {} from status {} to status {target}",
                state.key,
                current.map_or("?", |s| s.name.as_str())
            )));
        };
        self.about_to_send(entry_id, target).await?;
        site.transition(issue, &transition.id)
            .await
            .map_err(|e| Failure::from_jira(e, WHAT))?;
        Ok(done(
            format!(
                "moved {} to status {} ({target}) through transition {}",
                state.key, transition.to.name, transition.id
            ),
            Some(target.clone()),
        ))
    }
}

fn done(result: String, sent: Option<String>) -> Outcome {
    Outcome::Done { result, sent }
}

fn later(wait: std::time::Duration) -> DateTime<Utc> {
    now() + chrono::Duration::from_std(wait).unwrap_or_default()
}
