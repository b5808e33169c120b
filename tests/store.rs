//! The store end to end: a full disk is a pause, not a death; a lost or
//! damaged store is refused or named, never silently emptied; `kiln store
//! backup` copies a running daemon's store and `kiln store check` reads it.

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Daemon, kiln_bin};
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(120);

fn inputs(data: &Path, n: usize, size: usize) {
    let dir = data.join("buckets/in");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(data.join("buckets/out")).unwrap();
    for i in 0..n {
        let body: Vec<u8> = (0..size).map(|j| ((i * 31 + j * 7) % 251) as u8).collect();
        std::fs::write(dir.join(format!("k{i:02}.bin")), body).unwrap();
    }
}

fn copy_job(prefix: &str) -> Value {
    json!({"input": {"bucket": "in"}, "style": "copy", "output": {"bucket": "out", "template": format!("{prefix}/{{key}}")}})
}

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}

/// Write zeros to `path` until the disk refuses: the disk is full.
fn fill(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let block = vec![0u8; 1 << 16];
    while f.write_all(&block).is_ok() {}
    let _ = f.sync_all();
}

async fn readyz(d: &Daemon) -> (u16, String) {
    let r = d.http.get(format!("{}/readyz", d.url)).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn a_full_disk_pauses_the_daemon_and_it_goes_on_once_space_is_freed() {
    let Some(disk) = Tmpfs::mount("96m") else {
        eprintln!(
            "\n!!! SKIPPED a_full_disk_pauses_the_daemon_and_it_goes_on_once_space_is_freed: \
             `mount -t tmpfs` is not allowed here (run the tests as root on a machine that may mount)\n"
        );
        return;
    };
    let data = disk.0.path().join("data");
    inputs(&data, 24, 256 << 10);
    let d = Daemon::start(&data, Some("workers = 2\n"));

    // Work done before the disk fills is kept.
    let (status, first) = d.post("/v1/jobs", copy_job("first")).await;
    assert_eq!(status, 201, "{first}");
    let first_id = first["id"].as_u64().unwrap();
    assert_eq!(d.wait_job(first_id, LONG).await["state"], "succeeded");

    let filler = disk.0.path().join("filler");
    fill(&filler);

    // The disk is full: a new job either cannot be stored (503, not 500) or
    // cannot write its outputs (suspended with the reason, not failed).
    let (status, second) = d.post("/v1/jobs", copy_job("second")).await;
    assert!(status == 201 || status == 503, "{status} {second}");
    if status == 503 {
        assert_eq!(second["type"], "https://kiln.dev/problems/store-unavailable", "{second}");
    }
    let second_id = second["id"].as_u64();
    let (mut saw_unready, mut saw_suspended) = (false, false);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) && !(saw_suspended || saw_unready && second_id.is_none()) {
        let (code, text) = readyz(&d).await;
        if code == 503 {
            assert!(text.contains("store unavailable"), "{text}");
            saw_unready = true;
        }
        let (code, body) = d.get("/v1/jobs").await;
        assert!(code == 200 || code == 503, "never a 500 while the disk is full: {code} {body}");
        if let Some(id) = second_id {
            let (code, job) = d.get(&format!("/v1/jobs/{id}")).await;
            assert!(code == 200 || code == 503, "{code} {job}");
            assert_ne!(job["state"], "failed", "a full disk never fails a job: {job}");
            if job["state"] == "suspended" {
                assert!(job["error"].as_str().unwrap_or("").contains("full"), "{job}");
                saw_suspended = true;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(saw_unready || saw_suspended, "the full disk was noticed");

    // Space comes back: the daemon is ready again by itself, nothing is lost.
    std::fs::remove_file(&filler).unwrap();
    let started = Instant::now();
    while readyz(&d).await.0 != 200 {
        assert!(started.elapsed() < Duration::from_secs(15), "ready again within seconds: {:?}", readyz(&d).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("ready {:?} after space was freed", started.elapsed());
    let (status, kept) = d.get(&format!("/v1/jobs/{first_id}")).await;
    assert_eq!((status, kept["state"].as_str()), (200, Some("succeeded")), "{kept}");
    assert_eq!(kept["counters"]["succeeded"], 24);
    let second_id = match second_id {
        Some(id) => id,
        None => {
            let (status, job) = d.post("/v1/jobs", copy_job("second")).await;
            assert_eq!(status, 201, "{job}");
            job["id"].as_u64().unwrap()
        }
    };
    // As a user would: resume the job whenever it shows suspended. A
    // suspension met while the store was unavailable is recorded once it is
    // writable again, so it may show only now.
    let started = Instant::now();
    let job = loop {
        let (_, job) = d.get(&format!("/v1/jobs/{second_id}")).await;
        match job["state"].as_str() {
            Some("succeeded" | "failed" | "cancelled") => break job,
            Some("suspended") => {
                let (status, body) = d.post(&format!("/v1/jobs/{second_id}/resume"), json!({})).await;
                assert_eq!(status, 200, "{body}");
            }
            _ => {}
        }
        assert!(started.elapsed() < LONG, "job {second_id} did not end: {job}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["counters"]["succeeded"], 24, "{job}");
    assert_eq!(job["error"], Value::Null, "{job}");
    for i in [0, 23] {
        let name = format!("k{i:02}.bin");
        assert_eq!(
            std::fs::read(data.join("buckets/out/second").join(&name)).unwrap(),
            std::fs::read(data.join("buckets/in").join(&name)).unwrap()
        );
    }
    drop(d);
}

fn serve_output(data: &Path) -> std::process::Output {
    let mut child = Command::new(kiln_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env("KILN_ADMIN_TOKEN", "a-token-of-at-least-16-chars")
        .env("KILN_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("kiln serve started on a lost store instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn an_empty_store_beside_an_earlier_daemons_state_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("plugin-blobs")).unwrap();
    std::fs::write(data.join("plugin-blobs/0123abcd"), b"a plugin someone uploaded").unwrap();
    std::fs::write(data.join("kiln.redb"), b"").unwrap();
    let out = serve_output(&data);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("empty (0 bytes)") && stderr.contains("plugin-blobs"), "{stderr}");
    assert!(stderr.contains("kiln store backup"), "says what to do: {stderr}");
    assert_eq!(std::fs::metadata(data.join("kiln.redb")).unwrap().len(), 0, "nothing was written");
}

#[tokio::test]
async fn backup_while_running_checks_clean_and_a_damaged_record_is_named_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    inputs(&data, 8, 1000);
    let mut d = Daemon::start(&data, None);
    let (status, job) = d.post("/v1/jobs", copy_job("o")).await;
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_u64().unwrap();
    assert_eq!(d.wait_job(id, LONG).await["state"], "succeeded");

    // A consistent copy of the running daemon's store, which checks clean.
    let copy = dir.path().join("copy.redb");
    let out = d.cli(&["store", "backup", copy.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let again = d.cli(&["store", "backup", copy.to_str().unwrap()]);
    assert!(!again.status.success(), "an existing file is never overwritten");
    let out = Command::new(kiln_bin()).args(["store", "check", "--file"]).arg(&copy).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("jobs: 1 records") && stdout.contains("tasks: 8 records"), "{stdout}");
    // A tenant may not take one.
    let tenant = d.as_token("not-a-token");
    assert_eq!(tenant.get("/v1/store/backup").await.0, 401);
    // The daemon holds the store: the check says so rather than waiting.
    let out = Command::new(kiln_bin()).args(["store", "check", "--data-dir"]).arg(&data).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("daemon has it open"), "{out:?}");

    // Damage one task's record on disk (the daemon stopped cleanly first).
    d.stop();
    let path = data.join("kiln.redb");
    let mut bytes = std::fs::read(&path).unwrap();
    // A compact task record starts with its version byte (3), then the key's
    // length and bytes: make it a version no Kiln wrote.
    let (from, to) = (b"\x03\x07k03.bin", b"\x09\x07k03.bin");
    let mut hits = 0;
    for i in 0..bytes.len().saturating_sub(from.len()) {
        if &bytes[i..i + from.len()] == from {
            bytes[i..i + to.len()].copy_from_slice(to);
            hits += 1;
        }
    }
    assert_eq!(hits, 1, "one record holds the key after a version byte");
    std::fs::write(&path, &bytes).unwrap();

    let out = Command::new(kiln_bin()).args(["store", "check", "--data-dir"]).arg(&data).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!("job {id}, task 4")) || stdout.contains("integrity check FAILED"),
        "{stdout}\n{stderr}"
    );

    // The daemon starts, names the damaged record, and keeps serving.
    d.restart();
    let (status, problem) = d.get(&format!("/v1/jobs/{id}/tasks")).await;
    assert_eq!(status, 500, "{problem}");
    assert_eq!(problem["type"], "https://kiln.dev/problems/corrupt-record", "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains(&format!("job {id}, task 4")), "{problem}");
    let (status, job) = d.get(&format!("/v1/jobs/{id}")).await;
    assert_eq!((status, job["state"].as_str()), (200, Some("succeeded")), "{job}");
    let (status, task) = d.get(&format!("/v1/jobs/{id}/tasks/1")).await;
    assert_eq!(status, 200, "{task}");
}
