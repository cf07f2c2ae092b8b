//! Both services start on fresh databases, report SERVING, and serve reflection
//! v1 and v1alpha listing their services, so grpcurl works without proto files.

use system_tests::{AssignmentApp, TestDatabase, TrackerApp};
use tokio_stream::StreamExt as _;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

async fn health(channel: Channel, service: &str) -> i32 {
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .unwrap()
        .into_inner()
        .status
}

async fn services_v1(channel: Channel) -> Vec<String> {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.next().await.unwrap().unwrap();
    match response.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("unexpected reflection response {other:?}"),
    }
}

async fn services_v1alpha(channel: Channel) -> Vec<String> {
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.next().await.unwrap().unwrap();
    match response.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("unexpected reflection response {other:?}"),
    }
}

#[tokio::test]
async fn both_services_report_serving_and_serve_reflection() {
    let assignment_db = TestDatabase::fresh().await;
    let tracker_db = TestDatabase::fresh().await;
    let assignment = AssignmentApp::spawn(assignment_db.url()).await;
    let tracker = TrackerApp::spawn(tracker_db.url(), assignment.grpc_addr).await;

    let serving = ServingStatus::Serving as i32;
    assert_eq!(health(assignment.channel(), "").await, serving);
    assert_eq!(
        health(assignment.channel(), "assignment.v1.DirectoryService").await,
        serving
    );
    assert_eq!(health(tracker.channel(), "").await, serving);
    assert_eq!(
        health(tracker.channel(), "tracker.v1.TrackerService").await,
        serving
    );

    for list in [
        services_v1(assignment.channel()).await,
        services_v1alpha(assignment.channel()).await,
    ] {
        for expected in [
            "assignment.v1.DirectoryService",
            "assignment.v1.GroupService",
            "assignment.v1.ExternalIssueService",
            "assignment.v1.NotificationService",
            "grpc.health.v1.Health",
        ] {
            assert!(
                list.iter().any(|s| s == expected),
                "{expected} missing from {list:?}"
            );
        }
    }
    for list in [
        services_v1(tracker.channel()).await,
        services_v1alpha(tracker.channel()).await,
    ] {
        for expected in ["tracker.v1.TrackerService", "grpc.health.v1.Health"] {
            assert!(
                list.iter().any(|s| s == expected),
                "{expected} missing from {list:?}"
            );
        }
    }

    // The operations endpoint answers too.
    for addr in [assignment.http_addr, tracker.http_addr] {
        let response = system_tests::http_client()
            .get(format!("http://{addr}/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    tracker.stop().await;
    assignment.stop().await;
}

async fn get(url: String) -> (u16, String) {
    let response = system_tests::http_client().get(url).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_names_what_is_not_ready_and_livez_stays_up() {
    use system_tests::proxy::CuttableProxy;
    use system_tests::wait;

    let assignment_db = TestDatabase::fresh().await;
    let tracker_db = TestDatabase::fresh().await;
    let assignment = AssignmentApp::spawn(assignment_db.url()).await;
    let proxy = CuttableProxy::start(assignment.grpc_addr).await;
    let tracker = TrackerApp::spawn(tracker_db.url(), proxy.addr).await;

    let (status, body) = get(format!("http://{}/readyz", assignment.http_addr)).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "database: ok\nmigrations: ok\n")
    );
    let (status, body) = get(format!("{}/readyz", tracker.http_url())).await;
    assert_eq!(
        (status, body.as_str()),
        (
            200,
            "database: ok\nmigrations: ok\nassignment service: ok\n"
        )
    );

    // The assignment service becomes unreachable: the tracker is alive but
    // not ready, and says why.
    proxy.cut();
    let body = wait::until(
        "the tracker to report the assignment service unreachable",
        wait::DEFAULT_DEADLINE,
        || async {
            let (status, body) = get(format!("{}/readyz", tracker.http_url())).await;
            (status == 503).then_some(body)
        },
    )
    .await;
    assert!(
        body.starts_with("database: ok\nmigrations: ok\nassignment service: unreachable"),
        "{body}"
    );
    assert_eq!(get(format!("{}/livez", tracker.http_url())).await.0, 200);

    proxy.restore();
    wait::until(
        "the tracker to be ready again",
        wait::DEFAULT_DEADLINE,
        || async { (get(format!("{}/readyz", tracker.http_url())).await.0 == 200).then_some(()) },
    )
    .await;
    tracker.stop().await;
    assignment.stop().await;
}
