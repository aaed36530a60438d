//! `GET` the menu: the catalog with prices and stock, from the legacy
//! PriceService (Dubbo, by interface name through the sidecar).

use serde_json::json;
use shop::{PRICE, error, legacy};
use weft_guest::{Request, Response};

fn main() {
    let req = Request::read();
    let reply = match req.method.as_str() {
        "GET" => match legacy(PRICE, "catalog", json!([])) {
            Ok(items) => Response::json("200 OK", &json!({ "items": items })),
            Err(why) => error("502 Bad Gateway", &format!("the price service failed: {why}")),
        },
        _ => error("405 Method Not Allowed", "GET the menu"),
    };
    reply.send();
}
