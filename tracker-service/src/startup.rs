//! Building and running the tracker (library-first: `main` only parses flags).
//!
//! [`Application::build`] connects to the database, migrates it and binds both
//! listeners (port 0 allowed); [`Application::run_until_stopped`] serves gRPC and
//! HTTP (webhooks, `/healthz`, `/metrics`) and runs the dispatcher, the linker and
//! retention until the shutdown signal fires, then drains.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use service_runtime::database::{Database, application_name};
use service_runtime::grpc::GrpcListener;
use service_runtime::grpc_gate::GateLayer;
use service_runtime::metrics::{MetricsBuilder, PoolMetrics, RpcMetrics};
use service_runtime::ops_http::{self, HttpListener, HttpSettings};
use service_runtime::serve::{GrpcOptions, Servers, serve_until_stopped, wind_down};
use service_runtime::shutdown::Shutdown;
use service_runtime::time::now;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::api;
use crate::assignment_client::AssignmentClient;
use crate::config::Config;
use crate::integrations::IntegrationCache;
use crate::issues::{IssueService, IssueSettings, run_linker};
use crate::jira::targets::TargetPolicy;
use crate::jira::{JiraClient, JiraSettings};
use crate::metrics::Metrics;
use crate::outbound::{self, apply::OutboundApplier};
use crate::storage::migrations::{MIGRATION_LOCK_KEY, Migrator};
use crate::webhooks::apply::Applier;
use crate::webhooks::backlog::{self, Backlog, Bounds};
use crate::webhooks::dispatcher::{DispatchSettings, Dispatcher, run_dispatcher};
use crate::webhooks::inbox;
use crate::webhooks::inbox_writer::InboxWriter;
use crate::webhooks::intake::{self, BodyPace, Freshness, IntakeState};
use crate::webhooks::rate_limit::RateLimiter;
use crate::webhooks::waker::DispatchWaker;

/// A built service: migrated database, bound listeners, not serving yet.
#[derive(Debug)]
pub struct Application {
    config: Config,
    db: Database,
    grpc: GrpcListener,
    http: HttpListener,
    /// This replica's name: on its leases, and its database connections.
    replica: String,
}

