//! One revision's scaling decision, Knative's KPA rules:
//!
//! - desired = ceil(observed / target) over the stable window (60 s) and, for
//!   panic, over the panic window (6 s); both clamped to the rate limits:
//!   at most `ceil(max_scale_up_rate × ready)` and, when the revision is
//!   reachable, at least `floor(ready / max_scale_down_rate)`;
//! - panic mode starts when the panic-window desire reaches
//!   `panic_threshold × ready` (200 %), is extended while it stays there, and
//!   ends a stable window after the last time it was; in panic the count never
//!   goes down and follows the larger of the two desires;
//! - a scale-down delay holds the highest count of the last `scale_down_delay`;
//! - excess burst capacity = ready × per-instance capacity − target burst
//!   capacity − panic-window load (negative: keep the activator in the path).

use crate::delay::MaxWindow;
use crate::spec::ScalingSpec;
use tokio::time::Instant;

/// What the decider concluded on one tick.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScaleResult {
    pub desired: u32,
    pub panicking: bool,
}

#[derive(Debug, Clone)]
pub struct Decider {
    panic_since: Option<Instant>,
    max_panic: u32,
    delay: Option<MaxWindow>,
}

impl Decider {
    pub fn new(spec: &ScalingSpec) -> Self {
        let delay = (!spec.scale_down_delay.is_zero()).then(|| MaxWindow::new(spec.scale_down_delay));
        Self { panic_since: None, max_panic: 0, delay }
    }

    /// Decides from the stable and panic window values (per second) and the
    /// number of ready instances.
    pub fn scale(
        &mut self,
        spec: &ScalingSpec,
        stable: f64,
        panic: f64,
        ready: u32,
        reachable: bool,
        now: Instant,
    ) -> ScaleResult {
        // With no ready instance, reason as if there were one.
        let pods = f64::from(ready.max(1));
        let max_up = (spec.max_scale_up_rate * pods).ceil();
        let max_down = if reachable { (pods / spec.max_scale_down_rate).floor() } else { 0.0 };
        let dspc = (stable / spec.target_value).ceil();
        let dppc = (panic / spec.target_value).ceil();
        let clamp = |d: f64| d.max(max_down).min(max_up) as u32;
        let (stable_pods, panic_pods) = (clamp(dspc), clamp(dppc));

        self.update_panic(dppc / pods >= spec.panic_threshold, spec, now);
        let mut desired = stable_pods;
        if self.panic_since.is_some() {
            // Never scale down while panicking; provision for the larger desire.
            self.max_panic = self.max_panic.max(desired.max(panic_pods));
            desired = self.max_panic;
        }
        if let Some(w) = self.delay.as_mut() {
            desired = w.record(now, desired);
        }
        ScaleResult { desired, panicking: self.panic_since.is_some() }
    }

    fn update_panic(&mut self, over: bool, spec: &ScalingSpec, now: Instant) {
        match self.panic_since {
            _ if over => self.panic_since = Some(now),
            Some(since) if now.saturating_duration_since(since) > spec.stable_window => {
                self.panic_since = None;
                self.max_panic = 0;
            }
            _ => {}
        }
    }
}

/// Capacity left over a burst of `targetBurstCapacity` (Knative's rule: ready x
/// per-instance capacity - TBC - panic-window load); `None` with TBC -1, when
/// the activator stays in the path regardless.
pub(crate) fn excess_burst_capacity(spec: &ScalingSpec, ready: u32, panic: f64) -> Option<f64> {
    match spec.target_burst_capacity {
        t if t < 0.0 => None,
        0.0 => Some(0.0),
        t => Some((f64::from(ready) * spec.total_value - t - panic).floor()),
    }
}

#[cfg(test)]
mod tests;
