//! SearchJira: the choices of a form's async fields as a user types, as
//! Sentry's `JiraSearchEndpoint` finds them.
//!
//! - `externalIssue` and `parent`: issues. A query shaped like an issue key
//!   (`^[A-Za-z][A-Za-z0-9]*-\d+$`) searches `id="Q"`, anything else
//!   `text ~ "Q"` (quotes escaped); choices are labelled `(KEY) summary` and
//!   submit the key.
//! - `assignee` and `reporter`: the project's assignable users matching the
//!   query; labelled `Name - address (user name)` as far as Jira shows them,
//!   submitting the account id (Data Center: the user name).
//! - Any other field: Jira's JQL autocomplete for it (`customfield_N` is
//!   `cf[N]` in JQL), labels stripped of the HTML Jira puts in them.
//!
//! Jira's failures keep their reason (`JIRA_UNAVAILABLE`, ...) and say what
//! could not be fetched.

use service_runtime::ids::IntegrationId;

use super::IssueService;
use crate::domain::Integration;
use crate::error::TrackerError;
use crate::integrations;
use crate::jira::JiraError;
use crate::jira::model::JiraUser;

/// A search.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    /// The integration.
    pub integration_id: IntegrationId,
    /// The form field searched (its name in the form).
    pub field: String,
    /// What the user typed.
    pub query: String,
    /// The form's project, for user fields.
    pub project_id: Option<String>,
}

/// The most choices a search returns.
pub const MAX_RESULTS: u32 = 50;

/// Whether `query` looks like an issue key.
pub fn is_issue_key(query: &str) -> bool {
    let Some((project, number)) = query.rsplit_once('-') else {
        return false;
    };
    let mut chars = project.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric())
        && !number.is_empty()
        && number.chars().all(|c| c.is_ascii_digit())
}

/// The JQL that finds issues for `query`.
pub fn issue_jql(query: &str) -> String {
    let escaped = query.replace('\\', "\\\\").replace('"', "\\\"");
    if is_issue_key(query) {
        format!("id=\"{escaped}\"")
    } else {
        format!("text ~ \"{escaped}\"")
    }
}

/// A field's name in JQL: `customfield_10100` is `cf[10100]`.
pub fn jql_field(field: &str) -> String {
    match field.strip_prefix("customfield_") {
        Some(number) => format!("cf[{number}]"),
        None => field.to_owned(),
    }
}

