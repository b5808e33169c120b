//! Many tenants on one daemon, end to end over real HTTP: tokens, the
//! cross-tenant matrix, roles and grants per key, quotas, fair sharing of
//! the workers, and plugin upload with its validation.

use crate::common;

use std::time::{Duration, Instant};

use common::Daemon;
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(120);

/// A daemon with 4 workers, a bucket `in` with `a/`, `b/` and `c/` files, and
/// an empty bucket `out`.
fn daemon() -> (tempfile::TempDir, Daemon) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for prefix in ["a", "b", "c"] {
        let p = data.join("buckets/in").join(prefix);
        std::fs::create_dir_all(&p).unwrap();
        for i in 0..3 {
            std::fs::write(p.join(format!("{i}.txt")), format!("{prefix} file {i}")).unwrap();
        }
    }
    std::fs::create_dir_all(data.join("buckets/out")).unwrap();
    let d = Daemon::start(&data, Some("workers = 4\n"));
    (dir, d)
}

async fn ok(d: &Daemon, path: &str, body: Value) -> Value {
    let (status, v) = d.post(path, body).await;
    assert!(status == 201 || status == 200, "POST {path}: {status} {v}");
    v
}

/// Create a role, a tenant holding it, and a token; the tenant's view of the daemon.
async fn tenant(d: &Daemon, name: &str, grants: Value, quotas: Value) -> Daemon {
    d.tenant(name, grants, quotas).await
}

fn own_prefix(name: &str) -> Value {
    json!([
        {"bucket": "in", "prefix": format!("{name}/"), "access": "read"},
        {"bucket": "out", "prefix": format!("{name}/"), "access": "write"}
    ])
}

fn job(prefix: &str, style: &str, template: &str) -> Value {
    json!({"input": {"bucket": "in", "prefix": prefix}, "style": style, "output": {"bucket": "out", "template": template}})
}

async fn create(d: &Daemon, body: Value) -> u64 {
    let (status, j) = d.post("/v1/jobs", body).await;
    assert_eq!(status, 201, "{j}");
    j["id"].as_u64().unwrap()
}

fn echo() -> Vec<u8> {
    std::fs::read(kiln_test_plugins::ECHO).unwrap()
}

/// The admin uploads the echo test plugin and makes it public.
async fn install_public_echo(d: &Daemon) {
    let (status, p) = d.upload_plugin("/v1/plugins?name=echo&version=0.1.0", echo()).await;
    assert_eq!(status, 201, "{p}");
    let (status, p) = d.patch("/v1/plugins/echo", json!({"public": true})).await;
    assert_eq!(status, 200, "{p}");
}

