//! When tasks run: skip-unchanged, priority and pacing, and follow mode by
//! polling and by S3-style event notifications. The real daemon over HTTP.

use crate::common;

use std::time::{Duration, Instant};

use common::Daemon;
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(120);

fn daemon(files: &[(&str, &str)], config: &str) -> (tempfile::TempDir, Daemon) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for (key, content) in files {
        let p = data.join("buckets/in").join(key);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    std::fs::create_dir_all(data.join("buckets/in")).unwrap();
    std::fs::create_dir_all(data.join("buckets/out")).unwrap();
    std::fs::create_dir_all(data.join("plugins")).unwrap();
    std::fs::copy(kiln_test_plugins::ECHO, data.join("plugins/echo.wasm")).unwrap();
    let d = Daemon::start(&data, Some(config));
    (dir, d)
}

async fn create(d: &Daemon, body: Value) -> u64 {
    let (status, j) = d.post("/v1/jobs", body).await;
    assert_eq!(status, 201, "{j}");
    j["id"].as_u64().unwrap()
}

async fn wait_until(d: &Daemon, id: u64, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let (_, job) = d.get(&format!("/v1/jobs/{id}")).await;
        if ok(&job) {
            return job;
        }
        assert!(started.elapsed() < LONG, "job {id}: {what}: {job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn counter(job: &Value, name: &str) -> u64 {
    job["counters"][name].as_u64().unwrap()
}

#[tokio::test]
async fn skip_unchanged_skips_what_the_last_run_already_did() {
    let (_dir, d) = daemon(&[("p/a.txt", "a"), ("p/b.txt", "b"), ("p/c.txt", "c")], "");
    let body = json!({"input": {"bucket": "in", "prefix": "p/"}, "style": "copy", "output": {"bucket": "out", "template": "o/{basename}"}, "skip_unchanged": true});
    let first = d.wait_job(create(&d, body.clone()).await, LONG).await;
    assert_eq!((first["state"].as_str(), counter(&first, "succeeded")), (Some("succeeded"), 3));

    // Change one source; the same definition again runs only that one.
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(d.data_dir.join("buckets/in/p/b.txt"), "b, changed").unwrap();
    let second = d.wait_job(create(&d, body.clone()).await, LONG).await;
    assert_eq!(second["state"], "succeeded", "skipped tasks do not fail a job: {second}");
    assert_eq!((counter(&second, "succeeded"), counter(&second, "skipped")), (1, 2), "{second}");
    assert_eq!(std::fs::read_to_string(d.data_dir.join("buckets/out/o/b.txt")).unwrap(), "b, changed");
    let skipped = d.all_tasks(second["id"].as_u64().unwrap(), "&state=skipped").await;
    let mut keys: Vec<&str> = skipped.iter().map(|t| t["source_key"].as_str().unwrap()).collect();
    keys.sort();
    assert_eq!(keys, ["p/a.txt", "p/c.txt"]);

    // Without the flag nothing is skipped; another definition remembers nothing.
    let mut plain = body.clone();
    plain["skip_unchanged"] = json!(false);
    assert_eq!(counter(&d.wait_job(create(&d, plain).await, LONG).await, "succeeded"), 3);
    let mut other = body.clone();
    other["output"]["template"] = json!("other/{basename}");
    assert_eq!(counter(&d.wait_job(create(&d, other).await, LONG).await, "skipped"), 0);

    // Explicit keys (no listing metadata): decided at run time, after the GET.
    let keys = json!({"input": {"bucket": "in", "keys": ["p/a.txt", "p/c.txt"]}, "style": "copy", "output": {"bucket": "out", "template": "k/{basename}"}, "skip_unchanged": true});
    assert_eq!(counter(&d.wait_job(create(&d, keys.clone()).await, LONG).await, "succeeded"), 2);
    let again = d.wait_job(create(&d, keys).await, LONG).await;
    assert_eq!((again["state"].as_str(), counter(&again, "skipped")), (Some("succeeded"), 2), "{again}");
}

#[tokio::test]
async fn priority_goes_first_and_pacing_caps_the_rate() {
    let files: Vec<(String, String)> = (0..20)
        .map(|i| (format!("low/{i:02}.txt"), "x".to_string()))
        .chain((0..4).map(|i| (format!("high/{i}.txt"), "y".to_string())))
        .collect();
    let refs: Vec<(&str, &str)> = files.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (_dir, d) = daemon(&refs, "workers = 1\n");
    let job = |prefix: &str, priority: i32| json!({"input": {"bucket": "in", "prefix": prefix}, "style": "echo/sleep,ms_40", "output": {"bucket": "out", "template": "{dirname}/{barename}.{autoext}"}, "priority": priority});
    let low = create(&d, job("low/", 0)).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let high = create(&d, job("high/", 10)).await;
    let done = d.wait_job(high, LONG).await;
    assert_eq!(done["state"], "succeeded");
    let (_, low_job) = d.get(&format!("/v1/jobs/{low}")).await;
    assert!(counter(&low_job, "pending") >= 10, "the high-priority job went first: {low_job}");

    // Priority changes while running.
    let (status, patched) = d.patch(&format!("/v1/jobs/{low}"), json!({"priority": 99})).await;
    assert_eq!((status, patched["spec"]["priority"].as_i64()), (200, Some(99)), "{patched}");
    let (status, p) = d.patch(&format!("/v1/jobs/{low}"), json!({"priority": "high"})).await;
    assert_eq!((status, p["field"].as_str()), (422, Some("priority")), "{p}");
    d.wait_job(low, LONG).await;

    // Pacing: 12 tasks at 6 per second take at least one second after the first burst.
    let started = Instant::now();
    let mut paced = json!({"input": {"bucket": "in", "prefix": "low/"}, "style": "copy", "output": {"bucket": "out", "template": "paced/{basename}"}, "max_tasks_per_second": 6});
    paced["input"]["suffixes"] = json!(".txt");
    let id = create(&d, paced).await;
    let job = d.wait_job(id, LONG).await;
    assert_eq!(counter(&job, "succeeded"), 20);
    let took = started.elapsed();
    // 20 tasks: 6 at once, then 14 at 6/s: about 2.3 s.
    assert!(took >= Duration::from_millis(2000), "pacing: {took:?}");
}

#[tokio::test]
async fn following_jobs_pick_up_new_and_changed_objects() {
    let (_dir, d) = daemon(&[("w/a.txt", "a")], "");
    let body = json!({"input": {"bucket": "in", "prefix": "w/", "suffixes": ".txt"}, "style": "copy", "output": {"bucket": "out", "template": "f/{basename}"}, "follow": true, "follow_interval": "1s"});
    let id = create(&d, body).await;
    let job = wait_until(&d, id, "backfill", |j| counter(j, "succeeded") == 1).await;
    assert_eq!(job["state"], "running", "a following job keeps running after its backfill");

    // A new object, and a changed one, are processed on the next poll.
    std::fs::write(d.data_dir.join("buckets/in/w/b.txt"), "b").unwrap();
    std::fs::write(d.data_dir.join("buckets/in/w/ignored.bin"), "not selected").unwrap();
    wait_until(&d, id, "the new object", |j| counter(j, "succeeded") == 2).await;
    assert_eq!(std::fs::read_to_string(d.data_dir.join("buckets/out/f/b.txt")).unwrap(), "b");
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(d.data_dir.join("buckets/in/w/a.txt"), "a, changed").unwrap();
    let out = d.data_dir.join("buckets/out/f/a.txt");
    let started = Instant::now();
    while std::fs::read_to_string(&out).unwrap() != "a, changed" {
        assert!(started.elapsed() < LONG, "the changed object was not processed again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let job = wait_until(&d, id, "settled", |j| counter(j, "pending") == 0 && counter(j, "running") == 0).await;
    assert_eq!(counter(&job, "total"), 2, "{job}");
    assert_eq!(counter(&job, "succeeded"), 2, "{job}");

    // Until cancelled.
    let (status, job) = d.post(&format!("/v1/jobs/{id}/cancel"), json!({})).await;
    assert_eq!((status, job["state"].as_str()), (200, Some("cancelled")));
}

#[tokio::test]
async fn s3_event_notifications_trigger_following_jobs() {
    let (_dir, d) = daemon(&[("e/a.txt", "a")], "");
    // Polls hourly: anything processed soon came through the event endpoint.
    let body = json!({"input": {"bucket": "in", "prefix": "e/"}, "style": "copy", "output": {"bucket": "out", "template": "ev/{key}"}, "follow": true, "follow_interval": "1h"});
    let id = create(&d, body).await;
    wait_until(&d, id, "backfill", |j| counter(j, "succeeded") == 1).await;

    std::fs::create_dir_all(d.data_dir.join("buckets/in/e/sub dir")).unwrap();
    std::fs::write(d.data_dir.join("buckets/in/e/sub dir/new file.txt"), "pushed").unwrap();
    let event = json!({"Records": [
        {"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
         "s3": {"bucket": {"name": "in"}, "object": {"key": "e/sub+dir/new+file.txt", "size": 6, "eTag": "\"0123\""}}},
        {"eventName": "ObjectRemoved:Delete", "s3": {"bucket": {"name": "in"}, "object": {"key": "e/a.txt"}}},
        {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "in"}, "object": {"key": "elsewhere/x.txt"}}},
        {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "no-such-bucket"}, "object": {"key": "e/y.txt"}}}
    ]});
    let (status, r) = d.post("/v1/events/s3", event).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        (r["records"].as_u64(), r["queued"].as_u64(), r["ignored"].as_u64()),
        (Some(4), Some(1), Some(2)),
        "{r}"
    );
    wait_until(&d, id, "the pushed object", |j| counter(j, "succeeded") == 2).await;
    assert_eq!(std::fs::read_to_string(d.data_dir.join("buckets/out/ev/e/sub dir/new file.txt")).unwrap(), "pushed");

    // Suspended, it takes no events; a malformed notification is a 422.
    d.post(&format!("/v1/jobs/{id}/suspend"), json!({})).await;
    std::fs::write(d.data_dir.join("buckets/in/e/late.txt"), "late").unwrap();
    let late = json!({"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "in"}, "object": {"key": "e/late.txt"}}}]});
    let (_, r) = d.post("/v1/events/s3", late).await;
    assert_eq!(r["queued"], 0, "{r}");
    let (status, p) = d.post("/v1/events/s3", json!({"Records": [{"s3": {}}]})).await;
    assert_eq!(status, 422, "{p}");
}
