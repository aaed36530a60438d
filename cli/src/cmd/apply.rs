//! `weft apply -f FILE`: validates resources, uploads wasm modules, applies, and
//! waits until each Function's latest revision is ready.

use crate::client::Client;
use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use weft_crds::condition::{ConditionStatus, find};
use weft_crds::{Document, Function, parse_documents};

#[derive(Deserialize)]
struct Applied {
    kind: String,
    namespace: String,
    name: String,
    outcome: String,
    generation: Option<i64>,
}

pub struct ApplyArgs {
    pub file: PathBuf,
    pub wait: bool,
    pub timeout: Duration,
}

pub async fn run(client: &Client, args: &ApplyArgs) -> Result<()> {
    let (text, base_dir) = read_input(&args.file)?;
    let shown = args.file.display();
    let docs = parse_documents(&text).with_context(|| format!("{shown}"))?;
    let mut objects = Vec::new();
    for doc in docs {
        match doc {
            Document::Function(mut f) => {
                upload_module(client, &mut f, &base_dir).await.with_context(|| format!("{shown}"))?;
                resolve_working_dir(&mut f, &base_dir)?;
                objects.push(serde_json::to_value(&*f)?);
            }
            Document::Revision(_) => {
                bail!("{shown}: Revisions are created from a Function's template; apply the Function instead")
            }
            Document::Broker(b) => objects.push(serde_json::to_value(&*b)?),
            Document::Trigger(t) => objects.push(serde_json::to_value(&*t)?),
            Document::PingSource(p) => objects.push(serde_json::to_value(&*p)?),
        }
    }
    let applied: Vec<Applied> =
        client.post_json("/v1/apply", &objects).await.with_context(|| format!("apply {shown}"))?;
    for a in &applied {
        println!("{}/{} {}", qualified_kind(&a.kind), a.name, a.outcome);
    }
    if args.wait {
        for a in &applied {
            match a.kind.as_str() {
                "Function" => wait_ready(client, a, args.timeout).await?,
                _ => wait_eventing(client, a, args.timeout).await?,
            }
        }
    }
    Ok(())
}

fn qualified_kind(kind: &str) -> String {
    let group = if kind == "Function" { "serving.weft.dev" } else { "eventing.weft.dev" };
    format!("{}.{group}", kind.to_lowercase())
}

/// How long an eventing resource may stay `Ready=False` before apply gives up
/// (it can be transient: a Trigger applied with its Broker in one file).
const NOT_READY_GRACE: Duration = Duration::from_secs(3);

