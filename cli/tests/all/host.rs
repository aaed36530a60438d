//! The function host protocol (`weft instance --host`) driven directly: start,
//! serve (on the replica's port and on the host's shared port), refuse a bad
//! module, survive a bad line, stop, exit on stdin close.

use crate::platform::*;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

#[test]
fn a_host_starts_serves_and_stops_replicas_on_command() {
    let p = Platform::start();
    p.apply("hello.yaml", &function_yaml("hello", "hello", "", ""));
    let revs: Value = serde_json::from_str(&p.weft_ok(&["get", "rev", "-o", "json"])).unwrap();
    let digest = revs[0]["spec"]["wasm"]["digest"].as_str().unwrap().to_string();
    let config = |digest: &str| {
        json!({"namespace": "default", "function": "hello", "revision": "hello-00001",
               "module_dir": p.state().join("modules"), "digest": digest, "env": [],
               "timeout_ms": 5000, "memory_bytes": 16 << 20, "container_concurrency": 0,
               "listen": "127.0.0.1:0"})
    };
    let mut host = Command::new(WEFT)
        .args(["instance", "--host"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = host.stdin.take().unwrap();
    let mut replies = BufReader::new(host.stdout.take().unwrap()).lines();
    let mut next = move || -> Value { serde_json::from_str(&replies.next().unwrap().unwrap()).unwrap() };

    writeln!(stdin, "{}", json!({"start": {"id": 1, "config": config(&digest)}})).unwrap();
    let ready = next();
    let serving = ready["ready"]["ready"]["serving"].as_str().unwrap().to_string();
    assert_eq!(ready["ready"]["id"], 1);
    assert_eq!(http(&serving, "GET", None, "/", &[], "").1, "Hello from weft! (GET /, 0 bytes)\n");

    // The host's shared port reaches the same replica by its id.
    let shared = ready["ready"]["ready"]["shared"]["addr"].as_str().unwrap().to_string();
    assert_eq!(ready["ready"]["ready"]["shared"]["replica"], 1);
    assert_ne!(shared, serving);
    let via_host = http(&shared, "GET", None, "/", &[("weft-replica", "1")], "");
    assert_eq!(via_host, (200, "Hello from weft! (GET /, 0 bytes)\n".to_string()));
    let (status, body) = http(&shared, "GET", None, "/", &[("weft-replica", "7")], "");
    assert_eq!(status, 503, "an unknown replica: {body}");
    assert!(body.contains("replica 7 is not running"), "{body}");
    let (status, body) = http(&shared, "GET", None, "/", &[], "");
    assert_eq!(status, 400, "no replica named: {body}");
    assert!(body.contains("weft-replica"), "{body}");

    writeln!(stdin, "{}", json!({"start": {"id": 2, "config": config(&"0".repeat(64))}})).unwrap();
    let failed = next();
    assert_eq!(failed["failed"]["id"], 2, "{failed}");
    assert!(failed["failed"]["error"].as_str().unwrap().contains("module"), "{failed}");

    writeln!(stdin, "not json").unwrap(); // logged and skipped
    writeln!(stdin, "{}", json!({"stop": {"id": 1}})).unwrap();
    assert_eq!(next(), json!({"stopped": {"id": 1}}));
    assert!(std::net::TcpStream::connect(&serving).is_err(), "a stopped replica's port is closed");
    let (status, _) = http(&shared, "GET", None, "/", &[("weft-replica", "1")], "");
    assert_eq!(status, 503, "a stopped replica is gone from the shared port");

    drop(stdin);
    let status = host.wait().unwrap();
    assert!(status.success(), "a host exits cleanly when its stdin closes: {status}");
}
