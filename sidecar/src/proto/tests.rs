//! Codec tests against frames captured from real peers (`testdata/`: one line
//! per TCP read, `connN DIR LEN hex`): sofa-rpc-node / sofa-bolt-node for
//! Bolt v1 and v2 with CRC32, dubbo2.js for Dubbo.

use super::*;

/// The bytes of each `(connection, direction)` stream in capture order.
fn streams(capture: &str) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    for line in capture.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let key = format!("{} {}", f[0], f[1]);
        let bytes = hex::decode(f[3]).unwrap();
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, b)) => b.extend_from_slice(&bytes),
            None => out.push((key, bytes)),
        }
    }
    out
}

/// Decodes every frame of a stream, checking none is left over.
fn frames(codec: &dyn Codec, mut buf: &[u8]) -> Vec<(Frame, Vec<u8>)> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let f = codec.decode(buf).unwrap();
        out.push((f.clone(), buf[..f.len].to_vec()));
        buf = &buf[f.len..];
    }
    out
}

const BOLT_SOFA: &str = include_str!("testdata/bolt-v1-hessian2-sofa-rpc-node.hex");
const BOLT_V2: &str = include_str!("testdata/bolt-v1-v2crc-lowlevel.hex");
const DUBBO: &str = include_str!("testdata/dubbo2-dubbo2js.hex");

#[test]
fn bolt_v1_requests_name_service_version_and_method() {
    let s = streams(BOLT_SOFA);
    let reqs = frames(&bolt::Bolt, &s[0].1);
    assert_eq!(reqs.len(), 2);
    let (f, _) = &reqs[0];
    assert_eq!((f.kind, f.heartbeat, f.request_id), (Kind::Request, false, 1));
    assert_eq!((f.service(), f.version(), f.method()), ("com.nodejs.test.TestService", "1.0", "plus"));
    let resps = frames(&bolt::Bolt, &s[1].1);
    assert_eq!(
        resps.iter().map(|(f, _)| (f.kind, f.request_id, f.status)).collect::<Vec<_>>(),
        [(Kind::Response, 1, 0), (Kind::Response, 2, 0)]
    );
}

#[test]
fn bolt_decode_memo_recalls_the_method_only_for_the_same_content_start() {
    let all: Vec<Vec<u8>> = [BOLT_SOFA, BOLT_V2]
        .iter()
        .flat_map(|c| streams(c))
        .flat_map(|(_, b)| frames(&bolt::Bolt, &b))
        .map(|(_, raw)| raw)
        .collect();
    let mut memo = DecodeMemo::default();
    for (i, raw) in all.iter().chain(all.iter().rev()).enumerate() {
        assert_eq!(bolt::Bolt.decode_with(raw, &mut memo), bolt::Bolt.decode(raw), "frame {i}");
    }
    let sofa = frames(&bolt::Bolt, &streams(BOLT_SOFA)[0].1).remove(0);
    let content = &sofa.1[sofa.0.body.clone()];
    let mut memo = DecodeMemo::default();
    bolt::Bolt.decode_with(&sofa.1, &mut memo).unwrap();
    assert!(memo.recall(content).is_some_and(|(n, _)| n.method() == "plus"));
    // Another method of the same length: the content's start differs.
    let at = sofa.1.windows(4).position(|w| w == b"plus").unwrap();
    let mut plux = sofa.1.clone();
    plux[at..at + 4].copy_from_slice(b"plux");
    assert_eq!(bolt::Bolt.decode_with(&plux, &mut memo).unwrap().method(), "plux");
    // Recalled, not read: a memo holding another method for these bytes gives it.
    bolt::Bolt.decode_with(&sofa.1, &mut memo).unwrap();
    memo.names = Names::new("", "", "c");
    let f = bolt::Bolt.decode_with(&sofa.1, &mut memo).unwrap();
    assert_eq!((f.service(), f.version(), f.method()), ("com.nodejs.test.TestService", "1.0", "c"));
}

