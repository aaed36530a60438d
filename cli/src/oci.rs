//! Wasm modules in OCI registries: `weft push` writes one, and a cluster
//! instance (or `weft apply`, for `weft up`) pulls one named by `wasm.oci`.
//!
//! The artifact is the CNCF wasm OCI artifact layout, which `wkg oci push`
//! and Spin's tooling also read and write: an image manifest with a
//! `application/vnd.wasm.config.v0+json` config and one `application/wasm`
//! layer. The older wasm-to-oci layer type is accepted on pull.

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::{OciDescriptor, OciImageManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;
use tokio::io::AsyncWrite;
use weft_controller::instance::OciModule;

/// The layer media type `weft push` writes.
pub const WASM_LAYER: &str = "application/wasm";
/// The layer media type of the older wasm-to-oci tool, still read.
const WASM_TO_OCI_LAYER: &str = "application/vnd.wasm.content.layer.v1+wasm";
const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
/// Longest a pull or a push may take.
const TIMEOUT: Duration = Duration::from_secs(120);
/// Largest module accepted, as for URL downloads.
pub const MAX_MODULE: u64 = 256 << 20;

/// Pulls the module `m` names and returns its bytes.
#[tracing::instrument(skip_all, fields(reference = %m.reference))]
pub async fn pull(m: &OciModule) -> Result<Vec<u8>> {
    let reference = parse(&m.reference)?;
    let auth = auth(&reference, m.credentials.as_deref().map(Path::new))?;
    let client = client(&reference, &m.insecure_registries)?;
    let work = async {
        let (manifest, digest) = client.pull_image_manifest(&reference, &auth).await?;
        let layer = wasm_layer(&manifest)?;
        let mut out = Capped::default();
        client.pull_blob(&reference, layer, &mut out).await?;
        tracing::info!(manifest = %digest, layer = %layer.digest, bytes = out.0.len(), "module pulled");
        Ok::<_, anyhow::Error>(out.0)
    };
    match tokio::time::timeout(TIMEOUT, work).await {
        Ok(r) => r.with_context(|| format!("pull module {}", m.reference)),
        Err(_) => bail!("pull module {}: no answer within {TIMEOUT:?}", m.reference),
    }
}

/// Pushes `module` as a wasm artifact to `reference` and returns the
/// reference pinned to the manifest's digest. `insecure`: speak plain HTTP to
/// its registry.
pub async fn push(module: Vec<u8>, reference: &str, insecure: bool) -> Result<String> {
    if !module.starts_with(b"\0asm") {
        bail!("not a wasm module (it does not start with \\0asm)");
    }
    let reference = parse(reference)?;
    let auth = auth(&reference, docker_config().as_deref())?;
    let plain: Vec<String> = insecure.then(|| reference.resolve_registry().to_string()).into_iter().collect();
    let client = client(&reference, &plain)?;
    let layer = ImageLayer::new(module, WASM_LAYER.to_string(), None);
    let config = serde_json::json!({
        "created": jiff::Timestamp::now().to_string(),
        "architecture": "wasm",
        "os": "wasip1",
        "layerDigests": [layer.sha256_digest()],
    });
    let config = Config::new(serde_json::to_vec(&config)?, WASM_CONFIG.to_string(), None);
    let work = async {
        client.push(&reference, &[layer], config, &auth, None).await?;
        client.fetch_manifest_digest(&reference, &auth).await
    };
    let digest = match tokio::time::timeout(TIMEOUT, work).await {
        Ok(r) => r.with_context(|| format!("push {reference}"))?,
        Err(_) => bail!("push {reference}: no answer within {TIMEOUT:?}"),
    };
    Ok(format!("{}/{}@{digest}", reference.registry(), reference.repository()))
}

fn parse(reference: &str) -> Result<Reference> {
    weft_crds::validate::check_oci_reference(reference).map_err(|m| anyhow::anyhow!("{reference}: {m}"))?;
    reference.parse().with_context(|| format!("{reference}: not an OCI reference"))
}

/// The one wasm layer of a manifest, refused before any byte is pulled when it
/// is missing, ambiguous or too large.
fn wasm_layer(manifest: &OciImageManifest) -> Result<&OciDescriptor> {
    let wasm: Vec<&OciDescriptor> =
        manifest.layers.iter().filter(|l| l.media_type == WASM_LAYER || l.media_type == WASM_TO_OCI_LAYER).collect();
    let [layer] = wasm[..] else {
        let types: Vec<&str> = manifest.layers.iter().map(|l| l.media_type.as_str()).collect();
        bail!("expected one {WASM_LAYER} layer, found {} among {types:?}; push modules with `weft push`", wasm.len());
    };
    if u64::try_from(layer.size).unwrap_or(u64::MAX) > MAX_MODULE {
        bail!("the wasm layer has {} bytes, more than {MAX_MODULE}", layer.size);
    }
    Ok(layer)
}

/// HTTPS, except to loopback registries (as Docker treats them) and the ones
/// named insecure. Uses the process's rustls provider (ring).
fn client(reference: &Reference, insecure: &[String]) -> Result<Client> {
    crate::cluster::tls_provider();
    let registry = reference.resolve_registry().to_string();
    let mut plain: Vec<String> = insecure.to_vec();
    if is_loopback(&registry) {
        plain.push(registry);
    }
    let config = ClientConfig {
        protocol: ClientProtocol::HttpsExcept(plain),
        connect_timeout: Some(Duration::from_secs(10)),
        ..Default::default()
    };
    Client::try_from(config).context("build the registry client")
}

fn is_loopback(registry: &str) -> bool {
    let host = registry.rsplit_once(':').map_or(registry, |(h, _)| h);
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The user's Docker config: `$DOCKER_CONFIG/config.json` or
/// `~/.docker/config.json`, when it exists.
pub fn docker_config() -> Option<PathBuf> {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))?;
    let file = dir.join("config.json");
    file.exists().then_some(file)
}

