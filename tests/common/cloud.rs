//! One scenario, run against every cloud kind (S3, Azure, GCS) on its emulator:
//! a real `kiln serve` configured with two buckets of that kind, `cin` and
//! `cout`, and jobs created over HTTP.
//!
//! It checks that a prefix + suffix selection picks exactly the right keys
//! (listing in pages, resuming after a key), that outputs hold the right bytes
//! (a 9 MiB one goes through a multipart upload), that a compressing style's
//! outputs, read back from the bucket by a second job, decompress to the
//! sources, that a task failing after it wrote 20 MiB leaves no object, and
//! that a missing key fails its task.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::TryStreamExt;
use serde_json::json;

use super::emulator::{self, Emulator};
use super::{Daemon, assert_counters_add_up};

const LONG: Duration = Duration::from_secs(180);
/// The hostile plugin's `flood` writes until this limit traps it.
const MAX_OUTPUT: u64 = 20 << 20;

/// The objects the scenario uploads to `cin`, with their bytes.
fn fixtures() -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> =
        (0..20).map(|i| (format!("2024/img-{i:02}.txt"), format!("cloud object {i}").into_bytes())).collect();
    v.extend((0..5).map(|i| (format!("2024/skip-{i}.md"), b"not selected: suffix".to_vec())));
    v.push(("2024/sub/deep.txt".into(), b"below the prefix".to_vec()));
    v.push(("2023/old.txt".into(), b"not selected: prefix".to_vec()));
    v.push(("2024x/near.txt".into(), b"not selected: prefix is 2024/".to_vec()));
    // Larger than the 8 MiB upload buffer: the copy is a multipart upload.
    let big: Vec<u8> = (0..(9u32 << 20) + 12345).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    v.push(("2024/big.txt".into(), big));
    v
}

fn selected(key: &str) -> bool {
    key.starts_with("2024/") && key.ends_with(".txt")
}

async fn keys(bucket: &kiln::objects::Bucket, prefix: &str, after: Option<&str>) -> Vec<String> {
    bucket.list_from(prefix, after).map_ok(|m| m.key).try_collect().await.unwrap()
}

/// moto's S3 server (PyPI) on a free loopback port, with the scenario's
/// buckets `photos` and `results` created. `None`: moto is missing and the
/// test is skipped (see [`emulator::find`]).
pub async fn moto_with_buckets() -> Option<Emulator> {
    let moto = emulator::find("moto_server", "`pip install 'moto[s3,server]'`")?;
    let emu = Emulator::start(&moto, &["-H", "127.0.0.1", "-p", "{port}"]);
    let http = reqwest::Client::new();
    for bucket in ["photos", "results"] {
        let r = http.put(format!("{}/{bucket}", emu.url)).send().await.unwrap();
        assert!(r.status().is_success(), "creating bucket {bucket}: {}", r.status());
    }
    Some(emu)
}

/// The keys of the multipart uploads still open in `bucket` on the server at
/// `url` (`GET /{bucket}?uploads`, in S3's and GCS's XML APIs alike): an
/// aborted upload is not among them.
pub async fn open_uploads(url: &str, bucket: &str) -> Vec<String> {
    let r = reqwest::get(format!("{url}/{bucket}?uploads")).await.unwrap();
    assert!(r.status().is_success(), "listing multipart uploads of {bucket}: {}", r.status());
    let body = r.text().await.unwrap();
    let inner = |s: &str, tag: &str| {
        s.split_once(&format!("<{tag}>"))
            .and_then(|(_, r)| r.split_once(&format!("</{tag}>")))
            .map(|(v, _)| v.to_string())
    };
    body.split("<Upload>")
        .skip(1)
        .map(|u| inner(u, "Key").unwrap_or_else(|| panic!("an upload without a key: {body}")))
        .collect()
}

/// Create a job and wait for its end: its id and its final record.
async fn run_job(d: &Daemon, body: serde_json::Value) -> (u64, serde_json::Value) {
    let (status, job) = d.post("/v1/jobs", body).await;
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_u64().unwrap();
    (id, d.wait_job(id, LONG).await)
}

