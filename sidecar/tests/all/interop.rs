//! Real Bolt and Dubbo peers through the sidecar: sofa-rpc-node servers (Bolt,
//! and Dubbo with dubbo-remoting) stand for two revisions of a legacy service
//! exporting two interfaces; sofa-rpc-node and dubbo2.js clients call it at the
//! sidecar's address. `sidecar/interop/` holds the peers; `scripts/install-deps.sh`
//! installs their npm packages.

use crate::support::{metric, rpc_gateway};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const USERS: &str = "com.example.UserService";
const ORDERS: &str = "com.example.OrderService";

fn interop_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop");
    assert!(dir.join("node_modules/sofa-rpc-node").exists(), "npm peers missing: run scripts/install-deps.sh");
    dir
}

/// A legacy server (killed when dropped) exporting both interfaces, and its address.
async fn legacy_server(protocol: &str, name: &str) -> (Child, SocketAddr) {
    let mut child = Command::new("node")
        .args(["server.js", protocol, name, USERS, ORDERS])
        .env("PORT", "0")
        .current_dir(interop_dir())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start node");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await.unwrap().unwrap().unwrap();
    let port: u16 = ready.rsplit(' ').next().unwrap().parse().unwrap();
    (child, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// Runs a client script; returns its answers per server name and its errors.
async fn client(script: &str, args: &[&str]) -> (serde_json::Map<String, Value>, Vec<String>) {
    let out = Command::new("node").arg(script).args(args).current_dir(interop_dir()).kill_on_drop(true).output();
    let out = tokio::time::timeout(Duration::from_secs(120), out).await.unwrap().unwrap();
    assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(out.stdout.trim_ascii()).unwrap();
    let errors = v["errors"].as_array().unwrap().iter().map(|e| e.as_str().unwrap().to_string()).collect();
    (v["counts"].as_object().unwrap().clone(), errors)
}

fn count(counts: &serde_json::Map<String, Value>, name: &str) -> u64 {
    counts.get(name).and_then(Value::as_u64).unwrap_or(0)
}

/// Both revisions answer, in a 70/30 split measured per request.
fn assert_split(counts: &serde_json::Map<String, Value>, n: u64) {
    let (one, two) = (count(counts, "one"), count(counts, "two"));
    assert_eq!(one + two, n, "{counts:?}");
    // 30 % of 200 ± 9.5 %: over three standard deviations.
    assert!((41..=79).contains(&two), "{two} of {n} to the 30 % revision: {counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bolt_v1_and_v2_with_crc_split_between_two_revisions() {
    let g = rpc_gateway(&[(USERS, "bolt"), (ORDERS, "bolt")], 30, Duration::from_secs(10)).await;
    let (_a, one) = legacy_server("bolt", "one").await;
    let (_b, two) = legacy_server("bolt", "two").await;
    g.endpoints.set("default/echo-00001", vec![one], 0);
    g.endpoints.set("default/echo-00002", vec![two], 0);
    let sidecar = g.addr.to_string();
    for (iface, frames) in [(USERS, "v1"), (ORDERS, "v2crc")] {
        let (counts, errors) = client("bolt-client.js", &[&sidecar, iface, "200", frames]).await;
        assert!(errors.is_empty(), "{frames}: {errors:?}");
        assert_split(&counts, 200);
    }
    let (_, errors) = client("bolt-client.js", &[&sidecar, USERS, "2", "v2crc", "fail"]).await;
    assert!(errors.iter().all(|e| e.contains("refuses")), "the service's own error passes through: {errors:?}");
    let (_, errors) = client("bolt-client.js", &[&sidecar, "com.example.Unknown", "1"]).await;
    assert!(errors[0].contains("no function serves interface"), "a Bolt error from the sidecar: {errors:?}");
    assert_eq!(metric(&g.registry, "weft_rpc_requests_total{protocol=\"bolt\""), 403.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dubbo_from_dubbo2js_and_sofa_clients_split_between_two_revisions() {
    let g = rpc_gateway(&[(USERS, "dubbo"), (ORDERS, "dubbo")], 30, Duration::from_secs(10)).await;
    let (_a, one) = legacy_server("dubbo", "one").await;
    let (_b, two) = legacy_server("dubbo", "two").await;
    g.endpoints.set("default/echo-00001", vec![one], 0);
    g.endpoints.set("default/echo-00002", vec![two], 0);
    let sidecar = g.addr.to_string();
    for (iface, which) in [(USERS, "dubbo2js"), (ORDERS, "sofa")] {
        let (counts, errors) = client("dubbo-client.js", &[&sidecar, iface, "200", which]).await;
        assert!(errors.is_empty(), "{which}: {errors:?}");
        assert_split(&counts, 200);
    }
    let (_, errors) = client("dubbo-client.js", &[&sidecar, USERS, "2", "dubbo2js", "fail"]).await;
    assert!(errors.iter().all(|e| e.contains("refuses")), "the service's own error passes through: {errors:?}");
    let (_, errors) = client("dubbo-client.js", &[&sidecar, "com.example.Unknown", "1"]).await;
    assert!(errors[0].contains("no function serves interface"), "a Dubbo error from the sidecar: {errors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interface_declared_for_another_protocol_is_refused_in_the_callers_protocol() {
    let g = rpc_gateway(&[(USERS, "dubbo")], 0, Duration::from_secs(10)).await;
    let (_a, one) = legacy_server("bolt", "one").await;
    g.endpoints.set("default/echo-00001", vec![one], 0);
    let (_, errors) = client("bolt-client.js", &[&g.addr.to_string(), USERS, "1"]).await;
    assert!(errors[0].contains("served over dubbo, not bolt"), "{errors:?}");
}
