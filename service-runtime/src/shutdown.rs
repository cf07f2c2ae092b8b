//! Graceful shutdown.
//!
//! A [`Shutdown`] is a cancellation token shared by every task of a service. `main`
//! cancels it on SIGTERM or Ctrl-C; tests cancel it to stop a service in-process.
//! Servers stop accepting, report NOT_SERVING, and drain in-flight requests;
//! long-lived streams end with UNAVAILABLE (never with a clean OK).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// The end of a shutdown grace kept for giving up what is left; see
/// [`Shutdown::work_deadline`].
pub const WIND_DOWN_RESERVE: Duration = Duration::from_millis(1500);

/// A cloneable shutdown signal.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    /// When shutdown began: deadlines count from here.
    started: Arc<OnceLock<tokio::time::Instant>>,
}

impl Shutdown {
    /// A signal that has not fired.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts shutdown; every clone sees it.
    pub fn trigger(&self) {
        self.started.get_or_init(tokio::time::Instant::now);
        self.token.cancel();
    }

    /// Whether shutdown has started.
    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Completes once shutdown has started.
    pub async fn wait(&self) {
        self.token.cancelled().await;
    }

    /// Owned form of [`Shutdown::wait`], for APIs that take a `'static` future.
    pub fn wait_owned(&self) -> impl Future<Output = ()> + Send + 'static {
        self.token.clone().cancelled_owned()
    }

    /// `grace` after shutdown began (after now, if it has not).
    pub fn deadline(&self, grace: Duration) -> tokio::time::Instant {
        let started = if self.is_triggered() {
            *self.started.get_or_init(tokio::time::Instant::now)
        } else {
            tokio::time::Instant::now()
        };
        started + grace
    }

    /// When in-flight requests and work stop being waited for: the grace
    /// less [`WIND_DOWN_RESERVE`], which the process keeps to give up what is
    /// left (release leases, cancel its queries, close pools) and still exit
    /// within its grace.
    pub fn work_deadline(&self, grace: Duration) -> tokio::time::Instant {
        self.deadline(grace.saturating_sub(WIND_DOWN_RESERVE))
    }

    /// Triggers this signal on SIGTERM or Ctrl-C. Spawns a task; call from `main`.
    pub fn trigger_on_signals(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown signal received, draining");
            this.trigger();
        });
    }
}

async fn wait_for_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
