//! Selection beyond a prefix, end to end over real HTTP: manifests (CSV and
//! JSON Lines, bad lines, resuming), filters on size, modification time and
//! a glob over the key, and dry runs (API and CLI).

use crate::common;

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
    write(
        &d,
        "lists",
        "batch1.csv",
        "bucket,key\r\nin,p/f1.txt\r\nin,\"odd, \"\"name\"\".txt\"\r\n\r\nin,p/f5.txt\r\nin,p/f1.txt\r\n",
    );
    let id = create(
        &d,
        json!({
            "input": {"bucket": "in", "manifest": {"bucket": "lists", "key": "batch1.csv"}},
            "style": "copy", "output": {"bucket": "out", "template": "m/{key}"}
        }),
    )
    .await;
    let job = d.wait_job(id, LONG).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_counters_add_up(&job);
    assert_eq!(
        sources(&d.all_tasks(id, "").await),
        vec!["odd, \"name\".txt", "p/f1.txt", "p/f5.txt"],
        "a key listed twice is one task"
    );
    assert_eq!(std::fs::read_to_string(d.data_dir.join("buckets/out/m/odd, \"name\".txt")).unwrap(), "quoted");
    assert_eq!(job["planning"]["done"], true);

    // JSON Lines, in the input bucket, format from the extension; a missing key fails its task.
    write(
        &d,
        "in",
        "lists/l.jsonl",
        "{\"key\": \"p/f2.txt\"}\n{\"key\": \"p/f3.txt\", \"size\": 7}\n{\"key\": \"p/nope.txt\"}\n",
    );
    let id = create(
        &d,
        json!({
            "input": {"bucket": "in", "manifest": {"key": "lists/l.jsonl"}},
            "style": "copy", "output": {"bucket": "in", "template": "copies/{key}"}
        }),
    )
    .await;
    let job = d.wait_job(id, LONG).await;
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!((job["counters"]["succeeded"].as_u64(), job["counters"]["failed"].as_u64()), (Some(2), Some(1)));
    assert!(d.data_dir.join("buckets/in/copies/p/f3.txt").exists());

    // One key per line, no header, format given; many pages (the planner reads 1000 lines a page).
    let many: String = (0..2500).map(|i| format!("p/f{}.txt\n", i % 8)).collect();
    write(&d, "lists", "many.txt", &many);
    let id = create(
        &d,
        json!({
            "input": {"bucket": "in", "manifest": {"bucket": "lists", "key": "many.txt", "format": "csv"}},
            "style": "copy", "output": {"bucket": "out", "template": "many/{key}"}
        }),
    )
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
    // A dry run reads the whole manifest and refuses it up front.
    let mut dry = body.clone();
    dry["dry_run"] = json!(true);
    let (status, problem) = d.post("/v1/jobs", dry).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["field"], "input.manifest");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("manifest `lists/bad.csv` line 3: bucket `other-bucket` is not the job's input bucket `in`"),
        "{problem}"
    );
    // The job itself fails at that line.
    let id = create(&d, body).await;
    let job = d.wait_job(id, LONG).await;
    assert_eq!(job["state"], "failed", "{job}");
    assert!(job["error"].as_str().unwrap().contains("manifest `lists/bad.csv` line 3"), "{job}");

    // In the input bucket, a listed key where outputs go is refused too.
    write(&d, "in", "l.csv", "a.txt\nout/b.txt\n");
    let (status, problem) = d
        .post("/v1/jobs", json!({"input": {"bucket": "in", "manifest": {"key": "l.csv"}}, "style": "copy", "output": {"bucket": "in", "template": "out/{key}"}, "dry_run": true}))
        .await;
    assert_eq!(status, 422, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("line 2: key `out/b.txt` is where this job writes its outputs"),
        "{problem}"
    );

    // Refused at creation, naming the field.
    let cases = [
        (json!({"bucket": "in", "manifest": {"key": "nope.csv"}}), "input.manifest.key", "cannot be read"),
        (json!({"bucket": "in", "manifest": {"key": "l.txt"}}), "input.manifest.format", "\"format\""),
        (
            json!({"bucket": "in", "manifest": {"key": "l.csv", "bucket": "nosuch"}}),
            "input.manifest.bucket",
            "unknown bucket",
        ),
        (json!({"bucket": "in", "prefix": "p/", "manifest": {"key": "l.csv"}}), "input.manifest", "input.prefix"),
        (json!({"bucket": "in", "keys": ["a.txt"], "manifest": {"key": "l.csv"}}), "input.manifest", "input.keys"),
        (json!({"bucket": "in", "min_size": 1, "manifest": {"key": "l.csv"}}), "input.manifest", "input.min_size"),
        (
            json!({"bucket": "in", "manifest": {"key": "l.csv", "format": "xml"}}),
            "input.manifest.format",
            "unknown variant",
        ),
    ];
    for (input, field, needle) in cases {
        let (status, problem) = d
            .post(
                "/v1/jobs",
                json!({"input": input, "style": "copy", "output": {"bucket": "out", "template": "x/{key}"}}),
            )
            .await;
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
            let id = create(
                d,
                json!({"input": input, "style": "copy", "output": {"bucket": "out", "template": "f/{jobid}/{key}"}}),
            )
            .await;
            let job = d.wait_job(id, LONG).await;
            assert_eq!(job["state"], "succeeded", "{job}");
            sources(&d.all_tasks(id, "").await)
        }
    };
    assert_eq!(
        run(json!({"bucket": "in", "glob": "photos/**/IMG_*.{jpg,png}"})).await,
        vec!["photos/2023/IMG_5.jpg", "photos/2024/IMG_1.jpg", "photos/2024/a/IMG_2.png"]
    );
    assert_eq!(
        run(json!({"bucket": "in", "glob": "photos/*/IMG_*"})).await,
        vec!["photos/2023/IMG_5.jpg", "photos/2024/IMG_1.jpg", "photos/2024/IMG_3.gif"]
    );
    assert_eq!(
        run(json!({"bucket": "in", "prefix": "photos/", "min_size": 50, "max_size": 100})).await,
        vec!["photos/2024/IMG_3.gif", "photos/2024/a/IMG_2.png", "photos/DSC_4.jpg"]
    );
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
        (
            json!({"bucket": "in", "modified_after": "2024-02-01T00:00:00Z", "modified_before": "2024-01-01T00:00:00Z"}),
            "input.modified_after",
            "not before",
        ),
        (json!({"bucket": "in", "modified_before": "last tuesday"}), "input.modified_before", "RFC 3339"),
        (json!({"bucket": "in", "keys": ["docs/IMG_6.jpg"], "glob": "*"}), "input.glob", "input.keys"),
    ];
    for (input, field, needle) in cases {
        let (status, problem) = d
            .post(
                "/v1/jobs",
                json!({"input": input, "style": "copy", "output": {"bucket": "out", "template": "x/{key}"}}),
            )
            .await;
        assert_eq!(status, 422, "{input} -> {problem}");
        assert_eq!(problem["field"], field, "{input} -> {problem}");
        assert!(problem["detail"].as_str().unwrap().contains(needle), "{input} -> {problem}");
    }
}

