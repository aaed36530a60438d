//! Function -> Revisions and status, with `weft_controller::plan_function`.

use crate::{Context, Error, MANAGER, apply_status, failed_already, namespace_of, timed};
use kube::api::{ListParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use std::sync::Arc;
use weft_controller::plan_function;
use weft_crds::{FUNCTION_LABEL, Function, Revision};

/// Reconciles one Function; requeued by changes to it or its Revisions.
pub async fn reconcile(f: Arc<Function>, ctx: Arc<Context>) -> Result<Action, Error> {
    timed(&*f, &ctx, apply(&f, &ctx)).await
}

async fn apply(f: &Function, ctx: &Context) -> Result<Action, Error> {
    // Being deleted (e.g. foreground cascading): the garbage collector removes
    // its Revisions, and a pass now would make a new one for it to remove.
    if f.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = namespace_of(f)?;
    let name = f.name_any();
    let revisions: Api<Revision> = Api::namespaced(ctx.client.clone(), &ns);
    let owned = ListParams::default().labels(&format!("{FUNCTION_LABEL}={name}"));
    let existing = revisions.list(&owned).await?.items;
    let plan = plan_function(f, &existing, &ctx.base, &weft_controller::now_rfc3339());
    if let Some(rev) = &plan.new_revision {
        let params = PostParams { field_manager: Some(MANAGER.into()), ..Default::default() };
        match revisions.create(&params, rev).await {
            Ok(created) => tracing::info!(function = %name, revision = %created.name_any(), "created revision"),
            // Made by an earlier pass whose list was stale: the watch brings it.
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    if let Some((reason, message)) = newly_failed(f, &plan.status) {
        ctx.warn(f, &reason, message).await;
    }
    if f.status.as_ref() != Some(&plan.status) {
        apply_status(&ctx.client, f, MANAGER, &plan.status).await?;
    }
    Ok(Action::await_change())
}

/// `Ready=False` with a reason the Function did not have before: worth one
/// Warning Event (a reason that persists is not repeated).
fn newly_failed(f: &Function, planned: &weft_crds::FunctionStatus) -> Option<(String, String)> {
    let now = weft_crds::condition::find(&planned.conditions, "Ready")
        .filter(|c| c.status == weft_crds::ConditionStatus::False)?;
    if failed_already(f.status.as_ref().map(|s| &s.conditions[..]), now.reason.as_deref()) {
        return None;
    }
    Some((now.reason.clone().unwrap_or_default(), now.message.clone().unwrap_or_default()))
}
