//! Building and running the service (library-first: `main` only parses flags).
//!
//! [`Application::build`] connects to the database, migrates it and binds both
//! listeners (port 0 allowed, so tests learn the real addresses);
//! [`Application::run_until_stopped`] serves until the shutdown signal fires, then
//! drains.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use service_runtime::database::{Database, PoolSettings, application_name};
use service_runtime::grpc::GrpcListener;
use service_runtime::grpc_gate::GateLayer;
use service_runtime::metrics::{MetricsBuilder, PoolMetrics, RpcMetrics};
use service_runtime::ops_http::{self, HttpListener, HttpSettings};
use service_runtime::serve::{GrpcOptions, Servers, serve_until_stopped, wind_down};
use service_runtime::shutdown::Shutdown;
use tokio::task::JoinSet;

use crate::api;
use crate::config::Config;
use crate::inbound_sync::batcher::AssigneeBatcher;
use crate::metrics::StreamMetrics;
use crate::notification_log::Retention;
use crate::storage::migrations::{MIGRATION_LOCK_KEY, Migrator};
use crate::stream::{RetentionSettings, StreamHub, StreamSettings, run_retention, run_tailer};

/// A built service: migrated database, bound listeners, not serving yet.
#[derive(Debug)]
pub struct Application {
    config: Config,
    db: Database,
    stream_db: Database,
    grpc: GrpcListener,
    http: HttpListener,
}

impl Application {
    /// Connects, migrates and binds.
    ///
    /// # Errors
    /// When the database cannot be reached or migrated, or an address cannot be
    /// bound.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let replica = format!(
            "{}-{}-{:x}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "assignment".into()),
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        );
        let name = application_name("assignment", &replica);
        let pool = PoolSettings {
            // Its group commit's statements come in fixed shapes.
            statement_cache_capacity: service_runtime::shapes::STATEMENT_CACHE_CAPACITY,
            ..config.bounds.pool(
                config.db_max_connections,
                PoolSettings::default().acquire_timeout,
                name.clone(),
            )
        };
        let db = Database::connect(&config.database_url, &pool)
            .await
            .with_context(|| format!("connecting to {}", config.database_url))?;
        db.migrate::<Migrator>(MIGRATION_LOCK_KEY)
            .await
            .context("migrating the database")?;
        let stream_pool = config.bounds.pool(
            config.stream_db_connections,
            PoolSettings::default().acquire_timeout,
            name,
        );
        let stream_db = Database::connect(&config.database_url, &stream_pool)
            .await
            .context("connecting the stream's pool")?;
        let grpc = GrpcListener::bind(config.grpc_addr)
            .await
            .with_context(|| format!("binding the gRPC address {}", config.grpc_addr))?;
        let http = HttpListener::bind(config.http_addr)
            .await
            .with_context(|| format!("binding the HTTP address {}", config.http_addr))?;
        Ok(Self {
            config,
            db,
            stream_db,
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

    /// Serves until `shutdown` fires, then stops accepting, ends streams and
    /// drains in-flight calls.
    ///
    /// # Errors
    /// When a server fails.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let Self {
            config,
            db,
            stream_db,
            grpc,
            http,
        } = self;
        let mut metrics = MetricsBuilder::new("assignment");
        let rpc_metrics = RpcMetrics::register(&mut metrics);
        let pool_metrics = PoolMetrics::register(&mut metrics);
        let stream_metrics = StreamMetrics::register(&mut metrics);
        let metrics = metrics.finish();
        let grpc_options = GrpcOptions {
            gate: GateLayer::new(
                config.grpc.gate(
                    &[api::SUBSCRIBE_PATH, api::WATCH_OUTBOUND_PATH],
                    api::access::rules(),
                )?,
                Some(rpc_metrics),
            ),
            tls: config.grpc.tls()?,
        };
        let hub = StreamHub::new(
            stream_db.clone(),
            StreamSettings {
                progress_interval: config.progress_interval,
                ring_batches: config.stream_ring_batches,
                poll_interval: config.poll_interval,
                max_streams: config.max_streams,
                max_streams_per_connection: config.max_streams_per_connection,
            },
            stream_metrics,
            shutdown.clone(),
        );
        // Background tasks live in a set owned by this future: dropping the
        // future (a process dying, or a test killing the service) stops them.
        let mut tasks = JoinSet::new();
        tasks.spawn(run_tailer(hub.clone()));
        tasks.spawn(run_retention(
            db.clone(),
            RetentionSettings {
                notifications: Retention {
                    max_age: config.retention_max_age,
                    max_count: config.retention_max_count,
                },
                request_ids: config.request_id_retention,
                interval: config.retention_interval,
            },
            shutdown.clone(),
        ));
        tasks.spawn(refresh_gauges(
            hub.clone(),
            db.clone(),
            stream_db.clone(),
            pool_metrics,
            shutdown.clone(),
        ));
        let assignees = AssigneeBatcher::start(&db, &shutdown, &mut tasks);
        let services = api::services(&db, &hub, &assignees, config.grpc.max_message_bytes);
        drop(assignees);
        let router = ops_http::router(ops_http::OpsRoutes {
            database: db.clone(),
            metrics: Arc::new(move || metrics.render()),
            readiness: vec![db.migrations_check::<Migrator>()],
            shutdown: shutdown.clone(),
        });
        serve_until_stopped(
            Servers {
                name: "assignment-service",
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
        // The servers only return after shutdown, which also ends these tasks.
        shutdown.trigger();
        wind_down(
            "assignment-service",
            tasks,
            vec![stream_db, db],
            &shutdown,
            config.bounds.shutdown_grace,
        )
        .await;
        tracing::info!("assignment-service stopped");
        Ok(())
    }
}

/// Refreshes the gauges that are read rather than counted: subscriber lags and
/// pool usage.
async fn refresh_gauges(
    hub: StreamHub,
    db: Database,
    stream_db: Database,
    pools: PoolMetrics,
    shutdown: Shutdown,
) {
    loop {
        hub.refresh_gauges();
        pools.refresh("main", &db);
        pools.refresh("stream", &stream_db);
        tokio::select! {
            () = shutdown.wait() => return,
            () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
    }
}
