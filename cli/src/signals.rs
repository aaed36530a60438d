//! Waiting for Ctrl-C or SIGTERM.

use tokio::signal::unix::{Signal, SignalKind, signal};

/// SIGINT and SIGTERM, listened for from the moment [`listen`] returns: a
/// process that announces itself ready (a replica's ready line) must already
/// catch SIGTERM, or a stop sent right after would kill it undrained.
pub struct Shutdown {
    int: Option<Signal>,
    term: Option<Signal>,
}

/// Starts listening now; [`Shutdown::wait`] returns on the first signal.
pub fn listen() -> Shutdown {
    Shutdown { int: signal(SignalKind::interrupt()).ok(), term: signal(SignalKind::terminate()).ok() }
}

impl Shutdown {
    pub async fn wait(mut self) {
        let recv = |s: &mut Option<Signal>| {
            let s = s.take();
            async move {
                match s {
                    Some(mut s) => drop(s.recv().await),
                    None => std::future::pending().await,
                }
            }
        };
        tokio::select! {
            _ = recv(&mut self.int) => {}
            _ = recv(&mut self.term) => {}
        }
    }
}

/// Returns on the first SIGINT or SIGTERM after the call.
pub async fn wait_for_shutdown() {
    listen().wait().await
}
