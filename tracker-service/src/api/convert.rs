//! Protobuf ⇄ domain conversions of `tracker.v1`: requests become domain values
//! (`TryFrom`, every field violation collected), results become messages
//! (`From`) without secrets.

use std::collections::{BTreeMap, HashMap};

use prost_types::value::Kind;
use proto::tracker::v1 as pb;
use service_runtime::ids::{IntegrationId, IssueKey, JiraIssueId, RequestId};
use service_runtime::pagination::PageRequest;
use service_runtime::secret::Secret;
use service_runtime::status::Violations;
use service_runtime::text;
use service_runtime::time::to_timestamp;

use super::Mutation;
use crate::domain::delivery::{DeliveryAction, DeliveryRecord, DeliveryState};
use crate::domain::sync::SyncOutcome;
use crate::domain::{AuthMode, BaseUrl, Credentials, GroupLinkTemplate, IntegrationSummary};
use crate::error::TrackerError;
use crate::integrations::{IntegrationChanges, NewIntegration};
use crate::issues::{CreateIssueCommand, CreatedIssue, FormSnapshot, LinkState};
use crate::jira::fields::FormValue;
use crate::jira::form::{FieldKind, FormField};
use crate::webhooks::inbox::DeliveryFilter;

/// Largest page of ListWebhookDeliveries (a delivery carries up to 32 headers
/// and its actions).
const DELIVERIES_PAGE: u64 = 50;

/// Groups named in one CreateIssue.
const MAX_GROUPS_PER_CALL: usize = 100;
/// Jira ids and field keys (`10000`, `customfield_10200`), in bytes.
const MAX_ID_BYTES: usize = 64;
/// A title, in characters (Jira keeps the first 255 as the summary).
const MAX_TITLE_CHARS: usize = 1000;
/// A description, in characters (Jira's own limit for text fields).
const MAX_DESCRIPTION_CHARS: usize = 32_767;
/// Form values in one CreateIssue.
const MAX_FIELDS: usize = 100;
/// Items of one list value, and characters of one text value.
const MAX_LIST_ITEMS: usize = 100;
const MAX_VALUE_CHARS: usize = 32_767;

/// The longest credential accepted (API tokens, personal access tokens and
/// Connect shared secrets are far shorter).
const MAX_CREDENTIAL_BYTES: usize = 4096;

/// The shortest webhook secret accepted: a shorter one can be guessed.
pub const MIN_WEBHOOK_SECRET_BYTES: usize = 16;

/// The longest webhook secret, Connect client key and display name.
const MAX_SECRET_BYTES: usize = 256;
const MAX_CLIENT_KEY_BYTES: usize = 256;
const MAX_DISPLAY_NAME_CHARS: usize = 200;

/// A credential: printable ASCII, 1 to [`MAX_CREDENTIAL_BYTES`] bytes.
fn secret_credential(v: &mut Violations, field: &str, value: &str) -> Option<String> {
    if value.trim().is_empty() {
        v.add(field, "must not be empty");
        return None;
    }
    v.check(field, text::token(value.trim(), 1, MAX_CREDENTIAL_BYTES))
}

/// A webhook secret: printable ASCII, at least 16 bytes.
fn webhook_secret(v: &mut Violations, value: &str) -> Option<Secret<String>> {
    v.check(
        "webhook_secret",
        text::token(value, MIN_WEBHOOK_SECRET_BYTES, MAX_SECRET_BYTES),
    )
    .map(Secret::new)
}