/// Run the scenario. `config` is the daemon's TOML with buckets `cin` and `cout` of `kind`.
pub async fn job_scenario(kind: &str, config: &str) {
    let config = format!("{config}\n[runtime.limits]\nmax_output = {MAX_OUTPUT}\n");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    // The same config, in process, to upload fixtures and read results through
    // Kiln's own bucket layer.
    let mut parsed: kiln::config::Config = toml::from_str(&config).unwrap();
    parsed.data_dir = dir.path().join("client");
    parsed.validate().unwrap();
    let buckets = kiln::objects::Buckets::new(&parsed).unwrap();
    let (cin, cout) = (buckets.get("cin").unwrap(), buckets.get("cout").unwrap());
    let fixtures = fixtures();
    for (key, bytes) in &fixtures {
        cin.put(key, bytes.clone().into()).await.unwrap_or_else(|e| panic!("uploading {key}: {e}"));
    }
    let all: Vec<String> = fixtures.iter().map(|(k, _)| k.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    assert_eq!(keys(&cin, "", None).await, all, "{kind}: a listing is in key order");
    let after: Vec<String> =
        all.iter().filter(|k| k.starts_with("2024/") && k.as_str() > "2024/img-10.txt").cloned().collect();
    assert_eq!(keys(&cin, "2024/", Some("2024/img-10.txt")).await, after, "{kind}: a listing resumes after a key");

    std::fs::create_dir_all(data.join("plugins")).unwrap();
    std::fs::copy(kiln_test_plugins::HOSTILE, data.join("plugins/hostile.wasm")).unwrap();
    std::fs::copy(kiln_test_plugins::SEEK, data.join("plugins/seek.wasm")).unwrap();
    let d = Daemon::start(&data, Some(&config));
    let (_, list) = d.get("/v1/buckets").await;
    assert!(list.as_array().unwrap().iter().any(|b| b["name"] == "cin" && b["kind"] == kind), "{list}");

    // Prefix + suffix: exactly the selected keys, each copied byte for byte.
    let (id, job) = run_job(
        &d,
        json!({
            "input": {"bucket": "cin", "prefix": "2024/", "suffixes": ".txt"},
            "style": "copy",
            "output": {"bucket": "cout", "template": "copies/{key}"}
        }),
    )
    .await;
    assert_eq!(job["state"], "succeeded", "{kind}: {job}");
    assert_counters_add_up(&job);
    let want: BTreeSet<String> = fixtures.iter().map(|(k, _)| k.clone()).filter(|k| selected(k)).collect();
    assert_eq!(want.len(), 22);
    let got: BTreeSet<String> =
        d.all_tasks(id, "").await.iter().map(|t| t["source_key"].as_str().unwrap().to_string()).collect();
    assert_eq!(got, want, "{kind}: the selection");
    for (key, bytes) in fixtures.iter().filter(|(k, _)| selected(k)) {
        let out =
            cout.get_bytes(&format!("copies/{key}")).await.unwrap_or_else(|e| panic!("{kind}: output of {key}: {e}"));
        assert!(out == bytes.as_slice(), "{kind}: output of {key} differs ({} vs {} bytes)", out.len(), bytes.len());
    }
    let written: BTreeSet<String> = keys(&cout, "copies/", None).await.into_iter().collect();
    assert_eq!(written, want.iter().map(|k| format!("copies/{k}")).collect(), "{kind}: outputs");

    // A compressing style over the same prefix, named by the plugin's
    // extension; a second job reads the outputs back and decompresses them.
    let (_, job) = run_job(
        &d,
        json!({
            "input": {"bucket": "cin", "prefix": "2024/", "suffixes": ".txt"},
            "style": "compress/gzip",
            "output": {"bucket": "cout", "template": "gz/{key}.{autoext}"}
        }),
    )
    .await;
    assert_eq!(job["state"], "succeeded", "{kind}: {job}");
    assert_counters_add_up(&job);
    let gz: BTreeSet<String> = keys(&cout, "gz/", None).await.into_iter().collect();
    assert_eq!(gz, want.iter().map(|k| format!("gz/{k}.gz")).collect(), "{kind}: gzip outputs");
    for key in &gz {
        let out = cout.get_bytes(key).await.unwrap();
        assert!(out.starts_with(&[0x1f, 0x8b]), "{kind}: {key} is not gzip");
    }
    let (_, job) = run_job(
        &d,
        json!({
            "input": {"bucket": "cout", "prefix": "gz/"},
            "style": "compress/decompress",
            "output": {"bucket": "cout", "template": "gunzip/{dirname}/{barename}"}
        }),
    )
    .await;
    assert_eq!(job["state"], "succeeded", "{kind}: {job}");
    assert_eq!(job["counters"]["succeeded"].as_u64(), Some(want.len() as u64), "{kind}: {job}");
    for (key, bytes) in fixtures.iter().filter(|(k, _)| selected(k)) {
        let out = cout
            .get_bytes(&format!("gunzip/gz/{key}"))
            .await
            .unwrap_or_else(|e| panic!("{kind}: gunzipped {key}: {e}"));
        assert!(
            out == bytes.as_slice(),
            "{kind}: {key} gzipped and back differs ({} vs {} bytes)",
            out.len(),
            bytes.len()
        );
    }

    // A task that fails after writing 20 MiB (parts already uploaded) leaves no object.
    let (id, job) = run_job(
        &d,
        json!({
            "input": {"bucket": "cin", "keys": ["2024/img-01.txt"]},
            "style": "hostile/flood",
            "output": {"bucket": "cout", "template": "failed/{barename}.bin"}
        }),
    )
    .await;
    assert_eq!(job["state"], "failed", "{kind}: {job}");
    let tasks = d.all_tasks(id, "").await;
    assert_eq!(tasks[0]["error"]["kind"], "limit", "{kind}: {}", tasks[0]);
    assert!(tasks[0]["error"]["message"].as_str().unwrap().contains("limits.max_output"), "{}", tasks[0]);
    assert!(keys(&cout, "failed/", None).await.is_empty(), "{kind}: a failed task left an object");
    assert!(cout.head("failed/img-01.bin").await.is_err());

    // A missing key fails its task with `not-found`; the others still run.
    let (id, job) = run_job(
        &d,
        json!({
            "input": {"bucket": "cin", "keys": ["2024/img-02.txt", "2024/gone.txt"]},
            "style": "copy", "output": {"bucket": "cout", "template": "k/{key}"}
        }),
    )
    .await;
    assert_eq!(job["state"], "failed", "{kind}: {job}");
    assert_eq!(
        (job["counters"]["failed"].as_u64(), job["counters"]["succeeded"].as_u64()),
        (Some(1), Some(1)),
        "{job}"
    );
    let failed = d.all_tasks(id, "&state=failed").await;
    assert_eq!(failed[0]["error"]["kind"], "not-found", "{}", failed[0]);
    assert_eq!(cout.get_bytes("k/2024/img-02.txt").await.unwrap(), b"cloud object 2".as_slice());

    // Contract 0.2.0's `read-at` is a ranged GET: the last 100 bytes of the
    // 9 MiB object, read without streaming the rest of it.
    let (id, job) = run_job(
        &d,
        json!({
            "input": {"bucket": "cin", "keys": ["2024/big.txt"]},
            "style": "seek/tail,n_100", "output": {"bucket": "cout", "template": "tail/{barename}.{autoext}"}
        }),
    )
    .await;
    assert_eq!(job["state"], "succeeded", "{kind}: {job}");
    let big = &fixtures.iter().find(|(k, _)| k == "2024/big.txt").unwrap().1;
    assert_eq!(cout.get_bytes("tail/big.txt").await.unwrap(), &big[big.len() - 100..], "{kind}: the tail");
    let task = &d.all_tasks(id, "").await[0];
    assert!(task["bytes_in"].as_u64().unwrap() < 1 << 20, "{kind}: read only what it asked for: {task}");
}
