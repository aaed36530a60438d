//! Outbound HTTP for guests: WASI preview 1 has no sockets, so weft links two
//! host functions (module `weft`) through which a guest sends an HTTP request
//! and reads the answer. Requests may go only where the platform allows — the
//! sidecar (`$WEFT_SIDECAR`: every function by host, every interface through
//! the RPC bridge) and the broker ingress (`$WEFT_EVENTS`) — so a guest still
//! reaches nothing the spec does not grant.
//!
//! ABI (all offsets and lengths in the guest's memory):
//! - `http_send(ptr, len) -> i64`: the request is `METHOD URL` on the first
//!   line, header lines `Name: value`, a blank line, then the body. The
//!   result is the length of the answer now pending, `STATUS` then header
//!   lines, a blank line and the body; or, negated, the length of a pending
//!   error message. The call blocks until the answer or the guest's deadline.
//! - `http_take(ptr, len) -> i32`: copies the pending answer (or message) to
//!   `ptr`, at most `len` bytes, and returns how many; then nothing is pending.

// The deadline is the guest's wall-clock one (see host.rs), on a plain thread.
#![allow(clippy::disallowed_types)]

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::{counter::Counter, family::Family, histogram::Histogram};
use prometheus_client::registry::Registry;
use std::time::{Duration, Instant};

/// Largest request or answer a guest may move through these calls.
pub const MAX_MESSAGE: usize = 16 << 20;

/// How an outbound request ended, for the metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `answered` (any HTTP status), `refused` (not allowed or malformed), `failed` (no answer).
    pub result: &'static str,
}

/// Outbound requests by outcome, and how long answered ones took.
#[derive(Clone, Debug)]
pub struct OutboundMetrics {
    pub requests: Family<OutcomeLabels, Counter>,
    pub duration: Histogram,
}

impl Default for OutboundMetrics {
    fn default() -> Self {
        let buckets = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
        Self { requests: Family::default(), duration: Histogram::new(buckets) }
    }
}

impl OutboundMetrics {
    /// `<prefix>_outbound_requests_total{result}` and `<prefix>_outbound_duration_seconds`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register("outbound_requests", "Guest outbound HTTP requests, by result", self.requests.clone());
        registry.register(
            "outbound_duration_seconds",
            "Guest outbound requests, send to answer",
            self.duration.clone(),
        );
    }

    fn record(&self, result: &'static str) {
        self.requests.get_or_create(&OutcomeLabels { result }).inc();
    }
}

/// Where a guest's requests may go.
#[derive(Clone, Debug, Default)]
pub struct Outbound {
    /// `host:port` authorities a request may name.
    pub allowed: Vec<String>,
    pub metrics: OutboundMetrics,
}

impl Outbound {
    /// The authorities of `$WEFT_SIDECAR` (host:port) and `$WEFT_EVENTS` (a
    /// URL) in an instance's environment.
    pub fn from_env(env: &[(String, String)]) -> Self {
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let mut allowed = Vec::new();
        if let Some(s) = get("WEFT_SIDECAR") {
            allowed.push(s.to_string());
        }
        if let Some(a) = get("WEFT_EVENTS").and_then(|u| authority(u)) {
            allowed.push(a.to_string());
        }
        Self { allowed, metrics: OutboundMetrics::default() }
    }
}

/// `http://host:port/path` -> `host:port` (only plain HTTP: every allowed
/// target is a local or in-cluster address).
fn authority(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("http://")?;
    Some(rest.split('/').next().unwrap_or(rest)).filter(|a| !a.is_empty())
}

/// A request as the guest wrote it.
#[derive(Debug, PartialEq)]
struct Parsed<'a> {
    method: &'a str,
    url: &'a str,
    headers: Vec<(&'a str, &'a str)>,
    body: &'a [u8],
}

fn parse(raw: &[u8]) -> Result<Parsed<'_>, String> {
    let split = raw.windows(2).position(|w| w == b"\n\n").ok_or("no blank line after the headers")?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| "the request head is not UTF-8")?;
    let mut lines = head.lines();
    let first = lines.next().unwrap_or("");
    let (method, url) = first.split_once(' ').ok_or_else(|| format!("first line {first:?} is not `METHOD URL`"))?;
    let mut headers = Vec::new();
    for line in lines {
        let (k, v) = line.split_once(':').ok_or_else(|| format!("header line {line:?} has no colon"))?;
        headers.push((k.trim(), v.trim()));
    }
    Ok(Parsed { method, url, headers, body: &raw[split + 2..] })
}

