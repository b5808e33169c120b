//! Hostile plugins against the real daemon: what a plugin returns, logs or
//! describes is stored and sent only within its caps, and a plugin that hangs
//! in `info` or `validate` holds no request and no restart.

use crate::common;

use std::time::{Duration, Instant};

use common::Daemon;
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(120);

fn upload_path(name: &str) -> String {
    format!("/v1/plugins?name={name}&version=1")
}

fn job(prefix: &str, style: &str, template: &str) -> Value {
    json!({"input": {"bucket": "in", "prefix": prefix}, "style": style, "output": {"bucket": "out", "template": template}})
}

/// A daemon whose tasks may use 512 MiB (room for the hostile plugin's 100 MB strings).
fn daemon(extra_config: &str) -> (tempfile::TempDir, Daemon) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let src = data.join("buckets/in/big");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..10 {
        std::fs::write(src.join(format!("{i}.txt")), format!("file {i}")).unwrap();
    }
    std::fs::create_dir_all(data.join("buckets/out")).unwrap();
    let config = format!("workers = 4\n{extra_config}\n[runtime.limits]\nmax_memory = 536870912\n");
    let d = Daemon::start(&data, Some(&config));
    (dir, d)
}

async fn raw_get(d: &Daemon, path: &str) -> (u16, usize, Duration) {
    let started = Instant::now();
    let r = d.http.get(format!("{}{path}", d.url)).bearer_auth(&d.token).send().await.unwrap();
    let status = r.status().as_u16();
    let body = r.bytes().await.unwrap();
    (status, body.len(), started.elapsed())
}

#[tokio::test]
async fn what_a_plugin_returns_is_stored_and_sent_within_its_caps() {
    let (_dir, d) = daemon("");
    let (status, p) =
        d.upload_plugin(&upload_path("hostile"), std::fs::read(kiln_test_plugins::HOSTILE).unwrap()).await;
    assert_eq!(status, 201, "{p}");

    // Ten tasks, each failing with a 100 MB error.
    let (status, j) = d.post("/v1/jobs", job("big/", "hostile/bigerror", "e/{barename}.{autoext}")).await;
    assert_eq!(status, 201, "{j}");
    let id = j["id"].as_u64().unwrap();
    let done = d.wait_job(id, LONG).await;
    assert_eq!(done["state"], "failed", "{done}");
    assert_eq!(done["counters"]["failed"], 10, "{done}");
    let (status, bytes, _) = raw_get(&d, &format!("/v1/jobs/{id}/tasks?limit=100")).await;
    assert_eq!(status, 200);
    assert!(bytes < 200_000, "a page of 10 tasks is {bytes} bytes");
    let failed = d.all_tasks(id, "&state=failed").await;
    let message = failed[0]["error"]["message"].as_str().unwrap();
    assert!(message.contains("[cut at 4096 of 117964800 bytes]"), "{:.200}", &message[message.len() - 100..]);
    let (status, _, took) = raw_get(&d, "/healthz").await;
    assert_eq!(status, 200);
    assert!(took < Duration::from_secs(1), "/healthz took {took:?}");
    let redb = std::fs::metadata(d.data_dir.join("kiln.redb")).unwrap().len();
    println!(
        "kiln.redb is {redb} bytes after ten tasks that each returned a 112 MiB error; a page of 10 tasks is {bytes} bytes"
    );
    assert!(redb < 64 << 20, "kiln.redb grew to {redb} bytes");

    // A 100 MB refusal from `validate` comes back as a 422 of a few KiB.
    let (status, p) = d.post("/v1/jobs", job("big/", "hostile/bigrefusal", "r/{barename}.{autoext}")).await;
    assert_eq!(status, 422, "{p}");
    let detail = p["detail"].as_str().unwrap();
    assert!(detail.len() < 6000 && detail.contains("[cut at"), "{} bytes: {detail:.200}", detail.len());

    // An `info()` of 42 MB and 100,000 formats is stored cut, and lists stay small.
    let (status, p) =
        d.upload_plugin(&upload_path("bigmouth"), std::fs::read(kiln_test_plugins::BIGMOUTH).unwrap()).await;
    assert_eq!(status, 201, "{:.300}", p.to_string());
    let (status, bytes, _) = raw_get(&d, "/v1/plugins").await;
    assert_eq!(status, 200);
    assert!(bytes < 100_000, "the plugin list is {bytes} bytes");

    // One 100 MB log line: the task succeeds and the daemon stays small.
    let (status, j) = d.post("/v1/jobs", job("big/", "hostile/biglog", "l/{barename}.{autoext}")).await;
    assert_eq!(status, 201, "{j}");
    let done = d.wait_job(j["id"].as_u64().unwrap(), LONG).await;
    assert_eq!(done["state"], "succeeded", "{done}");
}

