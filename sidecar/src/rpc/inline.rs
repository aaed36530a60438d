//! A request on the fast path: routed and leased on the caller connection's
//! own task, sent on an already open upstream connection, and then nothing
//! waits for it. The whole call sits in the upstream's pending map until the
//! reader hands it the answer (or the sweeper or a closing connection its
//! failure). Per request that saves a task, a oneshot channel and a timer.

use super::{Call, Failure, RpcWorker};
use crate::endpoints::{Lease, Target};
use crate::gateway::Gateway;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

pub(super) struct Inline {
    pub(super) worker: Arc<RpcWorker>,
    pub(super) call: Call,
    /// Held until the answer: the instance's slot is taken while it works.
    pub(super) lease: Lease,
    pub(super) target: Target,
    pub(super) deadline: Instant,
    /// The request's `rpc` span, open until the answer (a disabled span, and
    /// free, unless a subscriber wants it).
    pub(super) span: tracing::Span,
}

impl Inline {
    pub(super) fn timeout(&self) -> Duration {
        self.call.route.policy().rpc_timeout()
    }

    /// The instance answered (`None` for a one-way request once sent).
    pub(super) fn answer(self: Box<Self>, resp: Option<&[u8]>, now: Instant) {
        let Inline { worker, call, lease, target, span, .. } = *self;
        let _in = span.enter();
        drop(lease);
        let route = &call.route;
        Gateway::record_health(&route.function, route.state.as_deref(), &route.revision, target, true);
        worker.finish_answered(call, resp, now);
    }

    /// The try failed: the call is tried again elsewhere if the policy allows.
    pub(super) fn fail(self: Box<Self>, failure: Failure) {
        let Inline { worker, call, lease, target, span, .. } = *self;
        let _in = span.enter();
        drop(lease);
        let route = &call.route;
        Gateway::record_health(&route.function, route.state.as_deref(), &route.revision, target, false);
        worker.after_first_try(call, failure, target);
    }
}
