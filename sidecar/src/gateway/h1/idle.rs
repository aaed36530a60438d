//! How long a client connection may stay silent, and its shutdown: one timer
//! and one shutdown waiter per connection, kept across requests. A
//! `timeout` around every read would arm and cancel a timer per request —
//! the timer wheel's lock twice, and a wake-up of the runtime's driver
//! whenever the new deadline is the earliest — and a fresh `cancelled()`
//! would join and leave the token's waiter list per request. Here a read only
//! notes when its wait began; the timer moves when it fires early.

use std::pin::Pin;
use std::time::Duration;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

pub(super) struct Waits {
    timer: Pin<Box<Sleep>>,
    /// When the current wait began, and how long it may last.
    since: Instant,
    limit: Duration,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
}

/// What ended a wait that was not a read.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Ended {
    Silent,
    Shutdown,
}

impl Waits {
    pub(super) fn new(shutdown: &CancellationToken) -> Self {
        // Set for real by the first `start`, which only ever moves it sooner.
        const FAR: Duration = Duration::from_secs(86_400);
        let since = Instant::now();
        Self {
            timer: Box::pin(tokio::time::sleep_until(since + FAR)),
            since,
            limit: FAR,
            shutdown: Box::pin(shutdown.clone().cancelled_owned()),
        }
    }

    /// Starts a wait of at most `limit` (from now).
    pub(super) fn start(&mut self, limit: Duration) {
        self.since = Instant::now();
        self.limit = limit;
        let due = self.since + limit;
        if self.timer.deadline() > due {
            self.timer.as_mut().reset(due); // only ever sooner: later waits wait for the timer to fire
        }
    }

    /// Resolves when the wait has lasted its limit or, if `idle`, at shutdown.
    pub(super) async fn ended(&mut self, idle: bool) -> Ended {
        let silent = async {
            loop {
                self.timer.as_mut().await;
                let due = self.since + self.limit;
                if Instant::now() >= due {
                    return Ended::Silent;
                }
                self.timer.as_mut().reset(due); // fired for an earlier wait
            }
        };
        tokio::select! {
            biased;
            _ = self.shutdown.as_mut(), if idle => Ended::Shutdown,
            e = silent => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_wait_ends_after_its_own_limit_not_an_earlier_one() {
        let token = CancellationToken::new();
        let mut w = Waits::new(&token);
        w.start(Duration::from_secs(30));
        tokio::time::advance(Duration::from_secs(20)).await;
        w.start(Duration::from_secs(300)); // a new wait, 20 s in: the timer is due at 30 s
        let began = Instant::now();
        assert_eq!(w.ended(false).await, Ended::Silent);
        assert_eq!(began.elapsed(), Duration::from_secs(300), "the new wait's limit, from its start");
    }

    #[tokio::test(start_paused = true)]
    async fn a_shorter_wait_moves_the_timer_sooner() {
        let token = CancellationToken::new();
        let mut w = Waits::new(&token);
        w.start(Duration::from_secs(300));
        w.start(Duration::from_secs(30));
        let began = Instant::now();
        assert_eq!(w.ended(false).await, Ended::Silent);
        assert_eq!(began.elapsed(), Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_ends_only_an_idle_wait() {
        let token = CancellationToken::new();
        let mut w = Waits::new(&token);
        token.cancel();
        w.start(Duration::from_secs(30));
        let began = Instant::now();
        assert_eq!(w.ended(false).await, Ended::Silent, "a request half read is not cut by shutdown");
        assert_eq!(began.elapsed(), Duration::from_secs(30));
        w.start(Duration::from_secs(30));
        assert_eq!(w.ended(true).await, Ended::Shutdown);
    }
}