impl Application {
    /// Connects, migrates and binds.
    ///
    /// # Errors
    /// When the database cannot be reached or migrated, or an address cannot be
    /// bound.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        service_runtime::tls::install_crypto_provider();
        let replica = config.replica_id.clone().unwrap_or_else(|| {
            format!(
                "{}-{}-{:x}",
                std::env::var("HOSTNAME").unwrap_or_else(|_| "tracker".into()),
                std::process::id(),
                rand::random::<u32>()
            )
        });
        let pool = config.bounds.pool(
            config.db_max_connections,
            config.db_acquire_timeout,
            application_name("tracker", &replica),
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
            replica,
        })
    }

    /// Where the gRPC API listens.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc.local_addr()
    }

    /// Where webhooks, `/healthz` and `/metrics` listen.
    pub fn http_addr(&self) -> SocketAddr {
        self.http.local_addr()
    }

    /// Serves until `shutdown` fires, then stops accepting and drains.
    ///
    /// # Errors
    /// When a server fails or a client cannot be built.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let Self {
            config,
            db,
            grpc,
            http,
            replica: owner,
        } = self;
        let mut registry = MetricsBuilder::new("tracker");
        let rpc_metrics = RpcMetrics::register(&mut registry);
        let pool_metrics = PoolMetrics::register(&mut registry);
        let metrics = Metrics::register(&mut registry);
        let rendered = registry.finish();
        let grpc_options = GrpcOptions {
            gate: GateLayer::new(
                config.grpc.gate(&[], api::access::rules())?,
                Some(rpc_metrics),
            ),
            tls: config.grpc.tls()?,
        };
        let jira = JiraClient::new(
            JiraSettings {
                request_timeout: config.jira_timeout,
                max_attempts: config.jira_max_attempts,
                max_retry_wait: config.jira_max_retry_wait,
                connect_app_key: config.connect_app_key.clone(),
                targets: TargetPolicy {
                    allow_loopback: config.jira_allow_loopback,
                },
            },
            metrics.clone(),
        )
        .context("building the Jira client")?;
        let ca = config
            .assignment_ca_cert
            .as_ref()
            .map(|path| std::fs::read(path).with_context(|| format!("reading {}", path.display())))
            .transpose()?;
        let assignment = AssignmentClient::new(
            &config.assignment_url,
            config.assignment_timeout,
            config.assignment_token.as_ref(),
            ca,
        )
        .with_context(|| format!("assignment service URL {}", config.assignment_url))?
        .batching(usize::from(config.assignment_batch));
        let issues = IssueService::new(
            db.clone(),
            jira.clone(),
            assignment.clone(),
            IssueSettings {
                create_meta_ttl: config.jira_metadata_ttl,
                unknown_outcome_grace: config.unknown_outcome_grace,
                ..IssueSettings::default()
            },
        );
        let waker = DispatchWaker::default();
        let backlog = Arc::new(
            Backlog::counted(
                &db,
                Bounds {
                    max_pending: config.inbox_max_pending,
                    max_wait: config.inbox_max_wait,
                    min_pending: config.dispatch_concurrency as u64,
                },
            )
            .await
            .context("counting the inbox")?,
        );
        let integrations = IntegrationCache::new(db.clone(), config.integration_cache_ttl);
        let applier = Applier::new(
            db.clone(),
            integrations.clone(),
            jira.clone(),
            assignment.clone(),
            config.jira_metadata_ttl,
        );
        let outbound_waker = DispatchWaker::default();

        // Background tasks live in a set owned by this future: dropping the
        // future (a process dying, or a test killing the service) stops them.
        let mut tasks = JoinSet::new();
        let inbox_writer = InboxWriter::start(
            db.clone(),
            owner.clone(),
            waker.clone(),
            shutdown.clone(),
            &mut tasks,
        );
        tasks.spawn(run_dispatcher(
            Dispatcher {
                db: db.clone(),
                inbox_writer: inbox_writer.clone(),
                applier,
                waker: waker.clone(),
                settings: DispatchSettings {
                    concurrency: config.dispatch_concurrency,
                    poll_interval: config.dispatch_poll_interval,
                    lease: config.dispatch_lease,
                    max_backoff: config.dispatch_max_backoff,
                    shutdown_grace: config.bounds.shutdown_grace,
                },
                owner: owner.clone(),
                metrics: metrics.clone(),
                backlog: Arc::clone(&backlog),
            },
            shutdown.clone(),
        ));
        tasks.spawn(backlog::run_recount(
            Arc::clone(&backlog),
            db.clone(),
            shutdown.clone(),
        ));
        tasks.spawn(outbound::run_receiver(
            outbound::Receiver {
                db: db.clone(),
                assignment: assignment.clone(),
                waker: outbound_waker.clone(),
            },
            shutdown.clone(),
        ));
        tasks.spawn(outbound::run_worker(
            outbound::Worker {
                db: db.clone(),
                applier: OutboundApplier {
                    db: db.clone(),
                    integrations: integrations.clone(),
                    jira: jira.clone(),
                    max_attempts: config.outbound_max_attempts,
                    max_backoff: config.dispatch_max_backoff,
                },
                waker: outbound_waker.clone(),
                owner: owner.clone(),
                concurrency: config.outbound_concurrency,
                poll_interval: config.dispatch_poll_interval,
                lease: config.dispatch_lease,
                shutdown_grace: config.bounds.shutdown_grace,
                metrics: metrics.clone(),
            },
            shutdown.clone(),
        ));
        tasks.spawn(run_linker(issues.clone(), shutdown.clone()));
        tasks.spawn(run_retention(db.clone(), config.clone(), shutdown.clone()));
        tasks.spawn(run_gauges(
            db.clone(),
            metrics.clone(),
            pool_metrics,
            shutdown.clone(),
        ));

        let services = api::TrackerApi {
            db: db.clone(),
            integrations: integrations.clone(),
            issues: issues.clone(),
            waker: waker.clone(),
            assignment: assignment.clone(),
            targets: TargetPolicy {
                allow_loopback: config.jira_allow_loopback,
            },
            jira: jira.clone(),
            outbound_waker: outbound_waker.clone(),
        }
        .into_services(config.grpc.max_message_bytes);
        let reachable = assignment.clone();
        let router = ops_http::router(ops_http::OpsRoutes {
            database: db.clone(),
            metrics: Arc::new(move || rendered.render()),
            readiness: vec![
                db.migrations_check::<Migrator>(),
                ops_http::ReadinessCheck::new("assignment service", move || {
                    let client = reachable.clone();
                    async move { client.ready().await }
                }),
            ],
            shutdown: shutdown.clone(),
        })
        .merge(intake::routes(IntakeState {
            integrations,
            inbox: inbox_writer,
            body_limit: config.webhook_body_limit,
            in_flight: Arc::new(Semaphore::new(config.webhook_max_in_flight.max(1))),
            backlog,
            rate_limiter: Arc::new(RateLimiter::new(config.webhook_rate, config.webhook_burst)),
            freshness: Freshness {
                max_age: config.webhook_max_age,
                max_ahead: Duration::from_secs(15 * 60),
            },
            body_pace: BodyPace {
                grace: config.webhook_read_timeout,
                min_rate: config.webhook_min_body_rate,
            },
            metrics,
        }));
        serve_until_stopped(
            Servers {
                name: "tracker-service",
                grpc,
                services,
                grpc_options,
                http,
                router,
                http_settings: HttpSettings {
                    header_read_timeout: config.webhook_read_timeout,
                },
                grace: config.bounds.shutdown_grace,
            },
            shutdown.clone(),
        )
        .await?;
        shutdown.trigger();
        wind_down(
            "tracker-service",
            tasks,
            vec![db],
            &shutdown,
            config.bounds.shutdown_grace,
        )
        .await;
        tracing::info!("tracker-service stopped");
        Ok(())
    }
}

