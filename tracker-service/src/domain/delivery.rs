//! Jira webhook deliveries: what a `jira:issue_updated` payload says, read
//! leniently (Jira adds fields freely), and where a delivery is in the inbox.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use service_runtime::ids::{IntegrationId, IssueKey, JiraIssueId};

/// Why a body is not a webhook at all (answered 400, not stored).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// Not JSON; the parser's message says where.
    #[error("the body is not valid JSON: {0}")]
    NotJson(String),
    /// JSON, but not an object.
    #[error("the body must be a JSON object")]
    NotAnObject,
}

/// The assignee as the issue's current snapshot (`issue.fields.assignee`) says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssigneeSnapshot {
    /// `null` or absent: nobody is assigned.
    Nobody,
    /// Somebody; the address may be hidden by their privacy settings.
    Person {
        /// `emailAddress`, when present and not empty.
        email: Option<String>,
        /// `accountId` (Cloud), for the e-mail API.
        account_id: Option<String>,
        /// `name` (Data Center's user identifier).
        name: Option<String>,
    },
}

/// One changelog item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeItem {
    /// `field` (`assignee`, `status`, `Key`, `project`, ...).
    pub field: String,
    /// `from` (an id for status).
    pub from: Option<String>,
    /// `to` (an id for status).
    pub to: Option<String>,
    /// `fromString` (a name; the previous key for `Key`).
    pub from_string: Option<String>,
    /// `toString` (a name; the new key for `Key`).
    pub to_string: Option<String>,
}

/// What an issue webhook says, as far as sync is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueEvent {
    /// `webhookEvent`, or empty when absent (Sentry's fixtures omit it).
    pub event_type: String,
    /// `issue.id`, Jira's stable id.
    pub jira_issue_id: Option<JiraIssueId>,
    /// `issue.key` (the current key, after a move).
    pub key: Option<IssueKey>,
    /// `issue.fields.updated`, the provider time that orders events.
    pub updated: Option<DateTime<Utc>>,
    /// `issue.fields.assignee`.
    pub assignee: AssigneeSnapshot,
    /// `changelog.id`.
    pub changelog_id: Option<String>,
    /// `changelog.items`; `None` when there is no changelog.
    pub changes: Option<Vec<ChangeItem>>,
    /// The payload's `timestamp` (when Jira sent the event), when present.
    pub sent_at: Option<DateTime<Utc>>,
    /// `jira:issue_deleted`: the issue is gone; its links are retired.
    pub deleted: bool,
}

/// How a well-formed body is classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classified {
    /// An issue event with a changelog and an issue key or id: stored and applied.
    Actionable(IssueEvent),
    /// Well-formed, but nothing to apply: stored for operators, never applied.
    Ignored(IgnoredEvent),
}

/// A well-formed body with nothing to apply: what it says, and why it is
/// ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoredEvent {
    /// `webhookEvent`, or empty.
    pub event_type: String,
    /// `issue.key`, when valid.
    pub key: Option<IssueKey>,
    /// `issue.id`, when valid.
    pub jira_issue_id: Option<JiraIssueId>,
    /// Why nothing is applied, in words.
    pub reason: String,
    /// The payload's `timestamp`, when present.
    pub sent_at: Option<DateTime<Utc>>,
}

fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Parses Jira's `updated` time: `2023-01-01T00:00:00.000+0000`, RFC 3339, or a
/// naive time (taken as UTC).
pub fn parse_jira_time(raw: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| DateTime::parse_from_rfc3339(raw))
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc())
        })
        .map(service_runtime::time::truncate_to_micros)
}

