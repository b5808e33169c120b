//! Completion reports end to end over real HTTP: streamed CSV and JSON Lines
//! whose rows match the tasks, the failed-only scope, who may read them, the
//! report written to a bucket when the job ends (and again after
//! retry-failed), and `kiln job report`.

use crate::common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::Daemon;
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(120);

/// 20 objects, every fifth a `-bad` one that `echo/fail-on,k_bad` fails.
fn daemon() -> (tempfile::TempDir, Daemon) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for i in 0..20 {
        let p = data.join(format!("buckets/in/k{i:02}{}.txt", if i % 5 == 2 { "-bad" } else { "" }));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, format!("value {i}")).unwrap();
    }
    std::fs::create_dir_all(data.join("buckets/out")).unwrap();
    std::fs::create_dir_all(data.join("plugins")).unwrap();
    std::fs::copy(kiln_test_plugins::ECHO, data.join("plugins/echo.wasm")).unwrap();
    (dir, Daemon::start(&data, Some("workers = 4\n")))
}

/// GET a report: status, content type, content disposition, body.
async fn report(d: &Daemon, path: &str) -> (u16, String, String, String) {
    let r = d.http.get(format!("{}{path}", d.url)).bearer_auth(&d.token).send().await.unwrap();
    let header = |name: &str| r.headers().get(name).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let (ct, cd) = (header("content-type"), header("content-disposition"));
    (r.status().as_u16(), ct, cd, r.text().await.unwrap())
}

/// RFC 4180: quoted fields may hold commas, quotes (doubled) and line ends.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let (mut row, mut field, mut quoted, mut chars) = (Vec::new(), String::new(), false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(field.is_empty() && row.is_empty(), "the last row ends with a line end");
    rows
}

/// The rows of a CSV report keyed by source key, each as column → value.
fn by_source(csv: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let rows = parse_csv(csv);
    let header = &rows[0];
    assert_eq!(
        header.join(","),
        "source_key,outputs,state,error_kind,error_message,attempts,bytes_in,bytes_out,duration_ms,result,worker"
    );
    rows[1..].iter().map(|r| (r[0].clone(), header.iter().cloned().zip(r.iter().cloned()).collect())).collect()
}

fn check_rows_match_tasks(csv: &str, tasks: &[Value]) {
    let rows = by_source(csv);
    assert_eq!(rows.len(), tasks.len(), "one row per task");
    for t in tasks {
        let row = &rows[t["source_key"].as_str().unwrap()];
        assert_eq!(row["state"], t["state"].as_str().unwrap(), "{t}");
        assert_eq!(row["error_kind"], t["error"]["kind"].as_str().unwrap_or(""), "{t}");
        assert_eq!(row["error_message"], t["error"]["message"].as_str().unwrap_or(""), "{t}");
        assert_eq!(row["attempts"], t["attempts"].to_string());
        assert_eq!(row["bytes_in"], t["bytes_in"].to_string());
        assert_eq!(row["bytes_out"], t["bytes_out"].to_string());
        assert_eq!(row["duration_ms"], t["duration_ms"].to_string());
        let outputs: Vec<&str> = t["outputs"].as_array().unwrap().iter().map(|o| o.as_str().unwrap()).collect();
        assert_eq!(row["outputs"], outputs.join(";"));
    }
}

