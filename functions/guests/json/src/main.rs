//! A guest that answers with JSON: it describes the request it got and, when the
//! body is JSON, echoes it parsed. Shows a guest using a crates.io dependency.

use serde_json::{Map, Value, json};
use std::env;
use std::io::{self, Read, Write};

/// CGI passes request headers as `HTTP_<NAME>`; turn them back into header names.
fn headers() -> Map<String, Value> {
    env::vars()
        .filter_map(|(k, v)| {
            let name = k.strip_prefix("HTTP_")?;
            Some((name.to_ascii_lowercase().replace('_', "-"), Value::String(v)))
        })
        .collect()
}

fn main() {
    let mut raw = Vec::new();
    let _ = io::stdin().read_to_end(&mut raw);
    let (status, body) = match serde_json::from_slice::<Value>(&raw) {
        Ok(v) => ("200 OK", v),
        Err(_) if raw.is_empty() => ("200 OK", Value::Null),
        Err(e) => ("400 Bad Request", json!({ "error": format!("body is not JSON: {e}") })),
    };
    let reply = json!({
        "method": env::var("REQUEST_METHOD").unwrap_or_default(),
        "path": env::var("PATH_INFO").unwrap_or_default(),
        "query": env::var("QUERY_STRING").unwrap_or_default(),
        "function": env::var("WEFT_FUNCTION").unwrap_or_default(),
        "revision": env::var("WEFT_REVISION").unwrap_or_default(),
        "headers": headers(),
        "body": body,
    });
    let mut out = io::stdout().lock();
    let _ = write!(out, "Status: {status}\nContent-Type: application/json\n\n{reply}");
}
