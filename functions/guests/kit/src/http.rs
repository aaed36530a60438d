//! Outbound HTTP through weft's host functions (module `weft`; the ABI is in
//! `functions/src/outbound.rs`). A guest may reach the sidecar (`$WEFT_SIDECAR`:
//! other functions, and Dubbo interfaces through the RPC bridge) and the
//! broker ingress (`$WEFT_EVENTS`), nothing else.

use serde_json::Value;

#[link(wasm_import_module = "weft")]
unsafe extern "C" {
    fn http_send(ptr: *const u8, len: usize) -> i64;
    fn http_take(ptr: *mut u8, len: usize) -> i32;
}

/// An answer to an outbound request.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Result<Value, String> {
        serde_json::from_slice(&self.body).map_err(|e| format!("answer is not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Sends one request; `Err` when it could not be sent or was not allowed.
pub fn send(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<Answer, String> {
    let mut raw = format!("{method} {url}\n").into_bytes();
    for (k, v) in headers {
        raw.extend_from_slice(format!("{k}: {v}\n").as_bytes());
    }
    raw.push(b'\n');
    raw.extend_from_slice(body);
    // SAFETY: the host reads `raw.len()` bytes at `raw`'s address, which we own.
    let n = unsafe { http_send(raw.as_ptr(), raw.len()) };
    let pending = take(n.unsigned_abs() as usize);
    if n < 0 {
        return Err(String::from_utf8_lossy(&pending).into_owned());
    }
    parse(&pending)
}

fn take(len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    // SAFETY: the host writes at most `len` bytes into our buffer of `len`.
    let n = unsafe { http_take(buf.as_mut_ptr(), len) };
    buf.truncate(n.max(0) as usize);
    buf
}

fn parse(raw: &[u8]) -> Result<Answer, String> {
    let split = raw.windows(2).position(|w| w == b"\n\n").ok_or("malformed answer from the host")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut lines = head.lines();
    let status = lines.next().and_then(|s| s.trim().parse().ok()).ok_or("answer without a status")?;
    let headers = lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    Ok(Answer { status, headers, body: raw[split + 2..].to_vec() })
}

/// `http://$WEFT_SIDECAR<path>`: e.g. `/default/store/points` reaches the
/// `store` function by its path route.
pub fn sidecar(path: &str) -> String {
    format!("http://{}{path}", std::env::var("WEFT_SIDECAR").unwrap_or_default())
}

/// Calls a Dubbo method by interface name through the sidecar's bridge, with
/// JSON arguments; `Err` carries the provider's exception or the failure.
pub fn dubbo(interface: &str, version: &str, method: &str, args: &Value) -> Result<Value, String> {
    let url = sidecar(&format!("/_rpc/dubbo/{interface}/{method}?version={version}"));
    let answer = send("POST", &url, &[("Content-Type", "application/json")], args.to_string().as_bytes())?;
    let value = answer.json()?;
    match answer.status {
        200 => Ok(value),
        code => Err(format!("{interface}.{method} answered {code}: {value}")),
    }
}

/// Publishes a CloudEvent (binary mode) to broker `broker` of this function's
/// namespace through the broker ingress; Ok once the broker has made it durable.
pub fn publish(broker: &str, event: &crate::Event) -> Result<(), String> {
    let ns = std::env::var("WEFT_NAMESPACE").unwrap_or_else(|_| "default".into());
    let url = format!("{}/{ns}/{broker}", std::env::var("WEFT_EVENTS").unwrap_or_default());
    let mut headers = event.binary_headers();
    headers.push(("Content-Type", "application/json"));
    let answer = send("POST", &url, &headers, &event.data)?;
    match answer.is_success() {
        true => Ok(()),
        false => Err(format!("broker {broker} refused the event: {} {}", answer.status, String::from_utf8_lossy(&answer.body))),
    }
}
