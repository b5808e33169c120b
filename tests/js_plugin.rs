//! A plugin written in JavaScript against `kiln:plugin@0.2.0`: the example
//! `text` plugin of `plugin-sdk/js/example`, built from source with
//! `jco componentize -d all` by `scripts/build-js-example` (npm packages from
//! registry.npmjs.org into `target/js-example`), uploaded to a real daemon and
//! run in jobs over a local bucket. Prints the build, upload (compile) and
//! first-task times (`--nocapture` shows them).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::Daemon;
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(120);
const POEM: &str = "the quick brown fox\njumps over\nthe lazy dog\n";

/// `scripts/build-js-example`, which needs node and npm (always there where the tests run).
fn build() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let started = Instant::now();
    let o = Command::new(root.join("scripts/build-js-example"))
        .output()
        .expect("running scripts/build-js-example (it needs node and npm)");
    assert!(
        o.status.success(),
        "scripts/build-js-example failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    eprint!("{}", String::from_utf8_lossy(&o.stdout));
    eprintln!("js plugin: scripts/build-js-example took {:.1?} in all", started.elapsed());
    root.join("target/js-example/text.wasm")
}

/// Create a job over `in/poem.txt` with `style`, and time it until its first
/// task has ended: (job id, the task, the latency).
async fn run(d: &Daemon, style: &str, template: &str) -> (u64, Value, Duration) {
    let started = Instant::now();
    let (status, job) = d
        .post(
            "/v1/jobs",
            json!({
                "input": {"bucket": "in", "keys": ["poem.txt"]},
                "style": style,
                "output": {"bucket": "out", "template": template},
            }),
        )
        .await;
    assert_eq!(status, 201, "{style}: {job}");
    let id = job["id"].as_u64().unwrap();
    loop {
        let (status, task) = d.get(&format!("/v1/jobs/{id}/tasks/1")).await;
        if status == 200 && matches!(task["state"].as_str(), Some("succeeded" | "failed" | "skipped")) {
            let latency = started.elapsed();
            let job = d.wait_job(id, LONG).await;
            assert_eq!(job["state"], "succeeded", "{style}: {job}\ntask: {task}");
            return (id, task, latency);
        }
        assert!(started.elapsed() < LONG, "{style}: task 1 of job {id} did not end: {task}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Poll the plugin until it is no longer compiling; it must be ready.
async fn wait_ready(d: &Daemon, name: &str) -> Value {
    let started = Instant::now();
    loop {
        let (status, plugin) = d.get(&format!("/v1/plugins/{name}")).await;
        assert_eq!(status, 200, "{plugin}");
        if plugin["state"] != "compiling" {
            assert_eq!(plugin["state"], "ready", "{plugin}");
            return plugin;
        }
        assert!(started.elapsed() < LONG, "plugin {name} still compiling after {LONG:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn javascript_component_runs_jobs_in_a_daemon() {
    let wasm = std::fs::read(build()).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("buckets/in")).unwrap();
    std::fs::create_dir_all(data.join("buckets/out")).unwrap();
    std::fs::write(data.join("buckets/in/poem.txt"), POEM).unwrap();
    // Every upload that is not compiled already answers at once (202).
    // Its own compile cache, so that the component is never compiled already.
    let config = format!("plugin_upload_wait = \"0s\"\ncache_dir = {:?}\n", data.join("cache"));
    let mut d = Daemon::start(&data, Some(&config));

    // The upload checks the imports (only kiln:plugin/*: `-d all` left no
    // WASI) at once, then compiles the component and calls its info() in the background.
    let started = Instant::now();
    let (status, plugin) = d.post_bytes("/v1/plugins?name=text&version=0.1.0", wasm.clone()).await;
    assert_eq!(status, 202, "{plugin}");
    assert_eq!(plugin["state"], "compiling", "{plugin}");
    eprintln!("js plugin: {} bytes; the upload answered in {:.2?}", wasm.len(), started.elapsed());

    // A crash while it compiles loses nothing: the restart compiles it again.
    d.kill9_and_restart();
    let (status, plugin) = d.get("/v1/plugins/text").await;
    assert_eq!(status, 200, "{plugin}");
    assert_eq!(plugin["state"], "compiling", "{plugin}");
    // A job cannot use it yet: a clear 409 naming the style, not an unknown style.
    let (status, problem) = d
        .post(
            "/v1/jobs",
            json!({"input": {"bucket": "in"}, "style": "text/upper", "output": {"bucket": "out", "template": "x/{key}"}}),
        )
        .await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["field"], "style", "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("compiling"), "{problem}");
    let compiled = wait_ready(&d, "text").await;
    assert_eq!(compiled["info"]["name"], "text", "{compiled}");
    eprintln!("js plugin: compiled in the background {:.2?} after the upload (a restart between)", started.elapsed());
    let (status, got) = d.get("/v1/plugins/text").await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["state"], "ready", "{got}");

    // upper: the output object exists with the bytes.
    let (_, task, first) = run(&d, "text/upper", "upper/{barename}.{autoext}").await;
    assert_eq!(task["state"], "succeeded", "{task}");
    assert_eq!(task["outputs"].as_array().unwrap().len(), 1, "{task}");
    let out = data.join("buckets/out/upper/poem.txt");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), POEM.to_uppercase(), "{}", out.display());
    eprintln!(
        "js plugin: first task (job creation to task 1 ended) {first:.2?}; the task's own duration_ms {}",
        task["duration_ms"]
    );

    // tail,n_2: size() and read-at from the end.
    let (_, task, latency) = run(&d, "text/tail,n_2", "tail/{barename}.{autoext}").await;
    assert_eq!(task["state"], "succeeded", "{task}");
    assert_eq!(std::fs::read_to_string(data.join("buckets/out/tail/poem.txt")).unwrap(), "jumps over\nthe lazy dog\n");
    eprintln!("js plugin: a later job's first task {latency:.2?} (duration_ms {})", task["duration_ms"]);

    // stats: no output, the counts as the task's result.
    let (id, task, _) = run(&d, "text/stats", "stats/{barename}.{autoext}").await;
    assert_eq!(task["state"], "succeeded", "{task}");
    assert!(task["outputs"].as_array().unwrap().is_empty(), "{task}");
    let (status, task) = d.get(&format!("/v1/jobs/{id}/tasks/1")).await;
    assert_eq!(status, 200);
    let result = common::task_result(&task);
    assert_eq!(result, json!({"bytes": 44, "lines": 3, "words": 9}), "{task}");

    // Start-up never waits for a compile: with the compiled artifact gone (a
    // cleared cache, a Kiln upgrade), the daemon serves at once, the plugin
    // compiles in the background, and a job left running resumes when it is ready.
    for name in ["a.txt", "b.txt", "c.txt"] {
        std::fs::write(data.join("buckets/in").join(name), POEM).unwrap();
    }
    let (status, job) = d
        .post(
            "/v1/jobs",
            json!({
                "input": {"bucket": "in", "keys": ["a.txt", "b.txt", "c.txt"]},
                "style": "text/upper",
                "output": {"bucket": "out", "template": "slow/{key}"},
                "concurrency": 1,
                "max_tasks_per_second": 1,
            }),
        )
        .await;
    assert_eq!(status, 201, "{job}");
    let slow = job["id"].as_u64().unwrap();
    d.stop();
    let sha = got["sha256"].as_str().unwrap();
    for entry in std::fs::read_dir(data.join("cache")).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap().to_string_lossy().starts_with(sha) {
            std::fs::remove_file(path).unwrap();
        }
    }
    let restarted = Instant::now();
    d.restart();
    eprintln!("js plugin: restart with a cold compile cache listened in {:.2?}", restarted.elapsed());
    let (_, plugin) = d.get("/v1/plugins/text").await;
    assert_eq!(plugin["state"], "compiling", "{plugin}");
    let job = d.wait_job(slow, LONG).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["counters"]["succeeded"], 3, "{job}");
    assert_eq!(std::fs::read_to_string(data.join("buckets/out/slow/c.txt")).unwrap(), POEM.to_uppercase());

    // A parameter the plugin does not know is refused when the job is created.
    let (status, problem) = d
        .post(
            "/v1/jobs",
            json!({"input": {"bucket": "in"}, "style": "text/upper,zz_1", "output": {"bucket": "out", "template": "x/{key}"}}),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["field"], "style", "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("`zz`") && detail.contains("`upper`"), "{problem}");
}
