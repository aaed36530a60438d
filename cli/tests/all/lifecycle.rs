//! Deploy, invoke, inspect, restart and delete.

use crate::platform::*;
use serde_json::Value;

#[test]
fn hello_answers_on_path_host_and_invoke() {
    let p = Platform::start();
    let out = p.apply("hello.yaml", &function_yaml("hello", "hello", "env:\n  - name: GREETING\n    value: Hi", ""));
    let port = p.gateway.rsplit(':').next().unwrap();
    assert!(out.contains(&format!("http://hello.default.localhost:{port}")), "{out}");

    assert_eq!(p.get(None, "/default/hello/"), (200, "Hi from weft! (GET /, 0 bytes)\n".into()));
    assert_eq!(p.get(None, "/default/hello/a/b?x=1").1, "Hi from weft! (GET /a/b, 0 bytes)\n");
    assert_eq!(p.get(Some("hello.default.localhost"), "/z").1, "Hi from weft! (GET /z, 0 bytes)\n");
    let invoked = p.weft_ok(&["invoke", "hello", "--data", r#"{"k":1}"#]);
    assert_eq!(invoked, "Hi from weft! (POST /, 7 bytes)\n");

    let f: Value = serde_json::from_str(&p.weft_ok(&["get", "functions", "hello", "-o", "json"])).unwrap();
    assert_eq!(f["status"]["latestReadyRevisionName"], "hello-00001");
    let ready = f["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").unwrap().clone();
    assert_eq!(ready["status"], "True");
    let list: Value = serde_json::from_str(&p.weft_ok(&["get", "revisions", "-o", "json"])).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["status"]["actualReplicas"], 1);
    let table = p.weft_ok(&["get", "fn"]);
    assert!(table.starts_with("NAME") && table.contains("hello-00001"), "{table}");
    let revs = p.weft_ok(&["get", "rev"]);
    let (header, row) = revs.split_once('\n').unwrap();
    assert!(header.contains("DESIRED") && header.contains("ACTUAL") && header.contains("AVAILABLE"), "{revs}");
    let counts: Vec<&str> = row.split_whitespace().skip(3).take(3).collect();
    assert_eq!(counts, vec!["1", "1", "1"], "{revs}");
    let yaml = p.weft_ok(&["get", "rev", "hello-00001", "-o", "yaml"]);
    assert!(yaml.contains("kind: Revision"), "{yaml}");
}

#[test]
fn resources_and_compiled_modules_survive_a_restart() {
    let mut p = Platform::start();
    p.apply("hello.yaml", &function_yaml("hello", "hello", "", ""));
    let modules = p.state().join("modules");
    let cwasm = std::fs::read_dir(&modules)
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
        .unwrap()
        .path();
    let compiled_at = std::fs::metadata(&cwasm).unwrap().modified().unwrap();

    assert!(p.stop(), "weft up must exit cleanly on SIGTERM");
    assert!(!p.state().join("runtime.json").exists(), "runtime.json is removed on exit");
    assert!(platform_pids(&p).is_empty(), "instances outlived weft up: {:?}", platform_pids(&p));

    p.boot();
    let (code, body) = wait_for(std::time::Duration::from_secs(20), || {
        let r = p.get(None, "/default/hello/");
        (r.0 == 200).then_some(r)
    });
    assert_eq!((code, body.as_str()), (200, "Hello from weft! (GET /, 0 bytes)\n"));
    assert_eq!(std::fs::metadata(&cwasm).unwrap().modified().unwrap(), compiled_at, "module must not be recompiled");
    let revs: Value = serde_json::from_str(&p.weft_ok(&["get", "rev", "-o", "json"])).unwrap();
    assert_eq!(revs.as_array().unwrap().len(), 1, "no new revision after a restart");
}

#[test]
fn delete_removes_the_function_and_stops_its_instances() {
    let p = Platform::start();
    p.apply("hello.yaml", &function_yaml("hello", "hello", "", ""));
    assert_eq!(p.get(None, "/default/hello/").0, 200);
    let serving = serving_addrs(&p, "hello");
    assert_eq!(serving.len(), 1);
    assert!(std::net::TcpStream::connect(serving[0]).is_ok());
    let out = p.weft_ok(&["delete", "function", "hello"]);
    assert!(out.contains("hello deleted"), "{out}");
    assert_eq!(p.get(None, "/default/hello/").0, 404);
    let revs: Value = serde_json::from_str(&p.weft_ok(&["get", "rev", "-o", "json"])).unwrap();
    assert!(revs.as_array().unwrap().is_empty());
    // Its instance is drained and stopped: its port is closed (its host stays).
    wait_for(std::time::Duration::from_secs(15), || std::net::TcpStream::connect(serving[0]).is_err().then_some(()));
    let again = p.weft(&["delete", "function", "hello"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not found"));
}

#[test]
fn logs_show_instance_output() {
    let p = Platform::start();
    p.apply("hello.yaml", &function_yaml("hello", "hello", "", ""));
    let logs = p.weft_ok(&["logs", "hello"]);
    assert!(logs.contains("instance ready") && logs.contains("hello-00001"), "{logs}");
}

#[test]
fn the_hello_example_deploys_as_documented() {
    let p = Platform::start();
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/hello/function.yaml");
    let out = p.weft_ok(&["apply", "-f", example.to_str().unwrap()]);
    assert!(out.contains("function.serving.weft.dev/hello created"), "{out}");
    assert_eq!(p.get(Some("hello.default.localhost"), "/").1, "Hello from weft! (GET /, 0 bytes)\n");
    assert_eq!(p.get(None, "/default/hello/").0, 200);
}

/// Values of `field` in the ready log lines of `function`'s instances.
fn ready_field<T: std::str::FromStr>(p: &Platform, function: &str, field: &str) -> Vec<T> {
    let logs = p.weft_ok(&["logs", function]);
    logs.lines()
        .filter(|l| l.contains("instance ready"))
        .filter_map(|l| l.split(&format!(" {field}=")).nth(1)?.split_whitespace().next()?.parse().ok())
        .collect()
}

/// PIDs of the function hosts that served `function`.
fn serving_pids(p: &Platform, function: &str) -> Vec<i32> {
    ready_field(p, function, "pid")
}

/// Serving addresses of `function`'s instances.
fn serving_addrs(p: &Platform, function: &str) -> Vec<std::net::SocketAddr> {
    ready_field(p, function, "serving")
}

/// Whether a process is still there.
fn alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

/// PIDs of every process of this platform: its function hosts name its state dir.
fn platform_pids(p: &Platform) -> Vec<i32> {
    let pattern = format!("weft instance.*{}", p.state().display());
    let out = std::process::Command::new("pgrep").args(["-f", &pattern]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.trim().parse().ok()).collect()
}

#[test]
fn a_crashed_instance_is_restarted() {
    let p = Platform::start();
    p.apply("hello.yaml", &function_yaml("hello", "hello", "", ""));
    let before = serving_pids(&p, "hello");
    assert_eq!(before.len(), 1, "{before:?}");
    // SIGKILL of its function host, as an out-of-memory kill would.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(before[0]), nix::sys::signal::Signal::SIGKILL).unwrap();
    let after = wait_for(std::time::Duration::from_secs(10), || {
        let pids = serving_pids(&p, "hello");
        (pids.len() == 2 && p.get(None, "/default/hello/").0 == 200).then_some(pids)
    });
    assert!(!alive(before[0]) && alive(after[1]), "{before:?} -> {after:?}");
}

#[test]
fn a_function_is_routable_as_soon_as_apply_reports_it_ready() {
    // `weft apply` waits for Ready; the route must already be in place then
    // (it was published after the status, so a request sent at once could
    // get a 404). A race: each round is one more chance to hit it.
    let p = Platform::start();
    for i in 0..5 {
        let name = format!("hello{i}");
        p.apply(&format!("{name}.yaml"), &function_yaml(&name, "hello", "", ""));
        let (code, body) = p.get(None, &format!("/default/{name}/"));
        assert_eq!(code, 200, "{name} right after apply: {body}");
    }
}
