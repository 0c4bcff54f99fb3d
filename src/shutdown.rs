//! The shutdown signal: SIGINT or SIGTERM.

/// Resolves on the first SIGINT or SIGTERM.
///
/// # Cancel safety
///
/// Cancel safe: dropping it before it resolves loses nothing.
pub async fn signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
