//! Helpers shared by the end-to-end tests.
#![allow(dead_code)]

pub mod cloud;
pub mod emulator;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use kiln::runtime::{OutputTarget, OutputWriter};

/// The `kiln` binary built by this same `cargo test` run.
pub fn kiln_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|deps| deps.parent()).expect("target dir");
    let bin = dir.join("kiln");
    assert!(bin.exists(), "{} is missing: build it first (`cargo build -p kiln`), as scripts/test does", bin.display());
    bin
}

/// Run `kiln ARGS` to completion.
pub fn kiln(args: &[&str]) -> Output {
    Command::new(kiln_bin())
        .args(args)
        .env("KILN_LOG", "warn")
        // `kiln process` keeps a compile cache in the user's cache folder: the tests' own.
        .env("XDG_CACHE_HOME", std::env::temp_dir().join("kiln-tests-cache"))
        .output()
        .expect("running kiln")
}

/// What an in-memory output target saw, for asserting commit/abort semantics.
#[derive(Default, Debug)]
pub struct Recorded {
    /// (index, extension, bytes) of committed outputs.
    pub committed: Vec<(u32, Option<String>, Vec<u8>)>,
    pub aborted: u32,
    pub opened: u32,
}

/// Load a component built by `kiln-test-plugins` (or any `.wasm` path).
pub async fn load_plugin(rt: &kiln::runtime::Runtime, path: &str) -> kiln::runtime::Plugin {
    rt.load(&std::fs::read(path).unwrap()).await.unwrap()
}

/// Run `plugin` once over `input`, the object `b/key`, with outputs kept in memory.
pub async fn run_in_memory(
    rt: &kiln::runtime::Runtime,
    plugin: &kiln::runtime::Plugin,
    params: &str,
    key: &str,
    input: &[u8],
    limits: kiln::runtime::Limits,
) -> (Result<kiln::runtime::TaskOutcome, kiln::runtime::TaskError>, MemoryTarget) {
    let target = MemoryTarget::default();
    let task = kiln::runtime::Task {
        params: params.into(),
        object: kiln::runtime::ObjectMeta {
            bucket: "b".into(),
            key: key.into(),
            size: Some(input.len() as u64),
            ..Default::default()
        },
        input: kiln::runtime::InputSource::from_bytes(input.to_vec()),
        target: Box::new(target.clone()),
        limits,
    };
    (rt.run(plugin, task).await, target)
}

/// The compile cache the tests' daemons share.
pub fn daemon_cache_dir() -> PathBuf {
    std::env::temp_dir().join("kiln-tests-cache/daemon")
}

/// An [`OutputTarget`] that keeps outputs in memory.
#[derive(Clone, Default)]
pub struct MemoryTarget(pub Arc<Mutex<Recorded>>);

struct MemoryWriter {
    index: u32,
    extension: Option<String>,
    bytes: Vec<u8>,
    record: Arc<Mutex<Recorded>>,
}

#[async_trait::async_trait]
impl OutputTarget for MemoryTarget {
    async fn open(&mut self, index: u32, extension: Option<&str>) -> Result<Box<dyn OutputWriter>, String> {
        self.0.lock().unwrap().opened += 1;
        Ok(Box::new(MemoryWriter {
            index,
            extension: extension.map(String::from),
            bytes: Vec::new(),
            record: self.0.clone(),
        }))
    }
}

#[async_trait::async_trait]
impl OutputWriter for MemoryWriter {
    async fn write(&mut self, bytes: Bytes) -> Result<(), String> {
        self.bytes.extend_from_slice(&bytes);
        Ok(())
    }
    async fn commit(self: Box<Self>) -> Result<String, String> {
        let location = format!("memory/{}", self.index);
        self.record.lock().unwrap().committed.push((self.index, self.extension, self.bytes));
        Ok(location)
    }
    async fn abort(self: Box<Self>) {
        self.record.lock().unwrap().aborted += 1;
    }
}

