//! Selection beyond a prefix, end to end over real HTTP: manifests (CSV and
//! JSON Lines, bad lines, resuming) and filters on size, modification time and
//! a glob over the key.

mod common;

use std::time::{Duration, UNIX_EPOCH};

use common::{Daemon, assert_counters_add_up};
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(120);

/// A daemon with the echo test plugin, a bucket `in` and an empty bucket `out`.
fn daemon(files: &[(&str, &str)]) -> (tempfile::TempDir, Daemon) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for (key, body) in files {
        let p = data.join("buckets/in").join(key);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
    std::fs::create_dir_all(data.join("buckets/in")).unwrap();
    std::fs::create_dir_all(data.join("buckets/out")).unwrap();
    std::fs::create_dir_all(data.join("buckets/lists")).unwrap();
    std::fs::create_dir_all(data.join("plugins")).unwrap();
    std::fs::copy(kiln_test_plugins::ECHO, data.join("plugins/echo.wasm")).unwrap();
    let d = Daemon::start(&data, Some("workers = 4\n"));
    (dir, d)
}

async fn create(d: &Daemon, body: Value) -> u64 {
    let (status, job) = d.post("/v1/jobs", body).await;
    assert_eq!(status, 201, "{job}");
    job["id"].as_u64().unwrap()
}

fn write(d: &Daemon, bucket: &str, key: &str, body: &str) {
    let p = d.bucket_dir(bucket).join(key);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, body).unwrap();
}

fn sources(tasks: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = tasks.iter().map(|t| t["source_key"].as_str().unwrap().to_string()).collect();
    v.sort();
    v
}

#[tokio::test]
async fn csv_and_jsonl_manifests_select_exactly_their_keys() {
    let files: Vec<(String, String)> = (0..8).map(|i| (format!("p/f{i}.txt"), format!("body {i}"))).collect();
    let refs: Vec<(&str, &str)> = files.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (_dir, d) = daemon(&refs);
    write(&d, "in", "odd, \"name\".txt", "quoted");
    // S3 Batch Operations style: a header, `bucket,key`, quoting; a blank line; a key listed twice.
    write(&d, "lists", "batch1.csv", "bucket,key\r\nin,p/f1.txt\r\nin,\"odd, \"\"name\"\".txt\"\r\n\r\nin,p/f5.txt\r\nin,p/f1.txt\r\n");
    let id = create(&d, json!({
        "input": {"bucket": "in", "manifest": {"bucket": "lists", "key": "batch1.csv"}},
        "style": "copy", "output": {"bucket": "out", "template": "m/{key}"}
    }))
    .await;
    let job = d.wait_job(id, LONG).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_counters_add_up(&job);
    assert_eq!(sources(&d.all_tasks(id, "").await), vec!["odd, \"name\".txt", "p/f1.txt", "p/f5.txt"], "a key listed twice is one task");
    assert_eq!(std::fs::read_to_string(d.data_dir.join("buckets/out/m/odd, \"name\".txt")).unwrap(), "quoted");
    assert_eq!(job["planning"]["done"], true);

    // JSON Lines, in the input bucket, format from the extension; a missing key fails its task.
    write(&d, "in", "lists/l.jsonl", "{\"key\": \"p/f2.txt\"}\n{\"key\": \"p/f3.txt\", \"size\": 7}\n{\"key\": \"p/nope.txt\"}\n");
    let id = create(&d, json!({
        "input": {"bucket": "in", "manifest": {"key": "lists/l.jsonl"}},
        "style": "copy", "output": {"bucket": "in", "template": "copies/{key}"}
    }))
    .await;
    let job = d.wait_job(id, LONG).await;
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!((job["counters"]["succeeded"].as_u64(), job["counters"]["failed"].as_u64()), (Some(2), Some(1)));
    assert!(d.data_dir.join("buckets/in/copies/p/f3.txt").exists());

    // One key per line, no header, format given; many pages (the planner reads 1000 lines a page).
    let many: String = (0..2500).map(|i| format!("p/f{}.txt\n", i % 8)).collect();
    write(&d, "lists", "many.txt", &many);
    let id = create(&d, json!({
        "input": {"bucket": "in", "manifest": {"bucket": "lists", "key": "many.txt", "format": "csv"}},
        "style": "copy", "output": {"bucket": "out", "template": "many/{key}"}
    }))
    .await;
    let job = d.wait_job(id, LONG).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["counters"]["total"], 8);
    assert_eq!(job["planning"]["cursor"], format!("2500:{}", many.len()));
}

