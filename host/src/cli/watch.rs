//! Watching the daemon: following a job's event stream across restarts
//! (`job wait`, `--wait`), a job's events and failures as they happen
//! (`job logs`), every running job at once (`top`), and a job's webhook
//! deliveries (`webhook list`).

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use anyhow::bail;
use serde_json::Value;

use super::client::Client;
use crate::model::{JobRecord, JobState};

/// Whether an error is the daemon being away (a restart, a full disk) rather
/// than an answer: a connection that failed or dropped, or a 503.
pub fn retryable(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<reqwest::Error>()
            .is_some_and(|r| r.is_connect() || r.is_request() || r.is_body() || r.is_timeout())
            || cause.downcast_ref::<StreamEnded>().is_some()
    }) || e.to_string().starts_with("503")
}

/// The event stream ended before the job did (the daemon stopped).
#[derive(Debug, thiserror::Error)]
#[error("the event stream ended before the job did")]
struct StreamEnded;

fn settled(job: &JobRecord) -> bool {
    job.state.is_terminal() || job.state == JobState::Suspended
}

/// Read `GET /v1/jobs/{id}/events` until the job ends or is suspended
/// (`None`: it was deleted).
async fn follow_events(
    client: &Client,
    id: u64,
    show: &mut impl FnMut(&JobRecord),
) -> anyhow::Result<Option<JobRecord>> {
    let mut resp = client.open_stream(&format!("/v1/jobs/{id}/events")).await?;
    let mut buf = String::new();
    while let Some(chunk) = resp.chunk().await? {
        buf.push_str(&String::from_utf8_lossy(&chunk));
        // Events end with a blank line; the data of ours is one JSON line.
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            let name = event.lines().find_map(|l| l.strip_prefix("event:")).map(str::trim);
            match name {
                Some("deleted") => return Ok(None),
                // The daemon is stopping: reconnect, to it or its successor.
                Some("shutdown") => return Err(StreamEnded.into()),
                _ => {}
            }
            let Some(data) = event.lines().find_map(|l| l.strip_prefix("data:")) else { continue };
            let job: JobRecord = serde_json::from_str(data.trim())?;
            show(&job);
            if settled(&job) {
                return Ok(Some(job));
            }
        }
    }
    Err(StreamEnded.into())
}

/// Follow a job live until it ends or is suspended (`None`: deleted). If the
/// connection drops (a daemon restart), read the job and listen again, with
/// backoff, for up to `--reconnect-for` while the daemon cannot be reached;
/// `lost` is told each time it cannot.
pub async fn follow_job(
    client: &Client,
    id: u64,
    mut show: impl FnMut(&JobRecord),
    lost: impl Fn(),
) -> anyhow::Result<Option<JobRecord>> {
    let mut since: Option<std::time::Instant> = None;
    let mut backoff = Duration::from_millis(250);
    loop {
        match follow_events(client, id, &mut show).await {
            Ok(done) => return Ok(done),
            Err(e) if !retryable(&e) => return Err(e),
            Err(e) => tracing::debug!(error = %e, "event stream ended; reconnecting"),
        }
        match client.get(&format!("/v1/jobs/{id}"), &[]).await {
            Ok(v) => {
                since = None;
                backoff = Duration::from_millis(250);
                let job: JobRecord = serde_json::from_value(v)?;
                show(&job);
                if settled(&job) {
                    return Ok(Some(job));
                }
            }
            Err(e) if retryable(&e) => {
                let first = *since.get_or_insert_with(std::time::Instant::now);
                if first.elapsed() >= client.reconnect_for() {
                    return Err(e.context(format!(
                        "the daemon did not answer for {} (--reconnect-for)",
                        humantime::format_duration(client.reconnect_for())
                    )));
                }
                lost();
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e),
        }
    }
}

fn clock() -> String {
    chrono::Local::now().format("%H:%M:%S").to_string()
}

fn counters_line(job: &JobRecord) -> String {
    let c = job.counters;
    format!("{}/{} done, {} failed, {} skipped", c.succeeded + c.failed + c.skipped, c.total, c.failed, c.skipped)
}

