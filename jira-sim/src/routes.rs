//! The REST endpoints the simulator answers (Jira Cloud's v2 API shapes), and
//! the changes that send webhooks.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::world::SimIssue;
use crate::{FakeState, Recorded, fixture_json, webhooks};

type Shared = Arc<Mutex<FakeState>>;

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn not_found(what: &str) -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        json!({ "errorMessages": [what], "errors": {} }),
    )
}

fn no_issue() -> Response {
    not_found("Issue does not exist or you do not have permission to see it.")
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

/// Records the request and answers it: a scripted answer first, else the
/// endpoint's.
pub async fn handle(
    State(state): State<Shared>,
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
            received_at: std::time::SystemTime::now(),
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

    let (delay, gate) = {
        let s = state.lock().unwrap();
        let delay = s
            .slow
            .iter()
            .find(|(m, p, x, _)| {
                *m == method && path.starts_with(p.as_str()) && path.ends_with(x.as_str())
            })
            .map(|(_, _, _, d)| *d);
        let held = s.held_answers.iter().any(|(m, p, x)| {
            *m == method && path.starts_with(p.as_str()) && path.ends_with(x.as_str())
        });
        let gate = held
            .then(|| {
                s.answers_open
                    .as_ref()
                    .map(tokio::sync::watch::Sender::subscribe)
            })
            .flatten();
        (delay, gate)
    };
    let response = answer(&state, &method, &path, &query, &parsed).await;
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    if let Some(mut open) = gate {
        let _ = open.wait_for(|open| *open).await;
    }
    response
}

/// The endpoint's answer.
async fn answer(
    state: &Shared,
    method: &Method,
    path: &str,
    query: &str,
    parsed: &Value,
) -> Response {
    let (state, query, parsed) = (state.clone(), query.to_owned(), parsed.clone());
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["rest", "api", "2", "issue", "createmeta"]) => {
            json_response(StatusCode::OK, fixture_json("createmeta_response.json"))
        }
        (
            "GET",
            [
                "rest",
                "api",
                "2",
                "issue",
                "createmeta",
                project,
                "issuetypes",
            ],
        ) => createmeta_issue_types(&state, project, &query),
        (
            "GET",
            [
                "rest",
                "api",
                "2",
                "issue",
                "createmeta",
                project,
                "issuetypes",
                issue_type,
            ],
        ) => createmeta_fields(&state, project, issue_type, &query),
        ("GET", ["rest", "api", "2", "project", "search"]) => project_search(&state, &query),
        ("GET", ["rest", "api", "2", "priority"]) => {
            json_response(StatusCode::OK, fixture_json("priorities_response.json"))
        }
        ("GET", ["rest", "api", "2", "status"]) => {
            json_response(StatusCode::OK, fixture_json("status_response.json"))
        }
        ("GET", ["rest", "api", "2", "project", _, "versions"]) => {
            json_response(StatusCode::OK, fixture_json("versions_response.json"))
        }
        ("GET", ["rest", "api", "2", "project", project, "statuses"]) => {
            project_statuses(&state, project)
        }
        ("POST", ["rest", "api", "2", "issue"]) => create(&state, &parsed).await,
        ("GET", ["rest", "api", "2", "search"]) => search(&state, &query, false),
        ("GET", ["rest", "api", "2", "search", "jql"]) => search(&state, &query, true),
        ("GET", ["rest", "api", "2", "project", project]) => {
            let s = state.lock().unwrap();
            match s
                .projects
                .iter()
                .find(|p| p.id == *project || p.key == *project)
            {
                Some(p) => json_response(
                    StatusCode::OK,
                    json!({ "id": p.id, "key": p.key, "name": p.name }),
                ),
                None => not_found(&format!("No project could be found with key '{project}'.")),
            }
        }
        ("GET", ["rest", "api", "2", "jql", "autocompletedata", "suggestions"]) => {
            autocomplete(&query)
        }
        ("GET", ["rest", "api", "2", "user", "assignable", "search"]) => assignable(&state, &query),
        ("GET", ["rest", "api", "2", "issue", issue, "transitions"]) => transitions(&state, issue),
        ("POST", ["rest", "api", "2", "issue", issue, "transitions"]) => {
            let target = {
                let s = state.lock().unwrap();
                let Some(found) = s.issues.iter().find(|i| i.is(issue) && !i.deleted) else {
                    return no_issue();
                };
                let project = s.projects.iter().find(|p| p.id == found.project_id);
                let wanted = parsed["transition"]["id"].as_str().unwrap_or_default();
                match project.and_then(|p| p.transition_target(wanted)) {
                    Some(status) if status.id != found.status_id => status.id,
                    _ => {
                        return json_response(
                            StatusCode::BAD_REQUEST,
                            json!({ "errorMessages": [format!("Transition id '{wanted}' is not valid for this issue.")], "errors": {} }),
                        );
                    }
                }
            };
            change_status(&state, issue, target);
            StatusCode::NO_CONTENT.into_response()
        }
        ("PUT", ["rest", "api", "2", "issue", issue, "assignee"]) => {
            let wanted = parsed
                .get("accountId")
                .or_else(|| parsed.get("name"))
                .cloned()
                .unwrap_or(Value::Null);
            let account = {
                let s = state.lock().unwrap();
                if !s.issues.iter().any(|i| i.is(issue) && !i.deleted) {
                    return no_issue();
                }
                match wanted.as_str() {
                    None => None,
                    Some(id) => match s.users.iter().find(|u| u.account_id == id || u.name == id) {
                        Some(user) => Some(user.account_id.clone()),
                        None => {
                            return json_response(
                                StatusCode::BAD_REQUEST,
                                json!({ "errorMessages": [], "errors": { "assignee": format!("User '{id}' cannot be assigned issues.") } }),
                            );
                        }
                    },
                }
            };
            change_assignee(&state, issue, account);
            StatusCode::NO_CONTENT.into_response()
        }
        ("GET", ["rest", "api", "2", "issue", issue]) => get_issue(&state, issue),
        ("DELETE", ["rest", "api", "2", "issue", issue]) => {
            if delete_issue(&state, issue) {
                StatusCode::NO_CONTENT.into_response()
            } else {
                no_issue()
            }
        }
        ("POST", ["rest", "api", "2", "issue", issue, "comment"]) => {
            let mut s = state.lock().unwrap();
            let next = s.issues.iter().map(|i| i.comments.len()).sum::<usize>() + 10_000;
            let Some(found) = s.issues.iter_mut().find(|i| i.is(issue) && !i.deleted) else {
                return no_issue();
            };
            let body = parsed["body"].as_str().unwrap_or_default().to_owned();
            let id = next.to_string();
            found.comments.push((
                id.clone(),
                body.clone(),
                parsed.get("properties").cloned().unwrap_or(json!([])),
            ));
            json_response(StatusCode::CREATED, json!({ "id": id, "body": body }))
        }
        ("GET", ["rest", "api", "2", "issue", issue, "comment"]) => {
            let expand = query_param(&query, "expand").is_some_and(|e| e.contains("properties"));
            let s = state.lock().unwrap();
            let Some(found) = s.issues.iter().find(|i| i.is(issue) && !i.deleted) else {
                return no_issue();
            };
            let comments: Vec<Value> = found
                .comments
                .iter()
                .map(|(id, body, properties)| {
                    let mut comment = json!({ "id": id, "body": body });
                    if expand {
                        comment["properties"] = properties.clone();
                    }
                    comment
                })
                .collect();
            json_response(
                StatusCode::OK,
                json!({ "startAt": 0, "maxResults": 100, "total": comments.len(), "comments": comments }),
            )
        }
        ("GET", ["rest", "api", "2", "user"]) => {
            let wanted = query_param(&query, "accountId")
                .or_else(|| query_param(&query, "username"))
                .unwrap_or_default();
            let s = state.lock().unwrap();
            match s
                .users
                .iter()
                .find(|u| u.account_id == wanted || u.name == wanted)
            {
                Some(user) => json_response(StatusCode::OK, user.json()),
                None => not_found(&format!(
                    "The user with account ID '{wanted}' does not exist"
                )),
            }
        }
        ("GET", ["rest", "api", "3", "user", "email"]) => {
            let account = query_param(&query, "accountId").unwrap_or_default();
            let s = state.lock().unwrap();
            match s.emails.get(&account) {
                Some(email) => json_response(
                    StatusCode::OK,
                    json!({ "accountId": account, "email": email }),
                ),
                None => not_found("User not found"),
            }
        }
        ("POST", ["_sim", "seed"]) => seed(&state, &parsed),
        ("GET", ["_sim", "writes"]) => writes(&state, &query),
        ("GET", ["rest", "api", "2", "serverInfo"]) => {
            json_response(StatusCode::OK, json!({ "version": "fake" }))
        }
        _ => not_found(&format!("the fake has no {method} {path}")),
    }
}

