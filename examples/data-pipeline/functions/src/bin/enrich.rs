//! Stage 2: adds what later stages group by (`click.valid` -> `click.enriched`):
//! the device class from the user agent and the site section from the page.

use pipeline::{forward, incoming};
use serde_json::Value;
use weft_guest::Request;

fn device(user_agent: &str) -> &'static str {
    let ua = user_agent.to_ascii_lowercase();
    if ua.contains("bot") || ua.contains("spider") {
        "bot"
    } else if ua.contains("mobile") || ua.contains("iphone") || ua.contains("android") {
        "mobile"
    } else {
        "desktop"
    }
}

/// `/product/42` -> `product`; `/` -> `home`.
fn section(page: &str) -> String {
    match page.trim_start_matches('/').split('/').next() {
        Some(s) if !s.is_empty() => s.to_string(),
        _ => "home".into(),
    }
}

fn main() {
    let req = Request::read();
    let reply = match incoming(&req) {
        Err(refused) => refused,
        Ok((event, mut click)) => {
            let ua = click.get("ua").and_then(Value::as_str).unwrap_or("").to_string();
            let page = click.get("page").and_then(Value::as_str).unwrap_or("/").to_string();
            if let Some(obj) = click.as_object_mut() {
                obj.insert("device".into(), device(&ua).into());
                obj.insert("section".into(), section(&page).into());
                obj.insert("enrichedBy".into(), std::env::var("WEFT_REVISION").unwrap_or_default().into());
            }
            forward(&event, "enriched", "click.enriched", &click)
        }
    };
    reply.send();
}
