//! Crash safety of the embedded event log: `weft up` is killed with SIGKILL
//! again and again while a producer sends numbered events; after each restart
//! delivery resumes. Every event that got a 202 must reach the subscriber at
//! least once and intact; duplicates (redeliveries of work that was done but
//! not yet committed at the kill) are counted and reported.

use crate::eventing::Subscriber;
use crate::platform::Platform;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KILLS: usize = 5;

/// Sends event `n` (binary mode); true on 202. Connection errors (weft is
/// down) are expected and just mean "not accepted".
fn send(addr: &str, n: u64) -> bool {
    let id = format!("n{n}");
    let headers = [
        ("ce-specversion", "1.0"),
        ("ce-id", id.as_str()),
        ("ce-type", "crash.test"),
        ("ce-source", "/producer"),
        ("content-type", "application/json"),
    ];
    let body = format!(r#"{{"n":{n},"pad":"{}"}}"#, "x".repeat((n % 200) as usize));
    try_post(addr, &headers, &body).is_ok_and(|status| status == 202)
}

/// One POST on a fresh connection; an error when weft is not there.
fn try_post(addr: &str, headers: &[(&str, &str)], body: &str) -> std::io::Result<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut req = format!(
        "POST /default/default HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes())?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    Ok(resp.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0))
}

#[test]
fn every_acknowledged_event_survives_repeated_sigkill() {
    let mut p = Platform::start();
    let s = Subscriber::start();
    let yaml = format!(
        "apiVersion: eventing.weft.dev/v1alpha1\nkind: Broker\nmetadata: {{name: default}}\n---\napiVersion: eventing.weft.dev/v1alpha1\nkind: Trigger\nmetadata: {{name: all}}\nspec:\n  broker: default\n  subscriber: {{uri: \"http://{}/sink\"}}\n  delivery: {{retry: 10, backoffDelay: PT0.1S}}\n",
        s.addr
    );
    p.apply("crash.yaml", &yaml);

    let events = Arc::new(Mutex::new(p.events.clone()));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (events, acked, stop) = (events.clone(), acked.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let addr = events.lock().unwrap().clone();
                if send(&addr, n) {
                    acked.lock().unwrap().push(n);
                } else {
                    std::thread::sleep(Duration::from_millis(5));
                }
                n += 1;
            }
            n
        })
    };
    for round in 0..KILLS {
        std::thread::sleep(Duration::from_millis(300 + 150 * round as u64));
        p.kill();
        std::thread::sleep(Duration::from_millis(100));
        p.boot();
        *events.lock().unwrap() = p.events.clone();
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let sent = producer.join().unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 100, "the producer got few events in ({} of {sent})", acked.len());

    // Wait for every acknowledged event to arrive.
    let deadline = Instant::now() + Duration::from_secs(60);
    let counts = loop {
        let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
        for g in s.at("sink") {
            let n: u64 = g.ce("id").trim_start_matches('n').parse().unwrap();
            let v: serde_json::Value = serde_json::from_str(&g.body).expect("delivered data is intact JSON");
            assert_eq!(v["n"], n, "event n{n} carries its own data");
            assert_eq!(v["pad"].as_str().unwrap().len(), (n % 200) as usize, "event n{n} is not truncated");
            *counts.entry(n).or_default() += 1;
        }
        let missing: Vec<u64> = acked.iter().copied().filter(|n| !counts.contains_key(n)).collect();
        if missing.is_empty() {
            break counts;
        }
        assert!(
            Instant::now() < deadline,
            "{} acknowledged events never arrived, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(10)]
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let duplicates: usize = counts.values().map(|c| c - 1).sum();
    let unacked_delivered = counts.keys().filter(|n| !acked.contains(n)).count();
    eprintln!(
        "crash test: {KILLS} SIGKILLs, {sent} sent, {} acknowledged, all delivered; {duplicates} duplicate deliveries; {unacked_delivered} delivered without a 202 (killed between fsync and reply)",
        acked.len()
    );
}
