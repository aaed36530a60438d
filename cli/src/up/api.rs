//! The control API of `weft up` (127.0.0.1:8081 by default): what the CLI talks
//! to. Every call needs `Authorization: Bearer <token>` from the state dir.
//!
//! ```text
//! POST   /v1/modules                 upload a .wasm module -> {"digest"}
//! POST   /v1/apply                   JSON array of resources -> outcomes
//! GET    /v1/{kind}[?namespace=ns]   list (kind: functions, revisions)
//! GET    /v1/{kind}/{ns}/{name}      one resource
//! DELETE /v1/{kind}/{ns}/{name}      delete
//! GET    /v1/logs/{ns}/{function}    instance logs (?tail=N lines per file)
//! GET    /v1/events/{id}             where an event went (`weft events trace`)
//! ```
//!
//! Kinds: functions, revisions, brokers, triggers, pingsources.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;
use weft_controller::{ApplyOutcome, EmbeddedStore, StoreError};
use weft_crds::eventing::{Broker, PingSource, Trigger};
use weft_crds::{Document, Function, Revision, parse_documents};
use weft_functions::ModuleStore;

/// Largest module upload.
const MAX_MODULE: usize = 64 << 20;

pub struct ApiState {
    pub store: Arc<EmbeddedStore>,
    pub modules: ModuleStore,
    pub engine: wasmtime::Engine,
    pub token: String,
    pub logs: std::path::PathBuf,
    /// To validate scaling annotations at apply time.
    pub scaling: weft_autoscaler::Defaults,
    pub traces: Arc<weft_eventbus::trace::Traces>,
}

type Shared = Arc<ApiState>;

/// An error reply: status and a message naming what is wrong.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store");
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::UNPROCESSABLE_ENTITY, msg.into())
}

pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/v1/modules", post(upload_module).layer(DefaultBodyLimit::max(MAX_MODULE)))
        .route("/v1/apply", post(apply))
        .route("/v1/logs/{ns}/{function}", get(logs))
        .route("/v1/events/{id}", get(trace))
        .route("/v1/{kind}", get(list))
        .route("/v1/{kind}/{ns}/{name}", get(get_one).delete(delete_one))
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .with_state(state)
}

async fn auth(State(s): State<Shared>, req: Request, next: Next) -> Response {
    let given =
        req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if given != Some(s.token.as_str()) {
        return ApiError(StatusCode::UNAUTHORIZED, "missing or wrong bearer token (see <state>/token)".into())
            .into_response();
    }
    next.run(req).await
}

async fn upload_module(State(s): State<Shared>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let digest = tokio::task::spawn_blocking(move || s.modules.put(&s.engine, &body))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("not a valid WebAssembly module: {e}")))?;
    Ok(Json(json!({ "digest": digest })))
}

#[derive(Serialize)]
struct Applied {
    kind: String,
    namespace: String,
    name: String,
    outcome: &'static str,
    generation: Option<i64>,
}

async fn apply(State(s): State<Shared>, Json(objects): Json<Vec<Value>>) -> Result<Json<Vec<Applied>>, ApiError> {
    // Validate everything before storing anything: an apply is all or nothing.
    let mut docs = Vec::new();
    for obj in &objects {
        for doc in parse_documents(&obj.to_string()).map_err(|e| bad(e.to_string()))? {
            docs.push(match doc {
                Document::Function(f) => Document::Function(Box::new(check_function(&s, *f)?)),
                Document::Revision(_) => {
                    return Err(bad("Revisions are created by weft from a Function's template; apply the Function"));
                }
                Document::Trigger(t) => Document::Trigger(Box::new(check_trigger(*t)?)),
                Document::PingSource(p) => Document::PingSource(Box::new(check_ping(*p)?)),
                other => other,
            });
        }
    }
    let mut out = Vec::new();
    for doc in docs {
        out.push(match doc {
            Document::Function(f) => store_one(&s, &*f)?,
            Document::Broker(b) => store_one(&s, &*b)?,
            Document::Trigger(t) => store_one(&s, &*t)?,
            Document::PingSource(p) => store_one(&s, &*p)?,
            Document::Revision(_) => continue,
        });
    }
    Ok(Json(out))
}