#[tokio::test]
async fn a_plugin_that_hangs_in_info_or_validate_holds_no_request_and_no_restart() {
    let (_dir, mut d) = daemon("[runtime]\ncontrol_deadline = \"1s\"\n");
    // An upload whose `info()` never returns is refused at the control deadline.
    let started = Instant::now();
    let (status, p) =
        d.upload_plugin(&upload_path("stall"), std::fs::read(kiln_test_plugins::STALL_INFO).unwrap()).await;
    assert_eq!(status, 422, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("runtime.control_deadline"), "{p}");
    assert!(started.elapsed() < Duration::from_secs(5), "the upload took {:?}", started.elapsed());

    let (status, p) =
        d.upload_plugin(&upload_path("hostile"), std::fs::read(kiln_test_plugins::HOSTILE).unwrap()).await;
    assert_eq!(status, 201, "{p}");
    // A style whose `validate` hangs is refused at the deadline, and other
    // requests are answered meanwhile.
    let hanging = d.post("/v1/styles", json!({"name": "hangs", "style": "hostile/hang"}));
    let meanwhile = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        let (status, _, _) = raw_get(&d, "/v1/jobs").await;
        (status, started.elapsed())
    };
    let started = Instant::now();
    let ((status, p), (other_status, other_took)) = tokio::join!(hanging, meanwhile);
    assert_eq!(status, 422, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("runtime.control_deadline"), "{p}");
    assert!(started.elapsed() < Duration::from_secs(5), "style creation took {:?}", started.elapsed());
    assert_eq!(other_status, 200);
    assert!(other_took < Duration::from_millis(500), "a job list waited {other_took:?} on the plugin");

    // A job of the hostile plugin is running when the daemon is killed; the
    // restarted daemon is ready at once: it never calls a plugin to get there.
    let (status, j) = d.post("/v1/jobs", job("big/", "hostile/loop", "x/{barename}.{autoext}")).await;
    assert_eq!(status, 201, "{j}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    d.kill9_and_restart();
    loop {
        let (status, _, _) = raw_get(&d, "/readyz").await;
        if status == 200 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "not ready after {:?}", started.elapsed());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let ready = started.elapsed();
    println!("ready {ready:?} after a restart with hostile plugins and a running job of one");
    assert!(ready < Duration::from_secs(5), "ready after {ready:?}");
    let (_, plugins) = d.get("/v1/plugins").await;
    assert!(plugins.as_array().unwrap().iter().any(|p| p["name"] == "hostile"), "{plugins}");
}