#[tokio::test]
async fn tokens_are_required_checked_and_revocable() {
    let (_dir, d) = daemon();
    let (status, _) = d.as_token("").get("/healthz").await;
    assert_eq!(status, 200, "health needs no token");
    let r = reqwest::get(format!("{}/v1/jobs", d.url)).await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    let (status, p) = d.as_token("kiln_not-a-real-token").get("/v1/jobs").await;
    assert_eq!((status, p["detail"].as_str().unwrap()), (401, "unknown or revoked token"));

    let a = tenant(&d, "acme", own_prefix("acme"), json!({})).await;
    let (status, me) = a.get("/v1/whoami").await;
    assert_eq!((status, me["tenant"]["name"].as_str()), (200, Some("acme")));
    // Tenants cannot do the admin's work.
    for (path, body) in [("/v1/tenants", json!({"name": "x"})), ("/v1/roles", json!({"name": "r", "grants": []}))] {
        let (status, p) = a.post(path, body).await;
        assert_eq!(status, 403, "{path}: {p}");
    }
    let (status, _) = a.post("/v1/tenants/acme/tokens", json!({})).await;
    assert_eq!(status, 403);

    // Revoke: the token stops working at once; it is listed without its secret.
    let (_, tokens) = d.get("/v1/tenants/acme/tokens").await;
    let listed = tokens.as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].get("token").is_none(), "{listed:?}");
    let id = listed[0]["id"].as_str().unwrap();
    assert_eq!(d.delete(&format!("/v1/tenants/acme/tokens/{id}")).await, 204);
    let (status, _) = a.get("/v1/jobs").await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_generated_admin_token_is_printed_once_and_kept_hashed() {
    let dir = tempfile::tempdir().unwrap();
    let start = || {
        let mut child = std::process::Command::new(common::kiln_bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .env_remove("KILN_ADMIN_TOKEN")
            .env("KILN_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::BufRead;
        let line = std::io::BufReader::new(child.stdout.take().unwrap()).lines().next().unwrap().unwrap();
        let url = line.strip_prefix("kiln listening on ").unwrap().to_string();
        (child, url)
    };
    let (mut child, url) = start();
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let token = stderr.split_whitespace().find(|w| w.starts_with("kiln_")).expect("the token is printed").to_string();
    let db = std::fs::read(dir.path().join("kiln.redb")).unwrap();
    assert!(!db.windows(token.len()).any(|w| w == token.as_bytes()), "the token itself is not stored");

    let (mut child, url2) = start();
    let r = reqwest::Client::new().get(format!("{url2}/v1/whoami")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 200, "the token works after a restart");
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!String::from_utf8_lossy(&out.stderr).contains("kiln_"), "printed only once");
    let _ = url;
}

#[tokio::test]
async fn tenant_b_sees_and_touches_nothing_of_tenant_a() {
    let (_dir, d) = daemon();
    let a = tenant(&d, "a", own_prefix("a"), json!({})).await;
    let b = tenant(&d, "b", own_prefix("b"), json!({})).await;

    // A's private plugin, style and a job.
    let (status, p) = a.upload_plugin("/v1/plugins?name=a-echo&version=1.0.0", echo()).await;
    assert_eq!(status, 201, "{p}");
    assert_eq!(p["owner"], "a");
    assert_eq!(p["public"], false);
    ok(&a, "/v1/styles", json!({"name": "a-style", "style": "a-echo"})).await;
    let id = create(&a, job("a/", "a-style", "a/{barename}.{autoext}")).await;
    let done = a.wait_job(id, LONG).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(std::fs::read_to_string(d.data_dir.join("buckets/out/a/1.txt")).unwrap(), "a file 1");

    // Reads: every one is "not found", so existence does not leak.
    for path in [
        format!("/v1/jobs/{id}"),
        format!("/v1/jobs/{id}/tasks"),
        format!("/v1/jobs/{id}/tasks/1"),
        "/v1/plugins/a-echo".into(),
        "/v1/styles/a-style".into(),
        "/v1/tenants/a".into(),
        "/v1/roles/a-role".into(),
    ] {
        let (status, body) = b.get(&path).await;
        assert_eq!(status, 404, "B read {path}: {body}");
    }
    // Actions on A's job.
    for action in ["suspend", "resume", "cancel", "retry-failed"] {
        let (status, body) = b.post(&format!("/v1/jobs/{id}/{action}"), json!({})).await;
        assert_eq!(status, 404, "B {action}: {body}");
    }
    assert_eq!(b.delete(&format!("/v1/jobs/{id}")).await, 404);
    assert_eq!(b.delete("/v1/plugins/a-echo").await, 404);
    assert_eq!(b.delete("/v1/styles/a-style").await, 404);
    // Lists show nothing of A.
    let (_, jobs) = b.get("/v1/jobs").await;
    assert_eq!(jobs["items"], json!([]));
    let (_, plugins) = b.get("/v1/plugins").await;
    assert!(plugins.as_array().unwrap().iter().all(|p| p["name"] != "a-echo"));
    let (_, styles) = b.get("/v1/styles").await;
    assert!(styles.as_array().unwrap().iter().all(|s| s["name"] != "a-style"));
    let (_, roles) = b.get("/v1/roles").await;
    assert_eq!(roles.as_array().unwrap().len(), 1, "only its own role: {roles}");
    let (_, buckets) = b.get("/v1/buckets").await;
    assert_eq!(buckets.as_array().unwrap().len(), 2);
    // Using A's things: the plugin and style are unknown to B, and A's role is not granted.
    let (status, p) = b.post("/v1/jobs", job("b/", "a-style", "b/{basename}")).await;
    assert_eq!((status, p["field"].as_str()), (422, Some("style")), "{p}");
    let (status, p) = b.post("/v1/jobs", job("b/", "a-echo", "b/{basename}")).await;
    assert_eq!(status, 422, "{p}");
    let (status, p) = b.post("/v1/styles", json!({"name": "mine", "style": "a-echo"})).await;
    assert_eq!(status, 422, "{p}");
    let mut with_role = job("b/", "copy", "b/{basename}");
    with_role["role"] = json!("a-role");
    let (status, p) = b.post("/v1/jobs", with_role).await;
    assert_eq!((status, p["field"].as_str()), (403, Some("role")), "{p}");
    assert!(p["detail"].as_str().unwrap().contains("not granted"), "{p}");

    // The admin sees everything, and may make A's plugin public: then B can use it.
    let (_, all) = d.get("/v1/jobs").await;
    assert_eq!(all["items"][0]["tenant"], "a");
    let (status, p) = d.patch("/v1/plugins/a-echo?owner=a", json!({"public": true})).await;
    assert_eq!((status, p["public"].as_bool()), (200, Some(true)), "{p}");
    let id_b = create(&b, job("b/", "a-echo", "b/{barename}.{autoext}")).await;
    assert_eq!(b.wait_job(id_b, LONG).await["state"], "succeeded");
    // ... but B still cannot delete it or change it.
    assert_eq!(b.delete("/v1/plugins/a-echo").await, 404);
    let (status, _) = b.patch("/v1/plugins/a-echo", json!({"public": false})).await;
    assert_eq!(status, 403);
    // A new component under the public name is private until the admin publishes it again.
    let (status, p) = a.upload_plugin("/v1/plugins?name=a-echo&version=2.0.0", echo()).await;
    assert_eq!((status, p["public"].as_bool()), (201, Some(false)), "{p}");
    let (status, p) = b.post("/v1/jobs", job("b/", "a-echo", "b/again/{basename}")).await;
    assert_eq!(status, 422, "{p}");
}

#[tokio::test]
async fn a_style_name_is_shared_or_a_tenants_never_both() {
    let (_dir, d) = daemon();
    let a = tenant(&d, "a", own_prefix("a"), json!({})).await;
    // `copy` is the shared style of the bundled plugin: a tenant cannot hide it.
    let (status, p) = a.post("/v1/styles", json!({"name": "copy", "style": "image/resize,w_8"})).await;
    assert_eq!((status, p["field"].as_str()), (409, Some("name")), "{p}");
    assert!(p["type"].as_str().unwrap().ends_with("/style-name-taken"), "{p}");
    assert!(p["detail"].as_str().unwrap().contains("shared style"), "{p}");
    let (status, shared) = a.get("/v1/styles/copy").await;
    assert_eq!((status, &shared["owner"]), (200, &Value::Null), "{shared}");

    // A tenant's own name cannot become a shared one while the tenant holds it.
    ok(&a, "/v1/styles", json!({"name": "small", "style": "image/resize,w_8"})).await;
    let (status, p) = d.post("/v1/styles", json!({"name": "small", "style": "image/resize,w_16"})).await;
    assert_eq!((status, p["field"].as_str()), (409, Some("name")), "{p}");
    assert!(p["detail"].as_str().unwrap().contains("(a)"), "names the tenant: {p}");
    // Deleted, it is gone: nothing else answers to the name.
    assert_eq!(a.delete("/v1/styles/small").await, 204);
    assert_eq!(a.get("/v1/styles/small").await.0, 404);
    ok(&d, "/v1/styles", json!({"name": "small", "style": "image/resize,w_16"})).await;
    let (status, now_shared) = a.get("/v1/styles/small").await;
    assert_eq!((status, now_shared["params"].as_str()), (200, Some("resize,w_16")), "{now_shared}");
}

#[tokio::test]
async fn grants_bound_every_job_at_creation_and_every_key_while_running() {
    let (_dir, d) = daemon();
    // Reads the whole bucket, writes only under `a/` of `out`.
    let reader = tenant(
        &d,
        "reader",
        json!([{"bucket": "in", "prefix": "", "access": "read"}, {"bucket": "out", "prefix": "a/", "access": "write"}]),
        json!({}),
    )
    .await;
    let narrow = tenant(&d, "narrow", own_prefix("a"), json!({})).await;

    // Refused at creation: a selection or template that can never fit.
    let (status, p) = narrow.post("/v1/jobs", job("b/", "copy", "a/{basename}")).await;
    assert_eq!((status, p["field"].as_str()), (403, Some("input.prefix")), "{p}");
    let (status, p) = narrow.post("/v1/jobs", job("a/", "copy", "elsewhere/{basename}")).await;
    assert_eq!((status, p["field"].as_str()), (403, Some("output.template")), "{p}");
    let keys = json!({"input": {"bucket": "in", "keys": ["a/1.txt", "b/1.txt"]}, "style": "copy", "output": {"bucket": "out", "template": "a/k-{basename}"}});
    let (status, p) = narrow.post("/v1/jobs", keys).await;
    assert_eq!((status, p["field"].as_str()), (403, Some("input.keys")), "{p}");
    assert!(p["detail"].as_str().unwrap().contains("in/b/1.txt"), "{p}");

    // A wider listing sees only what the role may read, as a listing made with
    // the role's permissions would: nothing outside is planned, shown or counted.
    let id = create(&narrow, job("", "copy", "a/all/{key}")).await;
    let done = narrow.wait_job(id, LONG).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(
        (done["counters"]["total"].as_u64(), done["counters"]["succeeded"].as_u64()),
        (Some(3), Some(3)),
        "{done}"
    );
    assert!(narrow.all_tasks(id, "").await.iter().all(|t| t["source_key"].as_str().unwrap().starts_with("a/")));
    let mut dry = job("", "copy", "a/all/{key}");
    dry["dry_run"] = json!(true);
    let (_, dry) = narrow.post("/v1/jobs", dry).await;
    assert_eq!((dry["objects"].as_u64(), dry["outside_grants_count"].as_u64()), (Some(3), Some(0)), "{dry}");

    // Per key, reading: a manifest names its keys itself; one outside the grants fails its task.
    std::fs::write(d.data_dir.join("buckets/in/a/list.csv"), "a/1.txt\nb/1.txt\n").unwrap();
    let manifest = json!({"input": {"bucket": "in", "manifest": {"key": "a/list.csv"}}, "style": "copy", "output": {"bucket": "out", "template": "a/m/{basename}"}});
    let id = create(&narrow, manifest).await;
    let done = narrow.wait_job(id, LONG).await;
    assert_eq!(
        (done["counters"]["succeeded"].as_u64(), done["counters"]["failed"].as_u64()),
        (Some(1), Some(1)),
        "{done}"
    );
    let failed = narrow.all_tasks(id, "&state=failed").await;
    assert_eq!(failed[0]["error"]["kind"], "grant", "{failed:?}");
    assert!(
        failed[0]["error"]["message"].as_str().unwrap().contains("does not grant read on `in/b/1.txt`"),
        "{failed:?}"
    );

    // Per key, writing: outputs outside the write grant fail, and nothing is written.
    let id = create(&reader, job("", "copy", "{key}")).await;
    let done = reader.wait_job(id, LONG).await;
    // a/0-2.txt and the manifest a/list.csv are inside the write grant; b/ and c/ are not.
    assert_eq!(
        (done["counters"]["succeeded"].as_u64(), done["counters"]["failed"].as_u64()),
        (Some(4), Some(6)),
        "{done}"
    );
    let failed = reader.all_tasks(id, "&state=failed").await;
    assert!(
        failed.iter().all(|t| t["error"]["kind"] == "grant"
            && t["error"]["message"].as_str().unwrap().contains("does not grant write")),
        "{failed:?}"
    );
    assert!(!d.data_dir.join("buckets/out/b").exists(), "nothing is written outside the grants");
    assert!(d.data_dir.join("buckets/out/a/1.txt").exists());
}

#[tokio::test]
async fn quotas_bound_jobs_tasks_limits_and_plugins() {
    let (_dir, d) = daemon();
    install_public_echo(&d).await;
    let q = tenant(&d, "small", own_prefix("a"), json!({"running_jobs": 1, "tasks_in_flight": 1, "task_deadline": "300ms", "plugins": 1, "plugin_size": 10_000_000})).await;

    // tasks_in_flight = 1: three 150 ms tasks take at least 450 ms, whatever the job's concurrency.
    let started = Instant::now();
    let mut body = job("a/", "echo/sleep,ms_150", "a/slow/{barename}.{autoext}");
    body["concurrency"] = json!(8);
    let id = create(&q, body).await;
    // running_jobs = 1: a second job is refused while the first runs.
    let (status, p) = q.post("/v1/jobs", job("a/", "copy", "a/second/{basename}")).await;
    assert_eq!((status, p["type"].as_str()), (429, Some("https://kiln.dev/problems/quota-exceeded")), "{p}");
    assert!(p["detail"].as_str().unwrap().contains("running_jobs"), "{p}");
    assert_eq!(q.wait_job(id, LONG).await["state"], "succeeded");
    assert!(started.elapsed() >= Duration::from_millis(450), "{:?}", started.elapsed());

    // task_deadline = 300ms: a 2 s task is stopped at the tenant's deadline.
    let id = create(&q, job("a/", "echo/sleep,ms_2000", "a/late/{barename}.{autoext}")).await;
    let done = q.wait_job(id, LONG).await;
    assert_eq!(done["state"], "failed");
    let failed = q.all_tasks(id, "&state=failed").await;
    assert_eq!(failed[0]["error"]["kind"], "limit", "{failed:?}");
    assert!(failed[0]["error"]["message"].as_str().unwrap().contains("deadline of 300ms"), "{failed:?}");

    // plugins = 1, and plugin_size.
    let (status, p) = q.upload_plugin("/v1/plugins?name=mine&version=1", echo()).await;
    assert_eq!(status, 201, "{p}");
    let (status, p) = q.upload_plugin("/v1/plugins?name=mine2&version=1", echo()).await;
    assert_eq!(status, 429, "{p}");
    d.patch("/v1/tenants/small", json!({"quotas": {"plugins": 5, "plugin_size": 1000}})).await;
    let (status, p) = q.upload_plugin("/v1/plugins?name=mine2&version=1", echo()).await;
    assert_eq!(status, 429, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("plugin_size"), "{p}");
}

/// The error message of a job's first failed task, once the job has failed.
async fn failed_with(d: &Daemon, id: u64) -> String {
    assert_eq!(d.wait_job(id, LONG).await["state"], "failed");
    d.all_tasks(id, "&state=failed").await[0]["error"]["message"].as_str().unwrap().to_string()
}

/// A job asks for other per-task limits than the daemon's defaults: higher up
/// to `runtime.max_limits` and the tenant's quotas, or lower; a request above
/// either is refused at creation, naming the field and the bound.
#[tokio::test]
async fn a_job_sets_its_tasks_limits_within_the_ceilings_and_quotas() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let a = data.join("buckets/in/a");
    std::fs::create_dir_all(&a).unwrap();
    std::fs::write(a.join("0.txt"), "a file that is longer than twenty bytes").unwrap();
    std::fs::create_dir_all(data.join("buckets/out")).unwrap();
    let config = "workers = 2\n[runtime.limits]\ndeadline = \"300ms\"\n[runtime.max_limits]\ndeadline = \"5s\"\n";
    let d = Daemon::start(&data, Some(config));
    install_public_echo(&d).await;
    let sleepy = |limits: Value, out: &str| {
        let mut body = job("a/", "echo/sleep,ms_1000", &format!("a/{out}/{{barename}}.{{autoext}}"));
        body["limits"] = limits;
        body
    };

    // The daemon's default stops a 1 s task; the job's own deadline lets it finish.
    let id = create(&d, sleepy(json!({}), "default")).await;
    assert!(failed_with(&d, id).await.contains("deadline of 300ms"));
    let id = create(&d, sleepy(json!({"deadline": "3s"}), "longer")).await;
    assert_eq!(d.wait_job(id, LONG).await["state"], "succeeded");
    let (_, got) = d.get(&format!("/v1/jobs/{id}")).await;
    assert_eq!(got["spec"]["limits"], json!({"deadline": "3s"}), "{got}");
    // Above the daemon's ceiling: refused, naming the field and the setting.
    let (status, p) = d.post("/v1/jobs", sleepy(json!({"deadline": "1m"}), "x")).await;
    assert_eq!((status, p["field"].as_str()), (422, Some("limits.deadline")), "{p}");
    assert!(p["detail"].as_str().unwrap().contains("runtime.max_limits.deadline"), "{p}");
    for (limits, field) in [
        (json!({"max_output": 0}), "limits.max_output"),
        (json!({"max_memory": 4u64 << 30}), "limits.max_memory"),
        (json!({"deadline": "soon"}), "limits.deadline"),
        (json!({"cpu": 2}), "limits"),
    ] {
        let (status, p) = d.post("/v1/jobs", sleepy(limits.clone(), "x")).await;
        assert_eq!(status, 422, "{limits}: {p}");
        let named = p["field"].as_str().or(p["detail"].as_str()).unwrap_or_default();
        assert!(named.contains(field), "{limits}: {p}");
    }
    // Lower: 20 bytes of output stop a copy of a longer object, and nothing is written.
    let mut copy = job("a/", "copy", "a/small/{basename}");
    copy["limits"] = json!({"max_output": 20});
    let id = create(&d, copy).await;
    assert!(failed_with(&d, id).await.contains("output limit of 20 bytes"));
    assert!(!d.data_dir.join("buckets/out/a/small").join("0.txt").exists());

    // A tenant: its quota bounds what its jobs may ask for.
    let t = tenant(&d, "t", own_prefix("a"), json!({"task_deadline": "2s"})).await;
    let (status, p) = t.post("/v1/jobs", sleepy(json!({"deadline": "3s"}), "t3")).await;
    assert_eq!((status, p["field"].as_str()), (422, Some("limits.deadline")), "{p}");
    assert!(p["detail"].as_str().unwrap().contains("your quota `task_deadline`, 2s"), "{p}");
    let id = create(&t, sleepy(json!({"deadline": "1500ms"}), "t15")).await;
    assert_eq!(t.wait_job(id, LONG).await["state"], "succeeded");
}

