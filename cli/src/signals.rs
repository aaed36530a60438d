//! Waiting for Ctrl-C or SIGTERM.

use tokio::signal::unix::{SignalKind, signal};

/// Returns on the first SIGINT or SIGTERM.
pub async fn wait_for_shutdown() {
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
