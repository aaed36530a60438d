//! `weft invoke NAME`: one request to a function through the gateway (path route).

use crate::client::Client;
use anyhow::{Context, Result, bail};

pub struct InvokeArgs {
    pub name: String,
    pub namespace: String,
    pub data: Option<String>,
    pub path: String,
    pub method: Option<String>,
    pub headers: Vec<String>,
}

pub async fn run(client: &Client, args: &InvokeArgs) -> Result<()> {
    let path = args.path.trim_start_matches('/');
    let url = format!("http://{}/{}/{}/{path}", client.runtime.gateway, args.namespace, args.name);
    let method = args.method.clone().unwrap_or_else(|| if args.data.is_some() { "POST".into() } else { "GET".into() });
    let method = reqwest::Method::from_bytes(method.as_bytes()).context("--method")?;
    let mut req = reqwest::Client::new().request(method, &url);
    if let Some(d) = &args.data {
        let looks_json = d.trim_start().starts_with(['{', '[']);
        req = req.body(d.clone()).header("content-type", if looks_json { "application/json" } else { "text/plain" });
    }
    for h in &args.headers {
        let (k, v) = h.split_once(':').with_context(|| format!("header {h:?} is not name:value"))?;
        req = req.header(k.trim(), v.trim());
    }
    let resp = req.send().await.with_context(|| format!("reach the gateway at {url}"))?;
    let status = resp.status();
    let body = resp.bytes().await?;
    use std::io::Write;
    std::io::stdout().write_all(&body)?;
    if !status.is_success() {
        bail!("{url} answered {status}");
    }
    Ok(())
}
