//! Wasm modules in a real OCI registry (the CNCF distribution registry, Debian's
//! `docker-registry`, on a free loopback port): `weft push` writes one, a
//! cluster Pod's `weft instance` pulls it by `wasm.oci` (anonymously, or with a
//! mounted dockerconfigjson Secret), and `weft apply` pulls it for `weft up`.

use crate::platform::*;
use crate::pod::{free_port, pod_config, run_pod, stop};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// A registry process, ended by PID when dropped.
struct Registry {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry; with `user`, it requires that user (htpasswd, bcrypt).
    fn start(user: Option<(&str, &str)>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let mut config = format!(
            "version: 0.1\nlog: {{level: warn}}\nstorage: {{filesystem: {{rootdirectory: {}}}}}\nhttp: {{addr: \"{addr}\"}}\n",
            dir.path().join("data").display()
        );
        if let Some((name, password)) = user {
            let hash = bcrypt::hash(password, 4).unwrap();
            std::fs::write(dir.path().join("htpasswd"), format!("{name}:{hash}\n")).unwrap();
            let path = dir.path().join("htpasswd");
            config.push_str(&format!("auth: {{htpasswd: {{realm: weft-test, path: {}}}}}\n", path.display()));
        }
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("registry.log")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("docker-registry (installed by scripts/install-deps.sh): {e}"));
        // Any answer to /v2/ (200, or 401 with auth) means it is serving.
        wait_for(Duration::from_secs(20), || {
            std::net::TcpStream::connect(&addr).ok()?;
            Some(http(&addr, "GET", None, "/v2/", &[], "").0)
        });
        Registry { child, addr, _dir: dir }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn push(module: &Path, reference: &str, docker_config: Option<&Path>) -> Output {
    let mut cmd = Command::new(WEFT);
    cmd.args(["push"]).arg(module).arg(reference);
    // Never the developer's own Docker credentials.
    let empty = tempfile::tempdir().unwrap();
    cmd.env("DOCKER_CONFIG", docker_config.unwrap_or(empty.path()));
    cmd.output().unwrap()
}

fn stdout_ok(out: Output) -> String {
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn oci_spec(reference: &str) -> String {
    format!("      wasm: {{oci: \"{reference}\"}}\n")
}

#[test]
fn a_module_pushed_with_weft_push_is_pulled_and_served_by_a_pod() {
    let registry = Registry::start(None);
    let tagged = format!("{}/acme/hello:v1", registry.addr);
    let pinned = stdout_ok(push(&guest("hello"), &tagged, None));
    assert!(pinned.starts_with(&format!("{}/acme/hello@sha256:", registry.addr)), "{pinned}");

    // The manifest is the CNCF wasm artifact layout.
    let (status, manifest) = http(
        &registry.addr,
        "GET",
        None,
        "/v2/acme/hello/manifests/v1",
        &[("accept", "application/vnd.oci.image.manifest.v1+json")],
        "",
    );
    assert_eq!(status, 200, "{manifest}");
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(manifest["config"]["mediaType"], "application/vnd.wasm.config.v0+json");
    assert_eq!(manifest["layers"][0]["mediaType"], "application/wasm");
    assert_eq!(manifest["layers"][0]["size"], std::fs::metadata(guest("hello")).unwrap().len());

    for reference in [&tagged, &pinned] {
        let (child, ready) = run_pod(pod_config(&oci_spec(reference)), tempfile::tempdir().unwrap().path()).unwrap();
        let (status, body) = http(ready["serving"].as_str().unwrap(), "GET", None, "/", &[], "");
        assert_eq!((status, body.as_str()), (200, "Hello from weft! (GET /, 0 bytes)\n"), "{reference}");
        let (_, metrics) = http(ready["admin"].as_str().unwrap(), "GET", None, "/metrics", &[], "");
        let size = std::fs::metadata(guest("hello")).unwrap().len();
        assert!(metrics.contains(&format!("weft_instance_module_fetch_bytes{{source=\"oci\"}} {size}")), "{metrics}");
        assert!(metrics.contains("weft_instance_module_fetch_seconds{source=\"oci\"}"), "{metrics}");
        stop(child);
    }

    // A pinned module digest that the pulled bytes do not have is refused.
    let mut config = pod_config(&oci_spec(&tagged));
    config["digest"] = format!("sha256:{}", "0".repeat(64)).into();
    let err = run_pod(config, tempfile::tempdir().unwrap().path()).unwrap_err();
    assert!(err.contains("but the revision pins"), "{err}");
    // A tag that was never pushed is named in the error.
    let err =
        run_pod(pod_config(&oci_spec(&format!("{}/acme/hello:v2", registry.addr))), Path::new("/tmp")).unwrap_err();
    assert!(err.contains("pull module") && err.contains("acme/hello:v2"), "{err}");
}

#[test]
fn weft_push_refuses_what_is_not_a_module_and_bad_references() {
    let registry = Registry::start(None);
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "hello").unwrap();
    let out = push(&text, &format!("{}/acme/notes:v1", registry.addr), None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a wasm module"));

    let out = push(&guest("hello"), &format!("http://{}/acme/hello:v1", registry.addr), None);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no scheme"), "{out:?}");
    let out = push(&guest("hello"), &format!("{}/Acme/hello:v1", registry.addr), None);
    assert!(String::from_utf8_lossy(&out.stderr).contains("repository part \"Acme\""), "{out:?}");
}

#[test]
fn a_private_registry_is_reached_with_the_mounted_pull_secret() {
    let registry = Registry::start(Some(("ci", "s3cret")));
    let reference = format!("{}/team/hello:v1", registry.addr);
    let creds = tempfile::tempdir().unwrap();
    let auth = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b"ci:s3cret");
    let config_json = format!("{{\"auths\": {{\"{}\": {{\"auth\": \"{auth}\"}}}}}}", registry.addr);
    std::fs::write(creds.path().join("config.json"), &config_json).unwrap();

    let out = push(&guest("hello"), &reference, None);
    assert!(!out.status.success(), "anonymous push is refused");
    stdout_ok(push(&guest("hello"), &reference, Some(creds.path())));

    let err = run_pod(pod_config(&oci_spec(&reference)), tempfile::tempdir().unwrap().path()).unwrap_err();
    assert!(err.contains("pull module"), "anonymous pull is refused: {err}");

    // The Pod form: the Secret's .dockerconfigjson key is mounted and named.
    let secret = creds.path().join(".dockerconfigjson");
    std::fs::write(&secret, &config_json).unwrap();
    let mut config = pod_config(&format!("      wasm: {{oci: \"{reference}\", pullSecret: regcred}}\n"));
    assert_eq!(config["module_source"]["oci"]["credentials"], "/var/run/weft/registry/.dockerconfigjson");
    config["module_source"]["oci"]["credentials"] = secret.display().to_string().into();
    let (child, ready) = run_pod(config, tempfile::tempdir().unwrap().path()).unwrap();
    assert_eq!(http(ready["serving"].as_str().unwrap(), "GET", None, "/", &[], "").0, 200);
    stop(child);
}

#[test]
fn weft_apply_pulls_an_oci_module_for_weft_up() {
    let registry = Registry::start(None);
    let reference = format!("{}/acme/hello:v1", registry.addr);
    stdout_ok(push(&guest("hello"), &reference, None));
    let p = Platform::start();
    let yaml = function_yaml("hello", "hello", "", "")
        .replace(&format!("path: {}", guest("hello").display()), &format!("oci: \"{reference}\""));
    assert!(yaml.contains("oci:"), "{yaml}");
    p.apply("hello.yaml", &yaml);
    let (status, body) = p.get(Some("hello.default.localhost"), "/");
    assert_eq!((status, body.as_str()), (200, "Hello from weft! (GET /, 0 bytes)\n"));
    let rev = p.weft_ok(&["get", "revisions", "-o", "json"]);
    assert!(rev.contains(&reference), "the revision keeps where the module came from: {rev}");
}
