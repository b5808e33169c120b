//! The client commands: `kiln job|task|style|bucket …` over the HTTP API at `KILN_URL`.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::model::{JobRecord, JobState, TaskState};

#[derive(Args)]
pub struct ClientArgs {
    /// The daemon's address.
    #[arg(long, global = true, env = "KILN_URL", default_value = "http://127.0.0.1:7878")]
    pub url: String,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum JobCommand {
    /// Create (and by default start) a job.
    Create(CreateJob),
    /// List jobs, newest first.
    List {
        #[arg(long, value_enum)]
        state: Option<JobState>,
        /// NAME=VALUE
        #[arg(long)]
        tag: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        cursor: Option<String>,
    },
    Get { id: u64 },
    Suspend { id: u64 },
    Resume { id: u64 },
    Cancel { id: u64 },
    RetryFailed { id: u64 },
    Delete { id: u64 },
    /// Wait for a job to end, with a progress bar.
    Wait { id: u64 },
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
    /// A saved style or `PLUGIN/params`.
    #[arg(long)]
    style: String,
    #[arg(long)]
    output_bucket: String,
    /// Output template, e.g. `thumbs/{dirname}/{barename}.{autoext}`.
    #[arg(long)]
    output: String,
    #[arg(long)]
    name: Option<String>,
    #[arg(long)]
    concurrency: Option<u32>,
    #[arg(long)]
    fast_fail: bool,
    /// NAME=VALUE (repeatable).
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Store the job as Ready without starting it.
    #[arg(long)]
    no_start: bool,
    /// Wait for the job to end, showing progress.
    #[arg(long)]
    wait: bool,
}

#[derive(Subcommand)]
pub enum TaskCommand {
    /// A page of a job's tasks.
    List {
        job: u64,
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
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        cursor: Option<String>,
    },
    Get { job: u64, seq: u64 },
}

#[derive(Subcommand)]
pub enum StyleCommand {
    /// Save a style: `kiln style create thumb 'image/resize,w_256/format,webp'`.
    Create { name: String, style: String },
    List,
    Get { name: String },
    Delete { name: String },
}

pub struct Client {
    base: String,
    http: reqwest::Client,
    pub json: bool,
}

impl Client {
    pub fn new(args: &ClientArgs) -> Client {
        Client { base: args.url.trim_end_matches('/').to_string(), http: reqwest::Client::new(), json: args.json }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let resp = req.send().await.with_context(|| format!("cannot reach kiln at {} (is `kiln serve` running? set KILN_URL)", self.base))?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            let problem: Value = serde_json::from_str(&text).unwrap_or(json!({"detail": text}));
            let detail = problem["detail"].as_str().unwrap_or(&text).to_string();
            match problem["field"].as_str() {
                Some(f) => bail!("{status}: {detail} (field `{f}`)"),
                None => bail!("{status}: {detail}"),
            }
        }
        Ok(if text.is_empty() { Value::Null } else { serde_json::from_str(&text)? })
    }

    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Value> {
        self.send(self.http.get(format!("{}{path}", self.base)).query(query)).await
    }
    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body)).await
    }
    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.http.delete(format!("{}{path}", self.base))).await
    }

    fn print(&self, value: &Value, human: impl FnOnce(&Value) -> String) {
        if self.json {
            println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
        } else {
            println!("{}", human(value));
        }
    }
}

fn job_line(j: &Value) -> String {
    let c = &j["counters"];
    format!(
        "{:>5}  {:<10} {:>6}/{:<6} ok {:<6} failed {:<6} {}  {}",
        j["id"],
        j["state"].as_str().unwrap_or(""),
        c["succeeded"].as_u64().unwrap_or(0) + c["failed"].as_u64().unwrap_or(0) + c["skipped"].as_u64().unwrap_or(0),
        c["total"],
        c["succeeded"],
        c["failed"],
        j["spec"]["style"].as_str().unwrap_or(""),
        j["spec"]["name"].as_str().unwrap_or(""),
    )
}

