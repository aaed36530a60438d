//! weft's autoscaler: how many instances each revision should run, decided the
//! way Knative's pod autoscaler (KPA) decides it, with the same knobs and
//! defaults.
//!
//! Everything here is pure: decisions are functions of recorded statistics and an
//! explicit `now`, so every documented behaviour is tested under a simulated
//! clock. This crate must not depend on processes, sockets, kube or wasmtime; the
//! I/O (collecting metrics from instance proxies, changing replica counts) lives
//! in the callers.
//!
//! - [`spec`]: the knobs, from `autoscaling.weft.dev/*` annotations and global defaults.
//! - [`window`]: per-second metric buckets and window averages.
//! - [`decider`]: stable/panic modes, rate limits, scale-down delay, burst capacity.
//! - [`revision`]: one revision's state: bounds, initial scale, scale to zero.
//! - [`scaler`]: the `Scaler` seam the decisions drive.

pub mod decider;
pub mod delay;
pub mod revision;
pub mod scaler;
pub mod spec;
pub mod window;

pub use decider::{Decider, ScaleResult};
pub use revision::{Decision, RevisionAutoscaler};
pub use scaler::{Replicas, ScaleTarget, Scaler, ScalerError};

pub use spec::{Defaults, Metric, ScalingSpec, SpecError};
