//! The client commands: `kiln job|task|style|bucket …` over the HTTP API at `KILN_URL`.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::model::{JobRecord, JobState, TaskState};

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
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum JobCommand {
    /// Create (and by default start) a job.
    #[command(
        after_help = "Examples:\n  kiln job create --bucket photos --suffix .jpg,.png --style 'image/resize,w_256/format,webp' --output-bucket thumbs --output '{dirname}/{barename}.{autoext}' --wait\n  kiln job create --bucket photos --prefix 2024/ --style copy --output-bucket backup --output '{key}' --dry-run"
    )]
    Create(CreateJob),
    /// List jobs, newest first.
    #[command(after_help = "Examples:\n  kiln job list\n  kiln job list --state failed --tag team=web")]
    List {
        /// Only jobs in this state.
        #[arg(long, value_enum)]
        state: Option<JobState>,
        /// Only jobs with this tag, NAME=VALUE.
        #[arg(long)]
        tag: Option<String>,
        /// Jobs per page.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Where the page starts: the `next` of the page before.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// A job: its state, counters, selection and output.
    #[command(after_help = "Examples:\n  kiln job get 7\n  kiln job get 7 --json | jq .counters")]
    Get {
        /// The job's id.
        id: u64,
    },
    /// Stop claiming the job's tasks (those running finish); `resume` goes on.
    #[command(after_help = "Example:\n  kiln job suspend 7")]
    Suspend {
        /// The job's id.
        id: u64,
    },
    /// Go on with a suspended job (or start one created with `--no-start`).
    #[command(after_help = "Example:\n  kiln job resume 7")]
    Resume {
        /// The job's id.
        id: u64,
    },
    /// Stop a job for good; its pending tasks never run.
    #[command(after_help = "Example:\n  kiln job cancel 7")]
    Cancel {
        /// The job's id.
        id: u64,
    },
    /// Run the failed tasks of an ended job again.
    #[command(after_help = "Example:\n  kiln job retry-failed 7 && kiln job wait 7")]
    RetryFailed {
        /// The job's id.
        id: u64,
    },
    /// Change a job's priority (also while it runs).
    #[command(after_help = "Examples:\n  kiln job priority 7 10\n  kiln job priority 7 -5")]
    Priority {
        /// The job's id.
        id: u64,
        /// Higher goes first; may be negative.
        priority: i32,
    },
    /// Delete a job that is not running, with its tasks.
    #[command(after_help = "Example:\n  kiln job delete 7")]
    Delete {
        /// The job's id.
        id: u64,
    },
    /// Wait for a job to end, with a progress bar.
    #[command(after_help = "Examples:\n  kiln job wait 7\n  kiln job wait 7 --reconnect-for 5m")]
    Wait {
        /// The job's id.
        id: u64,
    },
    /// A job's state changes, progress and failed tasks as they happen, until it ends.
    #[command(
        after_help = "Examples:\n  kiln job logs 7\n  kiln job logs 7 --no-follow        # what happened so far, then exit\n  kiln job logs 7 --json | jq .      # one JSON object per event"
    )]
    Logs {
        /// The job's id.
        id: u64,
        /// Print the state and the failed tasks so far, then exit.
        #[arg(long)]
        no_follow: bool,
        /// At most one progress line this often, e.g. `10s`.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        every: Duration,
    },
    /// Download the completion report: one row per task.
    #[command(after_help = "Examples:\n  kiln job report 7 -o report.csv\n  kiln job report 7 --failed --format jsonl")]
    Report {
        /// The job's id.
        id: u64,
        /// CSV, or JSON Lines.
        #[arg(long, value_enum, default_value = "csv")]
        format: ReportFormatArg,
        /// Only the failed tasks.
        #[arg(long)]
        failed: bool,
        /// Write to this file instead of stdout.
        #[arg(long, short)]
        output: Option<std::path::PathBuf>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ReportFormatArg {
    Csv,
    Jsonl,
}

#[derive(Args)]
pub struct CreateJob {
    /// Input bucket.
    #[arg(long)]
    bucket: String,
    /// Keys starting with this.
    #[arg(long, default_value = "")]
    prefix: String,
    /// File-name suffixes, comma-separated (e.g. `.jpg,.png`).
    #[arg(long)]
    suffix: Option<String>,
    /// File-name prefixes, comma-separated.
    #[arg(long)]
    file_prefix: Option<String>,
    /// Explicit keys instead of a prefix (repeatable).
    #[arg(long = "key")]
    keys: Vec<String>,
    /// A manifest object listing the keys (CSV or JSON Lines), instead of a listing.
    #[arg(long)]
    manifest: Option<String>,
    /// The manifest's bucket (default: --bucket).
    #[arg(long, requires = "manifest")]
    manifest_bucket: Option<String>,
    /// `csv` or `jsonl` (default: from the manifest's extension).
    #[arg(long, requires = "manifest")]
    manifest_format: Option<String>,
    /// A glob over the whole key, e.g. 'photos/**/IMG_*.{jpg,png}'.
    #[arg(long)]
    glob: Option<String>,
    /// Objects of at least this size, e.g. `10KiB` or `10240`.
    #[arg(long)]
    min_size: Option<bytesize::ByteSize>,
    /// Objects of at most this size.
    #[arg(long)]
    max_size: Option<bytesize::ByteSize>,
    /// Objects modified at or after this time: RFC 3339 or unix seconds.
    #[arg(long)]
    modified_after: Option<String>,
    /// Objects modified before this time: RFC 3339 or unix seconds.
    #[arg(long)]
    modified_before: Option<String>,
    /// Write the completion report to this bucket when the job ends.
    #[arg(long, requires = "report_key")]
    report_bucket: Option<String>,
    /// The report's key; `{jobid}` is replaced, e.g. `reports/{jobid}.csv`.
    #[arg(long, requires = "report_bucket")]
    report_key: Option<String>,
    /// The bucket report lists only the failed tasks.
    #[arg(long, requires = "report_bucket")]
    report_failed: bool,
    /// Show what the job would do (count, bytes, sample outputs, collisions,
    /// grant and path problems) without processing or storing anything.
    #[arg(long, conflicts_with_all = ["wait", "no_start"])]
    dry_run: bool,
    /// A saved style or `PLUGIN/params`.
    #[arg(long)]
    style: String,
    /// The bucket the outputs are written to.
    #[arg(long)]
    output_bucket: String,
    /// Output template, e.g. `thumbs/{dirname}/{barename}.{autoext}`.
    #[arg(long)]
    output: String,
    /// A name for people; jobs are found by id.
    #[arg(long)]
    name: Option<String>,
    /// Tasks of this job in flight at once [default: 8].
    #[arg(long)]
    concurrency: Option<u32>,
    /// Stop the job at its first failed task.
    #[arg(long)]
    fast_fail: bool,
    /// NAME=VALUE (repeatable).
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Store the job as Ready without starting it.
    #[arg(long)]
    no_start: bool,
    /// The role whose grants bound what the job reads and writes.
    #[arg(long)]
    role: Option<String>,
    /// POST CloudEvents of state changes here (with --notify-secret).
    #[arg(long, requires = "notify_secret")]
    notify_url: Option<String>,
    /// Signs each webhook request (HMAC-SHA256); at least 16 characters.
    #[arg(long, env = "KILN_NOTIFY_SECRET", hide_env_values = true)]
    notify_secret: Option<String>,
    /// Also send an event per finished task.
    #[arg(long, requires = "notify_url")]
    task_events: bool,
    /// Higher runs first among your jobs.
    #[arg(long, allow_hyphen_values = true)]
    priority: Option<i32>,
    /// At most this many tasks started per second.
    #[arg(long)]
    max_tasks_per_second: Option<u32>,
    /// Skip sources unchanged (same etag) since the last successful run of the same job definition.
    #[arg(long)]
    skip_unchanged: bool,
    /// After the backfill, keep processing new or changed objects until suspended or cancelled.
    #[arg(long)]
    follow: bool,
    /// How often a following job lists again, e.g. `30s`.
    #[arg(long, requires = "follow")]
    follow_interval: Option<String>,
    /// Each task's deadline, e.g. `10m` (default: the daemon's; at most `runtime.max_limits` and your quota).
    #[arg(long)]
    deadline: Option<String>,
    /// Bytes of one task's outputs at most, e.g. `8GiB`.
    #[arg(long)]
    max_output: Option<bytesize::ByteSize>,
    /// Memory of one task's plugin instance at most, e.g. `256MiB` (only lower than the daemon's).
    #[arg(long)]
    max_memory: Option<bytesize::ByteSize>,
    /// Wait for the job to end, showing progress.
    #[arg(long)]
    wait: bool,
}

#[derive(Subcommand)]
pub enum TaskCommand {
    /// A page of a job's tasks.
    #[command(
        after_help = "Examples:\n  kiln task list 7 --state failed\n  kiln task list 7 --prefix trip-1/ --limit 20\n  kiln task list 7 --error decode"
    )]
    List {
        /// The job's id.
        job: u64,
        /// Only tasks in this state.
        #[arg(long, value_enum)]
        state: Option<TaskState>,
        /// Source keys containing this.
        #[arg(long)]
        search: Option<String>,
        /// Source keys starting with this.
        #[arg(long)]
        prefix: Option<String>,
        /// Error kind or message containing this.
        #[arg(long)]
        error: Option<String>,
        /// Tasks per page.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Where the page starts: the `next` of the page before.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// One task: its source, state, attempts, outputs and error.
    #[command(after_help = "Example:\n  kiln task get 7 42")]
    Get {
        /// The job's id.
        job: u64,
        /// The task's number within the job.
        seq: u64,
    },
}