/// The most items a page of the current create metadata endpoints holds:
/// fewer than the tracker asks for, so it must follow the pages.
const CREATEMETA_PAGE: usize = 5;

/// A page of `items` as Cloud's create metadata endpoints give it.
fn page_of(list: &str, items: &[Value], query: &str) -> Value {
    let start: usize = query_param(query, "startAt")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let max: usize = query_param(query, "maxResults")
        .and_then(|s| s.parse().ok())
        .unwrap_or(50)
        .clamp(1, CREATEMETA_PAGE);
    let page: Vec<Value> = items.iter().skip(start).take(max).cloned().collect();
    json!({ list: page, "startAt": start, "maxResults": max, "total": items.len() })
}

/// The fixture's create metadata of its one project (EX), served for every
/// project the simulator has.
fn fixture_issue_types(state: &Shared, project: &str) -> Option<Vec<Value>> {
    let s = state.lock().unwrap();
    if s.legacy_createmeta
        || !s
            .projects
            .iter()
            .any(|p| p.id == project || p.key == project)
    {
        return None;
    }
    let meta = fixture_json("createmeta_response.json");
    let mut types = meta["projects"][0]["issuetypes"].as_array().cloned()?;
    types.push(task_issue_type());
    Some(types)
}

/// An issue type the current endpoints offer besides the fixture's Bug: a
/// Task whose priority scheme allows two priorities (Medium by default) and
/// with a number field.
fn task_issue_type() -> Value {
    json!({
        "id": "3",
        "name": "Task",
        "fields": {
            "summary": { "name": "Summary", "required": true, "schema": { "type": "string", "system": "summary" } },
            "issuetype": { "name": "Issue Type", "required": true, "schema": { "type": "issuetype", "system": "issuetype" } },
            "project": { "name": "Project", "required": true, "schema": { "type": "project", "system": "project" } },
            "description": { "name": "Description", "required": false, "schema": { "type": "string", "system": "description" } },
            "priority": {
                "name": "Priority", "required": false,
                "schema": { "type": "priority", "system": "priority" },
                "allowedValues": [ { "id": "2", "name": "High" }, { "id": "3", "name": "Medium" } ],
                "hasDefaultValue": true,
                "defaultValue": { "id": "3", "name": "Medium" }
            },
            "labels": { "name": "Labels", "required": false, "schema": { "type": "array", "items": "string", "system": "labels" } },
            "customfield_10600": {
                "name": "Story Points", "required": false,
                "schema": { "type": "number", "custom": "com.atlassian.jira.plugin.system.customfieldtypes:float", "customId": 10600 }
            },
            "reporter": {
                "name": "Reporter", "required": true,
                "schema": { "type": "user", "system": "reporter" },
                "autoCompleteUrl": "https://jira.example/rest/api/2/user/search?query="
            }
        }
    })
}

