//! Stopping is stopping, and clients survive a restart: SIGTERM with a live
//! event stream and a running job; a second SIGTERM; `kiln job wait` across
//! a restart; a start right after a stop.

use crate::common;

use std::io::BufRead;
use std::time::{Duration, Instant};

use common::Daemon;
use serde_json::json;

const LONG: Duration = Duration::from_secs(120);

fn free_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

fn slow_job(data: &std::path::Path, n: usize) {
    let dir = data.join("buckets/in");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(data.join("buckets/out")).unwrap();
    std::fs::create_dir_all(data.join("plugins")).unwrap();
    std::fs::copy(kiln_test_plugins::ECHO, data.join("plugins/echo.wasm")).unwrap();
    for i in 0..n {
        std::fs::write(dir.join(format!("k{i:03}.txt")), format!("object {i}")).unwrap();
    }
}

fn outputs(data: &std::path::Path) -> usize {
    std::fs::read_dir(data.join("buckets/out/o")).map(|d| d.count()).unwrap_or(0)
}

#[tokio::test]
async fn sigterm_ends_live_streams_stops_claiming_and_lets_running_tasks_finish() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    slow_job(&data, 40);
    let mut d = Daemon::start(&data, Some("workers = 2\nshutdown_grace = \"5s\"\n"));
    let (status, job) = d
        .post(
            "/v1/jobs",
            json!({"input": {"bucket": "in"}, "style": "echo/sleep,ms_400", "output": {"bucket": "out", "template": "o/{key}"}}),
        )
        .await;
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_u64().unwrap();

    // A client on the job's event stream.
    let mut resp = d.http.get(format!("{}/v1/jobs/{id}/events", d.url)).bearer_auth(&d.token).send().await.unwrap();
    let stream = tokio::spawn(async move {
        let mut text = String::new();
        while let Ok(Some(chunk)) = resp.chunk().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        (text, Instant::now())
    });
    while outputs(&data) < 3 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let signalled = Instant::now();
    d.sigterm();
    // Counted once the signal is sent: a task that finishes later was running
    // when it arrived, and at most `workers` (2) tasks run at once.
    let done_at_signal = outputs(&data);
    let (text, ended) = tokio::time::timeout(Duration::from_secs(10), stream).await.expect("the stream ends").unwrap();
    let status = d.wait_exit(Duration::from_secs(15)).expect("the daemon exits within its grace period");
    let took = signalled.elapsed();
    assert!(status.success(), "a graceful stop exits 0: {status}");
    println!("exited {took:?} after SIGTERM");
    assert!(ended.duration_since(signalled) < Duration::from_secs(3), "the stream ended at once");
    assert!(
        text.contains("event: shutdown"),
        "the stream ends with a `shutdown` event: {}",
        &text[text.len().saturating_sub(300)..]
    );
    // Nothing was claimed after the signal: at most the two running tasks finished.
    let done_at_exit = outputs(&data);
    assert!(done_at_exit <= done_at_signal + 2, "{done_at_signal} done at the signal, {done_at_exit} at exit");
    assert!(done_at_exit < 40);

    // The next start goes on; every task is done once.
    d.restart();
    let job = d.wait_job(id, LONG).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["counters"]["succeeded"], 40);
    assert_eq!(outputs(&data), 40);
}

#[tokio::test]
async fn a_second_sigterm_exits_at_once_and_the_tasks_run_again_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    slow_job(&data, 2);
    let mut d = Daemon::start(&data, Some("workers = 2\nshutdown_grace = \"60s\"\n"));
    let (status, job) = d
        .post(
            "/v1/jobs",
            json!({"input": {"bucket": "in"}, "style": "echo/sleep,ms_8000", "output": {"bucket": "out", "template": "o/{key}"}}),
        )
        .await;
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_u64().unwrap();
    loop {
        let (_, job) = d.get(&format!("/v1/jobs/{id}/tasks?state=running")).await;
        if job["items"].as_array().is_some_and(|a| a.len() == 2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    d.sigterm();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let signalled = Instant::now();
    d.sigterm();
    let status = d.wait_exit(Duration::from_secs(3)).expect("a second SIGTERM exits at once");
    assert!(!status.success(), "{status}");
    assert!(signalled.elapsed() < Duration::from_secs(2), "{:?}", signalled.elapsed());
    assert_eq!(outputs(&data), 0, "the running tasks were cut short");

    d.restart();
    let job = d.wait_job(id, LONG).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["counters"]["succeeded"], 2);
}

#[tokio::test]
async fn job_wait_rides_out_a_restart_and_a_start_right_after_a_stop_waits_for_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    slow_job(&data, 12);
    let listen = free_port();
    let mut d = Daemon::start_on(&data, Some("workers = 2\nshutdown_grace = \"1s\"\n"), &listen);
    let (status, job) = d
        .post(
            "/v1/jobs",
            json!({"input": {"bucket": "in"}, "style": "echo/sleep,ms_300", "output": {"bucket": "out", "template": "o/{key}"}}),
        )
        .await;
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_u64().unwrap();

    let client = d.cli_command(&["job", "wait", &id.to_string(), "--reconnect-for", "30s"]).spawn().unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    // Stopped, away for two seconds, started again on the same address.
    d.stop();
    tokio::time::sleep(Duration::from_secs(2)).await;
    d.restart();
    let out = client.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("job {id} succeeded: 12 succeeded")), "{stdout}");

    // A second daemon on the same data dir waits for the first one's lock, and says so.
    let mut second = std::process::Command::new(common::kiln_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("KILN_ADMIN_TOKEN", common::ADMIN_TOKEN)
        .env("KILN_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(second.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(line.contains("is open in another process") && line.contains("waiting"), "{line}");
    d.stop();
    let mut stdout = std::io::BufReader::new(second.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.starts_with("kiln listening on"), "the second daemon starts once the first is gone: {line}");
    second.kill().unwrap();
    second.wait().unwrap();

    // Past its reconnect time a client gives up, saying why.
    let out = d.cli(&["job", "wait", &id.to_string(), "--reconnect-for", "1s"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("did not answer for 1s"), "{stderr}");
}
