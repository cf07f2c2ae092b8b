//! OpenTelemetry export (issue 20, DESIGN.md §9): the spans of one webhook
//! reach an OTLP/gRPC collector as one trace, each step the child of the step
//! that caused it, from the HTTP request to the notification's hand-over to a
//! subscriber.
//!
//! Its own test binary: span export is process-wide (a global subscriber), so
//! it must not watch the other system tests. Run with `--nocapture` to see the
//! collector's dump of the trace.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt as _;
use jira_sim::fixture;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use proto::assignment::v1 as pb;
use service_runtime::config::TelemetryArgs;
use service_runtime::secret::Secret;
use system_tests::fixtures::inbound_on;
use system_tests::{AssignmentApp, Pair, TestDatabase, wait};

const JIRA: &str = "acme-jira";
const ADMIN: &str = "admin-token-0a1b2c3d4e5f6071";

/// An OTLP/gRPC collector keeping every span it is sent, with its service name.
#[derive(Debug, Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<(String, Span)>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut kept = self.spans.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| text(a.value.as_ref()?.value.as_ref()?))
                .unwrap_or_default();
            for scope in resource.scope_spans {
                for span in scope.spans {
                    kept.push((service.clone(), span));
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::StringValue(s) => Some(s.clone()),
        Value::IntValue(i) => Some(i.to_string()),
        Value::BoolValue(b) => Some(b.to_string()),
        _ => None,
    }
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| text(a.value.as_ref()?.value.as_ref()?))
}

