//! `weft delete KIND NAME`: deletes a resource; for a function, waits until its
//! instances stopped.

use super::plural_kind;
use crate::client::Client;
use anyhow::{Result, bail};
use serde_json::Value;
use std::time::Duration;

pub async fn run(client: &Client, kind: &str, name: &str, namespace: &str, wait: bool) -> Result<()> {
    let kind = plural_kind(kind)?;
    client.delete(&format!("/v1/{kind}/{namespace}/{name}")).await?;
    let group = if matches!(kind, "functions" | "revisions") { "serving" } else { "eventing" };
    println!("{}.{group}.weft.dev/{name} deleted", kind.trim_end_matches('s'));
    if wait && kind == "functions" {
        wait_revisions_gone(client, name, namespace).await?;
    }
    Ok(())
}

/// The controller deletes a function's revisions after stopping their instances.
async fn wait_revisions_gone(client: &Client, name: &str, namespace: &str) -> Result<()> {
    for _ in 0..300 {
        let revs: Vec<Value> = client.get(&format!("/v1/revisions?namespace={namespace}")).await?;
        let left = revs.iter().filter(|r| r["metadata"]["labels"][weft_crds::FUNCTION_LABEL] == name).count();
        if left == 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("revisions of {name} still exist after 30s")
}