/// The admin token every test daemon is started with.
pub const ADMIN_TOKEN: &str = "kiln-test-admin-token-0123456789";

/// A real `kiln serve` on an ephemeral port and its own data dir. Its
/// request helpers act as the admin; [`Daemon::as_token`] acts as someone else.
pub struct Daemon {
    child: Option<std::process::Child>,
    /// `--listen`: `127.0.0.1:0` (a free port) unless started with [`Daemon::start_on`].
    listen: String,
    pub url: String,
    pub data_dir: PathBuf,
    config: Option<PathBuf>,
    pub http: reqwest::Client,
    pub token: String,
}

impl Daemon {
    /// Start a daemon on `data_dir`, with an optional TOML config.
    pub fn start(data_dir: &std::path::Path, config: Option<&str>) -> Daemon {
        Daemon::start_on(data_dir, config, "127.0.0.1:0")
    }

    /// Start a daemon listening on `listen`, so a restart keeps its address.
    /// [`Daemon::start`], returning as soon as it listens, before `/readyz`
    /// (the bundled plugins may still compile on a cold compile cache).
    pub fn start_unready(data_dir: &std::path::Path, config: Option<&str>) -> Daemon {
        let mut d = Daemon::configured(data_dir, config, "127.0.0.1:0");
        d.spawn_no_wait();
        d
    }

    pub fn start_on(data_dir: &std::path::Path, config: Option<&str>, listen: &str) -> Daemon {
        let mut d = Daemon::configured(data_dir, config, listen);
        d.spawn();
        d
    }

    fn configured(data_dir: &std::path::Path, config: Option<&str>, listen: &str) -> Daemon {
        std::fs::create_dir_all(data_dir).unwrap();
        let config = config.map(|text| {
            let path = data_dir.join("kiln.toml");
            std::fs::write(&path, text).unwrap();
            path
        });
        Daemon {
            child: None,
            listen: listen.to_string(),
            url: String::new(),
            data_dir: data_dir.to_path_buf(),
            config,
            http: reqwest::Client::new(),
            token: ADMIN_TOKEN.to_string(),
        }
    }

    fn spawn(&mut self) {
        self.spawn_no_wait();
        self.wait_ready();
    }

    fn spawn_no_wait(&mut self) {
        use std::io::BufRead;
        let mut cmd = Command::new(kiln_bin());
        cmd.args(["serve", "--listen", &self.listen, "--data-dir"])
            .arg(&self.data_dir)
            .env("KILN_LOG", "warn")
            .env("KILN_ADMIN_TOKEN", ADMIN_TOKEN);
        // One compile cache for every test daemon (a cold one compiles the
        // bundled plugins, about 15 s of a debug build, at each start), unless
        // the test's config names its own.
        let own_cache = self.config.as_ref().is_some_and(|c| std::fs::read_to_string(c).unwrap().contains("cache_dir"));
        if !own_cache {
            cmd.env("KILN_CACHE_DIR", daemon_cache_dir());
        }
        if let Some(c) = &self.config {
            cmd.arg("--config").arg(c);
        }
        let mut child = cmd.stdout(std::process::Stdio::piped()).spawn().expect("starting kiln serve");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = std::io::BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        let line = rx.recv_timeout(std::time::Duration::from_secs(120)).expect("kiln serve printed no address");
        self.url = line.trim().strip_prefix("kiln listening on ").expect("address line").to_string();
        self.child = Some(child);
    }

    /// Wait for `/readyz` (on a cold compile cache, the bundled plugins compile after the daemon listens).
    fn wait_ready(&self) {
        use std::io::{Read, Write};
        let addr = self.url.trim_start_matches("http://").to_string();
        let started = std::time::Instant::now();
        loop {
            let mut answer = String::new();
            if let Ok(mut s) = std::net::TcpStream::connect(&addr) {
                let _ = write!(s, "GET /readyz HTTP/1.0\r\nHost: {addr}\r\n\r\n");
                let _ = s.read_to_string(&mut answer);
            }
            if answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200") {
                return;
            }
            assert!(started.elapsed().as_secs() < 300, "kiln serve not ready after 5 min: {answer}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// `kill -9`, then start again on the same data dir.
    pub fn kill9_and_restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap(); // SIGKILL on unix
            c.wait().unwrap();
        }
    }

