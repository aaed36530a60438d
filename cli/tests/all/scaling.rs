//! Scale to zero and back through the activator, on a platform with short
//! scaling periods (stable window 6 s, grace 1 s, tick 0.5 s).

use crate::platform::*;
use std::time::{Duration, Instant};

const FAST: &[&str] = &["--scale-to-zero-grace", "1s", "--tick", "500ms"];

fn scaled_to_zero(p: &Platform, revision: &str) -> Duration {
    let start = Instant::now();
    wait_for(Duration::from_secs(40), || (actual_replicas(p, revision) == 0).then_some(()));
    start.elapsed()
}

#[test]
fn idle_function_scales_to_zero_and_the_next_request_is_answered() {
    let p = Platform::start_with(FAST);
    let yaml = with_scaling(&function_yaml("hello", "hello", "", ""), &[("window", "6s")]);
    let applied = Instant::now();
    p.apply("hello.yaml", &yaml);
    assert_eq!(p.get(None, "/default/hello/").0, 200);
    scaled_to_zero(&p, "hello-00001");
    // A stable window without load, then the grace period: not before.
    assert!(applied.elapsed() >= Duration::from_secs(7), "zero after {:?}", applied.elapsed());

    let cold = Instant::now();
    let (code, body) = p.get(None, "/default/hello/");
    let took = cold.elapsed();
    assert_eq!((code, body.as_str()), (200, "Hello from weft! (GET /, 0 bytes)\n"));
    assert!(took < Duration::from_secs(5), "cold start took {took:?}");
    assert_eq!(actual_replicas(&p, "hello-00001"), 1);
    let (_, metrics) = p.get(None, "/metrics");
    for held in ["wait_seconds", "cold_start_seconds"] {
        let count = format!("weft_activator_{held}_count{{namespace=\"default\",revision=\"hello-00001\"}} 1\n");
        assert!(metrics.contains(&count), "{count} missing:\n{metrics}");
    }
    let names = [
        "weft_autoscaler_observed_concurrency",
        "weft_autoscaler_observed_rps",
        "weft_autoscaler_stable_value",
        "weft_autoscaler_panic_value",
        "weft_autoscaler_desired_instances",
        "weft_autoscaler_panic_mode",
        "weft_activator_held_requests",
    ];
    for name in names {
        let series = format!("{name}{{namespace=\"default\",revision=\"hello-00001\"}}");
        assert!(metrics.contains(&series), "{name} missing:\n{metrics}");
    }
}

#[test]
fn a_burst_of_1000_requests_at_zero_is_answered_in_full() {
    let p = Platform::start_with(FAST);
    let yaml = with_scaling(&function_yaml("hello", "hello", "", ""), &[("window", "6s")]);
    p.apply("hello.yaml", &yaml);
    scaled_to_zero(&p, "hello-00001");

    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = format!("http://{}/default/hello/", p.gateway);
    let codes: Vec<u16> = rt.block_on(async {
        // reqwest's rustls needs a process-wide provider (weft's main installs ring).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::new();
        let calls = (0..1000).map(|_| {
            let (c, u) = (client.clone(), url.clone());
            tokio::spawn(async move { c.get(u).send().await.map(|r| r.status().as_u16()).unwrap_or(0) })
        });
        futures::future::join_all(calls).await.into_iter().map(|r| r.unwrap_or(0)).collect()
    });
    let ok = codes.iter().filter(|c| **c == 200).count();
    assert_eq!(ok, 1000, "not 200: {:?}", codes.iter().filter(|c| **c != 200).take(10).collect::<Vec<_>>());
    assert!(actual_replicas(&p, "hello-00001") >= 1);
}

