//! The reconcilers against a mock API server (`tower-test`): each scenario
//! lists the calls the controller must make, in order, with the answers the
//! API server gives, as kube-rs's controller-rs fixtures do.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use kube::runtime::controller::Action;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tower_test::mock::{Handle, pair};
use weft_controller::RouteBase;
use weft_controller::cluster::ClusterSettings;
use weft_controller_kube::{Context, Error, error_policy, function, metrics::Metrics, revision};
use weft_crds::{Function, Revision};

type ApiServer = Handle<Request<Body>, Response<Body>>;

fn context() -> (Arc<Context>, ApiServer, Registry) {
    let (service, handle) = pair::<Request<Body>, Response<Body>>();
    let mut registry = Registry::default();
    let settings = ClusterSettings {
        image: "weft:test".into(),
        sidecar: "weft-gateway.weft-system:80".into(),
        events: "http://weft-eventbus.weft-system:80".into(),
        container_concurrency: 0,
        insecure_registries: Vec::new(),
    };
    let base = RouteBase { domain: "example.com".into(), port: 80 };
    let metrics = Metrics::register(&mut registry);
    let ctx = Context::new(Client::new(service, "default"), settings, base, Default::default(), metrics);
    (Arc::new(ctx), handle, registry)
}

/// One expected call: method, path, and the answer.
struct Call {
    method: Method,
    path: &'static str,
    status: StatusCode,
    reply: Value,
}

fn call(method: Method, path: &'static str, status: StatusCode, reply: Value) -> Call {
    Call { method, path, status, reply }
}

/// Answers `calls` in order; returns what each request sent (query, JSON body).
fn scenario(mut api: ApiServer, calls: Vec<Call>) -> tokio::task::JoinHandle<Vec<(String, Value)>> {
    tokio::spawn(async move {
        let mut sent = Vec::new();
        for c in calls {
            let (req, send) = api.next_request().await.expect("the controller made the call");
            assert_eq!((req.method(), req.uri().path()), (&c.method, c.path), "{}", req.uri());
            let query = req.uri().query().unwrap_or("").to_string();
            let body = req.into_body().collect_bytes().await.unwrap();
            let body = if body.is_empty() { Value::Null } else { serde_json::from_slice(&body).unwrap() };
            sent.push((query, body));
            let reply = serde_json::to_vec(&c.reply).unwrap();
            send.send_response(Response::builder().status(c.status).body(Body::from(reply)).unwrap());
        }
        sent
    })
}

/// Runs a reconcile with a bound, so an unexpected extra call fails the test
/// instead of hanging it.
async fn bounded<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f).await.expect("the reconcile made an unexpected call")
}

const REVISIONS: &str = "/apis/serving.weft.dev/v1alpha1/namespaces/default/revisions";
const FUNCTION_STATUS: &str = "/apis/serving.weft.dev/v1alpha1/namespaces/default/functions/hello/status";
const REVISION_STATUS: &str = "/apis/serving.weft.dev/v1alpha1/namespaces/default/revisions/hello-00001/status";
const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/default/deployments";
const DEPLOYMENT: &str = "/apis/apps/v1/namespaces/default/deployments/hello-00001";
const SERVICE: &str = "/api/v1/namespaces/default/services/hello-00001";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/default/events";

fn function(traffic: Value, status: Value) -> Function {
    serde_json::from_value(json!({
        "apiVersion": "serving.weft.dev/v1alpha1", "kind": "Function",
        "metadata": {"name": "hello", "namespace": "default", "uid": "fn-uid", "generation": 1},
        "spec": {"template": {"spec": {"wasm": {"url": "https://m.example.com/hello.wasm"}}}, "traffic": traffic},
        "status": status,
    }))
    .unwrap()
}

fn revision_json(n: u32, url: &str, ready: bool) -> Value {
    json!({
        "apiVersion": "serving.weft.dev/v1alpha1", "kind": "Revision",
        "metadata": {"name": format!("hello-0000{n}"), "namespace": "default", "uid": format!("rev-{n}"),
                     "labels": {"serving.weft.dev/function": "hello", "serving.weft.dev/configurationGeneration": "1"}},
        "spec": {"wasm": {"url": url}},
        "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "Unknown" }}]},
    })
}

