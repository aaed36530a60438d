use super::*;
use crate::spec::Defaults;
use std::collections::BTreeMap;
use std::time::Duration;

fn autoscaler(pairs: &[(&str, &str)], t0: Instant) -> RevisionAutoscaler {
    let a: BTreeMap<String, String> =
        pairs.iter().map(|(k, v)| (format!("autoscaling.weft.dev/{k}"), v.to_string())).collect();
    RevisionAutoscaler::new(ScalingSpec::from_annotations(&a, &Defaults::default(), 0).unwrap(), t0)
}

/// Simulates `secs` seconds from `from`: each ready instance reports its share
/// of `load(t)` every second, the autoscaler ticks every 2 s, and instances
/// become ready at once. Returns `(second, decision)` of every tick.
fn simulate(
    a: &mut RevisionAutoscaler,
    t0: Instant,
    from: u64,
    secs: u64,
    ready: &mut u32,
    load: impl Fn(u64) -> f64,
) -> Vec<(u64, Decision)> {
    let mut out = Vec::new();
    for s in from..from + secs {
        let now = t0 + Duration::from_secs(s);
        if *ready > 0 {
            for _ in 0..*ready {
                a.record(now, load(s) / f64::from(*ready), 0.0);
            }
        } else if load(s) > 0.0 {
            a.record(now, load(s), 0.0); // the activator reports what it holds
        }
        if s % 2 == 0 {
            let d = a.tick(now, *ready, true);
            *ready = d.desired;
            out.push((s, d));
        }
    }
    out
}

#[test]
fn idle_revision_goes_to_zero_after_stable_window_plus_grace() {
    let t0 = Instant::now();
    let mut a = autoscaler(&[], t0);
    let mut ready = 1;
    let ticks = simulate(&mut a, t0, 0, 120, &mut ready, |_| 0.0);
    let first_zero = ticks.iter().find(|(_, d)| d.desired == 0).map(|(s, _)| *s).unwrap();
    assert_eq!(first_zero, 90, "60 s stable window + 30 s grace");
    // Between the stable window and zero, the activator is already in the path.
    let (_, at_70) = ticks.iter().find(|(s, _)| *s == 70).unwrap();
    assert_eq!(at_70.desired, 1);
    assert!(at_70.activator_in_path);
}

#[test]
fn a_request_at_zero_scales_up_at_once_and_load_keeps_it_up() {
    let t0 = Instant::now();
    let mut a = autoscaler(&[], t0);
    let mut ready = 1;
    simulate(&mut a, t0, 0, 100, &mut ready, |_| 0.0);
    assert_eq!(ready, 0);
    // The activator holds 3 requests and asks for a tick straight away.
    let now = t0 + Duration::from_secs(100);
    a.record(now, 3.0, 3.0);
    let d = a.tick(now, 0, true);
    assert_eq!(d.desired, 1);
    assert!(d.activator_in_path);
    // Steady load of 100 in flight: two instances (target 70), and no zero while it lasts.
    let mut ready = 1;
    let ticks = simulate(&mut a, t0, 101, 200, &mut ready, |_| 100.0);
    assert!(ticks.iter().all(|(_, d)| d.desired >= 1));
    assert_eq!(ticks.last().unwrap().1.desired, 2);
}

#[test]
fn step_load_scales_out_then_back_in_with_the_rate_limit() {
    let t0 = Instant::now();
    let mut a = autoscaler(&[], t0);
    let mut ready = 1;
    let load = |s: u64| if (10..70).contains(&s) { 700.0 } else { 35.0 };
    let ticks = simulate(&mut a, t0, 0, 300, &mut ready, load);
    let max = ticks.iter().map(|(_, d)| d.desired).max().unwrap();
    assert_eq!(max, 10, "700 in flight / 70 per instance");
    let panicked = ticks.iter().any(|(_, d)| d.panicking);
    assert!(panicked, "the step is a burst: panic mode");
    // Each scale-down step at most halves.
    for w in ticks.windows(2) {
        assert!(w[1].1.desired * 2 >= w[0].1.desired, "{:?} -> {:?}", w[0], w[1]);
    }
    assert_eq!(ticks.last().unwrap().1.desired, 1);
}

#[test]
fn min_max_and_initial_scale() {
    let t0 = Instant::now();
    let mut a = autoscaler(&[("min-scale", "2"), ("max-scale", "4")], t0);
    let mut ready = 2;
    let ticks = simulate(&mut a, t0, 0, 200, &mut ready, |s| if s < 100 { 1000.0 } else { 0.0 });
    assert!(ticks.iter().all(|(_, d)| (2..=4).contains(&d.desired)));
    assert_eq!(ticks.iter().map(|(_, d)| d.desired).max(), Some(4));
    assert_eq!(ticks.last().unwrap().1.desired, 2, "min-scale holds while reachable");
    // Not reachable: min-scale does not apply.
    let now = t0 + Duration::from_secs(500);
    a.record(now, 0.0, 0.0);
    assert!(a.tick(now, 2, false).desired < 2);

    let mut a = autoscaler(&[("initial-scale", "3")], t0);
    assert_eq!(a.tick(t0, 0, true).desired, 3);
    assert_eq!(a.tick(t0 + Duration::from_secs(2), 1, true).desired, 3, "until 3 were ready once");
    a.record(t0 + Duration::from_secs(3), 0.0, 0.0);
    assert!(a.tick(t0 + Duration::from_secs(4), 3, true).desired < 3);
}