#[derive(Subcommand)]
pub enum StyleCommand {
    /// Save a style: `kiln style create thumb 'image/resize,w_256/format,webp'`.
    #[command(after_help = "Example:\n  kiln style create thumb 'image/resize,w_256/format,webp'")]
    Create {
        /// The style's name, used as `--style NAME`.
        name: String,
        /// What it stands for: `PLUGIN/params`.
        style: String,
    },
    /// The saved styles you may use.
    #[command(after_help = "Example:\n  kiln style list")]
    List,
    /// One saved style.
    #[command(after_help = "Example:\n  kiln style get thumb")]
    Get {
        /// The style.
        name: String,
    },
    /// Delete one of your saved styles.
    #[command(after_help = "Example:\n  kiln style delete thumb")]
    Delete {
        /// The style.
        name: String,
    },
    /// What a plugin's styles are: its actions and their parameters, its formats and output variables.
    #[command(
        after_help = "Examples:\n  kiln style describe image\n  kiln style describe my-style --owner acme --json"
    )]
    Describe {
        /// The plugin, as a style names it (`image` in `image/resize,w_256`).
        plugin: String,
        /// Admin: the owning tenant of an uploaded plugin.
        #[arg(long)]
        owner: Option<String>,
    },
}

/// A 409 `plugin-not-ready` for a plugin that is compiling (not one that failed).
fn compiling(status: reqwest::StatusCode, body: &str) -> bool {
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
fn paged(page: &Value, table: fn(&[Value]) -> String) -> String {
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

pub async fn job(client: &Client, cmd: JobCommand) -> anyhow::Result<()> {
    match cmd {
        JobCommand::Create(c) => {
            let mut tags = serde_json::Map::new();
            for t in &c.tags {
                let (k, v) = t.split_once('=').with_context(|| format!("--tag `{t}`: expected NAME=VALUE"))?;
                tags.insert(k.into(), v.into());
            }
            let mut input = json!({"bucket": c.bucket, "prefix": c.prefix});
            if !c.keys.is_empty() {
                input = json!({"bucket": c.bucket, "keys": c.keys});
            }
            if let Some(key) = &c.manifest {
                let mut m = json!({"key": key});
                if let Some(b) = &c.manifest_bucket {
                    m["bucket"] = json!(b);
                }
                if let Some(f) = &c.manifest_format {
                    m["format"] = json!(f);
                }
                input = json!({"bucket": c.bucket, "manifest": m});
                if !c.prefix.is_empty() {
                    input["prefix"] = json!(c.prefix);
                }
            }
            for (name, value) in [
                ("glob", c.glob.clone()),
                ("modified_after", c.modified_after.clone()),
                ("modified_before", c.modified_before.clone()),
            ] {
                if let Some(v) = value {
                    input[name] = json!(v);
                }
            }
            for (name, value) in [("min_size", c.min_size), ("max_size", c.max_size)] {
                if let Some(v) = value {
                    input[name] = json!(v.as_u64());
                }
            }
            if let Some(s) = &c.suffix {
                input["suffixes"] = json!(s);
            }
            if let Some(p) = &c.file_prefix {
                input["file_prefixes"] = json!(p);
            }
            let mut body = json!({
                "input": input,
                "style": c.style,
                "output": {"bucket": c.output_bucket, "template": c.output},
                "fast_fail": c.fast_fail,
                "tags": tags,
                "start": !c.no_start,
            });
            if let Some(r) = c.role {
                body["role"] = json!(r);
            }
            if let (Some(url), Some(secret)) = (c.notify_url, c.notify_secret) {
                body["notify"] = json!({"url": url, "secret": secret, "task_events": c.task_events});
            }
            if let Some(p) = c.priority {
                body["priority"] = json!(p);
            }
            if let Some(r) = c.max_tasks_per_second {
                body["max_tasks_per_second"] = json!(r);
            }
            let mut limits = json!({});
            if let Some(d) = &c.deadline {
                limits["deadline"] = json!(d);
            }
            if let Some(b) = c.max_output {
                limits["max_output"] = json!(b.as_u64());
            }
            if let Some(b) = c.max_memory {
                limits["max_memory"] = json!(b.as_u64());
            }
            if limits.as_object().is_some_and(|l| !l.is_empty()) {
                body["limits"] = limits;
            }
            body["skip_unchanged"] = json!(c.skip_unchanged);
            body["follow"] = json!(c.follow);
            if let Some(i) = c.follow_interval {
                body["follow_interval"] = json!(i);
            }
            if let Some(n) = c.name {
                body["name"] = json!(n);
            }
            if let Some(n) = c.concurrency {
                body["concurrency"] = json!(n);
            }
            if let (Some(bucket), Some(key)) = (&c.report_bucket, &c.report_key) {
                body["report"] =
                    json!({"bucket": bucket, "key": key, "scope": if c.report_failed { "failed" } else { "all" }});
            }
            if c.dry_run {
                body["dry_run"] = json!(true);
                let answer = client.post("/v1/jobs", &body).await?;
                client.print(&answer, dry_run_summary);
                return Ok(());
            }
            let job = client.post("/v1/jobs", &body).await?;
            if c.wait {
                let id = job["id"].as_u64().unwrap_or(0);
                if !client.json {
                    eprintln!("job {id} created");
                }
                return wait(client, id).await;
            }
            client.print(&job, |j| format!("job {} created ({})", j["id"], j["state"].as_str().unwrap_or("")));
        }
        JobCommand::List { state, tag, limit, cursor } => {
            let mut q = vec![("limit", limit.to_string())];
            if let Some(s) = state {
                q.push(("state", s.as_str().into()));
            }
            if let Some(t) = tag {
                q.push(("tag", t));
            }
            if let Some(c) = cursor {
                q.push(("cursor", c));
            }
            let page = client.get("/v1/jobs", &q).await?;
            client.print(&page, |p| paged(p, super::human::job_table));
        }
        JobCommand::Get { id } => {
            let j = client.get(&format!("/v1/jobs/{id}"), &[]).await?;
            client.print(&j, super::human::job_summary);
        }
        JobCommand::Suspend { id } => action(client, id, "suspend").await?,
        JobCommand::Resume { id } => action(client, id, "resume").await?,
        JobCommand::Cancel { id } => action(client, id, "cancel").await?,
        JobCommand::RetryFailed { id } => action(client, id, "retry-failed").await?,
        JobCommand::Priority { id, priority } => {
            let job = client.patch(&format!("/v1/jobs/{id}"), &[], &json!({"priority": priority})).await?;
            client.print(&job, |j| format!("job {id} priority {}", j["spec"]["priority"]));
        }
        JobCommand::Delete { id } => {
            client.delete(&format!("/v1/jobs/{id}"), &[]).await?;
            client.print(&json!({"deleted": id}), |_| format!("job {id} deleted"));
        }
        JobCommand::Wait { id } => wait(client, id).await?,
        JobCommand::Logs { id, no_follow, every } => super::watch::logs(client, id, !no_follow, every).await?,
        JobCommand::Report { id, format, failed, output } => {
            let format = match format {
                ReportFormatArg::Csv => "csv",
                ReportFormatArg::Jsonl => "jsonl",
            };
            let query = [("format", format.to_string()), ("scope", if failed { "failed" } else { "all" }.to_string())];
            let mut resp = client.get_raw(&format!("/v1/jobs/{id}/report"), &query).await?;
            let mut sink: Box<dyn std::io::Write> = match &output {
                Some(path) => {
                    Box::new(std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?)
                }
                None => Box::new(std::io::stdout().lock()),
            };
            while let Some(chunk) = resp.chunk().await? {
                sink.write_all(&chunk)?;
            }
            sink.flush()?;
        }
    }
    Ok(())
}

/// A dry run's answer, for people.
fn dry_run_summary(d: &Value) -> String {
    let n = |k: &str| d[k].as_u64().unwrap_or(0);
    let mut lines = vec![format!(
        "dry run: {} objects, {} ({} bytes); nothing was processed or stored",
        n("objects"),
        bytesize::ByteSize::b(n("bytes")).display().iec(),
        n("bytes")
    )];
    match d["autoext"].as_str() {
        _ if d["no_output"] == true => lines.push(
            "the style wrote no output for the first object: its answer is the task's result (`kiln task get`, the report)"
                .into(),
        ),
        Some(e) if d["autoext_probed"] == true => lines.push(format!(
            "{{autoext}} rendered as `{e}`, what the style wrote for the first object (run once; nothing stored)"
        )),
        Some(e) => lines.push(format!("{{autoext}} rendered as `{e}`, the plugin's output format")),
        None => lines.push("{autoext} rendered as each source's extension".into()),
    }
    let list = |k: &str| d[k].as_array().cloned().unwrap_or_default();
    if !list("sample").is_empty() {
        lines.push("sample:".into());
        for s in list("sample") {
            lines.push(format!("  {} -> {}", s["source"].as_str().unwrap_or(""), s["output"].as_str().unwrap_or("")));
        }
    }
    let truncated = if d["truncated"] == true { " (among the first 100000 objects)" } else { "" };
    lines.push(format!("collisions: {}{truncated}", n("collision_count")));
    for c in list("collisions") {
        let sources: Vec<&str> = c["sources"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        lines.push(format!("  {} <- {}", c["output"].as_str().unwrap_or(""), sources.join(", ")));
    }
    for (title, key, count) in [
        ("outside the role's grants", "outside_grants", "outside_grants_count"),
        ("path rule violations", "path_rule_violations", "path_rule_violation_count"),
        ("missing", "missing", "missing_count"),
    ] {
        if n(count) == 0 {
            continue;
        }
        lines.push(format!("{title}: {}", n(count)));
        for p in list(key) {
            let what = match p["access"].as_str() {
                Some(a) => format!("{a} {}/{}", p["bucket"].as_str().unwrap_or(""), p["key"].as_str().unwrap_or("")),
                None => p["source"].as_str().unwrap_or("").to_string(),
            };
            lines.push(format!("  {what}: {}", p["error"].as_str().unwrap_or("")));
        }
    }
    lines.join("\n")
}

async fn action(client: &Client, id: u64, what: &str) -> anyhow::Result<()> {
    let j = client.post(&format!("/v1/jobs/{id}/{what}"), &json!({})).await?;
    client.print(&j, |j| format!("job {id}: {}", j["state"].as_str().unwrap_or("")));
    Ok(())
}

/// Poll the job with a progress bar (done/total, rate, ETA), then print a
/// summary with the failures. Exits non-zero if the job did not succeed.
async fn wait(client: &Client, id: u64) -> anyhow::Result<()> {
    let bar = indicatif::ProgressBar::new(0);
    if client.json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} job {msg} [{bar:30}] {pos}/{len} {per_sec} ETA {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let show = |job: &JobRecord| {
        let c = job.counters;
        bar.set_length(c.total);
        bar.set_position(c.succeeded + c.failed + c.skipped);
        bar.set_message(format!("{id} {}", job.state.as_str()));
    };
    let lost = || bar.set_message(format!("{id}: the daemon is not answering; reconnecting"));
    let Some(job) = super::watch::follow_job(client, id, show, lost).await? else {
        bail!("job {id} was deleted");
    };
    bar.finish_and_clear();
    let failures =
        client.get(&format!("/v1/jobs/{id}/tasks"), &[("state", "failed".into()), ("limit", "20".into())]).await?;
    if client.json {
        println!("{}", serde_json::to_string_pretty(&json!({"job": job, "failures": failures["items"]}))?);
    } else {
        let c = job.counters;
        println!(
            "job {id} {}: {} succeeded, {} failed, {} skipped of {}; {} bytes in, {} bytes out",
            job.state.as_str(),
            c.succeeded,
            c.failed,
            c.skipped,
            c.total,
            c.bytes_in,
            c.bytes_out
        );
        if let Some(e) = &job.error {
            println!("error: {e}");
        }
        for t in failures["items"].as_array().into_iter().flatten() {
            println!("{}", task_line(t));
        }
    }
    if job.state != JobState::Succeeded {
        bail!("job {id} ended {}", job.state.as_str());
    }
    Ok(())
}

pub async fn task(client: &Client, cmd: TaskCommand) -> anyhow::Result<()> {
    match cmd {
        TaskCommand::List { job, state, search, prefix, error, limit, cursor } => {
            let mut q = vec![("limit", limit.to_string())];
            for (k, v) in [("search", search), ("prefix", prefix), ("error", error), ("cursor", cursor)] {
                if let Some(v) = v {
                    q.push((k, v));
                }
            }
            if let Some(s) = state {
                q.push(("state", s.as_str().into()));
            }
            let path = format!("/v1/jobs/{job}/tasks");
            let mut page = client.get(&path, &q).await?;
            // A page examines a bounded number of tasks and may come back short
            // with a `next` (docs/api.md): fill it from the next ones, as the console does.
            for _ in 1..20 {
                let got = page["items"].as_array().map_or(0, Vec::len);
                let Some(next) = page["next"].as_str().map(str::to_string).filter(|_| got < limit) else { break };
                q.retain(|(k, _)| *k != "cursor" && *k != "limit");
                q.push(("cursor", next));
                q.push(("limit", (limit - got).to_string()));
                let more = client.get(&path, &q).await?;
                if let (Some(items), Some(extra)) = (page["items"].as_array_mut(), more["items"].as_array()) {
                    items.extend(extra.iter().cloned());
                }
                page["next"] = more["next"].clone();
            }
            client.print(&page, |p| paged(p, super::human::task_table));
        }
        TaskCommand::Get { job, seq } => {
            let t = client.get(&format!("/v1/jobs/{job}/tasks/{seq}"), &[]).await?;
            client.print(&t, super::human::task_summary);
        }
    }
    Ok(())
}

pub async fn style(client: &Client, cmd: StyleCommand) -> anyhow::Result<()> {
    match cmd {
        StyleCommand::Create { name, style } => {
            let s = client.post("/v1/styles", &json!({"name": name, "style": style})).await?;
            client.print(&s, |s| format!("style {} saved", s["name"].as_str().unwrap_or("")));
        }
        StyleCommand::List => {
            let list = client.get("/v1/styles", &[]).await?;
            client.print(&list, |l| {
                l.as_array()
                    .into_iter()
                    .flatten()
                    .map(|s| {
                        format!(
                            "{:<20} {}/{}",
                            s["name"].as_str().unwrap_or(""),
                            s["plugin"].as_str().unwrap_or(""),
                            s["params"].as_str().unwrap_or("")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        StyleCommand::Get { name } => {
            let s = client.get(&format!("/v1/styles/{name}"), &[]).await?;
            client.print(&s, |s| serde_json::to_string_pretty(s).unwrap_or_default());
        }
        StyleCommand::Delete { name } => {
            client.delete(&format!("/v1/styles/{name}"), &[]).await?;
            client.print(&json!({"deleted": name}), |_| format!("style {name} deleted"));
        }
        StyleCommand::Describe { plugin, owner } => {
            let query: Vec<(&str, String)> = owner.map(|o| ("owner", o)).into_iter().collect();
            let p = client.get(&format!("/v1/plugins/{plugin}"), &query).await?;
            client.print(&p["info"], super::human::plugin_description);
        }
    }
    Ok(())
}

pub async fn buckets(client: &Client) -> anyhow::Result<()> {
    let list = client.get("/v1/buckets", &[]).await?;
    client.print(&list, |l| {
        l.as_array()
            .into_iter()
            .flatten()
            .map(|b| format!("{:<24} {}", b["name"].as_str().unwrap_or(""), b["kind"].as_str().unwrap_or("")))
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}
