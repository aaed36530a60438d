//! The event bus in a real `weft up`: the broker ingress in every CloudEvents
//! mode, triggers with filters, retries, dead letters and reply events to a
//! real HTTP subscriber, a Function subscriber reached through the gateway,
//! PingSource, and `weft events trace`.

use crate::platform::{Platform, function_yaml, http, wait_for};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request a subscriber got: path, `ce-*` headers, body.
#[derive(Debug, Clone)]
pub struct Got {
    pub path: String,
    pub headers: HeaderMap,
    pub body: String,
    /// When it arrived (before the subscriber answered).
    pub at: std::time::Instant,
}

impl Got {
    pub fn ce(&self, name: &str) -> String {
        self.headers.get(format!("ce-{name}")).and_then(|v| v.to_str().ok()).unwrap_or("").to_string()
    }
}

/// A real HTTP subscriber on 127.0.0.1. `/dead` takes everything; elsewhere,
/// by event id: `fail*` -> 500, `slow*` -> 200 after 2 s,
/// `bad*` -> 400, `reply*` -> 200 with a reply event of type com.example.reply.
pub struct Subscriber {
    pub addr: String,
    pub got: Arc<Mutex<Vec<Got>>>,
    _rt: tokio::runtime::Runtime,
}

async fn receive(
    State(got): State<Arc<Mutex<Vec<Got>>>>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let id = headers.get("ce-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let dead_letter_sink = path == "dead";
    got.lock().unwrap().push(Got { path, headers, body, at: std::time::Instant::now() });
    if dead_letter_sink {
        return StatusCode::OK.into_response();
    }
    if id.starts_with("fail") {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    if id.starts_with("slow") {
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    if id.starts_with("bad") {
        return StatusCode::BAD_REQUEST.into_response();
    }
    if id.starts_with("reply") {
        let h = [
            ("ce-specversion", "1.0".to_string()),
            ("ce-id", format!("re-{id}")),
            ("ce-type", "com.example.reply".to_string()),
            ("ce-source", "/subscriber".to_string()),
            ("content-type", "text/plain".to_string()),
        ];
        let mut r = "thanks".into_response();
        for (k, v) in h {
            r.headers_mut().insert(k, v.parse().unwrap());
        }
        return r;
    }
    StatusCode::OK.into_response()
}

impl Subscriber {
    pub fn start() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let router = axum::Router::new().route("/{path}", axum::routing::post(receive)).with_state(got.clone());
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        rt.spawn(async move { axum::serve(listener, router).await });
        Self { addr, got, _rt: rt }
    }

    pub fn at(&self, path: &str) -> Vec<Got> {
        self.got.lock().unwrap().iter().filter(|g| g.path == path).cloned().collect()
    }

    /// Waits until `path` got at least `n` requests; returns them.
    pub fn wait(&self, path: &str, n: usize) -> Vec<Got> {
        wait_for(Duration::from_secs(20), || Some(self.at(path)).filter(|g| g.len() >= n))
    }
}

fn binary(p: &Platform, broker: &str, id: &str, ty: &str) -> (u16, String) {
    let headers = [
        ("ce-specversion", "1.0"),
        ("ce-id", id),
        ("ce-type", ty),
        ("ce-source", "/test"),
        ("content-type", "application/json"),
    ];
    http(&p.events, "POST", None, &format!("/default/{broker}"), &headers, r#"{"n":1}"#)
}

const BROKER: &str = "apiVersion: eventing.weft.dev/v1alpha1\nkind: Broker\nmetadata:\n  name: default\n";

#[test]
fn the_ingress_takes_every_mode_and_refuses_bad_events_naming_the_attribute() {
    let mut p = Platform::start();
    let url = p.apply("broker.yaml", BROKER);
    assert!(
        url.ends_with(&format!("\nhttp://{}/default/default\n", p.events)),
        "apply prints status.address.url: {url}"
    );
    assert!(p.weft_ok(&["get", "brokers"]).contains(&format!("http://{}/default/default", p.events)));

    assert_eq!(binary(&p, "default", "b1", "t").0, 202);
    let structured = r#"{"specversion":"1.0","id":"s1","type":"t","source":"/x","data":{"a":1}}"#;
    let ct = [("content-type", "application/cloudevents+json")];
    assert_eq!(http(&p.events, "POST", None, "/default/default", &ct, structured).0, 202);
    let batch = r#"[{"specversion":"1.0","id":"k1","type":"t","source":"/x"},{"specversion":"1.0","id":"k2","type":"t","source":"/x"}]"#;
    let bt = [("content-type", "application/cloudevents-batch+json")];
    assert_eq!(http(&p.events, "POST", None, "/default/default", &bt, batch).0, 202);

    let bad_batch =
        r#"[{"specversion":"1.0","id":"k3","type":"t","source":"/x"},{"specversion":"1.0","id":"k4","type":"t"}]"#;
    let (code, body) = http(&p.events, "POST", None, "/default/default", &bt, bad_batch);
    assert_eq!((code, body.contains("attribute [1].source: missing")), (400, true), "{body}");
    let bad_time = r#"{"specversion":"1.0","id":"x","type":"t","source":"/x","time":"yesterday"}"#;
    let (code, body) = http(&p.events, "POST", None, "/default/default", &ct, bad_time);
    assert_eq!((code, body.contains("attribute time")), (400, true), "{body}");
    let (code, body) = http(&p.events, "POST", None, "/default/default", &[], "hello");
    assert_eq!((code, body.contains("binary mode needs")), (400, true), "{body}");
    let (code, body) = binary(&p, "nope", "n1", "t");
    assert_eq!((code, body.contains("no broker default/nope")), (404, true), "{body}");

    // Every accepted event is traced; the refused batch left nothing behind.
    for id in ["b1", "s1", "k1", "k2"] {
        assert!(p.weft_ok(&["events", "trace", id]).contains("ingested"), "{id}");
    }
    assert!(!p.weft(&["events", "trace", "k3"]).status.success(), "a refused batch is not partly stored");

    // Deleting the Broker deletes its log; one made again under its name starts empty.
    let topic = p.state().join("events/default.default");
    assert!(topic.is_dir(), "the Broker's log: {}", topic.display());
    p.weft_ok(&["delete", "broker", "default"]);
    wait_for(Duration::from_secs(10), || (!topic.exists()).then_some(()));
    assert_eq!(binary(&p, "default", "gone", "t").0, 404, "no ingress for a deleted Broker");
    p.apply("broker.yaml", BROKER);
    assert!(topic.is_dir(), "a new log for the new Broker");
    let offsets =
        std::fs::read_dir(&topic).unwrap().filter_map(|e| e.ok()).filter(|e| e.metadata().unwrap().len() > 0).count();
    assert_eq!(offsets, 0, "the new log holds nothing of the old one");

    // A log no Broker owns (its Broker went while weft up was down) is
    // deleted at the next start; the live Broker's log and events are kept.
    assert_eq!(binary(&p, "default", "kept", "t").0, 202);
    assert!(p.stop());
    let bytes = |dir: &std::path::Path| -> u64 {
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum()
    };
    let kept = bytes(&topic);
    assert!(kept > 0, "the event is in the log");
    let orphan = p.state().join("events/default.gone");
    std::fs::create_dir(&orphan).unwrap();
    for entry in std::fs::read_dir(&topic).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), orphan.join(entry.file_name())).unwrap();
    }
    p.boot();
    assert!(!orphan.exists(), "the orphaned log is gone");
    assert_eq!(bytes(&topic), kept, "the live Broker's log stays as it was");
    assert_eq!(binary(&p, "default", "after", "t").0, 202, "the live Broker still takes events");
}

