//! The client commands: each finds the platform through the state directory.

pub mod apply;
pub mod delete;
pub mod get;
pub mod invoke;
pub mod logs;

use anyhow::{Result, bail};

/// Plural API name of a kind as users type it (`fn`, `function`, `functions`).
pub fn plural_kind(kind: &str) -> Result<&'static str> {
    Ok(match kind.to_ascii_lowercase().as_str() {
        "fn" | "function" | "functions" | "function.serving.weft.dev" => "functions",
        "rev" | "revision" | "revisions" | "revision.serving.weft.dev" => "revisions",
        other => bail!("unknown kind {other:?}: use functions (fn) or revisions (rev)"),
    })
}
