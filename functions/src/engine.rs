//! The wasmtime engine shared by compile (in `weft up`) and run (in each instance).
//!
//! Settings that change generated code (features, memory reservation, epoch
//! interruption) are the same in both, so a module precompiled by `weft up` loads
//! in an instance; the instance alone adds the pooling allocator, whose limits
//! do not affect code.

use crate::error::HostError;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances. A runaway guest is stopped at most one tick
/// after its deadline; a tick costs one atomic increment.
pub const EPOCH_TICK: Duration = Duration::from_millis(2);

/// Linear memory kept mapped per pool slot between requests. A Rust guest
/// touches about 1.1 MiB (1 MiB stack, data, a little heap).
const KEEP_RESIDENT: usize = 4 << 20;
/// Table bytes kept mapped per slot.
const KEEP_RESIDENT_TABLE: usize = 64 << 10;

/// Pool sizing for instance processes.
#[derive(Debug, Clone, Copy)]
pub struct EngineOptions {
    /// `Some(n)`: pooling allocator with `n` instance slots; `None`: on-demand.
    pub pool_instances: Option<u32>,
    /// Largest linear memory a slot holds (the revision's memory cap).
    pub max_memory_bytes: u64,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self { pool_instances: None, max_memory_bytes: 4 << 30 }
    }
}

/// Builds an engine with epoch interruption and, if asked, the pooling allocator.
pub fn new_engine(opts: EngineOptions) -> Result<Engine, HostError> {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.parallel_compilation(true);
    if let Some(n) = opts.pool_instances {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_core_instances(n)
            .total_memories(n)
            .total_tables(n)
            .max_memory_size(usize::try_from(opts.max_memory_bytes).unwrap_or(usize::MAX))
            // Reset a slot by rewriting only the pages the last request dirtied
            // (found with PAGEMAP_SCAN, Linux ≥ 6.7), instead of madvise: madvise
            // unmaps pages, which costs a TLB-shootdown IPI to every core and a
            // page fault per page on the next request. Measured on the hello
            // guest: the kernel took 70 % of an instance's CPU without this.
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(KEEP_RESIDENT_TABLE)
            .pagemap_scan(Enabled::Auto);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    Engine::new(&config).map_err(HostError::Engine)
}

/// Advances an engine's epoch every [`EPOCH_TICK`] on a thread of its own, until
/// dropped. Deadlines are counted in these ticks.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub fn start(engine: &Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (engine, flag) = (engine.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("weft-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .ok();
        Self { stop, thread }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