#[tokio::test]
async fn dry_run_counts_samples_and_finds_collisions_and_problems() {
    let files = [("d0/a.txt", "aaaa"), ("d0/b.md", "bb"), ("d1/a.txt", "cc"), ("d1/c.txt", "d")];
    let (_dir, d) = daemon(&files);
    let body = json!({
        "input": {"bucket": "in"}, "style": "echo", "output": {"bucket": "out", "template": "flat/{barename}.{autoext}"}, "dry_run": true
    });
    let (status, dry) = d.post("/v1/jobs", body).await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["dry_run"], true);
    assert_eq!((dry["objects"].as_u64(), dry["bytes"].as_u64()), (Some(4), Some(9)), "{dry}");
    assert_eq!(dry["autoext"], "txt", "echo's validate says it writes txt");
    let sample: Vec<(String, String)> = dry["sample"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["source"].as_str().unwrap().into(), s["output"].as_str().unwrap().into()))
        .collect();
    assert_eq!(sample[1], ("d0/b.md".to_string(), "flat/b.txt".to_string()));
    assert_eq!(dry["collision_count"], 1);
    assert_eq!(dry["collisions"], json!([{"output": "flat/a.txt", "sources": ["d0/a.txt", "d1/a.txt"]}]));
    assert_eq!(dry["truncated"], false);
    // Nothing was stored or written.
    let (_, page) = d.get("/v1/jobs").await;
    assert!(page["items"].as_array().unwrap().is_empty(), "{page}");
    assert!(std::fs::read_dir(d.data_dir.join("buckets/out")).unwrap().next().is_none());

    // A plugin with several output formats: its `validate` says which one the style writes.
    let (_, dry) = d.post("/v1/jobs", json!({"input": {"bucket": "in", "prefix": "d1/"}, "style": "compress/zstd,l_3", "output": {"bucket": "out", "template": "z/{barename}.{autoext}"}, "dry_run": true})).await;
    assert_eq!((dry["autoext"].as_str(), dry["autoext_probed"].as_bool()), (Some("zst"), Some(false)), "{dry}");
    assert_eq!(dry["sample"][0]["output"], "z/a.zst", "{dry}");
    assert!(std::fs::read_dir(d.data_dir.join("buckets/out")).unwrap().next().is_none());
    let (_, page) = d.get("/v1/jobs").await;
    assert!(page["items"].as_array().unwrap().is_empty(), "{page}");

    // A style whose answer is a result: the dry run runs it once on the first
    // object and says that it writes no output.
    let (_, dry) = d.post("/v1/jobs", json!({"input": {"bucket": "in", "prefix": "d1/"}, "style": "checksum/sha256", "output": {"bucket": "out", "template": "s/{barename}.{autoext}"}, "dry_run": true})).await;
    assert_eq!((dry["no_output"].as_bool(), dry["autoext_probed"].as_bool()), (Some(true), Some(true)), "{dry}");
    assert!(std::fs::read_dir(d.data_dir.join("buckets/out")).unwrap().next().is_none());

    // 0.1.0, several declared formats: the probe learns which one the style writes.
    let (status, _) = d.upload_plugin("/v1/plugins", std::fs::read(kiln_test_plugins::LEGACY).unwrap()).await;
    assert_eq!(status, 201);
    let (_, dry) = d.post("/v1/jobs", json!({"input": {"bucket": "in", "prefix": "d1/"}, "style": "legacy/upper", "output": {"bucket": "out", "template": "u/{barename}.{autoext}"}, "dry_run": true})).await;
    assert_eq!((dry["autoext"].as_str(), dry["autoext_probed"].as_bool()), (Some("txt"), Some(true)), "{dry}");

    // Without a declared format, `{autoext}` is the source's extension.
    let (_, dry) = d.post("/v1/jobs", json!({"input": {"bucket": "in", "prefix": "d0/"}, "style": "copy", "output": {"bucket": "out", "template": "c/{barename}.{autoext}"}, "dry_run": true})).await;
    assert_eq!(dry["autoext"], Value::Null);
    assert_eq!(dry["sample"][1]["output"], "c/b.md");

    // Explicit keys are looked up: a missing one is reported, not counted.
    let (_, dry) = d.post("/v1/jobs", json!({"input": {"bucket": "in", "keys": ["d1/c.txt", "gone.txt"]}, "style": "copy", "output": {"bucket": "out", "template": "k/{key}"}, "dry_run": true})).await;
    assert_eq!(
        (dry["objects"].as_u64(), dry["bytes"].as_u64(), dry["missing_count"].as_u64()),
        (Some(1), Some(1), Some(1)),
        "{dry}"
    );
    assert_eq!(dry["missing"][0]["source"], "gone.txt");

    // A rendered key that breaks a path rule (over 1024 bytes) is reported.
    let long = format!("{}/x.txt", vec!["s".repeat(200); 5].join("/"));
    write(&d, "in", &long, "long");
    let (_, dry) = d.post("/v1/jobs", json!({"input": {"bucket": "in", "prefix": "sss"}, "style": "copy", "output": {"bucket": "out", "template": "a-longer-folder-name/{key}"}, "dry_run": true})).await;
    assert_eq!(dry["path_rule_violation_count"], 1, "{dry}");
    assert!(dry["path_rule_violations"][0]["error"].as_str().unwrap().contains("at most 1024 bytes"), "{dry}");

    // The usual creation checks come first, with the same errors.
    let (status, problem) = d.post("/v1/jobs", json!({"input": {"bucket": "in"}, "style": "copy", "output": {"bucket": "out", "template": "x/"}, "dry_run": true})).await;
    assert_eq!((status, problem["field"].as_str()), (422, Some("output.template")), "{problem}");
    let (status, problem) = d.post("/v1/jobs", json!({"input": {"bucket": "in"}, "style": "copy", "output": {"bucket": "out", "template": "x/{key}"}, "dry_run": "yes"})).await;
    assert_eq!((status, problem["field"].as_str()), (422, Some("dry_run")), "{problem}");
}

