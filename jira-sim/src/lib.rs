//! A Jira simulator at the HTTP level: serves Sentry's fixtures
//! (`fixtures/jira/`), accepts creates, records every request, and can be
//! scripted to fail.
//!
//! Only HTTP is simulated: the tracker's real client talks to it over a real
//! socket. The tests, `cargo xtask demo` and the benchmarks use it; the
//! `jira-sim` binary runs it on its own (for the Python client check in CI).

#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

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

#[derive(Debug, Default)]
struct FakeState {
    requests: Vec<Recorded>,
    created: Vec<Value>,
    next_number: u32,
    script: VecDeque<Scripted>,
    /// After recording a create, wait this long before answering (to make the
    /// client time out although the issue exists).
    create_answer_delay: Option<Duration>,
    /// Answers for the next creates, which are still made: (status, body).
    create_answers: VecDeque<(u16, String)>,
    emails: HashMap<String, String>,
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
            ..FakeState::default()
        }));
        let app = Router::new()
            .fallback(handle)
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

    /// The issues created so far (their `fields` objects).
    pub fn created_issues(&self) -> Vec<Value> {
        self.state.lock().unwrap().created.clone()
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
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn labels_of(fields: &Value) -> Vec<String> {
    fields
        .get("labels")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn decode(s: &str) -> String {
    let mut out = Vec::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| decode(v))
    })
}

async fn handle(
    State(state): State<Arc<Mutex<FakeState>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let query = uri.query().unwrap_or_default().to_owned();
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let scripted = {
        let mut s = state.lock().unwrap();
        s.requests.push(Recorded {
            method: method.clone(),
            path: path.clone(),
            query: query.clone(),
            headers,
            body: parsed.clone(),
        });
        let found = s
            .script
            .iter_mut()
            .find(|x| x.method == method && path.starts_with(&x.path_prefix) && x.remaining > 0);
        let answer = found.map(|x| {
            x.remaining -= 1;
            x.clone()
        });
        s.script.retain(|x| x.remaining > 0);
        answer
    };
    if let Some(answer) = scripted {
        let mut response = (
            StatusCode::from_u16(answer.status).unwrap(),
            answer.body.clone(),
        )
            .into_response();
        for (k, v) in &answer.headers {
            response.headers_mut().insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        return response;
    }

    match (method.as_str(), path.as_str()) {
        ("GET", "/rest/api/2/issue/createmeta") => {
            json_response(StatusCode::OK, fixture_json("createmeta_response.json"))
        }
        ("GET", "/rest/api/2/project/search") => {
            json_response(StatusCode::OK, fixture_json("projects_paginated.json"))
        }
        ("GET", "/rest/api/2/priority") => {
            json_response(StatusCode::OK, fixture_json("priorities_response.json"))
        }
        ("GET", "/rest/api/2/status") => {
            json_response(StatusCode::OK, fixture_json("status_response.json"))
        }
        ("GET", p) if p.starts_with("/rest/api/2/project/") && p.ends_with("/versions") => {
            json_response(StatusCode::OK, fixture_json("versions_response.json"))
        }
        ("POST", "/rest/api/2/issue") => {
            let (answer, delay, odd) = {
                let mut s = state.lock().unwrap();
                let number = s.next_number;
                s.next_number += 1;
                let id = format!("{}", 10_000 + number);
                let key = format!("EX-{number}");
                let fields = parsed.get("fields").cloned().unwrap_or(Value::Null);
                s.created
                    .push(json!({ "id": id, "key": key, "fields": fields }));
                (
                    json!({ "id": id, "key": key, "self": format!("http://jira/rest/api/2/issue/{id}") }),
                    s.create_answer_delay,
                    s.create_answers.pop_front(),
                )
            };
            if let Some(delay) = delay {
                tokio::time::sleep(delay).await;
            }
            match odd {
                Some((status, body)) => {
                    (StatusCode::from_u16(status).unwrap(), body).into_response()
                }
                None => json_response(StatusCode::CREATED, answer),
            }
        }
        ("GET", "/rest/api/2/search") => {
            let jql = query_param(&query, "jql").unwrap_or_default();
            let wanted = jql
                .split_once('"')
                .and_then(|(_, rest)| rest.split_once('"'))
                .map(|(label, _)| label.to_owned())
                .unwrap_or_default();
            let s = state.lock().unwrap();
            let issues: Vec<Value> = s
                .created
                .iter()
                .filter(|i| labels_of(&i["fields"]).contains(&wanted))
                .map(|i| json!({ "id": i["id"], "key": i["key"], "fields": { "summary": i["fields"]["summary"] } }))
                .collect();
            json_response(
                StatusCode::OK,
                json!({ "startAt": 0, "maxResults": 5, "total": issues.len(), "issues": issues }),
            )
        }
        ("GET", p) if p.starts_with("/rest/api/2/issue/") => {
            let key = p.trim_start_matches("/rest/api/2/issue/");
            let s = state.lock().unwrap();
            match s.created.iter().find(|i| i["key"] == key) {
                Some(issue) => json_response(
                    StatusCode::OK,
                    json!({
                        "id": issue["id"], "key": issue["key"],
                        "fields": {
                            "summary": issue["fields"]["summary"],
                            "description": issue["fields"]["description"],
                        }
                    }),
                ),
                None => json_response(
                    StatusCode::NOT_FOUND,
                    json!({ "errorMessages": ["Issue does not exist or you do not have permission to see it."], "errors": {} }),
                ),
            }
        }
        ("GET", "/rest/api/3/user/email") => {
            let account = query_param(&query, "accountId").unwrap_or_default();
            let s = state.lock().unwrap();
            match s.emails.get(&account) {
                Some(email) => json_response(
                    StatusCode::OK,
                    json!({ "accountId": account, "email": email }),
                ),
                None => json_response(
                    StatusCode::NOT_FOUND,
                    json!({ "errorMessages": ["User not found"], "errors": {} }),
                ),
            }
        }
        ("GET", "/rest/api/2/serverInfo") => {
            json_response(StatusCode::OK, json!({ "version": "fake" }))
        }
        _ => json_response(
            StatusCode::NOT_FOUND,
            json!({ "errorMessages": [format!("the fake has no {method} {path}")], "errors": {} }),
        ),
    }
}
