//! Turning form values into Jira's `fields` object, shaped by each field's
//! schema (Sentry's `transform_fields`).
//!
//! - `title` becomes `summary`, cut to 255 characters; `labels` is a
//!   comma-separated string, split, trimmed, empties dropped;
//! - only fields the issue type's create metadata lists are sent; absent, null and
//!   empty values are skipped;
//! - values are shaped by the schema: `user` → `{"accountId": v}` (`{"name": v}` on
//!   Jira Server), `issuetype`/`project`/`priority`/`version`/`component` →
//!   `{"id": v}`, `option` → `{"value": v}`, `issuelink` → `{"key": v}`, `number`
//!   → an integer, or a float when it has a `.`; arrays wrap scalars and shape each
//!   element by `items`; the sprint field takes a bare number.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::model::{FieldMeta, IssueTypeMeta};

/// Jira's custom field type keys that change how a value is shaped.
pub mod custom_types {
    /// Sprint: a bare number although its schema says array.
    pub const SPRINT: &str = "com.pyxis.greenhopper.jira:gh-sprint";
    /// Epic link.
    pub const EPIC: &str = "com.pyxis.greenhopper.jira:gh-epic-link";
    /// Tempo account: a number.
    pub const TEMPO_ACCOUNT: &str = "com.tempoplugin.tempo-accounts:accounts.customfield";
    /// Rank: an id object.
    pub const RANK: &str = "com.pyxis.greenhopper.jira:gh-lexo-rank";
    /// Single select.
    pub const SELECT: &str = "com.atlassian.jira.plugin.system.customfieldtypes:select";
    /// Multi-line text.
    pub const TEXTAREA: &str = "com.atlassian.jira.plugin.system.customfieldtypes:textarea";
}

/// Whether CreateIssue takes a list for this field (and the form offers it
/// as `multiple`): array fields, except the sprint field, which takes one
/// sprint although its schema says array.
pub fn accepts_list(meta: &FieldMeta) -> bool {
    let schema = meta.schema.clone().unwrap_or_default();
    schema.kind.eq_ignore_ascii_case("array")
        && schema.custom.as_deref() != Some(custom_types::SPRINT)
}

/// A number as Jira expects it: an integral value as an integer (`12`, not
/// `12.0`), anything else as a float.
pub fn number_json(n: f64) -> Value {
    // Integers up to 2^53 are exact in an f64.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if n.fract() == 0.0 && n.abs() < EXACT {
        #[allow(clippy::cast_possible_truncation)]
        let integer = n as i64;
        json!(integer)
    } else {
        json!(n)
    }
}

/// The longest summary Jira takes.
pub const MAX_SUMMARY_CHARS: usize = 255;

/// A value from the create form.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum FormValue {
    /// A single value as text.
    Text(String),
    /// A number as sent (JSON number).
    Number(f64),
    /// Several values.
    List(Vec<String>),
}

impl FormValue {
    fn is_empty(&self) -> bool {
        match self {
            Self::Text(s) => s.is_empty(),
            Self::Number(_) => false,
            Self::List(items) => items.is_empty(),
        }
    }
}

/// How user fields are addressed: by account id (Cloud) or by name (Server).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserIdField {
    /// `{"accountId": …}`.
    AccountId,
    /// `{"name": …}`.
    Name,
}

/// A form value that Jira's schema cannot take; `field` is the form field key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field key (`customfield_10200`, `labels`, ...).
    pub field: String,
    /// What is wrong, naming the field's display name.
    pub message: String,
}

/// Everything a create request says, before shaping.
#[derive(Debug, Clone, Default)]
pub struct IssueForm {
    /// The Jira project the issue is created in.
    pub project_id: String,
    /// The issue type it is created as.
    pub issue_type_id: String,
    /// Title (becomes `summary`).
    pub title: String,
    /// The description, sent as is (wiki text on API v2).
    pub description: String,
    /// Every other field by key.
    pub fields: BTreeMap<String, FormValue>,
}

enum Shape {
    Identity,
    Number,
    IdObject,
    ValueObject,
    KeyObject,
    User(UserIdField),
}