#[tokio::test]
async fn concurrent_starts_never_pass_the_running_jobs_quota() {
    let (_dir, d) = daemon();
    install_public_echo(&d).await;
    let q = tenant(&d, "busy", own_prefix("a"), json!({"running_jobs": 2})).await;
    // Three 2 s tasks one at a time: each job runs for at least 6 s.
    let slow = |i: usize, start: bool| {
        let mut body = job("a/", "echo/sleep,ms_2000", &format!("a/c{i}/{{barename}}.{{autoext}}"));
        body["concurrency"] = json!(1);
        body["start"] = json!(start);
        body
    };
    let statuses = |answers: Vec<(u16, Value)>| {
        for (status, p) in &answers {
            assert!(
                *status == 201
                    || *status == 200
                    || (*status == 429 && p["detail"].as_str().unwrap().contains("running_jobs")),
                "{status} {p}"
            );
        }
        answers.iter().filter(|(s, _)| *s == 429).count()
    };

    // Twelve creates at once: exactly two run.
    let answers = futures::future::join_all((0..12).map(|i| q.post("/v1/jobs", slow(i, true)))).await;
    assert_eq!(statuses(answers), 10, "exactly two of twelve are accepted");
    async fn running(q: &Daemon) -> usize {
        q.get("/v1/jobs?state=running").await.1["items"].as_array().unwrap().len()
    }
    assert_eq!(running(&q).await, 2);

    // Resumes at once, with one slot freed: exactly one runs.
    let ready: Vec<u64> = futures::future::join_all((20..24).map(|i| q.post("/v1/jobs", slow(i, false))))
        .await
        .iter()
        .map(|(_, j)| j["id"].as_u64().unwrap())
        .collect();
    let (_, first) = q.get("/v1/jobs?state=running").await;
    q.post(&format!("/v1/jobs/{}/cancel", first["items"][0]["id"]), json!({})).await;
    let paths: Vec<String> = ready.iter().map(|id| format!("/v1/jobs/{id}/resume")).collect();
    let answers = futures::future::join_all(paths.iter().map(|p| q.post(p, json!({})))).await;
    assert_eq!(statuses(answers), 3, "exactly one of four resumes is accepted");
    assert_eq!(running(&q).await, 2);
}

