//! The webhook endpoint: `POST /webhooks/jira/{integration}`, and
//! `POST /webhooks/jira` for Atlassian Connect (one URL for every installation;
//! the JWT's issuer names the integration).
//!
//! In order, and nothing is stored unless every step passes, so that an
//! unauthenticated client spends little and takes nothing authentic traffic
//! needs:
//! 1. unknown integration → 404;
//! 2. the headers: a Connect token is verified whole (it covers the method,
//!    path and query), an HMAC signature must be there and well-formed → 401;
//! 3. the body, read at a minimum pace (a client trickling bytes gets 408 and
//!    loses its connection; headers have their own timeout in the HTTP
//!    server), at most the body limit → 413;
//! 4. the HMAC over the body → 401;
//! 5. only now, for an authentic delivery: a processing slot (503 when all are
//!    taken), room in the inbox (503 with Retry-After when it holds
//!    `--inbox-max-pending` deliveries or `--inbox-max-wait` of work, see
//!    [`super::backlog`]) and a token of
//!    the integration's rate (429 with Retry-After);
//! 6. not JSON → 400 with the parser's message.
//!
//! Then the delivery is committed to the inbox, deduplicated, and only then
//! answered 200: `accepted` (queued for its issue), `ignored` (well-formed but
//! nothing to apply, such as a comment event or a body without changelog:
//! stored for operators, never queued) or `duplicate` (with the id and state
//! of the delivery it duplicates). A database that cannot
//! commit → 503, so Jira delivers again.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;
use service_runtime::ids::{IntegrationId, IssueKey, JiraIssueId};
use service_runtime::telemetry::{context, rpc};
use sha2::{Digest as _, Sha256};
use tokio::sync::Semaphore;
use tracing::Instrument as _;

use super::authenticity::{self, Unauthentic};
use super::backlog::Backlog;
use super::inbox::{NewDelivery, Stored};
use super::inbox_writer::InboxWriter;
use super::rate_limit::RateLimiter;
use crate::domain::Integration;
use crate::domain::delivery::{Classified, classify};
use crate::error::TrackerError;
use crate::integrations::IntegrationCache;
use crate::metrics::Metrics;

/// Headers never kept with a stored delivery.
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "x-hub-signature",
    "cookie",
    "proxy-authorization",
];

/// Headers kept with a delivery, at most (in arrival order), and the longest
/// value kept: enough to debug with, bounded so a page of deliveries stays
/// small.
pub const MAX_KEPT_HEADERS: usize = 32;
pub const MAX_KEPT_HEADER_BYTES: usize = 512;

/// What the endpoint needs.
#[derive(Debug, Clone)]
pub struct IntakeState {
    /// The integrations webhooks name, read through their cache.
    pub integrations: IntegrationCache,
    /// Commits deliveries (group commit).
    pub inbox: InboxWriter,
    /// The largest body accepted, in bytes.
    pub body_limit: usize,
    /// Requests handled at once; one more is answered 503.
    pub in_flight: Arc<Semaphore>,
    /// The inbox's bound: a full inbox answers 503 with Retry-After.
    pub backlog: Arc<Backlog>,
    /// Per-integration intake rate (authentic deliveries only).
    pub rate_limiter: Arc<RateLimiter>,
    /// How a body must arrive: the grace before it must flow, and the slowest
    /// rate after.
    pub body_pace: BodyPace,
    /// How old (or how far ahead) a delivery's signed `timestamp` may be.
    pub freshness: Freshness,
    /// Counts each webhook's outcome for `/metrics`.
    pub metrics: Metrics,
}

/// The webhook routes.
pub fn routes(state: IntakeState) -> Router {
    Router::new()
        .route(
            "/webhooks/jira/{integration}",
            post(receive_for_integration),
        )
        .route("/webhooks/jira", post(receive_connect))
        .route_layer(axum::middleware::from_fn(traced))
        .with_state(state)
}

/// Runs a webhook request in its HTTP server span (the child of the sender's
/// `traceparent`, if any); the stored delivery carries this span's context.
async fn traced(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("/webhooks/jira", axum::extract::MatchedPath::as_str)
        .to_owned();
    let span = rpc::http_server_span(request.method(), &route, request.headers());
    let response = next.run(request).instrument(span.clone()).await;
    rpc::record_http_status(&span, response.status());
    response
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn refuse(
    state: &IntakeState,
    status: StatusCode,
    outcome: &'static str,
    message: String,
) -> Response {
    state.metrics.webhook_outcome(outcome);
    if matches!(outcome, "overloaded" | "backlog_full" | "rate_limited") {
        // Load shedding: counted; a line per refusal would add to the load.
        tracing::debug!(%status, outcome, %message, "webhook refused");
    } else {
        tracing::info!(%status, outcome, %message, "webhook refused");
    }
    let mut response = answer(status, json!({ "error": message }));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("5"),
        );
    }
    response
}

