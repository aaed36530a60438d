//! `weft logs NAME`: the instance logs of a function.

use crate::client::Client;
use anyhow::Result;

pub async fn run(client: &Client, name: &str, namespace: &str, tail: usize) -> Result<()> {
    let text = client.get_text(&format!("/v1/logs/{namespace}/{name}?tail={tail}")).await?;
    print!("{text}");
    Ok(())
}
