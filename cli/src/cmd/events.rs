//! `weft send`: one CloudEvent to a broker (binary mode, 202 once durable);
//! `weft events trace ID`: where an event went.

use crate::client::Client;
use anyhow::{Context, Result, bail};
use cloudevents::{EventBuilder, EventBuilderV10};
use serde_json::Value;

pub struct SendArgs {
    pub broker: String,
    pub namespace: String,
    pub type_: String,
    pub source: String,
    pub id: Option<String>,
    pub subject: Option<String>,
    pub data: Option<String>,
    pub content_type: Option<String>,
    pub extensions: Vec<String>,
}

pub async fn send(client: &Client, a: &SendArgs) -> Result<()> {
    let Some(events) = client.runtime.events else {
        bail!("this weft up has no broker ingress (restart it with this version of weft)");
    };
    let id = a.id.clone().unwrap_or_else(|| format!("{:016x}", fastrand::u64(..)));
    let mut b =
        EventBuilderV10::new().id(id.as_str()).ty(a.type_.as_str()).source(a.source.as_str()).time(chrono::Utc::now());
    if let Some(s) = &a.subject {
        b = b.subject(s.as_str());
    }
    for ext in &a.extensions {
        let (k, v) = ext.split_once('=').with_context(|| format!("--extension {ext:?} is not name=value"))?;
        b = b.extension(k, v);
    }
    if let Some(d) = &a.data {
        let looks_json = serde_json::from_str::<Value>(d).is_ok();
        let ct =
            a.content_type.clone().unwrap_or_else(|| if looks_json { "application/json" } else { "text/plain" }.into());
        b = b.data(ct, d.clone().into_bytes());
    }
    let event = b.build().map_err(|e| anyhow::anyhow!("not a valid event: {e}"))?;
    let (headers, body) = weft_eventbus::cloudevent::to_binary(event)?;
    let url = format!("http://{events}/{}/{}", a.namespace, a.broker);
    let resp = reqwest::Client::new()
        .post(&url)
        .headers(headers)
        .body(body)
        .send()
        .await
        .with_context(|| format!("reach the broker ingress at {url}"))?;
    let status = resp.status();
    if status.as_u16() != 202 {
        let text = resp.text().await.unwrap_or_default();
        bail!("{url} answered {status}: {text}");
    }
    println!("{id}");
    Ok(())
}

pub async fn trace(client: &Client, id: &str, json: bool) -> Result<()> {
    let t: Value = client.get(&format!("/v1/events/{id}")).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&t)?);
        return Ok(());
    }
    let s = |v: &Value| v.as_str().map(String::from).unwrap_or_else(|| v.to_string());
    println!("event {}  type {}  source {}  broker {}", s(&t["id"]), s(&t["type"]), s(&t["source"]), s(&t["broker"]));
    for i in t["ingested"].as_array().into_iter().flatten() {
        println!("  ingested  {}  offset {}", s(&i["at"]), i["offset"]);
    }
    let triggers = t["triggers"].as_object().cloned().unwrap_or_default();
    if triggers.is_empty() {
        println!("  no trigger matched (yet)");
    }
    for (name, tr) in triggers {
        let outcome = tr["outcome"].as_str().unwrap_or("in progress");
        println!("  trigger {name} -> {}  outcome: {outcome}", s(&tr["subscriber"]));
        if let Some(d) = tr["detail"].as_str() {
            println!("    {d}");
        }
        for (n, a) in tr["attempts"].as_array().into_iter().flatten().enumerate() {
            let result = a["status"].as_u64().map_or_else(|| s(&a["error"]), |c| c.to_string());
            let latency = a["latency_ms"].as_f64().unwrap_or(0.0);
            println!("    {:>2}. {}  {:<11} {result:<6} {latency:.1} ms", n + 1, s(&a["at"]), s(&a["to"]));
        }
        if let Some(more) = tr["more_attempts"].as_u64() {
            println!("    ... and {more} more attempts");
        }
    }
    Ok(())
}