#[tokio::test]
async fn a_small_job_finishes_quickly_while_another_tenants_big_job_runs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let big = data.join("buckets/in/big");
    std::fs::create_dir_all(&big).unwrap();
    for i in 0..200 {
        std::fs::write(big.join(format!("{i:03}.txt")), "x").unwrap();
    }
    let small = data.join("buckets/in/small");
    std::fs::create_dir_all(&small).unwrap();
    for i in 0..4 {
        std::fs::write(small.join(format!("{i}.txt")), "y").unwrap();
    }
    std::fs::create_dir_all(data.join("buckets/out")).unwrap();
    let d = Daemon::start(&data, Some("workers = 4\n"));
    install_public_echo(&d).await;
    let whale = tenant(&d, "whale", own_prefix("big"), json!({})).await;
    let minnow = tenant(&d, "minnow", own_prefix("small"), json!({})).await;

    // 200 tasks of 50 ms on 4 workers: about 2.5 s for the big job alone.
    let mut body = job("big/", "echo/sleep,ms_50", "big/{barename}.{autoext}");
    body["concurrency"] = json!(16);
    let big_id = create(&whale, body).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let small_id = create(&minnow, job("small/", "echo/sleep,ms_50", "small/{barename}.{autoext}")).await;
    let done = minnow.wait_job(small_id, LONG).await;
    let small_took = started.elapsed();
    assert_eq!(done["state"], "succeeded");
    let (_, big_job) = whale.get(&format!("/v1/jobs/{big_id}")).await;
    assert_eq!(big_job["state"], "running", "the big job is still running: {big_job}");
    assert!(big_job["counters"]["pending"].as_u64().unwrap() > 50, "{big_job}");
    // Alone, 4 tasks on 2 of the 4 workers take about 100 ms; starved, they would wait ~2 s.
    assert!(small_took < Duration::from_millis(1500), "the small job took {small_took:?}");
    eprintln!("small job took {small_took:?} while the big one had {} pending", big_job["counters"]["pending"]);
    whale.post(&format!("/v1/jobs/{big_id}/cancel"), json!({})).await;
}

