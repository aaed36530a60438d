//! The event log backends against one conformance body, and the embedded log's
//! own recovery, roll and retention behaviour, on real files.

// Tests fail by panicking.
#![allow(clippy::unwrap_used)]

mod conformance;
mod embedded;
mod kafka;
pub mod tansu;
