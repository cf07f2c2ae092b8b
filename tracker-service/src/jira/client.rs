//! The Jira REST client: authentication per integration, per-request deadlines,
//! and retries.
//!
//! Retry policy:
//! - `429` and `503` are retried honouring `Retry-After` (seconds or an HTTP
//!   date), plus jitter, within a bounded budget of attempts and total wait;
//! - other `5xx` and connection errors are retried with exponential backoff and
//!   full jitter, but only for reads: a write whose outcome is unknown is handed
//!   back to the caller, which must check before repeating it (see
//!   [`crate::issue_creation`]);
//! - `400`, `401`, `403`, `404` are never retried.

use std::time::Duration;

use reqwest::Method;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::connect_jwt;
use super::error::{JiraError, capped};
use super::model::{
    Comments, CreateMeta, CreateMetaProject, CreatedIssue, FieldMeta, FieldPage, Issue, IssueState,
    IssueTypeMeta, IssueTypePage, IssueTypeStatuses, JiraUser, Named, OrderedFields, ProjectPage,
    ProjectRef, SearchResult, Status, Suggestions, Transitions, UserEmail,
};
use super::targets::TargetPolicy;
use crate::domain::{Credentials, Integration};
use crate::metrics::Metrics;

/// Client settings.
#[derive(Debug, Clone)]
pub struct JiraSettings {
    /// Deadline of one HTTP request.
    pub request_timeout: Duration,
    /// Most attempts of one call (first try included).
    pub max_attempts: u32,
    /// Most total time spent waiting between attempts of one call.
    pub max_retry_wait: Duration,
    /// Our Connect app key: the `iss` of the JWTs we sign.
    pub connect_app_key: String,
    /// Which hosts requests may go to.
    pub targets: TargetPolicy,
}

impl Default for JiraSettings {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(10),
            max_attempts: 5,
            max_retry_wait: Duration::from_secs(30),
            connect_app_key: "jira-sync".to_owned(),
            targets: TargetPolicy::default(),
        }
    }
}

/// Whether a call may be repeated when its outcome is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeatable {
    /// Reads and other idempotent calls: retried on 5xx and connection errors.
    Yes,
    /// Writes: only retried when Jira certainly did not act (429).
    OnlyIfNotProcessed,
}

/// One HTTP client for every integration.
#[derive(Debug, Clone)]
pub struct JiraClient {
    http: reqwest::Client,
    settings: JiraSettings,
    metrics: Metrics,
}