/// Workers are shared by what each tenant has running: a tenant whose tasks
/// only sleep holds its share of the workers, and another tenant's fast job
/// stays within twice its time alone.
#[tokio::test]
async fn a_tenant_whose_tasks_sleep_holds_only_its_share_of_the_workers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for (prefix, n) in [("sleepy", 40), ("fast", 2000)] {
        let p = data.join("buckets/in").join(prefix);
        std::fs::create_dir_all(&p).unwrap();
        for i in 0..n {
            std::fs::write(p.join(format!("{i:04}.txt")), format!("{prefix} {i}")).unwrap();
        }
    }
    std::fs::create_dir_all(data.join("buckets/out")).unwrap();
    let d = Daemon::start(&data, Some("workers = 4\n"));
    install_public_echo(&d).await;
    let sleepy = tenant(&d, "sleepy", own_prefix("sleepy"), json!({"tasks_in_flight": 64})).await;
    let fast = tenant(&d, "fast", own_prefix("fast"), json!({})).await;

    let run_fast = |round: &'static str| {
        let fast = &fast;
        async move {
            let started = Instant::now();
            let id = create(fast, job("fast/", "copy", &format!("fast/{round}/{{basename}}"))).await;
            let done = fast.wait_job(id, LONG).await;
            assert_eq!(done["state"], "succeeded", "{done}");
            assert_eq!(done["counters"]["succeeded"], 2000, "{done}");
            started.elapsed()
        }
    };
    let alone = run_fast("alone").await;
    // 40 tasks of 5 s each, all allowed in flight: they would hold all 4 workers for 50 s.
    let mut body = job("sleepy/", "echo/sleep,ms_5000", "sleepy/{barename}.{autoext}");
    body["concurrency"] = json!(40);
    let sleepy_id = create(&sleepy, body).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let beside = run_fast("beside").await;
    eprintln!("the fast job took {alone:?} alone and {beside:?} beside the sleeping one");
    let (_, sleeping) = sleepy.get(&format!("/v1/jobs/{sleepy_id}")).await;
    assert_eq!(sleeping["state"], "running", "{sleeping}");
    assert!(
        beside <= alone * 2 + Duration::from_millis(500),
        "beside a sleeping tenant the fast job took {beside:?}, alone {alone:?}"
    );
    sleepy.post(&format!("/v1/jobs/{sleepy_id}/cancel"), json!({})).await;
}

