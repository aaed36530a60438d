//! `POST` an order `{"user": "ada", "items": [{"sku": "tea", "qty": 2}]}`:
//! validates it, prices it (PriceService), reserves stock (InventoryService),
//! publishes `order.created` to the `shop` broker, and answers the order.
//! Revision 2 (the canary) applies `$PROMO` percent off.

use serde_json::{Value, json};
use shop::{INVENTORY, PRICE, error, legacy};
use weft_guest::{Event, Request, Response, http};

const MAX_ITEMS: usize = 10;
const MAX_QTY: u64 = 20;

/// The order's items, or every reason it is not a valid order.
fn validate(order: &Value) -> Result<(String, Vec<Value>), Vec<String>> {
    let mut why = Vec::new();
    let user = order.get("user").and_then(Value::as_str).unwrap_or("");
    if user.is_empty() || user.len() > 64 {
        why.push("user: a name of 1 to 64 characters is required".to_string());
    }
    let items = order.get("items").and_then(Value::as_array).cloned().unwrap_or_default();
    if items.is_empty() || items.len() > MAX_ITEMS {
        why.push(format!("items: 1 to {MAX_ITEMS} items are required"));
    }
    for (i, item) in items.iter().enumerate() {
        if item.get("sku").and_then(Value::as_str).is_none_or(str::is_empty) {
            why.push(format!("items[{i}].sku: required"));
        }
        if !item.get("qty").and_then(Value::as_u64).is_some_and(|q| (1..=MAX_QTY).contains(&q)) {
            why.push(format!("items[{i}].qty: a whole number from 1 to {MAX_QTY}"));
        }
    }
    let items = items.iter().map(|i| json!({ "sku": i["sku"], "qty": i["qty"] })).collect();
    if why.is_empty() { Ok((user.to_string(), items)) } else { Err(why) }
}

/// A fresh order id.
fn order_id() -> String {
    format!("o-{:016x}", weft_guest::random_u64())
}

fn place(user: String, items: Vec<Value>) -> Response {
    let revision = std::env::var("WEFT_REVISION").unwrap_or_default();
    let promo = std::env::var("PROMO").unwrap_or_default();
    let quote = match legacy(PRICE, "quote", json!([items, promo])) {
        Ok(q) => q,
        Err(why) if why.contains("unknown sku") => return error("400 Bad Request", &why),
        Err(why) => return error("502 Bad Gateway", &format!("pricing failed: {why}")),
    };
    let id = order_id();
    let reserved = match legacy(INVENTORY, "reserve", json!([id, items])) {
        Ok(r) => r,
        Err(why) if why.contains("out of stock") => return error("409 Conflict", &why),
        Err(why) => return error("502 Bad Gateway", &format!("reserving stock failed: {why}")),
    };
    let order = json!({
        "orderId": id, "user": user, "lines": quote["lines"], "subtotal": quote["subtotal"],
        "discount": quote["discount"], "total": quote["total"], "revision": revision,
        "remaining": reserved["remaining"],
    });
    let event = Event {
        id: id.clone(),
        source: format!("/shop/order/{revision}"),
        ty: "order.created".into(),
        subject: Some(user),
        time: None,
        data: order.to_string().into_bytes(),
    };
    match http::publish("shop", &event) {
        Ok(()) => Response::json("201 Created", &order),
        Err(why) => error("503 Service Unavailable", &format!("order {id} reserved but not announced: {why}")),
    }
}

fn main() {
    let req = Request::read();
    let reply = match (req.method.as_str(), req.json()) {
        ("POST", Ok(order)) => match validate(&order) {
            Ok((user, items)) => place(user, items),
            Err(why) => Response::json("400 Bad Request", &json!({ "error": "invalid order", "details": why })),
        },
        ("POST", Err(why)) => error("400 Bad Request", &why),
        _ => error("405 Method Not Allowed", "POST an order"),
    };
    reply.send();
}
