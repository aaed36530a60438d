//! A misbehaving guest is stopped and reported, and does not hurt the others.

use crate::platform::*;
use std::time::{Duration, Instant};

#[test]
fn runaway_guest_gets_504_at_its_deadline_while_others_answer() {
    let p = Platform::start();
    p.apply("stress.yaml", &function_yaml("stress", "stress", "timeoutSeconds: 1", ""));
    p.apply("hello.yaml", &function_yaml("hello", "hello", "", ""));
    let gw = p.gateway.clone();
    let runaway = std::thread::spawn(move || {
        let start = Instant::now();
        let (code, body) = http(&gw, "GET", None, "/default/stress/?mode=loop", &[], "");
        (code, body, start.elapsed())
    });
    // While the guest spins, another function keeps answering quickly.
    std::thread::sleep(Duration::from_millis(200));
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let t = Instant::now();
        assert_eq!(p.get(None, "/default/hello/").0, 200);
        slowest = slowest.max(t.elapsed());
    }
    let (code, body, took) = runaway.join().unwrap();
    assert_eq!(code, 504, "{body}");
    assert!(body.contains("1s"), "{body}");
    assert!(took >= Duration::from_secs(1) && took < Duration::from_millis(2500), "504 after {took:?}");
    assert!(slowest < Duration::from_millis(900), "hello slowed to {slowest:?}");
    // The stress function itself still works after its runaway request.
    assert_eq!(p.get(None, "/default/stress/").1, "ok\n");
}

#[test]
fn memory_cap_and_traps_give_clear_5xx_errors() {
    let p = Platform::start();
    p.apply("stress.yaml", &function_yaml("stress", "stress", "limits:\n  memory: 16Mi", ""));
    let (code, body) = p.get(None, "/default/stress/?mode=alloc");
    assert_eq!(code, 500, "{body}");
    assert!(body.contains("exceeded its memory limit of 16 MiB"), "{body}");
    let (code, body) = p.get(None, "/default/stress/?mode=trap");
    assert_eq!(code, 500);
    assert!(body.contains("trapped"), "{body}");
    let logs = p.weft_ok(&["logs", "stress"]);
    assert!(
        logs.contains("guest failed") && logs.contains("stress-00001"),
        "trap must be logged with function and revision:\n{logs}"
    );
}