/// Sets `Retry-After` to `wait` in whole seconds (at least one).
fn with_retry_after(mut response: Response, wait: Duration) -> Response {
    let seconds = wait.as_secs().max(1).to_string();
    if let Ok(value) = http::HeaderValue::from_str(&seconds) {
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, value);
    }
    response
}

/// How fast a webhook body must arrive: after `grace`, at least `min_rate`
/// bytes per second on average, so a client trickling bytes loses its
/// connection within seconds instead of holding it.
#[derive(Debug, Clone, Copy)]
pub struct BodyPace {
    /// How long a body may take to start flowing.
    pub grace: Duration,
    /// The slowest average rate allowed after the grace (bytes per second).
    pub min_rate: u64,
}

impl BodyPace {
    /// When the bytes after the first `received` must have arrived, for a body
    /// that started at `start`.
    fn deadline(self, start: Instant, received: usize) -> Instant {
        let rate = self.min_rate.max(1) as f64;
        start + self.grace + Duration::from_secs_f64(received as f64 / rate)
    }
}

/// How old a delivery may be when it arrives, by the `timestamp` Jira signs
/// with the body: an older one is a replay of a captured webhook (Jira itself
/// stops retrying after about 30 minutes), refused. A time too far ahead is
/// refused too. Deliveries without a timestamp are deduplicated by their body
/// digest for as long as they are kept.
#[derive(Debug, Clone, Copy)]
pub struct Freshness {
    /// The oldest a delivery may be; zero disables the check.
    pub max_age: Duration,
    /// How far ahead of this server's clock a timestamp may be.
    pub max_ahead: Duration,
}

impl Freshness {
    /// `Err(why)` when `sent_at` is too old or too far ahead.
    pub fn check(self, sent_at: Option<DateTime<Utc>>) -> Result<(), String> {
        let Some(sent_at) = sent_at else {
            return Ok(());
        };
        if self.max_age.is_zero() {
            return Ok(());
        }
        let now = Utc::now();
        let age = (now - sent_at).to_std().unwrap_or_default();
        if age > self.max_age {
            return Err(format!(
                "the delivery was sent at {sent_at}, more than {} s ago; a webhook this old is a replay and is refused",
                self.max_age.as_secs()
            ));
        }
        let ahead = (sent_at - now).to_std().unwrap_or_default();
        if ahead > self.max_ahead {
            return Err(format!(
                "the delivery's timestamp {sent_at} is ahead of this server's clock by more than {} s",
                self.max_ahead.as_secs()
            ));
        }
        Ok(())
    }
}

/// Why a body could not be read.
enum BodyError {
    TooLarge,
    TooSlow,
    Broken,
}

/// Reads a body of at most `limit` bytes at `pace`.
async fn read_paced(body: Body, limit: usize, pace: BodyPace) -> Result<Bytes, BodyError> {
    use http_body_util::BodyExt as _;
    let start = Instant::now();
    let mut body = body;
    let mut buffer = Vec::new();
    loop {
        let deadline = pace.deadline(start, buffer.len() + 1);
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(BodyError::TooSlow),
            Ok(None) => return Ok(Bytes::from(buffer)),
            Ok(Some(Err(_))) => return Err(BodyError::Broken),
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            if buffer.len() + data.len() > limit {
                return Err(BodyError::TooLarge);
            }
            buffer.extend_from_slice(&data);
        }
    }
}

async fn read_body(
    state: &IntakeState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Bytes, Response> {
    let too_large = || {
        refuse(
            state,
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the body is larger than {} bytes", state.body_limit),
        )
    };
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > state.body_limit) {
        return Err(too_large());
    }
    match read_paced(body, state.body_limit, state.body_pace).await {
        Ok(bytes) => Ok(bytes),
        Err(BodyError::TooLarge) => Err(too_large()),
        Err(BodyError::TooSlow) => Err(refuse(
            state,
            StatusCode::REQUEST_TIMEOUT,
            "too_slow",
            format!(
                "the body arrived slower than {} bytes/s after {:?}",
                state.body_pace.min_rate, state.body_pace.grace
            ),
        )),
        Err(BodyError::Broken) => Err(refuse(
            state,
            StatusCode::BAD_REQUEST,
            "malformed",
            "the body could not be read".into(),
        )),
    }
}

