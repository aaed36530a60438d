//! `weft install`: prints the generated manifests, or applies them with
//! server-side apply (the same as `weft install | kubectl apply --server-side -f -`).

use anyhow::{Context, Result};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{Scope, pinned_kind};
use serde_json::Value;
use weft_controller::cluster::install::{InstallOptions, objects, yaml};

const MANAGER: &str = "weft-install";

pub async fn run(options: &InstallOptions, apply: bool) -> Result<()> {
    if !apply {
        print!("{}", yaml(options)?);
        return Ok(());
    }
    let client = super::client().await?;
    for obj in objects(options)? {
        let (kind, name) = (obj["kind"].as_str().unwrap_or(""), obj["metadata"]["name"].as_str().unwrap_or(""));
        apply_one(&client, &obj).await.with_context(|| format!("apply {kind} {name}"))?;
        println!("{kind}/{name} applied");
    }
    Ok(())
}

async fn apply_one(client: &kube::Client, obj: &Value) -> Result<()> {
    let api_version = obj["apiVersion"].as_str().unwrap_or("");
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, obj["kind"].as_str().unwrap_or(""));
    let (resource, caps) = pinned_kind(client, &gvk).await?;
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    let api: Api<DynamicObject> = match (caps.scope, obj["metadata"]["namespace"].as_str()) {
        (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &resource),
        _ => Api::all_with(client.clone(), &resource),
    };
    api.patch(name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(obj)).await?;
    Ok(())
}