fn task_line(t: &Value) -> String {
    let err = t["error"]["message"].as_str().map(|m| format!("  [{}] {m}", t["error"]["kind"].as_str().unwrap_or(""))).unwrap_or_default();
    let outs = t["outputs"].as_array().map(|o| o.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")).unwrap_or_default();
    format!("{:>7}  {:<9} {}{}{}", t["seq"], t["state"].as_str().unwrap_or(""), t["source_key"].as_str().unwrap_or(""), if outs.is_empty() { String::new() } else { format!(" -> {outs}") }, err)
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
            if let Some(n) = c.name {
                body["name"] = json!(n);
            }
            if let Some(n) = c.concurrency {
                body["concurrency"] = json!(n);
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
            client.print(&page, |p| {
                let mut lines: Vec<String> = p["items"].as_array().into_iter().flatten().map(job_line).collect();
                if let Some(n) = p["next"].as_str() {
                    lines.push(format!("(more: --cursor {n})"));
                }
                lines.join("\n")
            });
        }
        JobCommand::Get { id } => {
            let j = client.get(&format!("/v1/jobs/{id}"), &[]).await?;
            client.print(&j, |j| serde_json::to_string_pretty(j).unwrap_or_default());
        }
        JobCommand::Suspend { id } => action(client, id, "suspend").await?,
        JobCommand::Resume { id } => action(client, id, "resume").await?,
        JobCommand::Cancel { id } => action(client, id, "cancel").await?,
        JobCommand::RetryFailed { id } => action(client, id, "retry-failed").await?,
        JobCommand::Delete { id } => {
            client.delete(&format!("/v1/jobs/{id}")).await?;
            client.print(&json!({"deleted": id}), |_| format!("job {id} deleted"));
        }
        JobCommand::Wait { id } => wait(client, id).await?,
    }
    Ok(())
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
    let started = std::time::Instant::now();
    let job: JobRecord = loop {
        let value = client.get(&format!("/v1/jobs/{id}"), &[]).await?;
        let job: JobRecord = serde_json::from_value(value)?;
        let c = job.counters;
        bar.set_length(c.total);
        bar.set_position(c.succeeded + c.failed + c.skipped);
        bar.set_message(format!("{id} {}", job.state.as_str()));
        if job.state.is_terminal() || job.state == JobState::Suspended {
            break job;
        }
        tokio::time::sleep(super::poll::next_poll(c.succeeded + c.failed + c.skipped, c.total, started.elapsed())).await;
    };
    bar.finish_and_clear();
    let failures = client.get(&format!("/v1/jobs/{id}/tasks"), &[("state", "failed".into()), ("limit", "20".into())]).await?;
    if client.json {
        println!("{}", serde_json::to_string_pretty(&json!({"job": job, "failures": failures["items"]}))?);
    } else {
        let c = job.counters;
        println!(
            "job {id} {}: {} succeeded, {} failed, {} skipped of {}; {} bytes in, {} bytes out",
            job.state.as_str(), c.succeeded, c.failed, c.skipped, c.total, c.bytes_in, c.bytes_out
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
            let page = client.get(&format!("/v1/jobs/{job}/tasks"), &q).await?;
            client.print(&page, |p| {
                let mut lines: Vec<String> = p["items"].as_array().into_iter().flatten().map(task_line).collect();
                if let Some(n) = p["next"].as_str() {
                    lines.push(format!("(more: --cursor {n})"));
                }
                lines.join("\n")
            });
        }
        TaskCommand::Get { job, seq } => {
            let t = client.get(&format!("/v1/jobs/{job}/tasks/{seq}"), &[]).await?;
            client.print(&t, |t| serde_json::to_string_pretty(t).unwrap_or_default());
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
                    .map(|s| format!("{:<20} {}/{}", s["name"].as_str().unwrap_or(""), s["plugin"].as_str().unwrap_or(""), s["params"].as_str().unwrap_or("")))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        StyleCommand::Get { name } => {
            let s = client.get(&format!("/v1/styles/{name}"), &[]).await?;
            client.print(&s, |s| serde_json::to_string_pretty(s).unwrap_or_default());
        }
        StyleCommand::Delete { name } => {
            client.delete(&format!("/v1/styles/{name}")).await?;
            client.print(&json!({"deleted": name}), |_| format!("style {name} deleted"));
        }
    }
    Ok(())
}

pub async fn buckets(client: &Client) -> anyhow::Result<()> {
    let list = client.get("/v1/buckets", &[]).await?;
    client.print(&list, |l| {
        l.as_array().into_iter().flatten().map(|b| format!("{:<24} {}", b["name"].as_str().unwrap_or(""), b["kind"].as_str().unwrap_or(""))).collect::<Vec<_>>().join("\n")
    });
    Ok(())
}