#[tokio::test]
async fn a_bad_manifest_line_fails_the_job_naming_the_line() {
    let (_dir, d) = daemon(&[("a.txt", "a"), ("b.txt", "b")]);
    write(&d, "lists", "bad.csv", "key\na.txt\nother-bucket,b.txt\nb.txt\n");
    let body = json!({"input": {"bucket": "in", "manifest": {"bucket": "lists", "key": "bad.csv"}}, "style": "copy", "output": {"bucket": "out", "template": "x/{key}"}});
    // The job fails at that line.
    let id = create(&d, body).await;
    let job = d.wait_job(id, LONG).await;
    assert_eq!(job["state"], "failed", "{job}");
    assert!(job["error"].as_str().unwrap().contains("manifest `lists/bad.csv` line 3"), "{job}");


    // Refused at creation, naming the field.
    write(&d, "in", "l.csv", "a.txt\n");
    let cases = [
        (json!({"bucket": "in", "manifest": {"key": "nope.csv"}}), "input.manifest.key", "cannot be read"),
        (json!({"bucket": "in", "manifest": {"key": "l.txt"}}), "input.manifest.format", "\"format\""),
        (json!({"bucket": "in", "manifest": {"key": "l.csv", "bucket": "nosuch"}}), "input.manifest.bucket", "unknown bucket"),
        (json!({"bucket": "in", "prefix": "p/", "manifest": {"key": "l.csv"}}), "input.manifest", "input.prefix"),
        (json!({"bucket": "in", "keys": ["a.txt"], "manifest": {"key": "l.csv"}}), "input.manifest", "input.keys"),
        (json!({"bucket": "in", "min_size": 1, "manifest": {"key": "l.csv"}}), "input.manifest", "input.min_size"),
        (json!({"bucket": "in", "manifest": {"key": "l.csv", "format": "xml"}}), "input.manifest.format", "unknown variant"),
    ];
    for (input, field, needle) in cases {
        let (status, problem) = d.post("/v1/jobs", json!({"input": input, "style": "copy", "output": {"bucket": "out", "template": "x/{key}"}})).await;
        assert_eq!(status, 422, "{input} -> {problem}");
        assert_eq!(problem["field"], field, "{input} -> {problem}");
        assert!(problem["detail"].as_str().unwrap().contains(needle), "{input} -> {problem}");
    }
}

fn set_mtime(d: &Daemon, key: &str, unix: u64) {
    let f = std::fs::File::options().write(true).open(d.data_dir.join("buckets/in").join(key)).unwrap();
    f.set_modified(UNIX_EPOCH + Duration::from_secs(unix)).unwrap();
}