/// Wait for a file to exist and satisfy `ok`.
async fn wait_file(path: &std::path::Path, ok: impl Fn(&str) -> bool) -> String {
    let started = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && ok(&text)
        {
            return text;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{} never became as expected", path.display());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn report_rows_match_the_tasks_of_a_job_with_failures() {
    let (_dir, d) = daemon();
    let (status, job) = d
        .post(
            "/v1/jobs",
            json!({
                "input": {"bucket": "in"}, "style": "echo/fail-on,k_bad",
                "output": {"bucket": "out", "template": "e/{barename}.{autoext}"},
                "report": {"bucket": "out", "key": "reports/{jobid}.csv"}
            }),
        )
        .await;
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_u64().unwrap();
    let job = d.wait_job(id, LONG).await;
    assert_eq!(job["state"], "failed", "{job}");
    let tasks = d.all_tasks(id, "").await;

    let (status, ct, cd, csv) = report(&d, &format!("/v1/jobs/{id}/report")).await;
    assert_eq!(status, 200, "{csv}");
    assert_eq!(ct, "text/csv; charset=utf-8");
    assert_eq!(cd, format!("attachment; filename=\"job-{id}-report.csv\""));
    check_rows_match_tasks(&csv, &tasks);
    let rows = by_source(&csv);
    let failed: Vec<&String> = rows.iter().filter(|(_, r)| r["state"] == "failed").map(|(k, _)| k).collect();
    assert_eq!(failed, vec!["k02-bad.txt", "k07-bad.txt", "k12-bad.txt", "k17-bad.txt"]);
    assert!(
        rows.values()
            .filter(|r| r["state"] == "failed")
            .all(|r| r["error_kind"] == "failed" && r["error_message"].contains("on purpose"))
    );
    assert_eq!(rows["k00.txt"]["outputs"], "e/k00.txt");
    assert_eq!(rows["k00.txt"]["bytes_in"], "7");

    // Only the failed tasks; JSON Lines.
    let (_, _, cd, failed_csv) = report(&d, &format!("/v1/jobs/{id}/report?scope=failed")).await;
    assert_eq!(cd, format!("attachment; filename=\"job-{id}-report-failed.csv\""));
    assert_eq!(parse_csv(&failed_csv).len(), 1 + 4);
    let (status, ct, _, jsonl) = report(&d, &format!("/v1/jobs/{id}/report?format=jsonl&scope=all")).await;
    assert_eq!((status, ct.as_str()), (200, "application/x-ndjson"));
    let lines: Vec<Value> = jsonl.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 20);
    let bad = lines.iter().find(|l| l["source_key"] == "k07-bad.txt").unwrap();
    assert_eq!((bad["state"].as_str(), bad["error_kind"].as_str()), (Some("failed"), Some("failed")));
    assert_eq!(bad["outputs"], json!([]));
    let (status, _, _, body) = report(&d, &format!("/v1/jobs/{id}/report?format=xml")).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("\"field\":\"format\""), "{body}");
    assert_eq!(report(&d, "/v1/jobs/999/report").await.0, 404);

    // Written to the bucket when the job ended: the same report.
    let path = d.data_dir.join(format!("buckets/out/reports/{id}.csv"));
    let written = wait_file(&path, |t| t.lines().count() == 21).await;
    check_rows_match_tasks(&written, &tasks);

    // retry-failed ends the job again: the report is written again.
    let (status, _) = d.post(&format!("/v1/jobs/{id}/retry-failed"), json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(d.wait_job(id, LONG).await["state"], "failed");
    let written = wait_file(&path, |t| by_source(t).values().filter(|r| r["attempts"] == "2").count() == 4).await;
    check_rows_match_tasks(&written, &d.all_tasks(id, "").await);

    // `kiln job report`.
    let o = d.cli(&["job", "report", &id.to_string(), "--failed"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(parse_csv(&String::from_utf8_lossy(&o.stdout)).len(), 5);
    let file = d.data_dir.join("r.jsonl");
    let o = d.cli(&["job", "report", &id.to_string(), "--format", "jsonl", "-o", file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read_to_string(&file).unwrap().lines().count(), 20);
}

#[tokio::test]
async fn reports_are_checked_at_creation_and_private_to_their_tenant() {
    let (_dir, d) = daemon();
    let base = |report: Value| json!({"input": {"bucket": "in"}, "style": "copy", "output": {"bucket": "out", "template": "c/{key}"}, "report": report});
    for (report, field, needle) in [
        (json!({"bucket": "nosuch", "key": "r.csv"}), "report.bucket", "unknown bucket"),
        (json!({"bucket": "out", "key": "r/{name}.csv"}), "report.key", "only variable"),
        (json!({"bucket": "out", "key": "r//{jobid}.csv"}), "report.key", "empty segment"),
        (json!({"bucket": "out", "key": "r.csv", "scope": "some"}), "report.scope", "unknown variant"),
    ] {
        let (status, p) = d.post("/v1/jobs", base(report.clone())).await;
        assert_eq!(status, 422, "{report} -> {p}");
        assert_eq!(p["field"], field, "{report} -> {p}");
        assert!(p["detail"].as_str().unwrap().contains(needle), "{report} -> {p}");
    }

    // A tenant's report must be inside its write grants; others' reports are not found.
    let grants =
        json!([{"bucket": "in", "prefix": "", "access": "read"}, {"bucket": "out", "prefix": "t/", "access": "write"}]);
    let (status, _) = d.post("/v1/roles", json!({"name": "t-role", "grants": grants})).await;
    assert!(status == 200 || status == 201);
    for name in ["t", "u"] {
        let (status, p) = d.post("/v1/tenants", json!({"name": name, "roles": ["t-role"]})).await;
        assert!(status == 200 || status == 201, "{p}");
    }
    let token = |name: &'static str| {
        let d = &d;
        async move {
            d.as_token(
                d.post(&format!("/v1/tenants/{name}/tokens"), json!({"label": "x"})).await.1["token"].as_str().unwrap(),
            )
        }
    };
    let (t, u) = (token("t").await, token("u").await);
    let job = |report_key: &str| json!({"input": {"bucket": "in"}, "style": "copy", "output": {"bucket": "out", "template": "t/{key}"}, "report": {"bucket": "out", "key": report_key, "format": "jsonl", "scope": "failed"}});
    let (status, p) = t.post("/v1/jobs", job("elsewhere/{jobid}.jsonl")).await;
    assert_eq!((status, p["field"].as_str()), (403, Some("report.key")), "{p}");
    let (status, j) = t.post("/v1/jobs", job("t/reports/{jobid}.jsonl")).await;
    assert_eq!(status, 201, "{j}");
    let id = j["id"].as_u64().unwrap();
    assert_eq!(t.wait_job(id, LONG).await["state"], "succeeded");
    assert_eq!(report(&t, &format!("/v1/jobs/{id}/report")).await.0, 200);
    assert_eq!(report(&u, &format!("/v1/jobs/{id}/report")).await.0, 404, "another tenant's job is not found");
    assert_eq!(report(&d.as_token("nope"), &format!("/v1/jobs/{id}/report")).await.0, 401);
    // No task failed: the failed-only report written to the bucket is empty.
    let path = d.data_dir.join(format!("buckets/out/t/reports/{id}.jsonl"));
    assert_eq!(wait_file(&path, |_| true).await, "");
}

#[tokio::test]
async fn a_report_of_many_pages_has_each_task_once_in_order() {
    let (_dir, d) = daemon();
    for i in 0..1100 {
        std::fs::write(d.bucket_dir("many").join(format!("f{i:04}.txt")), "x").unwrap();
    }
    let (status, j) = d.post("/v1/jobs", json!({"input": {"bucket": "many"}, "style": "copy", "output": {"bucket": "out", "template": "m/{key}"}, "concurrency": 16})).await;
    assert_eq!(status, 201, "{j}");
    let id = j["id"].as_u64().unwrap();
    assert_eq!(d.wait_job(id, LONG).await["state"], "succeeded");
    let (_, _, _, csv) = report(&d, &format!("/v1/jobs/{id}/report")).await;
    let keys: Vec<String> = parse_csv(&csv)[1..].iter().map(|r| r[0].clone()).collect();
    let expected: Vec<String> = (0..1100).map(|i| format!("f{i:04}.txt")).collect();
    assert_eq!(keys, expected);
}
