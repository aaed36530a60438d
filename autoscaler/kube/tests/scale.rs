//! The Kubernetes scaler against a mock API server: what it sends, and what it
//! reports back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use std::time::Duration;
use tower_test::mock::{Handle, pair};
use weft_autoscaler::{Replicas, ScaleTarget, Scaler, ScalerError};
use weft_autoscaler_kube::KubeScaler;

type ApiServer = Handle<Request<Body>, Response<Body>>;

fn target() -> ScaleTarget {
    ScaleTarget { namespace: "default".into(), revision: "hello-00001".into() }
}

fn start() -> (std::sync::Arc<KubeScaler>, ApiServer) {
    let (service, handle) = pair::<Request<Body>, Response<Body>>();
    let (scaler, worker) = KubeScaler::new(Client::new(service, "default"));
    tokio::spawn(worker);
    (scaler, handle)
}

/// Expects one request, checks method and path, returns its JSON body, and answers.
async fn expect(api: &mut ApiServer, method: Method, path: &str, status: StatusCode, reply: Value) -> Value {
    let (req, send) = api.next_request().await.expect("the scaler called the API server");
    assert_eq!(req.method(), method);
    assert_eq!(req.uri().path(), path, "{}", req.uri());
    let body = req.into_body().collect_bytes().await.unwrap();
    let sent = if body.is_empty() { Value::Null } else { serde_json::from_slice(&body).unwrap() };
    send.send_response(
        Response::builder().status(status).body(Body::from(serde_json::to_vec(&reply).unwrap())).unwrap(),
    );
    sent
}

const SCALE: &str = "/apis/apps/v1/namespaces/default/deployments/hello-00001/scale";
const STATUS: &str = "/apis/apps/v1/namespaces/default/deployments/hello-00001/status";

fn scale(replicas: u32) -> Value {
    json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "hello-00001", "namespace": "default"},
           "spec": {"replicas": replicas}, "status": {"replicas": replicas}})
}

fn deployment(replicas: u32, ready: u32) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "hello-00001", "namespace": "default"},
           "spec": {"selector": {}, "template": {}}, "status": {"replicas": replicas, "readyReplicas": ready}})
}

async fn settled(scaler: &KubeScaler, want: Replicas) {
    for _ in 0..100 {
        if scaler.replicas(&target()).ok() == Some(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("replicas never became {want:?}: {:?}", scaler.replicas(&target()));
}

#[tokio::test]
async fn patches_the_scale_subresource_and_reads_the_deployment_status() {
    let (scaler, mut api) = start();
    scaler.set_replicas(&target(), 3).unwrap();
    let sent = expect(&mut api, Method::PATCH, SCALE, StatusCode::OK, scale(3)).await;
    assert_eq!(sent, json!({"spec": {"replicas": 3}}));
    expect(&mut api, Method::GET, STATUS, StatusCode::OK, deployment(3, 2)).await;
    settled(&scaler, Replicas { desired: 3, actual: 3, ready: 2 }).await;
}

#[tokio::test]
async fn a_burst_of_decisions_becomes_one_patch_with_the_latest_count() {
    let (scaler, mut api) = start();
    for n in [2, 4, 5] {
        scaler.set_replicas(&target(), n).unwrap();
    }
    let sent = expect(&mut api, Method::PATCH, SCALE, StatusCode::OK, scale(5)).await;
    assert_eq!(sent["spec"]["replicas"], 5);
    expect(&mut api, Method::GET, STATUS, StatusCode::OK, deployment(5, 5)).await;
    settled(&scaler, Replicas { desired: 5, actual: 5, ready: 5 }).await;
    // Asking again for what is already there calls nothing.
    scaler.set_replicas(&target(), 5).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(tokio::time::timeout(Duration::from_millis(50), api.next_request()).await.is_err());
}

#[tokio::test]
async fn an_error_is_reported_and_the_patch_retried() {
    let (scaler, mut api) = start();
    assert!(matches!(scaler.replicas(&target()), Err(ScalerError::UnknownTarget(_))));
    scaler.set_replicas(&target(), 1).unwrap();
    let not_found = json!({"apiVersion": "v1", "kind": "Status", "status": "Failure",
                           "message": "deployments.apps \"hello-00001\" not found", "reason": "NotFound", "code": 404});
    expect(&mut api, Method::PATCH, SCALE, StatusCode::NOT_FOUND, not_found).await;
    let err = loop {
        match scaler.replicas(&target()) {
            Err(e) => break e,
            Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    };
    assert!(err.to_string().contains("not found"), "{err}");
    // The worker tries again on its own; this time the Deployment exists.
    expect(&mut api, Method::PATCH, SCALE, StatusCode::OK, scale(1)).await;
    expect(&mut api, Method::GET, STATUS, StatusCode::OK, deployment(1, 1)).await;
    settled(&scaler, Replicas { desired: 1, actual: 1, ready: 1 }).await;
}