fn overloaded(state: &IntakeState) -> Response {
    refuse(
        state,
        StatusCode::SERVICE_UNAVAILABLE,
        "overloaded",
        "the tracker is at its concurrency limit; deliver it again later".into(),
    )
}

async fn receive_for_integration(
    State(state): State<IntakeState>,
    Path(integration): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Ok(id) = IntegrationId::parse(&integration) else {
        return refuse(
            &state,
            StatusCode::NOT_FOUND,
            "unknown_integration",
            format!("no integration {integration:?}"),
        );
    };
    let integration = match state.integrations.load(&id).await {
        Ok(integration) => integration,
        Err(TrackerError::NotFound { .. }) => {
            return refuse(
                &state,
                StatusCode::NOT_FOUND,
                "unknown_integration",
                format!("no integration {id}"),
            );
        }
        Err(error) => return unavailable(&state, &error),
    };
    receive(&state, &integration, &uri, &headers, body).await
}

/// What both routes do once the integration is known: check the headers,
/// read the body at its pace, check the body; only an authentic delivery then
/// takes a processing slot and a token of the integration's rate.
async fn receive(
    state: &IntakeState,
    integration: &Integration,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let path = uri.path();
    let query = uri.query().unwrap_or_default();
    if let Err(why) = authenticity::verify_headers(integration, headers, path, query) {
        return refuse(
            state,
            StatusCode::UNAUTHORIZED,
            "unauthentic",
            why.to_string(),
        );
    }
    let body = match read_body(state, headers, body).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    if let Err(why) = authenticity::verify_body(integration, headers, &body) {
        return refuse(
            state,
            StatusCode::UNAUTHORIZED,
            "unauthentic",
            why.to_string(),
        );
    }
    let Ok(_permit) = Arc::clone(&state.in_flight).try_acquire_owned() else {
        return overloaded(state);
    };
    if let Err(full) = state.backlog.admit() {
        return with_retry_after(
            refuse(
                state,
                StatusCode::SERVICE_UNAVAILABLE,
                "backlog_full",
                format!(
                    "the tracker's inbox holds {} deliveries, {} its bound of {}; deliver it again later",
                    full.pending,
                    if full.pending >= full.limit {
                        "at"
                    } else {
                        "near"
                    },
                    full.limit
                ),
            ),
            full.retry_after,
        );
    }
    if let Err(wait) = state.rate_limiter.take(&integration.id) {
        let response = refuse(
            state,
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "integration {} is over its webhook rate; deliver it again later",
                integration.id
            ),
        );
        return with_retry_after(response, wait);
    }
    accept(state, integration, headers, &body).await
}

async fn receive_connect(
    State(state): State<IntakeState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let issuer = authenticity::bearer_token(&headers)
        .ok_or(Unauthentic::MissingToken)
        .and_then(|token| {
            crate::jira::connect_jwt::unverified_claims(token).map_err(Unauthentic::Token)
        })
        .map(|claims| claims.iss);
    let issuer = match issuer {
        Ok(issuer) => issuer,
        Err(why) => {
            return refuse(
                &state,
                StatusCode::UNAUTHORIZED,
                "unauthentic",
                why.to_string(),
            );
        }
    };
    let integration = match state.integrations.find_by_client_key(&issuer).await {
        Ok(Some(integration)) => integration,
        Ok(None) => {
            return refuse(
                &state,
                StatusCode::UNAUTHORIZED,
                "unauthentic",
                Unauthentic::UnknownIssuer.to_string(),
            );
        }
        Err(error) => return unavailable(&state, &error),
    };
    receive(&state, &integration, &uri, &headers, body).await
}

fn unavailable(state: &IntakeState, error: &TrackerError) -> Response {
    tracing::error!(%error, "webhook could not be stored");
    refuse(
        state,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the delivery could not be stored; deliver it again later".into(),
    )
}

/// The delivery's deduplication key: Jira's stable webhook identifier, else one
/// derived from the issue, the changelog and the body.
fn delivery_key(
    headers: &HeaderMap,
    jira_issue_id: Option<&JiraIssueId>,
    key: Option<&IssueKey>,
    changelog_id: Option<&str>,
    body: &[u8],
) -> String {
    if let Some(id) = headers
        .get("x-atlassian-webhook-identifier")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 200)
    {
        return format!("atlassian:{id}");
    }
    let digest = Sha256::digest(body);
    format!(
        "derived:{}:{}:{}",
        jira_issue_id
            .map(ToString::to_string)
            .or_else(|| key.map(ToString::to_string))
            .unwrap_or_default(),
        changelog_id.unwrap_or_default(),
        hex::encode(&digest[..12])
    )
}

