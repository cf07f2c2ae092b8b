//! Building and running the notifier (library-first: `main` only parses
//! flags).
//!
//! [`Application::build`] connects to the database, migrates it and binds
//! both listeners (port 0 allowed, so tests learn the real addresses);
//! [`Application::run_until_stopped`] serves the API and runs the pipeline
//! until the shutdown signal fires, then drains.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use jira_sync_client::ConnectOptions;
use service_runtime::database::{Database, PoolSettings, application_name};
use service_runtime::grpc::GrpcListener;
use service_runtime::grpc_gate::GateLayer;
use service_runtime::metrics::{MetricsBuilder, PoolMetrics, RpcMetrics};
use service_runtime::ops_http::{self, HttpListener, HttpSettings};
use service_runtime::serve::{GrpcOptions, Servers, serve_until_stopped, wind_down};
use service_runtime::shutdown::Shutdown;
use tokio::task::JoinSet;

use crate::channels::{ChannelSettings, Channels};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::pipeline::dispatch::DispatchSettings;
use crate::pipeline::intake::Source;
use crate::pipeline::{Wakers, acknowledge, dispatch, intake};
use crate::storage::migrations::{MIGRATION_LOCK_KEY, Migrator};
use crate::{access, api};

/// A built notifier: migrated database, bound listeners, not running yet.
#[derive(Debug)]
pub struct Application {
    config: Config,
    db: Database,
    grpc: GrpcListener,
    http: HttpListener,
}

impl Application {
    /// Connects, migrates and binds.
    ///
    /// # Errors
    /// When the database cannot be reached or migrated, or an address cannot
    /// be bound.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        anyhow::ensure!(
            config.channel_rate >= 0.0 && config.channel_rate.is_finite(),
            "--channel-rate must be a number of messages per second, 0 or more"
        );
        // Unique per process (and per instance in one test process): at
        // shutdown the pool cancels the queries of its own application name,
        // which must not reach another notifier's connections.
        // (The unique part first: a long subscriber name is what gets cut.)
        let replica = format!(
            "{}-{:x}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos()),
            config.subscriber_name,
        );
        let name = application_name("notifier", &replica);
        let pool = config.bounds.pool(
            config.db_max_connections,
            PoolSettings::default().acquire_timeout,
            name,
        );
        let db = Database::connect(&config.database_url, &pool)
            .await
            .with_context(|| format!("connecting to {}", config.database_url))?;
        db.migrate::<Migrator>(MIGRATION_LOCK_KEY)
            .await
            .context("migrating the database")?;
        let grpc = GrpcListener::bind(config.grpc_addr)
            .await
            .with_context(|| format!("binding the gRPC address {}", config.grpc_addr))?;
        let http = HttpListener::bind(config.http_addr)
            .await
            .with_context(|| format!("binding the HTTP address {}", config.http_addr))?;
        Ok(Self {
            config,
            db,
            grpc,
            http,
        })
    }

    /// Where the gRPC API listens.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc.local_addr()
    }

    /// Where `/healthz` and `/metrics` listen.
    pub fn http_addr(&self) -> SocketAddr {
        self.http.local_addr()
    }

    /// Serves and delivers until `shutdown` fires, then drains.
    ///
    /// # Errors
    /// When a server fails or the HTTP client cannot be built.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let Self {
            config,
            db,
            grpc,
            http,
        } = self;
        let mut metrics = MetricsBuilder::new("notifier");
        let rpc_metrics = RpcMetrics::register(&mut metrics);
        let pool_metrics = PoolMetrics::register(&mut metrics);
        let notifier_metrics = Metrics::register(&mut metrics);
        let metrics = metrics.finish();
        let grpc_options = GrpcOptions {
            gate: GateLayer::new(config.grpc.gate(&[], access::rules())?, Some(rpc_metrics)),
            tls: config.grpc.tls()?,
        };
        let channels = Channels::new(&ChannelSettings {
            slack_url: config.slack_api_url.clone(),
            discord_url: config.discord_api_url.clone(),
            timeout: config.request_timeout,
        })?;
        let source = Source {
            url: config.assignment_url.clone(),
            connect: ConnectOptions {
                token: config.assignment_token.as_ref().map(|t| t.expose().clone()),
                ..ConnectOptions::default()
            },
            subscriber_name: config.subscriber_name.clone(),
        };
        let wakers = Wakers::default();
        let (arrivals, arrived) = tokio::sync::mpsc::channel(10_000);
        // Background tasks live in a set owned by this future: dropping the
        // future (a process dying, or a test killing the notifier) stops them.
        let mut tasks = JoinSet::new();
        tasks.spawn(intake::run(
            db.clone(),
            source.clone(),
            wakers.clone(),
            arrivals,
            shutdown.clone(),
        ));
        tasks.spawn(dispatch::run(
            db.clone(),
            channels,
            DispatchSettings {
                concurrency: config.concurrency,
                max_backoff: config.max_backoff,
                channel_rate: config.channel_rate,
                channel_burst: config.channel_burst,
            },
            notifier_metrics.clone(),
            wakers.clone(),
            arrived,
            shutdown.clone(),
        ));
        tasks.spawn(acknowledge::run(
            db.clone(),
            source,
            notifier_metrics,
            wakers.clone(),
            shutdown.clone(),
        ));
        {
            let db = db.clone();
            let shutdown = shutdown.clone();
            tasks.spawn(async move {
                while !shutdown.is_triggered() {
                    pool_metrics.refresh("main", &db);
                    tokio::select! {
                        () = shutdown.wait() => {}
                        () = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
                    }
                }
            });
        }
        let services = api::services(
            &db,
            &wakers,
            config.allow_http_webhooks,
            config.grpc.max_message_bytes,
        );
        let router = ops_http::router(ops_http::OpsRoutes {
            database: db.clone(),
            metrics: Arc::new(move || metrics.render()),
            readiness: vec![db.migrations_check::<Migrator>()],
            shutdown: shutdown.clone(),
        });
        serve_until_stopped(
            Servers {
                name: "notifier",
                grpc,
                services,
                grpc_options,
                http,
                router,
                http_settings: HttpSettings::default(),
                grace: config.bounds.shutdown_grace,
            },
            shutdown.clone(),
        )
        .await?;
        shutdown.trigger();
        wind_down(
            "notifier",
            tasks,
            vec![db],
            &shutdown,
            config.bounds.shutdown_grace,
        )
        .await;
        tracing::info!("notifier stopped");
        Ok(())
    }
}
