//! Shared pieces of weft's benchmark binaries.

pub mod captured;
