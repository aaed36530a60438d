//! A legacy Bolt service joins the mesh unchanged: a `process` function runs
//! it (sofa-rpc-node, exporting two interfaces), declares the interfaces, and
//! callers reach it by interface name on the gateway's port — scaled from zero,
//! split between two revisions. The peers live in `sidecar/interop/`; the
//! first revision is `examples/legacy-rpc/users.yaml`, as a user applies it.

use crate::platform::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const USERS: &str = "com.example.UserService";
const ORDERS: &str = "com.example.OrderService";
const FAST: &[&str] = &["--stable-window", "6s", "--scale-to-zero-grace", "1s", "--tick", "500ms"];

fn interop() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sidecar/interop").canonicalize().unwrap();
    assert!(dir.join("node_modules/sofa-rpc-node").exists(), "npm peers missing: run scripts/install-deps.sh");
    dir
}

/// A process Function running the legacy server as `name`, serving both
/// interfaces (what `examples/legacy-rpc/users.yaml` holds, with a split).
fn legacy(name: &str, traffic: &str) -> String {
    let server = interop().join("server.js");
    let mut y = format!(
        "apiVersion: serving.weft.dev/v1alpha1\nkind: Function\nmetadata:\n  name: users\nspec:\n  template:\n    spec:\n      process:\n        command: [node, {}, bolt, {name}, {USERS}, {ORDERS}]\n  interfaces:\n  - name: {USERS}\n    protocol: bolt\n  - name: {ORDERS}\n    protocol: bolt\n",
        server.display()
    );
    if !traffic.is_empty() {
        y.push_str(&format!("  traffic:\n{traffic}"));
    }
    y
}

/// Calls `iface` `n` times through the gateway with sofa-rpc-node's client.
fn call(p: &Platform, iface: &str, n: usize) -> serde_json::Value {
    call_at(&p.gateway, None, iface, n)
}

/// Calls `iface` `n` times at `host:port` over Bolt, resolving the host with `dns` if given.
fn call_at(addr: &str, dns: Option<&str>, iface: &str, n: usize) -> serde_json::Value {
    call_with("bolt-client.js", addr, dns, iface, n)
}

/// Runs a client script of `sidecar/interop` (`bolt-client.js`, `dubbo-client.js`).
fn call_with(script: &str, addr: &str, dns: Option<&str>, iface: &str, n: usize) -> serde_json::Value {
    let mut cmd = Command::new("node");
    cmd.args([script, addr, iface, &n.to_string()]).current_dir(interop());
    if let Some(dns) = dns {
        cmd.env("WEFT_DNS", dns);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(out.stdout.trim_ascii()).unwrap()
}

#[test]
fn a_legacy_bolt_service_is_reached_by_interface_name_from_zero_and_split() {
    let p = Platform::start_with(FAST);
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/legacy-rpc/users.yaml");
    interop(); // the example runs the npm peers
    p.weft_ok(&["apply", "-f", example.to_str().unwrap()]);
    let got = call(&p, USERS, 5);
    assert_eq!(got["counts"]["one"], 5, "{got}");
    let logs = p.weft_ok(&["logs", "users"]);
    assert!(logs.contains(&format!("sidecar={}", p.gateway)), "the instance got $WEFT_SIDECAR:\n{logs}");

    wait_for(Duration::from_secs(40), || (actual_replicas(&p, "users-00001") == 0).then_some(()));
    let got = call(&p, ORDERS, 3);
    assert_eq!(got["counts"]["one"], 3, "answered after a cold start: {got}");

    let split = "  - revisionName: users-00001\n    percent: 70\n  - revisionName: users-00002\n    percent: 30\n";
    p.apply("v2.yaml", &legacy("two", split));
    let got = call(&p, USERS, 200);
    let two = got["counts"]["two"].as_u64().unwrap_or(0);
    assert_eq!(got["counts"]["one"].as_u64().unwrap_or(0) + two, 200, "{got}");
    // 30 % of 200 ± 9.5 %: over three standard deviations.
    assert!((41..=79).contains(&two), "{two} of 200 to the 30 % revision");
    let metrics = http(&p.gateway, "GET", None, "/metrics", &[], "").1;
    assert!(metrics.contains("weft_rpc_requests_total{protocol=\"bolt\",namespace=\"default\",function=\"users\",revision=\"users-00002\",status=\"ok\"}"), "{metrics}");
}

/// A Function running the legacy server over `protocol`, exporting `exports`
/// and declaring `declared`.
fn shop(protocol: &str, exports: &[&str], declared: &[&str]) -> String {
    let server = interop().join("server.js");
    let mut y = format!(
        "apiVersion: serving.weft.dev/v1alpha1\nkind: Function\nmetadata:\n  name: shop\nspec:\n  template:\n    spec:\n      process:\n        command: [node, {}, {protocol}, shop, {}]\n  interfaces:\n",
        server.display(),
        exports.join(", ")
    );
    for d in declared {
        y.push_str(&format!("  - name: {d}\n    protocol: {protocol}\n"));
    }
    y
}

/// The platform's DNS responder and its gateway's port: what a legacy client
/// is configured with (besides the service's name).
fn dns_and_port(p: &Platform) -> (String, String) {
    let runtime: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.state().join("runtime.json")).unwrap()).unwrap();
    (runtime["dns"].as_str().unwrap().to_string(), p.gateway.rsplit(':').next().unwrap().to_string())
}

