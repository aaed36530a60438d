//! One revision's function host: a module linked once into an `InstancePre`, then
//! a fresh store and instance per request, so requests share nothing.

// The guest deadline is wall-clock time on a plain (non-tokio) thread, checked
// from the epoch callback; tokio's pausable clock has no meaning there.
#![allow(clippy::disallowed_types)]

use crate::cgi::{GuestRequest, GuestResponse, parse_output};
use crate::error::HostError;
use crate::outbound::{self, Outbound};
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;
use wasmtime::{Caller, Engine, InstancePre, Linker, Module, ResourceLimiter, Store, Trap, UpdateDeadline};
use wasmtime_wasi::I32Exit;
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};

/// Largest response body a guest may write; more is an error, not a truncation.
pub const MAX_STDOUT: usize = 16 << 20;
/// Guest stderr kept for the log per request.
const MAX_STDERR: usize = 64 << 10;
/// Table elements a guest may grow to (function pointers; generous for real code).
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// Which function and revision a host runs, for logs and the guest's environment.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    pub namespace: String,
    pub function: String,
    pub revision: String,
}

/// Per-request limits from the revision spec.
#[derive(Debug, Clone, Copy)]
pub struct HostLimits {
    pub timeout: Duration,
    pub memory_bytes: u64,
}

/// Per-request store data: the WASI context, the memory limiter, the
/// deadline, and the outbound policy with the answer a guest has yet to take.
struct GuestState {
    wasi: WasiP1Ctx,
    limiter: MemoryCap,
    deadline: Instant,
    outbound: Arc<Outbound>,
    pending: Vec<u8>,
}

/// Caps linear memory and remembers whether it refused a growth, so a guest that
/// aborts after `malloc` failed is reported as out of memory, not as a bare trap.
struct MemoryCap {
    limit: usize,
    refused: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(&mut self, _current: usize, desired: usize, max: Option<usize>) -> wasmtime::Result<bool> {
        let ok = desired <= self.limit && max.is_none_or(|m| desired <= m);
        self.refused |= !ok;
        Ok(ok)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, max: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS && max.is_none_or(|m| desired <= m))
    }
}

/// Runs one revision's module. Cheap to share across threads (`&self` calls).
pub struct FunctionHost {
    engine: Engine,
    pre: InstancePre<GuestState>,
    limits: HostLimits,
    identity: Identity,
    env: Vec<(String, String)>,
    outbound: Arc<Outbound>,
}

impl FunctionHost {
    /// Links `module` against WASI preview 1 and weft's outbound HTTP (module
    /// `weft`); anything else it imports fails
    /// here, at startup, not on the first request.
    pub fn new(
        engine: &Engine,
        module: &Module,
        limits: HostLimits,
        identity: Identity,
        env: Vec<(String, String)>,
    ) -> Result<Self, HostError> {
        // Checked here so a module that is not a WASI command fails at startup
        // with a clear reason, not on every request.
        if !matches!(module.get_export("_start"), Some(wasmtime::ExternType::Func(_))) {
            return Err(HostError::NotACommand);
        }
        let mut linker: Linker<GuestState> = Linker::new(engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |s| &mut s.wasi).map_err(HostError::Link)?;
        link_outbound(&mut linker).map_err(HostError::Link)?;
        let pre = linker.instantiate_pre(module).map_err(HostError::Link)?;
        let outbound = Arc::default();
        Ok(Self { engine: engine.clone(), pre, limits, identity, env, outbound })
    }

