//! Spans for calls, named and attributed per OpenTelemetry's semantic
//! conventions: gRPC servers and clients (`rpc.system`, `rpc.service`,
//! `rpc.method`, `rpc.grpc.status_code`) and HTTP servers
//! (`http.request.method`, `http.route`, `http.response.status_code`).
//!
//! The gRPC server span is made for every call (it also carries the fields
//! logs show); the client span only when exporting ([`ClientTraceLayer`]),
//! since it exists to carry the context to the server.

use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::Code;
use tower::{Layer, Service};
use tracing::field::Empty;
use tracing::{Instrument as _, Span};

use super::context;

/// `/package.Service/Method` → (`package.Service`, `Method`).
pub fn split_path(path: &str) -> (&str, &str) {
    let path = path.strip_prefix('/').unwrap_or(path);
    path.split_once('/').unwrap_or((path, ""))
}

/// The server span of a gRPC call to `path`, the child of the caller's
/// `traceparent` when it sent one.
pub fn grpc_server_span(path: &str, traceparent: &str) -> Span {
    let (service, method) = split_path(path);
    let span = tracing::info_span!(
        "grpc",
        otel.name = %format_args!("{service}/{method}"),
        otel.kind = "server",
        otel.status_code = Empty,
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
        rpc.grpc.status_code = Empty,
        method = %path,
        traceparent,
        caller = Empty,
        request_id = Empty,
        jira_key = Empty,
    );
    context::set_parent(&span, traceparent);
    span
}

/// Whether a call that ended with `code` failed, as the conventions count it:
/// on a server only the codes that mean the server failed; on a client any
/// code but OK.
pub fn is_error(code: Code, server: bool) -> bool {
    if !server {
        return code != Code::Ok;
    }
    matches!(
        code,
        Code::Unknown
            | Code::DeadlineExceeded
            | Code::Unimplemented
            | Code::Internal
            | Code::Unavailable
            | Code::DataLoss
    )
}

/// Records how a gRPC call ended on its span.
pub fn record_grpc_status(span: &Span, code: Code, server: bool) {
    span.record("rpc.grpc.status_code", code as i32);
    if is_error(code, server) {
        span.record("otel.status_code", "ERROR");
    }
}

/// The server span of an HTTP request to `route` (the route's template, not
/// the path), the child of the sender's `traceparent` header when valid.
pub fn http_server_span(method: &http::Method, route: &str, headers: &http::HeaderMap) -> Span {
    let span = tracing::info_span!(
        "http",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = %method,
        http.route = route,
        http.response.status_code = Empty,
    );
    if let Some(traceparent) = headers.get("traceparent").and_then(|v| v.to_str().ok()) {
        context::set_parent(&span, traceparent);
    }
    span
}

/// Records the answer's status on an HTTP server span (5xx is an error).
pub fn record_http_status(span: &Span, status: http::StatusCode) {
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
}

/// Wraps a gRPC channel so that, when exporting, each call gets a client span
/// (the child of the current span) whose context replaces the request's
/// `traceparent`. The status is read from the response headers: tonic servers
/// answer errors trailers-only; a status only in trailers is recorded as OK.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientTraceLayer;

impl<S> Layer<S> for ClientTraceLayer {
    type Service = TracedClient<S>;
    fn layer(&self, inner: S) -> Self::Service {
        TracedClient { inner }
    }
}

/// A gRPC client service with client spans; see [`ClientTraceLayer`].
#[derive(Debug, Clone)]
pub struct TracedClient<S> {
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for TracedClient<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        if !context::exporting() {
            return Box::pin(self.inner.call(request));
        }
        let (service, method) = split_path(request.uri().path());
        let span = tracing::info_span!(
            "grpc client",
            otel.name = %format_args!("{service}/{method}"),
            otel.kind = "client",
            otel.status_code = Empty,
            rpc.system = "grpc",
            rpc.service = service,
            rpc.method = method,
            rpc.grpc.status_code = Empty,
        );
        if let Some(value) = context::of(&span).and_then(|tp| http::HeaderValue::try_from(tp).ok())
        {
            request.headers_mut().insert("traceparent", value);
        }
        let call = self.inner.call(request);
        let recorded = span.clone();
        Box::pin(
            async move {
                let answer = call.await;
                let code = match &answer {
                    Ok(response) => response
                        .headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<i32>().ok())
                        .map_or(Code::Ok, Code::from_i32),
                    Err(_) => Code::Unavailable,
                };
                record_grpc_status(&recorded, code, false);
                answer
            }
            .instrument(span),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_service_and_method() {
        for (path, service, method) in [
            (
                "/assignment.v1.GroupService/AssignGroup",
                "assignment.v1.GroupService",
                "AssignGroup",
            ),
            (
                "/grpc.health.v1.Health/Check",
                "grpc.health.v1.Health",
                "Check",
            ),
            ("/odd", "odd", ""),
            ("", "", ""),
        ] {
            assert_eq!(split_path(path), (service, method), "{path}");
        }
    }

    #[test]
    fn servers_count_only_their_own_failures_as_errors() {
        for (code, server_error) in [
            (Code::Ok, false),
            (Code::InvalidArgument, false),
            (Code::NotFound, false),
            (Code::PermissionDenied, false),
            (Code::ResourceExhausted, false),
            (Code::Unknown, true),
            (Code::DeadlineExceeded, true),
            (Code::Unimplemented, true),
            (Code::Internal, true),
            (Code::Unavailable, true),
            (Code::DataLoss, true),
        ] {
            assert_eq!(is_error(code, true), server_error, "{code:?}");
            assert_eq!(is_error(code, false), code != Code::Ok, "{code:?}");
        }
    }
}