#[tokio::test]
async fn dry_run_reports_keys_outside_the_role_and_works_from_the_cli() {
    let files = [("t/a.txt", "a"), ("t/b.txt", "b"), ("t/deep/c.txt", "c")];
    let (_dir, d) = daemon(&files);
    let (status, r) = d
        .post(
            "/v1/roles",
            json!({"name": "r", "grants": [
                {"bucket": "in", "prefix": "t/", "access": "read"},
                {"bucket": "out", "prefix": "o/a", "access": "write"}
            ]}),
        )
        .await;
    assert!(status == 200 || status == 201, "{r}");
    let (status, t) = d.post("/v1/tenants", json!({"name": "acme", "roles": ["r"]})).await;
    assert!(status == 200 || status == 201, "{t}");
    let (_, tok) = d.post("/v1/tenants/acme/tokens", json!({"label": "x"})).await;
    let acme = d.as_token(tok["token"].as_str().unwrap());
    let (status, dry) = acme.post("/v1/jobs", json!({"input": {"bucket": "in", "prefix": "t/"}, "style": "copy", "output": {"bucket": "out", "template": "o/{basename}"}, "dry_run": true})).await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["objects"], 3);
    assert_eq!(dry["outside_grants_count"], 2, "{dry}");
    let outside: Vec<&str> =
        dry["outside_grants"].as_array().unwrap().iter().map(|p| p["key"].as_str().unwrap()).collect();
    assert_eq!(outside, vec!["o/b.txt", "o/c.txt"]);
    assert_eq!(dry["outside_grants"][0]["access"], "write");
    assert_eq!(dry["sample"], json!([{"source": "t/a.txt", "output": "o/a.txt"}]));
    // Refused as a real create would be.
    let (status, p) = acme.post("/v1/jobs", json!({"input": {"bucket": "in", "prefix": "u/"}, "style": "copy", "output": {"bucket": "out", "template": "o/{basename}"}, "dry_run": true})).await;
    assert_eq!((status, p["field"].as_str()), (403, Some("input.prefix")), "{p}");

    let o = d.cli(&[
        "job",
        "create",
        "--bucket",
        "in",
        "--glob",
        "t/*.txt",
        "--style",
        "copy",
        "--output-bucket",
        "out",
        "--output",
        "flat/{basename}",
        "--dry-run",
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout} {}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("dry run: 2 objects, 2 B (2 bytes)"), "{stdout}");
    assert!(stdout.contains("t/b.txt -> flat/b.txt"), "{stdout}");
    assert!(stdout.contains("collisions: 0"), "{stdout}");
    let o = d.cli(&[
        "job",
        "create",
        "--bucket",
        "in",
        "--prefix",
        "t/",
        "--style",
        "copy",
        "--output-bucket",
        "out",
        "--output",
        "flat/{basename}",
        "--dry-run",
        "--json",
        "--min-size",
        "1",
    ]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["objects"], 3);
    let (_, page) = d.get("/v1/jobs").await;
    assert!(page["items"].as_array().unwrap().is_empty(), "a dry run stores nothing");
}

