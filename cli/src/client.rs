//! The control-API client the commands share.

use crate::state::{RuntimeInfo, StateDir};
use anyhow::{Context, Result, bail};
use serde::de::DeserializeOwned;
use serde_json::Value;

pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
    pub runtime: RuntimeInfo,
}

impl Client {
    /// Finds the running platform through the state directory.
    pub fn connect(state: &StateDir) -> Result<Self> {
        let (runtime, token) = state.read_runtime()?;
        let http = reqwest::Client::builder().build().context("build HTTP client")?;
        Ok(Self { http, base: format!("http://{}", runtime.api), token, runtime })
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.send(self.http.get(self.url(path))).await
    }

    pub async fn delete(&self, path: &str) -> Result<Value> {
        self.send(self.http.delete(self.url(path))).await
    }

    pub async fn post_json<T: DeserializeOwned>(&self, path: &str, body: &impl serde::Serialize) -> Result<T> {
        self.send(self.http.post(self.url(path)).json(body)).await
    }

    pub async fn post_bytes<T: DeserializeOwned>(&self, path: &str, body: Vec<u8>) -> Result<T> {
        self.send(self.http.post(self.url(path)).body(body)).await
    }

    pub async fn get_text(&self, path: &str) -> Result<String> {
        let resp = self.request(self.http.get(self.url(path))).await?;
        Ok(resp.text().await?)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> Result<T> {
        let resp = self.request(req).await?;
        resp.json().await.context("decode the control API's reply")
    }

    async fn request(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let resp = req
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("reach the control API at {} (is `weft up` running?)", self.base))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or_default();
        let msg = body.get("error").and_then(Value::as_str).unwrap_or("no details");
        bail!("{msg} ({status})")
    }
}