/// Waits for a Broker, Trigger or PingSource to be Ready, and prints its address.
async fn wait_eventing(client: &Client, a: &Applied, timeout: Duration) -> Result<()> {
    let plural = format!("{}s", a.kind.to_lowercase());
    let path = format!("/v1/{plural}/{}/{}", a.namespace, a.name);
    let start = tokio::time::Instant::now();
    let mut false_since = None;
    loop {
        let v: serde_json::Value = client.get(&path).await?;
        let st = &v["status"];
        let current = st["observedGeneration"].as_i64() >= a.generation;
        let ready = st["conditions"].as_array().and_then(|c| c.iter().find(|c| c["type"] == "Ready")).cloned();
        let status = ready.as_ref().and_then(|c| c["status"].as_str()).unwrap_or("Unknown");
        let why = ready
            .as_ref()
            .map(|c| format!("{}: {}", c["reason"].as_str().unwrap_or(""), c["message"].as_str().unwrap_or("")));
        match (current, status) {
            (true, "True") => {
                let addr = [&st["address"]["url"], &st["subscriberUri"], &st["sinkUri"]]
                    .into_iter()
                    .find_map(|v| v.as_str().map(String::from))
                    .unwrap_or_default();
                eprintln!("{} {}: ready", a.kind.to_lowercase(), a.name);
                if a.kind == "Broker" {
                    println!("{addr}");
                }
                return Ok(());
            }
            (true, "False") => {
                let since = *false_since.get_or_insert_with(tokio::time::Instant::now);
                if since.elapsed() > NOT_READY_GRACE {
                    bail!("{} {}: not ready: {}", a.kind, a.name, why.unwrap_or_default());
                }
            }
            _ => false_since = None,
        }
        if start.elapsed() > timeout {
            bail!("{} {}: not ready after {timeout:?}: {}", a.kind, a.name, why.unwrap_or_default());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn read_input(file: &Path) -> Result<(String, PathBuf)> {
    if file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).context("read stdin")?;
        return Ok((text, std::env::current_dir()?));
    }
    let text = std::fs::read_to_string(file).with_context(|| format!("read {}", file.display()))?;
    let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok((text, dir))
}

/// A process function runs in its `workingDir`, relative to the YAML file
/// like `wasm.path`, and by default in the YAML file's folder: so
/// `command: [node, server.js]` next to the YAML works wherever weft up runs.
fn resolve_working_dir(f: &mut Function, base_dir: &Path) -> Result<()> {
    let Some(process) = f.spec.template.spec.process.as_mut() else {
        return Ok(());
    };
    let dir = base_dir.join(process.working_dir.as_deref().unwrap_or("."));
    let dir = dir.canonicalize().with_context(|| {
        format!("spec.template.spec.process.workingDir: {} does not exist (relative to the YAML file)", dir.display())
    })?;
    process.working_dir = Some(dir.display().to_string());
    Ok(())
}

/// Uploads the module at `wasm.path` (relative to the YAML file), or the one
/// pulled from `wasm.oci`, and records its digest, so the revision pins these
/// exact bytes and a rebuilt module makes a new revision.
async fn upload_module(client: &Client, f: &mut Function, base_dir: &Path) -> Result<()> {
    let Some(wasm) = f.spec.template.spec.wasm.as_mut() else {
        return Ok(());
    };
    let (bytes, shown) = match (&wasm.path, &wasm.oci) {
        (Some(path), _) => {
            let full = base_dir.join(path);
            let bytes = std::fs::read(&full).map_err(|e| {
                anyhow::anyhow!(
                    "spec.template.spec.wasm.path: cannot read {} ({e}); build the sample guests with `bash functions/guests/build.sh` or fix the path (relative to the YAML file)",
                    full.display()
                )
            })?;
            (bytes, full.display().to_string())
        }
        // weft up has no registry access of its own: the module is pulled
        // here, with the user's Docker credentials, and uploaded like a file.
        (None, Some(reference)) => {
            let m = weft_controller::instance::OciModule {
                reference: reference.clone(),
                credentials: crate::oci::docker_config().map(|p| p.display().to_string()),
                insecure_registries: Vec::new(),
            };
            let bytes = crate::oci::pull(&m).await.context("spec.template.spec.wasm.oci")?;
            (bytes, reference.clone())
        }
        (None, None) => return Ok(()),
    };
    #[derive(Deserialize)]
    struct Uploaded {
        digest: String,
    }
    let up: Uploaded = client.post_bytes("/v1/modules", bytes).await.with_context(|| format!("upload {shown}"))?;
    wasm.digest = Some(up.digest);
    Ok(())
}

/// Polls the Function until its status describes this generation and says Ready,
/// printing each change of state; fails fast on `Ready=False`.
async fn wait_ready(client: &Client, a: &Applied, timeout: Duration) -> Result<()> {
    let path = format!("/v1/functions/{}/{}", a.namespace, a.name);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = String::new();
    loop {
        let f: Function = client.get(&path).await?;
        let status = f.status.clone().unwrap_or_default();
        let current = status.observed_generation >= a.generation;
        let ready = find(&status.conditions, "Ready");
        let line = match ready {
            Some(c)
                if current
                    && c.status == ConditionStatus::True
                    && status.latest_ready_revision_name == status.latest_created_revision_name =>
            {
                return print_ready(client, &f);
            }
            Some(c) if current && c.status == ConditionStatus::False => {
                bail!(
                    "{}: not ready: {}: {}",
                    a.name,
                    c.reason.as_deref().unwrap_or(""),
                    c.message.as_deref().unwrap_or("")
                );
            }
            _ if !current => {
                format!("{}: waiting for the controller to see generation {}", a.name, a.generation.unwrap_or(0))
            }
            Some(c) => format!(
                "{}: waiting for revision {} ({})",
                a.name,
                status.latest_created_revision_name.as_deref().unwrap_or("?"),
                c.message.as_deref().or(c.reason.as_deref()).unwrap_or("deploying")
            ),
            None => format!("{}: waiting for the controller", a.name),
        };
        if line != last {
            eprintln!("{line}");
            last = line;
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{}: not ready after {timeout:?} (see `weft get revisions` and `weft logs {}`)", a.name, a.name);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn print_ready(client: &Client, f: &Function) -> Result<()> {
    let status = f.status.clone().unwrap_or_default();
    let name = f.metadata.name.as_deref().unwrap_or("");
    let ns = f.metadata.namespace.as_deref().unwrap_or("default");
    eprintln!("{name}: revision {} is ready", status.latest_ready_revision_name.as_deref().unwrap_or("?"));
    println!("{}", status.url.as_deref().unwrap_or(""));
    println!("http://{}/{ns}/{name}/", client.runtime.gateway);
    for t in status.traffic.iter().filter(|t| t.tag.is_some()) {
        println!(
            "{} (tag {} -> {})",
            t.url.as_deref().unwrap_or(""),
            t.tag.as_deref().unwrap_or(""),
            t.revision_name.as_deref().unwrap_or("")
        );
    }
    Ok(())
}