fn store_one<K: weft_controller::store::Object>(s: &ApiState, obj: &K) -> Result<Applied, ApiError> {
    let (stored, outcome) = s.store.apply(obj)?;
    let meta = stored.meta();
    Ok(Applied {
        kind: K::kind(&()).to_string(),
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
        outcome: match outcome {
            ApplyOutcome::Created => "created",
            ApplyOutcome::Configured => "configured",
            ApplyOutcome::Unchanged => "unchanged",
        },
        generation: meta.generation,
    })
}

/// Filters and delivery are checked now, so a bad Trigger is refused at apply
/// with the field named (the Broker's defaults are merged when it runs).
fn check_trigger(t: Trigger) -> Result<Trigger, ApiError> {
    let name = t.metadata.name.clone().unwrap_or_default();
    weft_eventbus::config::TriggerConfig::new(&t, None).map_err(|e| bad(format!("Trigger {name}: {e}")))?;
    Ok(t)
}

fn check_ping(p: PingSource) -> Result<PingSource, ApiError> {
    let name = p.metadata.name.clone().unwrap_or_default();
    weft_eventbus::ping::parse_schedule(&p.spec.schedule, p.spec.timezone.as_deref())
        .map_err(|e| bad(format!("PingSource {name}: {e}")))?;
    Ok(p)
}

fn check_function(s: &ApiState, mut f: Function) -> Result<Function, ApiError> {
    f.metadata.namespace.get_or_insert_with(|| "default".into());
    let name = f.metadata.name.clone().unwrap_or_default();
    let spec = &f.spec.template.spec;
    if spec.image.is_some() {
        return Err(bad(format!(
            "Function {name}: spec.template.spec.image: weft up runs wasm and process functions; container images need a cluster (weft install)"
        )));
    }
    let annotations = &f.spec.template.metadata.annotations;
    let cc = s.scaling.container_concurrency(spec.container_concurrency);
    if let Err(e) = weft_autoscaler::ScalingSpec::from_annotations(annotations, &s.scaling, cc) {
        return Err(bad(format!("Function {name}: spec.template.metadata.annotations: {e}")));
    }
    if spec.process.is_some() {
        return Ok(f); // a program on this machine: nothing was uploaded
    }
    match spec.wasm.as_ref().and_then(|w| w.digest.as_deref()) {
        Some(d) if s.modules.contains(d) => Ok(f),
        Some(d) => Err(bad(format!(
            "Function {name}: spec.template.spec.wasm.digest: module {d} was not uploaded (POST it to /v1/modules, or use `weft apply`)"
        ))),
        None if spec.wasm.as_ref().is_some_and(|w| w.path.is_none()) => Err(bad(format!(
            "Function {name}: spec.template.spec.wasm: weft up runs modules uploaded by `weft apply` (from wasm.path or wasm.oci); wasm.url and wasm.configMap are read in a cluster"
        ))),
        None => Err(bad(format!(
            "Function {name}: spec.template.spec.wasm.digest: missing; `weft apply` uploads the module at wasm.path and sets it"
        ))),
    }
}

#[derive(Deserialize)]
struct ListQuery {
    namespace: Option<String>,
}

async fn list(
    State(s): State<Shared>,
    Path(kind): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let ns = q.namespace.as_deref();
    let items = match kind.as_str() {
        "functions" => serde_json::to_value(s.store.list::<Function>(ns)?),
        "revisions" => serde_json::to_value(s.store.list::<Revision>(ns)?),
        "brokers" => serde_json::to_value(s.store.list::<Broker>(ns)?),
        "triggers" => serde_json::to_value(s.store.list::<Trigger>(ns)?),
        "pingsources" => serde_json::to_value(s.store.list::<PingSource>(ns)?),
        other => return Err(unknown_kind(other)),
    };
    Ok(Json(items.unwrap_or_default()))
}

