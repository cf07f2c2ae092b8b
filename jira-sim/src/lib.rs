//! A Jira simulator at the HTTP level: serves Sentry's fixtures
//! (`fixtures/jira/`), keeps issues, users and workflows it can change
//! (creates, assignee changes, transitions), sends signed webhooks back after
//! a change as Jira does, records every request, and can be scripted to fail.
//!
//! Only HTTP is simulated: the tracker's real client talks to it over a real
//! socket. The tests, `cargo xtask demo` and the benchmarks use it; the
//! `jira-sim` binary runs it on its own (for the Python client check in CI).
//!
//! Code map: `world` (projects, workflows, users, issues and their JSON),
//! `routes` (the REST endpoints), `webhooks` (signing and posting webhooks).
//!
//! Besides Jira's endpoints, two of its own serve other processes (the
//! benchmarks): `POST /_sim/seed` adds users and issues
//! (`{"users": [{"account_id", "email", "email_visible"}], "issues": [{"key",
//! "id", "project_id"}]}`), and `GET /_sim/writes?suffix=…` lists the requests
//! that changed something, with when they arrived (`at_us`, microseconds since
//! the Unix epoch).

#![allow(clippy::unwrap_used)]

mod routes;
mod webhooks;
mod world;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, Method};
use serde_json::Value;

pub use webhooks::{WebhookTarget, signature};
use world::{SimIssue, SimProject, SimUser};

/// The directory of Sentry's Jira fixtures.
pub fn fixtures_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/jira")
}

/// A fixture's raw bytes.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = fixtures_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A fixture parsed as JSON.
pub fn fixture_json(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).unwrap()
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Method.
    pub method: Method,
    /// Path.
    pub path: String,
    /// Query string (undecoded), or empty.
    pub query: String,
    /// Request headers.
    pub headers: HeaderMap,
    /// Body, parsed when JSON.
    pub body: Value,
    /// When it arrived (wall clock, to compare across processes).
    pub received_at: std::time::SystemTime,
}

/// A scripted answer to the next matching request(s).
#[derive(Debug, Clone)]
struct Scripted {
    method: Method,
    path_prefix: String,
    remaining: usize,
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

/// An issue as a test reads it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueView {
    /// Jira's id.
    pub id: String,
    /// Its key.
    pub key: String,
    /// Its assignee's account id.
    pub assignee: Option<String>,
    /// Its status id.
    pub status_id: String,
}

#[derive(Debug, Default)]
struct FakeState {
    requests: Vec<Recorded>,
    projects: Vec<SimProject>,
    issues: Vec<SimIssue>,
    users: Vec<SimUser>,
    next_number: u32,
    next_changelog: u64,
    script: VecDeque<Scripted>,
    /// After recording a create, wait this long before answering (to make the
    /// client time out although the issue exists).
    create_answer_delay: Option<Duration>,
    /// Answers for the next creates, which are still made: (status, body).
    create_answers: VecDeque<(u16, String)>,
    /// What the e-mail API answers, by account id.
    emails: HashMap<String, String>,
    /// Where webhooks go after a change; none: no webhooks.
    webhooks: Option<WebhookTarget>,
    /// Webhooks posted and the status each got.
    webhooks_sent: Vec<(String, Result<u16, String>)>,
    /// Posts webhooks one after another, in the order of the changes.
    outbox: Option<tokio::sync::mpsc::UnboundedSender<routes::Outgoing>>,
    /// While set, webhooks wait here instead of going out.
    held: Option<Vec<routes::Outgoing>>,
    /// Answers to requests matching (method, path prefix, path suffix) are
    /// delayed this long after the request took effect.
    slow: Vec<(Method, String, String, Duration)>,
    /// Answers to requests matching (method, path prefix, path suffix) wait,
    /// after the request took effect, until [`JiraSim::release_answers`].
    held_answers: Vec<(Method, String, String)>,
    /// Whether held answers may go out (`false` while answers are held).
    answers_open: Option<tokio::sync::watch::Sender<bool>>,
    /// Behave as Data Center before 8.4: no paged create metadata endpoints.
    legacy_createmeta: bool,
}

/// A running simulator.
#[derive(Debug, Clone)]
pub struct JiraSim {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<Mutex<FakeState>>,
}