/// Parses and classifies a webhook body.
///
/// # Errors
/// When the body is not a JSON object.
pub fn classify(body: &[u8]) -> Result<Classified, PayloadError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| PayloadError::NotJson(e.to_string()))?;
    let Value::Object(root) = value else {
        return Err(PayloadError::NotAnObject);
    };
    let event_type = text(root.get("webhookEvent")).unwrap_or_default();
    let sent_at = root
        .get("timestamp")
        .and_then(Value::as_i64)
        .and_then(DateTime::from_timestamp_millis);
    let issue = root.get("issue").and_then(Value::as_object);
    let jira_issue_id = issue
        .and_then(|i| text(i.get("id")))
        .and_then(|id| JiraIssueId::parse(&id).ok());
    let key = issue
        .and_then(|i| text(i.get("key")))
        .and_then(|k| IssueKey::parse(&k).ok());
    let ignored = |reason: String| {
        Ok(Classified::Ignored(IgnoredEvent {
            event_type: event_type.clone(),
            key: key.clone(),
            jira_issue_id: jira_issue_id.clone(),
            reason,
            sent_at,
        }))
    };
    if !event_type.is_empty() && !event_type.starts_with("jira:issue_") {
        return ignored(format!("{event_type} is not an issue event"));
    }
    let Some(issue) = issue else {
        return ignored("no issue in the payload".into());
    };
    if jira_issue_id.is_none() && key.is_none() {
        return ignored("the issue has neither a valid id nor a valid key".into());
    }
    let fields = issue.get("fields").and_then(Value::as_object);
    let updated = fields
        .and_then(|f| f.get("updated"))
        .and_then(Value::as_str)
        .and_then(parse_jira_time);
    let assignee = match fields.and_then(|f| f.get("assignee")) {
        Some(Value::Object(person)) => AssigneeSnapshot::Person {
            email: text(person.get("emailAddress")),
            account_id: text(person.get("accountId")),
            name: text(person.get("name")),
        },
        _ => AssigneeSnapshot::Nobody,
    };
    if event_type == "jira:issue_deleted" {
        return Ok(Classified::Actionable(IssueEvent {
            event_type,
            jira_issue_id,
            key,
            updated,
            assignee,
            changelog_id: None,
            changes: None,
            sent_at,
            deleted: true,
        }));
    }
    let changelog = root.get("changelog").and_then(Value::as_object);
    let Some(changelog) = changelog else {
        return ignored("no changelog: nothing changed that sync follows".into());
    };
    let changes = changelog
        .get("items")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_object)
                .map(|item| ChangeItem {
                    field: text(item.get("field")).unwrap_or_default(),
                    from: text(item.get("from")),
                    to: text(item.get("to")),
                    from_string: text(item.get("fromString")),
                    to_string: text(item.get("toString")),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Classified::Actionable(IssueEvent {
        event_type,
        jira_issue_id,
        key,
        updated,
        assignee,
        changelog_id: text(changelog.get("id")),
        changes: Some(changes),
        sent_at,
        deleted: false,
    }))
}

impl IssueEvent {
    /// The key that orders deliveries of one issue: Jira's id when present (it
    /// survives moves), else the key.
    pub fn ordering_key(&self) -> String {
        match (&self.jira_issue_id, &self.key) {
            (Some(id), _) => format!("id:{id}"),
            (None, Some(key)) => format!("key:{key}"),
            (None, None) => String::new(),
        }
    }

    /// The first changelog item about `field`.
    pub fn change(&self, field: &str) -> Option<&ChangeItem> {
        self.changes.as_ref()?.iter().find(|i| i.field == field)
    }

    /// Whether the issue moved to another key (project and `Key` items).
    pub fn moved_from(&self) -> Option<String> {
        self.change("Key")
            .and_then(|item| item.from_string.clone().or_else(|| item.from.clone()))
    }
}

/// Where a delivery is in the inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeliveryState {
    /// Waiting to be applied, or being retried.
    Pending,
    /// Applied; its actions say what it did.
    Delivered,
    /// Will not be applied unless an operator retries it.
    Failed,
    /// Nothing to apply; kept for operators, never queued.
    Ignored,
}

impl DeliveryState {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Ignored => "ignored",
        }
    }

    /// Reads the stored spelling back.
    pub fn from_stored(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            "failed" => Some(Self::Failed),
            "ignored" => Some(Self::Ignored),
            _ => None,
        }
    }
}

/// A stored delivery, as operators and the dispatcher see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    /// Increasing in arrival order.
    pub id: i64,
    /// The integration it was posted for.
    pub integration_id: IntegrationId,
    /// The deduplication key.
    pub delivery_key: String,
    /// `webhookEvent`, or empty.
    pub event_type: String,
    /// The issue key in the payload, or empty.
    pub issue_key: String,
    /// Jira's issue id in the payload, or empty.
    pub jira_issue_id: String,
    /// The per-issue queue it waits in.
    pub ordering_key: String,
    /// When it was stored.
    pub received_at: DateTime<Utc>,
    /// The headers kept (authentication removed).
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: String,
    /// The W3C trace context it carries into the assignment service.
    pub traceparent: String,
    /// Where it is in the inbox.
    pub state: DeliveryState,
    /// Attempts to apply it so far.
    pub attempts: i32,
    /// The last attempt's error, or empty.
    pub last_error: String,
    /// When the next attempt is due, after a failed one.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// What applying it did (or attempted, on the last attempt).
    pub actions: Vec<DeliveryAction>,
    /// When it was applied, failed for good, or ignored.
    pub completed_at: Option<DateTime<Utc>>,
    /// Why nothing is applied, for an ignored delivery.
    pub ignored_reason: String,
}

