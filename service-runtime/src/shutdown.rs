//! Graceful shutdown.
//!
//! A [`Shutdown`] is a cancellation token shared by every task of a service. `main`
//! cancels it on SIGTERM or Ctrl-C; tests cancel it to stop a service in-process.
//! Servers stop accepting, report NOT_SERVING, and drain in-flight requests;
//! long-lived streams end with UNAVAILABLE (never with a clean OK).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How long in-flight work may take to finish once shutdown starts, before the
/// process stops waiting.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A cloneable shutdown signal.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
}

impl Shutdown {
    /// A signal that has not fired.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts shutdown; every clone sees it.
    pub fn trigger(&self) {
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

    /// Triggers this signal on SIGTERM or Ctrl-C. Spawns a task; call from `main`.
    pub fn trigger_on_signals(&self) {
        let token = self.token.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown signal received, draining");
            token.cancel();
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