#[test]
fn with_container_concurrency_1_requests_queue_and_instances_scale_out() {
    let p = Platform::start_with(FAST);
    let yaml = with_scaling(&function_yaml("slow", "stress", "containerConcurrency: 1", ""), &[("max-scale", "4")]);
    p.apply("slow.yaml", &yaml);
    let gw = p.gateway.clone();
    // 24 concurrent requests of 300 ms each, one at a time per instance.
    let replies: Vec<(u16, String)> = std::thread::scope(|s| {
        let handles: Vec<_> =
            (0..24).map(|_| s.spawn(|| http(&gw, "GET", None, "/default/slow/?mode=sleep&ms=300", &[], ""))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // With the bodies: they say which part refused (instance queue, host, gateway).
    let refused: Vec<_> = replies.iter().filter(|(c, _)| *c != 200).collect();
    assert!(refused.is_empty(), "queued, not rejected: {} of 24: {refused:?}", refused.len());
    let most = wait_for(Duration::from_secs(10), || {
        let n = actual_replicas(&p, "slow-00001");
        (n > 1).then_some(n)
    });
    assert!(most <= 4, "max-scale bounds it: {most}");
    // Held because every instance was full: a wait, not a cold start.
    let (_, metrics) = p.get(None, "/metrics");
    let series = |name: &str| format!("weft_activator_{name}_count{{namespace=\"default\",revision=\"slow-00001\"}}");
    assert!(metrics.contains(&series("wait_seconds")), "{metrics}");
    assert!(!metrics.contains(&series("cold_start_seconds")), "{metrics}");
}

#[test]
fn steady_load_while_scaling_down_fails_no_request() {
    let p = Platform::start_with(FAST);
    let yaml = with_scaling(
        &function_yaml("slow", "stress", "", ""),
        &[("window", "6s"), ("target", "1"), ("max-scale", "4")],
    );
    p.apply("slow.yaml", &yaml);
    let gw = p.gateway.clone();
    let load = |clients: usize, for_secs: u64| -> Vec<u16> {
        let until = Instant::now() + Duration::from_secs(for_secs);
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..clients)
                .map(|_| {
                    s.spawn(|| {
                        let mut codes = Vec::new();
                        while Instant::now() < until {
                            codes.push(http(&gw, "GET", None, "/default/slow/?mode=sleep&ms=50", &[], "").0);
                        }
                        codes
                    })
                })
                .collect();
            handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
        })
    };
    // Scale out under 8 clients (target 1 in flight per instance, capped at 4)...
    let mut codes = load(8, 4);
    let peak = actual_replicas(&p, "slow-00001");
    assert!(peak >= 2, "scaled out to {peak}");
    // ...then keep one client going while the autoscaler scales back in.
    codes.extend(load(1, 12));
    let after = actual_replicas(&p, "slow-00001");
    assert!(after < peak, "scaled in from {peak} to {after}");
    let failed: Vec<&u16> = codes.iter().filter(|c| **c != 200).collect();
    assert!(failed.is_empty(), "{} of {} requests failed: {failed:?}", failed.len(), codes.len());
}

#[test]
fn platform_flags_set_the_defaults_that_annotations_override() {
    let p = Platform::start_with(&["--min-scale", "2", "--container-concurrency", "1"]);
    p.apply("hello.yaml", &function_yaml("hello", "hello", "", ""));
    wait_for(Duration::from_secs(20), || (actual_replicas(&p, "hello-00001") == 2).then_some(()));
    // An annotation wins over the platform's default.
    let one = with_scaling(&function_yaml("slow", "stress", "", ""), &[("min-scale", "1"), ("max-scale", "1")]);
    p.apply("slow.yaml", &one);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(actual_replicas(&p, "slow-00001"), 1);
    assert_eq!(actual_replicas(&p, "hello-00001"), 2);
    // The default containerConcurrency (1) applies: two 300 ms requests to the
    // one instance run one after the other.
    let gw = p.gateway.clone();
    let start = Instant::now();
    std::thread::scope(|s| {
        let calls: Vec<_> =
            (0..2).map(|_| s.spawn(|| http(&gw, "GET", None, "/default/slow/?mode=sleep&ms=300", &[], "").0)).collect();
        assert!(calls.into_iter().all(|c| c.join().unwrap() == 200));
    });
    assert!(start.elapsed() >= Duration::from_millis(590), "ran in parallel: {:?}", start.elapsed());
}
