//! Protobuf ⇄ domain conversions of `tracker.v1`. Requests become domain values
//! with every field violation collected; results become messages without secrets.

use std::collections::{BTreeMap, HashMap};

use prost_types::value::Kind;
use proto::tracker::v1 as pb;
use service_runtime::config::Secret;
use service_runtime::ids::{IntegrationId, RequestId};
use service_runtime::status::Violations;
use service_runtime::time::to_timestamp;

use crate::domain::delivery::{DeliveryAction, DeliveryState};
use crate::domain::{AuthMode, BaseUrl, Credentials, IntegrationSummary};
use crate::error::TrackerError;
use crate::integrations::{IntegrationChanges, NewIntegration};
use crate::issues::{CreateIssueCommand, CreatedIssue, LinkState};
use crate::jira::fields::FormValue;
use crate::jira::form::{FieldKind, FormField};
use crate::storage::entities::webhook_delivery;

fn required(v: &mut Violations, field: &str, value: &str) -> Option<String> {
    if value.trim().is_empty() {
        v.add(field, "must not be empty");
        None
    } else {
        Some(value.trim().to_owned())
    }
}

fn credentials(v: &mut Violations, raw: Option<pb::Credentials>) -> Option<Credentials> {
    use pb::credentials::Credential;
    let Some(credential) = raw.and_then(|c| c.credential) else {
        v.add(
            "credentials",
            "must be set: api_token, personal_access_token or connect",
        );
        return None;
    };
    match credential {
        Credential::ApiToken(c) => {
            let email = required(v, "credentials.api_token.account_email", &c.account_email);
            let token = required(v, "credentials.api_token.api_token", &c.api_token);
            Some(Credentials::ApiToken {
                account_email: email?,
                api_token: Secret::new(token?),
            })
        }
        Credential::PersonalAccessToken(c) => {
            let token = required(v, "credentials.personal_access_token.token", &c.token);
            Some(Credentials::PersonalAccessToken {
                token: Secret::new(token?),
            })
        }
        Credential::Connect(c) => {
            let key = required(v, "credentials.connect.client_key", &c.client_key);
            let secret = required(v, "credentials.connect.shared_secret", &c.shared_secret);
            Some(Credentials::Connect {
                client_key: key?,
                shared_secret: Secret::new(secret?),
            })
        }
    }
}

/// CreateIntegration's request.
pub fn new_integration(
    r: pb::CreateIntegrationRequest,
) -> Result<(NewIntegration, Option<RequestId>), TrackerError> {
    let mut v = Violations::new();
    let id = v.check("integration_id", IntegrationId::parse(&r.integration_id));
    let base_url = v.check("base_url", BaseUrl::parse(&r.base_url));
    let credentials = credentials(&mut v, r.credentials);
    let request_id = v.check("request_id", RequestId::parse_optional(&r.request_id));
    let display_name = if r.display_name.trim().is_empty() {
        r.integration_id.clone()
    } else {
        r.display_name.trim().to_owned()
    };
    let webhook_secret = (!r.webhook_secret.is_empty()).then(|| Secret::new(r.webhook_secret));
    Ok(v.finish_with(|| {
        Some((
            NewIntegration {
                id: id?,
                display_name,
                base_url: base_url?,
                credentials: credentials?,
                webhook_secret,
                email_api_allowed: r.email_api_allowed,
            },
            request_id?,
        ))
    })?)
}

/// UpdateIntegration's request.
pub fn integration_changes(
    r: pb::UpdateIntegrationRequest,
) -> Result<(IntegrationChanges, Option<RequestId>), TrackerError> {
    let mut v = Violations::new();
    let id = v.check("integration_id", IntegrationId::parse(&r.integration_id));
    let base_url = match r.base_url.as_deref() {
        None => Some(None),
        Some(raw) => v.check("base_url", BaseUrl::parse(raw)).map(Some),
    };
    let credentials = match r.credentials {
        None => Some(None),
        Some(c) => credentials(&mut v, Some(c)).map(Some),
    };
    let request_id = v.check("request_id", RequestId::parse_optional(&r.request_id));
    let webhook_secret = r
        .webhook_secret
        .map(|s| (!s.is_empty()).then(|| Secret::new(s)));
    Ok(v.finish_with(|| {
        Some((
            IntegrationChanges {
                id: id?,
                display_name: r.display_name.map(|n| n.trim().to_owned()),
                base_url: base_url?,
                credentials: credentials?,
                webhook_secret,
                email_api_allowed: r.email_api_allowed,
            },
            request_id?,
        ))
    })?)
}

