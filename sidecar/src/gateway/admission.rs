//! Admission: what stands between a routed request and an instance — the
//! route's rate limit and fault injection, then a lease on an instance of the
//! revision (at once, or held in the activator while it scales from zero).
//! Shared by the HTTP role and the RPC worker.

use super::Gateway;
use crate::activator::HoldError;
use crate::endpoints::{Lease, NoLease, Target};
use crate::guard::OnDrop;
use crate::http_util::{Body, error_reply};
use crate::metrics::RevisionLabels;
use crate::resilience::{FaultAction, RouteState};
use crate::routing::FunctionRoute;
use http::{HeaderValue, Response, StatusCode, header};
use std::sync::Arc;
use tokio::time::Instant;

impl Gateway {
    /// A lease on an instance of `revision`: at once if one has room, else
    /// after holding the request in the activator until one has.
    /// `key` is the revision's [`crate::endpoints::revision_key`] (the memo keeps it made);
    /// `avoid` lists instances a retried request already failed on.
    pub(crate) async fn lease(
        &self,
        ns: &str,
        revision: &str,
        key: &str,
        avoid: &[Target],
    ) -> Result<Lease, LeaseError> {
        match self.endpoints.acquire_avoiding(key, avoid) {
            Ok(l) => Ok(l),
            // Boxed: the hold is the cold path, and its state would otherwise
            // grow every request's future (moved on each spawn) by its size.
            Err(why) => Box::pin(self.activate(ns, revision, key, why)).await,
        }
    }

    /// Holds the request until the revision has a ready instance.
    /// `why` says whether the revision had no instance (a cold start) or only
    /// full ones.
    async fn activate(&self, ns: &str, revision: &str, key: &str, why: NoLease) -> Result<Lease, LeaseError> {
        let Some(hook) = self.activation.get() else {
            return Err(LeaseError::NoInstance(key.to_string()));
        };
        let labels = RevisionLabels { namespace: ns.to_string(), revision: revision.to_string() };
        let m = &self.metrics;
        m.held.get_or_create(&labels).inc();
        let _held = OnDrop::new(|| {
            m.held.get_or_create(&labels).dec();
        });
        match self.activator.hold(&self.endpoints, hook.as_ref(), ns, revision, key).await {
            Ok((lease, waited)) => {
                tracing::debug!(instance = %lease.addr(), ?waited, "held request released");
                m.held_wait.get_or_create(&labels).observe(waited.as_secs_f64());
                if why == NoLease::Empty {
                    m.cold_start.get_or_create(&labels).observe(waited.as_secs_f64());
                }
                Ok(lease)
            }
            Err(HoldError::Full) => Err(LeaseError::TooManyWaiting(key.to_string())),
            Err(HoldError::Timeout) => Err(LeaseError::Timeout(key.to_string())),
        }
    }

    /// The state of `route`, if its policy keeps any.
    pub(crate) fn route_state(&self, route: &FunctionRoute) -> Option<Arc<RouteState>> {
        if !route.policy.is_stateful() {
            return None; // the common case: no lock
        }
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        let key = (route.namespace.clone(), route.name.clone());
        Some(states.entry(key).or_insert_with(|| Arc::new(RouteState::new(&route.policy, Instant::now()))).clone())
    }

    /// Instances of `route` ejected now (to avoid), if its policy keeps state.
    pub(crate) fn ejected(state: Option<&RouteState>, now: Instant) -> Vec<Target> {
        state.map(|s| s.ejected(now)).unwrap_or_default()
    }

    /// Counts a try's outcome on `target` towards its health (outlier
    /// ejection), for every protocol alike.
    pub(crate) fn record_health(
        route: &FunctionRoute,
        state: Option<&RouteState>,
        revision: &str,
        target: Target,
        ok: bool,
    ) {
        if state.is_some_and(|s| s.record(&route.policy, target, ok, Instant::now())) {
            tracing::warn!(instance = %target.addr, revision, "instance ejected after consecutive failures");
        }
    }

    /// The rate limit of `route` alone (no wait): `Err` refuses the request.
    pub(crate) fn admit(&self, route: &FunctionRoute, state: Option<&RouteState>, now: Instant) -> Result<(), Refusal> {
        let policy = &route.policy;
        if state.is_some_and(|s| !s.admit(policy, now)) {
            let per_second = policy.rate_limit.map_or(0, |l| l.per_second);
            return Err(Refusal::RateLimited(format!(
                "{}/{} is limited to {per_second} requests/s",
                route.namespace, route.name
            )));
        }
        Ok(())
    }

    /// The rate limit and fault injection of `route`, before any instance is
    /// picked: `Err` refuses the request (a delay just waits).
    pub(crate) async fn guard(&self, route: &FunctionRoute, state: Option<&RouteState>) -> Result<(), Refusal> {
        self.admit(route, state, Instant::now())?;
        self.fault(route).await
    }

    /// The fault injection of `route`: an abort, a delay, or nothing.
    pub(crate) async fn fault(&self, route: &FunctionRoute) -> Result<(), Refusal> {
        match route.policy.fault.map(|f| f.decide(fastrand::u32(0..100), fastrand::u32(0..100))) {
            Some(FaultAction::Abort) => {
                Err(Refusal::Aborted(format!("fault injected into {}/{}: abort", route.namespace, route.name)))
            }
            Some(FaultAction::Delay(d)) => {
                tokio::time::sleep(d).await;
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// Why the route's policy refused a request before it reached an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    RateLimited(String),
    Aborted(String),
}

impl Refusal {
    pub(super) fn reply(self) -> Response<Body> {
        match self {
            Self::RateLimited(msg) => {
                let mut r = error_reply(StatusCode::TOO_MANY_REQUESTS, msg);
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                r
            }
            Self::Aborted(msg) => error_reply(StatusCode::SERVICE_UNAVAILABLE, msg),
        }
    }
}

/// Why a request got no instance.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    #[error("revision {0} has no ready instance")]
    NoInstance(String),
    #[error("too many requests waiting for {0} to start")]
    TooManyWaiting(String),
    #[error("no instance of {0} became ready within {t:?}", t = crate::activator::HOLD_TIMEOUT)]
    Timeout(String),
}

impl LeaseError {
    pub(super) fn reply(&self) -> Response<Body> {
        let status = match self {
            Self::NoInstance(_) | Self::TooManyWaiting(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        };
        let mut r = error_reply(status, self.to_string());
        if matches!(self, Self::TooManyWaiting(_)) {
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        r
    }
}
