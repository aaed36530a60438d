//! The `Scaler` seam: what the autoscaler drives. Backends: the local process
//! supervisor of `weft up` (in the CLI) and, with cluster mode, a Deployment's
//! `/scale` subresource through kube.

use thiserror::Error;

/// A revision to scale.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ScaleTarget {
    pub namespace: String,
    pub revision: String,
}

impl ScaleTarget {
    /// `<namespace>/<revision>`, the key used across weft.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.revision)
    }
}

/// Instance counts of a revision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replicas {
    pub desired: u32,
    /// Running (ready or starting).
    pub actual: u32,
    pub ready: u32,
}

#[derive(Debug, Error)]
pub enum ScalerError {
    #[error("scale target {0} is not known to the scaler")]
    UnknownTarget(String),
    #[error("scale {target}: {message}")]
    Backend { target: String, message: String },
}

/// Changes and reads instance counts.
///
/// # Guarantees
/// `set_replicas` returns once the request is recorded; instances start and stop
/// asynchronously, and `replicas` reports where they are. Setting the same count
/// again is a no-op. Scaling down never fails a request in flight: an instance
/// leaves the endpoints before it is told to drain.
///
/// # Errors
/// [`ScalerError::UnknownTarget`] when the revision has no scale target yet (the
/// controller creates it); [`ScalerError::Backend`] when the backend refused.
pub trait Scaler: Send + Sync {
    fn set_replicas(&self, target: &ScaleTarget, replicas: u32) -> Result<(), ScalerError>;
    fn replicas(&self, target: &ScaleTarget) -> Result<Replicas, ScalerError>;
}