/// An integration as the API shows it (no secrets).
pub fn integration(s: IntegrationSummary) -> pb::Integration {
    let auth_mode = match s.auth_mode {
        AuthMode::ApiToken => pb::AuthMode::ApiToken,
        AuthMode::PersonalAccessToken => pb::AuthMode::PersonalAccessToken,
        AuthMode::Connect => pb::AuthMode::Connect,
    };
    pb::Integration {
        webhook_path: format!("/webhooks/jira/{}", s.id),
        integration_id: s.id.to_string(),
        display_name: s.display_name,
        base_url: s.base_url.to_string(),
        auth_mode: auth_mode.into(),
        account_email: s.account_email,
        connect_client_key: s.connect_client_key,
        credential_set: true,
        webhook_secret_set: s.webhook_secret_set,
        email_api_allowed: s.email_api_allowed,
        create_time: Some(to_timestamp(s.created_at)),
        update_time: Some(to_timestamp(s.updated_at)),
    }
}

fn form_value(
    v: &mut Violations,
    field: &str,
    value: prost_types::Value,
) -> Option<Option<FormValue>> {
    let scalar = |kind: &Kind| match kind {
        Kind::StringValue(s) => Some(s.clone()),
        Kind::NumberValue(n) => Some(n.to_string()),
        Kind::BoolValue(b) => Some(b.to_string()),
        _ => None,
    };
    match value.kind {
        None | Some(Kind::NullValue(_)) => Some(None),
        Some(Kind::StringValue(s)) => Some(Some(FormValue::Text(s))),
        Some(Kind::NumberValue(n)) => Some(Some(FormValue::Number(n))),
        Some(Kind::BoolValue(b)) => Some(Some(FormValue::Text(b.to_string()))),
        Some(Kind::ListValue(list)) => {
            let mut items = Vec::with_capacity(list.values.len());
            for item in list.values {
                match item.kind.as_ref().and_then(scalar) {
                    Some(text) => items.push(text),
                    None => {
                        v.add(field, "lists may only hold strings, numbers or booleans");
                        return None;
                    }
                }
            }
            Some(Some(FormValue::List(items)))
        }
        Some(Kind::StructValue(_)) => {
            v.add(field, "must be a string, a number or a list of strings");
            None
        }
    }
}

/// CreateIssue's request.
pub fn create_issue(
    r: pb::CreateIssueRequest,
) -> Result<(CreateIssueCommand, Option<RequestId>), TrackerError> {
    let mut v = Violations::new();
    let integration_id = v.check("integration_id", IntegrationId::parse(&r.integration_id));
    if r.organization_id <= 0 {
        v.add("organization_id", "must be a positive id");
    }
    if r.group_ids.is_empty() {
        v.add("group_ids", "must list at least one group to link");
    }
    for (i, id) in r.group_ids.iter().enumerate() {
        if *id <= 0 {
            v.add(format!("group_ids[{i}]"), "must be a positive id");
        } else if r.group_ids[..i].contains(id) {
            v.add(format!("group_ids[{i}]"), format!("{id} is listed twice"));
        }
    }
    // Sentry's messages, checked in its order.
    if r.issue_type_id.trim().is_empty() {
        v.add("issue_type_id", "Issue type is required.");
    }
    if r.project_id.trim().is_empty() {
        v.add("project_id", "Jira project is required");
    }
    if r.title.trim().is_empty() {
        v.add(
            "title",
            "must not be empty (it becomes the issue's summary)",
        );
    }
    let mut fields = BTreeMap::new();
    for (key, value) in r.fields.map(|s| s.fields).unwrap_or_default() {
        let field = format!("fields.{key}");
        if matches!(
            key.as_str(),
            "project" | "issuetype" | "summary" | "title" | "description"
        ) {
            v.add(
                field,
                "is set by project_id, issue_type_id, title or description, not in fields",
            );
            continue;
        }
        if let Some(Some(value)) = form_value(&mut v, &field, value) {
            fields.insert(key, value);
        }
    }
    let request_id = v.check("request_id", RequestId::parse_optional(&r.request_id));
    Ok(v.finish_with(|| {
        Some((
            CreateIssueCommand {
                integration_id: integration_id?,
                organization_id: r.organization_id,
                group_ids: r.group_ids.clone(),
                form: crate::issues::FormSnapshot {
                    project_id: r.project_id.trim().to_owned(),
                    issue_type_id: r.issue_type_id.trim().to_owned(),
                    title: r.title.trim().to_owned(),
                    description: r.description.clone(),
                    fields,
                },
            },
            request_id?,
        ))
    })?)
}

