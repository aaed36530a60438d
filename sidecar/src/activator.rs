//! The activator, inside the gateway: a request for a revision with no ready
//! instance is held, not refused. The first held request pokes the autoscaler
//! at once (no waiting for its next tick); the request is released to the first
//! instance that becomes ready. Per revision the number held is bounded (503
//! with `Retry-After` beyond it) and each hold has a deadline (504).
//!
//! It also holds requests when every instance is at its `containerConcurrency`
//! (see [`crate::endpoints`]), releasing them as slots free up.
//!
//! Whether it holds requests for a revision whose instances are all at their
//! limit is the autoscaler's call each tick, from the revision's excess burst
//! capacity (`targetBurstCapacity`, as Knative): in the path, they wait here and
//! go to the first instance with a free slot; out of it, they go straight to the
//! least loaded instance and queue there. At zero it is always in the path.

use crate::endpoints::{Endpoints, Lease};
use crate::guard::OnDrop;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Requests held per revision before new ones are refused.
pub const MAX_HELD: usize = 10_000;
/// How long a request waits for an instance.
pub const HOLD_TIMEOUT: Duration = Duration::from_secs(60);

/// Told when requests are held for a revision (the autoscaler listens).
pub trait Activation: Send + Sync {
    /// `held` requests are now waiting for `namespace/revision`.
    fn activate(&self, namespace: &str, revision: &str, held: usize);
}

/// Why a held request was not released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldError {
    /// Too many requests held for this revision already.
    Full,
    /// No instance became ready in time.
    Timeout,
}

#[derive(Default)]
pub struct Activator {
    held: Mutex<HashMap<String, usize>>,
}

impl Activator {
    fn change(&self, key: &str, up: bool) -> usize {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let n = held.entry(key.to_string()).or_insert(0);
        *n = if up { *n + 1 } else { n.saturating_sub(1) };
        let now = *n;
        if now == 0 {
            held.remove(key);
        }
        now
    }

    /// Requests held now for `key`.
    pub fn held(&self, key: &str) -> usize {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).get(key).copied().unwrap_or(0)
    }

    /// Holds until an instance of `key` can take the request; returns the lease
    /// and how long it waited.
    pub async fn hold(
        &self,
        endpoints: &Arc<Endpoints>,
        hook: &dyn Activation,
        ns: &str,
        rev: &str,
        key: &str,
    ) -> Result<(Lease, Duration), HoldError> {
        let start = Instant::now();
        let wake = endpoints.waker(key);
        let held = self.change(key, true);
        // Released however the hold ends, a dropped request (client gone) too.
        let _release = OnDrop::new(|| {
            self.change(key, false);
        });
        if held > MAX_HELD {
            return Err(HoldError::Full);
        }
        hook.activate(ns, rev, held);
        let wait = async {
            loop {
                // Registered before trying, so a wake-up between the try and
                // the wait is not lost.
                let mut woken = std::pin::pin!(wake.notified());
                woken.as_mut().enable();
                if let Ok(lease) = endpoints.acquire(key) {
                    return lease;
                }
                woken.await;
            }
        };
        let lease = tokio::time::timeout(HOLD_TIMEOUT, wait).await.map_err(|_| HoldError::Timeout)?;
        Ok((lease, start.elapsed()))
    }
}

#[cfg(test)]
mod tests;
