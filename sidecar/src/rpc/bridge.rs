//! The HTTP-to-Dubbo bridge: `POST /_rpc/dubbo/<interface>/<method>` with a
//! JSON array of arguments calls that Dubbo method by interface name, through
//! the same routing, revision split, activator, pooled connections and
//! metrics as a Dubbo client's frame, and answers the result as JSON. This is
//! how a wasm guest (which has HTTP out through the sidecar, not sockets) or
//! any HTTP client reaches a legacy Dubbo service unchanged.
//!
//! Query: `version=` (the provider's service version), `tag=` (pins a tagged
//! revision, as the `weft-tag` attachment does). Answers: 200 with the value;
//! 500 with `{"exception": …}` when the method threw (or `{"error": …}`
//! when the provider reports it as a service error, status 70); 400/404/502/
//! 503/504 with `{"error": …, "dubboStatus": …}` when the call failed.

use super::downstream::Local;
use super::{RpcWorker, TAG_HEADER};
use crate::http_util::{Body, error_reply, full};
use crate::proto::Headers;
use crate::proto::dubbo::{self, Answer, Invocation};
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::{Value, json};
use std::sync::Arc;

/// Path prefix the gateway hands to the bridge (no namespace starts with `_`).
pub const PREFIX: &str = "/_rpc/";
/// Largest JSON body taken.
const MAX_BODY: usize = 4 << 20;

/// Answers one bridged call.
pub async fn handle(worker: &Arc<RpcWorker>, req: Request<Incoming>) -> Response<Body> {
    match call(worker, req).await {
        Ok(resp) => resp,
        Err((status, msg)) => error_reply(status, msg),
    }
}

type Refused = (StatusCode, String);

async fn call(worker: &Arc<RpcWorker>, req: Request<Incoming>) -> Result<Response<Body>, Refused> {
    let (service, method) = target(req.uri().path())?;
    if req.method() != http::Method::POST {
        return Err((StatusCode::METHOD_NOT_ALLOWED, "use POST with a JSON array of arguments".into()));
    }
    let query = req.uri().query().unwrap_or("").to_string();
    let param =
        |name: &str| query.split('&').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')).map(str::to_string);
    let body = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| (StatusCode::PAYLOAD_TOO_LARGE, format!("request body: {e} (limit {MAX_BODY} bytes)")))?
        .to_bytes();
    let args = arguments(&body)?;
    let attachments: Headers = param("tag").iter().map(|t| (TAG_HEADER, t.as_str())).collect();
    let version = param("version").unwrap_or_default();
    let inv =
        Invocation { service: &service, version: &version, method: &method, args: &args, attachments: &attachments };
    let raw = Bytes::from(dubbo::request_frame(&inv, 1));
    let span = tracing::info_span!("rpc_bridge", protocol = "dubbo", service = %service, method = %method);
    let answer = tracing::Instrument::instrument(worker.call_local("dubbo", raw), span).await?;
    let answer =
        dubbo::read_answer(&answer).map_err(|e| (StatusCode::BAD_GATEWAY, format!("the provider's answer: {e}")))?;
    Ok(json_response(&answer))
}

/// `/_rpc/dubbo/<interface>/<method>` -> (interface, method).
fn target(path: &str) -> Result<(String, String), Refused> {
    let usage = || (StatusCode::NOT_FOUND, format!("bridge paths are {PREFIX}dubbo/<interface>/<method>"));
    let rest = path.strip_prefix(PREFIX).and_then(|r| r.strip_prefix("dubbo/")).ok_or_else(usage)?;
    match rest.split('/').collect::<Vec<_>>()[..] {
        [service, method] if !service.is_empty() && !method.is_empty() => Ok((service.into(), method.into())),
        _ => Err(usage()),
    }
}

/// The arguments: a JSON array, or one value taken as the only argument;
/// an empty body is no arguments.
fn arguments(body: &[u8]) -> Result<Vec<Value>, Refused> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Array(args)) => Ok(args),
        Ok(one) => Ok(vec![one]),
        Err(e) => Err((StatusCode::BAD_REQUEST, format!("the body must be a JSON array of arguments: {e}"))),
    }
}