/// Prunes delivered webhooks and old idempotency records, once per interval.
async fn run_retention(db: Database, config: Config, shutdown: Shutdown) {
    loop {
        let age =
            |d: Duration| now() - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        match inbox::prune_delivered(&db, age(config.inbox_retention)).await {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, "retention pruned delivered webhooks"),
            Err(error) => tracing::warn!(%error, "retention could not prune webhooks"),
        }
        match crate::outbound::store::prune(&db, age(config.inbox_retention)).await {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, "retention pruned applied outbound syncs"),
            Err(error) => tracing::warn!(%error, "retention could not prune outbound syncs"),
        }
        if let Err(error) =
            service_runtime::idempotency::prune(&db, age(config.request_id_retention)).await
        {
            tracing::warn!(%error, "retention could not prune request ids");
        }
        tokio::select! {
            () = shutdown.wait() => return,
            () = tokio::time::sleep(config.retention_interval) => {}
        }
    }
}

/// Refreshes the gauges that are read rather than counted (inbox, pool)
/// every few seconds.
async fn run_gauges(db: Database, metrics: Metrics, pools: PoolMetrics, shutdown: Shutdown) {
    loop {
        pools.refresh("main", &db);
        match inbox::pending_stats(&db).await {
            Ok((pending, oldest)) => {
                let age = oldest
                    .map(|t| (now() - t).num_milliseconds().max(0) as f64 / 1000.0)
                    .unwrap_or(0.0);
                metrics.inbox(pending, age);
            }
            Err(error) => tracing::debug!(%error, "cannot read inbox gauges"),
        }
        match crate::outbound::store::pending_stats(&db).await {
            Ok((pending, oldest)) => {
                let age = oldest
                    .map(|t| (now() - t).num_milliseconds().max(0) as f64 / 1000.0)
                    .unwrap_or(0.0);
                metrics.outbound(pending, age);
            }
            Err(error) => tracing::debug!(%error, "cannot read outbound gauges"),
        }
        tokio::select! {
            () = shutdown.wait() => return,
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}
