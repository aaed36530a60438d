//! From Functions' resolved traffic (API types) to the sidecar's route table.

use std::time::Duration;
use weft_crds::{Function, ResilienceSpec};
use weft_sidecar::resilience::{Breaker, Fault, Policy, RateLimit};
use weft_sidecar::{FunctionRoute, RouteTable, WeightedSplit};

/// The route of one Function, if it has resolved traffic.
pub fn route_of(f: &Function) -> Option<FunctionRoute> {
    let status = f.status.as_ref()?;
    if status.traffic.is_empty() {
        return None;
    }
    let split = WeightedSplit::new(
        status.traffic.iter().filter_map(|t| Some((t.revision_name.as_deref()?, t.percent.unwrap_or(0)))),
    );
    let tags = status.traffic.iter().filter_map(|t| Some((t.tag.clone()?, t.revision_name.clone()?))).collect();
    Some(FunctionRoute {
        namespace: f.metadata.namespace.clone().unwrap_or_else(|| "default".into()),
        name: f.metadata.name.clone()?,
        split,
        tags,
        interfaces: f.spec.interfaces.iter().map(|i| (i.name.clone(), i.protocol.clone())).collect(),
        policy: std::sync::Arc::new(f.spec.resilience.as_ref().map(policy_of).unwrap_or_default()),
    })
}

/// `spec.resilience` (validated at apply) as the sidecar's policy.
fn policy_of(r: &ResilienceSpec) -> Policy {
    let ms = |n: u32| Duration::from_millis(u64::from(n));
    let retries = r.retries.clone().unwrap_or_default();
    Policy {
        timeout: r.timeout_ms.map(ms),
        attempts: retries.attempts.unwrap_or(weft_sidecar::resilience::DEFAULT_ATTEMPTS),
        resend_methods: retries.methods,
        resend_all: retries.all_methods,
        breaker: r.circuit_breaker.as_ref().map(|b| Breaker {
            consecutive_failures: b.consecutive_failures,
            eject_for: Duration::from_secs(u64::from(b.eject_seconds.unwrap_or(30))),
        }),
        rate_limit: r
            .rate_limit
            .as_ref()
            .map(|l| RateLimit { per_second: l.requests_per_second, burst: l.burst.unwrap_or(l.requests_per_second) }),
        fault: r.fault.as_ref().map(|f| Fault {
            abort_percent: f.abort_percent,
            delay_percent: f.delay_percent,
            delay: ms(f.delay_ms),
        }),
    }
}

pub fn table(domain: &str, functions: &[Function]) -> RouteTable {
    RouteTable::new(domain, functions.iter().filter_map(route_of))
}