fn createmeta_issue_types(state: &Shared, project: &str, query: &str) -> Response {
    let Some(types) = fixture_issue_types(state, project) else {
        return not_found(&format!("No project could be found with key '{project}'."));
    };
    let refs: Vec<Value> = types
        .iter()
        .map(|t| json!({ "id": t["id"], "name": t["name"] }))
        .collect();
    json_response(StatusCode::OK, page_of("issueTypes", &refs, query))
}

fn createmeta_fields(state: &Shared, project: &str, issue_type: &str, query: &str) -> Response {
    let Some(types) = fixture_issue_types(state, project) else {
        return not_found(&format!("No project could be found with key '{project}'."));
    };
    let Some(found) = types.iter().find(|t| t["id"] == issue_type) else {
        return not_found(&format!("No issue type with id '{issue_type}'."));
    };
    let fields: Vec<Value> = found["fields"]
        .as_object()
        .map(|map| {
            map.iter()
                .map(|(key, meta)| {
                    let mut entry = meta.clone();
                    entry["fieldId"] = json!(key);
                    entry
                })
                .collect()
        })
        .unwrap_or_default();
    json_response(StatusCode::OK, page_of("fields", &fields, query))
}

fn seed(state: &Shared, parsed: &Value) -> Response {
    let mut s = state.lock().unwrap();
    let empty = Vec::new();
    for user in parsed["users"].as_array().unwrap_or(&empty) {
        let (Some(account_id), Some(email)) = (user["account_id"].as_str(), user["email"].as_str())
        else {
            continue;
        };
        s.users.push(crate::world::SimUser {
            account_id: account_id.to_owned(),
            name: email.split('@').next().unwrap_or(email).to_owned(),
            email: email.to_owned(),
            email_visible: user["email_visible"].as_bool().unwrap_or(true),
        });
        s.emails.insert(account_id.to_owned(), email.to_owned());
    }
    for issue in parsed["issues"].as_array().unwrap_or(&empty) {
        let (Some(key), Some(id)) = (issue["key"].as_str(), issue["id"].as_str()) else {
            continue;
        };
        let project_id = issue["project_id"].as_str().unwrap_or("10000").to_owned();
        let status = s
            .projects
            .iter()
            .find(|p| p.id == project_id)
            .and_then(|p| p.statuses.first())
            .map_or("10000", |st| st.id)
            .to_owned();
        s.issues.push(SimIssue {
            id: id.to_owned(),
            key: key.to_owned(),
            fields: json!({ "summary": format!("issue {key}") }),
            project_id,
            status_id: status,
            assignee: None,
            updated: chrono::Utc::now(),
            deleted: false,
            comments: Vec::new(),
        });
    }
    StatusCode::NO_CONTENT.into_response()
}

