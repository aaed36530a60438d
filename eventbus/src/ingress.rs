//! The broker ingress: `POST /{namespace}/{broker}` with CloudEvents in binary,
//! structured or batched mode. 202 only once every event of the request is
//! durable in the broker's log; 400 naming the bad attribute; 404 for an
//! unknown broker; 503 with `Retry-After` when the log is busy or down.

use crate::cloudevent::{EventError, decode_http, to_record};
use crate::dispatch::Publish;
use crate::log::{EventLog, LogError};
use crate::metrics::{BrokerLabels, EventbusMetrics, RejectLabels};
use crate::trace::Traces;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use cloudevents::Event;
use std::collections::HashMap;
use std::sync::Arc;
use tracing::Instrument;

/// Largest request body (a batch).
pub const MAX_BODY: usize = 8 << 20;
/// What a 503 asks the producer to wait, seconds.
const RETRY_AFTER_SECS: &str = "1";

/// A broker the ingress can append to.
#[derive(Clone)]
pub struct BrokerLog {
    pub topic: String,
    pub log: Arc<dyn EventLog>,
}

/// Brokers by `namespace/name`, replaced as a whole when brokers change.
pub struct Ingress {
    brokers: ArcSwap<HashMap<String, BrokerLog>>,
    traces: Arc<Traces>,
    metrics: EventbusMetrics,
}

