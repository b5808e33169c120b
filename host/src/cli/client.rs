//! The API client the client commands share (`kiln job|task|style|buckets …`, one
//! file each): the HTTP API at `KILN_URL` with the caller's token, and paged listings.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Value, json};

#[derive(Args)]
pub struct ClientArgs {
    /// The daemon's address.
    #[arg(long, global = true, env = "KILN_URL", default_value = "http://127.0.0.1:7878")]
    pub url: String,
    /// Bearer token: the admin's, or one issued to a tenant.
    #[arg(long, global = true, env = "KILN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// How long `job wait` and `--wait` keep reconnecting while the daemon
    /// cannot be reached (a restart), e.g. `30s`, `5m`.
    #[arg(long, global = true, env = "KILN_RECONNECT_FOR", default_value = "1m", value_parser = humantime::parse_duration)]
    pub reconnect_for: Duration,
}

// Parsed once per process: the size of the largest variant costs nothing.
/// A 409 `plugin-not-ready` for a plugin that is compiling (not one that failed).
pub(super) fn compiling(status: reqwest::StatusCode, body: &str) -> bool {
    if status != reqwest::StatusCode::CONFLICT {
        return false;
    }
    let problem: Value = serde_json::from_str(body).unwrap_or_default();
    problem["type"].as_str().is_some_and(|t| t.ends_with("/plugin-not-ready"))
        && problem["detail"].as_str().is_some_and(|d| d.contains("still compiling"))
}

#[derive(Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
    pub json: bool,
    reconnect_for: Duration,
}

impl Client {
    pub fn new(args: &ClientArgs) -> Client {
        let url = args.url.trim_end_matches('/');
        // `127.0.0.1:7878` means the daemon's plain-HTTP address.
        let base = if url.contains("://") { url.to_string() } else { format!("http://{url}") };
        Client {
            base,
            http: reqwest::Client::new(),
            token: args.token.clone(),
            json: args.json,
            reconnect_for: args.reconnect_for,
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let mut req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let started = std::time::Instant::now();
        let mut said = false;
        let (status, text) = loop {
            let again = req.try_clone();
            let resp = req.send().await.with_context(|| {
                format!("cannot reach kiln at {} (is `kiln serve` running? set KILN_URL)", self.base)
            })?;
            let status = resp.status();
            let retry_after =
                resp.headers().get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok()?.parse().ok());
            let text = resp.text().await?;
            // A plugin still compiling (an upload, or a first start) is ready
            // in seconds: wait for it, as long as a reconnect would.
            match (again, retry_after) {
                (Some(next), Some(secs)) if compiling(status, &text) && started.elapsed() < self.reconnect_for => {
                    if !said {
                        eprintln!("the style's plugin is still compiling in the daemon: waiting for it...");
                        said = true;
                    }
                    tokio::time::sleep(Duration::from_secs(secs).min(Duration::from_secs(2))).await;
                    req = next;
                }
                _ => break (status, text),
            }
        };
        if !status.is_success() {
            let problem: Value = serde_json::from_str(&text).unwrap_or(json!({"detail": text}));
            let detail = problem["detail"].as_str().unwrap_or(&text).to_string();
            if status == reqwest::StatusCode::UNAUTHORIZED && self.token.is_none() {
                bail!("{status}: {detail}: set KILN_TOKEN (or --token) to your token");
            }
            match problem["field"].as_str() {
                Some(f) => bail!("{status}: {detail} (field `{f}`)"),
                None => bail!("{status}: {detail}"),
            }
        }
        Ok(if text.is_empty() { Value::Null } else { serde_json::from_str(&text)? })
    }

    /// GET a body that is not JSON (a report), as a response to stream from.
    pub async fn get_raw(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<reqwest::Response> {
        let mut req = self.http.get(format!("{}{path}", self.base)).query(query);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach kiln at {} (is `kiln serve` running? set KILN_URL)", self.base))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let problem: Value = resp.json().await.unwrap_or(Value::Null);
            bail!("{status}: {}", problem["detail"].as_str().unwrap_or(""));
        }
        Ok(resp)
    }

    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Value> {
        self.send(self.http.get(format!("{}{path}", self.base)).query(query)).await
    }
    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body)).await
    }
    pub async fn delete(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Value> {
        self.send(self.http.delete(format!("{}{path}", self.base)).query(query)).await
    }
    pub async fn patch(&self, path: &str, query: &[(&str, String)], body: &Value) -> anyhow::Result<Value> {
        self.send(self.http.patch(format!("{}{path}", self.base)).query(query).json(body)).await
    }
    /// A streaming GET (server-sent events), checked for errors like any other call.
    pub async fn open_stream(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        let mut req =
            self.http.get(format!("{}{path}", self.base)).header(reqwest::header::ACCEPT, "text/event-stream");
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.with_context(|| format!("cannot reach kiln at {}", self.base))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            bail!("{status}: {text}");
        }
        Ok(resp)
    }

    /// POST raw bytes, e.g. a plugin's component.
    pub async fn post_bytes(&self, path: &str, query: &[(&str, String)], bytes: Vec<u8>) -> anyhow::Result<Value> {
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .query(query)
            .header(reqwest::header::CONTENT_TYPE, "application/wasm")
            .body(bytes);
        self.send(req).await
    }

    /// How long to keep reconnecting while the daemon cannot be reached.
    pub fn reconnect_for(&self) -> Duration {
        self.reconnect_for
    }

    pub fn print(&self, value: &Value, human: impl FnOnce(&Value) -> String) {
        if self.json {
            println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
        } else {
            println!("{}", human(value));
        }
    }
}

/// A page of a listing as a table, with how to get the next page.
pub(super) fn paged(page: &Value, table: fn(&[Value]) -> String) -> String {
    let items = page["items"].as_array().map(Vec::as_slice).unwrap_or_default();
    if items.is_empty() {
        return match page["next"].as_str() {
            // A search that examined its budget of rows without a match.
            Some(n) => format!("(no match among the tasks searched so far; more: --cursor {n})"),
            None => "(none)".into(),
        };
    }
    let mut out = table(items);
    if let Some(n) = page["next"].as_str() {
        out.push_str(&format!("\n(more: --cursor {n})"));
    }
    out
}

pub(super) fn task_line(t: &Value) -> String {
    let err = t["error"]["message"]
        .as_str()
        .map(|m| format!("  [{}] {m}", t["error"]["kind"].as_str().unwrap_or("")))
        .unwrap_or_default();
    let outs = t["outputs"]
        .as_array()
        .map(|o| o.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
        .unwrap_or_default();
    format!(
        "{:>7}  {:<9} {}{}{}",
        t["seq"],
        t["state"].as_str().unwrap_or(""),
        t["source_key"].as_str().unwrap_or(""),
        if outs.is_empty() { String::new() } else { format!(" -> {outs}") },
        err
    )
}