fn writes(state: &Shared, query: &str) -> Response {
    let suffix = query_param(query, "suffix").unwrap_or_default();
    let s = state.lock().unwrap();
    let list: Vec<Value> = s
        .requests
        .iter()
        .filter(|r| r.method != Method::GET && !r.path.starts_with("/_sim/"))
        .filter(|r| r.path.ends_with(&suffix))
        .map(|r| {
            let at = r
                .received_at
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros());
            json!({ "method": r.method.as_str(), "path": r.path, "body": r.body, "at_us": at })
        })
        .collect();
    json_response(StatusCode::OK, Value::Array(list))
}

fn project_search(state: &Shared, query: &str) -> Response {
    let start: usize = query_param(query, "startAt")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let max: usize = query_param(query, "maxResults")
        .and_then(|s| s.parse().ok())
        .unwrap_or(50)
        .max(1);
    let s = state.lock().unwrap();
    let all: Vec<Value> = s
        .projects
        .iter()
        .map(|p| json!({ "id": p.id, "key": p.key, "name": p.name }))
        .collect();
    let page: Vec<Value> = all.iter().skip(start).take(max).cloned().collect();
    json_response(
        StatusCode::OK,
        json!({
            "startAt": start,
            "maxResults": max,
            "total": all.len(),
            "isLast": start + page.len() >= all.len(),
            "values": page,
        }),
    )
}

