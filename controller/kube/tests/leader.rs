//! Leader election against a mock API server: create, follow, take over an
//! expired Lease with the version read, and lose the race cleanly.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use http::{Method, Request, Response, StatusCode};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use std::time::Duration;
use tower_test::mock::{Handle, pair};
use weft_controller_kube::leader::{Elector, Held};

type ApiServer = Handle<Request<Body>, Response<Body>>;

const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/weft-system/leases/weft-controller";
const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/weft-system/leases";

fn elector() -> (Elector, ApiServer) {
    let (service, handle) = pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    (Elector::new(client, "weft-system", "weft-controller", "pod-a", Duration::from_secs(15)), handle)
}

async fn answer(api: &mut ApiServer, method: Method, path: &str, status: StatusCode, reply: Value) -> Value {
    let (req, send) = api.next_request().await.expect("a call");
    assert_eq!((req.method(), req.uri().path()), (&method, path));
    let body = req.into_body().collect_bytes().await.unwrap();
    send.send_response(
        Response::builder().status(status).body(Body::from(serde_json::to_vec(&reply).unwrap())).unwrap(),
    );
    if body.is_empty() { Value::Null } else { serde_json::from_slice(&body).unwrap() }
}

fn lease(holder: &str, renewed_ago: SignedDuration, version: &str) -> Value {
    let renewed = serde_json::to_value(MicroTime(Timestamp::now() - renewed_ago)).unwrap();
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
           "metadata": {"name": "weft-controller", "namespace": "weft-system", "resourceVersion": version},
           "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15, "renewTime": renewed, "leaseTransitions": 2}})
}

fn status(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code})
}

#[tokio::test]
async fn the_first_candidate_creates_the_lease() {
    let (e, mut api) = elector();
    let task = tokio::spawn(async move { e.try_acquire().await.unwrap() });
    answer(&mut api, Method::GET, LEASE, StatusCode::NOT_FOUND, status(404, "NotFound")).await;
    let sent =
        answer(&mut api, Method::POST, LEASES, StatusCode::CREATED, lease("pod-a", SignedDuration::ZERO, "1")).await;
    assert_eq!(task.await.unwrap(), Held::ByUs);
    assert_eq!(sent["spec"]["holderIdentity"], "pod-a");
    assert_eq!(sent["spec"]["leaseDurationSeconds"], 15);
}

#[tokio::test]
async fn a_fresh_lease_of_another_replica_is_followed_without_a_write() {
    let (e, mut api) = elector();
    let task = tokio::spawn(async move { e.try_acquire().await.unwrap() });
    answer(&mut api, Method::GET, LEASE, StatusCode::OK, lease("pod-b", SignedDuration::from_secs(3), "5")).await;
    assert_eq!(task.await.unwrap(), Held::ByOther("pod-b".into()));
}

#[tokio::test]
async fn an_expired_lease_is_taken_with_the_version_read_and_a_lost_race_is_following() {
    let (e, mut api) = elector();
    let e = std::sync::Arc::new(e);
    let e2 = e.clone();
    let task = tokio::spawn(async move { e2.try_acquire().await.unwrap() });
    answer(&mut api, Method::GET, LEASE, StatusCode::OK, lease("pod-b", SignedDuration::from_secs(60), "7")).await;
    let sent = answer(&mut api, Method::PUT, LEASE, StatusCode::OK, lease("pod-a", SignedDuration::ZERO, "8")).await;
    assert_eq!(task.await.unwrap(), Held::ByUs);
    assert_eq!(sent["metadata"]["resourceVersion"], "7", "the write is conditional on what was read");
    assert_eq!(sent["spec"]["holderIdentity"], "pod-a");
    assert_eq!(sent["spec"]["leaseTransitions"], 3);

    // Another replica wrote first: the API server answers 409 Conflict.
    let task = tokio::spawn(async move { e.try_acquire().await.unwrap() });
    answer(&mut api, Method::GET, LEASE, StatusCode::OK, lease("pod-b", SignedDuration::from_secs(60), "9")).await;
    answer(&mut api, Method::PUT, LEASE, StatusCode::CONFLICT, status(409, "Conflict")).await;
    assert!(matches!(task.await.unwrap(), Held::ByOther(_)));
}