    /// Where the guest's outbound HTTP may go (default: nowhere).
    pub fn with_outbound(mut self, outbound: Outbound) -> Self {
        self.outbound = Arc::new(outbound);
        self
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Runs the guest for one request and parses its CGI response. Blocks the
    /// calling thread until the guest ends or its deadline (plus one epoch tick)
    /// passes — except inside a blocking WASI call (a sleep), which epochs
    /// cannot interrupt: the guest is stopped when the call returns, while the
    /// instance proxy has already answered 504 at the deadline.
    pub fn handle(&self, req: &GuestRequest) -> Result<GuestResponse, HostError> {
        let stdout = MemoryOutputPipe::new(MAX_STDOUT);
        let stderr = MemoryOutputPipe::new(MAX_STDERR);
        let mut store = self.new_store(req, &stdout, &stderr);
        let result = self.run(&mut store);
        self.log_stderr(&stderr);
        let refused = store.data().limiter.refused;
        drop(store);
        match result {
            Ok(()) => parse_output(&stdout.contents()).map_err(HostError::BadOutput),
            Err(e) => Err(self.classify(e, refused)),
        }
    }

    fn new_store(&self, req: &GuestRequest, stdout: &MemoryOutputPipe, stderr: &MemoryOutputPipe) -> Store<GuestState> {
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdin(MemoryInputPipe::new(req.body.clone()))
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .args(&[self.identity.function.as_str()]);
        // Spec env first, then the request's CGI variables, which win on a clash.
        wasi.envs(&self.env).envs(&req.cgi_env()).envs(&[
            ("WEFT_FUNCTION", self.identity.function.as_str()),
            ("WEFT_REVISION", self.identity.revision.as_str()),
            ("WEFT_NAMESPACE", self.identity.namespace.as_str()),
        ]);
        let limit = usize::try_from(self.limits.memory_bytes).unwrap_or(usize::MAX);
        let state = GuestState {
            wasi: wasi.build_p1(),
            limiter: MemoryCap { limit, refused: false },
            deadline: Instant::now() + self.limits.timeout,
            outbound: self.outbound.clone(),
            pending: Vec::new(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        // Every epoch tick, compare the clock with the deadline: exact to one tick
        // however much the ticker thread drifts.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|ctx| {
            Ok(if Instant::now() >= ctx.data().deadline {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Continue(1)
            })
        });
        store
    }

    /// Creates the per-request store and instance without running the guest: the
    /// fixed cost every request pays, measured by the benchmarks.
    pub fn instantiate_only(&self) -> Result<(), HostError> {
        let (stdout, stderr) = (MemoryOutputPipe::new(MAX_STDOUT), MemoryOutputPipe::new(MAX_STDERR));
        let mut store = self.new_store(&GuestRequest::default(), &stdout, &stderr);
        self.pre.instantiate(&mut store).map(|_| ()).map_err(HostError::Instantiate)
    }

    fn run(&self, store: &mut Store<GuestState>) -> Result<(), wasmtime::Error> {
        let instance = self.pre.instantiate(&mut *store)?;
        let start = instance.get_typed_func::<(), ()>(&mut *store, "_start")?;
        match start.call(&mut *store, ()) {
            Err(e) if e.downcast_ref::<I32Exit>().is_some_and(|x| x.0 == 0) => Ok(()),
            other => other,
        }
    }

    fn classify(&self, e: wasmtime::Error, memory_refused: bool) -> HostError {
        let err = if let Some(exit) = e.downcast_ref::<I32Exit>() {
            if memory_refused { self.memory_error() } else { HostError::Exit(exit.0) }
        } else if let Some(trap) = e.downcast_ref::<Trap>() {
            match trap {
                Trap::Interrupt => HostError::Timeout(self.limits.timeout),
                _ if memory_refused => self.memory_error(),
                _ => HostError::Trap(format!("{e:#}")),
            }
        } else if memory_refused {
            self.memory_error()
        } else {
            HostError::Instantiate(e)
        };
        let id = &self.identity;
        tracing::warn!(namespace = %id.namespace, function = %id.function, revision = %id.revision, error = %err, "guest failed");
        err
    }

    fn memory_error(&self) -> HostError {
        HostError::MemoryLimit { limit_mib: self.limits.memory_bytes >> 20 }
    }

    fn log_stderr(&self, stderr: &MemoryOutputPipe) {
        let bytes = stderr.contents();
        let id = &self.identity;
        for line in String::from_utf8_lossy(&bytes).lines().filter(|l| !l.is_empty()) {
            tracing::info!(target: "weft::guest", namespace = %id.namespace, function = %id.function, revision = %id.revision, "{line}");
        }
    }
}

/// Links `weft.http_send` and `weft.http_take` (see [`crate::outbound`]).
fn link_outbound(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "weft",
        "http_send",
        |mut caller: Caller<'_, GuestState>, ptr: i32, len: i32| -> wasmtime::Result<i64> {
            let memory = guest_memory(&mut caller)?;
            let (ptr, len) = (ptr as u32 as usize, len as u32 as usize);
            if len > outbound::MAX_MESSAGE {
                return Ok(fail(
                    caller.data_mut(),
                    format!("request of {len} bytes is over {} bytes", outbound::MAX_MESSAGE),
                ));
            }
            let raw = memory.data(&caller).get(ptr..ptr.saturating_add(len)).map(<[u8]>::to_vec);
            let Some(raw) = raw else { return Err(wasmtime::Error::msg("http_send: request out of bounds")) };
            let state = caller.data_mut();
            // Timed and counted by `outbound::send` (the instance's metrics).
            match outbound::send(&state.outbound, &raw, state.deadline) {
                Ok(answer) => {
                    state.pending = answer;
                    Ok(state.pending.len() as i64)
                }
                Err(why) => {
                    tracing::info!(error = %why, "guest outbound request failed");
                    Ok(fail(state, why))
                }
            }
        },
    )?;
    linker.func_wrap(
        "weft",
        "http_take",
        |mut caller: Caller<'_, GuestState>, ptr: i32, len: i32| -> wasmtime::Result<i32> {
            let memory = guest_memory(&mut caller)?;
            let pending = std::mem::take(&mut caller.data_mut().pending);
            let n = pending.len().min(len as u32 as usize);
            memory
                .write(&mut caller, ptr as u32 as usize, &pending[..n])
                .map_err(|_| wasmtime::Error::msg("http_take: buffer out of bounds"))?;
            Ok(n as i32)
        },
    )?;
    Ok(())
}

fn guest_memory(caller: &mut Caller<'_, GuestState>) -> wasmtime::Result<wasmtime::Memory> {
    match caller.get_export("memory") {
        Some(wasmtime::Extern::Memory(m)) => Ok(m),
        _ => Err(wasmtime::Error::msg("the guest exports no memory")),
    }
}

/// Keeps `why` as the pending message; the negated length tells the guest.
fn fail(state: &mut GuestState, why: String) -> i64 {
    state.pending = why.into_bytes();
    -(state.pending.len() as i64)
}

#[cfg(test)]
mod tests;