#[tokio::test]
async fn uploads_are_validated_stored_by_digest_and_guarded_while_in_use() {
    let (_dir, d) = daemon();
    let a = tenant(&d, "a", own_prefix("a"), json!({})).await;
    let mut truncated = echo();
    truncated.truncate(truncated.len() / 2);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", vec![], "the body must be"),
        ("random bytes", kiln_test_plugins::RANDOM_BYTES.to_vec(), "not a WebAssembly"),
        ("core module", kiln_test_plugins::CORE_MODULE.to_vec(), "core WebAssembly module"),
        ("sockets import", std::fs::read(kiln_test_plugins::NET_IMPORT).unwrap(), "wasi:sockets"),
        ("truncated", truncated, "refused"),
    ];
    for (what, bytes, expect) in cases {
        let (status, p) = a.upload_plugin("/v1/plugins?name=bad&version=1", bytes).await;
        assert_eq!(status, 422, "{what}: {p}");
        let detail = p["detail"].as_str().unwrap();
        assert!(detail.contains(expect), "{what}: `{detail}` should contain `{expect}`");
    }
    let (status, p) = a.upload_plugin("/v1/plugins?name=Bad%20Name&version=1", echo()).await;
    assert_eq!((status, p["field"].as_str()), (422, Some("name")), "{p}");
    let (status, p) = a.upload_plugin("/v1/plugins?name=copy&version=1", echo()).await;
    assert_eq!((status, p["field"].as_str()), (422, Some("name")), "bundled names are taken: {p}");
    let (_, list) = a.get("/v1/plugins").await;
    assert!(list.as_array().unwrap().iter().all(|p| p["owner"] != "a"), "nothing bad was stored: {list}");

    // A good one: stored under its digest, described by its own info().
    let (status, p) = a.upload_plugin("/v1/plugins?name=my-echo&version=2.0.0", echo()).await;
    assert_eq!(status, 201, "{p}");
    let sha = p["sha256"].as_str().unwrap().to_string();
    assert_eq!(sha.len(), 64);
    assert!(d.data_dir.join(format!("plugin-blobs/{sha}.wasm")).exists());
    let (_, got) = a.get("/v1/plugins/my-echo").await;
    assert_eq!((got["version"].as_str(), got["info"]["name"].as_str()), (Some("2.0.0"), Some("echo")));

    // In use by a style: refused. In use by a running job: refused.
    ok(&a, "/v1/styles", json!({"name": "slow", "style": "my-echo/sleep,ms_400"})).await;
    let (status, p) = a.delete_with_body("/v1/plugins/my-echo").await;
    assert_eq!(status, 409, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("style"), "{p}");
    assert_eq!(a.delete("/v1/styles/slow").await, 204);
    let id = create(&a, job("a/", "my-echo/sleep,ms_400", "a/{barename}.{autoext}")).await;
    let (status, p) = a.delete_with_body("/v1/plugins/my-echo").await;
    assert_eq!(status, 409, "{p}");
    assert!(p["detail"].as_str().unwrap().contains(&format!("running job {id}")), "{p}");
    a.wait_job(id, LONG).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(a.delete("/v1/plugins/my-echo").await, 204);
    assert_eq!(a.get("/v1/plugins/my-echo").await.0, 404);

    // A hostile but well-formed plugin is accepted: its tasks meet the tenant's
    // limits at run time, and the daemon goes on.
    d.patch("/v1/tenants/a", json!({"quotas": {"task_memory": 64 << 20, "task_deadline": "1s"}})).await;
    let (status, p) =
        a.upload_plugin("/v1/plugins?name=hostile&version=1", std::fs::read(kiln_test_plugins::HOSTILE).unwrap()).await;
    assert_eq!(status, 201, "{p}");
    for (action, expect) in
        [("alloc", "memory limit of 67108864 bytes"), ("loop", "deadline of 1s"), ("panic", "panicked on purpose")]
    {
        let id = create(&a, job("a/", &format!("hostile/{action}"), &format!("a/h-{action}/{{basename}}"))).await;
        assert_eq!(a.wait_job(id, LONG).await["state"], "failed");
        let failed = a.all_tasks(id, "&state=failed").await;
        assert_eq!(failed.len(), 3, "{action}");
        let message = failed[0]["error"]["message"].as_str().unwrap();
        assert!(message.contains(expect), "{action}: `{message}` should contain `{expect}`");
    }
    assert!(!d.data_dir.join("buckets/out/a/h-alloc").exists(), "failed tasks write nothing");

    // Uploaded plugins survive a restart.
    let (status, _) = a.upload_plugin("/v1/plugins?name=kept&version=1", echo()).await;
    assert_eq!(status, 201);
    let mut d = d;
    d.kill9_and_restart();
    let a = d.as_token(&a.token);
    let id = create(&a, job("a/", "kept", "a/kept/{barename}.{autoext}")).await;
    assert_eq!(a.wait_job(id, LONG).await["state"], "succeeded");
}

