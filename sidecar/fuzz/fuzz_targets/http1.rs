//! The HTTP/1.1 fast path reads heads and chunked bodies off the wire from
//! clients and instances alike: whatever the bytes, it must decide, never
//! panic, and find a chunked body's end at the same place however the bytes
//! are split across reads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_sidecar::gateway::h1::chunked::Chunked;
use weft_sidecar::gateway::h1::head::{self, Forwarding, Head, MAX_HEADERS};

fuzz_target!(|data: &[u8]| {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    if let Head::Done((h, n)) = head::request(data, &mut headers) {
        let f = Forwarding { rest: h.target, script_name: "", host: h.host, peer_ip: "127.0.0.1", traceparent: "x" };
        head::upstream_head(&mut Vec::new(), h.method, &headers[..n], &f);
    }
    if let Ok(Some(r)) = head::response(data, false) {
        head::client_head(&mut Vec::new(), &data[..r.len], true).expect("a parsed head is written");
    }
    let whole = Chunked::default().feed(data);
    let cut = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let mut c = Chunked::default();
    let split = match c.feed(&data[..cut]) {
        Ok(None) => c.feed(&data[cut..]).map(|end| end.map(|e| e + cut)),
        other => other,
    };
    assert_eq!(whole, split, "the end of a chunked body depends on how it was read");
});