#[test]
fn bolt_v2_with_crc_and_heartbeats_several_per_read() {
    let s = streams(BOLT_V2);
    let all: Vec<Frame> = s.iter().flat_map(|(_, b)| frames(&bolt::Bolt, b)).map(|(f, _)| f).collect();
    let heartbeats = all.iter().filter(|f| f.heartbeat).count();
    assert!(heartbeats >= 4, "{all:#?}");
    let v2: Vec<_> = frames(&bolt::Bolt, &s.iter().find(|(k, _)| k == "conn3 C->S").unwrap().1);
    assert_eq!(v2.len(), 2, "a request and a heartbeat in one read");
    assert_eq!(v2[0].0.method(), "echo");
    assert!(v2[1].0.heartbeat);
}

#[test]
fn bolt_request_id_rewrite_keeps_the_crc_valid() {
    let s = streams(BOLT_V2);
    let (f, mut raw) = frames(&bolt::Bolt, &s.iter().find(|(k, _)| k == "conn3 C->S").unwrap().1).remove(0);
    bolt::Bolt.set_request_id(&mut raw, 0xdead_beef);
    let again = bolt::Bolt.decode(&raw).unwrap();
    assert_eq!(again.request_id, 0xdead_beef);
    assert!(bolt::crc_ok(&raw));
    assert_eq!(Frame { request_id: f.request_id, ..again }, f);
    raw[30] ^= 0xff;
    assert!(matches!(bolt::Bolt.decode(&raw), Err(DecodeError::Malformed { .. })), "a flipped byte fails the CRC");
}

#[test]
fn bolt_replies_match_what_the_peer_sends() {
    let s = streams(BOLT_V2);
    let hb = frames(&bolt::Bolt, &s.iter().find(|(k, _)| k == "conn2 C->S").unwrap().1).remove(1);
    let reply = bolt::Bolt.heartbeat_reply(&hb.0, &hb.1);
    let peer = frames(&bolt::Bolt, &s.iter().find(|(k, _)| k == "conn2 S->C").unwrap().1).remove(1).1;
    assert_eq!(reply, peer, "sofa-bolt-node's own heartbeat ack");
    let (req, raw) = frames(&bolt::Bolt, &s.iter().find(|(k, _)| k == "conn3 C->S").unwrap().1).remove(0);
    let err = bolt::Bolt.error_reply(&req, &raw, Status::NoRoute, "no route");
    let f = bolt::Bolt.decode(&err).unwrap();
    assert_eq!((f.kind, f.request_id, f.status), (Kind::Response, req.request_id, 6));
    assert!(bolt::crc_ok(&err));
}

#[test]
fn dubbo_requests_name_service_version_and_method() {
    let s = streams(DUBBO);
    let reqs = frames(&dubbo::Dubbo, &s[0].1);
    let got: Vec<_> = reqs.iter().map(|(f, _)| (f.request_id, f.kind, f.method())).collect();
    assert_eq!(got, [(1, Kind::Request, "sayHello"), (2, Kind::Request, "plus")]);
    assert_eq!(reqs[0].0.service(), "com.alibaba.dubbo.demo.DemoService");
    assert_eq!(reqs[0].0.version(), "1.0.0");
    for (f, raw) in &reqs {
        assert!(f.headers.is_empty(), "no weft-tag in the body: the arguments are not stepped over");
        let all = dubbo::all_attachments(raw).unwrap();
        assert_eq!(all.get("application"), Some("dubbo2.js"), "attachments after the arguments: {all:?}");
        assert_eq!(all.get("path"), Some("com.alibaba.dubbo.demo.DemoService"));
    }
    let resps = frames(&dubbo::Dubbo, &s[1].1);
    assert_eq!(
        resps.iter().map(|(f, _)| (f.kind, f.status)).collect::<Vec<_>>(),
        [(Kind::Response, 20), (Kind::Response, 20)]
    );
}