#[derive(Debug, thiserror::Error)]
pub enum IngressError {
    #[error("no broker {0}")]
    UnknownBroker(String),
    #[error("{0}")]
    Invalid(#[from] EventError),
    #[error("{0}")]
    Log(#[from] LogError),
}

impl Ingress {
    pub fn new(traces: Arc<Traces>, metrics: EventbusMetrics) -> Self {
        Self { brokers: ArcSwap::from_pointee(HashMap::new()), traces, metrics }
    }

    pub fn set_brokers(&self, brokers: HashMap<String, BrokerLog>) {
        self.brokers.store(Arc::new(brokers));
    }

    /// Appends `events` to `broker`'s log; returns their offsets once durable.
    pub async fn append(&self, broker: &str, events: &[Event]) -> Result<Vec<u64>, IngressError> {
        let brokers = self.brokers.load_full();
        let b = brokers.get(broker).ok_or_else(|| IngressError::UnknownBroker(broker.to_string()))?;
        self.append_to(broker, b, events).await
    }

    async fn append_to(&self, broker: &str, b: &BrokerLog, events: &[Event]) -> Result<Vec<u64>, IngressError> {
        let records = events
            .iter()
            .map(|e| to_record(e).map_err(|e| EventError::Body(format!("encode: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let offsets = b.log.append(&b.topic, records).await?;
        for (event, offset) in events.iter().zip(&offsets) {
            self.traces.ingested(broker, event, *offset);
        }
        self.metrics.ingested.get_or_create(&BrokerLabels { broker: broker.to_string() }).inc_by(events.len() as u64);
        Ok(offsets)
    }

    pub fn router(self: Arc<Self>) -> Router {
        Router::new().route("/{ns}/{broker}", post(ingest)).layer(DefaultBodyLimit::max(MAX_BODY)).with_state(self)
    }

    fn reject(&self, broker: &str, reason: &'static str) {
        self.metrics.rejected.get_or_create(&RejectLabels { broker: broker.to_string(), reason }).inc();
    }
}

impl IngressError {
    /// Whether the same append may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Log(e) if e.is_retryable())
    }
}

#[async_trait]
impl Publish for Ingress {
    async fn publish(&self, broker: &str, event: Event) -> Result<(), IngressError> {
        self.append(broker, std::slice::from_ref(&event)).await.map(drop)
    }
}

async fn ingest(
    State(ingress): State<Arc<Ingress>>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let broker = format!("{ns}/{name}");
    let span = tracing::debug_span!("ingress", %broker);
    ingest_in(&ingress, broker, &headers, &body).instrument(span).await
}

async fn ingest_in(ingress: &Ingress, broker: String, headers: &HeaderMap, body: &Bytes) -> Response {
    let brokers = ingress.brokers.load_full();
    let Some(b) = brokers.get(&broker) else {
        // Not labelled by the requested name: clients choose it, and a metric
        // label per made-up broker would grow without bound.
        ingress.reject("", "unknown_broker");
        return error(StatusCode::NOT_FOUND, format!("no broker {broker}"));
    };
    let events = match decode_http(headers, body) {
        Ok(e) if e.is_empty() => return StatusCode::ACCEPTED.into_response(), // an empty batch
        Ok(e) => e,
        Err(e) => {
            ingress.reject(&broker, "invalid");
            return error(StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    match ingress.append_to(&broker, b, &events).await {
        Ok(_) => StatusCode::ACCEPTED.into_response(),
        Err(e) => refused(ingress, &broker, e),
    }
}

fn refused(ingress: &Ingress, broker: &str, e: IngressError) -> Response {
    match e {
        IngressError::UnknownBroker(_) => {
            ingress.reject(broker, "unknown_broker");
            error(StatusCode::NOT_FOUND, e.to_string())
        }
        IngressError::Invalid(_) => {
            ingress.reject(broker, "invalid");
            error(StatusCode::BAD_REQUEST, e.to_string())
        }
        IngressError::Log(LogError::TooLarge(..)) => {
            ingress.reject(broker, "too_large");
            error(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
        }
        IngressError::Log(ref l) if l.is_retryable() => {
            let reason = if matches!(l, LogError::Full(_)) { "busy" } else { "unavailable" };
            ingress.reject(broker, reason);
            tracing::warn!(%broker, error = %e, "event refused: log busy or unavailable");
            let mut r = error(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
            r.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static(RETRY_AFTER_SECS));
            r
        }
        IngressError::Log(_) => {
            ingress.reject(broker, "unavailable");
            tracing::error!(%broker, error = %e, "event refused");
            error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
    }
}

fn error(code: StatusCode, message: String) -> Response {
    (code, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{Consumer, Initial};
    use axum::body::Body;
    use tower::ServiceExt;

    /// A log that refuses every append with the given error.
    struct Refusing(fn() -> LogError);

    #[async_trait]
    impl EventLog for Refusing {
        async fn ensure_topic(&self, _: &str) -> Result<(), LogError> {
            Ok(())
        }
        async fn append(&self, _: &str, _: Vec<Bytes>) -> Result<Vec<u64>, LogError> {
            Err((self.0)())
        }
        async fn consumer(&self, _: &str, _: &str, _: Initial) -> Result<Box<dyn Consumer>, LogError> {
            Err((self.0)())
        }
        async fn end_offset(&self, _: &str) -> Result<u64, LogError> {
            Ok(0)
        }
        async fn delete_topic(&self, _: &str) -> Result<(), LogError> {
            Err((self.0)())
        }
    }

    async fn post_to(log: Arc<dyn EventLog>) -> (StatusCode, Option<String>, String) {
        let ingress = Arc::new(Ingress::new(
            Arc::new(Traces::new(std::time::Duration::from_secs(60), 10)),
            EventbusMetrics::detached(),
        ));
        ingress.set_brokers([("ns/b".to_string(), BrokerLog { topic: "t".into(), log })].into());
        let req = axum::http::Request::post("/ns/b")
            .header("ce-specversion", "1.0")
            .header("ce-id", "1")
            .header("ce-type", "t")
            .header("ce-source", "/s")
            .body(Body::from("x"))
            .unwrap();
        let resp = ingress.router().oneshot(req).await.unwrap();
        let retry = resp.headers().get(header::RETRY_AFTER).map(|v| v.to_str().unwrap().to_string());
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        (status, retry, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn unknown_brokers_are_404_and_do_not_make_a_metric_label_each() {
        let metrics = EventbusMetrics::detached();
        let ingress =
            Arc::new(Ingress::new(Arc::new(Traces::new(std::time::Duration::from_secs(60), 10)), metrics.clone()));
        for name in ["a", "b", "c"] {
            let req = axum::http::Request::post(format!("/ns/{name}")).body(Body::empty()).unwrap();
            assert_eq!(ingress.clone().router().oneshot(req).await.unwrap().status(), StatusCode::NOT_FOUND);
        }
        let unknown = RejectLabels { broker: String::new(), reason: "unknown_broker" };
        assert_eq!(metrics.rejected.get_or_create(&unknown).get(), 3);
        let made_up = RejectLabels { broker: "ns/a".into(), reason: "unknown_broker" };
        assert_eq!(metrics.rejected.get_or_create(&made_up).get(), 0);
    }

    #[tokio::test]
    async fn a_busy_or_unavailable_log_is_a_503_with_retry_after() {
        let (code, retry, body) = post_to(Arc::new(Refusing(|| LogError::Full(8192)))).await;
        assert_eq!((code, retry.as_deref()), (StatusCode::SERVICE_UNAVAILABLE, Some("1")), "{body}");
        assert!(body.contains("busy"), "{body}");
        let (code, retry, body) = post_to(Arc::new(Refusing(|| LogError::Unavailable("broker down".into())))).await;
        assert_eq!((code, retry.as_deref()), (StatusCode::SERVICE_UNAVAILABLE, Some("1")), "{body}");
        assert!(body.contains("broker down"), "{body}");
        let (code, retry, _) = post_to(Arc::new(Refusing(|| LogError::TooLarge(2 << 20, 1 << 20)))).await;
        assert_eq!((code, retry), (StatusCode::PAYLOAD_TOO_LARGE, None));
    }
}