fn project_statuses(state: &Shared, project: &str) -> Response {
    let s = state.lock().unwrap();
    let Some(p) = s
        .projects
        .iter()
        .find(|p| p.id == project || p.key == project)
    else {
        return not_found(&format!("No project could be found with id '{project}'."));
    };
    let statuses: Vec<Value> = p
        .statuses
        .iter()
        .map(|st| json!({ "id": st.id, "name": st.name, "statusCategory": { "key": st.category } }))
        .collect();
    json_response(
        StatusCode::OK,
        json!([
            { "id": "1", "name": "Bug", "subtask": false, "statuses": statuses },
            { "id": "2", "name": "Task", "subtask": false, "statuses": statuses },
        ]),
    )
}

async fn create(state: &Shared, parsed: &Value) -> Response {
    let (answer, delay, odd) = {
        let mut s = state.lock().unwrap();
        let number = s.next_number;
        s.next_number += 1;
        let id = format!("{}", 10_000 + number);
        let key = format!("EX-{number}");
        let fields = parsed.get("fields").cloned().unwrap_or(Value::Null);
        let project_id = fields["project"]["id"]
            .as_str()
            .unwrap_or("10000")
            .to_owned();
        let status = s
            .projects
            .iter()
            .find(|p| p.id == project_id)
            .and_then(|p| p.statuses.first())
            .map_or("10000", |st| st.id)
            .to_owned();
        s.issues.push(SimIssue {
            id: id.clone(),
            key: key.clone(),
            fields,
            project_id,
            status_id: status,
            assignee: None,
            updated: chrono::Utc::now(),
            deleted: false,
            comments: Vec::new(),
        });
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
        Some((status, body)) => (StatusCode::from_u16(status).unwrap(), body).into_response(),
        None => json_response(StatusCode::CREATED, answer),
    }
}

/// The one condition of a JQL query the simulator understands: `labels =
/// "x"`, `id="KEY"` or `text ~ "words"` (what the tracker sends).
fn parse_jql(jql: &str) -> (String, String) {
    let Some((head, rest)) = jql.split_once('"') else {
        return (String::new(), String::new());
    };
    let field = head
        .trim()
        .trim_end_matches(['=', '~'])
        .trim()
        .to_ascii_lowercase();
    let mut value = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    value.push(next);
                }
            }
            '"' => break,
            c => value.push(c),
        }
    }
    (field, value)
}

fn search(state: &Shared, query: &str, enhanced: bool) -> Response {
    let jql = query_param(query, "jql").unwrap_or_default();
    let (field, wanted) = parse_jql(&jql);
    let s = state.lock().unwrap();
    let issues: Vec<Value> = s
        .issues
        .iter()
        .filter(|i| !i.deleted)
        .filter(|i| match field.as_str() {
            "labels" => labels_of(&i.fields).contains(&wanted),
            "id" => i.id == wanted || i.key.eq_ignore_ascii_case(&wanted),
            "text" => i.fields["summary"]
                .as_str()
                .is_some_and(|summary| summary.to_lowercase().contains(&wanted.to_lowercase())),
            _ => false,
        })
        .map(|i| json!({ "id": i.id, "key": i.key, "fields": { "summary": i.fields["summary"] } }))
        .collect();
    if enhanced {
        json_response(StatusCode::OK, json!({ "issues": issues, "isLast": true }))
    } else {
        json_response(
            StatusCode::OK,
            json!({ "startAt": 0, "maxResults": 50, "total": issues.len(), "issues": issues }),
        )
    }
}

/// Sprints the autocomplete offers for any custom field.
const SPRINTS: &[(&str, &str)] = &[("1", "Sprint 1"), ("2", "Sprint 2"), ("3", "Backlog")];