/// A display name: one line, at most [`MAX_DISPLAY_NAME_CHARS`] characters.
fn display_name(v: &mut Violations, value: &str) -> Option<String> {
    v.check("display_name", text::line(value, MAX_DISPLAY_NAME_CHARS))
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
            let email = v.check(
                "credentials.api_token.account_email",
                text::line(&c.account_email, 254).and_then(|e| {
                    if e.is_empty() {
                        Err(text::TextError::from("must not be empty"))
                    } else {
                        Ok(e)
                    }
                }),
            );
            let token = secret_credential(v, "credentials.api_token.api_token", &c.api_token);
            Some(Credentials::ApiToken {
                account_email: email?,
                api_token: Secret::new(token?),
            })
        }
        Credential::PersonalAccessToken(c) => {
            let token = secret_credential(v, "credentials.personal_access_token.token", &c.token);
            Some(Credentials::PersonalAccessToken {
                token: Secret::new(token?),
            })
        }
        Credential::Connect(c) => {
            let key = if c.client_key.trim().is_empty() {
                v.add("credentials.connect.client_key", "must not be empty");
                None
            } else {
                v.check(
                    "credentials.connect.client_key",
                    text::token(c.client_key.trim(), 1, MAX_CLIENT_KEY_BYTES),
                )
            };
            let secret =
                secret_credential(v, "credentials.connect.shared_secret", &c.shared_secret);
            Some(Credentials::Connect {
                client_key: key?,
                shared_secret: Secret::new(secret?),
            })
        }
    }
}

impl TryFrom<pb::CreateIntegrationRequest> for Mutation<NewIntegration> {
    type Error = TrackerError;
    fn try_from(r: pb::CreateIntegrationRequest) -> Result<Self, Self::Error> {
        let mut v = Violations::new();
        let id = v.check("integration_id", IntegrationId::parse(&r.integration_id));
        let base_url = v.check("base_url", BaseUrl::parse(&r.base_url));
        let credentials = credentials(&mut v, r.credentials);
        let request_id = v.check("request_id", RequestId::parse_optional(&r.request_id));
        let display_name = match display_name(&mut v, &r.display_name) {
            Some(name) if name.is_empty() => Some(r.integration_id.clone()),
            other => other,
        };
        let webhook_secret = if r.webhook_secret.is_empty() {
            Some(None)
        } else {
            webhook_secret(&mut v, &r.webhook_secret).map(Some)
        };
        let group_link_template = if r.group_link_template.trim().is_empty() {
            Some(None)
        } else {
            v.check(
                "group_link_template",
                GroupLinkTemplate::parse(&r.group_link_template),
            )
            .map(Some)
        };
        Ok(v.finish_with(|| {
            Some(Mutation {
                command: NewIntegration {
                    id: id?,
                    display_name: display_name?,
                    base_url: base_url?,
                    credentials: credentials?,
                    webhook_secret: webhook_secret?,
                    email_api_allowed: r.email_api_allowed,
                    group_link_template: group_link_template?,
                },
                request_id: request_id?,
            })
        })?)
    }
}

impl TryFrom<pb::UpdateIntegrationRequest> for Mutation<IntegrationChanges> {
    type Error = TrackerError;
    fn try_from(r: pb::UpdateIntegrationRequest) -> Result<Self, Self::Error> {
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
        let webhook_secret = match r.webhook_secret.as_deref() {
            None => Some(None),
            Some("") => Some(Some(None)),
            Some(raw) => webhook_secret(&mut v, raw).map(|s| Some(Some(s))),
        };
        let name = match r.display_name.as_deref() {
            None => Some(None),
            Some(raw) => display_name(&mut v, raw).map(Some),
        };
        let group_link_template = match r.group_link_template.as_deref().map(str::trim) {
            None => Some(None),
            Some("") => Some(Some(None)),
            Some(raw) => v
                .check("group_link_template", GroupLinkTemplate::parse(raw))
                .map(|t| Some(Some(t))),
        };
        Ok(v.finish_with(|| {
            Some(Mutation {
                command: IntegrationChanges {
                    id: id?,
                    display_name: name?,
                    base_url: base_url?,
                    credentials: credentials?,
                    webhook_secret: webhook_secret?,
                    email_api_allowed: r.email_api_allowed,
                    group_link_template: group_link_template?,
                },
                request_id: request_id?,
            })
        })?)
    }
}