fn json_response(answer: &Answer) -> Response<Body> {
    let body = match answer {
        Answer::Value(v) => v.clone(),
        Answer::Exception(e) => json!({ "exception": e }),
        Answer::Failed { status, message } => json!({ "error": message, "dubboStatus": status }),
    };
    let mut resp = Response::new(full(body.to_string()));
    *resp.status_mut() = StatusCode::from_u16(answer.http_status()).unwrap_or(StatusCode::BAD_GATEWAY);
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

impl RpcWorker {
    /// Routes a request frame the sidecar built and waits for the answer frame
    /// (the sidecar's own error reply when no instance answered).
    async fn call_local(self: &Arc<Self>, protocol: &str, raw: Bytes) -> Result<Vec<u8>, Refused> {
        let codec = self.codecs.iter().find(|c| c.name() == protocol).cloned();
        let codec = codec.ok_or_else(|| (StatusCode::NOT_FOUND, format!("no {protocol} codec")))?;
        let frame = codec.decode(&raw).map_err(|e| (StatusCode::BAD_REQUEST, format!("the call: {e}")))?;
        let (local, reply) = Local::new();
        let mut last = crate::memo::Last::default(); // one request: nothing to remember
        self.dispatch(codec, frame, raw, reply, tokio::time::Instant::now(), &mut last);
        let answer = local.answer().await;
        if answer.is_empty() {
            return Err((StatusCode::BAD_GATEWAY, "the call ended without an answer".into()));
        }
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_bodies_are_checked() {
        assert_eq!(target("/_rpc/dubbo/com.x.Svc/get").unwrap(), ("com.x.Svc".into(), "get".into()));
        for bad in ["/_rpc/bolt/x/y", "/_rpc/dubbo/x", "/_rpc/dubbo//m", "/_rpc/dubbo/x/y/z"] {
            assert_eq!(target(bad).unwrap_err().0, StatusCode::NOT_FOUND, "{bad}");
        }
        assert_eq!(arguments(b"[1, \"a\"]").unwrap(), vec![json!(1), json!("a")]);
        assert_eq!(arguments(b"{\"a\":1}").unwrap(), vec![json!({"a": 1})]);
        assert!(arguments(b" \n").unwrap().is_empty());
        assert_eq!(arguments(b"[1,").unwrap_err().0, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn a_built_request_decodes_as_dubbo_with_its_attachments() {
        use crate::proto::Codec;
        let args = [json!("tea"), json!(2)];
        let attachments: Headers = [(TAG_HEADER, "canary")].into_iter().collect();
        let inv = Invocation {
            service: "com.x.Stock",
            version: "1.0.0",
            method: "reserve",
            args: &args,
            attachments: &attachments,
        };
        let raw = dubbo::request_frame(&inv, 9);
        let frame = crate::proto::dubbo::Dubbo.decode(&raw).unwrap();
        assert_eq!((frame.service(), frame.version(), frame.method()), ("com.x.Stock", "1.0.0", "reserve"));
        assert_eq!((frame.len, frame.request_id), (raw.len(), 9));
        assert_eq!(frame.header(TAG_HEADER), Some("canary"));
        assert_eq!(frame.header("interface"), Some("com.x.Stock"));
    }

    #[test]
    fn answers_map_to_http_statuses() {
        use crate::proto::{Codec, Status};
        let inv = Invocation { service: "s", version: "", method: "m", args: &[], attachments: &Headers::default() };
        let raw = dubbo::request_frame(&inv, 3);
        let frame = crate::proto::dubbo::Dubbo.decode(&raw).unwrap();
        let err = crate::proto::dubbo::Dubbo.error_reply(&frame, &raw, Status::NoRoute, "no such interface");
        let answer = dubbo::read_answer(&err).unwrap();
        assert_eq!(answer, Answer::Failed { status: 60, message: "no such interface".into() });
        assert_eq!(answer.http_status(), 404);
        // An OK response: value 1 then the string "ok" (as the captured dubbo2.js exchange).
        let ok = [0xda, 0xbb, 0x02, 0x14, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 4, 0x91, 0x02, b'o', b'k'];
        assert_eq!(dubbo::read_answer(&ok).unwrap(), Answer::Value(json!("ok")));
        assert!(dubbo::read_answer(&raw).is_err(), "a request is not an answer");
    }
}
