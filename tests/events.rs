//! Job events end to end: webhooks (CloudEvents, HMAC signatures, order per
//! job, retries, at-least-once across a `kill -9`, giving up visibly) against
//! a real HTTP receiver in the test, and the live SSE stream.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Daemon;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

const SECRET: &str = "test-webhook-secret-0123";
const LONG: Duration = Duration::from_secs(120);

/// What the receiver got, and how it answers.
#[derive(Default)]
struct Inbox {
    /// (signature header, body) of every request, in arrival order.
    requests: Vec<(String, Vec<u8>)>,
    /// Answer 503 to this many requests first.
    fail_next: usize,
    /// Answer 503 to everything while set.
    down: bool,
    /// Answer only after this long.
    delay: Duration,
}

/// A real HTTP server on a free port that records CloudEvents.
async fn receiver() -> (String, Arc<Mutex<Inbox>>) {
    let inbox = Arc::new(Mutex::new(Inbox::default()));
    let state = inbox.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let state = state.clone();
            async move {
                let (status, delay) = {
                    let mut inbox = state.lock().unwrap();
                    let sig =
                        headers.get("kiln-signature").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
                    inbox.requests.push((sig, body.to_vec()));
                    let status = if inbox.down || inbox.fail_next > 0 {
                        inbox.fail_next = inbox.fail_next.saturating_sub(1);
                        axum::http::StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        axum::http::StatusCode::NO_CONTENT
                    };
                    (status, inbox.delay)
                };
                tokio::time::sleep(delay).await;
                status
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, inbox)
}

/// Verify `Kiln-Signature: t=…,v1=…` as the README tells receivers to.
fn verify(signature: &str, body: &[u8]) -> bool {
    let Some((t, v1)) =
        signature.split_once(',').and_then(|(t, v)| Some((t.strip_prefix("t=")?, v.strip_prefix("v1=")?)))
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    mac.verify_slice(&hex::decode(v1).unwrap_or_default()).is_ok()
}

/// The events delivered (answered 2xx), without duplicates, in delivery order.
fn delivered(inbox: &Inbox) -> Vec<Value> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    // A request counts as delivered if a later identical one was not needed:
    // keep the last copy of each id, in order of first delivery attempt.
    for (_, body) in &inbox.requests {
        let v: Value = serde_json::from_slice(body).unwrap();
        if seen.insert(v["id"].as_str().unwrap().to_string()) {
            out.push(v);
        }
    }
    out
}

fn daemon(files: usize, config: &str) -> (tempfile::TempDir, Daemon) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let input = data.join("buckets/in");
    std::fs::create_dir_all(&input).unwrap();
    for i in 0..files {
        std::fs::write(input.join(format!("f{i}.txt")), format!("file {i}")).unwrap();
    }
    std::fs::create_dir_all(data.join("buckets/out")).unwrap();
    let d = Daemon::start(&data, Some(config));
    (dir, d)
}

/// The receivers here listen on loopback, which webhooks may reach only when the admin allows it.
const FAST_RETRIES: &str =
    "[webhooks]\nallow_private_networks = true\nfirst_backoff = \"50ms\"\nmax_backoff = \"200ms\"\n";

fn job_with_hook(url: &str, task_events: bool) -> Value {
    json!({
        "input": {"bucket": "in"}, "style": "copy", "output": {"bucket": "out", "template": "o/{basename}"},
        "notify": {"url": url, "secret": SECRET, "task_events": task_events}
    })
}

