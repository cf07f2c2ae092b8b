//! Waiting on conditions with a deadline, instead of sleeping.

use std::time::Duration;

/// How long a condition may take before the test fails.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);

/// Polls `check` until it returns `Some`, failing the test with `what` after
/// `deadline`. Between polls it yields briefly so other tasks make progress.
pub async fn until<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let give_up = tokio::time::Instant::now() + deadline;
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < give_up,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}
