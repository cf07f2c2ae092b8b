//! The create-issue form, built from Jira's create metadata as Sentry's
//! `get_create_issue_config` builds it.
//!
//! Order: project, title, description, issue type, then the issue type's fields
//! with priority, fix versions, components and security level first and the rest
//! by field key. Fields a form cannot fill (time tracking, work log, attachments,
//! issue links) are left out, as are the ones the first four already cover.

use serde_json::Value;

use super::fields::{accepts_list, custom_types};
use super::model::{CreateMetaProject, FieldMeta, IssueTypeMeta, Named, ProjectRef};

/// How a form field is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// One line of text.
    Text,
    /// Several lines of text.
    Textarea,
    /// One of `choices`.
    Select,
    /// Several of `choices`.
    MultiSelect,
    /// Searched as the user types (users, sprints, epics, parents).
    AsyncSelect,
    /// A number.
    Number,
}

/// One field of the form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormField {
    /// The key to send back (`project`, `title`, `customfield_10200`, ...).
    pub name: String,
    /// The label.
    pub label: String,
    /// How it is shown.
    pub kind: FieldKind,
    /// Whether Jira requires it.
    pub required: bool,
    /// `(value, label)` choices of selects.
    pub choices: Vec<(String, String)>,
    /// The default value, or empty.
    pub default: String,
    /// For async selects: the `field` SearchJira takes for its choices.
    pub search_field: String,
    /// Whether it takes several values.
    pub multiple: bool,
    /// Jira's schema type, or empty.
    pub schema_type: String,
    /// Extra help to show, or empty.
    pub help_text: String,
}

impl FormField {
    /// A field with nothing but its name, label and kind.
    pub fn new(name: &str, label: &str, kind: FieldKind) -> Self {
        Self {
            name: name.to_owned(),
            label: label.to_owned(),
            kind,
            required: false,
            choices: Vec::new(),
            default: String::new(),
            search_field: String::new(),
            multiple: false,
            schema_type: String::new(),
            help_text: String::new(),
        }
    }
}

/// What the form is built from.
#[derive(Debug)]
pub struct FormInput<'a> {
    /// Every project the integration can see, for the project choice.
    pub projects: &'a [ProjectRef],
    /// The chosen project's create metadata.
    pub project: &'a CreateMetaProject,
    /// The chosen issue type.
    pub issue_type: &'a IssueTypeMeta,
    /// Priorities, for the priority field.
    pub priorities: &'a [Named],
    /// The project's versions, for fix versions.
    pub versions: &'a [Named],
}

/// `(value, label)` pairs from Jira's `allowedValues` (Sentry's `make_choices`):
/// items with a name submit their id; value- and label-only items submit the
/// value or label itself.
pub fn make_choices(values: &[Value]) -> Vec<(String, String)> {
    values
        .iter()
        .filter_map(|item| {
            let text = |key: &str| match item.get(key)? {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            };
            if let Some(name) = text("name") {
                Some((text("id").unwrap_or_default(), name))
            } else if let Some(value) = text("value") {
                Some((value.clone(), value))
            } else {
                text("label").map(|label| (label.clone(), label))
            }
        })
        .collect()
}

fn named_choices(items: &[Named]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|i| (i.id.clone(), i.name.clone()))
        .collect()
}

/// The form field for one Jira field, or `None` when a form cannot fill it
/// (Sentry's `build_dynamic_field`, with numbers shown as numbers).
fn dynamic_field(key: &str, meta: &FieldMeta) -> Option<FormField> {
    let schema = meta.schema.clone().unwrap_or_default();
    let items = schema.items.as_deref().unwrap_or_default();
    let custom = schema.custom.as_deref().unwrap_or_default();
    let allowed = meta.allowed_values.as_deref().unwrap_or_default();
    let mut field = FormField::new(key, &meta.name, FieldKind::Text);
    field.required = meta.required;
    field.schema_type = schema.kind.clone();
    let user_like = |t: &str| t == "user" || t == "team";
    if matches!(schema.kind.as_str(), "securitylevel" | "priority")
        || custom == custom_types::SELECT
    {
        field.kind = FieldKind::Select;
        field.choices = make_choices(allowed);
    } else if (meta
        .auto_complete_url
        .as_deref()
        .is_some_and(|u| !u.is_empty())
        && (user_like(items) || user_like(&schema.kind)))
        || custom == custom_types::SPRINT
        || custom == custom_types::EPIC
        || schema.kind == "issuelink"
    {
        field.kind = FieldKind::AsyncSelect;
        field.search_field = key.to_owned();
        field.multiple = accepts_list(meta);
    } else if schema.kind == "timetracking" || matches!(items, "worklog" | "attachment") {
        return None;
    } else if schema.kind == "array" && items != "string" {
        field.kind = FieldKind::MultiSelect;
        field.multiple = accepts_list(meta);
        field.choices = make_choices(allowed);
    } else if schema.kind == "option" && !allowed.is_empty() {
        field.kind = FieldKind::Select;
        field.choices = make_choices(allowed);
    } else if schema.kind == "number" {
        field.kind = FieldKind::Number;
    }
    if custom == custom_types::TEXTAREA {
        field.kind = FieldKind::Textarea;
    }
    Some(field)
}