fn list(items: Vec<Value>) -> Value {
    json!({"apiVersion": "serving.weft.dev/v1alpha1", "kind": "RevisionList", "metadata": {}, "items": items})
}

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"].as_array().unwrap().iter().find(|c| c["type"] == type_).unwrap()
}

#[tokio::test]
async fn a_new_function_gets_its_first_revision_and_a_status() {
    let (ctx, api, _) = context();
    let f = function(json!([]), Value::Null);
    let server = scenario(
        api,
        vec![
            call(Method::GET, REVISIONS, StatusCode::OK, list(vec![])),
            call(
                Method::POST,
                REVISIONS,
                StatusCode::CREATED,
                revision_json(1, "https://m.example.com/hello.wasm", false),
            ),
            call(Method::PATCH, FUNCTION_STATUS, StatusCode::OK, serde_json::to_value(&f).unwrap()),
        ],
    );
    let action = bounded(function::reconcile(Arc::new(f), ctx)).await.unwrap();
    assert_eq!(action, Action::await_change());
    let sent = server.await.unwrap();
    assert_eq!(sent[0].0, "&labelSelector=serving.weft.dev%2Ffunction%3Dhello");
    let rev = &sent[1].1;
    assert_eq!(rev["metadata"]["name"], "hello-00001");
    assert_eq!(rev["metadata"]["ownerReferences"][0]["uid"], "fn-uid", "deleting the Function deletes it");
    assert_eq!(rev["spec"]["wasm"]["url"], "https://m.example.com/hello.wasm");
    assert!(sent[2].0.contains("fieldManager=weft-controller") && sent[2].0.contains("force=true"), "{}", sent[2].0);
    let status = &sent[2].1["status"];
    assert_eq!(sent[2].1["kind"], "Function", "server-side apply names the kind");
    assert_eq!(status["latestCreatedRevisionName"], "hello-00001");
    assert_eq!(status["url"], "http://hello.default.example.com");
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(condition(status, "Ready")["status"], "Unknown");
    assert_eq!(condition(status, "ConfigurationsReady")["reason"], "RevisionDeploying");
}

#[tokio::test]
async fn a_template_change_makes_the_next_revision() {
    let (ctx, api, _) = context();
    let f = function(json!([]), Value::Null);
    let old = revision_json(1, "https://m.example.com/old.wasm", true);
    let server = scenario(
        api,
        vec![
            call(Method::GET, REVISIONS, StatusCode::OK, list(vec![old])),
            call(
                Method::POST,
                REVISIONS,
                StatusCode::CREATED,
                revision_json(2, "https://m.example.com/hello.wasm", false),
            ),
            call(Method::PATCH, FUNCTION_STATUS, StatusCode::OK, serde_json::to_value(&f).unwrap()),
        ],
    );
    bounded(function::reconcile(Arc::new(f), ctx)).await.unwrap();
    let sent = server.await.unwrap();
    assert_eq!(sent[1].1["metadata"]["name"], "hello-00002");
    let status = &sent[2].1["status"];
    assert_eq!(status["latestCreatedRevisionName"], "hello-00002");
    // The old revision keeps serving until the new one is ready.
    assert_eq!(status["latestReadyRevisionName"], "hello-00001");
    assert_eq!(status["traffic"], json!([{"latestRevision": true, "percent": 100, "revisionName": "hello-00001"}]));
}