impl JiraSim {
    /// Starts the simulator on a free port of 127.0.0.1.
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0".parse().expect("address")).await
    }

    /// Starts the simulator on `addr`.
    pub async fn start_on(addr: SocketAddr) -> Self {
        let state = Arc::new(Mutex::new(FakeState {
            next_number: 1,
            next_changelog: 20_000,
            projects: world::projects(),
            ..FakeState::default()
        }));
        let (outbox, outgoing) = tokio::sync::mpsc::unbounded_channel();
        state.lock().unwrap().outbox = Some(outbox);
        tokio::spawn(routes::post_in_order(Arc::clone(&state), outgoing));
        let app = Router::new()
            .fallback(routes::handle)
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, state }
    }

    /// The base URL to register as the integration's site.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    /// The requests with this method and path.
    pub fn requests_to(&self, method: Method, path: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == method && r.path == path)
            .collect()
    }

    /// The requests that change something (anything but GET).
    pub fn writes(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.method != Method::GET)
            .collect()
    }

    /// The issues created so far (their `fields` objects as created).
    pub fn created_issues(&self) -> Vec<Value> {
        self.state
            .lock()
            .unwrap()
            .issues
            .iter()
            .filter(|i| i.fields.is_object())
            .map(|i| serde_json::json!({ "id": i.id, "key": i.key, "fields": i.fields }))
            .collect()
    }

    /// Answers the next `times` requests `METHOD path-prefix…` with `status`.
    pub fn fail_next(
        &self,
        method: Method,
        path_prefix: &str,
        times: usize,
        status: u16,
        headers: &[(&str, &str)],
        body: &str,
    ) {
        self.state.lock().unwrap().script.push_back(Scripted {
            method,
            path_prefix: path_prefix.to_owned(),
            remaining: times,
            status,
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.to_owned(),
        });
    }

    /// Makes the next create create its issue but answer `status` with `body`
    /// (an odd success, or an error although the issue exists).
    pub fn answer_next_create_with(&self, status: u16, body: &str) {
        self.state
            .lock()
            .unwrap()
            .create_answers
            .push_back((status, body.to_owned()));
    }

    /// Makes creates answer only after `delay` (the issue is created at once).
    pub fn delay_create_answers(&self, delay: Option<Duration>) {
        self.state.lock().unwrap().create_answer_delay = delay;
    }

    /// What the e-mail API answers for an account.
    pub fn set_email(&self, account_id: &str, email: &str) {
        self.state
            .lock()
            .unwrap()
            .emails
            .insert(account_id.to_owned(), email.to_owned());
    }

    /// Adds a Jira user, assignable to every issue; `email_visible: false`
    /// hides the address from user and issue answers (the e-mail API still
    /// gives it).
    pub fn add_user(&self, account_id: &str, email: &str, email_visible: bool) {
        let mut s = self.state.lock().unwrap();
        let name = email.split('@').next().unwrap_or(email).to_owned();
        s.users.push(SimUser {
            account_id: account_id.to_owned(),
            name,
            email: email.to_owned(),
            email_visible,
        });
        s.emails.insert(account_id.to_owned(), email.to_owned());
    }

    /// Adds an issue (in the project `project_id`, first status, unassigned),
    /// as if someone had created it in Jira.
    pub fn add_issue(&self, key: &str, id: &str, project_id: &str) {
        let mut s = self.state.lock().unwrap();
        let status = s
            .projects
            .iter()
            .find(|p| p.id == project_id)
            .and_then(|p| p.statuses.first())
            .map_or("10000", |st| st.id);
        let issue = SimIssue {
            id: id.to_owned(),
            key: key.to_owned(),
            fields: serde_json::json!({ "summary": format!("issue {key}") }),
            project_id: project_id.to_owned(),
            status_id: status.to_owned(),
            assignee: None,
            updated: chrono::Utc::now(),
            deleted: false,
            comments: Vec::new(),
        };
        s.issues.push(issue);
    }

    /// An issue's current state.
    pub fn issue(&self, id_or_key: &str) -> Option<IssueView> {
        let s = self.state.lock().unwrap();
        s.issues
            .iter()
            .find(|i| i.is(id_or_key))
            .map(|i| IssueView {
                id: i.id.clone(),
                key: i.key.clone(),
                assignee: i.assignee.clone(),
                status_id: i.status_id.clone(),
            })
    }

    /// Sends signed webhooks to `target` after every change from now on.
    pub fn send_webhooks_to(&self, target: WebhookTarget) {
        self.state.lock().unwrap().webhooks = Some(target);
    }

    /// The webhooks posted so far: their identifier and the tracker's answer.
    pub fn webhooks_sent(&self) -> Vec<(String, Result<u16, String>)> {
        self.state.lock().unwrap().webhooks_sent.clone()
    }

    /// Holds webhooks back (they queue in order) until
    /// [`Self::release_webhooks`].
    pub fn hold_webhooks(&self) {
        let mut s = self.state.lock().unwrap();
        if s.held.is_none() {
            s.held = Some(Vec::new());
        }
    }

    /// Sends the held webhooks, in order, and stops holding.
    pub fn release_webhooks(&self) {
        let mut s = self.state.lock().unwrap();
        let held = s.held.take().unwrap_or_default();
        if let Some(outbox) = &s.outbox {
            for outgoing in held {
                let _ = outbox.send(outgoing);
            }
        }
    }

    /// Holds the answers to `METHOD` requests whose path starts with `prefix`
    /// and ends with `suffix` until [`Self::release_answers`]: the change is
    /// made (and its webhook goes out), its answer waits, as when Jira's
    /// webhook overtakes its answer.
    pub fn hold_answers(&self, method: Method, prefix: &str, suffix: &str) {
        let mut s = self.state.lock().unwrap();
        s.held_answers
            .push((method, prefix.to_owned(), suffix.to_owned()));
        s.answers_open
            .get_or_insert_with(|| tokio::sync::watch::channel(true).0)
            .send_replace(false);
    }

    /// Sends every held answer and stops holding.
    pub fn release_answers(&self) {
        let mut s = self.state.lock().unwrap();
        s.held_answers.clear();
        if let Some(open) = &s.answers_open {
            open.send_replace(true);
        }
    }

    /// Behaves as Jira Data Center before 8.4 (`true`): the paged create
    /// metadata endpoints answer 404, only the deprecated one works.
    pub fn legacy_createmeta(&self, legacy: bool) {
        self.state.lock().unwrap().legacy_createmeta = legacy;
    }

    /// Forgets every scripted failure not yet used.
    pub fn clear_failures(&self) {
        self.state.lock().unwrap().script.clear();
    }

    /// Delays the answers to `METHOD` requests whose path starts with `prefix`
    /// and ends with `suffix` by `delay`, after the request took effect (a
    /// change is made, its answer is late); `None` stops delaying.
    pub fn delay_answers(
        &self,
        method: Method,
        prefix: &str,
        suffix: &str,
        delay: Option<Duration>,
    ) {
        let mut s = self.state.lock().unwrap();
        s.slow
            .retain(|(m, p, x, _)| !(m == method && p == prefix && x == suffix));
        if let Some(delay) = delay {
            s.slow
                .push((method, prefix.to_owned(), suffix.to_owned(), delay));
        }
    }

    /// Someone changes the assignee in Jira (by account id, or nobody): the
    /// issue changes and a webhook goes out, as for a change through the API.
    pub fn assign_in_jira(&self, id_or_key: &str, account_id: Option<&str>) {
        routes::change_assignee(&self.state, id_or_key, account_id.map(str::to_owned));
    }

    /// Someone deletes the issue in Jira; a `jira:issue_deleted` webhook goes
    /// out.
    pub fn delete_in_jira(&self, id_or_key: &str) {
        routes::delete_issue(&self.state, id_or_key);
    }

    /// The issue's comments, oldest first.
    pub fn comments(&self, id_or_key: &str) -> Vec<String> {
        let s = self.state.lock().unwrap();
        s.issues
            .iter()
            .find(|i| i.is(id_or_key))
            .map(|i| i.comments.iter().map(|(_, body, _)| body.clone()).collect())
            .unwrap_or_default()
    }

    /// Sets an issue's summary (what searches match).
    pub fn set_summary(&self, id_or_key: &str, summary: &str) {
        let mut s = self.state.lock().unwrap();
        if let Some(issue) = s.issues.iter_mut().find(|i| i.is(id_or_key)) {
            issue.fields["summary"] = Value::String(summary.to_owned());
        }
    }

    /// Someone moves the issue to a status in Jira; a webhook goes out.
    pub fn move_in_jira(&self, id_or_key: &str, status_id: &str) {
        routes::change_status(&self.state, id_or_key, status_id);
    }
}
