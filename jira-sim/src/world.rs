//! What the simulator's Jira holds: projects with their workflows, users, and
//! issues (created through the API or seeded by a test), and how an issue is
//! shown in REST answers and webhooks.
//!
//! Shapes follow Jira Cloud's REST API v2 (as its OpenAPI description gives
//! them); only the fields the tracker reads, and a few that make the answers
//! recognisable, are filled in.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// A status of a workflow.
#[derive(Debug, Clone)]
pub struct SimStatus {
    /// Its id.
    pub id: &'static str,
    /// Its name.
    pub name: &'static str,
    /// Its category key (`new`, `indeterminate`, `done`).
    pub category: &'static str,
}

/// A project and its workflow: every status can be reached from every other
/// through the transition whose id is the target's position × 10 + 1.
#[derive(Debug, Clone)]
pub struct SimProject {
    /// Jira's project id.
    pub id: &'static str,
    /// Its key.
    pub key: &'static str,
    /// Its name.
    pub name: &'static str,
    /// Its statuses; the first is where new issues start.
    pub statuses: Vec<SimStatus>,
}

impl SimProject {
    /// The transition id leading to `status_id`.
    pub fn transition_to(&self, status_id: &str) -> Option<String> {
        self.statuses
            .iter()
            .position(|s| s.id == status_id)
            .map(|i| format!("{}", (i + 1) * 10 + 1))
    }

    /// The status a transition id leads to.
    pub fn transition_target(&self, transition_id: &str) -> Option<&SimStatus> {
        self.statuses
            .iter()
            .enumerate()
            .find(|(i, _)| format!("{}", (i + 1) * 10 + 1) == transition_id)
            .map(|(_, s)| s)
    }

    /// A status by id.
    pub fn status(&self, id: &str) -> Option<&SimStatus> {
        self.statuses.iter().find(|s| s.id == id)
    }
}

/// The projects every simulator has: `EX` (the fixtures' project, whose
/// statuses are those of `status_response.json`) and `ABC`, with a workflow of
/// its own (its statuses are not EX's).
pub fn projects() -> Vec<SimProject> {
    vec![
        SimProject {
            id: "10000",
            key: "EX",
            name: "Example",
            statuses: vec![
                SimStatus {
                    id: "10000",
                    name: "To Do",
                    category: "new",
                },
                SimStatus {
                    id: "3",
                    name: "In Progress",
                    category: "indeterminate",
                },
                SimStatus {
                    id: "10001",
                    name: "In Review",
                    category: "indeterminate",
                },
                SimStatus {
                    id: "10002",
                    name: "Done",
                    category: "done",
                },
            ],
        },
        SimProject {
            id: "10001",
            key: "ABC",
            name: "Alphabetical",
            statuses: vec![
                SimStatus {
                    id: "20000",
                    name: "Backlog",
                    category: "new",
                },
                SimStatus {
                    id: "20001",
                    name: "Shipped",
                    category: "done",
                },
            ],
        },
    ]
}

/// A Jira user.
#[derive(Debug, Clone)]
pub struct SimUser {
    /// Cloud's account id.
    pub account_id: String,
    /// Data Center's user name.
    pub name: String,
    /// The address.
    pub email: String,
    /// Whether REST answers show the address (privacy settings may hide it).
    pub email_visible: bool,
}

impl SimUser {
    /// The user as REST answers and webhooks show them.
    pub fn json(&self) -> Value {
        let mut user = json!({
            "accountId": self.account_id,
            "name": self.name,
            "displayName": self.name,
            "active": true,
            "accountType": "atlassian",
        });
        if self.email_visible {
            user["emailAddress"] = json!(self.email);
        }
        user
    }
}

/// An issue.
#[derive(Debug, Clone)]
pub struct SimIssue {
    /// Jira's id.
    pub id: String,
    /// Its key.
    pub key: String,
    /// The fields it was created with (summary, description, labels, ...).
    pub fields: Value,
    /// Its project's id.
    pub project_id: String,
    /// Its status's id.
    pub status_id: String,
    /// Its assignee's account id.
    pub assignee: Option<String>,
    /// When it last changed.
    pub updated: DateTime<Utc>,
    /// Deleted issues answer 404.
    pub deleted: bool,
    /// Its comments: (id, body, properties).
    pub comments: Vec<(String, String, Value)>,
}

/// Jira's time format: `2026-11-29T23:59:59.123+0000`.
pub fn jira_time(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string()
}

impl SimIssue {
    /// The issue's fields as REST answers and webhooks show them: what it was
    /// created with, plus its assignee, status, project and update time.
    pub fn fields_json(&self, projects: &[SimProject], users: &[SimUser]) -> Value {
        let mut fields = match &self.fields {
            Value::Object(map) => Value::Object(map.clone()),
            _ => json!({}),
        };
        let project = projects.iter().find(|p| p.id == self.project_id);
        fields["project"] = match project {
            Some(p) => json!({ "id": p.id, "key": p.key, "name": p.name }),
            None => json!({ "id": self.project_id }),
        };
        fields["status"] = match project.and_then(|p| p.status(&self.status_id)) {
            Some(s) => json!({
                "id": s.id,
                "name": s.name,
                "statusCategory": { "key": s.category },
            }),
            None => json!({ "id": self.status_id }),
        };
        fields["assignee"] = self
            .assignee
            .as_ref()
            .and_then(|a| users.iter().find(|u| &u.account_id == a))
            .map_or(Value::Null, SimUser::json);
        fields["updated"] = json!(jira_time(self.updated));
        fields
    }

    /// Whether `id_or_key` names this issue.
    pub fn is(&self, id_or_key: &str) -> bool {
        self.id == id_or_key || self.key == id_or_key
    }
}