/// `kiln job logs ID`: the job's state, its failed tasks so far, then (unless
/// `follow` is off) each state change, a progress line at most every
/// `every`, and each newly failed task as it happens, until the job ends.
pub async fn logs(client: &Client, id: u64, follow: bool, every: Duration) -> anyhow::Result<()> {
    let job: JobRecord = serde_json::from_value(client.get(&format!("/v1/jobs/{id}"), &[]).await?)?;
    let mut seen = HashSet::new();
    emit(
        client,
        &event_json("state", &job),
        format!("{} job {id} {}: {}", clock(), job.state.as_str(), counters_line(&job)),
    );
    new_failures(client, id, &mut seen).await?;
    if !follow || settled(&job) {
        return Ok(());
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<JobRecord>();
    let follower = {
        let client = client.clone();
        tokio::spawn(async move {
            let send = tx.clone();
            follow_job(&client, id, move |j| drop(send.send(j.clone())), || {}).await
        })
    };
    let (mut state, mut failed, mut shown_at) = (job.state, job.counters.failed, std::time::Instant::now());
    while let Some(job) = rx.recv().await {
        if job.state != state {
            state = job.state;
            let why = job.error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default();
            emit(
                client,
                &event_json("state", &job),
                format!("{} job {id} {}{why}: {}", clock(), state.as_str(), counters_line(&job)),
            );
        } else if shown_at.elapsed() >= every {
            shown_at = std::time::Instant::now();
            emit(client, &event_json("progress", &job), format!("{} progress {}", clock(), counters_line(&job)));
        }
        if job.counters.failed > failed {
            failed = job.counters.failed;
            new_failures(client, id, &mut seen).await?;
        }
    }
    match follower.await? {
        Ok(Some(_)) => Ok(()),
        Ok(None) => bail!("job {id} was deleted"),
        Err(e) => Err(e),
    }
}

fn event_json(kind: &str, job: &JobRecord) -> Value {
    serde_json::json!({"event": kind, "time": crate::timefmt::rfc3339(crate::model::now()), "job": job})
}

/// One line for people, or one JSON object per line with `--json`.
fn emit(client: &Client, json: &Value, human: String) {
    if client.json {
        println!("{json}");
    } else {
        println!("{human}");
    }
}

/// Print the failed tasks not shown yet, every page of them.
async fn new_failures(client: &Client, id: u64, seen: &mut HashSet<u64>) -> anyhow::Result<()> {
    let mut cursor: Option<String> = None;
    loop {
        let mut q = vec![("state", "failed".to_string()), ("limit", "1000".to_string())];
        if let Some(c) = &cursor {
            q.push(("cursor", c.clone()));
        }
        let page = client.get(&format!("/v1/jobs/{id}/tasks"), &q).await?;
        for t in page["items"].as_array().into_iter().flatten() {
            if t["seq"].as_u64().is_some_and(|seq| seen.insert(seq)) {
                let human = format!("{} task {}", clock(), super::client::task_line(t));
                emit(client, &serde_json::json!({"event": "task_failed", "task": t}), human);
            }
        }
        match page["next"].as_str() {
            Some(n) => cursor = Some(n.to_string()),
            None => return Ok(()),
        }
    }
}

/// `kiln top`: every running job with a progress bar, rate and ETA, live
/// from each job's event stream; the list of running jobs is read again every
/// `interval`. With `once` (or `--json`), one table and exit.
pub async fn top(client: &Client, interval: Duration, once: bool) -> anyhow::Result<()> {
    let running = |page: Value| -> Vec<JobRecord> {
        page["items"].as_array().into_iter().flatten().filter_map(|j| serde_json::from_value(j.clone()).ok()).collect()
    };
    let query = [("state", "running".to_string()), ("limit", "50".to_string())];
    if once || client.json || !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        let page = client.get("/v1/jobs", &query).await?;
        client.print(&page, |p| {
            let jobs = running(p.clone());
            if jobs.is_empty() { "no running jobs".into() } else { top_table(&jobs) }
        });
        return Ok(());
    }
    let bars = indicatif::MultiProgress::new();
    let header = bars.add(indicatif::ProgressBar::new_spinner());
    let style = indicatif::ProgressStyle::with_template(
        "{prefix:>6} {msg:<24!} [{bar:30}] {pos:>7}/{len:<7} {per_sec:>10} ETA {eta:>4}",
    )
    .expect("valid template")
    .progress_chars("=> ");
    let mut shown: BTreeMap<u64, indicatif::ProgressBar> = BTreeMap::new();
    let mut ticker = tokio::time::interval(interval);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = tokio::signal::ctrl_c() => break,
        }
        let jobs = match client.get("/v1/jobs", &query).await {
            Ok(page) => running(page),
            Err(e) if retryable(&e) => {
                header.set_message(format!("{}: the daemon is not answering; retrying", clock()));
                continue;
            }
            Err(e) => return Err(e),
        };
        header.set_message(format!("kiln top: {} running job(s) at {} (Ctrl-C to quit)", jobs.len(), clock()));
        for job in jobs {
            if shown.contains_key(&job.id) {
                continue;
            }
            let bar = bars.add(indicatif::ProgressBar::new(job.counters.total));
            bar.set_style(style.clone());
            bar.set_prefix(job.id.to_string());
            bar.set_message(job.spec.name.clone().unwrap_or_else(|| job.spec.style.clone()));
            let (client, id, live) = (client.clone(), job.id, bar.clone());
            tokio::spawn(async move {
                let show = |j: &JobRecord| {
                    let c = j.counters;
                    live.set_length(c.total);
                    live.set_position(c.succeeded + c.failed + c.skipped);
                };
                let end = match follow_job(&client, id, show, || {}).await {
                    Ok(Some(j)) => format!("{} ({} failed)", j.state.as_str(), j.counters.failed),
                    Ok(None) => "deleted".into(),
                    Err(e) => format!("lost: {e}"),
                };
                live.abandon_with_message(end);
            });
            shown.insert(job.id, bar);
        }
    }
    Ok(())
}