#[test]
fn a_connections_decode_memo_gives_what_decoding_afresh_gives() {
    let captured: Vec<Vec<u8>> = frames(&dubbo::Dubbo, &streams(DUBBO)[0].1).into_iter().map(|(_, raw)| raw).collect();
    let call = |service: &str, version: &str, method: &str, tag: Option<&str>| {
        let attachments: Headers = tag.map(|t| (TAG_HEADER, t)).into_iter().collect();
        let args = [serde_json::json!("x")];
        let inv = dubbo::Invocation { service, version, method, args: &args, attachments: &attachments };
        dubbo::request_frame(&inv, 7)
    };
    let svc = "com.alibaba.dubbo.demo.DemoService";
    let sequence = [
        captured[0].clone(),
        captured[0].clone(), // the same names: recalled
        captured[1].clone(), // another method
        call(svc, "", "sayHello", None),
        call(svc, "", "sayHello", Some("canary")), // recalled, and the tag still read
        call(&format!("{svc}X"), "", "sayHello", None), // a longer service name
        call(svc, "1.0.1", "sayHello", Some("canary")),
        call("", "", "sayHello", None), // names no service: an error
        captured[0].clone(),
    ];
    let mut memo = DecodeMemo::default();
    for (i, raw) in sequence.iter().enumerate() {
        assert_eq!(dubbo::Dubbo.decode_with(raw, &mut memo), dubbo::Dubbo.decode(raw), "frame {i}");
    }
    let tagged = dubbo::Dubbo.decode_with(&sequence[4], &mut memo).unwrap();
    assert_eq!((tagged.service(), tagged.header(TAG_HEADER)), (svc, Some("canary")));
    assert_eq!(dubbo::Dubbo.decode_with(&sequence[5], &mut memo).unwrap().service(), format!("{svc}X"));
    assert!(dubbo::Dubbo.decode_with(&sequence[7], &mut memo).is_err());

    // The names are recalled, not read: a memo holding other names for the
    // same bytes gives those.
    let mut memo = DecodeMemo::default();
    dubbo::Dubbo.decode_with(&captured[0], &mut memo).unwrap();
    assert!(memo.recall(&captured[0][16..]).is_some_and(|(n, _)| n.method() == "sayHello"));
    assert!(memo.recall(&captured[1][16..]).is_none(), "another method's bytes differ");
    memo.names = Names::new("a.B", "", "c");
    assert_eq!(dubbo::Dubbo.decode_with(&captured[0], &mut memo).unwrap().method(), "c");
}

#[test]
fn dubbo_id_rewrite_heartbeat_and_error_reply() {
    let (req, mut raw) = frames(&dubbo::Dubbo, &streams(DUBBO)[0].1).remove(0);
    dubbo::Dubbo.set_request_id(&mut raw, u64::MAX - 1);
    assert_eq!(dubbo::Dubbo.decode(&raw).unwrap().request_id, u64::MAX - 1);
    let err = dubbo::Dubbo.error_reply(&req, &raw, Status::NoRoute, "no function serves it");
    let f = dubbo::Dubbo.decode(&err).unwrap();
    assert_eq!((f.kind, f.request_id, f.status), (Kind::Response, 1, 60));
    assert_eq!(hessian::Reader::new(&err[16..]).string().unwrap().as_deref(), Some("no function serves it"));
    let hb = [0xda, 0xbb, 0xe2, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 1, b'N'];
    let f = dubbo::Dubbo.decode(&hb).unwrap();
    assert!(f.heartbeat && f.kind == Kind::Request);
    assert_eq!(dubbo::Dubbo.heartbeat_reply(&f, &hb), [0xda, 0xbb, 0x22, 20, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 1, b'N']);
}

