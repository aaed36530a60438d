use crate::document::{Document, DocumentError, parse_documents};

const GOOD: &str = r#"
apiVersion: serving.weft.dev/v1alpha1
kind: Function
metadata:
  name: hello
  namespace: default
spec:
  template:
    metadata:
      annotations:
        autoscaling.weft.dev/min-scale: "1"
    spec:
      wasm:
        path: hello.wasm
      env:
        - name: GREETING
          value: Hi
      timeoutSeconds: 10
      limits:
        memory: 64Mi
"#;

fn fields(err: DocumentError) -> Vec<String> {
    match err {
        DocumentError::Invalid { source, .. } => source.0.into_iter().map(|e| e.field).collect(),
        other => panic!("expected a validation error, got {other}"),
    }
}

fn with(extra: &str) -> String {
    format!("{GOOD}{extra}")
}

#[test]
fn accepts_a_good_function() {
    let docs = parse_documents(GOOD).unwrap();
    let Document::Function(f) = &docs[0] else { panic!("not a function") };
    assert_eq!(f.spec.template.spec.timeout_seconds(), 10);
    assert_eq!(f.spec.template.spec.env[0].value, "Hi");
}

#[test]
fn percents_must_add_up_to_100() {
    let yaml = with(
        "  traffic:\n    - revisionName: hello-00001\n      percent: 80\n    - latestRevision: true\n      percent: 10\n",
    );
    let err = parse_documents(&yaml).unwrap_err();
    assert!(err.to_string().contains("percents add up to 90"), "{err}");
    assert_eq!(fields(err), vec!["spec.traffic"]);
}

#[test]
fn a_split_of_100_with_a_tag_is_fine() {
    let yaml = with(
        "  traffic:\n    - revisionName: hello-00001\n      percent: 90\n    - latestRevision: true\n      percent: 10\n      tag: canary\n",
    );
    assert!(parse_documents(&yaml).is_ok());
}

#[test]
fn traffic_target_needs_exactly_one_reference_and_unique_tags() {
    let yaml = with(
        "  traffic:\n    - percent: 100\n      tag: a\n    - revisionName: x\n      latestRevision: true\n      tag: a\n",
    );
    let f = fields(parse_documents(&yaml).unwrap_err());
    assert_eq!(f, vec!["spec.traffic[0]", "spec.traffic[1]", "spec.traffic[1].tag"]);
}

#[test]
fn bad_names_limits_and_sources_are_named() {
    let yaml = GOOD
        .replace("name: hello", "name: Hello_World")
        .replace("64Mi", "lots")
        .replace("timeoutSeconds: 10", "timeoutSeconds: 0")
        .replace("name: GREETING", "name: 1BAD");
    let f = fields(parse_documents(&yaml).unwrap_err());
    assert_eq!(
        f,
        vec![
            "metadata.name",
            "spec.template.spec.timeoutSeconds",
            "spec.template.spec.limits.memory",
            "spec.template.spec.env[0].name"
        ]
    );
}

#[test]
fn exactly_one_source() {
    let yaml = GOOD.replace("      wasm:\n        path: hello.wasm\n", "");
    assert_eq!(fields(parse_documents(&yaml).unwrap_err()), vec!["spec.template.spec"]);
    let yaml = with("").replace("      env:", "      image: example/app\n      env:");
    assert_eq!(fields(parse_documents(&yaml).unwrap_err()), vec!["spec.template.spec"]);
}

#[test]
fn cluster_module_sources_are_checked() {
    let yaml = GOOD.replace("path: hello.wasm", "url: ftp://example.com/hello.wasm");
    assert_eq!(fields(parse_documents(&yaml).unwrap_err()), vec!["spec.template.spec.wasm.url"]);
    let yaml = GOOD.replace("path: hello.wasm", "configMap: {name: Hello_Module}");
    assert_eq!(fields(parse_documents(&yaml).unwrap_err()), vec!["spec.template.spec.wasm.configMap.name"]);
    let yaml = GOOD.replace("path: hello.wasm", "configMap: {name: hello.modules, key: hello.wasm}");
    assert!(parse_documents(&yaml).is_ok());
    let yaml = GOOD.replace("path: hello.wasm", "url: https://example.com/hello.wasm");
    assert!(parse_documents(&yaml).is_ok());
}

