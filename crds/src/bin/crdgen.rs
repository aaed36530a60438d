//! Writes the CRD manifests to `crds/manifests/` (or the directory given).

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("manifests"));
    std::fs::create_dir_all(&dir)?;
    for (file, yaml) in weft_crds::crdgen::manifests()? {
        std::fs::write(dir.join(file), yaml)?;
        println!("wrote {}", dir.join(file).display());
    }
    Ok(())
}