impl JiraClient {
    /// Builds the client (rustls; the process's crypto provider must be
    /// installed, see `service_runtime::tls`).
    ///
    /// # Errors
    /// When the TLS backend cannot be set up.
    pub fn new(settings: JiraSettings, metrics: Metrics) -> Result<Self, reqwest::Error> {
        service_runtime::tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(settings.request_timeout)
            .connect_timeout(settings.request_timeout)
            .user_agent(concat!("jira-sync-tracker/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(settings.targets.resolver())
            .build()?;
        Ok(Self {
            http,
            settings,
            metrics,
        })
    }

    /// The client bound to one integration's site and credentials.
    pub fn site<'a>(&'a self, integration: &'a Integration) -> Site<'a> {
        Site {
            client: self,
            integration,
        }
    }
}

/// Calls to one Jira site.
#[derive(Debug)]
pub struct Site<'a> {
    client: &'a JiraClient,
    integration: &'a Integration,
}

/// How long to wait before attempt `attempt` (1-based) after a transient failure.
fn backoff(attempt: u32) -> Duration {
    let base =
        Duration::from_millis(200).saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
    let capped = base.min(Duration::from_secs(5));
    // Full jitter: anywhere between zero and the capped backoff.
    let millis = u64::try_from(capped.as_millis()).unwrap_or(5000);
    Duration::from_millis(rand::random_range(0..=millis))
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

impl Site<'_> {
    fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.integration.base_url.as_str())
    }

    fn authorization(&self, method: &Method, path_and_query: &str) -> Option<HeaderValue> {
        use base64::Engine as _;
        let value = match &self.integration.credentials {
            Credentials::ApiToken {
                account_email,
                api_token,
            } => format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{account_email}:{}", api_token.expose()))
            ),
            Credentials::PersonalAccessToken { token } => format!("Bearer {}", token.expose()),
            Credentials::Connect { shared_secret, .. } => {
                let (path, query) = path_and_query
                    .split_once('?')
                    .unwrap_or((path_and_query, ""));
                // The query hash covers the path below the site's base URL.
                let token = connect_jwt::sign_request(
                    &self.client.settings.connect_app_key,
                    shared_secret.expose(),
                    method.as_str(),
                    path,
                    query,
                    chrono::Utc::now().timestamp(),
                );
                format!("JWT {token}")
            }
        };
        let mut value = HeaderValue::from_str(&value).ok()?;
        value.set_sensitive(true);
        Some(value)
    }

    /// Sends one call with the retry policy; returns the status and body of a
    /// 2xx answer.
    async fn call(
        &self,
        endpoint: &'static str,
        method: Method,
        path_and_query: &str,
        body: Option<&Value>,
        repeatable: Repeatable,
    ) -> Result<(u16, String), JiraError> {
        let settings = &self.client.settings;
        // An integration registered before the policy was tightened must not be
        // sent to either.
        settings
            .targets
            .check(&self.integration.base_url)
            .map_err(JiraError::Connection)?;
        let mut waited = Duration::ZERO;
        let mut attempt = 1;
        loop {
            let mut request = self
                .client
                .http
                .request(method.clone(), self.url(path_and_query))
                .header("Accept", "application/json");
            if let Some(auth) = self.authorization(&method, path_and_query) {
                request = request.header(AUTHORIZATION, auth);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let outcome = request.send().await;
            let status = match &outcome {
                Ok(response) => response.status().as_u16().to_string(),
                Err(error) if error.is_timeout() => "timeout".to_owned(),
                Err(_) => "connection_error".to_owned(),
            };
            self.client.metrics.jira_call(endpoint, status);
            let (error, wait) = match outcome {
                Ok(response) if response.status().is_success() => {
                    let status = response.status().as_u16();
                    return response
                        .text()
                        .await
                        .map(|text| (status, text))
                        .map_err(|e| JiraError::Connection(capped(&e.to_string())));
                }
                Ok(response) => {
                    let status = response.status().as_u16();
                    let hinted = retry_after(response.headers());
                    let content_type = response
                        .headers()
                        .get(CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    let text = response.text().await.unwrap_or_default();
                    let mut error = JiraError::from_response(status, &content_type, &text);
                    if let JiraError::RateLimited { retry_after } = &mut error {
                        *retry_after = hinted;
                    }
                    let wait = match status {
                        429 => Some(hinted.unwrap_or_else(|| backoff(attempt))),
                        503 if repeatable == Repeatable::Yes => {
                            Some(hinted.unwrap_or_else(|| backoff(attempt)))
                        }
                        500..=599 if repeatable == Repeatable::Yes => Some(backoff(attempt)),
                        _ => None,
                    };
                    (error, wait)
                }
                Err(error) if error.is_timeout() => (
                    JiraError::Timeout,
                    (repeatable == Repeatable::Yes).then(|| backoff(attempt)),
                ),
                Err(error) => {
                    // A failed connect never reached Jira, so even a write may
                    // be repeated.
                    let safe = error.is_connect() || repeatable == Repeatable::Yes;
                    (
                        JiraError::Connection(capped(&error.to_string())),
                        safe.then(|| backoff(attempt)),
                    )
                }
            };
            let Some(wait) = wait else { return Err(error) };
            // Jitter spreads retries of many callers hit by the same limit.
            let wait = wait + Duration::from_millis(rand::random_range(0..=250));
            if attempt >= settings.max_attempts || waited + wait > settings.max_retry_wait {
                return Err(error);
            }
            tracing::debug!(%error, attempt, ?wait, path = path_and_query, "retrying Jira call");
            tokio::time::sleep(wait).await;
            waited += wait;
            attempt += 1;
        }
    }

    async fn get<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        path_and_query: &str,
    ) -> Result<T, JiraError> {
        let answer = self
            .call(endpoint, Method::GET, path_and_query, None, Repeatable::Yes)
            .await?;
        parse(answer)
    }

    /// Create metadata of one project (issue types with their fields) from the
    /// current endpoints (`/issue/createmeta/{project}/issuetypes[/{id}]`, Jira
    /// Cloud and Data Center 8.4+), following their pages; when Jira does not
    /// have them (404: Data Center before 8.4), from the deprecated
    /// `/issue/createmeta?projectIds=…&expand=…`.
    ///
    /// # Errors
    /// Jira's error.
    pub async fn create_meta(&self, project_id: &str) -> Result<CreateMeta, JiraError> {
        match self.create_meta_paged(project_id).await {
            Err(JiraError::NotFound { .. }) => self.create_meta_legacy(project_id).await,
            other => other,
        }
    }

    async fn create_meta_paged(&self, project_id: &str) -> Result<CreateMeta, JiraError> {
        let project = urlencode(project_id);
        let mut types = Vec::new();
        for _ in 0..MAX_METADATA_PAGES {
            let page: IssueTypePage = self
                .get(
                    "createmeta_issuetypes",
                    &format!(
                        "/rest/api/2/issue/createmeta/{project}/issuetypes?startAt={}&maxResults=50",
                        types.len()
                    ),
                )
                .await?;
            let done = page_done(
                page.issue_types.len(),
                types.len(),
                page.total,
                page.is_last,
            );
            types.extend(page.issue_types);
            if done {
                break;
            }
        }
        let mut issuetypes = Vec::with_capacity(types.len());
        for issue_type in types {
            let mut fields: Vec<(String, FieldMeta)> = Vec::new();
            for _ in 0..MAX_METADATA_PAGES {
                let page: FieldPage = self
                    .get(
                        "createmeta_fields",
                        &format!(
                            "/rest/api/2/issue/createmeta/{project}/issuetypes/{}?startAt={}&maxResults=50",
                            urlencode(&issue_type.id),
                            fields.len()
                        ),
                    )
                    .await?;
                let done = page_done(page.fields.len(), fields.len(), page.total, page.is_last);
                fields.extend(page.fields.into_iter().map(|f| (f.field_id, f.meta)));
                if done {
                    break;
                }
            }
            issuetypes.push(IssueTypeMeta {
                id: issue_type.id,
                name: issue_type.name,
                fields: OrderedFields(fields),
            });
        }
        let project = self.project(project_id).await?;
        Ok(CreateMeta {
            projects: vec![CreateMetaProject {
                id: project.id,
                key: project.key,
                name: project.name,
                issuetypes,
            }],
        })
    }

    async fn create_meta_legacy(&self, project_id: &str) -> Result<CreateMeta, JiraError> {
        self.get(
            "createmeta",
            &format!(
                "/rest/api/2/issue/createmeta?projectIds={}&expand=projects.issuetypes.fields",
                urlencode(project_id)
            ),
        )
        .await
    }

    /// The projects the integration's account can see (first page, up to 100).
    ///
    /// # Errors
    /// Jira's error.
    pub async fn projects(&self) -> Result<ProjectPage, JiraError> {
        self.get(
            "project_search",
            "/rest/api/2/project/search?maxResults=100",
        )
        .await
    }

    /// Every project the integration's account can see, following Jira's
    /// pages (`isLast`) up to [`MAX_PROJECT_PAGES`] pages of 100.
    ///
    /// # Errors
    /// Jira's error.
    pub async fn all_projects(&self) -> Result<Vec<ProjectRef>, JiraError> {
        let mut projects = Vec::new();
        for _ in 0..MAX_PROJECT_PAGES {
            let page: ProjectPage = self
                .get(
                    "project_search",
                    &format!(
                        "/rest/api/2/project/search?startAt={}&maxResults=100",
                        projects.len()
                    ),
                )
                .await?;
            let last = page.is_last.unwrap_or(true) || page.values.is_empty();
            projects.extend(page.values);
            if last {
                break;
            }
        }
        Ok(projects)
    }

    /// Issue priorities.
    ///
    /// # Errors
    /// Jira's error.
    pub async fn priorities(&self) -> Result<Vec<Named>, JiraError> {
        self.get("priority", "/rest/api/2/priority").await
    }

    /// A project's versions.
    ///
    /// # Errors
    /// Jira's error.
    pub async fn versions(&self, project_key: &str) -> Result<Vec<Named>, JiraError> {
        self.get(
            "project_versions",
            &format!("/rest/api/2/project/{}/versions", urlencode(project_key)),
        )
        .await
    }

    /// Every status with its category.
    ///
    /// # Errors
    /// Jira's error.
    pub async fn statuses(&self) -> Result<Vec<Status>, JiraError> {
        self.get("status", "/rest/api/2/status").await
    }

    /// An issue's summary and description.
    ///
    /// # Errors
    /// Jira's error.
    pub async fn issue(&self, key: &str) -> Result<Issue, JiraError> {
        self.get(
            "issue",
            &format!(
                "/rest/api/2/issue/{}?fields=summary,description",
                urlencode(key)
            ),
        )
        .await
    }

    /// Issues carrying a label (exact match).
    ///
    /// # Errors
    /// Jira's error.
    pub async fn search_label(&self, label: &str) -> Result<SearchResult, JiraError> {
        self.search(&format!("labels = \"{label}\""), 5).await
    }

    /// Issues matching a JQL query, with their summaries: Cloud's search
    /// (`/rest/api/2/search/jql`, which replaced `/rest/api/2/search` there),
    /// Data Center's `/rest/api/2/search`.
    ///
    /// # Errors
    /// Jira's error.
    pub async fn search(&self, jql: &str, max: u32) -> Result<SearchResult, JiraError> {
        let path = if self.integration.credentials.addresses_users_by_name() {
            "/rest/api/2/search"
        } else {
            "/rest/api/2/search/jql"
        };
        self.get(
            "search",
            &format!(
                "{path}?jql={}&fields=summary&maxResults={max}",
                urlencode(jql)
            ),
        )
        .await
    }

    /// One user, by account id (Data Center: user name).
    ///
    /// # Errors
    /// Jira's error.
    pub async fn user(&self, id: &str) -> Result<JiraUser, JiraError> {
        let parameter = if self.integration.credentials.addresses_users_by_name() {
            "username"
        } else {
            "accountId"
        };
        self.get(
            "user",
            &format!("/rest/api/2/user?{parameter}={}", urlencode(id)),
        )
        .await
    }

    /// One project, by id or key.
    ///
    /// # Errors
    /// Jira's error.
    pub async fn project(&self, id_or_key: &str) -> Result<ProjectRef, JiraError> {
        self.get(
            "project",
            &format!("/rest/api/2/project/{}", urlencode(id_or_key)),
        )
        .await
    }

    /// Users who may be assigned issues of a project, matching `query` (Data
    /// Center: `username=`).
    ///
    /// # Errors
    /// Jira's error.
    pub async fn assignable_users_for_project(
        &self,
        project_key: &str,
        query: &str,
    ) -> Result<Vec<JiraUser>, JiraError> {
        let parameter = if self.integration.credentials.addresses_users_by_name() {
            "username"
        } else {
            "query"
        };
        self.get(
            "user_assignable_search",
            &format!(
                "/rest/api/2/user/assignable/search?project={}&{parameter}={}&maxResults=50",
                urlencode(project_key),
                urlencode(query)
            ),
        )
        .await
    }

    /// JQL autocomplete suggestions for a field (`cf[10100]` for custom
    /// fields).
    ///
    /// # Errors
    /// Jira's error.
    pub async fn autocomplete(
        &self,
        field_name: &str,
        value: &str,
    ) -> Result<Suggestions, JiraError> {
        self.get(
            "autocomplete",
            &format!(
                "/rest/api/2/jql/autocompletedata/suggestions?fieldName={}&fieldValue={}",
                urlencode(field_name),
                urlencode(value)
            ),
        )
        .await
    }

    /// A user's e-mail address through the e-mail API (Cloud, needs the
    /// permission to see it).
    ///
    /// # Errors
    /// Jira's error.
    pub async fn user_email(&self, account_id: &str) -> Result<UserEmail, JiraError> {
        self.get(
            "user_email",
            &format!("/rest/api/3/user/email?accountId={}", urlencode(account_id)),
        )
        .await
    }

    /// An issue's current assignee, status and project.
    ///
    /// # Errors
    /// Jira's error (`NotFound` for a deleted issue).
    pub async fn issue_state(&self, id_or_key: &str) -> Result<IssueState, JiraError> {
        self.get(
            "issue_state",
            &format!(
                "/rest/api/2/issue/{}?fields=assignee,status,project",
                urlencode(id_or_key)
            ),
        )
        .await
    }

    /// Users who may be assigned the issue, matching `query` (an e-mail
    /// address). Data Center names the parameter `username`.
    ///
    /// # Errors
    /// Jira's error.
    pub async fn assignable_users(
        &self,
        issue_key: &str,
        query: &str,
    ) -> Result<Vec<JiraUser>, JiraError> {
        let parameter = if self.integration.credentials.addresses_users_by_name() {
            "username"
        } else {
            "query"
        };
        self.get(
            "user_assignable_search",
            &format!(
                "/rest/api/2/user/assignable/search?issueKey={}&{parameter}={}",
                urlencode(issue_key),
                urlencode(query)
            ),
        )
        .await
    }

    /// Sets the issue's assignee: a Cloud account id or a Data Center user
    /// name, or nobody. Setting the same value again changes nothing, so the
    /// call is retried like a read.
    ///
    /// # Errors
    /// Jira's error.
    pub async fn set_assignee(&self, id_or_key: &str, user: Option<&str>) -> Result<(), JiraError> {
        let field = if self.integration.credentials.addresses_users_by_name() {
            "name"
        } else {
            "accountId"
        };
        let body = serde_json::json!({ field: user });
        self.call(
            "issue_assignee",
            Method::PUT,
            &format!("/rest/api/2/issue/{}/assignee", urlencode(id_or_key)),
            Some(&body),
            Repeatable::Yes,
        )
        .await?;
        Ok(())
    }

    /// The transitions available from the issue's current status.
    ///
    /// # Errors
    /// Jira's error.
    pub async fn transitions(&self, id_or_key: &str) -> Result<Transitions, JiraError> {
        self.get(
            "issue_transitions",
            &format!("/rest/api/2/issue/{}/transitions", urlencode(id_or_key)),
        )
        .await
    }

    /// Moves the issue through a transition. Not repeated when its outcome is
    /// unknown (the caller reads the issue's status before trying again).
    ///
    /// # Errors
    /// Jira's error.
    pub async fn transition(&self, id_or_key: &str, transition_id: &str) -> Result<(), JiraError> {
        let body = serde_json::json!({ "transition": { "id": transition_id } });
        self.call(
            "issue_transition",
            Method::POST,
            &format!("/rest/api/2/issue/{}/transitions", urlencode(id_or_key)),
            Some(&body),
            Repeatable::OnlyIfNotProcessed,
        )
        .await?;
        Ok(())
    }

    /// A project's statuses, per issue type.
    ///
    /// # Errors
    /// Jira's error.
    pub async fn project_statuses(
        &self,
        project_id: &str,
    ) -> Result<Vec<IssueTypeStatuses>, JiraError> {
        self.get(
            "project_statuses",
            &format!("/rest/api/2/project/{}/statuses", urlencode(project_id)),
        )
        .await
    }

    /// The issue's comments with their properties (the first 100).
    ///
    /// # Errors
    /// Jira's error.
    pub async fn comments(&self, key: &str) -> Result<Comments, JiraError> {
        self.get(
            "issue_comments",
            &format!(
                "/rest/api/2/issue/{}/comment?expand=properties&maxResults=100",
                urlencode(key)
            ),
        )
        .await
    }

    /// Adds a comment carrying the entity property `(property, value)`, by
    /// which a retry recognises it. Not repeated when its outcome is unknown.
    ///
    /// # Errors
    /// Jira's error.
    pub async fn add_comment(
        &self,
        key: &str,
        body: &str,
        property: &str,
        value: &Value,
    ) -> Result<(), JiraError> {
        let body = serde_json::json!({
            "body": body,
            "properties": [{ "key": property, "value": value }],
        });
        self.call(
            "issue_comment",
            Method::POST,
            &format!("/rest/api/2/issue/{}/comment", urlencode(key)),
            Some(&body),
            Repeatable::OnlyIfNotProcessed,
        )
        .await?;
        Ok(())
    }

    /// Creates an issue. Not repeated by the client when its outcome is unknown.
    ///
    /// # Errors
    /// Jira's error; see [`JiraError::outcome_unknown`].
    pub async fn create_issue(&self, fields: &Value) -> Result<CreatedIssue, JiraError> {
        let body = serde_json::json!({ "fields": fields });
        let answer = self
            .call(
                "create_issue",
                Method::POST,
                "/rest/api/2/issue",
                Some(&body),
                Repeatable::OnlyIfNotProcessed,
            )
            .await?;
        // A 2xx without a readable id and key may still have created the
        // issue: `Unreadable` is an unknown outcome, resolved by the marker.
        parse(answer)
    }
}

/// The most pages of projects read (100 each).
pub const MAX_PROJECT_PAGES: usize = 50;

/// The most pages of create metadata read per list (50 items each).
pub const MAX_METADATA_PAGES: usize = 20;

/// Whether a page was the last: Data Center says so (`isLast`); Cloud gives
/// the total; an empty page ends it either way.
fn page_done(got: usize, before: usize, total: Option<u64>, is_last: Option<bool>) -> bool {
    got == 0
        || is_last == Some(true)
        || total.is_some_and(|t| (before + got) as u64 >= t)
        || (is_last.is_none() && total.is_none())
}

fn parse<T: DeserializeOwned>((status, body): (u16, String)) -> Result<T, JiraError> {
    serde_json::from_str(&body).map_err(|e| JiraError::Unreadable {
        status,
        message: capped(&e.to_string()),
    })
}

/// Percent-encodes a query value or path segment.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for byte in s.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 1..20 {
            assert!(backoff(attempt) <= Duration::from_secs(5));
        }
    }
}
