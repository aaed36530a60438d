//! What a cluster Pod runs: `weft instance --config` with the config the
//! controller's Deployment carries (ports moved to free loopback ports). The
//! module comes from a URL or a mounted file, with its digest checked; an
//! `image` function's container is reached through the instance proxy.

use crate::platform::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use weft_controller::cluster::{ClusterSettings, revision_deployment};
use weft_crds::{Document, parse_documents};

/// The instance config in the Deployment of `hello`'s first revision.
pub fn pod_config(template_spec: &str) -> Value {
    let yaml = format!(
        "apiVersion: serving.weft.dev/v1alpha1\nkind: Function\nmetadata: {{name: hello, namespace: default}}\nspec:\n  template:\n    spec:\n{template_spec}"
    );
    let Document::Function(f) = parse_documents(&yaml).unwrap().remove(0) else { panic!() };
    let base = weft_controller::RouteBase { domain: "example.com".into(), port: 80 };
    let rev = weft_controller::plan_function(&f, &[], &base, "now").new_revision.unwrap();
    let settings = ClusterSettings {
        image: "weft".into(),
        sidecar: "127.0.0.1:1".into(),
        events: "http://127.0.0.1:2".into(),
        container_concurrency: 0,
        insecure_registries: Vec::new(),
    };
    let d = revision_deployment(&rev, &settings, 1).unwrap();
    let args = d.spec.unwrap().template.spec.unwrap().containers[0].args.clone().unwrap();
    serde_json::from_str(&args[2]).unwrap()
}

/// Starts the instance on free loopback ports with its module store in `dir`;
/// returns the process and its ready line, or its exit output if it failed.
pub fn run_pod(mut config: Value, dir: &std::path::Path) -> Result<(Child, Value), String> {
    config["listen"] = "127.0.0.1:0".into();
    config["admin_listen"] = format!("127.0.0.1:{}", free_port()).into();
    config["module_dir"] = dir.display().to_string().into();
    let mut child = Command::new(WEFT)
        .args(["instance", "--config", &config.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    if line.is_empty() {
        let mut err = String::new();
        child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        child.wait().unwrap();
        return Err(err);
    }
    let ready: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(ready["admin"], config["admin_listen"], "the admin port is the fixed one the probes use");
    Ok((child, ready))
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Serves `body` to every connection with `head` (one response per connection).
fn serve_forever(head: &'static str, body: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]).to_string();
            let body =
                if body.is_empty() { req.lines().next().unwrap_or("").as_bytes().to_vec() } else { body.clone() };
            let _ = write!(s, "{head}Content-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            let _ = s.write_all(&body);
        }
    });
    addr
}

pub fn stop(mut child: Child) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM);
    assert!(child.wait().unwrap().success(), "the instance drains and exits cleanly on SIGTERM");
}

#[test]
fn a_pod_downloads_its_module_checks_its_digest_and_serves() {
    let module = std::fs::read(guest("hello")).unwrap();
    let digest = format!("sha256:{}", hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&module)));
    let url = format!("http://{}/hello.wasm", serve_forever("HTTP/1.1 200 OK\r\n", module));
    let dir = tempfile::tempdir().unwrap();
    let spec = format!("      wasm: {{url: \"{url}\", digest: \"{digest}\"}}\n");
    let (child, ready) = run_pod(pod_config(&spec), dir.path()).unwrap();
    let serving = ready["serving"].as_str().unwrap();
    assert_eq!(http(serving, "GET", None, "/", &[], "").1, "Hello from weft! (GET /, 0 bytes)\n");
    let admin = ready["admin"].as_str().unwrap();
    assert_eq!(http(admin, "GET", None, "/healthz", &[], ""), (200, "ok\n".to_string()));
    stop(child);

    let wrong = format!("sha256:{}", "0".repeat(64));
    let spec = format!("      wasm: {{url: \"{url}\", digest: \"{wrong}\"}}\n");
    let err = run_pod(pod_config(&spec), tempfile::tempdir().unwrap().path()).unwrap_err();
    assert!(err.contains("but the revision pins") && err.contains(&digest), "{err}");

    let missing = format!("http://{}/gone.wasm", serve_forever("HTTP/1.1 404 Not Found\r\n", b"no".to_vec()));
    let err = run_pod(pod_config(&format!("      wasm: {{url: \"{missing}\"}}\n")), dir.path()).unwrap_err();
    assert!(err.contains("HTTP 404"), "{err}");
}

#[test]
fn a_pod_reads_a_mounted_config_map_module() {
    let mut config = pod_config("      wasm: {configMap: {name: hello-module}}\n");
    let mounted = tempfile::tempdir().unwrap();
    std::fs::copy(guest("hello"), mounted.path().join("module.wasm")).unwrap();
    config["module_source"]["file"] = mounted.path().join("module.wasm").display().to_string().into();
    let (child, ready) = run_pod(config, tempfile::tempdir().unwrap().path()).unwrap();
    let (status, body) = http(ready["serving"].as_str().unwrap(), "POST", None, "/x", &[], "abc");
    assert_eq!((status, body.as_str()), (200, "Hello from weft! (POST /x, 3 bytes)\n"));
    stop(child);
}

#[test]
fn an_image_pod_forwards_through_the_instance_proxy() {
    let user = serve_forever("HTTP/1.1 200 OK\r\nX-From: user\r\n", Vec::new());
    let mut config = pod_config("      image: example.com/app\n      containerConcurrency: 2\n");
    config["upstream"] = user.clone().into();
    let (child, ready) = run_pod(config, tempfile::tempdir().unwrap().path()).unwrap();
    let serving = ready["serving"].as_str().unwrap();
    let (status, body) = http(serving, "GET", None, "/orders?id=7", &[], "");
    assert_eq!((status, body.as_str()), (200, "GET /orders?id=7 HTTP/1.1"), "the user container answered");
    let (_, metrics) = http(ready["admin"].as_str().unwrap(), "GET", None, "/metrics", &[], "");
    assert!(metrics.contains("weft_instance_requests_total"), "{metrics}");
    stop(child);
}