    /// Send SIGTERM without waiting.
    pub fn sigterm(&self) {
        let pid = self.pid().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    }

    /// Wait up to `timeout` for the daemon to exit; its exit status, or `None` if it did not.
    pub fn wait_exit(&mut self, timeout: std::time::Duration) -> Option<std::process::ExitStatus> {
        let started = std::time::Instant::now();
        while started.elapsed() < timeout {
            if let Some(status) = self.child.as_mut().expect("running").try_wait().unwrap() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        None
    }

    /// SIGTERM, and wait for the daemon to exit (its store closed cleanly).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            let started = std::time::Instant::now();
            while c.try_wait().unwrap().is_none() {
                if started.elapsed() > std::time::Duration::from_secs(30) {
                    c.kill().unwrap();
                    panic!("kiln serve did not stop within 30 s of SIGTERM");
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    }

    /// Start again on the same data dir (after [`Daemon::stop`] or [`Daemon::kill9`]).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the daemon first");
        self.spawn();
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("this handle started the daemon").id()
    }

    /// The daemon's resident memory now, in bytes (`VmRSS`).
    pub fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let kib = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).map(|v| v.trim().trim_end_matches("kB").trim());
        kib.and_then(|k| k.parse::<u64>().ok()).unwrap_or(0) * 1024
    }

    /// A local bucket folder, created if missing.
    pub fn bucket_dir(&self, name: &str) -> PathBuf {
        let p = self.data_dir.join("buckets").join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    /// The same daemon, called with another bearer token (a tenant's, or a bad one).
    pub fn as_token(&self, token: &str) -> Daemon {
        Daemon {
            child: None,
            listen: self.listen.clone(),
            url: self.url.clone(),
            data_dir: self.data_dir.clone(),
            config: None,
            http: self.http.clone(),
            token: token.to_string(),
        }
    }

    /// `kiln ARGS` as a client of this daemon, with this token.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_command(args).output().unwrap()
    }

    /// `kiln ARGS` as a client of this daemon, to spawn; stdout and stderr piped.
    pub fn cli_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(kiln_bin());
        cmd.args(args)
            .env("KILN_URL", &self.url)
            .env("KILN_TOKEN", &self.token)
            .env("KILN_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        cmd
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> (u16, serde_json::Value) {
        let r = req.bearer_auth(&self.token).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        self.send(self.http.get(format!("{}{path}", self.url))).await
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        self.send(self.http.post(format!("{}{path}", self.url)).json(&body)).await
    }

    pub async fn patch(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        self.send(self.http.patch(format!("{}{path}", self.url)).json(&body)).await
    }

    /// POST raw bytes (a plugin upload).
    pub async fn post_bytes(&self, path: &str, bytes: Vec<u8>) -> (u16, serde_json::Value) {
        self.send(self.http.post(format!("{}{path}", self.url)).header("content-type", "application/wasm").body(bytes))
            .await
    }

    /// Upload a plugin (`path` is `/v1/plugins?...`); an upload still compiling
    /// when the daemon answers (202) is polled until it is ready or failed,
    /// and answered as 201 with the plugin, or 422 with why it failed (`detail`).
    pub async fn upload_plugin(&self, path: &str, bytes: Vec<u8>) -> (u16, serde_json::Value) {
        let (status, plugin) = self.post_bytes(path, bytes).await;
        if status != 202 {
            return (status, plugin);
        }
        let started = std::time::Instant::now();
        let url = format!("/v1/plugins/{}", plugin["name"].as_str().unwrap());
        loop {
            let (status, now) = self.get(&url).await;
            assert_eq!(status, 200, "{now}");
            match now["state"].as_str() {
                Some("ready") => return (201, now),
                // As the daemon answers a compile that fails within its wait.
                Some("failed") => {
                    return (422, serde_json::json!({"detail": now["error"], "field": "body", "plugin": now}));
                }
                _ => {}
            }
            assert!(started.elapsed().as_secs() < 300, "plugin still compiling after 5 min: {now}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    pub async fn delete(&self, path: &str) -> u16 {
        self.delete_with_body(path).await.0
    }

    pub async fn delete_with_body(&self, path: &str) -> (u16, serde_json::Value) {
        self.send(self.http.delete(format!("{}{path}", self.url))).await
    }

    /// Poll a job until it is in a terminal state (or `timeout` passes).
    pub async fn wait_job(&self, id: u64, timeout: std::time::Duration) -> serde_json::Value {
        let started = std::time::Instant::now();
        loop {
            let (_, job) = self.get(&format!("/v1/jobs/{id}")).await;
            if matches!(job["state"].as_str(), Some("succeeded" | "failed" | "cancelled")) {
                return job;
            }
            assert!(started.elapsed() < timeout, "job {id} did not end in {timeout:?}: {job}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Create a job from `spec`, wait for its end, and return it with every task.
    pub async fn run_job(
        &self,
        spec: serde_json::Value,
        timeout: std::time::Duration,
    ) -> (serde_json::Value, Vec<serde_json::Value>) {
        let (status, job) = self.post("/v1/jobs", spec).await;
        assert_eq!(status, 201, "{job}");
        let id = job["id"].as_u64().unwrap();
        let done = self.wait_job(id, timeout).await;
        let tasks = self.all_tasks(id, "").await;
        (done, tasks)
    }

    /// Create a role with `grants`, a tenant holding it with `quotas`, and
    /// a token: the tenant's view of the daemon.
    pub async fn tenant(&self, name: &str, grants: serde_json::Value, quotas: serde_json::Value) -> Daemon {
        let role = format!("{name}-role");
        for (path, body) in [
            ("/v1/roles".to_string(), serde_json::json!({"name": role, "grants": grants})),
            ("/v1/tenants".to_string(), serde_json::json!({"name": name, "roles": [role], "quotas": quotas})),
        ] {
            let (status, v) = self.post(&path, body).await;
            assert!(status == 201 || status == 200, "POST {path}: {status} {v}");
        }
        let (status, t) = self.post(&format!("/v1/tenants/{name}/tokens"), serde_json::json!({"label": "test"})).await;
        assert_eq!(status, 201, "{t}");
        self.as_token(t["token"].as_str().unwrap())
    }

    /// Every task of a job, following cursors.
    pub async fn all_tasks(&self, id: u64, query: &str) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let c = cursor.as_ref().map(|c| format!("&cursor={c}")).unwrap_or_default();
            let (status, page) = self.get(&format!("/v1/jobs/{id}/tasks?limit=200{query}{c}")).await;
            assert_eq!(status, 200, "{page}");
            out.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["next"].as_str() {
                Some(n) => cursor = Some(n.to_string()),
                None => return out,
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A task's result as JSON (the API carries it as a JSON value, or as text).
pub fn task_result(task: &serde_json::Value) -> serde_json::Value {
    match &task["result"] {
        serde_json::Value::String(s) => serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {task}")),
        v => v.clone(),
    }
}

/// Counters must always add up.
pub fn assert_counters_add_up(job: &serde_json::Value) {
    let c = &job["counters"];
    let n = |k: &str| c[k].as_u64().unwrap();
    assert_eq!(n("total"), n("pending") + n("running") + n("succeeded") + n("failed") + n("skipped"), "{c}");
}

/// Ask `check` every 100 ms until it answers; after `timeout`, fail with `what()`.
pub async fn poll_until<T>(
    timeout: std::time::Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
    what: impl Fn() -> String,
) -> T {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(answer) = check().await {
            return answer;
        }
        assert!(std::time::Instant::now() < deadline, "gave up waiting: {}", what());
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