/// The W3C trace context to carry when spans are not exported: the sender's
/// when well-formed, else a new one. (When exporting, it is the request's
/// span's.)
fn traceparent(headers: &HeaderMap) -> String {
    let given = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .filter(|v| context::parse(v).is_some());
    match given {
        Some(value) => value.to_owned(),
        None => format!(
            "00-{:032x}-{:016x}-01",
            rand::random::<u128>().max(1),
            rand::random::<u64>().max(1)
        ),
    }
}

/// Stores an authentic delivery and answers for it.
async fn accept(
    state: &IntakeState,
    integration: &Integration,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let trace = context::current_or(&traceparent(headers));
    let kept: Vec<(String, String)> = headers
        .iter()
        .filter(|(name, _)| !SECRET_HEADERS.contains(&name.as_str()))
        .filter(|(name, value)| name.as_str().len() <= 64 && value.len() <= MAX_KEPT_HEADER_BYTES)
        .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_owned())))
        .take(MAX_KEPT_HEADERS)
        .collect();
    let digest = hex::encode(Sha256::digest(body));
    let (delivery, sent_at) = match classify(body) {
        Ok(Classified::Actionable(event)) => (
            NewDelivery {
                integration_id: integration.id.clone(),
                delivery_key: delivery_key(
                    headers,
                    event.jira_issue_id.as_ref(),
                    event.key.as_ref(),
                    event.changelog_id.as_deref(),
                    body,
                ),
                event_type: event.event_type.clone(),
                ordering_key: event.ordering_key(),
                issue_key: event.key,
                jira_issue_id: event.jira_issue_id,
                ignored_reason: None,
                headers: kept,
                body: String::from_utf8_lossy(body).into_owned(),
                body_digest: digest.clone(),
                traceparent: trace.clone(),
            },
            event.sent_at,
        ),
        Ok(Classified::Ignored(ignored)) => (
            NewDelivery {
                integration_id: integration.id.clone(),
                delivery_key: delivery_key(
                    headers,
                    ignored.jira_issue_id.as_ref(),
                    ignored.key.as_ref(),
                    None,
                    body,
                ),
                event_type: ignored.event_type,
                ordering_key: String::new(),
                issue_key: ignored.key,
                jira_issue_id: ignored.jira_issue_id,
                ignored_reason: Some(ignored.reason),
                headers: kept,
                body: String::from_utf8_lossy(body).into_owned(),
                body_digest: digest.clone(),
                traceparent: trace.clone(),
            },
            ignored.sent_at,
        ),
        Err(error) => {
            return refuse(
                state,
                StatusCode::BAD_REQUEST,
                "malformed",
                error.to_string(),
            );
        }
    };
    if let Err(why) = state.freshness.check(sent_at) {
        return refuse(state, StatusCode::BAD_REQUEST, "too_old", why);
    }
    let key = delivery.delivery_key.clone();
    let issue_key = delivery
        .issue_key
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    let ignored = delivery.ignored_reason.clone();
    let store_span = tracing::info_span!("inbox store", otel.name = "store webhook delivery");
    let stored = state.inbox.store(delivery).instrument(store_span).await;
    match stored {
        Ok(Stored::New(id)) => match ignored {
            None => {
                state.backlog.queued();
                state.metrics.webhook_outcome("accepted");
                tracing::info!(delivery_id = id, delivery_key = %key, jira_key = %issue_key, traceparent = %trace, "webhook stored");
                answer(
                    StatusCode::OK,
                    json!({ "status": "accepted", "delivery_id": id }),
                )
            }
            Some(reason) => {
                state.metrics.webhook_outcome("ignored");
                tracing::info!(delivery_id = id, delivery_key = %key, %reason, "webhook stored as ignored");
                answer(
                    StatusCode::OK,
                    json!({ "status": "ignored", "reason": reason, "delivery_id": id }),
                )
            }
        },
        Ok(Stored::Duplicate { id, state: stored }) => {
            state.metrics.webhook_outcome("duplicate");
            answer(
                StatusCode::OK,
                json!({ "status": "duplicate", "delivery_id": id, "state": stored.as_str() }),
            )
        }
        Err(error) => unavailable(state, &error),
    }
}