#[tokio::test]
async fn a_traffic_change_updates_the_routes_and_a_settled_status_is_not_rewritten() {
    let (ctx, api, _) = context();
    let traffic = json!([{"revisionName": "hello-00001", "percent": 90}, {"latestRevision": true, "percent": 10, "tag": "canary"}]);
    let url = "https://m.example.com/hello.wasm";
    let f = function(traffic.clone(), Value::Null);
    let revs = vec![revision_json(1, url, true)];
    let server = scenario(
        api,
        vec![
            call(Method::GET, REVISIONS, StatusCode::OK, list(revs.clone())),
            call(Method::PATCH, FUNCTION_STATUS, StatusCode::OK, serde_json::to_value(&f).unwrap()),
        ],
    );
    let (ctx2, api2, _) = context();
    bounded(function::reconcile(Arc::new(f), ctx)).await.unwrap();
    let sent = server.await.unwrap();
    let status = sent[1].1["status"].clone();
    let routes: Vec<(Value, Value, Value)> = status["traffic"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["revisionName"].clone(), t["percent"].clone(), t["url"].clone()))
        .collect();
    assert_eq!(
        routes,
        [
            (json!("hello-00001"), json!(90), Value::Null),
            (json!("hello-00001"), json!(10), json!("http://canary-hello.default.example.com"))
        ]
    );
    assert_eq!(condition(&status, "Ready")["status"], "True");

    // The next pass sees that status: nothing to write, only the list.
    let settled = function(traffic, status);
    let server = scenario(api2, vec![call(Method::GET, REVISIONS, StatusCode::OK, list(revs))]);
    bounded(function::reconcile(Arc::new(settled), ctx2)).await.unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn a_missing_revision_in_traffic_is_reported_in_routes_ready() {
    let (ctx, api, _) = context();
    let f = function(json!([{"revisionName": "hello-00007", "percent": 100}]), Value::Null);
    let server = scenario(
        api,
        vec![
            call(
                Method::GET,
                REVISIONS,
                StatusCode::OK,
                list(vec![revision_json(1, "https://m.example.com/hello.wasm", true)]),
            ),
            event_recorded(),
            call(Method::PATCH, FUNCTION_STATUS, StatusCode::OK, serde_json::to_value(&f).unwrap()),
        ],
    );
    bounded(function::reconcile(Arc::new(f.clone()), ctx)).await.unwrap();
    let sent = server.await.unwrap();
    assert_eq!((sent[1].1["reason"].clone(), sent[1].1["type"].clone()), (json!("RevisionMissing"), json!("Warning")));
    assert_eq!(sent[1].1["regarding"]["kind"], "Function");
    let status = &sent[2].1["status"];
    let routes = condition(status, "RoutesReady");
    assert_eq!((&routes["status"], &routes["reason"]), (&json!("False"), &json!("RevisionMissing")));
    assert!(routes["message"].as_str().unwrap().contains("hello-00007"));
    assert_eq!(condition(status, "Ready")["reason"], "RevisionMissing");

    // Still missing on the next pass: no second Event, no status write.
    let (ctx, api, _) = context();
    let mut again = f;
    again.status = Some(serde_json::from_value(status.clone()).unwrap());
    let revs = list(vec![revision_json(1, "https://m.example.com/hello.wasm", true)]);
    let server = scenario(api, vec![call(Method::GET, REVISIONS, StatusCode::OK, revs)]);
    bounded(function::reconcile(Arc::new(again), ctx)).await.unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn an_api_error_fails_the_reconcile_and_backs_off_per_object() {
    let (ctx, api, registry) = context();
    let f = Arc::new(function(json!([]), Value::Null));
    let forbidden = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden",
                           "message": "revisions is forbidden", "code": 403});
    let server = scenario(api, vec![call(Method::GET, REVISIONS, StatusCode::FORBIDDEN, forbidden)]);
    let err = bounded(function::reconcile(f.clone(), ctx.clone())).await.unwrap_err();
    server.await.unwrap();
    assert!(matches!(err, Error::Kube(_)));
    assert_eq!(err.label(), "Forbidden");
    assert_eq!(error_policy(f.clone(), &err, ctx.clone()), Action::requeue(Duration::from_secs(1)));
    assert_eq!(error_policy(f, &err, ctx), Action::requeue(Duration::from_secs(2)));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(
        text.contains(r#"weft_controller_reconcile_errors_total{resource="Function",error="Forbidden"} 2"#),
        "{text}"
    );
    assert!(text.contains(r#"weft_controller_reconcile_runs_total{resource="Function",result="error"} 1"#), "{text}");
}

fn rev(spec: Value, status: Value) -> Revision {
    let mut v = revision_json(1, "", false);
    v["spec"] = spec;
    v["status"] = status;
    v["metadata"]["generation"] = json!(1);
    serde_json::from_value(v).unwrap()
}

fn deployment(replicas: i32, ready: i32) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "hello-00001", "namespace": "default", "generation": 1},
           "spec": {"replicas": replicas, "selector": {}, "template": {}},
           "status": {"observedGeneration": 1, "replicas": replicas, "readyReplicas": ready}})
}

