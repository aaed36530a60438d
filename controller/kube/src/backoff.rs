//! Per-object retry delays: 1 s after the first failure, doubling to at most
//! 5 minutes, reset by a success (as controller-runtime's default rate limiter
//! per item). A broken object is retried slowly; the others are unaffected.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

const FIRST: Duration = Duration::from_secs(1);
const MAX: Duration = Duration::from_secs(300);

/// The delay after `failures` failures in a row (1 or more).
pub fn delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST.saturating_mul(1 << doublings).min(MAX)
}

#[derive(Debug, Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// Counts a failure of `key` and returns how long to wait.
    pub fn failed(&self, key: &str) -> Duration {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(key.to_string()).or_default();
        *n = n.saturating_add(1);
        delay(*n)
    }

    /// A success: the next failure waits the shortest delay again.
    pub fn succeeded(&self, key: &str) {
        self.failures.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_five_minutes_and_reset_on_success() {
        let b = Backoff::default();
        let secs: Vec<u64> = (0..11).map(|_| b.failed("Function/a/f").as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(b.failed("Function/a/other").as_secs(), 1, "objects back off independently");
        b.succeeded("Function/a/f");
        assert_eq!(b.failed("Function/a/f").as_secs(), 1);
        assert_eq!(delay(u32::MAX), MAX);
    }
}