/// The credentials a Docker config file (or a mounted dockerconfigjson
/// Secret) holds for the reference's registry; anonymous when none.
fn auth(reference: &Reference, file: Option<&Path>) -> Result<RegistryAuth> {
    let Some(file) = file else { return Ok(RegistryAuth::Anonymous) };
    let text =
        std::fs::read_to_string(file).with_context(|| format!("read registry credentials {}", file.display()))?;
    let config: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not a Docker config (JSON)", file.display()))?;
    credentials(&config, reference.resolve_registry()).with_context(|| format!("{}", file.display()))
}

fn credentials(config: &serde_json::Value, registry: &str) -> Result<RegistryAuth> {
    let Some(auths) = config["auths"].as_object() else { return Ok(RegistryAuth::Anonymous) };
    // Keys are written as `host[:port]`, sometimes with a scheme and a path
    // (`https://index.docker.io/v1/` for Docker Hub).
    let host_of = |key: &str| {
        let key = key.split_once("://").map_or(key, |(_, rest)| rest);
        key.split('/').next().unwrap_or_default().to_string()
    };
    let wanted = if registry == "index.docker.io" || registry == "docker.io" { "index.docker.io" } else { registry };
    let Some((_, entry)) = auths.iter().find(|(k, _)| host_of(k) == wanted) else {
        return Ok(RegistryAuth::Anonymous);
    };
    if let (Some(user), Some(pass)) = (entry["username"].as_str(), entry["password"].as_str()) {
        return Ok(RegistryAuth::Basic(user.into(), pass.into()));
    }
    let Some(encoded) = entry["auth"].as_str() else {
        bail!("the entry for {registry} has neither auth nor username and password");
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .with_context(|| format!("the auth of {registry} is not base64 of user:password"))?;
    let Some((user, pass)) = decoded.split_once(':') else {
        bail!("the auth of {registry} is not base64 of user:password");
    };
    Ok(RegistryAuth::Basic(user.into(), pass.into()))
}

/// A sink that refuses to grow past [`MAX_MODULE`], so a registry that sends
/// more than the layer's size cannot fill the memory before the digest check.
#[derive(Default)]
struct Capped(Vec<u8>);

impl AsyncWrite for Capped {
    fn poll_write(self: Pin<&mut Self>, _: &mut TaskContext<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if (this.0.len() + buf.len()) as u64 > MAX_MODULE {
            let e = std::io::Error::other(format!("the layer is larger than {MAX_MODULE} bytes"));
            return Poll::Ready(Err(e));
        }
        this.0.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(r: &str) -> Reference {
        r.parse().unwrap()
    }

    #[test]
    fn credentials_are_found_by_registry_in_either_form() {
        let config = serde_json::json!({"auths": {
            "https://index.docker.io/v1/": {"auth": "aHViOnNlY3JldA=="},
            "registry.local:5000": {"username": "u", "password": "p"},
            "ghcr.io": {"auth": "bm8tY29sb24="},
        }});
        let basic = |u: &str, p: &str| format!("{:?}", RegistryAuth::Basic(u.into(), p.into()));
        let got = |r: &str| credentials(&config, reference(r).resolve_registry()).map(|a| format!("{a:?}"));
        assert_eq!(got("acme/hello:v1").unwrap(), basic("hub", "secret"));
        assert_eq!(got("registry.local:5000/hello").unwrap(), basic("u", "p"));
        assert_eq!(got("quay.io/acme/hello").unwrap(), "Anonymous");
        let err = got("ghcr.io/acme/hello").unwrap_err().to_string();
        assert!(err.contains("not base64 of user:password"), "{err}");
    }

    #[test]
    fn loopback_registries_are_plain_http() {
        assert!(is_loopback("127.0.0.1:5000") && is_loopback("localhost:5000") && is_loopback("localhost"));
        assert!(!is_loopback("registry.local:5000") && !is_loopback("10.0.0.1:5000"));
    }

    #[test]
    fn a_manifest_needs_exactly_one_small_wasm_layer() {
        let layer = |media_type: &str, size: i64| OciDescriptor {
            media_type: media_type.into(),
            digest: format!("sha256:{}", "0".repeat(64)),
            size,
            ..Default::default()
        };
        let manifest = |layers| OciImageManifest { layers, ..Default::default() };
        assert!(wasm_layer(&manifest(vec![layer(WASM_LAYER, 10)])).is_ok());
        assert!(wasm_layer(&manifest(vec![layer(WASM_TO_OCI_LAYER, 10)])).is_ok());
        let err = wasm_layer(&manifest(vec![layer("application/vnd.oci.image.layer.v1.tar+gzip", 10)])).unwrap_err();
        assert!(err.to_string().contains("found 0 among [\"application/vnd.oci.image.layer.v1.tar+gzip\"]"), "{err}");
        let err = wasm_layer(&manifest(vec![layer(WASM_LAYER, 1), layer(WASM_LAYER, 2)])).unwrap_err();
        assert!(err.to_string().contains("found 2"), "{err}");
        let err = wasm_layer(&manifest(vec![layer(WASM_LAYER, 1 << 30)])).unwrap_err();
        assert!(err.to_string().contains("more than"), "{err}");
    }

    #[tokio::test]
    async fn the_sink_refuses_more_than_the_cap() {
        use tokio::io::AsyncWriteExt;
        let mut sink = Capped::default();
        sink.write_all(&[0; 1024]).await.unwrap();
        let big = vec![0; MAX_MODULE as usize];
        assert!(sink.write_all(&big).await.is_err());
        assert_eq!(sink.0.len(), 1024);
    }
}
