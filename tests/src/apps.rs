//! The services, started in-process on port 0, with typed clients.

use std::net::SocketAddr;

use proto::assignment::v1 as assignment;
use proto::tracker::v1 as tracker;
use service_runtime::config::DatabaseUrl;
use service_runtime::shutdown::Shutdown;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};

/// A running assignment service.
#[derive(Debug)]
pub struct AssignmentApp {
    /// Where its gRPC API listens.
    pub grpc_addr: SocketAddr,
    /// Where `/healthz` and `/metrics` listen.
    pub http_addr: SocketAddr,
    channel: Channel,
    shutdown: Shutdown,
    task: JoinHandle<anyhow::Result<()>>,
}

/// Connects lazily to a gRPC address.
pub fn channel_to(addr: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy()
}

impl AssignmentApp {
    /// Starts an assignment service on `database_url` with test defaults: a
    /// 100 ms progress interval, so a test knows quickly that a stream caught up.
    pub async fn spawn(database_url: DatabaseUrl) -> Self {
        Self::spawn_with(Self::config(database_url)).await
    }

    /// The configuration [`Self::spawn`] uses, for tests that change a setting.
    pub fn config(database_url: DatabaseUrl) -> assignment_service::Config {
        let mut config = assignment_service::Config::for_tests(database_url);
        config.progress_interval = std::time::Duration::from_millis(100);
        config
    }

    /// Starts an assignment service with `config`.
    pub async fn spawn_with(config: assignment_service::Config) -> Self {
        crate::init_test_logs();
        let app = assignment_service::Application::build(config)
            .await
            .expect("assignment service builds");
        let grpc_addr = app.grpc_addr();
        let http_addr = app.http_addr();
        let shutdown = Shutdown::new();
        let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        Self {
            grpc_addr,
            http_addr,
            channel: channel_to(grpc_addr),
            shutdown,
            task,
        }
    }

    /// A channel to the gRPC API.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// `assignment.v1.DirectoryService`.
    pub fn directory(
        &self,
    ) -> assignment::directory_service_client::DirectoryServiceClient<Channel> {
        assignment::directory_service_client::DirectoryServiceClient::new(self.channel())
    }

    /// `assignment.v1.GroupService`.
    pub fn groups(&self) -> assignment::group_service_client::GroupServiceClient<Channel> {
        assignment::group_service_client::GroupServiceClient::new(self.channel())
    }

    /// `assignment.v1.ExternalIssueService`.
    pub fn external_issues(
        &self,
    ) -> assignment::external_issue_service_client::ExternalIssueServiceClient<Channel> {
        assignment::external_issue_service_client::ExternalIssueServiceClient::new(self.channel())
    }

    /// `assignment.v1.NotificationService`.
    pub fn notifications(
        &self,
    ) -> assignment::notification_service_client::NotificationServiceClient<Channel> {
        assignment::notification_service_client::NotificationServiceClient::new(self.channel())
    }

    /// Stops the service (as SIGTERM would) and waits until it exited.
    pub async fn stop(self) {
        self.shutdown.trigger();
        self.task
            .await
            .expect("assignment service task")
            .expect("assignment service stops cleanly");
    }

    /// Kills the service: drops every task it runs mid-flight, without draining
    /// (as a crash would; its open transactions are abandoned).
    pub async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// A running tracker service.
#[derive(Debug)]
pub struct TrackerApp {
    /// Where its gRPC API listens.
    pub grpc_addr: SocketAddr,
    /// Where webhooks, `/healthz` and `/metrics` listen.
    pub http_addr: SocketAddr,
    channel: Channel,
    shutdown: Shutdown,
    task: JoinHandle<anyhow::Result<()>>,
}

impl TrackerApp {
    /// Starts a tracker on `database_url` that calls the assignment service at
    /// `assignment_addr`.
    pub async fn spawn(database_url: DatabaseUrl, assignment_addr: SocketAddr) -> Self {
        Self::spawn_with(tracker_service::Config::for_tests(
            database_url,
            format!("http://{assignment_addr}"),
        ))
        .await
    }

    /// Starts a tracker with `config`.
    pub async fn spawn_with(config: tracker_service::Config) -> Self {
        crate::init_test_logs();
        let app = tracker_service::Application::build(config)
            .await
            .expect("tracker service builds");
        let grpc_addr = app.grpc_addr();
        let http_addr = app.http_addr();
        let shutdown = Shutdown::new();
        let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        Self {
            grpc_addr,
            http_addr,
            channel: channel_to(grpc_addr),
            shutdown,
            task,
        }
    }

    /// A channel to the gRPC API.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// `tracker.v1.TrackerService`.
    pub fn tracker(&self) -> tracker::tracker_service_client::TrackerServiceClient<Channel> {
        tracker::tracker_service_client::TrackerServiceClient::new(self.channel())
    }

    /// The base URL of the HTTP endpoint.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    /// Stops the service (as SIGTERM would) and waits until it exited.
    pub async fn stop(self) {
        self.shutdown.trigger();
        self.task
            .await
            .expect("tracker service task")
            .expect("tracker service stops cleanly");
    }

    /// Kills the service: drops every task it runs mid-flight, without draining
    /// (as a crash would; its claims on deliveries stay until their leases
    /// expire).
    pub async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}
