//! What every RPC passes through before its handler: authentication, load
//! shedding, and per-RPC metrics.
//!
//! - **Authentication**: when tokens are configured, a call needs
//!   `authorization: Bearer <token>` matching one of them (UNAUTHENTICATED
//!   otherwise); the token's name is recorded on the span and the [`Caller`]
//!   (name and role) in the request's extensions, for the handler. Health and
//!   reflection stay open unless configured otherwise, so probes and grpcurl
//!   `list` work.
//! - **Authorization**: the caller's role must be one the RPC's rule lists
//!   (PERMISSION_DENIED, `ROLE_FORBIDDEN`, otherwise; a path without a rule is
//!   refused). Handlers narrow an organization's calls to its own resources.
//! - **Load shedding**: at most `max_in_flight` calls run at once; one more is
//!   answered RESOURCE_EXHAUSTED at once instead of queueing without bound.
//!   Long-lived streams (`unlimited` paths) and health checks are not counted.
//! - **Metrics**: every call's status code and latency, read from the response's
//!   `grpc-status` (headers for trailers-only answers, else trailers), also
//!   recorded on the call's span (`rpc.grpc.status_code`).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http_body::Frame;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Code;
use tonic::body::Body;
use tonic::codegen::Bytes;
use tower::{Layer, Service};

use crate::auth::{AccessRules, AuthTokens, Caller};
use crate::error::Reason;
use crate::metrics::RpcMetrics;
use crate::secret::Secret;
use crate::status::error_status;

/// How the gate treats calls.
#[derive(Debug, Clone, Default)]
pub struct GateConfig {
    /// Accepted tokens; none means authentication is off.
    pub tokens: AuthTokens,
    /// Which roles may call which RPC (applied when tokens are configured).
    pub rules: AccessRules,
    /// Whether health and reflection need a token too.
    pub protect_health_and_reflection: bool,
    /// Most calls in flight at once; `None` means unlimited.
    pub max_in_flight: Option<usize>,
    /// Paths (`/package.Service/Method`) not counted against `max_in_flight`
    /// (server streams that stay open).
    pub unlimited: Vec<String>,
}

#[derive(Debug)]
struct Shared {
    config: GateConfig,
    permits: Option<Arc<Semaphore>>,
    metrics: Option<RpcMetrics>,
}

/// The layer to put in front of the gRPC router.
#[derive(Debug, Clone)]
pub struct GateLayer {
    shared: Arc<Shared>,
}

impl GateLayer {
    /// A gate with `config`, recording into `metrics` when given.
    pub fn new(config: GateConfig, metrics: Option<RpcMetrics>) -> Self {
        let permits = config
            .max_in_flight
            .map(|n| Arc::new(Semaphore::new(n.max(1))));
        Self {
            shared: Arc::new(Shared {
                config,
                permits,
                metrics,
            }),
        }
    }
}

impl<S> Layer<S> for GateLayer {
    type Service = Gate<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Gate {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The gate in front of one service stack.
#[derive(Debug, Clone)]
pub struct Gate<S> {
    inner: S,
    shared: Arc<Shared>,
}

fn is_ops(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.") || path.starts_with("/grpc.reflection.")
}

/// The `ErrorInfo` domain of a path: its proto package (`assignment.v1`).
fn domain(path: &str) -> String {
    path.trim_start_matches('/')
        .split('/')
        .next()
        .and_then(|service| service.rsplit_once('.'))
        .map_or_else(|| "grpc".to_owned(), |(package, _)| package.to_owned())
}

fn bearer(headers: &http::HeaderMap) -> Option<Secret<String>> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| Secret::new(token.trim().to_owned()))
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, ReqBody> Service<http::Request<ReqBody>> for Gate<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        let started = Instant::now();
        let path = request.uri().path().to_owned();
        let shared = Arc::clone(&self.shared);
        let reject = |reason: Reason, message: String| {
            if let Some(metrics) = &shared.metrics {
                metrics.record(&path, reason.code(), started.elapsed().as_secs_f64());
            }
            let status = error_status(
                reason.code(),
                message,
                &domain(&path),
                reason.as_str(),
                HashMap::new(),
            );
            let response = status.into_http::<Body>();
            Box::pin(async move {
                // Polled inside the call's span (tonic enters it around polls,
                // not around `call`).
                crate::telemetry::rpc::record_grpc_status(
                    &tracing::Span::current(),
                    reason.code(),
                    true,
                );
                Ok(response)
            }) as Self::Future
        };

