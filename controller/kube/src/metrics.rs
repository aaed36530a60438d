//! `weft_controller_reconcile_*`: reconciles by resource and outcome, their
//! duration, and failures by error label.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    resource: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Failure {
    resource: String,
    error: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Resource {
    resource: String,
}

#[derive(Clone)]
pub struct Metrics {
    reconciles: Family<Outcome, Counter>,
    errors: Family<Failure, Counter>,
    duration: Family<Resource, Histogram>,
}

impl Metrics {
    pub fn register(reg: &mut Registry) -> Self {
        let m = Self {
            reconciles: Family::default(),
            errors: Family::default(),
            duration: Family::new_with_constructor(|| {
                Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0])
            }),
        };
        let sub = reg.sub_registry_with_prefix("weft_controller_reconcile");
        sub.register("runs", "Reconciles by resource and result (ok, error)", m.reconciles.clone());
        sub.register("errors", "Failed reconciles by resource and error", m.errors.clone());
        sub.register("duration_seconds", "Time one reconcile took", m.duration.clone());
        m
    }

    /// A finished reconcile.
    pub fn ran(&self, resource: &str, ok: bool, took: Duration) {
        let result = if ok { "ok" } else { "error" };
        self.reconciles.get_or_create(&Outcome { resource: resource.into(), result }).inc();
        self.duration.get_or_create(&Resource { resource: resource.into() }).observe(took.as_secs_f64());
    }

    /// A failed reconcile's error label (see `Error::label`).
    pub fn failed(&self, resource: &str, error: &str) {
        self.errors.get_or_create(&Failure { resource: resource.into(), error: error.into() }).inc();
    }
}
