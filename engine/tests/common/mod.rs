//! Helpers shared by the engine's integration tests.

use std::time::Duration;

/// Polls `check` every 20 ms until it holds; panics after 10 s naming `what`
/// (background work such as a compaction or GC is awaited this way).
pub async fn wait_for<F: std::future::Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    for _ in 0..500 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}
