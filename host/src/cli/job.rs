//! `kiln job …`: create, list, show, follow, act on and report jobs.
//!
//! Just over 500 lines: one subcommand family, whose options and output
//! formats share helpers; split, they would be read across files.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::client::{Client, paged, task_line};
use crate::model::{JobRecord, JobState};

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
    /// Tasks of this job running at once [default: 8].
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