#[test]
fn a_client_configured_with_the_interfaces_dns_name_reaches_it_and_its_undeclared_siblings() {
    let p = Platform::start();
    let (dns, port) = dns_and_port(&p);
    let exports = ["com.example.ShopService", "com.example.CartService"];
    p.apply("shop.yaml", &shop("bolt", &exports, &["com.example.ShopService"]));

    // The client knows the service's DNS name and the port, nothing else.
    let got = call_at(&format!("com.example.ShopService:{port}"), Some(&dns), "com.example.ShopService", 3);
    assert_eq!(got["counts"]["shop"], 3, "{got}");
    let address = got["address"].as_str().unwrap().to_string();
    assert!(address.starts_with("127.") && !address.starts_with("127.0.0.1:"), "its own address: {address}");
    let by_function = call_at(&format!("shop.default:{port}"), Some(&dns), "com.example.ShopService", 1);
    assert_eq!(by_function["address"], address.as_str(), "the function's name resolves to the same address");

    // An interface the service exports but did not declare: routed by the address.
    let got = call_at(&address, None, "com.example.CartService", 2);
    assert_eq!(got["counts"]["shop"], 2, "{got}");
    let got = call(&p, "com.example.CartService", 1);
    let errors = got["errors"].to_string();
    assert!(errors.contains("no function serves interface"), "the shared port cannot guess: {got}");
}

#[test]
fn a_multi_interface_dubbo_service_is_reached_by_dns_name_from_dubbo2js() {
    let p = Platform::start();
    let (dns, port) = dns_and_port(&p);
    let exports = ["com.example.ShopService", "com.example.CartService"];
    p.apply("shop.yaml", &shop("dubbo", &exports, &exports));
    for iface in exports {
        let got = call_with("dubbo-client.js", &format!("{iface}:{port}"), Some(&dns), iface, 3);
        assert_eq!(got["counts"]["shop"], 3, "{iface}: {got}");
    }
}

#[test]
fn spec_resilience_reaches_the_gateway() {
    let p = Platform::start();
    let yaml =
        function_yaml("hello", "hello", "", "") + "  resilience:\n    rateLimit: {requestsPerSecond: 1, burst: 1}\n";
    p.apply("hello.yaml", &yaml);
    let codes: Vec<u16> = (0..3).map(|_| p.get(None, "/default/hello/").0).collect();
    assert_eq!(codes, [200, 429, 429], "one request a second, the rest refused");
    let bad = function_yaml("bad", "hello", "", "") + "  resilience:\n    fault: {abortPercent: 150}\n";
    std::fs::write(p.dir.path().join("bad.yaml"), bad).unwrap();
    let out = p.weft(&["apply", "-f", p.dir.path().join("bad.yaml").to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("spec.resilience.fault.abortPercent"), "{out:?}");
}

/// A Function running the `fetch` guest, which makes the request its body names.
fn fetcher() -> String {
    format!(
        "apiVersion: serving.weft.dev/v1alpha1\nkind: Function\nmetadata:\n  name: fetch\nspec:\n  template:\n    spec:\n      wasm:\n        path: {}\n",
        guest("fetch").display()
    )
}

#[test]
fn a_wasm_guest_calls_a_legacy_dubbo_service_by_interface_name_through_the_bridge() {
    let p = Platform::start_with(FAST);
    let exports = ["com.example.ShopService", "com.example.CartService"];
    p.apply("shop.yaml", &shop("dubbo", &exports, &exports));
    p.apply("fetch.yaml", &fetcher());

    // From inside: guest -> host outbound -> $WEFT_SIDECAR bridge -> Dubbo frame -> sofa-rpc-node.
    let call = format!("POST http://{}/_rpc/dubbo/com.example.CartService/hello?version=1.0.0\n[\"tea\"]", p.gateway);
    let (code, body) = http(&p.gateway, "POST", None, "/default/fetch/", &[], &call);
    assert_eq!((code, body.as_str()), (200, "200 \"shop:hello:tea\""), "{body}");
    // Where the guest may not go, it is told why.
    let (code, body) = http(&p.gateway, "POST", None, "/default/fetch/", &[], "GET http://127.0.0.9:1/\n");
    assert_eq!(code, 502, "{body}");
    assert!(body.contains("not allowed"), "{body}");

    // From outside, any HTTP client: a thrown exception, an unknown interface, bad JSON.
    let path = "/_rpc/dubbo/com.example.ShopService/fail?version=1.0.0";
    let (code, body) = http(&p.gateway, "POST", None, path, &[], "[\"x\"]");
    // sofa-rpc-node reports a thrown error as status 80 (server error), not as an exception value.
    assert_eq!(code, 502, "{body}");
    assert!(
        body.contains("shop refuses x") && body.contains("\"dubboStatus\":80"),
        "the provider's error comes back: {body}"
    );
    let (code, body) = http(&p.gateway, "POST", None, "/_rpc/dubbo/com.example.Nobody/hello", &[], "[]");
    assert_eq!(code, 404, "{body}");
    let (code, body) = http(&p.gateway, "POST", None, path, &[], "[\"x\"");
    assert_eq!(code, 400, "{body}");
    let metrics = http(&p.gateway, "GET", None, "/metrics", &[], "").1;
    assert!(
        metrics.contains("weft_rpc_requests_total{protocol=\"dubbo\",namespace=\"default\",function=\"shop\""),
        "{metrics}"
    );
}
