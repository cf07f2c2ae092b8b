//! The parts of Jira's REST responses the tracker reads. Unknown fields are
//! ignored and most known ones are optional: Jira versions and apps differ.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// `GET /rest/api/2/issue/createmeta?projectIds=…&expand=projects.issuetypes.fields`.
#[derive(Debug, Clone, Deserialize)]
pub struct CreateMeta {
    /// The projects asked for (one).
    #[serde(default)]
    pub projects: Vec<CreateMetaProject>,
}

/// A project in create metadata.
#[derive(Debug, Clone, Deserialize)]
pub struct CreateMetaProject {
    /// Jira's numeric project id, the value forms send back.
    pub id: String,
    /// The project key that prefixes its issue keys (`APP`).
    #[serde(default)]
    pub key: String,
    /// The name shown in the project choice.
    #[serde(default)]
    pub name: String,
    /// Issue types creatable in the project, with their fields.
    #[serde(default)]
    pub issuetypes: Vec<IssueTypeMeta>,
}

/// An issue type with the fields its create screen takes.
#[derive(Debug, Clone, Deserialize)]
pub struct IssueTypeMeta {
    /// Jira's issue type id, the value forms send back.
    pub id: String,
    /// The name shown in the issue type choice (`Bug`).
    #[serde(default)]
    pub name: String,
    /// Fields by key, in the order Jira listed them.
    #[serde(default)]
    pub fields: OrderedFields,
}

/// One field's metadata.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldMeta {
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Whether Jira requires it.
    #[serde(default)]
    pub required: bool,
    /// Its schema; absent for some system fields.
    #[serde(default)]
    pub schema: Option<FieldSchema>,
    /// For user and similar pickers: the search URL.
    #[serde(default)]
    pub auto_complete_url: Option<String>,
    /// The choices of select-like fields.
    #[serde(default)]
    pub allowed_values: Option<Vec<Value>>,
    /// Whether Jira has a default.
    #[serde(default)]
    pub has_default_value: Option<bool>,
    /// The default, when Jira sends one.
    #[serde(default)]
    pub default_value: Option<Value>,
}

/// A field's schema.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct FieldSchema {
    /// `string`, `number`, `array`, `option`, `user`, `issuelink`, ...
    #[serde(rename = "type", default)]
    pub kind: String,
    /// For arrays: the element type.
    #[serde(default)]
    pub items: Option<String>,
    /// For custom fields: the custom type key.
    #[serde(default)]
    pub custom: Option<String>,
    /// For system fields: the system name.
    #[serde(default)]
    pub system: Option<String>,
}

/// Fields in the order Jira lists them (serde_json's map would sort them; the
/// form keeps Jira's order where Sentry's sort does not decide).
#[derive(Debug, Clone, Default)]
pub struct OrderedFields(pub Vec<(String, FieldMeta)>);

impl OrderedFields {
    /// The field with this key.
    pub fn get(&self, key: &str) -> Option<&FieldMeta> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Whether the create screen takes this field.
    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }
}

impl<'de> Deserialize<'de> for OrderedFields {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = OrderedFields;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of field metadata")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut fields = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, FieldMeta>()? {
                    fields.push((key, value));
                }
                Ok(OrderedFields(fields))
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

/// `GET /rest/api/2/project/search` (one page).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectPage {
    /// The projects.
    #[serde(default)]
    pub values: Vec<ProjectRef>,
    /// Whether this is the last page.
    #[serde(default)]
    pub is_last: Option<bool>,
}

/// A project, briefly.
#[derive(Debug, Clone, Deserialize)]
pub struct ProjectRef {
    /// Jira's numeric project id.
    pub id: String,
    /// The key prefixing its issue keys.
    #[serde(default)]
    pub key: String,
    /// Its display name.
    #[serde(default)]
    pub name: String,
}

