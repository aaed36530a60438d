//! Per-route resilience, written once for every protocol: a timeout per try,
//! retries (a try that never reached an instance always; one that may have
//! only for methods declared safe), outlier ejection (an instance failing N
//! times in a row gets nothing for a while), a local token-bucket rate limit,
//! and fault injection (delay or abort a share of requests).
//!
//! Pure: decisions take `now` and random rolls as arguments; the callers
//! (the HTTP gateway and the RPC worker) do the waiting and the I/O.

use crate::endpoints::Target;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Default wait for an RPC answer, per try.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default tries of a request that never reached an instance.
pub const DEFAULT_ATTEMPTS: u32 = 3;

/// What a route's `spec.resilience` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Wait for an answer, per try. `None`: RPC waits [`DEFAULT_TIMEOUT`];
    /// HTTP gets no deadline at the gateway (the revision's `timeoutSeconds`
    /// applies at the instance, as before any policy existed).
    pub timeout: Option<Duration>,
    pub attempts: u32,
    /// Methods safe to send again after a try that may have reached an instance.
    pub resend_methods: Vec<String>,
    pub resend_all: bool,
    pub breaker: Option<Breaker>,
    pub rate_limit: Option<RateLimit>,
    pub fault: Option<Fault>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            timeout: None,
            attempts: DEFAULT_ATTEMPTS,
            resend_methods: Vec::new(),
            resend_all: false,
            breaker: None,
            rate_limit: None,
            fault: None,
        }
    }
}

impl Policy {
    /// The wait for an RPC answer.
    pub fn rpc_timeout(&self) -> Duration {
        self.timeout.unwrap_or(DEFAULT_TIMEOUT)
    }

    /// Whether a request of `method` may be sent again after a try that may
    /// have reached an instance (timed out, or the connection closed after
    /// the write).
    pub fn may_resend(&self, method: &str) -> bool {
        self.resend_all || self.resend_methods.iter().any(|m| m == method)
    }

    /// Whether the route keeps state (a bucket, instance health) between requests.
    pub fn is_stateful(&self) -> bool {
        self.breaker.is_some() || self.rate_limit.is_some()
    }
}

/// Outlier ejection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Breaker {
    pub consecutive_failures: u32,
    pub eject_for: Duration,
}

/// A token bucket: `per_second` refill, `burst` capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

/// Fault injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub abort_percent: u32,
    pub delay_percent: u32,
    pub delay: Duration,
}

/// What fault injection does to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAction {
    Pass,
    Delay(Duration),
    Abort,
}

impl Fault {
    /// `abort_roll` and `delay_roll` are uniform in `0..100`.
    pub fn decide(&self, abort_roll: u32, delay_roll: u32) -> FaultAction {
        if abort_roll < self.abort_percent {
            FaultAction::Abort
        } else if delay_roll < self.delay_percent {
            FaultAction::Delay(self.delay)
        } else {
            FaultAction::Pass
        }
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

#[derive(Debug, Default, Clone, Copy)]
struct Health {
    failures: u32,
    ejected_until: Option<Instant>,
}

/// The state of one route between requests, shared by all workers.
#[derive(Debug)]
pub struct RouteState {
    bucket: Mutex<Bucket>,
    health: Mutex<HashMap<Target, Health>>,
}

impl RouteState {
    /// A full bucket at `now`.
    pub fn new(policy: &Policy, now: Instant) -> Self {
        let tokens = policy.rate_limit.map_or(0.0, |l| f64::from(l.burst));
        Self { bucket: Mutex::new(Bucket { tokens, last: now }), health: Mutex::default() }
    }

    /// Takes a token if the route is rate limited; `false` means refuse.
    pub fn admit(&self, policy: &Policy, now: Instant) -> bool {
        let Some(limit) = policy.rate_limit else { return true };
        let mut b = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let refill = now.saturating_duration_since(b.last).as_secs_f64() * f64::from(limit.per_second);
        b.tokens = (b.tokens + refill).min(f64::from(limit.burst));
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Instances ejected at `now`, for the endpoint pick to avoid.
    pub fn ejected(&self, now: Instant) -> Vec<Target> {
        let health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        health.iter().filter(|(_, h)| h.ejected_until.is_some_and(|t| t > now)).map(|(t, _)| *t).collect()
    }

    /// Records a try's outcome on `target`; returns `true` if this ejected it.
    pub fn record(&self, policy: &Policy, target: Target, ok: bool, now: Instant) -> bool {
        let Some(breaker) = policy.breaker else { return false };
        let mut health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        let h = health.entry(target).or_default();
        if ok {
            *h = Health::default();
            return false;
        }
        h.failures += 1;
        if h.failures >= breaker.consecutive_failures && h.ejected_until.is_none_or(|t| t <= now) {
            h.ejected_until = Some(now + breaker.eject_for);
            h.failures = 0; // back in, it gets a full run of tries again
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(port: u16) -> Target {
        Target::from(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
    }

    #[test]
    fn the_bucket_allows_a_burst_then_the_rate() {
        let now = Instant::now();
        let p = Policy { rate_limit: Some(RateLimit { per_second: 10, burst: 5 }), ..Policy::default() };
        let s = RouteState::new(&p, now);
        assert_eq!((0..8).filter(|_| s.admit(&p, now)).count(), 5, "the burst");
        assert!(!s.admit(&p, now + Duration::from_millis(50)), "half a token");
        assert!(s.admit(&p, now + Duration::from_millis(100)), "one token after 100 ms");
        let later = now + Duration::from_secs(60);
        assert_eq!((0..8).filter(|_| s.admit(&p, later)).count(), 5, "never more than the burst");
    }

    #[test]
    fn consecutive_failures_eject_an_instance_for_a_while() {
        let now = Instant::now();
        let breaker = Breaker { consecutive_failures: 3, eject_for: Duration::from_secs(30) };
        let p = Policy { breaker: Some(breaker), ..Policy::default() };
        let s = RouteState::new(&p, now);
        assert!(!s.record(&p, t(1), false, now));
        assert!(!s.record(&p, t(1), true, now), "a success resets the run");
        assert!(!s.record(&p, t(1), false, now));
        assert!(!s.record(&p, t(1), false, now));
        assert!(s.record(&p, t(1), false, now), "the third in a row ejects");
        assert_eq!(s.ejected(now + Duration::from_secs(29)), [t(1)]);
        assert!(s.ejected(now + Duration::from_secs(30)).is_empty(), "back after eject_for");
        assert!(!s.record(&Policy::default(), t(2), false, now), "no breaker, no ejection");
    }

    #[test]
    fn faults_follow_their_percentages() {
        let f = Fault { abort_percent: 5, delay_percent: 10, delay: Duration::from_millis(100) };
        assert_eq!(f.decide(4, 99), FaultAction::Abort);
        assert_eq!(f.decide(5, 9), FaultAction::Delay(Duration::from_millis(100)));
        assert_eq!(f.decide(5, 10), FaultAction::Pass);
    }

    #[test]
    fn only_declared_methods_are_sent_again() {
        let p = Policy { resend_methods: vec!["getUser".into()], ..Policy::default() };
        assert!(p.may_resend("getUser") && !p.may_resend("createUser"));
        assert!(Policy { resend_all: true, ..Policy::default() }.may_resend("createUser"));
    }
}