/// Sends the guest's request if policy allows, by `deadline` at the latest;
/// the answer in the ABI's form, or an error message. Counted in the metrics.
pub fn send(policy: &Outbound, raw: &[u8], deadline: Instant) -> Result<Vec<u8>, String> {
    let started = Instant::now();
    let result = try_send(policy, raw, deadline);
    let m = &policy.metrics;
    match &result {
        Ok(_) => {
            m.record("answered");
            m.duration.observe(started.elapsed().as_secs_f64());
        }
        Err(Failure::Refused(_)) => m.record("refused"),
        Err(Failure::Failed(_)) => m.record("failed"),
    }
    result.map_err(|f| match f {
        Failure::Refused(why) | Failure::Failed(why) => why,
    })
}

/// Why a request got no answer: refused before sending, or failed after.
enum Failure {
    Refused(String),
    Failed(String),
}

fn try_send(policy: &Outbound, raw: &[u8], deadline: Instant) -> Result<Vec<u8>, Failure> {
    let req = parse(raw).map_err(Failure::Refused)?;
    check(policy, &req).map_err(Failure::Refused)?;
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(Failure::Refused("the request deadline has passed".into()));
    }
    exchange(&req, left).map_err(Failure::Failed)
}

fn check(policy: &Outbound, req: &Parsed<'_>) -> Result<(), String> {
    let auth = authority(req.url).ok_or_else(|| format!("{:?} is not an http:// URL", req.url))?;
    if !policy.allowed.iter().any(|a| a == auth) {
        return Err(format!(
            "outbound to {auth} is not allowed: a guest may call the sidecar and the broker ingress ({})",
            policy.allowed.join(", ")
        ));
    }
    Ok(())
}

/// One request and its whole answer, within `left`.
fn exchange(req: &Parsed<'_>, left: Duration) -> Result<Vec<u8>, String> {
    let agent = agent(left);
    let mut builder = http::Request::builder().method(req.method).uri(req.url);
    for (k, v) in &req.headers {
        builder = builder.header(*k, *v);
    }
    let request = builder.body(req.body.to_vec()).map_err(|e| format!("bad request: {e}"))?;
    let mut resp = agent.run(request).map_err(|e| format!("{} {}: {e}", req.method, req.url))?;
    let mut out = format!("{}\n", resp.status().as_u16()).into_bytes();
    for (k, v) in resp.headers() {
        out.extend_from_slice(format!("{k}: {}\n", v.to_str().unwrap_or("")).as_bytes());
    }
    out.push(b'\n');
    let body = resp.body_mut().with_config().limit(MAX_MESSAGE as u64).read_to_vec();
    out.extend_from_slice(&body.map_err(|e| format!("reading the answer: {e}"))?);
    Ok(out)
}

/// An agent that reports 4xx/5xx as answers (the guest decides), with the
/// whole call bounded by the guest's remaining time.
fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .max_redirects(0)
        .build()
        .new_agent()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_comes_from_the_platform_env() {
        let env =
            [("WEFT_SIDECAR".into(), "127.0.0.1:8080".into()), ("WEFT_EVENTS".into(), "http://127.0.0.1:8082".into())];
        assert_eq!(Outbound::from_env(&env).allowed, ["127.0.0.1:8080", "127.0.0.1:8082"]);
        assert!(Outbound::from_env(&[]).allowed.is_empty());
    }

    #[test]
    fn requests_parse_and_bad_ones_say_why() {
        let p = parse(b"POST http://a:1/x\nContent-Type: application/json\nX-A: b\n\n[1]").unwrap();
        assert_eq!(
            p,
            Parsed {
                method: "POST",
                url: "http://a:1/x",
                headers: vec![("Content-Type", "application/json"), ("X-A", "b")],
                body: b"[1]"
            }
        );
        assert!(parse(b"GET http://a:1/").unwrap_err().contains("blank line"));
        assert!(parse(b"GET\n\n").unwrap_err().contains("METHOD URL"));
        assert!(parse(b"GET http://a:1/\nbroken\n\n").unwrap_err().contains("no colon"));
    }

    #[test]
    fn only_allowed_authorities_are_reached() {
        let policy = Outbound { allowed: vec!["127.0.0.1:9".into()], ..Default::default() };
        let later = Instant::now() + Duration::from_secs(1);
        let err = send(&policy, b"GET http://10.0.0.1:80/\n\n", later).unwrap_err();
        assert!(err.contains("not allowed"), "{err}");
        let err = send(&policy, b"GET https://127.0.0.1:9/\n\n", later).unwrap_err();
        assert!(err.contains("not an http:// URL"), "{err}");
        let err = send(&policy, b"GET http://127.0.0.1:9/\n\n", Instant::now()).unwrap_err();
        assert!(err.contains("deadline"), "{err}");
        let refused = policy.metrics.requests.get_or_create(&OutcomeLabels { result: "refused" }).get();
        assert_eq!(refused, 3, "each refusal is counted");
    }
}
