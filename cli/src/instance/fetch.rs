//! A cluster instance starts with an empty module store: it gets its module
//! from the revision's source (an HTTP(S) URL, or a mounted ConfigMap key)
//! and checks the digest the revision pinned, if any.

use super::{InstanceConfig, ModuleSource};
use anyhow::{Context, Result, bail};
use std::time::Duration;
use wasmtime::Engine;
use weft_functions::ModuleStore;

/// Longest a module download may take.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(120);
/// Largest module accepted (the ConfigMap path is capped at 1 MiB by Kubernetes).
const MAX_MODULE: u64 = 256 << 20;

/// Puts the module of `cfg.module_source` into the store and returns the
/// config with its digest; a config without a source is returned unchanged.
pub async fn module(mut cfg: InstanceConfig, engine: &Engine) -> Result<InstanceConfig> {
    let Some(source) = cfg.module_source.clone() else { return Ok(cfg) };
    let store = ModuleStore::open(&cfg.module_dir)?;
    if !cfg.digest.is_empty() && store.contains(&cfg.digest) {
        return Ok(cfg);
    }
    let bytes = match &source {
        ModuleSource::Url(url) => download(url).await?,
        ModuleSource::File(path) => std::fs::read(path).with_context(|| format!("read module {path}"))?,
    };
    let digest = store.put(engine, &bytes).with_context(|| format!("module from {source:?}"))?;
    if !cfg.digest.is_empty() && cfg.digest != digest {
        bail!("module from {source:?} has digest {digest}, but the revision pins {}", cfg.digest);
    }
    tracing::info!(?source, %digest, bytes = bytes.len(), "module fetched");
    cfg.digest = digest;
    Ok(cfg)
}

async fn download(url: &str) -> Result<Vec<u8>> {
    let client = reqwest::Client::builder().timeout(DOWNLOAD_TIMEOUT).build()?;
    let mut resp = client.get(url).send().await.with_context(|| format!("download module {url}"))?;
    if !resp.status().is_success() {
        bail!("download module {url}: HTTP {}", resp.status());
    }
    // Read in chunks, so a server that sends no length cannot fill the memory.
    let mut bytes = Vec::new();
    while let Some(chunk) = resp.chunk().await.with_context(|| format!("download module {url}"))? {
        if (bytes.len() + chunk.len()) as u64 > MAX_MODULE {
            bail!("download module {url}: larger than {MAX_MODULE} bytes");
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}