fn field_type(schema_kind: &str, items: Option<&str>) -> String {
    if schema_kind == "array" {
        items.unwrap_or_default().to_owned()
    } else {
        schema_kind.to_owned()
    }
}

fn shape_for(key: &str, meta: &FieldMeta, users: UserIdField) -> Shape {
    let schema = meta.schema.clone().unwrap_or_default();
    if let Some(custom) = schema.custom.as_deref() {
        match custom {
            custom_types::TEMPO_ACCOUNT | custom_types::SPRINT => return Shape::Number,
            custom_types::RANK => return Shape::IdObject,
            _ => {}
        }
    }
    // Some system fields come without a schema (Sentry's fixture's issuetype).
    let kind = if schema.kind.is_empty() {
        match key {
            "issuetype" | "project" => key.to_owned(),
            _ => String::new(),
        }
    } else {
        field_type(&schema.kind, schema.items.as_deref())
    };
    match kind.as_str() {
        "user" => Shape::User(users),
        "issuetype" | "project" | "priority" | "version" | "component" | "securitylevel" => {
            Shape::IdObject
        }
        "option" => Shape::ValueObject,
        "issuelink" => Shape::KeyObject,
        "number" => Shape::Number,
        _ => Shape::Identity,
    }
}

fn parse_number(raw: &str) -> Option<Value> {
    let raw = raw.trim();
    if raw.contains('.') {
        raw.parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(|f| json!(f))
    } else {
        raw.parse::<i64>().ok().map(|i| json!(i))
    }
}

fn shape_one(shape: &Shape, value: &FormValue, display_name: &str) -> Result<Value, String> {
    let text = match value {
        FormValue::Text(s) => s.clone(),
        FormValue::Number(n) => {
            if let Shape::Number = shape {
                return Ok(number_json(*n));
            }
            n.to_string()
        }
        FormValue::List(_) => {
            return Err(format!(
                "field '{display_name}' takes one value, not a list"
            ));
        }
    };
    Ok(match shape {
        Shape::Identity => Value::String(text),
        Shape::Number => parse_number(&text).ok_or_else(|| {
            format!("Invalid number value provided for field '{display_name}': '{text}'")
        })?,
        Shape::IdObject => json!({ "id": text }),
        Shape::ValueObject => json!({ "value": text }),
        Shape::KeyObject => json!({ "key": text }),
        Shape::User(UserIdField::AccountId) => json!({ "accountId": text }),
        Shape::User(UserIdField::Name) => json!({ "name": text }),
    })
}