fn autocomplete(query: &str) -> Response {
    let value = query_param(query, "fieldValue")
        .unwrap_or_default()
        .to_lowercase();
    let field = query_param(query, "fieldName").unwrap_or_default();
    if !field.starts_with("cf[") {
        return json_response(StatusCode::OK, json!({ "results": [] }));
    }
    let results: Vec<Value> = SPRINTS
        .iter()
        .filter(|(_, name)| name.to_lowercase().starts_with(&value))
        .map(|(id, name)| {
            let (matched, rest) = name.split_at(value.len().min(name.len()));
            json!({ "value": id, "displayName": format!("<b>{matched}</b>{rest} ({id})") })
        })
        .collect();
    json_response(StatusCode::OK, json!({ "results": results }))
}

fn assignable(state: &Shared, query: &str) -> Response {
    let wanted = query_param(query, "query")
        .or_else(|| query_param(query, "username"))
        .unwrap_or_default()
        .to_ascii_lowercase();
    let s = state.lock().unwrap();
    if let Some(issue) = query_param(query, "issueKey")
        && !s.issues.iter().any(|i| i.is(&issue) && !i.deleted)
    {
        return no_issue();
    }
    if let Some(project) = query_param(query, "project")
        && !s
            .projects
            .iter()
            .any(|p| p.id == project || p.key == project)
    {
        return not_found(&format!("No project could be found with key '{project}'."));
    }
    // Jira matches the query against names and addresses, also hidden ones.
    let users: Vec<Value> = s
        .users
        .iter()
        .filter(|u| {
            !wanted.is_empty()
                && (u.email.to_ascii_lowercase().starts_with(&wanted)
                    || u.name.to_ascii_lowercase().starts_with(&wanted))
        })
        .map(crate::world::SimUser::json)
        .collect();
    json_response(StatusCode::OK, Value::Array(users))
}

fn transitions(state: &Shared, issue: &str) -> Response {
    let s = state.lock().unwrap();
    let Some(found) = s.issues.iter().find(|i| i.is(issue) && !i.deleted) else {
        return no_issue();
    };
    let Some(project) = s.projects.iter().find(|p| p.id == found.project_id) else {
        return json_response(StatusCode::OK, json!({ "transitions": [] }));
    };
    let list: Vec<Value> = project
        .statuses
        .iter()
        .filter(|st| st.id != found.status_id)
        .map(|st| {
            json!({
                "id": project.transition_to(st.id),
                "name": format!("Move to {}", st.name),
                "to": { "id": st.id, "name": st.name, "statusCategory": { "key": st.category } },
                "hasScreen": false,
                "isGlobal": true,
            })
        })
        .collect();
    json_response(StatusCode::OK, json!({ "transitions": list }))
}

fn get_issue(state: &Shared, issue: &str) -> Response {
    let s = state.lock().unwrap();
    match s.issues.iter().find(|i| i.is(issue) && !i.deleted) {
        Some(found) => json_response(
            StatusCode::OK,
            json!({
                "id": found.id,
                "key": found.key,
                "fields": found.fields_json(&s.projects, &s.users),
            }),
        ),
        None => no_issue(),
    }
}

/// The next update time of an issue: now, and always after its last one (so
/// its webhooks order even within one millisecond).
fn touch(issue: &mut SimIssue) {
    let now = chrono::Utc::now();
    issue.updated = if now > issue.updated {
        now
    } else {
        issue.updated + chrono::Duration::milliseconds(1)
    };
}

/// Deletes an issue (later requests about it answer 404) and sends the
/// `jira:issue_deleted` webhook; `false` when there is no such issue.
pub fn delete_issue(state: &Shared, issue: &str) -> bool {
    let mut s = state.lock().unwrap();
    let Some(found) = s.issues.iter_mut().find(|i| i.is(issue) && !i.deleted) else {
        return false;
    };
    found.deleted = true;
    let found = found.clone();
    let outgoing = s.webhooks.clone().map(|target| {
        s.next_changelog += 1;
        let payload = json!({
            "timestamp": chrono::Utc::now().timestamp_millis(),
            "webhookEvent": "jira:issue_deleted",
            "issue_event_type_name": "issue_deleted",
            "issue": {
                "id": found.id,
                "key": found.key,
                "fields": found.fields_json(&s.projects, &s.users),
            },
        });
        (target, format!("sim-{}", s.next_changelog), payload)
    });
    drop(s);
    post_later(state, outgoing);
    true
}