pub use super::sync::GroupEffect;

/// One action taken for a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryAction {
    /// What was done, in words.
    pub summary: String,
    /// Its effect on each linked group (at most [`MAX_GROUP_EFFECTS`]).
    pub group_effects: Vec<GroupEffect>,
}

/// The most group effects one action keeps: an issue linked to very many groups
/// still makes a delivery small enough to list.
pub const MAX_GROUP_EFFECTS: usize = 100;

impl DeliveryAction {
    /// An action with its effects, keeping the first [`MAX_GROUP_EFFECTS`] and
    /// saying how many more there were.
    pub fn with_effects(summary: String, mut group_effects: Vec<GroupEffect>) -> Self {
        let summary = if group_effects.len() > MAX_GROUP_EFFECTS {
            let more = group_effects.len() - MAX_GROUP_EFFECTS;
            group_effects.truncate(MAX_GROUP_EFFECTS);
            format!("{summary} (and {more} more groups)")
        } else {
            summary
        };
        Self {
            summary,
            group_effects,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/../fixtures/jira/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn actionable(name: &str) -> IssueEvent {
        match classify(&fixture(name)) {
            Ok(Classified::Actionable(event)) => event,
            other => panic!("{name}: {other:?}"),
        }
    }

    #[test]
    fn assignee_payloads() {
        let event = actionable("edit_issue_assignee_payload.json");
        assert_eq!(event.key.as_ref().map(IssueKey::as_str), Some("APP-123"));
        assert_eq!(event.ordering_key(), "id:101");
        assert_eq!(
            event.assignee,
            AssigneeSnapshot::Person {
                email: Some("jess@sentry.io".into()),
                account_id: Some("deadbeef123".into()),
                name: None,
            }
        );
        assert!(event.change("assignee").is_some());
        for name in [
            "edit_issue_no_assignee_payload.json",
            "edit_issue_assignee_missing_payload.json",
        ] {
            assert_eq!(
                actionable(name).assignee,
                AssigneeSnapshot::Nobody,
                "{name}"
            );
        }
    }

    #[test]
    fn status_and_move_payloads() {
        let status = actionable("edit_issue_status_payload.json");
        let item = status.change("status").expect("status item");
        assert_eq!(
            (item.from.as_deref(), item.to.as_deref()),
            (Some("10101"), Some("3"))
        );
        assert_eq!(status.ordering_key(), "key:APP-123");
        assert_eq!(status.updated, parse_jira_time("2023-01-01T00:00:00Z"));
        let moved = actionable("moved_issue_payload.json");
        assert_eq!(moved.moved_from().as_deref(), Some("APP-123"));
        assert_eq!(
            moved.key.as_ref().map(IssueKey::as_str),
            Some("PLATFORM-45")
        );
    }

    #[test]
    fn times_parse_in_jiras_formats() {
        let expected = parse_jira_time("2023-01-01T10:00:00Z");
        assert!(expected.is_some());
        assert_eq!(parse_jira_time("2023-01-01T12:00:00.000+0200"), expected);
        assert_eq!(parse_jira_time("2023-01-01T10:00:00.000"), expected);
        assert_eq!(parse_jira_time("yesterday"), None);
    }

    #[test]
    fn other_bodies_are_ignored_or_refused() {
        assert!(matches!(
            classify(b"{not json"),
            Err(PayloadError::NotJson(_))
        ));
        assert_eq!(classify(b"[1,2]"), Err(PayloadError::NotAnObject));
        assert!(matches!(
            classify(br#"{"webhookEvent":"comment_created","issue":{"key":"A-1"}}"#),
            Ok(Classified::Ignored(_))
        ));
        assert!(matches!(
            classify(br#"{"issue":{"key":"A-1","fields":{}}}"#),
            Ok(Classified::Ignored(_))
        ));
        assert!(matches!(
            classify(br#"{"changelog":{}}"#),
            Ok(Classified::Ignored(_))
        ));
    }
}