/// An item with an id and a name (priorities, versions, components, statuses).
#[derive(Debug, Clone, Deserialize)]
pub struct Named {
    /// Jira's id (sent back as `{"id": …}`); Jira sends some as numbers.
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    /// The label shown.
    #[serde(default)]
    pub name: String,
}

/// `GET /rest/api/2/status` item.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// The id changelogs name in `from` and `to`.
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    /// The name changelogs give in `fromString` and `toString`.
    #[serde(default)]
    pub name: String,
    /// Its category (`new`, `indeterminate`, `done`).
    pub status_category: StatusCategory,
}

/// A status category.
#[derive(Debug, Clone, Deserialize)]
pub struct StatusCategory {
    /// `new`, `indeterminate` or `done`.
    pub key: String,
}

/// `POST /rest/api/2/issue` response.
#[derive(Debug, Clone, Deserialize)]
pub struct CreatedIssue {
    /// Jira's numeric issue id (stable across moves).
    pub id: String,
    /// The issue key (`APP-123`).
    pub key: String,
}

/// `GET /rest/api/2/issue/{key}` response.
#[derive(Debug, Clone, Deserialize)]
pub struct Issue {
    /// Jira's numeric issue id.
    pub id: String,
    /// The current issue key.
    pub key: String,
    /// Fields (only those read here).
    #[serde(default)]
    pub fields: IssueFields,
}

/// The fields of an issue read back after creation.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct IssueFields {
    /// The title as Jira stored it (it may cut or normalise ours).
    #[serde(default)]
    pub summary: Option<String>,
    /// Description (v2: wiki text).
    #[serde(default)]
    pub description: Option<String>,
}

/// `GET /rest/api/2/search` response.
#[derive(Debug, Clone, Deserialize)]
pub struct SearchResult {
    /// Matching issues.
    #[serde(default)]
    pub issues: Vec<SearchHit>,
}

/// A search hit.
#[derive(Debug, Clone, Deserialize)]
pub struct SearchHit {
    /// Jira's numeric issue id.
    pub id: String,
    /// The issue key.
    pub key: String,
    /// The fields asked for (`summary`).
    #[serde(default)]
    pub fields: IssueFields,
}

/// A page of `GET /rest/api/2/issue/createmeta/{project}/issuetypes`: Cloud
/// names the list `issueTypes`, Data Center `values`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IssueTypePage {
    /// The issue types of this page.
    #[serde(default, alias = "values")]
    pub issue_types: Vec<IssueTypeRef>,
    /// How many there are in all (Cloud).
    #[serde(default)]
    pub total: Option<u64>,
    /// Whether this is the last page (Data Center).
    #[serde(default)]
    pub is_last: Option<bool>,
}

/// An issue type, by id and name.
#[derive(Debug, Clone, Deserialize)]
pub struct IssueTypeRef {
    /// Its id.
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    /// Its name.
    #[serde(default)]
    pub name: String,
}

/// A page of `GET /rest/api/2/issue/createmeta/{project}/issuetypes/{id}`:
/// Cloud names the list `fields` (or `results`), Data Center `values`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldPage {
    /// The fields of this page.
    #[serde(default, alias = "values", alias = "results")]
    pub fields: Vec<FieldEntry>,
    /// How many there are in all (Cloud).
    #[serde(default)]
    pub total: Option<u64>,
    /// Whether this is the last page (Data Center).
    #[serde(default)]
    pub is_last: Option<bool>,
}

/// One field of an issue type's create screen, with its key.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldEntry {
    /// The field's key (`summary`, `customfield_10200`, ...).
    pub field_id: String,
    /// The field's metadata.
    #[serde(flatten)]
    pub meta: FieldMeta,
}

/// `GET /rest/api/2/issue/{key}/comment?expand=properties`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Comments {
    /// The comments (the first page).
    #[serde(default)]
    pub comments: Vec<Comment>,
}

/// A comment, with its entity properties when expanded.
#[derive(Debug, Clone, Deserialize)]
pub struct Comment {
    /// Its id.
    #[serde(default, deserialize_with = "string_or_number_or_empty")]
    pub id: String,
    /// Its text.
    #[serde(default)]
    pub body: Value,
    /// Its properties (`{key, value}`).
    #[serde(default)]
    pub properties: Vec<EntityProperty>,
}