/// Text without HTML tags, with the few entities Jira uses decoded.
pub fn strip_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_tag = false;
    for c in text.chars() {
        match (c, in_tag) {
            ('<', _) => in_tag = true,
            ('>', true) => in_tag = false,
            (c, false) => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// A user's choice label (Sentry's `build_user_choice`).
pub fn user_label(user: &JiraUser) -> String {
    let mut label = user.display_name.clone().unwrap_or_default();
    if let Some(email) = user.email_address.as_deref().filter(|e| !e.is_empty()) {
        label.push_str(&format!(" - {email}"));
    }
    if let Some(name) = user.name.as_deref().filter(|n| !n.is_empty()) {
        label.push_str(&format!(" ({name})"));
    }
    label.trim().to_owned()
}

/// Jira's failure, saying what could not be fetched.
fn failed(error: JiraError, what: &str) -> TrackerError {
    let mut error = TrackerError::from(error);
    if let TrackerError::Refused(refusal) = &mut error {
        refusal.message = format!("{what}: {}", refusal.message);
    }
    error
}

impl IssueService {
    /// SearchJira: `(value, label)` choices.
    ///
    /// # Errors
    /// NOT_FOUND for an unknown integration; INVALID_ARGUMENT for a user field
    /// without a project; Jira's errors.
    pub async fn search(&self, r: SearchRequest) -> Result<Vec<(String, String)>, TrackerError> {
        let integration = integrations::load(self.db.conn(), &r.integration_id).await?;
        match r.field.as_str() {
            "externalIssue" | "parent" => self.search_issues(&integration, &r.query).await,
            "assignee" | "reporter" => {
                let project = r.project_id.as_deref().ok_or_else(|| {
                    TrackerError::invalid_field(
                        "project_id",
                        "is required to search users (they are searched among the project's assignable users)",
                    )
                })?;
                self.search_users(&integration, project, &r.query).await
            }
            field => {
                let site = self.jira.site(&integration);
                let suggestions = site
                    .autocomplete(&jql_field(field), &r.query)
                    .await
                    .map_err(|e| {
                        failed(
                            e,
                            &format!("unable to fetch autocomplete for {field} from Jira"),
                        )
                    })?;
                Ok(suggestions
                    .results
                    .into_iter()
                    .take(MAX_RESULTS as usize)
                    .map(|s| (s.value, strip_html(&s.display_name)))
                    .collect())
            }
        }
    }

    async fn search_issues(
        &self,
        integration: &Integration,
        query: &str,
    ) -> Result<Vec<(String, String)>, TrackerError> {
        let found = self
            .jira
            .site(integration)
            .search(&issue_jql(query), MAX_RESULTS)
            .await
            .map_err(|e| failed(e, "something went wrong while communicating with Jira"))?;
        Ok(found
            .issues
            .into_iter()
            .map(|hit| {
                let label = format!("({}) {}", hit.key, hit.fields.summary.unwrap_or_default());
                (hit.key, label)
            })
            .collect())
    }

    async fn search_users(
        &self,
        integration: &Integration,
        project_id: &str,
        query: &str,
    ) -> Result<Vec<(String, String)>, TrackerError> {
        let site = self.jira.site(integration);
        let project = site
            .project(project_id)
            .await
            .map_err(|e| failed(e, "unable to fetch users from Jira"))?;
        let users = site
            .assignable_users_for_project(&project.key, query)
            .await
            .map_err(|e| failed(e, "unable to fetch users from Jira"))?;
        let by_name = integration.credentials.addresses_users_by_name();
        Ok(users
            .iter()
            .filter_map(|user| {
                let id = if by_name {
                    user.name.clone()
                } else {
                    user.account_id.clone()
                };
                id.filter(|id| !id.is_empty())
                    .map(|id| (id, user_label(user)))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_queries_search_by_key_or_text() {
        let cases: &[(&str, &str)] = &[
            ("HSP-1", r#"id="HSP-1""#),
            ("hsp-1", r#"id="hsp-1""#),
            ("A1B2-42", r#"id="A1B2-42""#),
            ("test", r#"text ~ "test""#),
            ("1HSP-1", r#"text ~ "1HSP-1""#),
            ("HSP-", r#"text ~ "HSP-""#),
            ("HSP-1a", r#"text ~ "HSP-1a""#),
            (r#"say "hi""#, r#"text ~ "say \"hi\"""#),
        ];
        for (query, jql) in cases {
            assert_eq!(issue_jql(query), *jql, "{query}");
        }
    }

    #[test]
    fn custom_fields_are_cf_in_jql_and_labels_lose_their_html() {
        assert_eq!(jql_field("customfield_0123"), "cf[0123]");
        assert_eq!(jql_field("labels"), "labels");
        assert_eq!(strip_html("<b>Sp</b>rint 1 (1)"), "Sprint 1 (1)");
        assert_eq!(strip_html("R&amp;D &lt;3"), "R&D <3");
    }

    #[test]
    fn user_labels_show_what_jira_shows() {
        let user = |name: Option<&str>, email: Option<&str>| JiraUser {
            account_id: Some("deadbeef123".into()),
            name: name.map(str::to_owned),
            email_address: email.map(str::to_owned),
            display_name: Some("Bobby".into()),
        };
        assert_eq!(
            user_label(&user(None, Some("bob@example.org"))),
            "Bobby - bob@example.org"
        );
        assert_eq!(
            user_label(&user(Some("bob"), Some("bob@example.org"))),
            "Bobby - bob@example.org (bob)"
        );
        assert_eq!(user_label(&user(None, Some(""))), "Bobby");
    }
}
