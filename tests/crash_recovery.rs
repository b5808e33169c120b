//! `kill -9` the daemon several times during a job of 2,000 objects, restart
//! it each time: the job completes, every output is correct, the counters add
//! up, and no task is lost or counted twice.

use crate::common;

use std::time::Duration;

use common::{Daemon, assert_counters_add_up};
use serde_json::json;

#[tokio::test]
async fn job_survives_repeated_kill_9() {
    const N: usize = 2000;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for i in 0..N {
        let sub = data.join(format!("buckets/in/p{}", i % 10));
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join(format!("o{i:05}.bin")), format!("object number {i}")).unwrap();
    }
    std::fs::create_dir_all(data.join("buckets/out")).unwrap();
    let mut d = Daemon::start(&data, None);
    let (status, job) = d
        .post("/v1/jobs", json!({
            "input": {"bucket": "in"}, "style": "copy", "output": {"bucket": "out", "template": "o/{key}"}, "concurrency": 4
        }))
        .await;
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_u64().unwrap();

    // Kill at a fifth, two fifths, … of the work done: by progress, not by
    // time, so a faster daemon is still killed mid-job.
    let mut kills = 0;
    for k in 1..=4u64 {
        let job = loop {
            let (_, job) = d.get(&format!("/v1/jobs/{id}")).await;
            if job["state"] != "running" || job["counters"]["succeeded"].as_u64().unwrap() >= k * N as u64 / 5 {
                break job;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        if job["state"] != "running" {
            break;
        }
        d.kill9_and_restart();
        kills += 1;
        let (_, job) = d.get(&format!("/v1/jobs/{id}")).await;
        assert_counters_add_up(&job);
        // Tasks left running were requeued; the new process may already have
        // claimed some: at most `concurrency` in flight plus as many finished
        // ones whose results wait for the group commit (5 ms of work: a few
        // dozen at most). The dead process's claims are not among them.
        assert!(job["counters"]["running"].as_u64().unwrap() <= 4 + 64, "{job}");
    }
    assert!(kills >= 2, "the job ended too soon to test recovery ({kills} kills)");

    let job = d.wait_job(id, Duration::from_secs(300)).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_counters_add_up(&job);
    assert_eq!(job["counters"]["total"], N as u64, "no task lost or planned twice");
    assert_eq!(job["counters"]["succeeded"], N as u64);

    let tasks = d.all_tasks(id, "").await;
    assert_eq!(tasks.len(), N);
    let mut keys: Vec<&str> = tasks.iter().map(|t| t["source_key"].as_str().unwrap()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), N, "each source key once");
    for i in 0..N {
        let out = data.join(format!("buckets/out/o/p{}/o{i:05}.bin", i % 10));
        assert_eq!(std::fs::read_to_string(&out).unwrap(), format!("object number {i}"), "{}", out.display());
    }
}