/// Changes an issue's assignee and sends the webhook saying so.
pub fn change_assignee(state: &Shared, issue: &str, account: Option<String>) {
    let mut s = state.lock().unwrap();
    let FakeState { issues, users, .. } = &mut *s;
    let Some(found) = issues.iter_mut().find(|i| i.is(issue) && !i.deleted) else {
        return;
    };
    let name = |account: &Option<String>| {
        account
            .as_ref()
            .and_then(|a| users.iter().find(|u| &u.account_id == a))
            .map(|u| u.name.clone())
    };
    let item = json!({
        "field": "assignee",
        "fieldtype": "jira",
        "fieldId": "assignee",
        "from": found.assignee,
        "fromString": name(&found.assignee),
        "to": account,
        "toString": name(&account),
    });
    found.assignee = account;
    touch(found);
    let found = found.clone();
    let outgoing = webhook_of(&mut s, &found, item, "issue_assigned");
    drop(s);
    post_later(state, outgoing);
}

/// Moves an issue to a status and sends the webhook saying so.
pub fn change_status(state: &Shared, issue: &str, status_id: &str) {
    let mut s = state.lock().unwrap();
    let FakeState {
        issues, projects, ..
    } = &mut *s;
    let Some(found) = issues.iter_mut().find(|i| i.is(issue) && !i.deleted) else {
        return;
    };
    let project = projects.iter().find(|p| p.id == found.project_id);
    let name = |id: &str| {
        project
            .and_then(|p| p.status(id))
            .map_or_else(|| id.to_owned(), |st| st.name.to_owned())
    };
    let item = json!({
        "field": "status",
        "fieldtype": "jira",
        "fieldId": "status",
        "from": found.status_id,
        "fromString": name(&found.status_id),
        "to": status_id,
        "toString": name(status_id),
    });
    found.status_id = status_id.to_owned();
    touch(found);
    let found = found.clone();
    let outgoing = webhook_of(&mut s, &found, item, "issue_generic");
    drop(s);
    post_later(state, outgoing);
}

/// A webhook to post: where, its identifier, and its payload.
pub type Outgoing = (webhooks::WebhookTarget, String, Value);

/// The `jira:issue_updated` webhook of a change, if webhooks are on.
fn webhook_of(
    s: &mut FakeState,
    issue: &SimIssue,
    item: Value,
    event_type: &str,
) -> Option<Outgoing> {
    let target = s.webhooks.clone()?;
    s.next_changelog += 1;
    let changelog = s.next_changelog;
    let payload = json!({
        "timestamp": chrono::Utc::now().timestamp_millis(),
        "webhookEvent": "jira:issue_updated",
        "issue_event_type_name": event_type,
        "issue": {
            "id": issue.id,
            "key": issue.key,
            "fields": issue.fields_json(&s.projects, &s.users),
        },
        "changelog": { "id": changelog.to_string(), "items": [item] },
    });
    Some((target, format!("sim-{changelog}"), payload))
}

/// Queues a webhook for the poster (or holds it back while webhooks are held).
fn post_later(state: &Shared, outgoing: Option<Outgoing>) {
    let Some(outgoing) = outgoing else {
        return;
    };
    let mut s = state.lock().unwrap();
    if let Some(held) = &mut s.held {
        held.push(outgoing);
    } else if let Some(outbox) = &s.outbox {
        let _ = outbox.send(outgoing);
    }
}

/// Posts queued webhooks one after another (so they arrive in the order of
/// the changes), recording what the receiver answered.
pub async fn post_in_order(
    state: Shared,
    mut outgoing: tokio::sync::mpsc::UnboundedReceiver<Outgoing>,
) {
    while let Some((target, identifier, payload)) = outgoing.recv().await {
        let status = webhooks::post(&target, &identifier, &payload).await;
        state
            .lock()
            .unwrap()
            .webhooks_sent
            .push((identifier, status));
    }
}