#[test]
fn oci_references_are_checked() {
    use crate::validate::check_oci_reference as check;
    for good in [
        "ghcr.io/acme/hello:v1",
        "127.0.0.1:5000/hello",
        "localhost/team/hello:1.0_rc-2",
        "hello",
        "registry.example.com/a/b/c@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "acme/hello:v1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    ] {
        assert_eq!(check(good), Ok(()), "{good}");
    }
    for (bad, says) in [
        ("https://ghcr.io/acme/hello:v1", "no scheme"),
        ("ghcr.io/Acme/hello", "\"Acme\""),
        ("ghcr.io/acme/hello:-v1", "tag \"-v1\""),
        ("ghcr.io/acme/hello@sha256:1234", "the digest"),
        ("ghcr.io//hello", "\"\""),
        ("ghcr.io/acme/hello world", "\"hello world\""),
        ("", "\"\""),
    ] {
        let err = check(bad).expect_err(bad);
        assert!(err.contains(says), "{bad}: {err}");
    }
    let yaml = GOOD.replace("path: hello.wasm", "oci: ghcr.io/acme/Hello:v1");
    assert_eq!(fields(parse_documents(&yaml).unwrap_err()), vec!["spec.template.spec.wasm.oci"]);
    let yaml = GOOD.replace("path: hello.wasm", "oci: ghcr.io/acme/hello:v1\n        pullSecret: Regcred");
    assert_eq!(fields(parse_documents(&yaml).unwrap_err()), vec!["spec.template.spec.wasm.pullSecret"]);
    let yaml = GOOD.replace("path: hello.wasm", "url: https://example.com/hello.wasm\n        pullSecret: regcred");
    assert_eq!(fields(parse_documents(&yaml).unwrap_err()), vec!["spec.template.spec.wasm.pullSecret"]);
    let yaml = GOOD.replace("path: hello.wasm", "oci: ghcr.io/acme/hello:v1\n        pullSecret: regcred");
    assert!(parse_documents(&yaml).is_ok());
}

#[test]
fn scale_annotations_must_be_integers_in_order() {
    let yaml = GOOD.replace("min-scale: \"1\"", "min-scale: \"3\"\n        autoscaling.weft.dev/max-scale: \"2\"");
    let err = parse_documents(&yaml).unwrap_err();
    assert!(err.to_string().contains("min-scale 3 is above max-scale 2"), "{err}");
    let yaml = GOOD.replace("min-scale: \"1\"", "min-scale: \"one\"");
    assert!(parse_documents(&yaml).unwrap_err().to_string().contains("not a non-negative integer"));
}

#[test]
fn unknown_kind_and_shape_errors_say_where() {
    let err = parse_documents("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n").unwrap_err();
    assert!(err.to_string().contains("unknown kind \"Pod\""), "{err}");
    let err = parse_documents(&GOOD.replace("timeoutSeconds: 10", "timeoutSeconds: soon")).unwrap_err();
    assert!(
        matches!(&err, DocumentError::Shape { field, .. } if field == "spec.template.spec.timeoutSeconds"),
        "{err}"
    );
    let err = parse_documents("kind: Function\n").unwrap_err();
    assert!(err.to_string().contains("apiVersion"), "{err}");
    assert!(matches!(parse_documents("---\n"), Err(DocumentError::Empty)));
    assert!(matches!(parse_documents("a: [b"), Err(DocumentError::Yaml { .. })));
}

#[test]
fn several_documents_are_numbered() {
    let two = format!("{GOOD}---\n{}", GOOD.replace("name: hello", "name: Bad!"));
    let err = parse_documents(&two).unwrap_err();
    assert!(err.to_string().starts_with("document 2 (Function"), "{err}");
}

#[test]
fn resilience_values_out_of_range_are_named() {
    let good = with(
        "  resilience:\n    timeoutMs: 500\n    retries: {attempts: 3, methods: [getUser]}\n    circuitBreaker: {consecutiveFailures: 5}\n    rateLimit: {requestsPerSecond: 100}\n    fault: {abortPercent: 5, delayPercent: 10, delayMs: 100}\n",
    );
    assert!(parse_documents(&good).is_ok());
    let bad = with(
        "  resilience:\n    timeoutMs: 0\n    retries: {attempts: 11}\n    circuitBreaker: {consecutiveFailures: 0, ejectSeconds: 0}\n    rateLimit: {requestsPerSecond: 0}\n    fault: {abortPercent: 101, delayPercent: 200}\n",
    );
    assert_eq!(
        fields(parse_documents(&bad).unwrap_err()),
        [
            "spec.resilience.timeoutMs",
            "spec.resilience.retries.attempts",
            "spec.resilience.circuitBreaker.consecutiveFailures",
            "spec.resilience.circuitBreaker.ejectSeconds",
            "spec.resilience.rateLimit.requestsPerSecond",
            "spec.resilience.fault.abortPercent",
            "spec.resilience.fault.delayPercent",
        ]
    );
}
