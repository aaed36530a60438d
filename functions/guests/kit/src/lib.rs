//! A small helper for weft guests (WAGI ABI, see `functions/README.md`): reads
//! the request from stdin and the CGI environment, reads an incoming CloudEvent
//! (binary mode: `ce-*` headers arrive as `HTTP_CE_*`), and writes a response,
//! optionally a reply event, to stdout.
//!
//! [`http`] sends requests out through the sidecar and publishes events.
//!
//! Shared by the demo guests in `examples/*/functions/`, so each of them is only
//! its own logic.

pub mod http;

use serde_json::Value;
use std::env;
use std::io::{self, Read, Write};

/// The request the gateway passed in.
pub struct Request {
    pub method: String,
    /// The path below the function's route.
    pub path: String,
    pub query: String,
    pub body: Vec<u8>,
}

impl Request {
    /// Reads stdin and the CGI variables; an unreadable stdin is an empty body.
    pub fn read() -> Self {
        let mut body = Vec::new();
        let _ = io::stdin().read_to_end(&mut body);
        Self {
            method: env::var("REQUEST_METHOD").unwrap_or_default(),
            path: env::var("PATH_INFO").unwrap_or_default(),
            query: env::var("QUERY_STRING").unwrap_or_default(),
            body,
        }
    }

    /// A request header by name (`x-user` -> `HTTP_X_USER`).
    pub fn header(&self, name: &str) -> Option<String> {
        header(name)
    }

    /// The body as JSON, or a message saying why it is not.
    pub fn json(&self) -> Result<Value, String> {
        serde_json::from_slice(&self.body).map_err(|e| format!("body is not JSON: {e}"))
    }

    /// The CloudEvent this request carries, if it is one (binary mode).
    pub fn event(&self) -> Option<Event> {
        Some(Event {
            id: header("ce-id")?,
            source: header("ce-source")?,
            ty: header("ce-type")?,
            subject: header("ce-subject"),
            time: header("ce-time"),
            data: self.body.clone(),
        })
    }

    /// One `name=value` query parameter, undecoded.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.split('&').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
    }
}

fn header(name: &str) -> Option<String> {
    env::var(format!("HTTP_{}", name.to_ascii_uppercase().replace('-', "_"))).ok()
}

/// A CloudEvent's attributes and data (the demo guests use JSON data).
#[derive(Clone, Debug)]
pub struct Event {
    pub id: String,
    pub source: String,
    pub ty: String,
    pub subject: Option<String>,
    pub time: Option<String>,
    pub data: Vec<u8>,
}

impl Event {
    /// The attributes as binary-mode HTTP headers (`ce-*`), for a reply or a
    /// request that carries the event.
    pub fn binary_headers(&self) -> Vec<(&'static str, &str)> {
        let mut h = vec![("ce-specversion", "1.0"), ("ce-id", &*self.id), ("ce-source", &*self.source), ("ce-type", &*self.ty)];
        h.extend(self.subject.as_deref().map(|s| ("ce-subject", s)));
        h.extend(self.time.as_deref().map(|t| ("ce-time", t)));
        h
    }
}

/// What the guest answers: status, headers, body; built, then [`Response::send`].
pub struct Response {
    status: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    /// A JSON body with the status line text (e.g. `"200 OK"`).
    pub fn json(status: &str, body: &Value) -> Self {
        Self {
            status: status.to_string(),
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
        }
    }

    /// A plain-text body, e.g. an error reason a dead-letter record keeps.
    pub fn text(status: &str, body: &str) -> Self {
        Self {
            status: status.to_string(),
            headers: vec![("Content-Type".into(), "text/plain".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    /// Adds or replaces a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// A 200 whose body is a reply event: the broker puts it back in, so the
    /// next stage's trigger can match its type.
    pub fn reply(event: &Event, data: &Value) -> Self {
        event.binary_headers().into_iter().fold(Self::json("200 OK", data), |r, (k, v)| r.header(k, v))
    }

    /// Writes the CGI response to stdout.
    pub fn send(self) {
        let mut out = io::stdout().lock();
        let _ = write!(out, "Status: {}\n", self.status);
        for (name, value) in &self.headers {
            let _ = write!(out, "{name}: {value}\n");
        }
        let _ = out.write_all(b"\n");
        let _ = out.write_all(&self.body);
    }
}

/// A fresh random number: WASI `random_get` seeds `RandomState`, and each
/// `RandomState::new()` gives new keys.
pub fn random_u64() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(0u8)
}
