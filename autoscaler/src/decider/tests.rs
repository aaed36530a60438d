use super::*;
use crate::spec::{Defaults, ScalingSpec};
use std::collections::BTreeMap;
use std::time::Duration;

fn spec_with(pairs: &[(&str, &str)]) -> ScalingSpec {
    let a: BTreeMap<String, String> =
        pairs.iter().map(|(k, v)| (format!("autoscaling.weft.dev/{k}"), v.to_string())).collect();
    ScalingSpec::from_annotations(&a, &Defaults::default(), 0).unwrap()
}

fn at(t0: Instant, secs: u64) -> Instant {
    t0 + Duration::from_secs(secs)
}

#[test]
fn steady_state_aims_at_target_times_utilization() {
    let spec = spec_with(&[]);
    let mut d = Decider::new(&spec);
    let t0 = Instant::now();
    // 140 in flight with target 100 x 70 % = 70 per instance: 2 instances.
    let r = d.scale(&spec, 140.0, 140.0, 2, true, t0);
    assert_eq!((r.desired, r.panicking), (2, false));
    let r = d.scale(&spec, 141.0, 141.0, 2, true, at(t0, 2));
    assert_eq!(r.desired, 3, "ceil(141 / 70)");
}

#[test]
fn a_burst_enters_panic_and_never_scales_down_until_it_leaves() {
    let spec = spec_with(&[]);
    let mut d = Decider::new(&spec);
    let t0 = Instant::now();
    // One instance; the 6 s window sees 350 in flight: 5 wanted, 5/1 >= 200 %.
    let r = d.scale(&spec, 70.0, 350.0, 1, true, t0);
    assert_eq!((r.desired, r.panicking), (5, true));
    // The burst fades from the panic window, the stable one still lags: no scale-down.
    let r = d.scale(&spec, 100.0, 60.0, 5, true, at(t0, 10));
    assert_eq!((r.desired, r.panicking), (5, true));
    // A second, bigger wave extends panic and raises the floor.
    let r = d.scale(&spec, 150.0, 1400.0, 5, true, at(t0, 20));
    assert_eq!((r.desired, r.panicking), (20, true));
    // Still panicking 60 s after the last time over the threshold.
    let r = d.scale(&spec, 100.0, 70.0, 20, true, at(t0, 80));
    assert_eq!((r.desired, r.panicking), (20, true));
    // More than a stable window after the last wave: back to stable mode, where
    // the scale-down rate limit (2) allows halving at most.
    let r = d.scale(&spec, 100.0, 70.0, 20, true, at(t0, 81));
    assert_eq!((r.desired, r.panicking), (10, false));
}

#[test]
fn stable_desire_above_panic_desire_wins_in_panic() {
    let spec = spec_with(&[]);
    let mut d = Decider::new(&spec);
    let t0 = Instant::now();
    d.scale(&spec, 70.0, 210.0, 1, true, t0); // panic: 3
    let r = d.scale(&spec, 700.0, 210.0, 3, true, at(t0, 2));
    assert_eq!(r.desired, 10);
}

#[test]
fn rate_limits_bound_each_step() {
    let t0 = Instant::now();
    let spec = spec_with(&[]);
    let mut d = Decider::new(&spec);
    // No load with 10 ready: at most halve per step while reachable...
    assert_eq!(d.scale(&spec, 0.0, 0.0, 10, true, t0).desired, 5);
    // ...and drop at once when no route reaches the revision.
    assert_eq!(d.scale(&spec, 0.0, 0.0, 10, false, at(t0, 2)).desired, 0);
    // Scale-up rate: with a rate of 2, 3 ready can become at most 6.
    let mut spec = spec_with(&[]);
    spec.max_scale_up_rate = 2.0;
    let mut d = Decider::new(&spec);
    assert_eq!(d.scale(&spec, 700.0, 700.0, 3, true, t0).desired, 6);
    // With zero ready it reasons as if one were there (a fresh decider: the
    // one above is panicking and would hold its 6).
    assert_eq!(Decider::new(&spec).scale(&spec, 70.0, 70.0, 0, true, t0).desired, 1);
    assert!(d.scale(&spec, 0.0, 0.0, 6, true, at(t0, 2)).panicking);
}

#[test]
fn scale_down_delay_holds_the_higher_count() {
    let spec = spec_with(&[("scale-down-delay", "30s")]);
    let mut d = Decider::new(&spec);
    let t0 = Instant::now();
    assert_eq!(d.scale(&spec, 350.0, 350.0, 5, true, t0).desired, 5);
    assert_eq!(d.scale(&spec, 140.0, 140.0, 5, true, at(t0, 10)).desired, 5);
    assert_eq!(d.scale(&spec, 140.0, 140.0, 5, true, at(t0, 29)).desired, 5);
    // The 5 is 30 s old: the lower count has held for the whole delay.
    assert_eq!(d.scale(&spec, 140.0, 140.0, 5, true, at(t0, 30)).desired, 2);
}

#[test]
fn excess_burst_capacity_follows_target_burst_capacity() {
    let spec = spec_with(&[]);
    // 3 ready x 100 capacity - 200 burst - 50 in flight.
    assert_eq!(excess_burst_capacity(&spec, 3, 50.0), Some(50.0));
    assert_eq!(excess_burst_capacity(&spec, 3, 150.0), Some(-50.0));
    assert_eq!(excess_burst_capacity(&spec_with(&[("target-burst-capacity", "-1")]), 3, 0.0), None);
    assert_eq!(excess_burst_capacity(&spec_with(&[("target-burst-capacity", "0")]), 1, 500.0), Some(0.0));
}