#[tokio::test]
async fn manifest_planning_resumes_after_kill_9() {
    const N: usize = 6000;
    let (_dir, mut d) = daemon(&[]);
    // Keys that do not exist: only planning matters here.
    let manifest: String =
        std::iter::once("key\n".to_string()).chain((0..N).map(|i| format!("k/{i:05}.txt\n"))).collect();
    write(&d, "lists", "big.csv", &manifest);
    let id = create(
        &d,
        json!({
            "input": {"bucket": "in", "manifest": {"bucket": "lists", "key": "big.csv"}},
            "style": "echo/sleep,ms_1000", "output": {"bucket": "out", "template": "o/{key}"}, "concurrency": 1
        }),
    )
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
    // Its tasks fail at once (the keys do not exist), so the job may have
    // ended already: a cancel then answers 409 (not running).
    let (status, body) = d.post(&format!("/v1/jobs/{id}/cancel"), json!({})).await;
    assert!(status == 200 || status == 409, "{status} {body}");
}

/// In the bucket it reads, a job may write into a folder of its own (its
/// listing never selects it), or next to its sources when its suffix filter
/// can keep no output; what could loop is refused, in plain words.
#[tokio::test]
async fn outputs_beside_the_sources_are_accepted_when_they_provably_cannot_be_selected() {
    let files = [("a.txt", "a"), ("trip-1/b.txt", "b"), ("trip-1/c.txt", "c"), ("zz.txt", "z")];
    let (_dir, d) = daemon(&files);
    // The whole bucket, into `thumbs/` of the same bucket: `thumbs/` sorts
    // between the sources, and is never listed.
    let id = create(
        &d,
        json!({"input": {"bucket": "in", "suffixes": ".txt"}, "style": "echo", "output": {"bucket": "in", "template": "thumbs/{barename}.{autoext}"}}),
    )
    .await;
    let job = d.wait_job(id, LONG).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["counters"]["total"], 4, "no output was selected: {job}");
    assert_counters_add_up(&job);
    assert_eq!(std::fs::read_to_string(d.bucket_dir("in").join("thumbs/b.txt")).unwrap(), "b");
    // Run again: the outputs are still never selected.
    let again = create(
        &d,
        json!({"input": {"bucket": "in", "suffixes": ".txt"}, "style": "echo", "output": {"bucket": "in", "template": "thumbs/{barename}.{autoext}"}}),
    )
    .await;
    assert_eq!(d.wait_job(again, LONG).await["counters"]["total"], 4);

    // Beside the sources, with a fixed extension the suffix filter cannot keep.
    let id = create(
        &d,
        json!({"input": {"bucket": "in", "prefix": "trip-1/", "suffixes": ".txt"}, "style": "echo", "output": {"bucket": "in", "template": "{dirname}/{barename}-small.out"}}),
    )
    .await;
    let job = d.wait_job(id, LONG).await;
    assert_eq!((job["state"].as_str(), job["counters"]["total"].as_u64()), (Some("succeeded"), Some(2)), "{job}");
    assert_eq!(std::fs::read_to_string(d.bucket_dir("in").join("trip-1/c-small.out")).unwrap(), "c");

    // The same with `.{autoext}`: echo may write `txt`, so `b-small.txt` could be selected again.
    let (status, problem) = d
        .post(
            "/v1/jobs",
            json!({"input": {"bucket": "in", "prefix": "trip-1/", "suffixes": ".txt"}, "style": "echo", "output": {"bucket": "in", "template": "{dirname}/{barename}-small.{autoext}"}}),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["field"], "output.template");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("it starts with a variable, so its outputs can land anywhere, `trip-1/` included"),
        "{detail}"
    );
    assert!(!detail.contains("``"), "no empty quote: {detail}");
}

