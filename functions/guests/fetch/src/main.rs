//! A guest that makes one outbound request through the host (`weft.http_send`):
//! `?url=<url>` (GET), or a POST body of `METHOD URL` then the body; it
//! answers with the status and body it got, or 502 with why it could not.

use weft_guest::{Request, Response, http};

fn main() {
    let req = Request::read();
    let text = String::from_utf8_lossy(&req.body).into_owned();
    let (method, url, body) = match req.query_param("url") {
        Some(url) => ("GET".to_string(), url.to_string(), String::new()),
        None => {
            let (first, body) = text.split_once('\n').unwrap_or((&text, ""));
            let (m, u) = first.split_once(' ').unwrap_or(("GET", first));
            (m.to_string(), u.to_string(), body.to_string())
        }
    };
    let reply = match http::send(&method, &url, &[], body.as_bytes()) {
        Ok(a) => Response::text("200 OK", &format!("{} {}", a.status, String::from_utf8_lossy(&a.body))),
        Err(why) => Response::text("502 Bad Gateway", &format!("outbound failed: {why}")),
    };
    reply.send();
}