#[test]
fn triggers_filter_retry_dead_letter_and_put_replies_back_into_the_broker() {
    let p = Platform::start();
    let s = Subscriber::start();
    let yaml = format!(
        "{BROKER}---
apiVersion: eventing.weft.dev/v1alpha1
kind: Trigger
metadata:
  name: orders
spec:
  broker: default
  filters:
    - prefix: {{type: com.example.order}}
  subscriber: {{uri: \"http://{a}/orders\"}}
  delivery:
    retry: 2
    backoffPolicy: linear
    backoffDelay: PT0.05S
    timeout: PT0.3S
    deadLetterSink: {{uri: \"http://{a}/dead\"}}
---
apiVersion: eventing.weft.dev/v1alpha1
kind: Trigger
metadata:
  name: replies
spec:
  broker: default
  filter:
    attributes: {{type: com.example.reply}}
  subscriber: {{uri: \"http://{a}/replies\"}}
",
        a = s.addr
    );
    p.apply("triggers.yaml", &yaml);
    assert!(p.weft_ok(&["get", "triggers"]).contains(&format!("http://{}/orders", s.addr)));
    for (id, ty) in [
        ("ok-1", "com.example.order"),
        ("fail-1", "com.example.order"),
        ("bad-1", "com.example.order.v2"),
        ("reply-1", "com.example.order"),
        ("skip-1", "com.example.other"),
        ("slow-1", "com.example.order"),
    ] {
        assert_eq!(binary(&p, "default", id, ty).0, 202);
    }
    let dead = s.wait("dead", 3);
    let replies = s.wait("replies", 1);
    let orders = s.at("orders");
    let count = |id: &str| orders.iter().filter(|g| g.ce("id") == id).count();
    assert_eq!((count("ok-1"), count("fail-1"), count("bad-1"), count("reply-1"), count("skip-1")), (1, 3, 1, 1, 0));
    assert_eq!(orders.iter().find(|g| g.ce("id") == "ok-1").unwrap().body, r#"{"n":1}"#, "data is passed through");

    let of = |id: &str| dead.iter().find(|g| g.ce("id") == id).unwrap().clone();
    let fail = of("fail-1");
    assert_eq!(
        (
            fail.ce("deadletterreason"),
            fail.ce("deadletterstatus"),
            fail.ce("deadletterattempts"),
            fail.ce("deadlettertrigger")
        ),
        ("retries-exhausted".into(), "500".into(), "3".into(), "default/orders".into())
    );
    let bad = of("bad-1");
    assert_eq!(
        (bad.ce("deadletterreason"), bad.ce("deadletterstatus"), bad.ce("deadletterattempts")),
        ("not-retryable".into(), "400".into(), "1".into())
    );
    assert_eq!(
        replies[0].ce("id"),
        "re-reply-1",
        "the reply went back into the broker and matched the replies trigger"
    );
    let slow = of("slow-1");
    assert_eq!(
        (slow.ce("deadletterreason"), slow.ce("deadletterstatus"), slow.ce("deadletterattempts")),
        ("retries-exhausted".into(), "timeout".into(), "3".into()),
        "a subscriber slower than delivery.timeout"
    );

    let trace = p.weft_ok(&["events", "trace", "fail-1"]);
    assert!(trace.contains("outcome: dead-lettered"), "{trace}");
    assert_eq!(trace.matches("subscriber  500").count(), 3, "{trace}");
    assert!(trace.contains("dead-letter 200"), "{trace}");

    let metrics = p.get(None, "/metrics").1;
    for line in [
        "weft_eventbus_delivered_total{trigger=\"default/orders\"} 2",
        "weft_eventbus_retried_total{trigger=\"default/orders\"} 4",
        "weft_eventbus_dead_lettered_total{trigger=\"default/orders\",reason=\"retries_exhausted\"} 2",
        "weft_eventbus_dead_lettered_total{trigger=\"default/orders\",reason=\"not_retryable\"} 1",
        "weft_eventbus_replies_total{trigger=\"default/orders\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing in\n{metrics}");
    }
}

#[test]
fn a_function_subscriber_is_reached_through_the_gateway_and_a_ping_source_fires() {
    let p = Platform::start();
    let s = Subscriber::start();
    p.apply("fn.yaml", &function_yaml("sink", "json", "", ""));
    let yaml = format!(
        "{BROKER}---
apiVersion: eventing.weft.dev/v1alpha1
kind: Trigger
metadata:
  name: to-function
spec:
  broker: default
  filters: [{{cesql: \"type = 'com.example.order' AND EXISTS subject\"}}]
  subscriber:
    ref: {{kind: Function, name: sink}}
---
apiVersion: eventing.weft.dev/v1alpha1
kind: Trigger
metadata:
  name: pings
spec:
  broker: default
  filters: [{{exact: {{type: dev.knative.sources.ping}}}}]
  subscriber: {{uri: \"http://{a}/pings\"}}
---
apiVersion: eventing.weft.dev/v1alpha1
kind: PingSource
metadata:
  name: every-second
spec:
  schedule: \"* * * * * *\"
  data: '{{\"beat\": true}}'
  sink:
    ref: {{kind: Broker, name: default}}
",
        a = s.addr
    );
    p.apply("events.yaml", &yaml);
    assert!(p.weft_ok(&["get", "triggers"]).contains("http://sink.default.localhost/"));
    let id = p.weft_ok(&["send", "--type", "com.example.order", "--subject", "o-1", "--data", r#"{"n":1}"#]);
    let id = id.trim();
    let trace = wait_for(Duration::from_secs(20), || {
        Some(p.weft_ok(&["events", "trace", id])).filter(|t| t.contains("outcome: delivered"))
    });
    assert!(trace.contains("trigger default/to-function -> http://sink.default.localhost/"), "{trace}");
    assert!(trace.contains("subscriber  200"), "{trace}");
    let no_subject = p.weft_ok(&["send", "--type", "com.example.order"]);
    let pings = s.wait("pings", 2);
    for g in &pings {
        let data: serde_json::Value = serde_json::from_str(&g.body).unwrap();
        assert_eq!(data, serde_json::json!({"beat": true}));
        assert_eq!(g.ce("source"), "/apis/v1/namespaces/default/pingsources/every-second");
    }
    let t = p.weft_ok(&["events", "trace", no_subject.trim()]);
    assert!(t.contains("no trigger matched"), "the CESQL EXISTS filter: {t}");
    let metrics = p.get(None, "/metrics").1;
    assert!(
        metrics.contains("weft_gateway_requests_total{namespace=\"default\",function=\"sink\""),
        "delivered through the gateway"
    );
}

#[test]
fn bad_eventing_resources_are_refused_with_the_field_named() {
    let p = Platform::start();
    let cases = [
        (
            "apiVersion: eventing.weft.dev/v1alpha1\nkind: Trigger\nmetadata: {name: t}\nspec:\n  broker: default\n  subscriber: {uri: \"http://x/\"}\n  filters: [{cesql: \"type = \"}]\n",
            "spec.filters[0].cesql",
        ),
        (
            "apiVersion: eventing.weft.dev/v1alpha1\nkind: Trigger\nmetadata: {name: t}\nspec:\n  broker: default\n  subscriber: {uri: \"http://x/\"}\n  delivery: {backoffDelay: 1s}\n",
            "spec.delivery.backoffDelay",
        ),
        (
            "apiVersion: eventing.weft.dev/v1alpha1\nkind: Trigger\nmetadata: {name: t}\nspec:\n  broker: default\n  subscriber: {}\n",
            "spec.subscriber",
        ),
        (
            "apiVersion: eventing.weft.dev/v1alpha1\nkind: PingSource\nmetadata: {name: p}\nspec:\n  schedule: often\n  sink: {uri: \"http://x/\"}\n",
            "spec.schedule",
        ),
        (
            "apiVersion: eventing.weft.dev/v1alpha1\nkind: Broker\nmetadata: {name: b}\nspec: {backend: redis}\n",
            "spec.backend",
        ),
    ];
    for (i, (yaml, field)) in cases.iter().enumerate() {
        let path = p.dir.path().join(format!("bad{i}.yaml"));
        std::fs::write(&path, yaml).unwrap();
        let out = p.weft(&["apply", "-f", path.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(field), "case {i}: expected {field} in: {err}");
    }
    // A Trigger on a missing broker is stored but not Ready, with the reason.
    let t = "apiVersion: eventing.weft.dev/v1alpha1\nkind: Trigger\nmetadata: {name: t}\nspec:\n  broker: missing\n  subscriber: {uri: \"http://x/\"}\n";
    let path = p.dir.path().join("t.yaml");
    std::fs::write(&path, t).unwrap();
    let out = p.weft(&["apply", "-f", path.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("BrokerDoesNotExist"), "{out:?}");
}

#[path = "../../../eventbus/tests/all/tansu.rs"]
mod tansu;

#[test]
fn a_kafka_broker_delivers_in_order_per_partition_key() {
    let kafka = tansu::Tansu::start();
    let p = Platform::start_with(&["--kafka-bootstrap", &kafka.bootstrap]);
    let s = Subscriber::start();
    let yaml = format!(
        "apiVersion: eventing.weft.dev/v1alpha1
kind: Broker
metadata: {{name: orders}}
spec: {{backend: kafka}}
---
apiVersion: eventing.weft.dev/v1alpha1
kind: Trigger
metadata: {{name: in-order}}
spec:
  broker: orders
  ordering: ordered
  subscriber: {{uri: \"http://{a}/ordered\"}}
",
        a = s.addr
    );
    p.apply("kafka.yaml", &yaml);
    assert!(p.weft_ok(&["get", "brokers"]).contains("kafka"));
    // The first event of user-0 takes the subscriber 2 s: user-0's next event
    // must wait for it; the other users' events must not.
    let id = |i: usize| if i == 0 { "slow-0".to_string() } else { format!("e{i}") };
    // One batch, so the timing below measures the dispatcher, not 30 CLI
    // processes on a busy machine.
    let events: Vec<String> = (0..30)
        .map(|i| {
            format!(
                r#"{{"specversion":"1.0","id":"{}","type":"t","source":"/test","partitionkey":"user-{}"}}"#,
                id(i),
                i % 3
            )
        })
        .collect();
    let batch = [("content-type", "application/cloudevents-batch+json")];
    let (code, body) = http(&p.events, "POST", None, "/default/orders", &batch, &format!("[{}]", events.join(",")));
    assert_eq!(code, 202, "{body}");
    let got = s.wait("ordered", 30);
    let of = |user: usize| -> Vec<Got> {
        got.iter().filter(|g| g.ce("partitionkey") == format!("user-{user}")).cloned().collect()
    };
    for user in 0..3 {
        let ids: Vec<String> = of(user).iter().map(|g| g.ce("id")).collect();
        let want: Vec<String> = (0..30).filter(|i| i % 3 == user).map(id).collect();
        assert_eq!(ids, want, "user-{user}'s events in log order, each once");
    }
    let slow = of(0)[0].at;
    let held = of(0)[1].at - slow;
    assert!(held >= Duration::from_millis(1900), "user-0's second event came {held:?} after the slow one");
    for user in [1, 2] {
        let last = of(user)[9].at.saturating_duration_since(slow);
        assert!(last < Duration::from_millis(1900), "user-{user} was held back by user-0 ({last:?})");
    }
}

/// The official CloudEvents JavaScript SDK (eventbus/interop, installed by
/// scripts/install-deps.sh) sends in binary and structured mode; what weft
/// delivers is parsed and validated by the same SDK.
#[test]
fn the_official_javascript_sdk_sends_and_parses_what_weft_delivers() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../eventbus/interop");
    assert!(dir.join("node_modules/cloudevents").exists(), "run `bash scripts/install-deps.sh` to install the SDK");
    let p = Platform::start();
    let mut receiver = Command::new("node")
        .arg("interop.mjs")
        .arg("receive")
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(receiver.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let port = first.strip_prefix("listening ").expect("receiver port");
    let yaml = format!(
        "{BROKER}---\napiVersion: eventing.weft.dev/v1alpha1\nkind: Trigger\nmetadata: {{name: to-node}}\nspec:\n  broker: default\n  subscriber: {{uri: \"http://127.0.0.1:{port}/\"}}\n"
    );
    p.apply("node.yaml", &yaml);
    let url = format!("http://{}/default/default", p.events);
    let sent = Command::new("node").args(["interop.mjs", "send", &url, "js"]).current_dir(&dir).output().unwrap();
    assert!(sent.status.success(), "the SDK's events were refused: {}", String::from_utf8_lossy(&sent.stdout));
    let mut got = Vec::new();
    for _ in 0..2 {
        let line = lines.next().unwrap().unwrap();
        got.push(serde_json::from_str::<serde_json::Value>(&line).unwrap());
    }
    let _ = receiver.kill();
    let _ = receiver.wait();
    got.sort_by_key(|v| v["event"]["id"].as_str().map(String::from));
    for (v, mode) in got.iter().zip(["binary", "structured"]) {
        assert_eq!(v["ok"], true, "the SDK could not parse what weft delivered: {v}");
        let e = &v["event"];
        assert_eq!(e["id"], format!("js-{mode}"));
        assert_eq!(
            (e["type"].as_str(), e["source"].as_str(), e["subject"].as_str()),
            (Some("com.example.interop"), Some("/node-sdk"), Some(mode))
        );
        assert_eq!(e["partitionkey"], "k1", "extensions survive");
        assert_eq!(e["data"], serde_json::json!({"via": mode, "n": 42}), "data survives");
    }
}
