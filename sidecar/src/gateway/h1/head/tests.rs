use super::*;

fn parse(raw: &str) -> Head<RequestHead<'_>> {
    let mut headers = [EMPTY_HEADER; MAX_HEADERS];
    match request(raw.as_bytes(), &mut headers) {
        Head::Done((h, _)) => Head::Done(h),
        Head::Partial => Head::Partial,
        Head::Unsupported => Head::Unsupported,
    }
}

#[test]
fn plain_requests_are_taken_with_their_framing() {
    let Head::Done(h) = parse("POST /a?b=1 HTTP/1.1\r\nHost: x.example\r\nContent-Length: 5\r\n\r\nhello") else {
        panic!("taken")
    };
    assert_eq!((h.method, h.target, h.host, h.framing), ("POST", "/a?b=1", "x.example", Framing::Length(5)));
    assert_eq!(h.len, 60);
    let Head::Done(h) = parse("PUT / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: Chunked\r\nconnection: close\r\n\r\n")
    else {
        panic!("taken")
    };
    assert_eq!((h.framing, h.close), (Framing::Chunked, true));
    let Head::Done(h) = parse("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nTraceparent: 00-a-b-01\r\n\r\n")
    else {
        panic!("taken")
    };
    assert_eq!((h.framing, h.traceparent), (Framing::Empty, Some("00-a-b-01")));
    assert_eq!(parse("GET / HTTP/1.1\r\nHost: x\r\n"), Head::Partial);
}

#[test]
fn anything_unusual_goes_to_hyper() {
    for raw in [
        "GET / HTTP/1.0\r\nHost: x\r\n\r\n",
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        "GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n",
        "CONNECT x:443 HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/grpc\r\n\r\n",
        "GET / HTTP/1.1\r\nHo st: x\r\n\r\n",
    ] {
        assert_eq!(parse(raw), Head::Unsupported, "{raw:?}");
    }
    let huge = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n", "a".repeat(MAX_HEAD));
    assert_eq!(parse(&huge), Head::Unsupported, "a head that never ends within the limit");
}

#[test]
fn the_instance_gets_forwarding_headers_and_no_hop_by_hop_ones() {
    let raw = "POST /ns/fn/x?q=1 HTTP/1.1\r\nHost: gw\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: 5\r\nX-Forwarded-For: 10.0.0.1\r\nWeft-Replica: 9\r\nWeft-Script-Name: /evil\r\nTraceparent: old\r\nContent-Length: 2\r\nX-App: yes\r\n\r\nhi";
    let mut headers = [EMPTY_HEADER; MAX_HEADERS];
    let Head::Done((h, n)) = request(raw.as_bytes(), &mut headers) else { panic!("taken") };
    let mut out = Vec::new();
    let f =
        Forwarding { rest: "/x?q=1", script_name: "/ns/fn", host: h.host, peer_ip: "127.0.0.9", traceparent: "00-new" };
    upstream_head(&mut out, h.method, &headers[..n], &f);
    let text = String::from_utf8(out).unwrap().to_ascii_lowercase();
    assert!(text.starts_with("post /x?q=1 http/1.1\r\n"), "{text}");
    for kept in ["x-forwarded-for: 10.0.0.1\r\n", "content-length: 2\r\n", "x-app: yes\r\n"] {
        assert!(text.contains(kept), "{kept:?} in {text}");
    }
    for set in [
        "\nhost: gw\r\n",
        "\nx-forwarded-host: gw\r\n",
        "\nx-forwarded-for: 127.0.0.9\r\n",
        "\nx-forwarded-proto: http\r\n",
        "\nweft-script-name: /ns/fn\r\n",
        "\ntraceparent: 00-new\r\n",
    ] {
        assert_eq!(text.matches(set).count(), 1, "{set:?} once in {text}");
    }
    for dropped in ["connection:", "x-hop:", "keep-alive:", "weft-replica:", "/evil", "traceparent: old"] {
        assert!(!text.contains(dropped), "{dropped:?} not in {text}");
    }
}

#[test]
fn response_framing_follows_status_method_and_headers() {
    let framing = |raw: &str, head: bool| response(raw.as_bytes(), head).unwrap().unwrap();
    let r = framing("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false);
    assert_eq!((r.status, r.framing, r.close, r.rewrite), (200, Framing::Length(5), false, false));
    assert_eq!(framing("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true).framing, Framing::Empty);
    assert_eq!(framing("HTTP/1.1 204 No Content\r\n\r\n", false).framing, Framing::Empty);
    assert_eq!(framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false).framing, Framing::Chunked);
    let r = framing("HTTP/1.1 200 OK\r\n\r\n", false);
    assert_eq!((r.framing, r.close), (Framing::UntilClose, true));
    let r = framing("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", false);
    assert_eq!((r.framing, r.close, r.rewrite), (Framing::Empty, true, true));
    assert!(framing("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false).close);
    assert_eq!(response(b"HTTP/1.1 200 OK\r\nContent-Len", false), Ok(None));
    assert!(response(b"HTTP/1.1 100 Continue\r\n\r\n", false).is_err());
    assert!(response(b"garbage\r\n\r\n", false).is_err());
}

#[test]
fn the_client_head_drops_hop_by_hop_headers_and_may_close() {
    let raw =
        b"HTTP/1.1 201 Created\r\nConnection: x-a\r\nX-A: 1\r\nKeep-Alive: 5\r\nX-B: 2\r\nContent-Length: 0\r\n\r\n";
    let mut out = Vec::new();
    client_head(&mut out, raw, true).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "HTTP/1.1 201 Created\r\nX-B: 2\r\nContent-Length: 0\r\nconnection: close\r\n\r\n"
    );
}
