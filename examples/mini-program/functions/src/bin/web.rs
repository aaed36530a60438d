//! Serves the mini-program's page (one self-contained HTML file) through the
//! gateway, so the page and its API share an origin.

use weft_guest::{Request, Response};

const PAGE: &str = include_str!("../../../web/index.html");

fn main() {
    let req = Request::read();
    let reply = match (req.method.as_str(), req.path.as_str()) {
        ("GET" | "HEAD", "" | "/" | "/index.html") => Response::text("200 OK", PAGE)
            .header("Content-Type", "text/html; charset=utf-8")
            .header("Cache-Control", "no-cache"),
        _ => Response::text("404 Not Found", "no such page"),
    };
    reply.send();
}
