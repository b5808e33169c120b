//! The daemon end to end: the real `kiln serve` over real HTTP, local buckets,
//! every selection mode, path rules, suspend/resume, cancel, retry-failed,
//! honest end states, and pagination while a job runs.

use crate::common;

use std::time::Duration;

use common::{Daemon, assert_counters_add_up, kiln};
use serde_json::json;

const LONG: Duration = Duration::from_secs(120);

/// A daemon whose data dir has the echo test plugin's behaviour available
/// through the bundled `copy` plugin, and a bucket `in` with `n` text files.
fn daemon_with_files(n: usize) -> (tempfile::TempDir, Daemon) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let input = data.join("buckets/in");
    for i in 0..n {
        let sub = input.join(format!("d{}", i % 3));
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join(format!("f{i:04}.txt")), format!("content {i}")).unwrap();
    }
    std::fs::create_dir_all(input.join("other")).unwrap();
    std::fs::write(input.join("other/IMG_1.jpg"), "not really a jpeg").unwrap();
    std::fs::write(input.join("other/IMG_2.png"), "png?").unwrap();
    std::fs::write(input.join("other/DSC_3.jpg"), "jpeg?").unwrap();
    std::fs::create_dir_all(data.join("buckets/out")).unwrap();
    let d = Daemon::start(&data, None);
    (dir, d)
}

async fn create(d: &Daemon, body: serde_json::Value) -> u64 {
    let (status, job) = d.post("/v1/jobs", body).await;
    assert_eq!(status, 201, "{job}");
    job["id"].as_u64().unwrap()
}

