//! Revisions, traffic split, tags, tracing headers and metrics.

use crate::platform::*;
use serde_json::Value;

const V2_SPLIT: &str =
    "- revisionName: hello-00001\n  percent: 90\n- revisionName: hello-00002\n  percent: 10\n  tag: canary\n";

#[test]
fn new_template_makes_revision_two_and_the_split_holds() {
    let p = Platform::start();
    p.apply("v1.yaml", &function_yaml("hello", "hello", "env:\n  - name: GREETING\n    value: One", ""));
    let out =
        p.apply("v2.yaml", &function_yaml("hello", "hello", "env:\n  - name: GREETING\n    value: Two", V2_SPLIT));
    assert!(out.contains("http://canary-hello.default.localhost"), "{out}");

    let n = 400;
    let two = (0..n).filter(|_| p.get(None, "/default/hello/").1.starts_with("Two")).count();
    // 10 % of 400 = 40; binomial sd = 6: accept 3 sd either side.
    assert!((22..=58).contains(&two), "revision 2 got {two} of {n}");
    for _ in 0..20 {
        assert!(p.get(Some("canary-hello.default.localhost:80"), "/").1.starts_with("Two"));
    }
    let revs: Value = serde_json::from_str(&p.weft_ok(&["get", "rev", "-o", "json"])).unwrap();
    let names: Vec<&str> = revs.as_array().unwrap().iter().map(|r| r["metadata"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["hello-00001", "hello-00002"]);
}

#[test]
fn traffic_moves_to_a_new_revision_when_it_is_ready() {
    let p = Platform::start();
    p.apply("v1.yaml", &function_yaml("hello", "hello", "env:\n  - name: GREETING\n    value: One", ""));
    p.apply("v2.yaml", &function_yaml("hello", "hello", "env:\n  - name: GREETING\n    value: Two", ""));
    for _ in 0..10 {
        assert!(p.get(None, "/default/hello/").1.starts_with("Two"));
    }
    // Revision 1 has no traffic any more and runs no instance.
    wait_for(std::time::Duration::from_secs(15), || {
        let v: Value = serde_json::from_str(&p.weft_ok(&["get", "rev", "hello-00001", "-o", "json"])).ok()?;
        (v["status"]["actualReplicas"] == 0).then_some(())
    });
}

#[test]
fn traceparent_is_passed_through_or_started() {
    let p = Platform::start();
    p.apply("json.yaml", &function_yaml("info", "json", "", ""));
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let (code, body) = http(&p.gateway, "GET", None, "/default/info/x", &[("traceparent", tp)], "");
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["headers"]["traceparent"], tp);
    assert_eq!(v["path"], "/x");
    assert_eq!(v["revision"], "info-00001");
    let (_, body) = http(&p.gateway, "GET", None, "/default/info/", &[], "");
    let v: Value = serde_json::from_str(&body).unwrap();
    let started = v["headers"]["traceparent"].as_str().unwrap();
    assert_eq!(started.len(), 55, "{started}");
}

#[test]
fn gateway_metrics_count_requests_by_revision_and_code() {
    let p = Platform::start();
    p.apply("hello.yaml", &function_yaml("hello", "hello", "", ""));
    for _ in 0..3 {
        p.get(None, "/default/hello/");
    }
    let (code, text) = p.get(None, "/metrics");
    assert_eq!(code, 200);
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("weft_gateway_requests_total{")
                && l.contains("revision=\"hello-00001\"")
                && l.contains("code=\"200\"")
        })
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.ends_with(" 3"), "{line}");
    assert!(text.contains("weft_gateway_request_duration_seconds_bucket"));
    assert_eq!(p.get(None, "/nowhere/at/all").0, 404);
}