/// The Service's server-side apply, answered.
fn service_applied() -> Call {
    let reply = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "hello-00001"}});
    call(Method::PATCH, SERVICE, StatusCode::OK, reply)
}

/// A Warning Event's creation, answered.
fn event_recorded() -> Call {
    let reply =
        json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"}, "eventTime": null});
    call(Method::POST, EVENTS, StatusCode::CREATED, reply)
}

fn not_found() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404})
}

#[tokio::test]
async fn a_new_revision_gets_a_deployment_at_its_initial_scale_and_a_service() {
    let (ctx, api, _) = context();
    let r = rev(json!({"wasm": {"url": "https://m.example.com/hello.wasm"}}), Value::Null);
    let server = scenario(
        api,
        vec![
            call(Method::GET, DEPLOYMENT, StatusCode::NOT_FOUND, not_found()),
            call(Method::POST, DEPLOYMENTS, StatusCode::CREATED, deployment(1, 0)),
            service_applied(),
            call(Method::PATCH, REVISION_STATUS, StatusCode::OK, serde_json::to_value(&r).unwrap()),
        ],
    );
    bounded(revision::reconcile(Arc::new(r), ctx)).await.unwrap();
    let sent = server.await.unwrap();
    let d = &sent[1].1;
    assert_eq!(d["spec"]["replicas"], 1, "Knative's default initial scale");
    assert_eq!(d["metadata"]["ownerReferences"][0]["kind"], "Revision");
    assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["image"], "weft:test");
    assert!(sent[2].0.contains("fieldManager=weft-controller"), "the Service is applied: {}", sent[2].0);
    assert_eq!(sent[2].1["spec"]["selector"]["serving.weft.dev/revision"], "hello-00001");
    let status = &sent[3].1["status"];
    assert_eq!((status["desiredReplicas"].clone(), status["readyReplicas"].clone()), (json!(1), json!(0)));
    assert_eq!(condition(status, "Ready")["reason"], "Deploying");
}

#[tokio::test]
async fn an_existing_deployment_is_applied_without_replicas_and_its_status_read_back() {
    let (ctx, api, _) = context();
    let r = rev(json!({"wasm": {"url": "https://m.example.com/hello.wasm"}}), Value::Null);
    let server = scenario(
        api,
        vec![
            call(Method::GET, DEPLOYMENT, StatusCode::OK, deployment(3, 2)),
            call(Method::PATCH, DEPLOYMENT, StatusCode::OK, deployment(3, 2)),
            service_applied(),
            call(Method::PATCH, REVISION_STATUS, StatusCode::OK, serde_json::to_value(&r).unwrap()),
        ],
    );
    bounded(revision::reconcile(Arc::new(r), ctx)).await.unwrap();
    let sent = server.await.unwrap();
    assert!(sent[1].1["spec"].get("replicas").is_none(), "the autoscaler owns replicas: {}", sent[1].1["spec"]);
    let status = &sent[3].1["status"];
    assert_eq!((status["desiredReplicas"].clone(), status["readyReplicas"].clone()), (json!(3), json!(2)));
    assert_eq!(condition(status, "Ready")["status"], "True");
    assert_eq!(condition(status, "Active")["status"], "True");
}