/// Shapes `form` for the issue type's create screen.
///
/// # Errors
/// One error per field whose value the schema cannot take.
pub fn transform(
    form: &IssueForm,
    issue_type: &IssueTypeMeta,
    users: UserIdField,
) -> Result<Map<String, Value>, Vec<FieldError>> {
    let mut values: BTreeMap<String, FormValue> = form.fields.clone();
    values.insert("project".into(), FormValue::Text(form.project_id.clone()));
    values.insert(
        "issuetype".into(),
        FormValue::Text(form.issue_type_id.clone()),
    );
    values.insert(
        "summary".into(),
        FormValue::Text(form.title.chars().take(MAX_SUMMARY_CHARS).collect()),
    );
    values.insert(
        "description".into(),
        FormValue::Text(form.description.clone()),
    );
    if let Some(FormValue::Text(labels)) = values.get("labels").cloned() {
        let split: Vec<String> = labels
            .split(',')
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        values.insert("labels".into(), FormValue::List(split));
    }

    let mut out = Map::new();
    let mut errors = Vec::new();
    for (key, meta) in &issue_type.fields.0 {
        let Some(value) = values.get(key) else {
            continue;
        };
        if value.is_empty() {
            continue;
        }
        let shape = shape_for(key, meta, users);
        let is_array = accepts_list(meta);
        let display_name = if meta.name.is_empty() {
            key
        } else {
            &meta.name
        };
        let shaped = if is_array {
            let items: Vec<FormValue> = match value {
                FormValue::List(items) => items.iter().cloned().map(FormValue::Text).collect(),
                scalar => vec![scalar.clone()],
            };
            items
                .iter()
                .map(|item| shape_one(&shape, item, display_name))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        } else {
            shape_one(&shape, value, display_name)
        };
        match shaped {
            Ok(value) => {
                out.insert(key.clone(), value);
            }
            Err(message) => errors.push(FieldError {
                field: key.clone(),
                message,
            }),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jira::model::CreateMeta;

    fn bug() -> IssueTypeMeta {
        let path = format!(
            "{}/../fixtures/jira/createmeta_response.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let meta: CreateMeta =
            serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json");
        meta.projects[0].issuetypes[0].clone()
    }

    fn form(fields: &[(&str, FormValue)]) -> IssueForm {
        IssueForm {
            project_id: "10000".into(),
            issue_type_id: "1".into(),
            title: "example summary".into(),
            description: "example bug report".into(),
            fields: fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        }
    }

    /// Sentry's `test_create_issue_labels_and_option`.
    #[test]
    fn labels_and_options_are_shaped_as_sentry_does() {
        let body = transform(
            &form(&[
                ("customfield_10200", FormValue::Text("sad".into())),
                (
                    "customfield_10300",
                    FormValue::List(vec!["Feature 1".into(), "Feature 2".into()]),
                ),
                ("labels", FormValue::Text("fuzzy , ,  bunnies".into())),
            ]),
            &bug(),
            UserIdField::AccountId,
        )
        .expect("valid");
        assert_eq!(body["labels"], json!(["fuzzy", "bunnies"]));
        assert_eq!(body["customfield_10200"], json!({"value": "sad"}));
        assert_eq!(
            body["customfield_10300"],
            json!([{"value": "Feature 1"}, {"value": "Feature 2"}])
        );
        assert_eq!(body["project"], json!({"id": "10000"}));
        assert_eq!(body["issuetype"], json!({"id": "1"}));
        assert_eq!(body["summary"], json!("example summary"));
        assert_eq!(body["description"], json!("example bug report"));
    }

    #[test]
    fn users_parents_sprints_and_unknown_fields() {
        let body = transform(
            &form(&[
                (
                    "reporter",
                    FormValue::Text("5b10a2844c20165700ede21g".into()),
                ),
                ("parent", FormValue::Text("APP-1".into())),
                ("customfield_10500", FormValue::Text("2".into())),
                (
                    "customfield_99999",
                    FormValue::Text("not in createmeta".into()),
                ),
                ("customfield_10001", FormValue::Text(String::new())),
            ]),
            &bug(),
            UserIdField::AccountId,
        )
        .expect("valid");
        assert_eq!(
            body["reporter"],
            json!({"accountId": "5b10a2844c20165700ede21g"})
        );
        assert_eq!(body["parent"], json!({"key": "APP-1"}));
        assert_eq!(body["customfield_10500"], json!(2));
        assert!(!body.contains_key("customfield_99999"));
        assert!(
            !body.contains_key("customfield_10001"),
            "empty values are skipped"
        );
        let server = transform(
            &form(&[("reporter", FormValue::Text("jess".into()))]),
            &bug(),
            UserIdField::Name,
        )
        .expect("valid");
        assert_eq!(server["reporter"], json!({"name": "jess"}));
    }

    #[test]
    fn titles_are_cut_to_255_characters() {
        let mut long = form(&[]);
        long.title = "é".repeat(300);
        let body = transform(&long, &bug(), UserIdField::AccountId).expect("valid");
        assert_eq!(
            body["summary"].as_str().map(|s| s.chars().count()),
            Some(255)
        );
    }

    #[test]
    fn numbers_parse_as_integers_or_floats_and_bad_ones_name_the_field() {
        let body = transform(
            &form(&[("customfield_10500", FormValue::Text("1.5".into()))]),
            &bug(),
            UserIdField::AccountId,
        )
        .expect("valid");
        assert_eq!(body["customfield_10500"], json!(1.5));
        let errors = transform(
            &form(&[("customfield_10500", FormValue::Text("abcd".into()))]),
            &bug(),
            UserIdField::AccountId,
        )
        .expect_err("invalid");
        assert_eq!(errors[0].field, "customfield_10500");
        assert_eq!(
            errors[0].message,
            "Invalid number value provided for field 'Sprint': 'abcd'"
        );
    }
}
