//! Content-addressed module store: `<dir>/<hex>.wasm` holds the bytes a user
//! uploaded, `<dir>/<hex>.cwasm` the module precompiled for this engine. Both are
//! written once (temp file + rename), so a reader never sees half a file and a
//! restart finds every module compiled already.

use crate::error::HostError;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use wasmtime::{Engine, Module};

#[derive(Debug, Clone)]
pub struct ModuleStore {
    dir: PathBuf,
}

/// `sha256:<hex>` of `bytes`.
fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn hex_part(digest: &str) -> Result<&str, HostError> {
    digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| HostError::BadDigest(digest.to_string()))
}

impl ModuleStore {
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, HostError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|source| HostError::Io { path: dir.clone(), source })?;
        Ok(Self { dir })
    }

    /// The directory holding the modules.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stores module bytes, checking they are WebAssembly; returns their digest.
    pub fn put(&self, engine: &Engine, bytes: &[u8]) -> Result<String, HostError> {
        let digest = digest_of(bytes);
        let path = self.wasm_path(&digest)?;
        if !path.exists() {
            // Validate before storing so a bad upload is refused at apply time.
            Module::validate(engine, bytes).map_err(|source| HostError::Compile { digest: digest.clone(), source })?;
            write_atomic(&path, bytes)?;
        }
        Ok(digest)
    }

    /// True when the module bytes are stored.
    pub fn contains(&self, digest: &str) -> bool {
        self.wasm_path(digest).is_ok_and(|p| p.exists())
    }

    /// Path of the precompiled module, compiling it first if needed.
    pub fn compiled(&self, engine: &Engine, digest: &str) -> Result<PathBuf, HostError> {
        let cwasm = self.dir.join(format!("{}.cwasm", hex_part(digest)?));
        if cwasm.exists() {
            return Ok(cwasm);
        }
        let src = self.wasm_path(digest)?;
        let bytes = std::fs::read(&src).map_err(|_| HostError::ModuleMissing { digest: digest.into(), path: src })?;
        let code =
            engine.precompile_module(&bytes).map_err(|source| HostError::Compile { digest: digest.into(), source })?;
        write_atomic(&cwasm, &code)?;
        Ok(cwasm)
    }

    /// Loads the precompiled module; recompiles once if the cached code was made
    /// by an incompatible engine (e.g. after an upgrade of weft).
    pub fn load(&self, engine: &Engine, digest: &str) -> Result<Module, HostError> {
        let path = self.compiled(engine, digest)?;
        match deserialize(engine, &path) {
            Ok(m) => Ok(m),
            Err(_) => {
                let _ = std::fs::remove_file(&path);
                let path = self.compiled(engine, digest)?;
                deserialize(engine, &path).map_err(|source| HostError::Compile { digest: digest.into(), source })
            }
        }
    }

    fn wasm_path(&self, digest: &str) -> Result<PathBuf, HostError> {
        Ok(self.dir.join(format!("{}.wasm", hex_part(digest)?)))
    }
}

#[allow(unsafe_code)]
fn deserialize(engine: &Engine, path: &Path) -> Result<Module, wasmtime::Error> {
    // SAFETY: `deserialize_file` trusts the file to be wasmtime output. Only
    // `ModuleStore::compiled` writes `.cwasm` files, from `precompile_module`, into
    // the state directory, which belongs to the user running weft; wasmtime still
    // checks the header for engine compatibility.
    unsafe { Module::deserialize_file(engine, path) }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), HostError> {
    let io = |source| HostError::Io { path: path.to_path_buf(), source };
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}