async fn get_one(
    State(s): State<Shared>,
    Path((kind, ns, name)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let item = match kind.as_str() {
        "functions" => s.store.get::<Function>(&ns, &name)?.map(serde_json::to_value),
        "revisions" => s.store.get::<Revision>(&ns, &name)?.map(serde_json::to_value),
        "brokers" => s.store.get::<Broker>(&ns, &name)?.map(serde_json::to_value),
        "triggers" => s.store.get::<Trigger>(&ns, &name)?.map(serde_json::to_value),
        "pingsources" => s.store.get::<PingSource>(&ns, &name)?.map(serde_json::to_value),
        other => return Err(unknown_kind(other)),
    };
    match item {
        Some(Ok(v)) => Ok(Json(v)),
        _ => Err(ApiError(StatusCode::NOT_FOUND, format!("{kind} {ns}/{name} not found"))),
    }
}

async fn delete_one(
    State(s): State<Shared>,
    Path((kind, ns, name)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let existed = match kind.as_str() {
        "functions" => s.store.delete::<Function>(&ns, &name)?,
        "revisions" => return Err(bad("revisions are deleted with their Function")),
        "brokers" => s.store.delete::<Broker>(&ns, &name)?,
        "triggers" => s.store.delete::<Trigger>(&ns, &name)?,
        "pingsources" => s.store.delete::<PingSource>(&ns, &name)?,
        other => return Err(unknown_kind(other)),
    };
    if !existed {
        return Err(ApiError(StatusCode::NOT_FOUND, format!("{kind} {ns}/{name} not found")));
    }
    Ok(Json(json!({ "deleted": format!("{ns}/{name}") })))
}

fn unknown_kind(kind: &str) -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        format!("unknown kind {kind:?}: use functions, revisions, brokers, triggers or pingsources"),
    )
}

/// The delivery record of an event, by id.
async fn trace(State(s): State<Shared>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    match s.traces.get(&id) {
        Some(t) => Ok(Json(serde_json::to_value(t).unwrap_or_default())),
        None => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no record of event {id:?} (records are kept in memory for an hour and not across restarts)"),
        )),
    }
}

#[derive(Deserialize)]
struct LogQuery {
    tail: Option<usize>,
}

/// The last lines about a function in each function host's log: the lines
/// tagged with its namespace and name (instance events and guest stderr).
async fn logs(
    State(s): State<Shared>,
    Path((ns, function)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
) -> Result<String, ApiError> {
    let listing = |dir: std::path::PathBuf| -> Vec<std::path::PathBuf> {
        let entries = std::fs::read_dir(dir).into_iter().flatten().filter_map(|e| e.ok().map(|e| e.path()));
        let mut files: Vec<_> = entries.collect();
        files.sort();
        files
    };
    // A process function's own output, whole: `processes/<ns>_<function>_<revision>.log`.
    let own = format!("{ns}_{function}_");
    let processes = listing(s.logs.join("processes"));
    let processes =
        processes.into_iter().filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&own)));
    let files: Vec<_> =
        listing(s.logs.join("hosts")).into_iter().map(|p| (p, true)).chain(processes.map(|p| (p, false))).collect();
    if files.is_empty() {
        return Err(ApiError(StatusCode::NOT_FOUND, format!("no logs for function {ns}/{function}")));
    }
    let tail = q.tail.unwrap_or(200);
    let mut out = String::new();
    for (path, shared) in files {
        let text = tokio::fs::read_to_string(&path).await.unwrap_or_default();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !shared || (has_field(l, "namespace", &ns) && has_field(l, "function", &function)))
            .collect();
        let stem = path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
        for line in &lines[lines.len().saturating_sub(tail)..] {
            out.push_str(&format!("[{stem}] {line}\n"));
        }
    }
    Ok(out)
}

/// Whether a log line carries `name=value` as a whole field (so `hello` does
/// not match `hello2`).
fn has_field(line: &str, name: &str, value: &str) -> bool {
    let needle = format!("{name}={value}");
    line.match_indices(&needle).any(|(i, _)| {
        let before = line[..i].chars().next_back();
        let after = line[i + needle.len()..].chars().next();
        matches!(before, None | Some(' ' | '{')) && matches!(after, None | Some(' ' | '}' | ':'))
    })
}

#[cfg(test)]
mod tests {
    use super::has_field;

    #[test]
    fn log_fields_match_whole_values() {
        let line = "INFO instance{namespace=default function=hello revision=hello-00001}: hi";
        assert!(has_field(line, "function", "hello"));
        assert!(has_field(line, "namespace", "default"));
        assert!(!has_field(line, "function", "hell"));
        assert!(!has_field("x function=hello2 y", "function", "hello"));
        assert!(!has_field("x myfunction=hello", "function", "hello"));
        assert!(has_field("ready function=hello", "function", "hello"));
    }
}