async fn start_collector() -> (Collector, std::net::SocketAddr) {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    let service = TraceServiceServer::new(collector.clone());
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(incoming)
            .await
    });
    (collector, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhooks_spans_reach_the_collector_as_one_trace_with_causal_parents() {
    let (collector, addr) = start_collector().await;
    let telemetry = service_runtime::telemetry::init_without_logs(
        &TelemetryArgs {
            otlp_endpoint: Some(format!("http://{addr}")),
        },
        "jira-sync-system-test",
    )
    .unwrap();

    let pair = Pair::start().await;
    pair.create_integration(JIRA, false).await;
    let app = &pair.assignment;
    let org = app.create_org("acme").await;
    let project = app.create_project(org, "web").await;
    let group = app.create_group(project, "TypeError in checkout").await;
    app.install(org, JIRA, inbound_on()).await;
    app.link(org, JIRA, "APP-123", "101", &[group]).await;
    let jess = app.create_user("Jess", &[("jess@sentry.io", true)]).await;
    app.grant(project, jess).await;

    let mut stream = app
        .notifications()
        .subscribe(pb::SubscribeRequest {
            start: Some(pb::subscribe_request::Start::AfterSequence(0)),
            filter: Some(pb::NotificationFilter {
                recipient_user_ids: vec![jess],
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let (status, answer) = pair
        .tracker
        .post_webhook(
            JIRA,
            &fixture("edit_issue_assignee_payload.json"),
            Some("d-otel"),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let notification = tokio::time::timeout(wait::DEFAULT_DEADLINE, async {
        loop {
            match stream.next().await.unwrap().unwrap().event {
                Some(pb::subscribe_response::Event::Notification(n)) => return n,
                _ => continue,
            }
        }
    })
    .await
    .unwrap();
    let (trace, parent, _) = service_runtime::telemetry::context::parse(&notification.traceparent)
        .expect("the notification carries a well-formed traceparent");
    let trace = trace.to_be_bytes().to_vec();

    // The steps, by span name, in causal order; each one's parent is named.
    let steps: [(&str, Option<&str>); 11] = [
        ("POST /webhooks/jira/{integration}", None),
        (
            "store webhook delivery",
            Some("POST /webhooks/jira/{integration}"),
        ),
        (
            "commit webhook deliveries",
            Some("POST /webhooks/jira/{integration}"),
        ),
        (
            "transaction in commit webhook deliveries",
            Some("commit webhook deliveries"),
        ),
        (
            "dispatch webhook delivery",
            Some("POST /webhooks/jira/{integration}"),
        ),
        ("send assignee changes", Some("dispatch webhook delivery")),
        (
            "assignment.v1.ExternalIssueService/SyncAssigneeInboundBatch#client",
            Some("send assignee changes"),
        ),
        (
            "assignment.v1.ExternalIssueService/SyncAssigneeInboundBatch#server",
            Some("assignment.v1.ExternalIssueService/SyncAssigneeInboundBatch#client"),
        ),
        (
            "apply SyncAssigneeInbound group",
            Some("assignment.v1.ExternalIssueService/SyncAssigneeInboundBatch#server"),
        ),
        (
            "transaction in apply SyncAssigneeInbound group",
            Some("apply SyncAssigneeInbound group"),
        ),
        (
            "deliver notification",
            Some("assignment.v1.ExternalIssueService/SyncAssigneeInboundBatch#server"),
        ),
    ];
    // A span's step name: RPC spans by name and kind (transactions are named
    // after their parent's step below).
    let step_of = |span: &Span| -> String {
        match SpanKind::try_from(span.kind) {
            Ok(SpanKind::Client) if attribute(span, "rpc.system").is_some() => {
                format!("{}#client", span.name)
            }
            Ok(SpanKind::Server) if attribute(span, "rpc.system").is_some() => {
                format!("{}#server", span.name)
            }
            _ => span.name.clone(),
        }
    };
    let spans: HashMap<String, Span> = wait::until(
        "the webhook's spans at the collector",
        wait::DEFAULT_DEADLINE,
        || {
            let telemetry = &telemetry;
            let collector = collector.clone();
            let trace = trace.clone();
            async move {
                tokio::task::block_in_place(|| telemetry.flush());
                let kept = collector.spans.lock().unwrap();
                let in_trace: Vec<&Span> = kept
                    .iter()
                    .filter(|(_, span)| span.trace_id == trace)
                    .map(|(_, span)| span)
                    .collect();
                let by_id: HashMap<&[u8], String> = in_trace
                    .iter()
                    .map(|span| (span.span_id.as_slice(), step_of(span)))
                    .collect();
                let ours: HashMap<String, Span> = in_trace
                    .iter()
                    .map(|span| {
                        let step = if span.name.starts_with("transaction ") {
                            let parent = by_id.get(span.parent_span_id.as_slice());
                            format!("transaction in {}", parent.map_or("?", String::as_str))
                        } else {
                            step_of(span)
                        };
                        (step, (*span).clone())
                    })
                    .collect();
                steps
                    .iter()
                    .all(|(step, _)| ours.contains_key(*step))
                    .then_some(ours)
            }
        },
    )
    .await;

    println!("trace {}:", hex::encode(&trace));
    for (step, _) in &steps {
        let span = &spans[*step];
        println!(
            "  {:<64} span {} parent {}",
            step,
            hex::encode(&span.span_id),
            hex::encode(&span.parent_span_id)
        );
    }
    for (step, parent) in steps {
        let span = &spans[step];
        match parent {
            None => assert!(span.parent_span_id.is_empty(), "{step} is the root"),
            Some(parent) => assert_eq!(
                span.parent_span_id, spans[parent].span_id,
                "{step} is the child of {parent}"
            ),
        }
    }
    let server = &spans["assignment.v1.ExternalIssueService/SyncAssigneeInboundBatch#server"];
    assert_eq!(
        server.span_id,
        parent.to_be_bytes().to_vec(),
        "the notification carries the context of the call that wrote it"
    );
    for (key, value) in [
        ("rpc.system", "grpc"),
        ("rpc.service", "assignment.v1.ExternalIssueService"),
        ("rpc.method", "SyncAssigneeInboundBatch"),
        ("rpc.grpc.status_code", "0"),
    ] {
        assert_eq!(attribute(server, key).as_deref(), Some(value), "{key}");
    }
    let http = &spans["POST /webhooks/jira/{integration}"];
    assert_eq!(SpanKind::try_from(http.kind), Ok(SpanKind::Server));
    assert_eq!(
        attribute(http, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(
        attribute(http, "http.route").as_deref(),
        Some("/webhooks/jira/{integration}")
    );
    let transaction = &spans["transaction in apply SyncAssigneeInbound group"];
    assert!(attribute(transaction, "db.system.name").is_some());
    assert_eq!(
        attribute(transaction, "db.outcome").as_deref(),
        Some("committed")
    );
    let service = collector
        .spans
        .lock()
        .unwrap()
        .iter()
        .find(|(_, span)| span.trace_id == trace)
        .map(|(service, _)| service.clone());
    assert_eq!(service.as_deref(), Some("jira-sync-system-test"));

    // With tokens, a call's span names the caller and a refused call's span its
    // status (both recorded by the gate, which runs before tonic enters the
    // span).
    let db = TestDatabase::fresh().await;
    let mut config = AssignmentApp::config(db.url());
    config.grpc.auth_tokens = vec![Secret::new(format!("ops:admin={ADMIN}"))];
    let guarded = AssignmentApp::spawn_with(config).await;
    guarded
        .as_token(ADMIN)
        .directory()
        .list_organizations(pb::ListOrganizationsRequest::default())
        .await
        .unwrap();
    let refused = guarded
        .as_token("not-a-token-of-this-server")
        .directory()
        .list_organizations(pb::ListOrganizationsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    let calls: Vec<Span> = wait::until("the guarded calls' spans", wait::DEFAULT_DEADLINE, || {
        let telemetry = &telemetry;
        let collector = collector.clone();
        async move {
            tokio::task::block_in_place(|| telemetry.flush());
            let kept = collector.spans.lock().unwrap();
            let calls: Vec<Span> = kept
                .iter()
                .map(|(_, span)| span)
                .filter(|span| span.name == "assignment.v1.DirectoryService/ListOrganizations")
                .cloned()
                .collect();
            (calls.len() == 2).then_some(calls)
        }
    })
    .await;
    let summary: Vec<(Option<String>, Option<String>)> = calls
        .iter()
        .map(|span| {
            (
                attribute(span, "caller"),
                attribute(span, "rpc.grpc.status_code"),
            )
        })
        .collect();
    assert!(
        summary.contains(&(Some("ops".into()), Some("0".into()))),
        "{summary:?}"
    );
    assert!(
        summary.contains(&(
            None,
            Some((tonic::Code::Unauthenticated as i32).to_string())
        )),
        "{summary:?}"
    );
    telemetry.shutdown();
}
