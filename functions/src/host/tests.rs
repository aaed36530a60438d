use super::*;
use crate::engine::{EngineOptions, EpochTicker, new_engine};
use crate::store::ModuleStore;
use bytes::Bytes;
use std::path::PathBuf;

/// The sample guests are built from source by `functions/guests/build.sh`, which
/// the test command runs first.
pub(crate) fn guest(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("guests/build/{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|_| panic!("{} missing: run functions/guests/build.sh", path.display()))
}

struct Fixture {
    host: FunctionHost,
    _ticker: EpochTicker,
    _dir: tempfile::TempDir,
}

fn host_for(name: &str, timeout_ms: u64, memory: u64, env: &[(&str, &str)]) -> Fixture {
    let engine = new_engine(EngineOptions { pool_instances: Some(8), max_memory_bytes: memory }).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = ModuleStore::open(dir.path()).unwrap();
    let digest = store.put(&engine, &guest(name)).unwrap();
    let module = store.load(&engine, &digest).unwrap();
    let limits = HostLimits { timeout: Duration::from_millis(timeout_ms), memory_bytes: memory };
    let id = Identity { namespace: "default".into(), function: name.into(), revision: format!("{name}-00001") };
    let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let host = FunctionHost::new(&engine, &module, limits, id, env).unwrap();
    Fixture { host, _ticker: EpochTicker::start(&engine), _dir: dir }
}

fn get(query: &str) -> GuestRequest {
    GuestRequest { method: "GET".into(), path: "/".into(), query: query.into(), ..Default::default() }
}

#[test]
fn hello_answers_with_the_greeting_from_env() {
    let f = host_for("hello", 5_000, 64 << 20, &[("GREETING", "Hej")]);
    let r = f.host.handle(&GuestRequest { body: Bytes::from_static(b"abc"), ..get("") }).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(String::from_utf8_lossy(&r.body), "Hej from weft! (GET /, 3 bytes)\n");
}

#[test]
fn echo_returns_the_body_and_its_type() {
    let f = host_for("echo", 5_000, 64 << 20, &[]);
    let body = Bytes::from(vec![7u8; 100_000]);
    let req = GuestRequest {
        method: "POST".into(),
        headers: vec![("content-type".into(), "application/x-test".into())],
        body: body.clone(),
        ..Default::default()
    };
    let r = f.host.handle(&req).unwrap();
    assert_eq!(r.body, body);
    assert_eq!(r.headers, vec![("Content-Type".into(), "application/x-test".into())]);
}

#[test]
fn json_guest_sees_identity_and_headers() {
    let f = host_for("json", 5_000, 64 << 20, &[]);
    let req = GuestRequest {
        method: "POST".into(),
        path: "/x".into(),
        headers: vec![("traceparent".into(), "00-abc-def-01".into())],
        body: Bytes::from_static(br#"{"n":1}"#),
        ..Default::default()
    };
    let r = f.host.handle(&req).unwrap();
    let text = String::from_utf8_lossy(&r.body);
    assert!(text.contains(r#""revision":"json-00001""#), "{text}");
    assert!(text.contains(r#""traceparent":"00-abc-def-01""#), "{text}");
    assert!(text.contains(r#""body":{"n":1}"#), "{text}");
}

#[test]
fn runaway_guest_is_stopped_at_its_deadline() {
    let f = host_for("stress", 200, 64 << 20, &[]);
    let start = std::time::SystemTime::now();
    let err = f.host.handle(&get("mode=loop")).unwrap_err();
    let took = start.elapsed().unwrap();
    assert!(matches!(err, HostError::Timeout(_)), "{err}");
    assert_eq!(err.http_status(), 504);
    assert!(took >= Duration::from_millis(200), "stopped early: {took:?}");
    // Generous bound: this is a correctness check, not a benchmark.
    assert!(took < Duration::from_secs(2), "stopped late: {took:?}");
    // The host stays usable after an interrupted instance.
    assert_eq!(f.host.handle(&get("")).unwrap().status, 200);
}

#[test]
fn memory_cap_is_enforced_with_a_clear_error() {
    let f = host_for("stress", 5_000, 16 << 20, &[]);
    let err = f.host.handle(&get("mode=alloc")).unwrap_err();
    assert!(matches!(err, HostError::MemoryLimit { limit_mib: 16 }), "{err}");
    assert!(err.to_string().contains("memory limit of 16 MiB"));
}

#[test]
fn traps_and_exit_codes_are_reported() {
    let f = host_for("stress", 5_000, 64 << 20, &[]);
    assert!(matches!(f.host.handle(&get("mode=trap")).unwrap_err(), HostError::Trap(_)));
    assert!(matches!(f.host.handle(&get("mode=exit")).unwrap_err(), HostError::Exit(3)));
}

#[test]
fn concurrent_requests_share_one_host() {
    let f = host_for("hello", 5_000, 64 << 20, &[]);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..8).map(|_| s.spawn(|| (0..20).all(|_| f.host.handle(&get("")).is_ok()))).collect();
        assert!(handles.into_iter().all(|h| h.join().unwrap()));
    });
}

#[test]
fn store_recompiles_a_damaged_cache_and_refuses_non_wasm() {
    let engine = new_engine(EngineOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = ModuleStore::open(dir.path()).unwrap();
    assert!(matches!(store.put(&engine, b"not wasm"), Err(HostError::Compile { .. })));
    let digest = store.put(&engine, &guest("hello")).unwrap();
    let cwasm = store.compiled(&engine, &digest).unwrap();
    std::fs::write(&cwasm, b"garbage").unwrap();
    assert!(store.load(&engine, &digest).is_ok());
    let missing = format!("sha256:{}", "0".repeat(64));
    assert!(matches!(store.load(&engine, &missing), Err(HostError::ModuleMissing { .. })));
    assert!(matches!(store.load(&engine, "md5:x"), Err(HostError::BadDigest(_))));
}

#[test]
fn a_module_without_start_is_refused_at_startup() {
    let engine = new_engine(EngineOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = ModuleStore::open(dir.path()).unwrap();
    // The smallest valid module: no imports, no exports.
    let digest = store.put(&engine, b"\0asm\x01\0\0\0").unwrap();
    let module = store.load(&engine, &digest).unwrap();
    let limits = HostLimits { timeout: Duration::from_secs(1), memory_bytes: 1 << 20 };
    let err = FunctionHost::new(&engine, &module, limits, Identity::default(), vec![]).err().unwrap();
    assert!(matches!(err, HostError::NotACommand), "{err}");
}

/// A one-shot HTTP server on loopback: answers the first request with `body`
/// and hands back what it received.
fn one_shot_server(body: &'static str) -> (String, std::thread::JoinHandle<String>) {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let handle = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let request = read_request(&mut conn);
        let reply = format!("HTTP/1.1 201 Created\r\nContent-Length: {}\r\nX-Seen: yes\r\n\r\n{body}", body.len());
        conn.write_all(reply.as_bytes()).unwrap();
        request
    });
    (addr, handle)
}

/// Reads one request whole: the head, then `content-length` bytes of body
/// (which may come in a later segment than the head).
fn read_request(conn: &mut std::net::TcpStream) -> String {
    use std::io::Read;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
                .unwrap_or(0usize);
            if buf.len() >= end + 4 + len {
                return text;
            }
        }
        let n = conn.read(&mut chunk).unwrap();
        assert!(n > 0, "the client closed early: {text}");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[test]
fn a_guest_reaches_allowed_addresses_through_the_host() {
    let (addr, server) = one_shot_server("made");
    let f = host_for("fetch", 5_000, 64 << 20, &[]);
    let host = f.host.with_outbound(Outbound { allowed: vec![addr.clone()], ..Default::default() });
    let req = GuestRequest {
        method: "POST".into(),
        body: Bytes::from(format!("PUT http://{addr}/items/7\npayload")),
        ..get("")
    };
    let r = host.handle(&req).unwrap();
    assert_eq!((r.status, String::from_utf8_lossy(&r.body).as_ref()), (200, "201 made"));
    let seen = server.join().unwrap();
    assert!(seen.starts_with("PUT /items/7 HTTP/1.1"), "{seen}");
    assert!(seen.ends_with("payload"), "{seen}");
}

#[test]
fn a_guest_cannot_reach_what_the_platform_did_not_allow() {
    let f = host_for("fetch", 5_000, 64 << 20, &[]);
    let host = f.host.with_outbound(Outbound { allowed: vec!["127.0.0.1:1".into()], ..Default::default() });
    let r = host.handle(&get("url=http://127.0.0.2:80/")).unwrap();
    assert_eq!(r.status, 502);
    let text = String::from_utf8_lossy(&r.body);
    assert!(text.contains("outbound to 127.0.0.2:80 is not allowed"), "{text}");
    // Allowed but nobody listens: the failure is the guest's to handle, not a trap.
    let r = host.handle(&get("url=http://127.0.0.1:1/")).unwrap();
    assert_eq!(r.status, 502, "{}", String::from_utf8_lossy(&r.body));
}