        let ops = is_ops(&path);
        let mut caller_name = None;
        let config = &shared.config;
        if config.tokens.enabled() && (!ops || config.protect_health_and_reflection) {
            match bearer(request.headers()) {
                None => {
                    return reject(
                        Reason::MissingToken,
                        "this server needs authorization: Bearer <token>".into(),
                    );
                }
                Some(token) => match config.tokens.check(&token) {
                    Some(caller) => {
                        caller_name = Some(caller.name.clone());
                        if !ops && !config.rules.allows(&path, caller.role) {
                            return reject(
                                Reason::RoleForbidden,
                                format!("the {} role may not call {path}", caller.role),
                            );
                        }
                        request.extensions_mut().insert::<Caller>(caller);
                    }
                    None => {
                        return reject(
                            Reason::InvalidToken,
                            "the bearer token is not valid for this server".into(),
                        );
                    }
                },
            }
        }

        let permit = match &shared.permits {
            Some(permits) if !ops && !config.unlimited.iter().any(|p| p == &path) => {
                match Arc::clone(permits).try_acquire_owned() {
                    Ok(permit) => Some(permit),
                    Err(_) => {
                        return reject(
                            Reason::Overloaded,
                            "the server is at its concurrency limit; retry with backoff".into(),
                        );
                    }
                }
            }
            _ => None,
        };

        // The clone is ready only if it was polled; take the polled one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let metrics = shared.metrics.clone();
        Box::pin(async move {
            // The call's span is current only while tonic polls this future.
            let span = tracing::Span::current();
            if let Some(name) = &caller_name {
                span.record("caller", name.as_str());
            }
            let response = inner.call(request).await?;
            let header_code = response
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<i32>().ok())
                .map(Code::from_i32);
            let (parts, body) = response.into_parts();
            let body = Body::new(Observed {
                inner: body,
                header_code,
                done: Some(Completion {
                    span,
                    path,
                    started,
                    metrics,
                    _permit: permit,
                }),
            });
            Ok(http::Response::from_parts(parts, body))
        })
    }
}

/// What to do when a response ends: record it, release the permit.
struct Completion {
    /// The call's span (made by the server's `trace_fn`), kept open until the
    /// response ends.
    span: tracing::Span,
    path: String,
    started: Instant,
    metrics: Option<RpcMetrics>,
    _permit: Option<OwnedSemaphorePermit>,
}

impl Completion {
    fn finish(self, code: Code) {
        crate::telemetry::rpc::record_grpc_status(&self.span, code, true);
        if let Some(metrics) = &self.metrics {
            metrics.record(&self.path, code, self.started.elapsed().as_secs_f64());
        }
    }
}

/// A response body that notices how the call ended.
struct Observed {
    inner: Body,
    header_code: Option<Code>,
    done: Option<Completion>,
}

impl http_body::Body for Observed {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    let code = trailers
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<i32>().ok())
                        .map_or(Code::Unknown, Code::from_i32);
                    if let Some(done) = self.done.take() {
                        done.finish(code);
                    }
                }
            }
            Poll::Ready(Some(Err(status))) => {
                let code = status.code();
                if let Some(done) = self.done.take() {
                    done.finish(code);
                }
            }
            Poll::Ready(None) => {
                let code = self.header_code.unwrap_or(Code::Ok);
                if let Some(done) = self.done.take() {
                    done.finish(code);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Observed {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            // The client went away before the response ended.
            let code = self.header_code.unwrap_or(Code::Cancelled);
            done.finish(code);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_come_from_the_package() {
        assert_eq!(
            domain("/assignment.v1.GroupService/GetGroup"),
            "assignment.v1"
        );
        assert_eq!(domain("/nothing"), "grpc");
        assert!(is_ops("/grpc.health.v1.Health/Check"));
        assert!(is_ops(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
        ));
        assert!(!is_ops("/tracker.v1.TrackerService/CreateIssue"));
    }
}
