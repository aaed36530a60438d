//! The state directory (`./.weft`, `--state DIR` or `WEFT_STATE`): everything the
//! local platform keeps, and how the other commands find a running `weft up`.
//!
//! ```text
//! .weft/store.redb     resources (Functions, Revisions, …)
//! .weft/modules/       uploaded modules (<sha256>.wasm) and compiled code (.cwasm)
//! .weft/events/<ns>.<broker>/  the embedded event log of each broker (segments, offsets.json)
//! .weft/logs/hosts/host-<i>.log   function host logs (`weft logs` filters them)
//! .weft/runtime.json   addresses of the running platform (removed on exit)
//! .weft/token          bearer token of the control API (mode 0600)
//! .weft/weft.lock      held by the running `weft up`
//! ```

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct StateDir {
    pub root: PathBuf,
}

/// What `weft up` publishes for the other commands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuntimeInfo {
    pub api: SocketAddr,
    pub gateway: SocketAddr,
    /// The broker ingress (absent when written by an older weft).
    #[serde(default)]
    pub events: Option<SocketAddr>,
    /// The DNS responder of interface-name addressing.
    #[serde(default)]
    pub dns: Option<SocketAddr>,
    pub domain: String,
    pub pid: u32,
}

impl StateDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn store(&self) -> PathBuf {
        self.root.join("store.redb")
    }

    pub fn modules(&self) -> PathBuf {
        self.root.join("modules")
    }

    /// The embedded event log (one directory per broker topic).
    pub fn events(&self) -> PathBuf {
        self.root.join("events")
    }

    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }

    pub fn runtime(&self) -> PathBuf {
        self.root.join("runtime.json")
    }

    pub fn token_path(&self) -> PathBuf {
        self.root.join("token")
    }

    pub fn lock_path(&self) -> PathBuf {
        self.root.join("weft.lock")
    }

    /// Reads what a running `weft up` published, with a hint when none runs.
    pub fn read_runtime(&self) -> Result<(RuntimeInfo, String)> {
        let path = self.runtime();
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "no running platform found at {} (start one with `weft up --state {}`)",
                path.display(),
                self.root.display()
            )
        })?;
        let info: RuntimeInfo = serde_json::from_str(&text).with_context(|| format!("read {}", path.display()))?;
        let token = std::fs::read_to_string(self.token_path())
            .with_context(|| format!("read {}", self.token_path().display()))?;
        Ok((info, token.trim().to_string()))
    }

    /// Creates the directory (private to the user) and returns the API token,
    /// making a new one the first time.
    pub fn init(&self) -> Result<String> {
        std::fs::create_dir_all(&self.root).with_context(|| format!("create state dir {}", self.root.display()))?;
        set_mode(&self.root, 0o700)?;
        let path = self.token_path();
        if let Ok(t) = std::fs::read_to_string(&path)
            && !t.trim().is_empty()
        {
            return Ok(t.trim().to_string());
        }
        // The token guards the control API: it comes from the OS's secure
        // random source (fastrand is fast, not unpredictable).
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("read random bytes for the API token: {e}"))?;
        let token = hex::encode(bytes);
        std::fs::write(&path, &token).with_context(|| format!("write {}", path.display()))?;
        set_mode(&path, 0o600)?;
        Ok(token)
    }

    /// Takes the lock that keeps two platforms off one state directory.
    pub fn lock(&self) -> Result<std::fs::File> {
        let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(self.lock_path())?;
        if file.try_lock().is_err() {
            bail!("another `weft up` is using {} (see {})", self.root.display(), self.runtime().display());
        }
        Ok(file)
    }

    pub fn write_runtime(&self, info: &RuntimeInfo) -> Result<()> {
        let tmp = self.root.join("runtime.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(info)?)?;
        std::fs::rename(&tmp, self.runtime())?;
        Ok(())
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))
}
