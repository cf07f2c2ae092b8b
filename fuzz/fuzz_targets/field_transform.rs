//! The Jira field transformer: arbitrary form values (read from the input as JSON)
//! shaped for Sentry's create metadata never panic, and every refusal names a
//! field.

#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use tracker_service::jira::fields::{FormValue, IssueForm, UserIdField, transform};
use tracker_service::jira::model::CreateMeta;

const CREATEMETA: &str = include_str!("../../fixtures/jira/createmeta_response.json");

fn value(v: serde_json::Value) -> Option<FormValue> {
    match v {
        serde_json::Value::String(s) => Some(FormValue::Text(s)),
        serde_json::Value::Number(n) => n.as_f64().map(FormValue::Number),
        serde_json::Value::Array(items) => Some(FormValue::List(
            items.into_iter().map(|i| i.to_string()).collect(),
        )),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let meta: CreateMeta = serde_json::from_str(CREATEMETA).expect("fixture parses");
    let issue_type = &meta.projects[0].issuetypes[0];
    let mut fields = BTreeMap::new();
    let mut title = String::new();
    for (key, v) in map {
        if key == "title" {
            title = v.to_string();
        } else if let Some(v) = value(v) {
            fields.insert(key, v);
        }
    }
    let form = IssueForm {
        project_id: "10000".into(),
        issue_type_id: "1".into(),
        title,
        description: String::new(),
        fields,
    };
    for users in [UserIdField::AccountId, UserIdField::Name] {
        if let Err(errors) = transform(&form, issue_type, users) {
            assert!(errors.iter().all(|e| !e.field.is_empty() && !e.message.is_empty()));
        }
    }
});
