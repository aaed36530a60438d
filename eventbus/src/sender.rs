//! Sending an event to a subscriber over HTTP (binary mode), and what came
//! back: the attempt's result for the delivery policy and a reply event, if
//! the subscriber answered with one.

use crate::cloudevent::{decode_http, is_event, to_binary};
use crate::delivery::Attempt;
use async_trait::async_trait;
use bytes::Bytes;
use cloudevents::Event;
use std::time::Duration;

/// Largest reply body read from a subscriber.
const MAX_REPLY: usize = 4 << 20;

/// Where to send: a URL, and the `Host` to send (a Function reached through the
/// gateway is addressed by host, so it scales from zero like any request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub url: String,
    pub host: Option<String>,
}

impl Target {
    pub fn uri(url: impl Into<String>) -> Self {
        Self { url: url.into(), host: None }
    }

    /// The address as a user would write it (`status.subscriberUri`).
    pub fn display(&self) -> String {
        match &self.host {
            Some(h) => format!("http://{h}/"),
            None => self.url.clone(),
        }
    }
}

/// The outcome of one attempt.
#[derive(Debug, Clone)]
pub struct Sent {
    pub attempt: Attempt,
    /// A reply event in a 2xx response.
    pub reply: Option<Event>,
    /// Why it failed, in words, for the trace and the dead letter.
    pub detail: Option<String>,
}

#[async_trait]
pub trait Sender: Send + Sync {
    async fn send(&self, target: &Target, event: &Event, timeout: Duration) -> Sent;
}

/// The HTTP sender: one pooled keep-alive client for all triggers.
pub struct HttpSender {
    client: reqwest::Client,
}

impl HttpSender {
    pub fn new() -> Result<Self, reqwest::Error> {
        // reqwest's rustls (enabled in the workspace for OCI registries) takes
        // the process's crypto provider and panics without one: ring, as kube.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .no_proxy()
            .user_agent(concat!("weft-dispatcher/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { client })
    }
}

#[async_trait]
impl Sender for HttpSender {
    async fn send(&self, target: &Target, event: &Event, timeout: Duration) -> Sent {
        let (headers, body) = match to_binary(event.clone()) {
            Ok(x) => x,
            Err(e) => return failed(Attempt::Status { code: 400, retry_after: None }, e.to_string()),
        };
        let mut req = self.client.post(&target.url).headers(headers).body(body).timeout(timeout);
        if let Some(h) = &target.host {
            req = req.header(http::header::HOST, h);
        }
        match req.send().await {
            Ok(resp) => answered(resp).await,
            Err(e) if e.is_timeout() => failed(Attempt::Timeout, format!("no answer within {timeout:?}")),
            Err(e) => failed(Attempt::ConnectionError, error_chain(&e)),
        }
    }
}

async fn answered(resp: reqwest::Response) -> Sent {
    let code = resp.status().as_u16();
    let retry_after = resp.headers().get(http::header::RETRY_AFTER).and_then(|v| parse_retry_after(v.to_str().ok()?));
    let attempt = Attempt::Status { code, retry_after };
    let headers = resp.headers().clone();
    if !(200..300).contains(&code) {
        let text = read_limited(resp).await.map(|b| String::from_utf8_lossy(&b[..b.len().min(256)]).into_owned());
        return failed(attempt, format!("HTTP {code}: {}", text.unwrap_or_default().trim()));
    }
    if !is_event(&headers) {
        return Sent { attempt, reply: None, detail: None };
    }
    let reply = match read_limited(resp).await {
        Some(body) => decode_http(&headers, &body).map_err(|e| e.to_string()),
        None => Err(format!("reply body over {MAX_REPLY} bytes or unreadable")),
    };
    match reply {
        Ok(mut events) if events.len() == 1 => Sent { attempt, reply: events.pop(), detail: None },
        Ok(_) => Sent { attempt, reply: None, detail: Some("a reply must be one event".into()) },
        Err(e) => Sent { attempt, reply: None, detail: Some(format!("reply is not a valid CloudEvent: {e}")) },
    }
}

async fn read_limited(mut resp: reqwest::Response) -> Option<Bytes> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.ok()? {
        if out.len() + chunk.len() > MAX_REPLY {
            return None;
        }
        out.extend_from_slice(&chunk);
    }
    Some(Bytes::from(out))
}

fn failed(attempt: Attempt, detail: String) -> Sent {
    Sent { attempt, reply: None, detail: Some(detail) }
}

/// reqwest's top-level message is vague ("error sending request"): add the causes.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// `Retry-After` as delay-seconds or an HTTP date.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    if let Ok(secs) = v.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = jiff::fmt::rfc2822::parse(v.trim()).ok()?.timestamp();
    let wait = at.duration_since(jiff::Timestamp::now());
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO), "a past date: now");
        let soon = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(30);
        let text = jiff::fmt::rfc2822::DateTimePrinter::new().timestamp_to_rfc9110_string(&soon).unwrap();
        let d = parse_retry_after(&text).unwrap();
        assert!(d > Duration::from_secs(25) && d <= Duration::from_secs(30), "{d:?}");
        assert_eq!(parse_retry_after("soon"), None);
    }
}