#[tokio::test]
async fn prefix_and_suffix_selection_copies_every_object() {
    let (_dir, d) = daemon_with_files(30);
    let (status, buckets) = d.get("/v1/buckets").await;
    assert_eq!(status, 200);
    assert!(buckets.as_array().unwrap().iter().any(|b| b["name"] == "in"));

    let id = create(
        &d,
        json!({
            "input": {"bucket": "in", "prefix": "d1/", "suffixes": ".txt"},
            "style": "copy",
            "output": {"bucket": "out", "template": "copies/{dirname}/{barename}.{autoext}"},
            "tags": {"team": "a"}
        }),
    )
    .await;
    let job = d.wait_job(id, LONG).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_counters_add_up(&job);
    assert_eq!(job["counters"]["total"], 10);
    assert_eq!(job["counters"]["succeeded"], 10);
    for i in (1..30).step_by(3) {
        let out = d.data_dir.join(format!("buckets/out/copies/d1/f{i:04}.txt"));
        assert_eq!(std::fs::read_to_string(&out).unwrap(), format!("content {i}"), "{}", out.display());
    }
    let tasks = d.all_tasks(id, "").await;
    assert_eq!(tasks.len(), 10);
    assert!(
        tasks
            .iter()
            .all(|t| t["state"] == "succeeded" && t["attempts"] == 1 && t["outputs"].as_array().unwrap().len() == 1)
    );

    // Filters by state and tag on the job list.
    let (_, page) = d.get("/v1/jobs?state=succeeded&tag=team=a").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let (_, page) = d.get("/v1/jobs?tag=team=b").await;
    assert!(page["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn file_prefix_filter_and_explicit_keys() {
    let (_dir, d) = daemon_with_files(3);
    let id = create(
        &d,
        json!({
            "input": {"bucket": "in", "prefix": "other/", "file_prefixes": "IMG_", "suffixes": [".jpg", ".png"]},
            "style": "copy",
            "output": {"bucket": "out", "template": "img/{basename}"}
        }),
    )
    .await;
    let job = d.wait_job(id, LONG).await;
    assert_eq!(job["counters"]["total"], 2, "{job}");
    assert!(d.data_dir.join("buckets/out/img/IMG_1.jpg").exists());
    assert!(!d.data_dir.join("buckets/out/img/DSC_3.jpg").exists());

    // Explicit keys; a missing key fails its task, so the job cannot succeed.
    let id = create(
        &d,
        json!({
            "input": {"bucket": "in", "keys": ["d0/f0000.txt", "d1/f0001.txt", "nope/missing.txt"]},
            "style": "copy",
            "output": {"bucket": "out", "template": "keys/{key}"}
        }),
    )
    .await;
    let job = d.wait_job(id, LONG).await;
    assert_eq!(job["state"], "failed", "a job never succeeds while a task failed: {job}");
    assert_eq!(job["counters"]["succeeded"], 2);
    assert_eq!(job["counters"]["failed"], 1);
    assert_counters_add_up(&job);
    let failed = d.all_tasks(id, "&state=failed").await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["source_key"], "nope/missing.txt");
    assert_eq!(failed[0]["error"]["kind"], "not-found");
    assert_eq!(std::fs::read_to_string(d.data_dir.join("buckets/out/keys/d1/f0001.txt")).unwrap(), "content 1");
}

#[tokio::test]
async fn every_path_rule_and_bad_request_is_refused_naming_the_field() {
    let (_dir, d) = daemon_with_files(1);
    let base = |template: &str, out_bucket: &str, prefix: &str| json!({"input": {"bucket": "in", "prefix": prefix}, "style": "copy", "output": {"bucket": out_bucket, "template": template}});
    let cases = [
        (base("thumbs/", "out", ""), "output.template", "end with"),
        (base("thumbs/fixed.jpg", "out", ""), "output.template", "variable"),
        (base("{nope}.jpg", "out", ""), "output.template", "`{nope}` is neither a template variable"),
        (base("d0/{barename}.x", "in", "d0/"), "output.template", "processed again"),
        (base("{key}", "in", "d0/"), "output.template", "itself"),
        (base("a//{key}", "out", ""), "output.template", ""),
        (base("{key}", "nosuch", ""), "output.bucket", "unknown bucket `nosuch`"),
        (
            json!({"input": {"bucket": "in"}, "style": "nosuch/x", "output": {"bucket": "out", "template": "{key}"}}),
            "style",
            "nosuch",
        ),
        (
            json!({"input": {"bucket": "in"}, "style": "copy/resize,w_1", "output": {"bucket": "out", "template": "{key}"}}),
            "style",
            "refused",
        ),
        (
            json!({"input": {"bucket": "in", "keys": ["a"], "prefix": "x/"}, "style": "copy", "output": {"bucket": "out", "template": "{key}"}}),
            "input",
            "keys",
        ),
        (
            json!({"input": {"bucket": "in"}, "style": "copy", "output": {"bucket": "out", "template": "{key}"}, "colour": "red"}),
            "colour",
            "unknown field",
        ),
        (
            json!({"input": {"bucket": "in"}, "style": "copy", "output": {"bucket": "out", "template": "{key}"}, "concurrency": 0}),
            "concurrency",
            "between",
        ),
    ];
    for (body, field, needle) in cases {
        let (status, problem) = d.post("/v1/jobs", body.clone()).await;
        assert_eq!(status, 422, "{body} -> {problem}");
        assert_eq!(problem["field"], field, "{body} -> {problem}");
        assert!(problem["detail"].as_str().unwrap().contains(needle), "{body} -> {problem}");
    }
    // Nothing was stored, and the daemon goes on serving.
    let (_, page) = d.get("/v1/jobs").await;
    assert!(page["items"].as_array().unwrap().is_empty());
    let (status, _) = d.get("/v1/jobs/999").await;
    assert_eq!(status, 404);
    let (status, _) = d.get("/v1/jobs?limit=0").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn suspend_stops_claims_and_resume_goes_on() {
    const N: u64 = 2000;
    let (_dir, d) = daemon_with_files(N as usize);
    let id = create(
        &d,
        json!({
            "input": {"bucket": "in", "suffixes": ".txt"},
            "style": "copy",
            "output": {"bucket": "out", "template": "s/{key}"},
            "concurrency": 1
        }),
    )
    .await;
    // Suspend once the job is under way (by progress, not by time: a fast
    // daemon could otherwise finish first).
    loop {
        let (_, job) = d.get(&format!("/v1/jobs/{id}")).await;
        if job["counters"]["succeeded"].as_u64().unwrap() >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let (status, job) = d.post(&format!("/v1/jobs/{id}/suspend"), json!({})).await;
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["state"], "suspended");
    // Running tasks finish; then nothing moves.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, settled) = d.get(&format!("/v1/jobs/{id}")).await;
    assert_eq!(settled["counters"]["running"], 0, "{settled}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, later) = d.get(&format!("/v1/jobs/{id}")).await;
    assert_eq!(settled["counters"]["succeeded"], later["counters"]["succeeded"], "no task may start while suspended");
    assert!(later["counters"]["succeeded"].as_u64().unwrap() < N, "suspended before the end: {later}");
    assert_counters_add_up(&later);

    let (status, problem) = d.post(&format!("/v1/jobs/{id}/suspend"), json!({})).await;
    assert_eq!(status, 409, "{problem}");
    let (status, _) = d.post(&format!("/v1/jobs/{id}/resume"), json!({})).await;
    assert_eq!(status, 200);
    let job = d.wait_job(id, LONG).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["counters"]["succeeded"], N);
    assert_eq!(d.all_tasks(id, "").await.len(), N as usize);
}

#[tokio::test]
async fn cancel_stops_the_job_and_delete_needs_a_terminal_state() {
    let (_dir, d) = daemon_with_files(300);
    let id = create(&d, json!({
        "input": {"bucket": "in"}, "style": "copy", "output": {"bucket": "out", "template": "c/{key}"}, "concurrency": 1
    }))
    .await;
    assert_eq!(d.delete(&format!("/v1/jobs/{id}")).await, 409);
    let (status, job) = d.post(&format!("/v1/jobs/{id}/cancel"), json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(job["state"], "cancelled");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, a) = d.get(&format!("/v1/jobs/{id}")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, b) = d.get(&format!("/v1/jobs/{id}")).await;
    assert_eq!(a["counters"], b["counters"], "a cancelled job does not go on");
    assert_eq!(b["state"], "cancelled");
    assert_counters_add_up(&b);
    let (status, _) = d.post(&format!("/v1/jobs/{id}/resume"), json!({})).await;
    assert_eq!(status, 409);
    assert_eq!(d.delete(&format!("/v1/jobs/{id}")).await, 204);
    let (status, _) = d.get(&format!("/v1/jobs/{id}")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn retry_failed_re_drives_only_the_failed_tasks() {
    let (_dir, d) = daemon_with_files(6);
    // The key `d2/late.txt` does not exist yet: its task fails.
    let id = create(
        &d,
        json!({
            "input": {"bucket": "in", "keys": ["d0/f0000.txt", "d1/f0001.txt", "d2/late.txt"]},
            "style": "copy",
            "output": {"bucket": "out", "template": "r/{key}"}
        }),
    )
    .await;
    let job = d.wait_job(id, LONG).await;
    assert_eq!(job["state"], "failed");
    assert_eq!(job["counters"]["failed"], 1);
    // Times are RFC 3339, in UTC.
    for t in [&job["created_at"], &job["finished_at"]] {
        let t = t.as_str().unwrap_or_else(|| panic!("{job}"));
        assert!(t.len() == 20 && t.ends_with('Z') && t.as_bytes()[10] == b'T', "{t}");
    }
    // `job logs` shows the state and the failed task with its error.
    let o = d.cli(&["job", "logs", &id.to_string(), "--no-follow"]);
    let logs = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{logs} {}", String::from_utf8_lossy(&o.stderr));
    assert!(logs.lines().next().unwrap().contains(&format!("job {id} failed: 3/3 done, 1 failed")), "{logs}");
    let failed: Vec<&str> = logs.lines().filter(|l| l.contains(" failed ")).collect();
    assert!(failed.len() == 1 && failed[0].contains("d2/late.txt") && failed[0].contains("[not-found]"), "{logs}");

    std::fs::write(d.data_dir.join("buckets/in/d2/late.txt"), "arrived").unwrap();
    let (status, job) = d.post(&format!("/v1/jobs/{id}/retry-failed"), json!({})).await;
    assert_eq!(status, 200, "{job}");
    // `job logs` follows the job to its end (or finds it ended) and says how it ended.
    let o = d.cli(&["job", "logs", &id.to_string(), "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let events: Vec<serde_json::Value> =
        String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let last = events.iter().rev().find(|e| e["event"] == "state").unwrap();
    assert_eq!(last["job"]["state"], "succeeded", "{events:?}");
    let job = d.wait_job(id, LONG).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["counters"]["succeeded"], 3);
    let tasks = d.all_tasks(id, "").await;
    let attempts: Vec<u64> = tasks.iter().map(|t| t["attempts"].as_u64().unwrap()).collect();
    assert_eq!(attempts, vec![1, 1, 2], "only the failed task ran again");
    assert_eq!(std::fs::read_to_string(d.data_dir.join("buckets/out/r/d2/late.txt")).unwrap(), "arrived");

    // Nothing failed any more: nothing to retry.
    let (status, _) = d.post(&format!("/v1/jobs/{id}/retry-failed"), json!({})).await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn task_pages_neither_skip_nor_repeat_while_the_job_runs() {
    let (_dir, d) = daemon_with_files(600);
    let id = create(&d, json!({
        "input": {"bucket": "in", "suffixes": ".txt"}, "style": "copy", "output": {"bucket": "out", "template": "p/{key}"}, "concurrency": 2
    }))
    .await;
    // Page through with a small limit while tasks are planned and finished.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let c = cursor.as_ref().map(|c| format!("&cursor={c}")).unwrap_or_default();
        let (status, page) = d.get(&format!("/v1/jobs/{id}/tasks?limit=37{c}")).await;
        assert_eq!(status, 200);
        let items = page["items"].as_array().unwrap();
        seen.extend(items.iter().map(|t| t["seq"].as_u64().unwrap()));
        match page["next"].as_str() {
            Some(n) => cursor = Some(n.to_string()),
            None => {
                let (_, job) = d.get(&format!("/v1/jobs/{id}")).await;
                if job["planning"]["done"] == true && seen.len() as u64 == job["counters"]["total"].as_u64().unwrap() {
                    break;
                }
                // More may be planned: go on from the last seq seen.
                cursor = seen.last().map(|s| format!("s{s}"));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    let expected: Vec<u64> = (1..=600).collect();
    assert_eq!(seen, expected, "each task exactly once, in order");
    let job = d.wait_job(id, LONG).await;
    assert_eq!(job["state"], "succeeded");

    // Search by source-key prefix and substring, and one task by id.
    let by_prefix = d.all_tasks(id, "&prefix=d1/").await;
    assert_eq!(by_prefix.len(), 200);
    assert!(by_prefix.windows(2).all(|w| w[0]["source_key"].as_str() < w[1]["source_key"].as_str()));
    let found = d.all_tasks(id, "&search=f0042").await;
    assert_eq!(found.len(), 1);
    let (status, task) = d.get(&format!("/v1/jobs/{id}/tasks/{}", found[0]["seq"])).await;
    assert_eq!(status, 200);
    assert_eq!(task["source_key"], "d0/f0042.txt");
}

/// A job of more tasks than one page examines (10,000): a rare key is found
/// by following `next`, over the API and by `kiln task list`, which fills its
/// page from several; and the error filter reads only the tasks with errors.
#[tokio::test]
async fn a_search_past_one_pages_budget_is_found_by_following_next() {
    let (_dir, d) = daemon_with_files(10_200);
    // Paced to a crawl: every task is planned, few run.
    let id = create(
        &d,
        json!({"input": {"bucket": "in", "prefix": "d"}, "style": "copy", "max_tasks_per_second": 1,
               "output": {"bucket": "out", "template": "paced/{key}"}}),
    )
    .await;
    let deadline = std::time::Instant::now() + LONG;
    while !d.get(&format!("/v1/jobs/{id}")).await.1["planning"]["done"].as_bool().unwrap_or(false) {
        assert!(std::time::Instant::now() < deadline, "planning did not end");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Planning order is key order: `d2/f9998.txt` is about the last of the 10,200.
    let rare = "f9998.txt";
    let (status, first) = d.get(&format!("/v1/jobs/{id}/tasks?search={rare}&limit=5")).await;
    assert_eq!(status, 200, "{first}");
    assert!(first["items"].as_array().unwrap().is_empty(), "the first page spends its budget: {first}");
    assert!(first["next"].is_string(), "{first}");
    let found = d.all_tasks(id, &format!("&search={rare}")).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["source_key"], format!("d2/{rare}"));
    let o = d.cli(&["task", "list", &id.to_string(), "--search", rare]);
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{table} {}", String::from_utf8_lossy(&o.stderr));
    assert!(table.contains(&format!("d2/{rare}")), "the CLI follows `next` to fill its page: {table}");
    assert!(d.all_tasks(id, "&error=io").await.is_empty());
    assert_eq!(d.post(&format!("/v1/jobs/{id}/cancel"), json!({})).await.0, 200);
}

#[tokio::test]
async fn cli_client_creates_waits_and_lists() {
    let (_dir, d) = daemon_with_files(5);
    let run = |args: &[&str]| d.cli(args);
    let o = run(&[
        "job",
        "create",
        "--bucket",
        "in",
        "--prefix",
        "d0/",
        "--suffix",
        ".txt",
        "--style",
        "copy",
        "--output-bucket",
        "out",
        "--output",
        "cli/{basename}",
        "--wait",
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout} {}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("succeeded: 2 succeeded, 0 failed"), "{stdout}");

    let o = run(&["job", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(list["items"][0]["state"], "succeeded");
    let o = run(&["task", "list", "1", "--state", "succeeded", "--search", "f0003"]);
    let table = String::from_utf8_lossy(&o.stdout);
    let mut lines = table.lines();
    assert!(lines.next().unwrap().starts_with("SEQ  STATE"), "a header: {table}");
    let row = lines.next().unwrap();
    assert!(row.contains("succeeded") && row.contains("d0/f0003.txt") && row.contains("cli/f0003.txt"), "{table}");
    // `top` shows a running job with its progress.
    let o = run(&[
        "job",
        "create",
        "--bucket",
        "in",
        "--prefix",
        "d1/",
        "--style",
        "copy",
        "--output-bucket",
        "out",
        "--output",
        "slow/{basename}",
        "--max-tasks-per-second",
        "1",
        "--name",
        "paced",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(&["top", "--once"]);
    let top = String::from_utf8_lossy(&o.stdout);
    let mut lines = top.lines();
    assert!(lines.next().unwrap().contains("PROGRESS"), "{top}");
    assert!(lines.next().unwrap().contains("paced"), "{top}");
    let o = run(&["job", "cancel", "2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(&["style", "create", "plain", "copy"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(&["style", "list"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("plain"));
    let o = run(&["job", "create", "--bucket", "in", "--style", "copy", "--output-bucket", "out", "--output", "x/"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("output.template"));
}

/// Tasks are claimed a little ahead of the workers; those still waiting for a
/// worker when the job is suspended must not start, and come back unspent.
#[tokio::test]
async fn suspend_starts_none_of_the_tasks_waiting_for_a_worker() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for i in 0..8 {
        let p = data.join(format!("buckets/in/s{i}.txt"));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, format!("v{i}")).unwrap();
    }
    std::fs::create_dir_all(data.join("buckets/out")).unwrap();
    std::fs::create_dir_all(data.join("plugins")).unwrap();
    std::fs::copy(kiln_test_plugins::ECHO, data.join("plugins/echo.wasm")).unwrap();
    // One worker: one task runs, and others wait for it in memory.
    let d = Daemon::start(&data, Some("workers = 1\n"));
    let id = create(&d, json!({
        "input": {"bucket": "in"}, "style": "echo/sleep,ms_400", "output": {"bucket": "out", "template": "w/{basename}"},
        "concurrency": 4
    }))
    .await;
    loop {
        let (_, job) = d.get(&format!("/v1/jobs/{id}")).await;
        if job["counters"]["running"].as_u64().unwrap() >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (status, job) = d.post(&format!("/v1/jobs/{id}/suspend"), json!({})).await;
    assert_eq!(status, 200, "{job}");
    // The running task finishes (400 ms); the ones that waited never start.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, job) = d.get(&format!("/v1/jobs/{id}")).await;
    assert_eq!(
        (job["counters"]["succeeded"].as_u64(), job["counters"]["running"].as_u64()),
        (Some(1), Some(0)),
        "{job}"
    );
    assert_eq!(job["counters"]["pending"], 7, "{job}");
    assert_counters_add_up(&job);
    let pending = d.all_tasks(id, "&state=pending").await;
    assert!(pending.iter().all(|t| t["attempts"] == 0), "a task given back unstarted spent no attempt: {pending:?}");
    let outputs = std::fs::read_dir(data.join("buckets/out/w")).unwrap().count();
    assert_eq!(outputs, 1, "only the task that was running wrote its output");

    let (status, _) = d.post(&format!("/v1/jobs/{id}/resume"), json!({})).await;
    assert_eq!(status, 200);
    let job = d.wait_job(id, LONG).await;
    assert_eq!((job["state"].as_str(), job["counters"]["succeeded"].as_u64()), (Some("succeeded"), Some(8)), "{job}");
    let tasks = d.all_tasks(id, "").await;
    assert!(tasks.iter().all(|t| t["attempts"] == 1), "each task ran once: {tasks:?}");
}

#[tokio::test]
async fn plugin_failing_on_chosen_keys_fast_fail_and_retry() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for i in 0..40 {
        let p = data.join(format!("buckets/in/k{i:02}{}.txt", if i % 10 == 3 { "-bad" } else { "" }));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, format!("v{i}")).unwrap();
    }
    std::fs::create_dir_all(data.join("buckets/out")).unwrap();
    // Installed by dropping the component into <data_dir>/plugins/.
    std::fs::create_dir_all(data.join("plugins")).unwrap();
    std::fs::copy(kiln_test_plugins::ECHO, data.join("plugins/echo.wasm")).unwrap();
    let d = Daemon::start(&data, None);

    let body = |fast_fail: bool, concurrency: u32| {
        json!({
            "input": {"bucket": "in"}, "style": "echo/fail-on,k_bad", "output": {"bucket": "out", "template": "e/{barename}.{autoext}"},
            "fast_fail": fast_fail, "concurrency": concurrency
        })
    };
    let id = create(&d, body(false, 4)).await;
    let job = d.wait_job(id, LONG).await;
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["counters"]["failed"], 4);
    assert_eq!(job["counters"]["succeeded"], 36);
    let failed = d.all_tasks(id, "&error=on purpose").await;
    assert_eq!(failed.len(), 4);
    assert!(
        failed.iter().all(|t| t["error"]["kind"] == "failed" && t["source_key"].as_str().unwrap().contains("-bad"))
    );
    assert!(!d.data_dir.join("buckets/out/e/k03-bad.txt").exists(), "a failed task writes nothing");

    // retry-failed runs exactly the failed ones again (they fail again: same style).
    let (status, _) = d.post(&format!("/v1/jobs/{id}/retry-failed"), json!({})).await;
    assert_eq!(status, 200);
    let job = d.wait_job(id, LONG).await;
    assert_eq!(job["state"], "failed");
    let tasks = d.all_tasks(id, "").await;
    for t in &tasks {
        let bad = t["source_key"].as_str().unwrap().contains("-bad");
        assert_eq!(t["attempts"], if bad { 2 } else { 1 }, "{t}");
    }

    // fast_fail: the job fails at its first failed task and claims no more.
    let id = create(&d, body(true, 1)).await;
    let job = d.wait_job(id, LONG).await;
    assert_eq!(job["state"], "failed");
    assert!(job["error"].as_str().unwrap().contains("fast-fail"), "{job}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, job) = d.get(&format!("/v1/jobs/{id}")).await;
    assert_eq!(job["counters"]["failed"], 1, "{job}");
    assert!(job["counters"]["pending"].as_u64().unwrap() > 0, "{job}");
    assert_counters_add_up(&job);

    // Only bad keys, one after another: fast-fail acts on the first failure
    // itself, not on its group commit, so the next key never starts.
    let bad: Vec<String> = [3, 13, 23, 33].iter().map(|i| format!("k{i:02}-bad.txt")).collect();
    let id = create(&d, json!({
        "input": {"bucket": "in", "keys": bad}, "style": "echo/fail-on,k_bad", "output": {"bucket": "out", "template": "f/{barename}.{autoext}"},
        "fast_fail": true, "concurrency": 1
    }))
    .await;
    d.wait_job(id, LONG).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, job) = d.get(&format!("/v1/jobs/{id}")).await;
    assert_eq!(
        (job["state"].as_str(), job["counters"]["failed"].as_u64(), job["counters"]["pending"].as_u64()),
        (Some("failed"), Some(1), Some(3)),
        "{job}"
    );
}

#[tokio::test]
async fn metrics_and_readiness_report_what_happened() {
    let (_dir, d) = daemon_with_files(6);
    let r = reqwest::get(format!("{}/readyz", d.url)).await.unwrap();
    assert_eq!(r.status(), 200);
    let id = create(&d, json!({"input": {"bucket": "in", "prefix": "d1/"}, "style": "copy", "output": {"bucket": "out", "template": "m/{basename}"}})).await;
    assert_eq!(d.wait_job(id, LONG).await["state"], "succeeded");

    let r = d.http.get(format!("{}/metrics", d.url)).bearer_auth(&d.token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    let text = r.text().await.unwrap();
    for needle in [
        "kiln_tasks_finished_total{state=\"succeeded\"} 2",
        "kiln_tasks{state=\"succeeded\"} 2",
        "kiln_tasks{state=\"pending\"} 0",
        "kiln_queue_depth 0",
        "kiln_task_input_bytes_total",
        "kiln_task_duration_seconds_count 2",
        "kiln_plugin_load_seconds_count{cache=",
        "kiln_plugin_instantiate_seconds_count",
        "kiln_http_requests_total{method=\"POST\",route=\"/v1/jobs\",status=\"201\"} 1",
        "route=\"/v1/jobs/{id}\",status=\"200\"",
    ] {
        assert!(text.contains(needle), "/metrics lacks `{needle}`:\n{text}");
    }
    let r = reqwest::get(format!("{}/metrics", d.url)).await.unwrap();
    assert_eq!(r.status(), 401, "metrics need the admin token");
}

#[tokio::test]
async fn a_first_start_listens_at_once_and_compiles_the_bundled_plugins_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("buckets/notes")).unwrap();
    std::fs::create_dir_all(data.join("buckets/out")).unwrap();
    std::fs::write(data.join("buckets/notes/a.md"), "# Title\n\nSome *text*.\n").unwrap();
    // An empty compile cache of its own: every bundled plugin must compile.
    let config = format!("cache_dir = {:?}\n", dir.path().join("cache"));
    let started = std::time::Instant::now();
    let d = Daemon::start_unready(&data, Some(&config));
    let listened = started.elapsed();

    let r = reqwest::get(format!("{}/readyz", d.url)).await.unwrap();
    assert_eq!(r.status(), 503);
    let why = r.text().await.unwrap();
    assert!(why.contains("compiling") && why.contains("bundled"), "{why}");
    // A job on a bundled style that is not compiled yet: 409, on the style.
    let job = json!({"input": {"bucket": "notes"}, "style": "markdown", "output": {"bucket": "out", "template": "{barename}.html"}});
    let (status, p) = d.post("/v1/jobs", job).await;
    assert_eq!(status, 409, "{p}");
    assert_eq!(p["field"], "style", "{p}");
    let (_, plugin) = d.get("/v1/plugins/markdown").await;
    assert_eq!(plugin["state"], "compiling", "{plugin}");

    // The CLI waits for the plugin, then runs the job (beyond its default
    // minute: other tests compile beside this one).
    let o = d.cli(&[
        "job",
        "create",
        "--reconnect-for",
        "5m",
        "--bucket",
        "notes",
        "--style",
        "markdown",
        "--output-bucket",
        "out",
        "--output",
        "{barename}.html",
        "--wait",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("still compiling"), "{}", String::from_utf8_lossy(&o.stderr));
    let html = std::fs::read_to_string(data.join("buckets/out/a.html")).unwrap();
    assert!(html.contains("<h1>Title</h1>") && html.contains("<em>text</em>"), "{html}");
    let ready = loop {
        if reqwest::get(format!("{}/readyz", d.url)).await.unwrap().status() == 200 {
            break started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(300), "not ready after 5 min");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("a first start: listening after {listened:.2?}, every bundled plugin compiled after {ready:.2?}");
    let (_, plugin) = d.get("/v1/plugins/markdown").await;
    assert_eq!(plugin["state"], "ready", "{plugin}");
}

#[tokio::test]
async fn kiln_precompile_fills_the_cache_so_a_first_start_is_ready_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let o = kiln(&["precompile", "--cache-dir", cache.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    for name in ["copy", "doc", "image", "markdown", "media"] {
        let line = out.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no line for {name}:\n{out}"));
        assert!(line.contains("compiled in"), "{out}");
    }
    // Again: nothing left to compile.
    let again =
        String::from_utf8_lossy(&kiln(&["precompile", "--cache-dir", cache.to_str().unwrap()]).stdout).to_string();
    assert_eq!(again.lines().filter(|l| l.contains("already compiled")).count(), 7, "{again}");

    // A fresh data dir on that cache: ready as soon as it listens, every bundled plugin a cache hit.
    let config = format!("cache_dir = {cache:?}\n");
    let started = std::time::Instant::now();
    let d = Daemon::start_unready(&dir.path().join("data"), Some(&config));
    let r = reqwest::get(format!("{}/readyz", d.url)).await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    eprintln!("a first start on a precompiled cache: ready after {:.2?}", started.elapsed());
    let metrics = d.http.get(format!("{}/metrics", d.url)).bearer_auth(&d.token).send().await.unwrap();
    let text = metrics.text().await.unwrap();
    let count = |cache: &str| {
        text.lines()
            .find(|l| l.starts_with("kiln_plugin_load_seconds_count") && l.contains(&format!("cache=\"{cache}\"")))
            .and_then(|l| l.rsplit(' ').next())
            .map_or(0, |n| n.parse::<u64>().unwrap())
    };
    assert_eq!((count("hit"), count("compiled")), (7, 0), "{text}");
}