/// An entity property.
#[derive(Debug, Clone, Deserialize)]
pub struct EntityProperty {
    /// Its key.
    pub key: String,
    /// Its value.
    #[serde(default)]
    pub value: Value,
}

/// `GET /rest/api/2/jql/autocompletedata/suggestions`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Suggestions {
    /// The suggestions.
    #[serde(default)]
    pub results: Vec<Suggestion>,
}

/// One autocomplete suggestion.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Suggestion {
    /// The value to submit.
    #[serde(default)]
    pub value: String,
    /// The label, with HTML emphasis of the matched part.
    #[serde(default)]
    pub display_name: String,
}

/// `GET /rest/api/3/user/email` response.
#[derive(Debug, Clone, Deserialize)]
pub struct UserEmail {
    /// The address (may be absent or empty).
    #[serde(default)]
    pub email: Option<String>,
}

/// Jira's error body: `{"errorMessages": [...], "errors": {"field": "message"}}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// General messages.
    #[serde(default)]
    pub error_messages: Vec<String>,
    /// Messages per field key.
    #[serde(default)]
    pub errors: BTreeMap<String, Value>,
}

/// An issue's current assignee, status and project
/// (`GET /rest/api/2/issue/{idOrKey}?fields=assignee,status,project`).
#[derive(Debug, Clone, Deserialize)]
pub struct IssueState {
    /// Jira's issue id.
    pub id: String,
    /// The issue's key.
    pub key: String,
    /// The fields asked for.
    #[serde(default)]
    pub fields: IssueStateFields,
}

/// The fields of [`IssueState`].
#[derive(Debug, Clone, Default, Deserialize)]
pub struct IssueStateFields {
    /// The assignee; absent or null when unassigned.
    #[serde(default)]
    pub assignee: Option<JiraUser>,
    /// The status.
    #[serde(default)]
    pub status: Option<StatusRef>,
    /// The project.
    #[serde(default)]
    pub project: Option<ProjectRef>,
}

/// A Jira user as the user and issue endpoints return one.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JiraUser {
    /// Cloud's identifier.
    #[serde(default)]
    pub account_id: Option<String>,
    /// Data Center's identifier.
    #[serde(default)]
    pub name: Option<String>,
    /// The address, unless the user's privacy settings hide it.
    #[serde(default)]
    pub email_address: Option<String>,
    /// The display name.
    #[serde(default)]
    pub display_name: Option<String>,
}

/// A status reference (an issue's status, a transition's target).
#[derive(Debug, Clone, Deserialize)]
pub struct StatusRef {
    /// The status id.
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    /// Its name.
    #[serde(default)]
    pub name: String,
}

/// `GET /rest/api/2/issue/{idOrKey}/transitions`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Transitions {
    /// The transitions available from the issue's current status.
    #[serde(default)]
    pub transitions: Vec<Transition>,
}

/// One available transition.
#[derive(Debug, Clone, Deserialize)]
pub struct Transition {
    /// Its id, to post.
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    /// Its name.
    #[serde(default)]
    pub name: String,
    /// The status it leads to.
    pub to: StatusRef,
}

/// One issue type's statuses in a project
/// (`GET /rest/api/2/project/{projectIdOrKey}/statuses`).
#[derive(Debug, Clone, Deserialize)]
pub struct IssueTypeStatuses {
    /// The issue type's id.
    #[serde(default, deserialize_with = "string_or_number_or_empty")]
    pub id: String,
    /// The issue type's name.
    #[serde(default)]
    pub name: String,
    /// Its statuses.
    #[serde(default)]
    pub statuses: Vec<Status>,
}

fn string_or_number_or_empty<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<String, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected a string or number id, got {other}"
        ))),
    }
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected a string or number id, got {other}"
        ))),
    }
}