fn top_table(jobs: &[JobRecord]) -> String {
    let mut out = format!("{:>6}  {:<24} {:<28} {:>15} {:>7}\n", "ID", "NAME", "PROGRESS", "DONE/TOTAL", "FAILED");
    for j in jobs {
        let c = j.counters;
        let done = c.succeeded + c.failed + c.skipped;
        let name = j.spec.name.clone().unwrap_or_else(|| j.spec.style.clone());
        let name: String = name.chars().take(24).collect();
        out.push_str(&format!(
            "{:>6}  {:<24} {:<28} {:>15} {:>7}\n",
            j.id,
            name,
            super::human::bar(done, c.total, 26),
            format!("{done}/{}", c.total),
            c.failed
        ));
    }
    out.pop();
    out
}

/// `kiln webhook list JOB`: delivered events counted, then each pending and
/// given-up event with its attempts and last error.
pub async fn webhooks(client: &Client, id: u64) -> anyhow::Result<()> {
    let w = client.get(&format!("/v1/jobs/{id}/webhooks"), &[]).await?;
    client.print(&w, |w| {
        let d = &w["delivered"];
        let mut lines = vec![format!(
            "job {id}: {} event(s) delivered{}",
            d["delivered"].as_u64().unwrap_or(0),
            match d["last_delivered_at"].as_str() {
                Some(_) => format!(
                    ", the last {} ({})",
                    super::human::when(&d["last_delivered_at"]),
                    d["last_type"].as_str().unwrap_or("")
                ),
                None => String::new(),
            }
        )];
        for (title, key) in [("pending", "pending"), ("given up", "given_up")] {
            let list = w[key].as_array().cloned().unwrap_or_default();
            lines.push(format!("{title}: {}", list.len()));
            for e in list {
                lines.push(format!(
                    "  #{:<6} {:<32} attempts {:<3} next {}  {}",
                    e["seq"].as_u64().unwrap_or(0),
                    e["event"]["type"].as_str().unwrap_or(""),
                    e["attempts"].as_u64().unwrap_or(0),
                    if key == "pending" { super::human::when(&e["next_attempt_at"]) } else { "-".into() },
                    e["last_error"].as_str().unwrap_or("")
                ));
            }
        }
        lines.join("\n")
    });
    Ok(())
}
