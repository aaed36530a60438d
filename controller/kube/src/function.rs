//! Function -> Revisions and status, with `weft_controller::plan_function`.

use crate::{Context, Error, MANAGER, namespace_of, timed};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use std::sync::Arc;
use weft_controller::plan_function;
use weft_crds::{FUNCTION_LABEL, Function, Revision};

/// Reconciles one Function; requeued by changes to it or its Revisions.
pub async fn reconcile(f: Arc<Function>, ctx: Arc<Context>) -> Result<Action, Error> {
    timed(&*f, &ctx, apply(&f, &ctx)).await
}

async fn apply(f: &Function, ctx: &Context) -> Result<Action, Error> {
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
        let body = serde_json::json!({
            "apiVersion": Function::api_version(&()),
            "kind": Function::kind(&()),
            "status": plan.status,
        });
        let functions: Api<Function> = Api::namespaced(ctx.client.clone(), &ns);
        functions.patch_status(&name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&body)).await?;
    }
    Ok(Action::await_change())
}

/// `Ready=False` with a reason the Function did not have before: worth one
/// Warning Event (a reason that persists is not repeated).
fn newly_failed(f: &Function, planned: &weft_crds::FunctionStatus) -> Option<(String, String)> {
    use weft_crds::ConditionStatus;
    use weft_crds::condition::find;
    let now = find(&planned.conditions, "Ready").filter(|c| c.status == ConditionStatus::False)?;
    let before = f.status.as_ref().and_then(|s| find(&s.conditions, "Ready"));
    if before.is_some_and(|b| b.status == ConditionStatus::False && b.reason == now.reason) {
        return None;
    }
    Some((now.reason.clone().unwrap_or_default(), now.message.clone().unwrap_or_default()))
}
