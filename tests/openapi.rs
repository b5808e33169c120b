//! The API against its own description: schemathesis reads `/openapi.json`
//! from a real daemon, generates requests for every operation (valid and
//! invalid: random ids, names, bodies, query strings, also for the deleting
//! ones), and runs every check it has (`--checks all`): no server error;
//! status, media type, headers and body as described; schema-invalid
//! requests refused and schema-valid ones accepted (or refused with a
//! problem for what no schema can say: see `schemathesis/schemathesis.toml`);
//! nothing used after it was deleted; auth never ignored. It runs twice: with
//! a tenant's token, then with the admin's (whose run deletes the tenant).
//!
//! schemathesis comes from PyPI (`scripts/test` installs it). Without it the
//! test is skipped, loudly; under `CI=true` that is a failure.

use crate::common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{ADMIN_TOKEN, Daemon};
use serde_json::{Value, json};

/// Examples per operation and phase; `KILN_SCHEMATHESIS_EXAMPLES` sets another number.
const EXAMPLES: u32 = 100;
/// How long one schemathesis run may take: about 40 s here, on a loaded CI machine a few times that.
const RUN_DEADLINE: Duration = Duration::from_secs(600);

fn schemathesis() -> Option<String> {
    let found = Command::new("schemathesis").arg("--version").output().is_ok_and(|o| o.status.success());
    if found {
        return Some("schemathesis".into());
    }
    let on_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    assert!(
        !on_ci,
        "schemathesis is not installed, and CI=true: `python3 -m pip install schemathesis` (scripts/test pins the version)"
    );
    // Straight to stderr: the test harness would swallow `eprintln!` of a passing test.
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        b"\n*** SKIPPED the OpenAPI conformance test: schemathesis is not installed (`python3 -m pip install schemathesis`; see scripts/test). ***\n\n",
    );
    None
}

async fn created(d: &Daemon, path: &str, body: Value) -> Value {
    let (status, v) = d.post(path, body).await;
    assert_eq!(status, 201, "POST {path}: {v}");
    v
}

/// Something of each kind for the generated requests to find, named as in
/// the description's examples (bucket `photos`, role `thumbnailer`, tenant
/// `acme`, style `thumb`, plugin `echo`, job 1, task 1): objects, a role, a
/// tenant with a token, a style, an uploaded plugin, an ended job, a job whose
/// tasks failed, and a job not started.
async fn seed(d: &Daemon) -> String {
    for dir in ["in", "in/2024", "other"] {
        let path = d.bucket_dir("photos").join(dir);
        std::fs::create_dir_all(&path).unwrap();
        for name in ["a.jpg", "b.png", "c.txt"] {
            std::fs::write(path.join(name), format!("{dir}/{name}")).unwrap();
        }
    }
    d.bucket_dir("thumbs");
    let grants = json!([{"bucket": "photos", "prefix": "in/", "access": "read"}, {"bucket": "thumbs", "prefix": "", "access": "write"}]);
    created(d, "/v1/roles", json!({"name": "thumbnailer", "grants": grants})).await;
    created(d, "/v1/tenants", json!({"name": "acme", "roles": ["thumbnailer"]})).await;
    let token = created(d, "/v1/tenants/acme/tokens", json!({"label": "ci"})).await;
    created(d, "/v1/styles", json!({"name": "thumb", "style": "image/resize,w_256/format,webp"})).await;
    let (status, p) =
        d.upload_plugin("/v1/plugins?name=echo&version=0.1.0", std::fs::read(kiln_test_plugins::ECHO).unwrap()).await;
    assert_eq!(status, 201, "{p}");
    let job = |prefix: &str, style: &str, start: bool| json!({"input": {"bucket": "photos", "prefix": prefix}, "style": style, "output": {"bucket": "thumbs", "template": "{key}"}, "tags": {"seed": "1"}, "start": start});
    let copied = created(d, "/v1/jobs", job("in/", "copy", true)).await;
    assert_eq!(copied["id"], 1);
    // Not images: every task fails, for retry-failed and the error filter.
    let failing = created(d, "/v1/jobs", job("in/2024/", "thumb", true)).await;
    for j in [copied, failing] {
        d.wait_job(j["id"].as_u64().unwrap(), Duration::from_secs(60)).await;
    }
    created(d, "/v1/jobs", job("other/", "echo", false)).await;
    token["token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn the_api_conforms_to_its_openapi_description() {
    let Some(schemathesis) = schemathesis() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&dir.path().join("data"), Some("workers = 2\n"));
    let tenant_token = seed(&d).await;
    run_schemathesis(&schemathesis, &d, &dir, "a tenant", &tenant_token);
    // The tenant's token worked throughout (its run cannot delete it).
    assert_eq!(d.as_token(&tenant_token).get("/v1/whoami").await.0, 200);
    run_schemathesis(&schemathesis, &d, &dir, "the admin", ADMIN_TOKEN);
    // Still up, and still answering after the fuzzing.
    let (status, _) = d.get("/v1/whoami").await;
    assert_eq!(status, 200);
}

fn run_schemathesis(schemathesis: &str, d: &Daemon, dir: &tempfile::TempDir, who: &str, token: &str) {
    let examples = std::env::var("KILN_SCHEMATHESIS_EXAMPLES").ok().and_then(|n| n.parse().ok()).unwrap_or(EXAMPLES);
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemathesis/schemathesis.toml");
    let args = [
        "--config-file".to_string(),
        config.display().to_string(),
        "--no-color".into(),
        "run".into(),
        format!("{}/openapi.json", d.url),
        "--checks".into(),
        "all".into(),
        "--header".into(),
        format!("Authorization: Bearer {token}"),
        "--max-examples".into(),
        examples.to_string(),
        // One worker: with two, hypothesis parses schemathesis' sources with
        // `ast.parse` from two threads at once, which CPython 3.11.7 can fail
        // with "AST constructor recursion depth mismatch" (fixed in 3.11.8).
        "--workers".into(),
        "1".into(),
        "--request-timeout".into(),
        "30".into(),
        // No `.hypothesis/` left in the working directory.
        "--generation-database".into(),
        "none".into(),
    ];
    // More, for a run by hand: `KILN_SCHEMATHESIS_ARGS='--seed 1'`.
    let extra = std::env::var("KILN_SCHEMATHESIS_ARGS").unwrap_or_default();
    let args: Vec<String> = args.into_iter().chain(extra.split_whitespace().map(String::from)).collect();
    eprintln!("running as {who}: {schemathesis} {}", args.join(" ").replace(token, "$TOKEN"));
    let started = Instant::now();
    // Output to files and a deadline: a request that never ends (a stream
    // that sends keep-alives defeats `--request-timeout`) fails this test
    // with what schemathesis printed, instead of hanging the suite.
    let (out_path, err_path) = (dir.path().join("schemathesis.out"), dir.path().join("schemathesis.err"));
    let mut child = Command::new(schemathesis)
        .args(&args)
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("running schemathesis");
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > RUN_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    eprintln!("schemathesis took {:.1?}", started.elapsed());
    let Some(status) = status else {
        panic!(
            "schemathesis as {who} did not finish within {RUN_DEADLINE:?} (a request that never ends?):\n{stdout}\n{stderr}"
        );
    };
    assert!(status.success(), "schemathesis found problems as {who} ({status}):\n{stdout}\n{stderr}");
    eprintln!("{}", stdout.lines().rev().take(12).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n"));
}