#[test]
fn activator_path_follows_target_burst_capacity() {
    let t0 = Instant::now();
    let mut a = autoscaler(&[], t0);
    a.record(t0, 10.0, 0.0);
    // 1 ready x 100 - 200 - 10 < 0: keep the activator in front.
    assert!(a.tick(t0, 1, true).activator_in_path);
    // 3 ready x 100 - 200 - 10 >= 0: it can leave the path.
    assert!(!a.tick(t0, 3, true).activator_in_path);
    let mut always = autoscaler(&[("target-burst-capacity", "-1")], t0);
    always.record(t0, 1.0, 0.0);
    assert!(always.tick(t0, 5, true).activator_in_path);
    let mut only_at_zero = autoscaler(&[("target-burst-capacity", "0")], t0);
    only_at_zero.record(t0, 500.0, 0.0);
    assert!(!only_at_zero.tick(t0, 1, true).activator_in_path);
    assert!(only_at_zero.tick(t0, 0, true).activator_in_path);
}

#[test]
fn before_any_report_the_activator_stays_in_front_of_a_small_revision() {
    // A tick between the first instance getting ready and its first report: no
    // load observed, yet 1 ready x 1 - 200 < 0, so a burst must still be held.
    let t0 = Instant::now();
    let mut one = autoscaler(&[("target", "1")], t0);
    assert!(one.tick(t0, 1, true).activator_in_path);
    let mut only_at_zero = autoscaler(&[("target-burst-capacity", "0")], t0);
    assert!(!only_at_zero.tick(t0, 1, true).activator_in_path);
}

#[test]
fn retention_and_disabled_scale_to_zero() {
    let t0 = Instant::now();
    let mut a = autoscaler(&[("scale-to-zero-pod-retention-period", "2m")], t0);
    let mut ready = 1;
    let ticks = simulate(&mut a, t0, 0, 300, &mut ready, |_| 0.0);
    let first_zero = ticks.iter().find(|(_, d)| d.desired == 0).map(|(s, _)| *s);
    assert_eq!(first_zero, Some(180), "60 s window + max(30 s grace, 120 s retention)");

    let spec = ScalingSpec {
        enable_scale_to_zero: false,
        ..ScalingSpec::from_annotations(&BTreeMap::new(), &Defaults::default(), 0).unwrap()
    };
    let mut a = RevisionAutoscaler::new(spec, t0);
    let mut ready = 1;
    let ticks = simulate(&mut a, t0, 0, 300, &mut ready, |_| 0.0);
    assert!(ticks.iter().all(|(_, d)| d.desired == 1));
}

#[test]
fn rps_metric_scales_on_requests_per_second() {
    let t0 = Instant::now();
    let mut a = autoscaler(&[("metric", "rps"), ("target", "100")], t0);
    for s in 0..10 {
        a.record(t0 + Duration::from_secs(s), 1.0, 300.0);
    }
    // 300 req/s at 100 x 70 %: 5 instances.
    assert_eq!(a.tick(t0 + Duration::from_secs(9), 5, true).desired, 5);
}

#[test]
fn no_metrics_keeps_the_current_scale() {
    let t0 = Instant::now();
    let mut a = autoscaler(&[], t0);
    a.record(t0, 140.0, 0.0);
    assert_eq!(a.tick(t0, 2, true).desired, 2);
    // Nothing reported for longer than the stable window: hold, do not guess.
    assert_eq!(a.tick(t0 + Duration::from_secs(100), 2, true).desired, 2);
}

#[test]
fn an_unrouted_revision_goes_to_zero_once_idle() {
    let t0 = Instant::now();
    let mut a = autoscaler(&[("min-scale", "2")], t0);
    a.record(t0, 30.0, 0.0);
    assert_eq!(a.tick(t0, 1, false).desired, 1, "load in flight keeps it");
    let later = t0 + Duration::from_secs(10);
    for s in 1..=10 {
        a.record(t0 + Duration::from_secs(s), 0.0, 0.0);
    }
    // The stable average still remembers the load of t0: ceil(3/70) = 1.
    assert_eq!(a.tick(later, 1, false).desired, 1);
    let much_later = t0 + Duration::from_secs(70);
    a.record(much_later, 0.0, 0.0);
    assert_eq!(a.tick(much_later, 1, false).desired, 0, "min-scale does not apply without a route");
}

#[test]
fn decisions_report_both_observed_metrics_whichever_scales() {
    let t0 = Instant::now();
    let mut a = autoscaler(&[("metric", "rps"), ("window", "10s")], t0);
    for s in 0..10 {
        // Two instances each report 3 in flight and 40 requests a second.
        for _ in 0..2 {
            a.record(t0 + Duration::from_secs(s), 3.0, 40.0);
        }
    }
    let d = a.tick(t0 + Duration::from_secs(9), 2, true);
    assert!((d.concurrency - 6.0).abs() < 1e-9, "{d:?}");
    assert!((d.rps - 80.0).abs() < 1e-9, "{d:?}");
    assert!((d.stable - 80.0).abs() < 1e-9, "scales on rps: {d:?}");
    let idle = autoscaler(&[], t0).tick(t0, 0, true);
    assert_eq!((idle.concurrency, idle.rps), (0.0, 0.0), "no data is 0");
}