async fn wait_for(inbox: &Arc<Mutex<Inbox>>, what: &str, done: impl Fn(&Inbox) -> bool) {
    let started = std::time::Instant::now();
    while !done(&inbox.lock().unwrap()) {
        assert!(started.elapsed() < LONG, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn has_final_state(inbox: &Inbox, state: &str) -> bool {
    delivered(inbox).iter().any(|e| e["type"] == "dev.kiln.job.state_changed" && e["data"]["state"] == state)
}

#[tokio::test]
async fn webhooks_are_signed_cloudevents_in_order_and_retried() {
    let (url, inbox) = receiver().await;
    inbox.lock().unwrap().fail_next = 2;
    let (_dir, d) = daemon(5, FAST_RETRIES);
    let (status, job) = d.post("/v1/jobs", job_with_hook(&url, true)).await;
    assert_eq!(status, 201, "{job}");
    assert!(job["spec"]["notify"].get("secret").is_none(), "the secret is never shown: {job}");
    let id = job["id"].as_u64().unwrap();
    assert_eq!(d.wait_job(id, LONG).await["state"], "succeeded");
    wait_for(&inbox, "the succeeded event", |i| has_final_state(i, "succeeded")).await;

    let inbox = inbox.lock().unwrap();
    assert!(inbox.requests.len() >= 2 + 7, "two failures were retried: {} requests", inbox.requests.len());
    for (sig, body) in &inbox.requests {
        assert!(verify(sig, body), "bad signature {sig}");
    }
    let events = delivered(&inbox);
    // running, 5 tasks, succeeded: in the order they happened.
    assert_eq!(events.len(), 7, "{events:#?}");
    let seqs: Vec<u64> = events.iter().map(|e| e["kilnsequence"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order per job: {seqs:?}");
    let first = &events[0];
    assert_eq!(
        (first["specversion"].as_str(), first["type"].as_str()),
        (Some("1.0"), Some("dev.kiln.job.state_changed"))
    );
    assert_eq!(first["source"], format!("/kiln/jobs/{id}"));
    assert_eq!(first["data"]["state"], "running");
    assert!(first["time"].as_str().unwrap().ends_with('Z'));
    let last = events.last().unwrap();
    assert_eq!(
        (last["data"]["state"].as_str(), last["data"]["counters"]["succeeded"].as_u64()),
        (Some("succeeded"), Some(5))
    );
    let tasks: Vec<&Value> = events.iter().filter(|e| e["type"] == "dev.kiln.task.finished").collect();
    assert_eq!(tasks.len(), 5);
    for t in tasks {
        let data = &t["data"];
        assert_eq!(data["state"], "succeeded");
        let key = data["source"]["key"].as_str().unwrap();
        assert_eq!(data["outputs"][0]["key"], format!("o/{key}"));
        assert_eq!(data["outputs"][0]["bucket"], "out");
        assert!(data["duration_ms"].is_u64() && data["bytes_in"].as_u64().unwrap() > 0, "{data}");
    }
}

/// A task's result (contract 0.2.0) is in its `task.finished` event.
#[tokio::test]
async fn task_events_carry_the_tasks_result() {
    let (url, inbox) = receiver().await;
    let (_dir, d) = daemon(2, FAST_RETRIES);
    let mut body = job_with_hook(&url, true);
    body["style"] = json!("checksum/sha256");
    let id = d.post("/v1/jobs", body).await.1["id"].as_u64().unwrap();
    assert_eq!(d.wait_job(id, LONG).await["state"], "succeeded");
    wait_for(&inbox, "the events", |i| has_final_state(i, "succeeded")).await;
    let events = delivered(&inbox.lock().unwrap());
    let tasks: Vec<&Value> = events.iter().filter(|e| e["type"] == "dev.kiln.task.finished").collect();
    assert_eq!(tasks.len(), 2, "{events:#?}");
    for t in tasks {
        let result = &t["data"]["result"];
        assert_eq!(
            (result["algorithm"].as_str(), result["hex"].as_str().map(str::len)),
            (Some("sha256"), Some(64)),
            "{t}"
        );
        assert_eq!(t["data"]["outputs"], json!([]), "a result, no object: {t}");
    }
}

#[tokio::test]
async fn a_slow_receiver_does_not_hold_up_other_jobs_events() {
    let (slow_url, slow) = receiver().await;
    slow.lock().unwrap().delay = Duration::from_secs(2);
    let (fast_url, fast) = receiver().await;
    let (_dir, d) = daemon(2, FAST_RETRIES);
    // Job A: running, 2 tasks, succeeded: 4 events, 8 s at the slow receiver.
    let a = d.post("/v1/jobs", job_with_hook(&slow_url, true)).await.1["id"].as_u64().unwrap();
    wait_for(&slow, "A's first event", |i| !i.requests.is_empty()).await;
    let started = std::time::Instant::now();
    let mut body = job_with_hook(&fast_url, true);
    body["output"]["template"] = json!("b/{basename}");
    let b = d.post("/v1/jobs", body).await.1["id"].as_u64().unwrap();
    assert_eq!(d.wait_job(b, LONG).await["state"], "succeeded");
    wait_for(&fast, "B's events", |i| has_final_state(i, "succeeded")).await;
    let took = started.elapsed();
    // Delivered one at a time across the daemon, B's events would wait about 6 s behind A's.
    assert!(took < Duration::from_secs(4), "B's events took {took:?}");
    assert!(slow.lock().unwrap().requests.len() < 4, "A's receiver was still busy");
    assert_eq!(delivered(&fast.lock().unwrap()).len(), 4);

    // A's events all arrive, in order, one at a time.
    wait_for(&slow, "A's events", |i| has_final_state(i, "succeeded")).await;
    let events = delivered(&slow.lock().unwrap());
    let seqs: Vec<u64> = events.iter().map(|e| e["kilnsequence"].as_u64().unwrap()).collect();
    assert_eq!(seqs.len(), 4, "{events:#?}");
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order per job: {seqs:?}");
    assert!(events.iter().all(|e| e["source"] == format!("/kiln/jobs/{a}")));
}

/// A job over `files` objects whose loopback receiver is down: the job ends,
/// its first event is tried, then the daemon is killed with its events queued.
async fn queued_then_killed(files: usize, task_events: bool) -> (Arc<Mutex<Inbox>>, tempfile::TempDir, Daemon, u64) {
    let (url, inbox) = receiver().await;
    inbox.lock().unwrap().down = true;
    let (dir, mut d) = daemon(files, FAST_RETRIES);
    let id = d.post("/v1/jobs", job_with_hook(&url, task_events)).await.1["id"].as_u64().unwrap();
    assert_eq!(d.wait_job(id, LONG).await["state"], "succeeded");
    wait_for(&inbox, "a first attempt", |i| !i.requests.is_empty()).await;
    d.kill9();
    (inbox, dir, d, id)
}

#[tokio::test]
async fn events_survive_a_kill_9_and_are_delivered_at_least_once() {
    let (inbox, _dir, mut d, id) = queued_then_killed(3, true).await;
    {
        let mut i = inbox.lock().unwrap();
        assert!(!has_final_state(&i, "succeeded"));
        i.down = false;
    }
    d.kill9_and_restart();
    wait_for(&inbox, "every event after the restart", |i| has_final_state(i, "succeeded")).await;
    let events = delivered(&inbox.lock().unwrap());
    assert_eq!(events.len(), 5, "running, 3 tasks, succeeded: {events:#?}");
    let (_, hooks) = d.get(&format!("/v1/jobs/{id}/webhooks")).await;
    assert_eq!(hooks["pending"], json!([]), "{hooks}");
    // Each event is counted once as delivered, however often it was sent.
    assert_eq!(hooks["delivered"]["delivered"], 5, "{hooks}");
    assert_eq!(hooks["delivered"]["last_type"], "dev.kiln.job.state_changed", "{hooks}");
    let o = d.cli(&["webhook", "list", &id.to_string()]);
    let shown = String::from_utf8_lossy(&o.stdout);
    assert!(shown.starts_with(&format!("job {id}: 5 event(s) delivered, the last ")), "{shown}");
    assert!(shown.contains("pending: 0") && shown.contains("given up: 0"), "{shown}");
}

#[tokio::test]
async fn undeliverable_events_are_given_up_visibly() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = format!("{FAST_RETRIES}give_up_after = \"1s\"\n");
    let (_dir, d) = daemon(1, &config);
    let id = d.post("/v1/jobs", job_with_hook(&format!("http://127.0.0.1:{port}/gone"), false)).await.1["id"]
        .as_u64()
        .unwrap();
    assert_eq!(d.wait_job(id, LONG).await["state"], "succeeded");
    let started = std::time::Instant::now();
    loop {
        let (status, hooks) = d.get(&format!("/v1/jobs/{id}/webhooks")).await;
        assert_eq!(status, 200);
        if hooks["pending"] == json!([]) && hooks["given_up"].as_array().unwrap().len() == 2 {
            let dead = &hooks["given_up"][0];
            assert!(dead["last_error"].as_str().unwrap().contains("cannot reach"), "{hooks}");
            assert!(dead["attempts"].as_u64().unwrap() >= 2, "{hooks}");
            assert!(dead.get("secret").is_none());
            assert_eq!(hooks["delivered"]["delivered"], 0, "{hooks}");
            let o = d.cli(&["webhook", "list", &id.to_string()]);
            let shown = String::from_utf8_lossy(&o.stdout);
            assert!(shown.contains("given up: 2") && shown.contains("cannot reach"), "{shown}");
            break;
        }
        assert!(started.elapsed() < LONG, "{hooks}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = d.http.get(format!("{}/metrics", d.url)).bearer_auth(&d.token).send().await.unwrap().text().await.unwrap();
    assert!(r.contains("kiln_webhook_attempts_total{state=\"given_up\"} 2"), "{r}");
}

#[tokio::test]
async fn refuses_bad_webhooks_naming_the_field() {
    let (_dir, d) = daemon(1, "");
    for (notify, field) in [
        (json!({"url": "ftp://x/y", "secret": SECRET}), "notify.url"),
        (json!({"url": "http://127.0.0.1:1/x", "secret": "short"}), "notify.secret"),
    ] {
        let mut body = job_with_hook("http://x", false);
        body["notify"] = notify;
        let (status, p) = d.post("/v1/jobs", body).await;
        assert_eq!((status, p["field"].as_str()), (422, Some(field)), "{p}");
    }
}

#[tokio::test]
async fn webhooks_to_private_addresses_are_refused_unless_the_admin_allows_them() {
    let (url, inbox) = receiver().await;
    let port = url.split(':').nth(2).unwrap().split('/').next().unwrap().to_string();
    let (_dir, d) = daemon(1, "");
    for target in [
        url.clone(),
        format!("http://localhost:{port}/hook"),
        "http://[::1]/hook".into(),
        "http://169.254.169.254/latest/meta-data/".into(),
        "http://10.0.0.7/hook".into(),
        "http://[fd00::1]/hook".into(),
        "http://[::ffff:127.0.0.1]/hook".into(),
        "http://0.0.0.0/hook".into(),
        "http://224.0.0.1/hook".into(),
        "http://2130706433/hook".into(),
    ] {
        for dry_run in [false, true] {
            let mut body = job_with_hook(&target, false);
            body["dry_run"] = json!(dry_run);
            let (status, p) = d.post("/v1/jobs", body).await;
            assert_eq!((status, p["field"].as_str()), (422, Some("notify.url")), "{target}: {p}");
            assert!(p["detail"].as_str().unwrap().contains("webhooks.allow_private_networks"), "{target}: {p}");
        }
    }
    let (_, jobs) = d.get("/v1/jobs").await;
    assert_eq!(jobs["items"], json!([]), "nothing was stored");

    // The admin allows private networks: the same loopback receiver gets the events.
    let (_dir2, d) = daemon(1, "[webhooks]\nallow_private_networks = true\n");
    let (status, job) = d.post("/v1/jobs", job_with_hook(&url, false)).await;
    assert_eq!(status, 201, "{job}");
    wait_for(&inbox, "the succeeded event", |i| has_final_state(i, "succeeded")).await;
}

#[tokio::test]
async fn delivery_checks_the_destination_again() {
    // Events queued while private networks were allowed; the admin turns that off and restarts.
    let (inbox, _dir, mut d, id) = queued_then_killed(1, false).await;
    std::fs::write(d.data_dir.join("kiln.toml"), "[webhooks]\nfirst_backoff = \"50ms\"\nmax_backoff = \"200ms\"\n")
        .unwrap();
    // A request the killed daemon sent just before it died may land a moment later: wait until none does.
    let mut before = inbox.lock().unwrap().requests.len();
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = inbox.lock().unwrap().requests.len();
        if now == before {
            break;
        }
        before = now;
    }
    inbox.lock().unwrap().down = false;
    d.kill9_and_restart();
    let started = std::time::Instant::now();
    loop {
        let (_, hooks) = d.get(&format!("/v1/jobs/{id}/webhooks")).await;
        let error = hooks["pending"][0]["last_error"].as_str().unwrap_or_default().to_string();
        if error.starts_with("refused: `127.0.0.1` is a loopback address")
            && hooks["pending"][0]["attempts"].as_u64() >= Some(3)
        {
            assert!(error.contains("webhooks.allow_private_networks"), "{error}");
            break;
        }
        assert!(started.elapsed() < LONG, "{hooks}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(inbox.lock().unwrap().requests.len(), before, "no request reached the receiver after the restart");
}

/// Every event of an SSE response, as (name, data), until the stream ends (within `limit`).
async fn read_events(mut resp: reqwest::Response, limit: Duration) -> Vec<(String, Value)> {
    let mut text = String::new();
    while let Some(chunk) = tokio::time::timeout(limit, resp.chunk()).await.expect("the stream ended in time").unwrap()
    {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    text.split("\n\n")
        .filter_map(|e| {
            let name = e.lines().find_map(|l| l.strip_prefix("event:"))?.trim().to_string();
            let data = e.lines().find_map(|l| l.strip_prefix("data:"))?;
            Some((name, serde_json::from_str(data.trim()).unwrap()))
        })
        .collect()
}

#[tokio::test]
async fn the_event_stream_hears_a_resume_that_ends_the_job() {
    // A job whose only task finished while it was suspended ends at once when resumed.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("plugins")).unwrap();
    std::fs::copy(kiln_test_plugins::ECHO, data.join("plugins/echo.wasm")).unwrap();
    std::fs::create_dir_all(data.join("buckets/in")).unwrap();
    std::fs::write(data.join("buckets/in/a.txt"), "a").unwrap();
    std::fs::create_dir_all(data.join("buckets/out")).unwrap();
    let d = Daemon::start(&data, None);
    let body = json!({"input": {"bucket": "in"}, "style": "echo/sleep,ms_1000", "output": {"bucket": "out", "template": "o/{basename}"}});
    let id = d.post("/v1/jobs", body).await.1["id"].as_u64().unwrap();
    let started = std::time::Instant::now();
    while d.get(&format!("/v1/jobs/{id}")).await.1["counters"]["running"] != 1 {
        assert!(started.elapsed() < LONG);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(d.post(&format!("/v1/jobs/{id}/suspend"), json!({})).await.0, 200);
    while d.get(&format!("/v1/jobs/{id}")).await.1["counters"]["succeeded"] != 1 {
        assert!(started.elapsed() < LONG);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let resp = d.http.get(format!("{}/v1/jobs/{id}/events", d.url)).bearer_auth(&d.token).send().await.unwrap();
    let resumed = d.post(&format!("/v1/jobs/{id}/resume"), json!({})).await.1;
    assert_eq!(resumed["state"], "succeeded", "{resumed}");
    // Told at once (a stream that hears nothing reads its job again only after 5 s).
    let events = read_events(resp, Duration::from_secs(4)).await;
    let names: Vec<&str> =
        events.iter().map(|(n, j)| if n == "state" { j["state"].as_str().unwrap() } else { n.as_str() }).collect();
    assert_eq!(names.first(), Some(&"suspended"), "{names:?}");
    assert_eq!(names.last(), Some(&"succeeded"), "{names:?}");
    assert_eq!(d.delete(&format!("/v1/jobs/{id}")).await, 204);
    assert_eq!(d.get(&format!("/v1/jobs/{id}/events")).await.0, 404);
}

#[tokio::test]
async fn the_event_stream_follows_a_job_to_its_end() {
    let (_dir, d) = daemon(40, "workers = 2\n");
    let mut body = job_with_hook("http://127.0.0.1:1/unused", false);
    body.as_object_mut().unwrap().remove("notify");
    body["concurrency"] = json!(1);
    let id = d.post("/v1/jobs", body).await.1["id"].as_u64().unwrap();
    let resp = d.http.get(format!("{}/v1/jobs/{id}/events", d.url)).bearer_auth(&d.token).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let events = read_events(resp, LONG).await;
    assert_eq!(events.first().unwrap().0, "state");
    let (name, last) = events.last().unwrap();
    assert_eq!((name.as_str(), last["state"].as_str()), ("state", Some("succeeded")));
    assert_eq!(last["counters"]["succeeded"], 40);
    let done: Vec<u64> = events.iter().map(|(_, j)| j["counters"]["succeeded"].as_u64().unwrap()).collect();
    assert!(done.windows(2).all(|w| w[0] <= w[1]), "progress only goes up: {done:?}");
    assert!(events.iter().any(|(n, _)| n == "progress"), "{done:?}");

    // Another tenant cannot listen.
    let (status, _) = d.as_token("kiln_nobody").get(&format!("/v1/jobs/{id}/events")).await;
    assert_eq!(status, 401);
}