impl From<IntegrationSummary> for pb::Integration {
    fn from(s: IntegrationSummary) -> Self {
        let auth_mode = match s.auth_mode {
            AuthMode::ApiToken => pb::AuthMode::ApiToken,
            AuthMode::PersonalAccessToken => pb::AuthMode::PersonalAccessToken,
            AuthMode::Connect => pb::AuthMode::Connect,
        };
        pb::Integration {
            // Connect apps post every installation's webhooks to one URL (the
            // JWT names the installation).
            webhook_path: if s.auth_mode == AuthMode::Connect {
                "/webhooks/jira".to_owned()
            } else {
                format!("/webhooks/jira/{}", s.id)
            },
            integration_id: s.id.to_string(),
            display_name: s.display_name,
            base_url: s.base_url.to_string(),
            auth_mode: auth_mode.into(),
            account_email: s.account_email,
            connect_client_key: s.connect_client_key,
            credential_set: true,
            webhook_secret_set: s.webhook_secret_set,
            email_api_allowed: s.email_api_allowed,
            group_link_template: s
                .group_link_template
                .map(|t| t.as_str().to_owned())
                .unwrap_or_default(),
            create_time: Some(to_timestamp(s.created_at)),
            update_time: Some(to_timestamp(s.updated_at)),
        }
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
        Some(Kind::StringValue(s)) => v
            .check(field, text::block(&s, MAX_VALUE_CHARS))
            .map(|s| Some(FormValue::Text(s))),
        Some(Kind::NumberValue(n)) => Some(Some(FormValue::Number(n))),
        Some(Kind::BoolValue(b)) => Some(Some(FormValue::Text(b.to_string()))),
        Some(Kind::ListValue(list)) => {
            v.check(field, text::count(&list.values, MAX_LIST_ITEMS))?;
            let mut items = Vec::with_capacity(list.values.len());
            for item in list.values {
                match item.kind.as_ref().and_then(scalar) {
                    Some(text) => items.push(v.check(field, text::line(&text, 1000))?),
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

impl TryFrom<pb::CreateIssueRequest> for Mutation<CreateIssueCommand> {
    type Error = TrackerError;
    fn try_from(r: pb::CreateIssueRequest) -> Result<Self, Self::Error> {
        let mut v = Violations::new();
        let integration_id = v.check("integration_id", IntegrationId::parse(&r.integration_id));
        if r.organization_id <= 0 {
            v.add("organization_id", "must be a positive id");
        }
        if r.group_ids.is_empty() {
            v.add("group_ids", "must list at least one group to link");
        }
        v.check("group_ids", text::count(&r.group_ids, MAX_GROUPS_PER_CALL));
        for (i, id) in r.group_ids.iter().enumerate().take(MAX_GROUPS_PER_CALL) {
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
        let project_id = v.check(
            "project_id",
            text::token(r.project_id.trim(), 0, MAX_ID_BYTES),
        );
        let issue_type_id = v.check(
            "issue_type_id",
            text::token(r.issue_type_id.trim(), 0, MAX_ID_BYTES),
        );
        let title = v.check("title", text::line(&r.title, MAX_TITLE_CHARS));
        let description = v.check(
            "description",
            text::block(&r.description, MAX_DESCRIPTION_CHARS),
        );
        let raw_fields = r.fields.map(|s| s.fields).unwrap_or_default();
        if raw_fields.len() > MAX_FIELDS {
            v.add(
                "fields",
                format!(
                    "has {} fields; at most {MAX_FIELDS} are accepted",
                    raw_fields.len()
                ),
            );
        }
        let mut fields = BTreeMap::new();
        for (key, value) in raw_fields.into_iter().take(MAX_FIELDS) {
            let field = format!("fields.{key}");
            if key.len() > MAX_ID_BYTES {
                v.add(
                    "fields",
                    format!("a field key is longer than {MAX_ID_BYTES} bytes"),
                );
                continue;
            }
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
            Some(Mutation {
                command: CreateIssueCommand {
                    integration_id: integration_id?,
                    organization_id: r.organization_id,
                    group_ids: r.group_ids.clone(),
                    acting_user_id: (r.acting_user_id > 0).then_some(r.acting_user_id),
                    form: FormSnapshot {
                        project_id: project_id?,
                        issue_type_id: issue_type_id?,
                        title: title?,
                        description: description?,
                        fields,
                    },
                },
                request_id: request_id?,
            })
        })?)
    }
}

impl From<&CreatedIssue> for pb::JiraIssue {
    fn from(issue: &CreatedIssue) -> Self {
        Self {
            key: issue.key.clone(),
            id: issue.id.clone(),
            url: issue.url.clone(),
            title: issue.title.clone(),
            description: issue.description.clone(),
        }
    }
}

impl From<LinkState> for pb::LinkState {
    fn from(state: LinkState) -> Self {
        match state {
            LinkState::Linked => Self::Linked,
            LinkState::Pending => Self::Pending,
            LinkState::Failed => Self::Failed,
        }
    }
}

impl From<FormField> for pb::FormField {
    fn from(f: FormField) -> Self {
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
            search_url: String::new(),
            search_field: f.search_field,
            multiple: f.multiple,
            help_text: f.help_text,
            schema_type: f.schema_type,
        }
    }
}

/// A ListWebhookDeliveries request: its filters and page.
#[derive(Debug)]
pub struct DeliveryQuery {
    /// Which deliveries.
    pub filter: DeliveryFilter,
    /// Which page of them.
    pub page: PageRequest<i64>,
}

/// A delivery-state filter: UNSPECIFIED means any.
fn delivery_state_filter(v: &mut Violations, raw: i32) -> Option<Option<DeliveryState>> {
    match pb::DeliveryState::try_from(raw) {
        Ok(pb::DeliveryState::Unspecified) => Some(None),
        Ok(pb::DeliveryState::Pending) => Some(Some(DeliveryState::Pending)),
        Ok(pb::DeliveryState::Delivered) => Some(Some(DeliveryState::Delivered)),
        Ok(pb::DeliveryState::Failed) => Some(Some(DeliveryState::Failed)),
        Ok(pb::DeliveryState::Ignored) => Some(Some(DeliveryState::Ignored)),
        Err(_) => {
            v.add("state", format!("{raw} is not a DeliveryState value"));
            None
        }
    }
}

/// An optional filter: empty means "not set".
fn optional<T, E: std::fmt::Display>(
    v: &mut Violations,
    field: &str,
    raw: &str,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Option<Option<T>> {
    if raw.is_empty() {
        Some(None)
    } else {
        v.check(field, parse(raw)).map(Some)
    }
}

impl TryFrom<pb::ListWebhookDeliveriesRequest> for DeliveryQuery {
    type Error = TrackerError;
    fn try_from(r: pb::ListWebhookDeliveriesRequest) -> Result<Self, Self::Error> {
        let mut v = Violations::new();
        let integration_id = optional(
            &mut v,
            "integration_id",
            &r.integration_id,
            IntegrationId::parse,
        );
        let state = delivery_state_filter(&mut v, r.state);
        let issue_key = optional(&mut v, "issue_key", &r.issue_key, IssueKey::parse);
        let jira_issue_id = optional(
            &mut v,
            "jira_issue_id",
            &r.jira_issue_id,
            JiraIssueId::parse,
        );
        if r.delivery_key.len() > 300 {
            v.add("delivery_key", "is longer than 300 characters");
        }
        let filters = format!(
            "integration={};state={};issue={};jira={};key={}",
            r.integration_id, r.state, r.issue_key, r.jira_issue_id, r.delivery_key
        );
        let page = match PageRequest::<i64>::parse(r.page_size, &r.page_token, &filters) {
            Ok(page) => Some(page.at_most(DELIVERIES_PAGE)),
            Err(violation) => {
                v.add(violation.field, violation.description);
                None
            }
        };
        Ok(v.finish_with(|| {
            Some(Self {
                filter: DeliveryFilter {
                    integration_id: integration_id?,
                    state: state?,
                    issue_key: issue_key?,
                    jira_issue_id: jira_issue_id?,
                    delivery_key: (!r.delivery_key.is_empty()).then(|| r.delivery_key.clone()),
                },
                page: page?,
            })
        })?)
    }
}

impl From<DeliveryState> for pb::DeliveryState {
    fn from(state: DeliveryState) -> Self {
        match state {
            DeliveryState::Pending => Self::Pending,
            DeliveryState::Delivered => Self::Delivered,
            DeliveryState::Failed => Self::Failed,
            DeliveryState::Ignored => Self::Ignored,
        }
    }
}

impl From<SyncOutcome> for pb::GroupOutcome {
    fn from(outcome: SyncOutcome) -> Self {
        match outcome {
            SyncOutcome::Assigned => Self::Assigned,
            SyncOutcome::Deassigned => Self::Deassigned,
            SyncOutcome::Unchanged => Self::Unchanged,
            SyncOutcome::NoMatchingUser => Self::NoMatchingUser,
            SyncOutcome::Stale => Self::Stale,
            SyncOutcome::SyncDisabled => Self::SyncDisabled,
            SyncOutcome::Resolved => Self::Resolved,
            SyncOutcome::Unresolved => Self::Unresolved,
        }
    }
}

impl From<DeliveryAction> for pb::DeliveryAction {
    fn from(a: DeliveryAction) -> Self {
        Self {
            summary: a.summary,
            group_effects: a
                .group_effects
                .into_iter()
                .map(|e| pb::GroupEffect {
                    organization_id: e.organization_id,
                    group_id: e.group_id,
                    outcome: pb::GroupOutcome::from(e.outcome).into(),
                })
                .collect(),
        }
    }
}

/// A delivery as lists show it: everything but the body.
impl From<DeliveryRecord> for pb::WebhookDelivery {
    fn from(d: DeliveryRecord) -> Self {
        let next_attempt_time = (d.state == DeliveryState::Pending)
            .then_some(d.next_attempt_at)
            .flatten()
            .map(to_timestamp);
        Self {
            id: d.id,
            integration_id: d.integration_id.to_string(),
            delivery_key: d.delivery_key,
            event_type: d.event_type,
            issue_key: d.issue_key,
            jira_issue_id: d.jira_issue_id,
            receive_time: Some(to_timestamp(d.received_at)),
            headers: d.headers.into_iter().collect::<HashMap<_, _>>(),
            state: pb::DeliveryState::from(d.state).into(),
            attempts: d.attempts,
            last_error: d.last_error,
            next_attempt_time,
            actions: d.actions.into_iter().map(Into::into).collect(),
            body: String::new(),
            complete_time: d.completed_at.map(to_timestamp),
            ignored_reason: d.ignored_reason,
        }
    }
}

/// A delivery as GetWebhookDelivery shows it: with its body.
pub fn delivery_with_body(d: DeliveryRecord) -> pb::WebhookDelivery {
    let body = d.body.clone();
    pb::WebhookDelivery { body, ..d.into() }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    /// A full page of the largest deliveries stays under the 4 MiB message
    /// limit default clients enforce.
    #[test]
    fn a_full_page_of_the_largest_deliveries_fits() {
        let widest = |chars: usize| "\u{10348}".repeat(chars);
        let effect = pb::GroupEffect {
            organization_id: i64::MAX,
            group_id: i64::MAX,
            outcome: 8,
        };
        let action = pb::DeliveryAction {
            summary: widest(600),
            group_effects: vec![effect; crate::domain::delivery::MAX_GROUP_EFFECTS],
        };
        let delivery = pb::WebhookDelivery {
            id: i64::MAX,
            integration_id: "x".repeat(63),
            delivery_key: "k".repeat(300),
            event_type: widest(100),
            issue_key: "K".repeat(255),
            jira_issue_id: "9".repeat(20),
            receive_time: None,
            headers: (0..crate::webhooks::intake::MAX_KEPT_HEADERS)
                .map(|i| {
                    (
                        format!("{i:0>64}"),
                        "v".repeat(crate::webhooks::intake::MAX_KEPT_HEADER_BYTES),
                    )
                })
                .collect(),
            state: 3,
            attempts: i32::MAX,
            last_error: widest(1000),
            next_attempt_time: None,
            actions: vec![action; 4],
            body: String::new(),
            complete_time: None,
            ignored_reason: widest(200),
        };
        let page = usize::try_from(DELIVERIES_PAGE).unwrap_or(0) * (delivery.encoded_len() + 8);
        assert!(page < 4 * 1024 * 1024 - 64 * 1024, "{page} bytes");
    }
}
