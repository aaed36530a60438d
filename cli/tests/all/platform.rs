//! Starting and driving a real `weft up` for a test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const WEFT: &str = env!("CARGO_BIN_EXE_weft");

/// A sample guest built by `functions/guests/build.sh` (the test command runs it).
pub fn guest(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../functions/guests/build/{name}.wasm"));
    assert!(p.exists(), "{} missing: run `bash functions/guests/build.sh` first", p.display());
    p.canonicalize().unwrap()
}

/// A Function manifest for a sample guest; `extra_spec` is appended under
/// `spec.template.spec`, `traffic` under `spec`.
pub fn function_yaml(name: &str, guest_name: &str, extra_spec: &str, traffic: &str) -> String {
    let mut y = format!(
        "apiVersion: serving.weft.dev/v1alpha1\nkind: Function\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  template:\n    spec:\n      wasm:\n        path: {}\n",
        guest(guest_name).display()
    );
    for line in extra_spec.lines().filter(|l| !l.trim().is_empty()) {
        y.push_str(&format!("      {line}\n"));
    }
    if !traffic.is_empty() {
        y.push_str("  traffic:\n");
        for line in traffic.lines().filter(|l| !l.trim().is_empty()) {
            y.push_str(&format!("    {line}\n"));
        }
    }
    y
}

pub struct Platform {
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    pub gateway: String,
    pub api: String,
    /// The broker ingress.
    pub events: String,
    flags: Vec<String>,
}

impl Platform {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts `weft up` with extra flags (e.g. shorter scaling periods).
    pub fn start_with(flags: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let flags = flags.iter().map(|f| f.to_string()).collect();
        let mut p =
            Platform { dir, child: None, gateway: String::new(), api: String::new(), events: String::new(), flags };
        p.boot();
        p
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Starts `weft up` on the state dir and waits for it to publish addresses.
    pub fn boot(&mut self) {
        let log = std::fs::File::create(self.dir.path().join(format!("up-{}.log", now_ms()))).unwrap();
        let child = Command::new(WEFT)
            .args([
                "up",
                "--gateway",
                "127.0.0.1:0",
                "--api",
                "127.0.0.1:0",
                "--events",
                "127.0.0.1:0",
                "--dns",
                "127.0.0.1:0",
            ])
            .arg("--state")
            .arg(self.state())
            .args(&self.flags)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let runtime = self.state().join("runtime.json");
        let v = wait_for(Duration::from_secs(20), || {
            let text = std::fs::read_to_string(&runtime).ok()?;
            serde_json::from_str::<serde_json::Value>(&text).ok()
        });
        self.gateway = v["gateway"].as_str().unwrap().to_string();
        self.api = v["api"].as_str().unwrap().to_string();
        self.events = v["events"].as_str().unwrap().to_string();
    }

    /// SIGTERM, as Ctrl-C; returns whether `weft up` exited cleanly in time.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// SIGKILL, as a crash: nothing gets to clean up.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Runs the CLI against this platform.
    pub fn weft(&self, args: &[&str]) -> Output {
        Command::new(WEFT).arg("--state").arg(self.state()).args(args).output().unwrap()
    }

    /// Runs the CLI and asserts success; returns stdout.
    pub fn weft_ok(&self, args: &[&str]) -> String {
        let out = self.weft(args);
        assert!(out.status.success(), "weft {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Writes a manifest into the test dir and applies it (waiting for ready).
    pub fn apply(&self, file: &str, yaml: &str) -> String {
        let path = self.dir.path().join(file);
        std::fs::write(&path, yaml).unwrap();
        self.weft_ok(&["apply", "-f", path.to_str().unwrap()])
    }

    /// GET through the gateway with an optional Host header.
    pub fn get(&self, host: Option<&str>, path: &str) -> (u16, String) {
        http(&self.gateway, "GET", host, path, &[], "")
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn now_ms() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()
}

/// Polls `f` until it returns Some, or panics after `timeout`.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "condition not met within {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A minimal HTTP/1.1 client (one request per connection) so tests can set any
/// Host header and see exactly what the gateway sent.
pub fn http(
    addr: &str,
    method: &str,
    host: Option<&str>,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
        host.unwrap_or(addr),
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let text = String::from_utf8_lossy(&resp).to_string();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, dechunk(&text, body))
}

/// Undoes chunked transfer encoding when the response used it.
fn dechunk(head: &str, body: String) -> String {
    if !head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        return body;
    }
    let mut out = String::new();
    let mut rest = body.as_str();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&tail[..n.min(tail.len())]);
        rest = tail.get(n + 2..).unwrap_or("");
    }
    out
}

/// Adds `autoscaling.weft.dev/*` annotations to a manifest from [`function_yaml`].
pub fn with_scaling(yaml: &str, annotations: &[(&str, &str)]) -> String {
    let mut block = String::from("    metadata:\n      annotations:\n");
    for (k, v) in annotations {
        block.push_str(&format!("        autoscaling.weft.dev/{k}: \"{v}\"\n"));
    }
    yaml.replacen("  template:\n", &format!("  template:\n{block}"), 1)
}

/// `status.actualReplicas` of a revision.
pub fn actual_replicas(p: &Platform, revision: &str) -> i64 {
    let v: serde_json::Value = serde_json::from_str(&p.weft_ok(&["get", "rev", revision, "-o", "json"])).unwrap();
    v["status"]["actualReplicas"].as_i64().unwrap_or(0)
}