#[tokio::test]
async fn the_admin_sees_the_background_loops_and_a_tenant_does_not() {
    let (_dir, d) = daemon();
    let job = json!({"input": {"bucket": "in"}, "style": "copy", "output": {"bucket": "out", "template": "c/{key}"}, "report": {"bucket": "out", "key": "reports/{jobid}.csv"}});
    let (status, created) = d.post("/v1/jobs", job).await;
    assert_eq!(status, 201, "{created}");
    let done = d.wait_job(created["id"].as_u64().unwrap(), LONG).await;
    assert_eq!(done["counters"]["succeeded"], 9, "{done}");
    // A following job keeps its planner: a short loop of its own while the job runs.
    let follows = json!({"input": {"bucket": "in", "prefix": "a/"}, "style": "copy", "output": {"bucket": "out", "template": "f/{key}"}, "follow": true, "follow_interval": "1s"});
    let (status, following) = d.post("/v1/jobs", follows).await;
    assert_eq!(status, 201, "{following}");
    let planner = format!("planner (job {})", following["id"]);
    let report = d.data_dir.join(format!("buckets/out/reports/{}.csv", created["id"]));
    let deadline = Instant::now() + LONG;
    let s = loop {
        let (status, s) = d.get("/v1/status").await;
        assert_eq!(status, 200, "{s}");
        let has = |name: &str| s["loops"].as_array().unwrap().iter().any(|l| l["name"] == name);
        let planned = has(&planner)
            && s["loops"].as_array().unwrap().iter().any(|l| l["name"] == planner && l["rounds"].as_u64() >= Some(1));
        let (_, job) = d.get(&format!("/v1/jobs/{}", following["id"])).await;
        let backfilled = job["counters"]["succeeded"] == 3 && s["uncommitted"] == 0;
        if planned && report.exists() && backfilled {
            break s;
        }
        assert!(Instant::now() < deadline, "no planner rounds or report: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(s["version"], env!("CARGO_PKG_VERSION"));
    let looped = |name: &str| s["loops"].as_array().unwrap().iter().find(|l| l["name"] == name).cloned();
    let (scheduler, committer) = (looped("scheduler").expect("scheduler"), looped("committer").expect("committer"));
    for l in [&scheduler, &committer] {
        assert!(matches!(l["state"].as_str(), Some("waiting" | "working")), "{l}");
        assert_eq!(l["errors"], 0, "{l}");
    }
    // Nine tasks claimed and finished: at least one group commit, at least one claim round.
    assert!(committer["rounds"].as_u64().unwrap() >= 1 && scheduler["rounds"].as_u64().unwrap() >= 1, "{s}");
    assert_eq!(s["uncommitted"], 0, "{s}");
    let (webhooks, reports) = (looped("webhooks").expect("webhooks"), looped("reports").expect("reports"));
    assert!(webhooks["rounds"].as_u64().unwrap() >= 1, "{webhooks}");
    assert!(reports["rounds"].as_u64().unwrap() >= 1 && reports["errors"] == 0, "{reports}");
    // Cancelled, the job's planner stops and leaves the status.
    let (status, _) = d.post(&format!("/v1/jobs/{}/cancel", following["id"]), json!({})).await;
    assert_eq!(status, 200);
    let deadline = Instant::now() + LONG;
    loop {
        let (_, s) = d.get("/v1/status").await;
        if !s["loops"].as_array().unwrap().iter().any(|l| l["name"] == planner) {
            break;
        }
        assert!(Instant::now() < deadline, "the planner is still there: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let t = tenant(&d, "acme", json!([]), json!({})).await;
    let (status, p) = t.get("/v1/status").await;
    assert_eq!(status, 403, "{p}");
    assert_eq!(d.as_token("not-a-token").get("/v1/status").await.0, 401);
}
