//! The client commands: each finds the platform through the state directory.

pub mod apply;
pub mod delete;
pub mod events;
pub mod get;
pub mod invoke;
pub mod logs;
pub mod push;

use anyhow::{Result, bail};

/// Plural API name of a kind as users type it (`fn`, `function`, `functions`).
pub fn plural_kind(kind: &str) -> Result<&'static str> {
    Ok(match kind.to_ascii_lowercase().as_str() {
        "fn" | "function" | "functions" | "function.serving.weft.dev" => "functions",
        "rev" | "revision" | "revisions" | "revision.serving.weft.dev" => "revisions",
        "broker" | "brokers" | "broker.eventing.weft.dev" => "brokers",
        "trigger" | "triggers" | "trigger.eventing.weft.dev" => "triggers",
        "pingsource" | "pingsources" | "pingsource.eventing.weft.dev" => "pingsources",
        other => {
            bail!("unknown kind {other:?}: use functions (fn), revisions (rev), brokers, triggers or pingsources")
        }
    })
}
