//! `weft push MODULE REFERENCE`: puts a wasm module into an OCI registry, so a
//! Function in a cluster can name it with `wasm.oci`.

use anyhow::{Context, Result};
use std::path::Path;

pub async fn run(module: &Path, reference: &str, insecure: bool) -> Result<()> {
    let bytes = std::fs::read(module).with_context(|| format!("read {}", module.display()))?;
    let pinned = crate::oci::push(bytes, reference, insecure).await.with_context(|| format!("{}", module.display()))?;
    println!("{pinned}");
    Ok(())
}
