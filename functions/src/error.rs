//! Errors of the function host, each mapped to the HTTP status a caller sees.

use std::path::PathBuf;
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum HostError {
    #[error("create the wasmtime engine: {0}")]
    Engine(#[source] wasmtime::Error),
    #[error("module {digest} is not in the module store ({path})")]
    ModuleMissing { digest: String, path: PathBuf },
    #[error("{0:?} is not a module digest (want sha256:<64 hex digits>)")]
    BadDigest(String),
    #[error("compile module {digest}: {source}")]
    Compile {
        digest: String,
        #[source]
        source: wasmtime::Error,
    },
    #[error("module store I/O at {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("link module (it may import something other than wasi_snapshot_preview1): {0}")]
    Link(#[source] wasmtime::Error),
    #[error(
        "module does not export `_start`: build it as a WASI command (a program with main), not a library or reactor"
    )]
    NotACommand,
    #[error("instantiate: {0}")]
    Instantiate(#[source] wasmtime::Error),
    #[error("function ran past its deadline of {0:?} and was stopped")]
    Timeout(Duration),
    #[error("function exceeded its memory limit of {limit_mib} MiB")]
    MemoryLimit { limit_mib: u64 },
    #[error("function trapped: {0}")]
    Trap(String),
    #[error("function exited with status {0}")]
    Exit(i32),
    #[error("function output is not a CGI response: {0}")]
    BadOutput(String),
}

impl HostError {
    /// The HTTP status a caller gets for this failure.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::Timeout(_) => 504,
            Self::BadOutput(_) => 502,
            // Too many instances at once in the pool: the caller may retry.
            Self::Instantiate(_) => 503,
            _ => 500,
        }
    }
}