#[tokio::test]
async fn size_time_and_glob_filters_on_listings() {
    let files = [
        ("photos/2024/IMG_1.jpg", "x".repeat(10)),
        ("photos/2024/a/IMG_2.png", "x".repeat(100)),
        ("photos/2024/IMG_3.gif", "x".repeat(50)),
        ("photos/DSC_4.jpg", "x".repeat(50)),
        ("photos/2023/IMG_5.jpg", "x".repeat(1000)),
        ("docs/IMG_6.jpg", "x".repeat(50)),
    ];
    let refs: Vec<(&str, &str)> = files.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (_dir, d) = daemon(&refs);
    let (jan, jun) = (1_704_067_200, 1_717_200_000); // 2024-01-01, 2024-06-01
    for (key, _) in &files {
        set_mtime(&d, key, if key.contains("IMG_1") { jan } else { jun });
    }
    let run = |input: Value| {
        let d = &d;
        async move {
            let id = create(d, json!({"input": input, "style": "copy", "output": {"bucket": "out", "template": "f/{jobid}/{key}"}})).await;
            let job = d.wait_job(id, LONG).await;
            assert_eq!(job["state"], "succeeded", "{job}");
            sources(&d.all_tasks(id, "").await)
        }
    };
    assert_eq!(run(json!({"bucket": "in", "glob": "photos/**/IMG_*.{jpg,png}"})).await, vec!["photos/2023/IMG_5.jpg", "photos/2024/IMG_1.jpg", "photos/2024/a/IMG_2.png"]);
    assert_eq!(run(json!({"bucket": "in", "glob": "photos/*/IMG_*"})).await, vec!["photos/2023/IMG_5.jpg", "photos/2024/IMG_1.jpg", "photos/2024/IMG_3.gif"]);
    assert_eq!(run(json!({"bucket": "in", "prefix": "photos/", "min_size": 50, "max_size": 100})).await, vec!["photos/2024/IMG_3.gif", "photos/2024/a/IMG_2.png", "photos/DSC_4.jpg"]);
    assert_eq!(
        run(json!({"bucket": "in", "modified_before": "2024-03-01T00:00:00Z"})).await,
        vec!["photos/2024/IMG_1.jpg"],
    );
    assert_eq!(
        run(json!({"bucket": "in", "prefix": "photos/2024/", "modified_after": jun, "suffixes": ".png,.gif"})).await,
        vec!["photos/2024/IMG_3.gif", "photos/2024/a/IMG_2.png"],
    );

    let cases = [
        (json!({"bucket": "in", "glob": "photos/[a"}), "input.glob", "invalid"),
        (json!({"bucket": "in", "prefix": "docs/", "glob": "photos/*"}), "input.glob", "can match no key"),
        (json!({"bucket": "in", "min_size": 10, "max_size": 9}), "input.min_size", "greater than"),
        (json!({"bucket": "in", "modified_after": "2024-02-01T00:00:00Z", "modified_before": "2024-01-01T00:00:00Z"}), "input.modified_after", "not before"),
        (json!({"bucket": "in", "modified_before": "last tuesday"}), "input.modified_before", "RFC 3339"),
        (json!({"bucket": "in", "keys": ["docs/IMG_6.jpg"], "glob": "*"}), "input.glob", "input.keys"),
    ];
    for (input, field, needle) in cases {
        let (status, problem) = d.post("/v1/jobs", json!({"input": input, "style": "copy", "output": {"bucket": "out", "template": "x/{key}"}})).await;
        assert_eq!(status, 422, "{input} -> {problem}");
        assert_eq!(problem["field"], field, "{input} -> {problem}");
        assert!(problem["detail"].as_str().unwrap().contains(needle), "{input} -> {problem}");
    }
}


#[tokio::test]
async fn manifest_planning_resumes_after_kill_9() {
    const N: usize = 6000;
    let (_dir, mut d) = daemon(&[]);
    // Keys that do not exist: only planning matters here, and slow tasks keep the job running.
    let manifest: String = std::iter::once("key\n".to_string()).chain((0..N).map(|i| format!("k/{i:05}.txt\n"))).collect();
    write(&d, "lists", "big.csv", &manifest);
    let id = create(&d, json!({
        "input": {"bucket": "in", "manifest": {"bucket": "lists", "key": "big.csv"}},
        "style": "echo/sleep,ms_1000", "output": {"bucket": "out", "template": "o/{key}"}, "concurrency": 1
    }))
    .await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    d.kill9_and_restart();
    let (_, job) = d.get(&format!("/v1/jobs/{id}")).await;
    eprintln!("after the restart: planning {}", job["planning"]);
    let started = std::time::Instant::now();
    let job = loop {
        let (_, job) = d.get(&format!("/v1/jobs/{id}")).await;
        if job["planning"]["done"] == true {
            break job;
        }
        assert!(started.elapsed() < LONG, "planning never ended: {job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(job["counters"]["total"], N as u64, "{job}");
    assert_eq!(job["planning"]["cursor"], format!("{}:{}", N + 1, manifest.len()));
    let keys = sources(&d.all_tasks(id, "").await);
    let expected: Vec<String> = (0..N).map(|i| format!("k/{i:05}.txt")).collect();
    assert_eq!(keys, expected, "each line planned exactly once");
    let (status, _) = d.post(&format!("/v1/jobs/{id}/cancel"), json!({})).await;
    assert_eq!(status, 200);
}