/// Allocation bombs and output floods from one tenant: the daemon's memory
/// stays within its budget plus its own overhead, and another tenant's job
/// finishes.
#[tokio::test]
async fn a_flood_of_allocation_bombs_stays_within_the_memory_budget() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for (prefix, n) in [("bombs", 24), ("flood", 2), ("good", 200)] {
        let p = data.join("buckets/in").join(prefix);
        std::fs::create_dir_all(&p).unwrap();
        for i in 0..n {
            std::fs::write(p.join(format!("{i:03}.txt")), format!("{prefix} {i}")).unwrap();
        }
    }
    std::fs::create_dir_all(data.join("buckets/out")).unwrap();
    const BUDGET: u64 = 1 << 30;
    let config = format!(
        "workers = 8\n[runtime]\nmemory_budget = {BUDGET}\n[runtime.limits]\nmax_memory = 268435456\ndeadline = \"20s\"\n"
    );
    let d = Daemon::start(&data, Some(&config));
    let (status, p) =
        d.upload_plugin(&upload_path("hostile"), std::fs::read(kiln_test_plugins::HOSTILE).unwrap()).await;
    assert_eq!(status, 201, "{p}");
    let at_rest = d.rss();

    let sample = {
        let pid = d.pid();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (stop2, peak) = (stop.clone(), std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0)));
        let peak2 = peak.clone();
        let handle = std::thread::spawn(move || {
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                let kib: u64 = status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                    .unwrap_or(0);
                peak2.fetch_max(kib * 1024, std::sync::atomic::Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        (stop, peak, handle)
    };
    let mut bombs = Vec::new();
    for (prefix, action) in [("bombs/", "alloc"), ("flood/", "outputs")] {
        let template = format!("{action}/{{barename}}-{{index}}.{{autoext}}");
        let mut body = job(prefix, &format!("hostile/{action}"), &template);
        body["concurrency"] = json!(24);
        let (status, j) = d.post("/v1/jobs", body).await;
        assert_eq!(status, 201, "{j}");
        bombs.push(j["id"].as_u64().unwrap());
    }
    let (status, j) = d.post("/v1/jobs", job("good/", "copy", "good/{barename}.{ext}")).await;
    assert_eq!(status, 201, "{j}");
    let good = d.wait_job(j["id"].as_u64().unwrap(), LONG).await;
    assert_eq!(good["state"], "succeeded", "{good}");
    assert_eq!(good["counters"]["succeeded"], 200, "{good}");
    for id in bombs {
        let done = d.wait_job(id, LONG).await;
        assert_eq!(done["counters"]["pending"], 0, "{done}");
    }
    let (stop, peak, handle) = sample;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    handle.join().unwrap();
    let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
    let after = d.rss();
    println!("RSS: {at_rest} at rest, {peak} at peak, {after} after the jobs (budget {BUDGET})");
    // The budget bounds the plugins' memory; the daemon's own (caches, buffers, code) comes on top.
    assert!(peak < BUDGET + (384 << 20), "peak RSS {peak} over the budget of {BUDGET} plus 384 MiB");
    assert!(after < at_rest + (256 << 20), "{after} bytes stay resident after the jobs ({at_rest} at rest)");
}

#[tokio::test]
async fn an_upload_that_fails_in_the_background_says_why_and_can_be_replaced() {
    // Every upload not compiled yet answers at once (202): its checks end in the background.
    // Its own compile cache: the components are never compiled already.
    let cache = tempfile::tempdir().unwrap();
    let (_dir, mut d) = daemon(&format!(
        "plugin_upload_wait = \"0s\"\ncache_dir = {:?}\n[runtime]\ncontrol_deadline = \"1s\"\n",
        cache.path()
    ));
    let stall = kiln_test_plugins::STALL_INFO;
    let o = d.cli(&["plugin", "add", stall, "--name", "stall", "--version", "1", "--no-wait"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("compiling"), "{}", String::from_utf8_lossy(&o.stdout));

    // Its info() never returns: the upload ends `failed`, with the reason.
    let started = Instant::now();
    let failed = loop {
        let (status, p) = d.get("/v1/plugins/stall").await;
        assert_eq!(status, 200, "{p}");
        if p["state"] != "compiling" {
            break p;
        }
        assert!(started.elapsed() < LONG, "{p}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(failed["state"], "failed", "{failed}");
    assert!(failed["error"].as_str().unwrap().contains("runtime.control_deadline"), "{failed}");
    // A job naming it hears why, on the style field.
    let (status, p) = d.post("/v1/jobs", job("big/", "stall", "x/{key}")).await;
    assert_eq!(status, 409, "{p}");
    assert_eq!(p["field"], "style", "{p}");
    let detail = p["detail"].as_str().unwrap();
    assert!(detail.contains("failed to compile") && detail.contains("control_deadline"), "{p}");

    // The CLI, waiting (the default), fails with the reason.
    let o = d.cli(&["plugin", "add", stall, "--name", "stall2", "--version", "1"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("control_deadline"), "{}", String::from_utf8_lossy(&o.stderr));

    // The failed upload can be deleted, or replaced by one that works, which the CLI waits for.
    assert_eq!(d.delete("/v1/plugins/stall").await, 204);
    assert_eq!(d.get("/v1/plugins/stall").await.0, 404);
    let o = d.cli(&["plugin", "add", kiln_test_plugins::ECHO, "--name", "stall", "--version", "2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(said.contains("plugin stall 2 uploaded") && !said.contains("compiling"), "{said}");
    let (_, p) = d.get("/v1/plugins/stall").await;
    assert_eq!((p["state"].as_str(), p["info"]["name"].as_str()), (Some("ready"), Some("echo")), "{p}");
    let (status, created) = d.post("/v1/jobs", job("big/", "stall", "x/{key}")).await;
    assert_eq!(status, 201, "{created}");
    let done = d.wait_job(created["id"].as_u64().unwrap(), LONG).await;
    assert_eq!(done["state"], "succeeded", "{done}");

    // Two uploads of one name in a row, both compiling: the later one wins,
    // in memory and in the store (a restart keeps it).
    let (first, p) =
        d.post_bytes("/v1/plugins?name=twice&version=1", std::fs::read(kiln_test_plugins::LEGACY).unwrap()).await;
    assert_eq!(first, 202, "{p}");
    let (second, p) =
        d.post_bytes("/v1/plugins?name=twice&version=2", std::fs::read(kiln_test_plugins::SEEK).unwrap()).await;
    assert_eq!(second, 202, "{p}");
    let sha = p["sha256"].as_str().unwrap().to_string();
    let started = Instant::now();
    while d.get("/v1/plugins/twice").await.1["state"] == "compiling" {
        assert!(started.elapsed() < LONG);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The first one's compile may end after the second's upload: it must not come back.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for restarted in [false, true] {
        let (_, p) = d.get("/v1/plugins/twice").await;
        assert_eq!(
            (p["state"].as_str(), p["version"].as_str(), p["sha256"].as_str()),
            (Some("ready"), Some("2"), Some(sha.as_str())),
            "restarted: {restarted}: {p}"
        );
        assert_eq!(p["info"]["contract"], "0.2.0", "{p}");
        if !restarted {
            d.stop();
            d.restart();
        }
    }
}
