//! Contract 0.2.0 beside 0.1.0: both run in one runtime and one daemon;
//! `read-at` reads anywhere within the task's read cap; output options are
//! checked; task results are JSON, capped, stored and shown; `info` describes
//! actions and variables; `validate` names the extension a style writes.

use crate::common;

use std::time::Duration;

use common::{Daemon, MemoryTarget};
use kiln::runtime::{Contract, Limits, Plugin, Runtime, RuntimeConfig, TaskError, TaskErrorKind, TaskOutcome};
use kiln_test_plugins as plugins;
use serde_json::json;

fn limits() -> Limits {
    Limits { deadline: Duration::from_secs(10), max_memory: 64 << 20, ..Limits::default() }
}

fn runtime() -> Runtime {
    Runtime::new(RuntimeConfig { limits: limits(), max_instances: 8, ..RuntimeConfig::default() }).unwrap()
}

async fn load(rt: &Runtime, path: &str) -> Plugin {
    common::load_plugin(rt, path).await
}

async fn run(
    rt: &Runtime,
    plugin: &Plugin,
    params: &str,
    input: &[u8],
) -> (Result<TaskOutcome, TaskError>, MemoryTarget) {
    common::run_in_memory(rt, plugin, params, "k.txt", input, limits()).await
}

#[tokio::test]
async fn both_contracts_run_side_by_side_in_one_runtime() {
    let rt = runtime();
    // The SDK builds 0.2.0 components now (ECHO included): LEGACY is a 0.1.0 one built from source.
    let (old, new) = (load(&rt, plugins::LEGACY).await, load(&rt, plugins::SEEK).await);
    assert_eq!((old.info.contract, new.info.contract), (Contract::V1, Contract::V2));
    let (outcome, target) = run(&rt, &old, "", b"one point oh").await;
    outcome.unwrap();
    assert_eq!(target.0.lock().unwrap().committed[0].2, b"one point oh");
    let (outcome, target) = run(&rt, &new, "tail,n_5", b"zero point two").await;
    let outcome = outcome.unwrap();
    assert_eq!(target.0.lock().unwrap().committed[0], (1, Some("txt".into()), b"t two".to_vec()));
    assert_eq!(outcome.bytes_in, 5, "read-at counts what it reads, and only that");
    assert_eq!(outcome.result, None);
}

#[tokio::test]
async fn read_at_reads_anywhere_and_stops_at_the_read_cap() {
    let rt = runtime();
    let seek = load(&rt, plugins::SEEK).await;
    let (outcome, _) = run(&rt, &seek, "past", b"0123456789").await;
    assert_eq!(outcome.unwrap().result, Some(json!({"past": 0, "at_end": 0})), "nothing past the end");
    // 4 x 2 MiB + 1 MiB may be read in all; `greedy` reads the first MiB forever.
    let big = vec![7u8; 2 << 20];
    let (outcome, target) = run(&rt, &seek, "greedy", &big).await;
    let err = outcome.unwrap_err();
    assert_eq!(err.kind(), TaskErrorKind::Limit, "{err}");
    assert!(err.to_string().contains("limits.read_factor") && err.to_string().contains("9437184"), "{err}");
    assert!(target.0.lock().unwrap().committed.is_empty());
}

#[tokio::test]
async fn results_are_one_json_value_of_at_most_64_kib() {
    let rt = runtime();
    let seek = load(&rt, plugins::SEEK).await;
    let (outcome, target) = run(&rt, &seek, "stats", b"a\nb\nc\n").await;
    assert_eq!(outcome.unwrap().result, Some(json!({"bytes": 6, "lines": 3})));
    assert!(target.0.lock().unwrap().committed.is_empty(), "a result needs no output");
    let err = run(&rt, &seek, "badresult", b"x").await.0.unwrap_err();
    assert_eq!(err.kind(), TaskErrorKind::Failed, "{err}");
    assert!(err.to_string().contains("not JSON"), "{err}");
    let err = run(&rt, &seek, "bigresult", b"x").await.0.unwrap_err();
    assert_eq!(err.kind(), TaskErrorKind::Limit, "{err}");
    assert!(err.to_string().contains("at most 65536 bytes"), "{err}");
}

