//! The shutdown signals: the first SIGINT or SIGTERM asks for a graceful stop; a second one
//! exits at once.
//!
//! A graceful stop waits up to `SHUTDOWN_TIMEOUT_MS` for in-flight jobs. An operator who sends
//! a second signal (a second Ctrl-C, `docker stop` after `docker kill -s TERM`) wants the
//! process gone now: it exits with [`FORCED_EXIT_CODE`] after removing its scratch files, and
//! the jobs it held are recovered by the stalled check of another worker once their locks
//! expire (imports are idempotent, so re-running them is safe).

/// The exit code of a forced exit (128 + SIGINT, what a shell reports for Ctrl-C).
pub const FORCED_EXIT_CODE: i32 = 130;

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

/// Resolves on the first SIGINT or SIGTERM, like [`signal`], and from then on a second one
/// removes the scratch directories and exits the process at once with [`FORCED_EXIT_CODE`].
///
/// Both signal streams are registered before the first signal is awaited and kept for the
/// second, so a second signal sent right after the first is not missed.
///
/// # Cancel safety
///
/// Cancel safe until it resolves; the forced exit is armed only once it has.
pub async fn signal_then_force_exit() {
    use tokio::signal::unix::{SignalKind, signal as listen};
    let (Ok(mut term), Ok(mut int)) = (
        listen(SignalKind::terminate()),
        listen(SignalKind::interrupt()),
    ) else {
        // No signal handling available: a graceful stop on the first signal is all we can do.
        signal().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::warn!(
            "second shutdown signal: exiting now; unfinished jobs go to stalled recovery"
        );
        crate::scratch::remove_all();
        std::process::exit(FORCED_EXIT_CODE);
    });
}