#[tokio::test]
async fn a_revision_that_cannot_run_says_why_and_records_an_event_once() {
    let (ctx, api, _) = context();
    let digest = format!("sha256:{}", "ab".repeat(32));
    let spec = json!({"wasm": {"path": "hello.wasm", "digest": digest}});
    let r = rev(spec.clone(), Value::Null);
    let server = scenario(
        api,
        vec![event_recorded(), call(Method::PATCH, REVISION_STATUS, StatusCode::OK, serde_json::to_value(&r).unwrap())],
    );
    bounded(revision::reconcile(Arc::new(r), ctx)).await.unwrap();
    let sent = server.await.unwrap();
    assert_eq!(sent[0].1["reason"], "ModuleUnavailable");
    assert_eq!(sent[0].1["type"], "Warning");
    assert_eq!(sent[0].1["regarding"]["name"], "hello-00001");
    let status = sent[1].1["status"].clone();
    let ready = condition(&status, "Ready");
    assert_eq!((&ready["status"], &ready["reason"]), (&json!("False"), &json!("ModuleUnavailable")));
    assert!(ready["message"].as_str().unwrap().contains("wasm.url or wasm.configMap"));

    // Already reported: the next pass writes nothing and records no Event.
    let (ctx, api, _) = context();
    let server = scenario(api, vec![]);
    bounded(revision::reconcile(Arc::new(rev(spec, status)), ctx)).await.unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn a_stuck_rollout_fails_the_revision_with_the_deployments_reason() {
    let (ctx, api, _) = context();
    let r = rev(json!({"image": "example.com/app:1"}), Value::Null);
    let mut stuck = deployment(1, 0);
    stuck["status"]["conditions"] = json!([{"type": "Progressing", "status": "False",
        "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet \"hello-00001-7d\" has timed out progressing."}]);
    let server = scenario(
        api,
        vec![
            call(Method::GET, DEPLOYMENT, StatusCode::OK, stuck.clone()),
            call(Method::PATCH, DEPLOYMENT, StatusCode::OK, stuck),
            service_applied(),
            call(Method::PATCH, REVISION_STATUS, StatusCode::OK, serde_json::to_value(&r).unwrap()),
        ],
    );
    bounded(revision::reconcile(Arc::new(r), ctx)).await.unwrap();
    let status = &server.await.unwrap()[3].1["status"];
    let ready = condition(status, "Ready");
    assert_eq!((&ready["status"], &ready["reason"]), (&json!("False"), &json!("ProgressDeadlineExceeded")));
}

/// `o` with a deletion timestamp and the foreground-deletion finalizer, as
/// the API server leaves an owner while its dependents are removed.
fn being_deleted<T: serde::Serialize + serde::de::DeserializeOwned>(o: T) -> T {
    let mut v = serde_json::to_value(o).unwrap();
    v["metadata"]["deletionTimestamp"] = json!("2026-11-25T00:00:00Z");
    v["metadata"]["finalizers"] = json!(["foregroundDeletion"]);
    serde_json::from_value(v).unwrap()
}

/// Answers any call (there should be none), so a test can count them.
fn no_calls_expected(mut api: ApiServer) -> tokio::task::JoinHandle<Vec<String>> {
    tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some((req, send)) = api.next_request().await {
            seen.push(format!("{} {}", req.method(), req.uri().path()));
            send.send_response(Response::builder().status(StatusCode::NOT_FOUND).body(Body::from(vec![])).unwrap());
        }
        seen
    })
}

#[tokio::test]
async fn a_function_being_deleted_is_left_to_the_garbage_collector() {
    let (ctx, api, _) = context();
    let f: Function = being_deleted(function(json!([]), Value::Null));
    let server = no_calls_expected(api);
    let action = bounded(function::reconcile(Arc::new(f), ctx.clone())).await.unwrap();
    assert_eq!(action, Action::await_change());
    drop(ctx);
    let seen = server.await.unwrap();
    assert!(seen.is_empty(), "no revision made and no status written while its Revisions are removed: {seen:?}");
}

#[tokio::test]
async fn a_revision_being_deleted_does_not_bring_back_its_deployment() {
    let (ctx, api, _) = context();
    let r: Revision = being_deleted(rev(json!({"wasm": {"url": "https://m.example.com/hello.wasm"}}), Value::Null));
    let server = no_calls_expected(api);
    bounded(revision::reconcile(Arc::new(r), ctx.clone())).await.unwrap();
    drop(ctx);
    let seen = server.await.unwrap();
    assert!(seen.is_empty(), "its Deployment and Service go by owner reference: {seen:?}");
}