#[tokio::test]
async fn output_variables_must_be_declared_and_info_describes_the_plugin() {
    let rt = runtime();
    let seek = load(&rt, plugins::SEEK).await;
    assert_eq!(seek.info.variables, vec!["part"]);
    let tail = &seek.info.actions[0];
    assert_eq!((tail.name.as_str(), tail.params[0].name.as_str()), ("tail", "n"));
    assert_eq!((tail.params[0].kind.as_str(), tail.params[0].range.as_deref()), ("int", Some("1..=1048576")));
    let err = run(&rt, &seek, "undeclared", b"x").await.0.unwrap_err();
    assert!(err.to_string().contains("output variable `nope` is not one the plugin declares"), "{err}");
    let (outcome, target) = run(&rt, &seek, "parts,n_3", b"x").await;
    assert_eq!(outcome.unwrap().outputs.len(), 3);
    assert_eq!(target.0.lock().unwrap().committed[2].2, b"part 3\n");
    // `validate` names the extension a style writes, or none when it depends on the object.
    assert_eq!(rt.validate_style(&seek, "tail,n_3").await.unwrap(), Ok(Some("txt".into())));
    assert_eq!(rt.validate_style(&seek, "stats").await.unwrap(), Ok(None));
    assert!(rt.validate_style(&seek, "nope").await.unwrap().unwrap_err().contains("unknown action `nope`"));
}

