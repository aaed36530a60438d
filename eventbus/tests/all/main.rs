//! The event log backends against one conformance body, and the embedded log's
//! own recovery, roll and retention behaviour, on real files.

// Tests fail by panicking; the tansu launcher times a real process (wall clock).
#![allow(clippy::unwrap_used, clippy::disallowed_types)]

mod conformance;
mod embedded;
mod kafka;
pub mod tansu;