#[test]
fn every_prefix_of_a_frame_is_incomplete() {
    let cases: [(&dyn Codec, Vec<u8>); 3] = [
        (&bolt::Bolt, streams(BOLT_V2)[2].1.clone()),
        (&dubbo::Dubbo, streams(DUBBO)[0].1.clone()),
        (&wrpc::Wrpc, wrpc::encode(wrpc::REQUEST, 0, 7, "svc", "m", b"body")),
    ];
    for (codec, bytes) in cases {
        let len = codec.decode(&bytes).unwrap().len;
        for cut in 0..len {
            assert_eq!(codec.decode(&bytes[..cut]), Err(DecodeError::Incomplete), "{} cut at {cut}", codec.name());
        }
    }
}

#[test]
fn malformed_frames_are_errors() {
    let absurd_dubbo = [0xda, 0xbb, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 0xff, 0xff, 0xff];
    let bad_hessian = [0xda, 0xbb, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 3, 0x05, b'2', b'.'];
    let bad_magic = [0xda, 0xbc, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0];
    for bad in [&absurd_dubbo[..], &bad_hessian, &bad_magic] {
        assert!(matches!(dubbo::Dubbo.decode(bad), Err(DecodeError::Malformed { .. })), "{bad:02x?}");
    }
    let mut absurd_bolt = hex::decode("0101000101000000010100000bb8002c002e000000ef").unwrap();
    absurd_bolt[18..22].copy_from_slice(&[0xff; 4]);
    assert!(matches!(bolt::Bolt.decode(&absurd_bolt), Err(DecodeError::Malformed { .. })));
    assert!(matches!(bolt::Bolt.decode(&[0x09, 0x01]), Err(DecodeError::Malformed { .. })));
    let mut bad_kind = wrpc::encode(wrpc::REQUEST, 0, 1, "s", "m", b"");
    bad_kind[2] = 9;
    assert!(matches!(wrpc::Wrpc.decode(&bad_kind), Err(DecodeError::Malformed { .. })));
}

#[test]
fn wrpc_frames_roundtrip() {
    let raw = wrpc::encode(wrpc::REQUEST, 0, 42, "com.example.Echo", "echo", b"hi");
    let f = wrpc::Wrpc.decode(&raw).unwrap();
    assert_eq!((f.service(), f.method(), f.request_id), ("com.example.Echo", "echo", 42));
    assert_eq!(&raw[f.body.clone()], b"hi");
    let err = wrpc::Wrpc.error_reply(&f, &raw, Status::Timeout, "late");
    let e = wrpc::Wrpc.decode(&err).unwrap();
    assert_eq!((e.kind, e.status, &err[e.body.clone()]), (Kind::Response, 3, &b"late"[..]));
}

#[test]
fn every_one_byte_corruption_of_captured_frames_keeps_the_invariants() {
    let cases: [(&dyn Codec, &str); 3] = [(&bolt::Bolt, BOLT_SOFA), (&bolt::Bolt, BOLT_V2), (&dubbo::Dubbo, DUBBO)];
    for (codec, capture) in cases {
        for (_, bytes) in streams(capture) {
            for at in 0..bytes.len() {
                for flip in [0x01, 0x80, 0xff] {
                    let mut b = bytes.clone();
                    b[at] ^= flip;
                    check_codec(codec, &b);
                }
            }
        }
    }
}

#[test]
fn headers_keep_order_and_find_names_in_any_case() {
    let mut h = Headers::default();
    assert!(h.is_empty() && h.get("x").is_none());
    h.push("service", "com.example.A:1.0");
    h.push("weft-tag", "canary");
    h.push("", "");
    h.push("Weft-Tag", "second");
    assert_eq!(h.len(), 4);
    assert_eq!(h.get("WEFT-TAG"), Some("canary"), "the first of a repeated name");
    let pairs: Vec<_> = h.iter().collect();
    assert_eq!(pairs, [("service", "com.example.A:1.0"), ("weft-tag", "canary"), ("", ""), ("Weft-Tag", "second")]);
    assert_eq!(
        format!("{h:?}"),
        r#"{"service": "com.example.A:1.0", "weft-tag": "canary", "": "", "Weft-Tag": "second"}"#
    );
    assert_eq!(pairs.into_iter().collect::<Headers>(), h);
}