/// A created issue.
pub fn jira_issue(issue: &CreatedIssue) -> pb::JiraIssue {
    pb::JiraIssue {
        key: issue.key.clone(),
        id: issue.id.clone(),
        url: issue.url.clone(),
        title: issue.title.clone(),
        description: issue.description.clone(),
    }
}

/// A link state.
pub fn link_state(state: LinkState) -> pb::LinkState {
    match state {
        LinkState::Linked => pb::LinkState::Linked,
        LinkState::Pending => pb::LinkState::Pending,
        LinkState::Failed => pb::LinkState::Failed,
    }
}

/// A form field.
pub fn form_field(f: FormField) -> pb::FormField {
    let kind = match f.kind {
        FieldKind::Text => pb::FieldKind::Text,
        FieldKind::Textarea => pb::FieldKind::Textarea,
        FieldKind::Select => pb::FieldKind::Select,
        FieldKind::MultiSelect => pb::FieldKind::MultiSelect,
        FieldKind::AsyncSelect => pb::FieldKind::AsyncSelect,
        FieldKind::Number => pb::FieldKind::Number,
    };
    pb::FormField {
        name: f.name,
        label: f.label,
        kind: kind.into(),
        required: f.required,
        choices: f
            .choices
            .into_iter()
            .map(|(value, label)| pb::FieldChoice { value, label })
            .collect(),
        default_value: f.default,
        search_url: f.search_url,
        multiple: f.multiple,
        help_text: String::new(),
        schema_type: f.schema_type,
    }
}

/// A delivery-state filter: UNSPECIFIED means any; IGNORED never matches (ignored
/// webhooks are not stored).
pub fn delivery_state_filter(v: &mut Violations, raw: i32) -> Option<Option<DeliveryState>> {
    match pb::DeliveryState::try_from(raw) {
        Ok(pb::DeliveryState::Unspecified) => Some(None),
        Ok(pb::DeliveryState::Pending) => Some(Some(DeliveryState::Pending)),
        Ok(pb::DeliveryState::Delivered) => Some(Some(DeliveryState::Delivered)),
        Ok(pb::DeliveryState::Failed) => Some(Some(DeliveryState::Failed)),
        Ok(pb::DeliveryState::Ignored) => {
            v.add(
                "state",
                "ignored webhooks are answered and counted, not stored; there are none to list",
            );
            None
        }
        Err(_) => {
            v.add("state", format!("{raw} is not a DeliveryState value"));
            None
        }
    }
}

/// A stored delivery; `with_body` for GetWebhookDelivery.
pub fn delivery(row: webhook_delivery::Model, with_body: bool) -> pb::WebhookDelivery {
    let state = match DeliveryState::from_stored(&row.state) {
        Some(DeliveryState::Pending) => pb::DeliveryState::Pending,
        Some(DeliveryState::Delivered) => pb::DeliveryState::Delivered,
        Some(DeliveryState::Failed) => pb::DeliveryState::Failed,
        None => pb::DeliveryState::Unspecified,
    };
    let headers: Vec<(String, String)> = serde_json::from_str(&row.headers).unwrap_or_default();
    let actions: Vec<DeliveryAction> = serde_json::from_str(&row.actions).unwrap_or_default();
    let next_attempt_time = if row.state == DeliveryState::Pending.as_str() {
        row.next_attempt_at.map(to_timestamp)
    } else {
        None
    };
    pb::WebhookDelivery {
        id: row.id,
        integration_id: row.integration_id,
        delivery_key: row.delivery_key,
        event_type: row.event_type,
        issue_key: row.issue_key,
        jira_issue_id: row.jira_issue_id,
        receive_time: Some(to_timestamp(row.received_at)),
        headers: headers.into_iter().collect::<HashMap<_, _>>(),
        state: state.into(),
        attempts: row.attempts,
        last_error: row.last_error,
        next_attempt_time,
        actions: actions
            .into_iter()
            .map(|a| pb::DeliveryAction {
                summary: a.summary,
                group_effects: a
                    .group_effects
                    .into_iter()
                    .map(|e| pb::GroupEffect {
                        organization_id: e.organization_id,
                        group_id: e.group_id,
                        outcome: e.outcome,
                    })
                    .collect(),
            })
            .collect(),
        body: if with_body { row.body } else { String::new() },
        complete_time: row.completed_at.map(to_timestamp),
    }
}
