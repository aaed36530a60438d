//! Per-request cost of the function host: a fresh instance of the hello guest
//! from an `InstancePre` (new store, WASI context, instantiate, `_start`, parse the
//! CGI output), with the pooling allocator against on-demand allocation.
//!
//! Run: `cargo bench -p weft-functions --bench instantiate` (after building the
//! guests with `bash functions/guests/build.sh`). Criterion prints the medians;
//! the last line prints the pooled/on-demand ratio measured in this run.

// A benchmark fails by panicking on setup errors.
#![allow(clippy::expect_used)]

use criterion::{BenchmarkId, Criterion, criterion_group};
use std::path::Path;
use std::time::Duration;
use weft_functions::{
    EngineOptions, EpochTicker, FunctionHost, GuestRequest, HostLimits, Identity, ModuleStore, new_engine,
};

fn host(pooled: bool, dir: &Path) -> (FunctionHost, EpochTicker) {
    let pool_instances = pooled.then_some(16);
    let engine = new_engine(EngineOptions { pool_instances, max_memory_bytes: 64 << 20 }).expect("engine");
    let store = ModuleStore::open(dir).expect("module store");
    let wasm = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("guests/build/hello.wasm"))
        .expect("guests/build/hello.wasm: run functions/guests/build.sh");
    let digest = store.put(&engine, &wasm).expect("store module");
    let module = store.load(&engine, &digest).expect("load module");
    let limits = HostLimits { timeout: Duration::from_secs(10), memory_bytes: 64 << 20 };
    let h = FunctionHost::new(&engine, &module, limits, Identity::default(), vec![]).expect("host");
    (h, EpochTicker::start(&engine))
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let req = GuestRequest { method: "GET".into(), path: "/".into(), ..Default::default() };
    for pooled in [true, false] {
        let (h, _ticker) = host(pooled, dir.path());
        let name = if pooled { "pooled" } else { "on-demand" };
        c.benchmark_group("instantiate").bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| h.instantiate_only().expect("instantiate"))
        });
        c.benchmark_group("hello_request").bench_with_input(BenchmarkId::from_parameter(name), &req, |b, req| {
            b.iter(|| h.handle(req).expect("hello"))
        });
    }
}

/// Medians measured again here, outside criterion's reporting, for the ratio line.
fn ratio() {
    let dir = tempfile::tempdir().expect("tempdir");
    let req = GuestRequest { method: "GET".into(), path: "/".into(), ..Default::default() };
    let median = |pooled: bool, full: bool| {
        let (h, _t) = host(pooled, dir.path());
        let mut samples: Vec<Duration> = (0..5000)
            .map(|_| {
                let t = std::time::SystemTime::now();
                let _ = if full { h.handle(&req).map(|_| ()) } else { h.instantiate_only() };
                t.elapsed().unwrap_or_default()
            })
            .collect();
        samples.sort();
        samples[samples.len() / 2].as_secs_f64() * 1e6
    };
    for (what, full) in [("instantiate", false), ("full hello request", true)] {
        let (p, o) = (median(true, full), median(false, full));
        println!("{what} median: pooled {p:.1} µs, on-demand {o:.1} µs, pooled/on-demand = {:.2}", p / o);
    }
}

criterion_group!(benches, bench);

fn main() {
    benches();
    ratio();
    Criterion::default().configure_from_args().final_summary();
}
