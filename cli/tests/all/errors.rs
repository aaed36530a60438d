//! Bad input gets a clear error naming the file, the field and the fix, and a
//! non-zero exit; nothing is half-applied.

use crate::platform::*;

fn apply_err(p: &Platform, file: &str, yaml: &str) -> String {
    let path = p.dir.path().join(file);
    std::fs::write(&path, yaml).unwrap();
    let out = p.weft(&["apply", "-f", path.to_str().unwrap()]);
    assert!(!out.status.success(), "apply of {file} should fail");
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn bad_manifests_are_refused_with_the_field_named() {
    let p = Platform::start();
    let err = apply_err(&p, "broken.yaml", "apiVersion: serving.weft.dev/v1alpha1\nkind: Function\nmetadata: [oops\n");
    assert!(err.contains("broken.yaml") && err.contains("not valid YAML"), "{err}");

    let err = apply_err(&p, "pod.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n");
    assert!(err.contains("unknown kind \"Pod\""), "{err}");

    let split = "- revisionName: hello-00001\n  percent: 60\n- latestRevision: true\n  percent: 30\n";
    let err = apply_err(&p, "split.yaml", &function_yaml("hello", "hello", "", split));
    assert!(err.contains("spec.traffic") && err.contains("must add up to 100"), "{err}");

    let missing = function_yaml("hello", "hello", "", "").replace("hello.wasm", "nope.wasm");
    let err = apply_err(&p, "missing.yaml", &missing);
    assert!(err.contains("spec.template.spec.wasm.path") && err.contains("nope.wasm"), "{err}");

    let err = apply_err(&p, "mem.yaml", &function_yaml("hello", "hello", "limits:\n  memory: lots", ""));
    assert!(err.contains("spec.template.spec.limits.memory"), "{err}");

    let not_wasm = p.dir.path().join("fake.wasm");
    std::fs::write(&not_wasm, b"#!/bin/sh\n").unwrap();
    let yaml =
        function_yaml("hello", "hello", "", "").replace(guest("hello").to_str().unwrap(), not_wasm.to_str().unwrap());
    let err = apply_err(&p, "fake.yaml", &yaml);
    assert!(err.contains("not a valid WebAssembly module"), "{err}");

    let cluster_only = function_yaml("hello", "hello", "", "")
        .replace(&format!("path: {}", guest("hello").display()), "url: https://modules.example.com/hello.wasm");
    let err = apply_err(&p, "cluster.yaml", &cluster_only);
    assert!(err.contains("weft up runs modules uploaded by `weft apply`") && err.contains("in a cluster"), "{err}");

    // Nothing was stored by any of these.
    assert!(p.weft_ok(&["get", "fn", "-o", "json"]).trim() == "[]");
    let out = p.weft(&["get", "widgets"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("unknown kind"));
}

#[test]
fn commands_without_a_platform_say_how_to_start_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(WEFT).arg("--state").arg(dir.path()).args(["get", "fn"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no running platform") && err.contains("weft up"), "{err}");
}

#[test]
fn a_second_platform_on_the_same_state_is_refused() {
    let p = Platform::start();
    let out = std::process::Command::new(WEFT)
        .args(["up", "--gateway", "127.0.0.1:0", "--api", "127.0.0.1:0", "--state"])
        .arg(p.state())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("another `weft up`"));
}

#[test]
fn scaling_flags_out_of_range_are_refused_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (vec!["--max-scale-down-rate", "1"], "--max-scale-down-rate 1 must be from"),
        (vec!["--min-scale", "3", "--max-scale", "2"], "--min-scale 3 is above --max-scale 2"),
        (vec!["--target-burst-capacity", "-5"], "--target-burst-capacity -5 must be from"),
        (vec!["--initial-scale", "0"], "--initial-scale 0 needs --allow-zero-initial-scale"),
    ];
    for (flags, want) in cases {
        let out = std::process::Command::new(WEFT)
            .args(["up", "--gateway", "127.0.0.1:0", "--api", "127.0.0.1:0", "--state"])
            .arg(dir.path())
            .args(&flags)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(want), "{flags:?}: {err}");
    }
}