/// A daemon with the 0.2.0 plugin uploaded and the bundled plugins: jobs of
/// both, `read-at` on a large local file (read with `pread`) and a small one
/// (read whole), results in the task, the report and `kiln task get`.
#[tokio::test]
async fn a_daemon_runs_both_contracts_and_keeps_results() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let input = data.join("buckets/in");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::create_dir_all(data.join("buckets/out")).unwrap();
    let large: Vec<u8> = (0..(3u32 << 20)).map(|i| b'a' + (i % 26) as u8).collect();
    std::fs::write(input.join("large.txt"), &large).unwrap();
    std::fs::write(input.join("small.txt"), "one\ntwo\nthree\n").unwrap();
    let d = Daemon::start(&data, Some("[buckets.mem]\nkind = \"memory\"\n"));
    let (status, plugin) = d.upload_plugin("/v1/plugins", std::fs::read(plugins::SEEK).unwrap()).await;
    assert_eq!(status, 201, "{plugin}");
    assert_eq!(plugin["info"]["contract"], "0.2.0", "{plugin}");
    assert_eq!(plugin["info"]["actions"][0]["name"], "tail", "{plugin}");
    let described = d.cli(&["style", "describe", "seek"]);
    let described = String::from_utf8_lossy(&described.stdout);
    assert!(described.starts_with("seek 0.2.0 (contract 0.2.0)"), "{described}");
    assert!(described.contains("  n_  How many  (int, default 16, 1..=1048576)"), "{described}");
    assert!(described.contains("output variables for templates: {part}"), "{described}");

    // The dry run takes `{autoext}` from `validate`.
    let body = |style: &str, template: &str| json!({"input": {"bucket": "in"}, "style": style, "output": {"bucket": "out", "template": template}});
    let mut dry = body("seek/tail,n_4", "t/{barename}.{autoext}");
    dry["dry_run"] = json!(true);
    let (_, dry) = d.post("/v1/jobs", dry).await;
    assert_eq!(dry["autoext"], "txt", "{dry}");
    assert_eq!(dry["autoext_probed"], false, "{dry}");

    let (status, job) = d.post("/v1/jobs", body("seek/tail,n_4", "t/{barename}.{autoext}")).await;
    assert_eq!(status, 201, "{job}");
    let job = d.wait_job(job["id"].as_u64().unwrap(), Duration::from_secs(120)).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(std::fs::read(data.join("buckets/out/t/large.txt")).unwrap(), &large[large.len() - 4..]);
    assert_eq!(std::fs::read_to_string(data.join("buckets/out/t/small.txt")).unwrap(), "ree\n");
    assert_eq!(job["counters"]["bytes_in"], 8, "only the bytes read-at asked for: {job}");

    let (_, job) = d.post("/v1/jobs", body("seek/stats", "s/{key}")).await;
    let id = job["id"].as_u64().unwrap();
    let job = d.wait_job(id, Duration::from_secs(120)).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let tasks = d.all_tasks(id, "").await;
    let small = tasks.iter().find(|t| t["source_key"] == "small.txt").unwrap();
    assert_eq!(small["result"], json!({"bytes": 14, "lines": 3}), "{small}");
    assert_eq!(small["outputs"], json!([]), "{small}");
    let report = d.http.get(format!("{}/v1/jobs/{id}/report?format=jsonl", d.url)).bearer_auth(&d.token).send().await;
    let report = report.unwrap().text().await.unwrap();
    assert!(report.lines().any(|l| l.contains(r#""result":{"bytes":14,"lines":3}"#)), "{report}");
    let shown = d.cli(&["task", "get", &id.to_string(), &small["seq"].to_string()]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains(r#"result    {"bytes":14,"lines":3}"#), "{shown}");

    // A memory bucket: `read-at` is a ranged get of object_store's in-memory store.
    let mut to_memory = body("copy", "big/{key}");
    to_memory["input"]["keys"] = json!(["large.txt"]);
    to_memory["output"]["bucket"] = json!("mem");
    let (_, job) = d.post("/v1/jobs", to_memory).await;
    let job = d.wait_job(job["id"].as_u64().unwrap(), Duration::from_secs(120)).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let from_memory = json!({"input": {"bucket": "mem", "keys": ["big/large.txt"]}, "style": "seek/tail,n_6",
        "output": {"bucket": "out", "template": "m/{barename}.{autoext}"}});
    let (_, job) = d.post("/v1/jobs", from_memory).await;
    let job = d.wait_job(job["id"].as_u64().unwrap(), Duration::from_secs(120)).await;
    assert_eq!((job["state"].as_str(), job["counters"]["bytes_in"].as_u64()), (Some("succeeded"), Some(6)), "{job}");
    assert_eq!(std::fs::read(data.join("buckets/out/m/large.txt")).unwrap(), &large[large.len() - 6..]);

    // Output variables: the template may use those the plugin declares, and
    // each output's key takes the value the plugin set for it.
    let mut parts = body("seek/parts,n_3", "p/{barename}-{part}.{autoext}");
    parts["input"]["keys"] = json!(["small.txt"]);
    let (status, job) = d.post("/v1/jobs", parts).await;
    assert_eq!(status, 201, "{job}");
    let job = d.wait_job(job["id"].as_u64().unwrap(), Duration::from_secs(120)).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    for i in 1..=3 {
        let got = std::fs::read_to_string(data.join(format!("buckets/out/p/small-{i}.txt"))).unwrap();
        assert_eq!(got, format!("part {i}\n"));
    }
    let (status, problem) = d.post("/v1/jobs", body("seek/parts", "p/{barename}-{page}.txt")).await;
    assert_eq!((status, problem["field"].as_str()), (422, Some("output.template")), "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("it declares `{part}`"), "{problem}");
    let (status, problem) = d.post("/v1/jobs", body("copy", "p/{barename}-{part}.txt")).await;
    assert_eq!(status, 422, "`copy` declares no output variable: {problem}");

    // A 0.1.0 component built from source, uploaded to the same daemon, runs as ever.
    let (status, legacy) = d.upload_plugin("/v1/plugins", std::fs::read(plugins::LEGACY).unwrap()).await;
    assert_eq!(status, 201, "{legacy}");
    assert_eq!(legacy["info"]["contract"], "0.1.0", "{legacy}");
    let (_, job) = d.post("/v1/jobs", body("legacy/upper", "u/{barename}.{autoext}")).await;
    let job = d.wait_job(job["id"].as_u64().unwrap(), Duration::from_secs(120)).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(std::fs::read_to_string(data.join("buckets/out/u/small.txt")).unwrap(), "ONE\nTWO\nTHREE\n");

    // A bundled plugin in the same daemon, in the same way as ever (built with
    // the SDK, so 0.2.0 too now; 0.1.0 is proved with LEGACY above).
    let (_, job) = d.post("/v1/jobs", body("copy", "c/{key}")).await;
    let job = d.wait_job(job["id"].as_u64().unwrap(), Duration::from_secs(120)).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(std::fs::read(data.join("buckets/out/c/large.txt")).unwrap(), large);
}