/// Sentry's ordering weight: these fields come first, in this order.
fn weight(key: &str) -> i32 {
    match key {
        "priority" => -150,
        "fixVersions" => -125,
        "components" => -100,
        "security" => -50,
        _ => 0,
    }
}

/// Fields the fixed part of the form covers, or that no form should show.
const SKIPPED: &[&str] = &[
    "project",
    "title",
    "description",
    "issuetype",
    "summary",
    "issuelinks",
];

/// The most choices one field offers, and the whole form: a form built from a
/// Jira instance with huge option lists still fits in a response. A field with
/// more says so in its help text (issue 16's search serves the rest).
pub const MAX_CHOICES_PER_FIELD: usize = 500;
/// See [`MAX_CHOICES_PER_FIELD`].
pub const MAX_CHOICES_PER_FORM: usize = 2000;
/// The longest choice value or label kept, in bytes.
pub const MAX_CHOICE_BYTES: usize = 255;

fn cut(text: &str) -> String {
    if text.len() <= MAX_CHOICE_BYTES {
        return text.to_owned();
    }
    let mut end = MAX_CHOICE_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// Applies the choice limits to a built form.
fn bounded(mut fields: Vec<FormField>) -> Vec<FormField> {
    let mut budget = MAX_CHOICES_PER_FORM;
    for field in &mut fields {
        let keep = field.choices.len().min(MAX_CHOICES_PER_FIELD).min(budget);
        if keep < field.choices.len() {
            field.help_text = format!(
                "showing the first {keep} of {} choices",
                field.choices.len()
            );
            field.choices.truncate(keep);
        }
        budget -= keep;
        for (value, label) in &mut field.choices {
            *value = cut(value);
            *label = cut(label);
        }
    }
    fields
}

/// Builds the form.
pub fn build(input: &FormInput<'_>) -> Vec<FormField> {
    bounded(build_unbounded(input))
}

fn build_unbounded(input: &FormInput<'_>) -> Vec<FormField> {
    let mut project = FormField::new("project", "Jira Project", FieldKind::Select);
    project.required = true;
    project.default = input.project.id.clone();
    project.choices = input
        .projects
        .iter()
        .map(|p| (p.id.clone(), format!("{} - {}", p.key, p.name)))
        .collect();
    let mut title = FormField::new("title", "Title", FieldKind::Text);
    title.required = true;
    let description = FormField::new("description", "Description", FieldKind::Textarea);
    let mut issue_type = FormField::new("issuetype", "Issue Type", FieldKind::Select);
    issue_type.choices = input
        .project
        .issuetypes
        .iter()
        .map(|t| (t.id.clone(), t.name.clone()))
        .collect();
    issue_type.required = !issue_type.choices.is_empty();
    issue_type.default = input.issue_type.id.clone();
    let mut fields = vec![project, title, description, issue_type];

    let mut keys: Vec<&(String, FieldMeta)> = input.issue_type.fields.0.iter().collect();
    keys.sort_by(|(a, _), (b, _)| (weight(a), a.as_str()).cmp(&(weight(b), b.as_str())));
    for (key, meta) in keys {
        if SKIPPED.contains(&key.as_str()) {
            continue;
        }
        let Some(mut field) = dynamic_field(key, meta) else {
            continue;
        };
        match key.as_str() {
            // The issue type's own priorities (a priority scheme may allow
            // only some), with Jira's default; the global list only when the
            // metadata has none.
            "priority" => {
                let allowed = meta.allowed_values.as_deref().unwrap_or_default();
                if allowed.is_empty() {
                    field.choices = named_choices(input.priorities);
                } else {
                    field.choices = make_choices(allowed);
                }
                if let Some(default) = meta
                    .default_value
                    .as_ref()
                    .and_then(|d| d.get("id"))
                    .and_then(|id| match id {
                        Value::String(s) => Some(s.clone()),
                        Value::Number(n) => Some(n.to_string()),
                        _ => None,
                    })
                {
                    field.default = default;
                }
            }
            "fixVersions" => field.choices = named_choices(input.versions),
            _ => {}
        }
        fields.push(field);
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jira::model::{CreateMeta, ProjectPage};

    fn fixture<T: serde::de::DeserializeOwned>(name: &str) -> T {
        let path = format!("{}/../fixtures/jira/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json")
    }

    /// Sentry's `test_get_create_issue_config` on `createmeta_response.json`.
    #[test]
    fn the_form_matches_sentrys_expectations() {
        let meta: CreateMeta = fixture("createmeta_response.json");
        let projects: ProjectPage = fixture("projects_paginated.json");
        let project = &meta.projects[0];
        let form = build(&FormInput {
            projects: &projects.values,
            project,
            issue_type: &project.issuetypes[0],
            priorities: &[],
            versions: &[],
        });
        let summary: Vec<(&str, FieldKind, bool)> = form
            .iter()
            .map(|f| (f.name.as_str(), f.kind, f.required))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("project", FieldKind::Select, true),
                ("title", FieldKind::Text, true),
                ("description", FieldKind::Textarea, false),
                ("issuetype", FieldKind::Select, true),
                ("customfield_10001", FieldKind::Text, false),
                ("customfield_10200", FieldKind::Select, false),
                ("customfield_10300", FieldKind::MultiSelect, false),
                ("customfield_10400", FieldKind::AsyncSelect, false),
                ("customfield_10500", FieldKind::AsyncSelect, false),
                ("labels", FieldKind::Text, false),
                ("parent", FieldKind::AsyncSelect, false),
                ("reporter", FieldKind::AsyncSelect, true),
            ]
        );
        let by_name = |n: &str| form.iter().find(|f| f.name == n).expect("field");
        assert_eq!(
            by_name("project").choices,
            vec![
                ("10000".to_owned(), "EX - Example".to_owned()),
                ("10001".to_owned(), "ABC - Alphabetical".to_owned())
            ]
        );
        assert_eq!(by_name("project").default, "10000");
        assert_eq!(
            by_name("issuetype").choices,
            vec![("1".to_owned(), "Bug".to_owned())]
        );
        assert_eq!(by_name("issuetype").default, "1");
        let mood = by_name("customfield_10200");
        assert_eq!(mood.label, "Mood");
        assert_eq!(
            mood.choices,
            vec![
                ("sad".to_owned(), "sad".to_owned()),
                ("happy".to_owned(), "happy".to_owned())
            ]
        );
        let feature = by_name("customfield_10300");
        assert!(feature.multiple);
        assert_eq!(
            feature.choices,
            vec![
                ("Feature 1".to_owned(), "Feature 1".to_owned()),
                ("Feature 2".to_owned(), "Feature 2".to_owned())
            ]
        );
        assert_eq!(by_name("reporter").search_field, "reporter");
        assert_eq!(by_name("customfield_10400").label, "Epic Link");
        assert_eq!(by_name("customfield_10500").label, "Sprint");
    }

    #[test]
    fn priority_versions_components_and_security_come_first() {
        let meta: serde_json::Value = serde_json::json!({
            "id": "1", "name": "Task", "fields": {
                "zeta": {"name": "Zeta", "required": false, "schema": {"type": "string"}},
                "components": {"name": "Components", "required": false, "schema": {"type": "array", "items": "component"},
                               "allowedValues": [{"id": "7", "name": "Backend"}]},
                "timetracking": {"name": "Time", "required": false, "schema": {"type": "timetracking"}},
                "attachment": {"name": "Attachment", "required": false, "schema": {"type": "array", "items": "attachment"}},
                "issuelinks": {"name": "Links", "required": false, "schema": {"type": "array", "items": "issuelinks"}},
                "priority": {"name": "Priority", "required": false, "schema": {"type": "priority"}},
                "fixVersions": {"name": "Fix versions", "required": false, "schema": {"type": "array", "items": "version"}},
                "security": {"name": "Security", "required": false, "schema": {"type": "securitylevel"},
                             "allowedValues": [{"id": "3", "name": "Staff"}]},
                "customfield_1": {"name": "Points", "required": false, "schema": {"type": "number"}},
                "customfield_2": {"name": "Notes", "required": false,
                                  "schema": {"type": "string", "custom": "com.atlassian.jira.plugin.system.customfieldtypes:textarea"}}
            }
        });
        let issue_type: IssueTypeMeta = serde_json::from_value(meta).expect("meta");
        let project = CreateMetaProject {
            id: "1".into(),
            key: "P".into(),
            name: "P".into(),
            issuetypes: vec![issue_type.clone()],
        };
        let priorities = vec![Named {
            id: "1".into(),
            name: "Highest".into(),
        }];
        let versions = vec![Named {
            id: "10000".into(),
            name: "v1".into(),
        }];
        let form = build(&FormInput {
            projects: &[],
            project: &project,
            issue_type: &issue_type,
            priorities: &priorities,
            versions: &versions,
        });
        let names: Vec<&str> = form.iter().skip(4).map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "priority",
                "fixVersions",
                "components",
                "security",
                "customfield_1",
                "customfield_2",
                "zeta"
            ]
        );
        let field = |n: &str| form.iter().find(|f| f.name == n).expect("field");
        assert_eq!(
            field("priority").choices,
            vec![("1".to_owned(), "Highest".to_owned())]
        );
        assert_eq!(
            field("fixVersions").choices,
            vec![("10000".to_owned(), "v1".to_owned())]
        );
        assert_eq!(field("customfield_1").kind, FieldKind::Number);
        assert_eq!(field("customfield_2").kind, FieldKind::Textarea);
        assert_eq!(field("security").kind, FieldKind::Select);
    }
}
