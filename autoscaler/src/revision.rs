//! One revision's autoscaler: metric windows, the decider, and what Knative's KPA
//! reconciler adds on top — initial scale, min/max bounds, and the scale-to-zero
//! sequence:
//!
//! 1. the decider wants 0 only after a whole stable window without load;
//! 2. a revision that has been active for at least a stable window is then
//!    marked inactive (the activator goes into its path) but keeps one instance;
//! 3. after `max(scale-to-zero grace, last-instance retention)` inactive, it
//!    goes to zero. Idle-to-zero therefore takes stable window + grace (90 s by
//!    default), as in Knative.
//!
//! A revision no route reaches goes to zero as soon as nothing is in flight.
//!
//! A request to a revision at zero is held by the activator, which records it as
//! load here ([`RevisionAutoscaler::record`]) and asks for a tick at once.

use crate::decider::{Decider, excess_burst_capacity};
use crate::spec::{Metric, ScalingSpec};
use crate::window::Buckets;
use tokio::time::Instant;

/// The outcome of one tick, for the scaler and for metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    pub desired: u32,
    pub panicking: bool,
    /// Stable and panic window values of the scaling metric (per second).
    pub stable: f64,
    pub panic: f64,
    /// Whether the activator must stay in the request path.
    pub activator_in_path: bool,
    /// Observed load over the stable window, both metrics whichever one scales:
    /// average requests in flight and requests per second (0 without data).
    pub concurrency: f64,
    pub rps: f64,
}

#[derive(Debug, Clone)]
pub struct RevisionAutoscaler {
    spec: ScalingSpec,
    decider: Decider,
    concurrency: Buckets,
    rps: Buckets,
    active_since: Option<Instant>,
    inactive_since: Option<Instant>,
    /// Reached `initial_scale` ready instances once.
    initialized: bool,
    last: u32,
}

impl RevisionAutoscaler {
    pub fn new(spec: ScalingSpec, now: Instant) -> Self {
        let retain = spec.stable_window;
        Self {
            decider: Decider::new(&spec),
            concurrency: Buckets::new(now, retain),
            rps: Buckets::new(now, retain),
            active_since: None,
            inactive_since: None,
            initialized: spec.initial_scale == 0,
            last: spec.initial_scale,
            spec,
        }
    }

    /// True once the revision reached its initial scale (at once for 0): from
    /// then on it may sit at zero and still be ready to serve.
    pub fn initialized(&self) -> bool {
        self.initialized
    }

    /// One report: average requests in flight over the last second, and the
    /// requests that arrived in it (from an instance proxy, or the activator).
    pub fn record(&mut self, now: Instant, concurrency: f64, requests: f64) {
        self.concurrency.record(now, concurrency);
        self.rps.record(now, requests);
    }

    /// Decides the instance count given how many are ready and whether any
    /// route sends traffic to this revision.
    pub fn tick(&mut self, now: Instant, ready: u32, reachable: bool) -> Decision {
        let metric = match self.spec.metric {
            Metric::Concurrency => &self.concurrency,
            Metric::Rps => &self.rps,
        };
        let observed = metric
            .average(now, self.spec.stable_window)
            .map(|stable| (stable, metric.average(now, self.spec.panic_window).unwrap_or(0.0)));
        let (mut desired, mut panicking) = (self.last, false);
        let (stable, panic) = observed.unwrap_or((0.0, 0.0));
        if observed.is_some() {
            let r = self.decider.scale(&self.spec, stable, panic, ready, reachable, now);
            (desired, panicking) = (r.desired, r.panicking);
        }
        // Also before any report (load then zero): the activator stays in front
        // of a new revision's first instance until it can absorb a burst on its
        // own (a burst in that window otherwise overflowed the instance's queue).
        let ebc = excess_burst_capacity(&self.spec, ready, panic);
        // A revision counts as active from its first ready instance, so even one
        // that never gets traffic waits a stable window + grace before zero.
        if ready > 0 && self.active_since.is_none() && self.inactive_since.is_none() {
            self.active_since = Some(now);
        }
        desired = if reachable || desired > 0 {
            self.scale_to_zero(desired, now)
        } else {
            // No route reaches it and nothing is in flight: no request can come
            // that the activator would need to hold, so no grace is needed.
            (self.active_since, self.inactive_since) = (None, Some(now));
            0
        };
        desired = self.bounds(desired, ready, reachable);
        self.last = desired;
        let activator_in_path = ready == 0 || desired == 0 || ebc.is_none_or(|e| e < 0.0);
        let window = self.spec.stable_window;
        let concurrency = self.concurrency.average(now, window).unwrap_or(0.0);
        let rps = self.rps.average(now, window).unwrap_or(0.0);
        Decision { desired, panicking, stable, panic, activator_in_path, concurrency, rps }
    }

    fn scale_to_zero(&mut self, desired: u32, now: Instant) -> u32 {
        if desired > 0 {
            if self.active_since.is_none() {
                (self.active_since, self.inactive_since) = (Some(now), None);
            }
            return desired;
        }
        if !self.spec.enable_scale_to_zero {
            return 1;
        }
        let idle_for = |since: Instant| now.saturating_duration_since(since);
        match (self.active_since, self.inactive_since) {
            (Some(since), _) if idle_for(since) >= self.spec.stable_window => {
                (self.active_since, self.inactive_since) = (None, Some(now));
                1
            }
            (Some(_), _) => 1,
            (None, Some(since))
                if idle_for(since) >= self.spec.scale_to_zero_grace.max(self.spec.scale_to_zero_retention) =>
            {
                0
            }
            (None, Some(_)) => 1,
            (None, None) => 0,
        }
    }

    fn bounds(&mut self, mut desired: u32, ready: u32, reachable: bool) -> u32 {
        if !self.initialized {
            if ready >= self.spec.initial_scale {
                self.initialized = true;
            } else {
                desired = desired.max(self.spec.initial_scale);
            }
        }
        if reachable {
            desired = desired.max(self.spec.min_scale);
        }
        if self.spec.max_scale > 0 {
            desired = desired.min(self.spec.max_scale);
        }
        desired
    }
}

#[cfg(test)]
mod tests;