/// A tenant's dry run over a manifest never learns about keys outside its
/// grants: they are "outside grants" whether or not they exist (nothing is
/// looked up for them), and only readable objects are counted and sized.
#[tokio::test]
async fn a_dry_run_tells_nothing_about_keys_outside_the_grants() {
    let files = [("t/a.txt", "aaaa"), ("secret/s.txt", "another tenant's 30 secret bytes")];
    let (_dir, d) = daemon(&files);
    let grants = json!([{"bucket": "in", "prefix": "t/", "access": "read"}, {"bucket": "lists", "prefix": "", "access": "read"},
                        {"bucket": "out", "prefix": "", "access": "write"}]);
    assert!(matches!(d.post("/v1/roles", json!({"name": "r", "grants": grants})).await.0, 200 | 201));
    assert!(matches!(d.post("/v1/tenants", json!({"name": "acme", "roles": ["r"]})).await.0, 200 | 201));
    let (_, tok) = d.post("/v1/tenants/acme/tokens", json!({"label": "x"})).await;
    let acme = d.as_token(tok["token"].as_str().unwrap());
    write(&d, "lists", "probe.csv", "in,t/a.txt\nin,secret/s.txt\nin,secret/none.txt\n");
    let (status, dry) = acme
        .post(
            "/v1/jobs",
            json!({"input": {"bucket": "in", "manifest": {"bucket": "lists", "key": "probe.csv"}}, "style": "copy",
                   "output": {"bucket": "out", "template": "m/{key}"}, "dry_run": true, "role": "r"}),
        )
        .await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!((dry["objects"].as_u64(), dry["bytes"].as_u64()), (Some(1), Some(4)), "only t/a.txt: {dry}");
    assert_eq!(dry["missing_count"], 0, "nothing outside the grants is looked up: {dry}");
    let outside: Vec<&str> =
        dry["outside_grants"].as_array().unwrap().iter().map(|p| p["key"].as_str().unwrap()).collect();
    assert_eq!(outside, vec!["secret/s.txt", "secret/none.txt"], "an existing and a missing key look alike: {dry}");
}
