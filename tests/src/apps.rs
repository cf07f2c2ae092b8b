//! The services, started in-process on port 0, with typed clients.

use std::net::SocketAddr;
use std::ops::Deref;

use proto::assignment::v1 as assignment;
use proto::tracker::v1 as tracker;
use service_runtime::config::DatabaseUrl;
use service_runtime::shutdown::Shutdown;
use tokio::task::JoinHandle;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

/// Adds `authorization: Bearer <token>` to every call, when it has a token.
#[derive(Debug, Clone, Default)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Bearer {
    /// Presents `token` (or nothing).
    pub fn new(token: Option<&str>) -> Self {
        Self(token.map(|t| format!("Bearer {t}").parse().unwrap()))
    }
}

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A channel whose calls carry the caller's token.
pub type Authed = InterceptedService<Channel, Bearer>;

/// A caller of the assignment service: a channel and the token it presents (the
/// fixture helpers in [`crate::fixtures`] are defined on it, so a set-up can run
/// as any caller).
#[derive(Debug, Clone)]
pub struct AssignmentApi {
    channel: Channel,
    bearer: Bearer,
}

impl AssignmentApi {
    /// A caller over `channel` presenting `token`.
    pub fn new(channel: Channel, token: Option<&str>) -> Self {
        Self {
            channel,
            bearer: Bearer::new(token),
        }
    }

    /// The same channel, presenting `token` instead.
    pub fn as_token(&self, token: &str) -> Self {
        Self::new(self.channel.clone(), Some(token))
    }

    /// The channel, without a token.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    fn authed(&self) -> Authed {
        InterceptedService::new(self.channel.clone(), self.bearer.clone())
    }

    /// `assignment.v1.DirectoryService`.
    pub fn directory(
        &self,
    ) -> assignment::directory_service_client::DirectoryServiceClient<Authed> {
        assignment::directory_service_client::DirectoryServiceClient::new(self.authed())
    }

    /// `assignment.v1.GroupService`.
    pub fn groups(&self) -> assignment::group_service_client::GroupServiceClient<Authed> {
        assignment::group_service_client::GroupServiceClient::new(self.authed())
    }

    /// `assignment.v1.ExternalIssueService`.
    pub fn external_issues(
        &self,
    ) -> assignment::external_issue_service_client::ExternalIssueServiceClient<Authed> {
        assignment::external_issue_service_client::ExternalIssueServiceClient::new(self.authed())
    }

    /// `assignment.v1.NotificationService`.
    pub fn notifications(
        &self,
    ) -> assignment::notification_service_client::NotificationServiceClient<Authed> {
        assignment::notification_service_client::NotificationServiceClient::new(self.authed())
    }
}

/// A caller of the tracker's API: a channel and the token it presents.
#[derive(Debug, Clone)]
pub struct TrackerApi {
    channel: Channel,
    bearer: Bearer,
}

impl TrackerApi {
    /// A caller over `channel` presenting `token`.
    pub fn new(channel: Channel, token: Option<&str>) -> Self {
        Self {
            channel,
            bearer: Bearer::new(token),
        }
    }

    /// The same channel, presenting `token` instead.
    pub fn as_token(&self, token: &str) -> Self {
        Self::new(self.channel.clone(), Some(token))
    }

    /// The channel, without a token.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// `tracker.v1.TrackerService`.
    pub fn tracker(&self) -> tracker::tracker_service_client::TrackerServiceClient<Authed> {
        tracker::tracker_service_client::TrackerServiceClient::new(InterceptedService::new(
            self.channel.clone(),
            self.bearer.clone(),
        ))
    }
}

/// A running assignment service.
#[derive(Debug)]
pub struct AssignmentApp {
    /// Where its gRPC API listens.
    pub grpc_addr: SocketAddr,
    /// Where `/healthz` and `/metrics` listen.
    pub http_addr: SocketAddr,
    api: AssignmentApi,
    shutdown: Shutdown,
    task: JoinHandle<anyhow::Result<()>>,
}

/// The app's API, without a token (`app.as_token(…)` for another caller).
impl Deref for AssignmentApp {
    type Target = AssignmentApi;
    fn deref(&self) -> &AssignmentApi {
        &self.api
    }
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
            api: AssignmentApi::new(channel_to(grpc_addr), None),
            shutdown,
            task,
        }
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
    api: TrackerApi,
    shutdown: Shutdown,
    task: JoinHandle<anyhow::Result<()>>,
}

/// The app's API, without a token (`app.as_token(…)` for another caller).
impl Deref for TrackerApp {
    type Target = TrackerApi;
    fn deref(&self) -> &TrackerApi {
        &self.api
    }
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
            api: TrackerApi::new(channel_to(grpc_addr), None),
            shutdown,
            task,
        }
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
