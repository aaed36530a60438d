//! A cluster instance starts with an empty module store: it gets its module
//! from the revision's source (an HTTP(S) URL, an OCI reference, or a mounted
//! ConfigMap key)
//! and checks the digest the revision pinned, if any.

use super::{InstanceConfig, ModuleSource};
use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::OnceLock;
use std::sync::atomic::AtomicU64;
use std::time::Duration;
use wasmtime::Engine;
use weft_functions::ModuleStore;

/// Longest a module download may take.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(120);
/// Largest module accepted (the ConfigMap path is capped at 1 MiB by Kubernetes).
const MAX_MODULE: u64 = crate::oci::MAX_MODULE;

/// How this process got its module. A Pod's instance fetches once, before its
/// metrics registry exists, so the figures wait here for [`register`].
static FETCHED: OnceLock<Fetched> = OnceLock::new();

struct Fetched {
    source: &'static str,
    seconds: f64,
    bytes: u64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabel {
    source: &'static str,
}

/// Adds `module_fetch_seconds` and `module_fetch_bytes` (by source: url, oci,
/// file) when this process fetched its module.
pub fn register(registry: &mut Registry) {
    let Some(f) = FETCHED.get() else { return };
    let label = SourceLabel { source: f.source };
    let seconds = Family::<SourceLabel, Gauge<f64, AtomicU64>>::default();
    seconds.get_or_create(&label).set(f.seconds);
    registry.register("module_fetch_seconds", "Time to fetch the module when the instance started", seconds);
    let bytes = Family::<SourceLabel, Gauge>::default();
    bytes.get_or_create(&label).set(i64::try_from(f.bytes).unwrap_or(i64::MAX));
    registry.register("module_fetch_bytes", "Size of the module fetched when the instance started", bytes);
}

/// Puts the module of `cfg.module_source` into the store and returns the
/// config with its digest; a config without a source is returned unchanged.
pub async fn module(mut cfg: InstanceConfig, engine: &Engine) -> Result<InstanceConfig> {
    let Some(source) = cfg.module_source.clone() else { return Ok(cfg) };
    let store = ModuleStore::open(&cfg.module_dir)?;
    if !cfg.digest.is_empty() && store.contains(&cfg.digest) {
        return Ok(cfg);
    }
    let started = tokio::time::Instant::now();
    let (bytes, kind) = match &source {
        ModuleSource::Url(url) => (download(url).await?, "url"),
        ModuleSource::File(path) => (std::fs::read(path).with_context(|| format!("read module {path}"))?, "file"),
        ModuleSource::Oci(m) => (crate::oci::pull(m).await?, "oci"),
    };
    let _ = FETCHED.set(Fetched { source: kind, seconds: started.elapsed().as_secs_f64(), bytes: bytes.len() as u64 });
    let digest = store.put(engine, &bytes).with_context(|| format!("module from {source:?}"))?;
    if !cfg.digest.is_empty() && cfg.digest != digest {
        bail!("module from {source:?} has digest {digest}, but the revision pins {}", cfg.digest);
    }
    tracing::info!(?source, %digest, bytes = bytes.len(), "module fetched");
    cfg.digest = digest;
    Ok(cfg)
}

async fn download(url: &str) -> Result<Vec<u8>> {
    let fetch = async {
        let uri: http::Uri = url.parse().context("not a URL")?;
        let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(https()?);
        let resp = client.get(uri).await?;
        if !resp.status().is_success() {
            bail!("HTTP {}", resp.status());
        }
        // Read frame by frame, so a server that sends no length cannot fill the memory.
        let mut body = resp.into_body();
        let mut bytes = Vec::new();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                if (bytes.len() + data.len()) as u64 > MAX_MODULE {
                    bail!("larger than {MAX_MODULE} bytes");
                }
                bytes.extend_from_slice(&data);
            }
        }
        Ok(bytes)
    };
    match tokio::time::timeout(DOWNLOAD_TIMEOUT, fetch).await {
        Ok(r) => r.with_context(|| format!("download module {url}")),
        Err(_) => bail!("download module {url}: no answer within {DOWNLOAD_TIMEOUT:?}"),
    }
}

/// HTTP and HTTPS, with ring as the crypto provider (named here, not installed
/// process-wide) and the system's roots, as kube's client uses them.
fn https() -> Result<hyper_rustls::HttpsConnector<HttpConnector>> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_platform_verifier()?
        .with_no_client_auth();
    Ok(hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http().enable_http1().build())
}
