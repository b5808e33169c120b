//! A job between S3 buckets on a real S3-compatible server: moto's server,
//! from PyPI (`scripts/test` installs it). The test starts it on a free port.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Daemon, assert_counters_add_up};
use serde_json::json;

struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn start_moto() -> (Moto, String) {
    let port = free_port();
    let child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server is needed: `pip install 'moto[s3,server]'` (scripts/test installs it)");
    let moto = Moto(child);
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if http.get(format!("{url}/moto-api/")).send().await.is_ok() {
            return (moto, url);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("moto_server did not start on {url}");
}

#[tokio::test]
async fn job_between_s3_buckets() {
    let (_moto, endpoint) = start_moto().await;
    let http = reqwest::Client::new();
    for bucket in ["photos", "results"] {
        let r = http.put(format!("{endpoint}/{bucket}")).send().await.unwrap();
        assert!(r.status().is_success(), "creating bucket {bucket}: {}", r.status());
    }
    for i in 0..25 {
        let key = if i % 5 == 0 { format!("2024/skip-{i}.md") } else { format!("2024/img-{i:02}.txt") };
        let r = http.put(format!("{endpoint}/photos/{key}")).body(format!("s3 object {i}")).send().await.unwrap();
        assert!(r.status().is_success());
    }
    let config = format!(
        r#"
[buckets.s3in]
kind = "s3"
bucket = "photos"
endpoint = "{endpoint}"
access_key_id = "test"
secret_access_key = "test"
path_style = true
allow_http = true

[buckets.s3out]
kind = "s3"
bucket = "results"
endpoint = "{endpoint}"
access_key_id = "test"
secret_access_key = "test"
path_style = true
allow_http = true
"#
    );
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&dir.path().join("data"), Some(&config));
    let (_, buckets) = d.get("/v1/buckets").await;
    assert!(buckets.as_array().unwrap().iter().any(|b| b["name"] == "s3in" && b["kind"] == "s3"), "{buckets}");

    let (status, job) = d
        .post("/v1/jobs", json!({
            "input": {"bucket": "s3in", "prefix": "2024/", "suffixes": ".txt"},
            "style": "copy",
            "output": {"bucket": "s3out", "template": "copies/{barename}-{jobid}.{autoext}"}
        }))
        .await;
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_u64().unwrap();
    let job = d.wait_job(id, Duration::from_secs(120)).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["counters"]["total"], 20);
    assert_counters_add_up(&job);
    // Read the outputs back with credentials, as a user would.
    use object_store::ObjectStoreExt;
    let results = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name("results")
        .with_endpoint(&endpoint)
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .with_allow_http(true)
        .build()
        .unwrap();
    for i in (0..25).filter(|i| i % 5 != 0) {
        let path = object_store::path::Path::from(format!("copies/img-{i:02}-{id}.txt"));
        let bytes = results.get(&path).await.unwrap_or_else(|e| panic!("output {i}: {e}")).bytes().await.unwrap();
        assert_eq!(bytes, format!("s3 object {i}").as_bytes());
    }
    // A missing key on S3 fails its task with `not-found`.
    let (_, job) = d
        .post("/v1/jobs", json!({
            "input": {"bucket": "s3in", "keys": ["2024/img-01.txt", "2024/gone.txt"]},
            "style": "copy", "output": {"bucket": "s3out", "template": "k/{key}"}
        }))
        .await;
    let job = d.wait_job(job["id"].as_u64().unwrap(), Duration::from_secs(60)).await;
    assert_eq!(job["state"], "failed");
    assert_eq!(job["counters"]["failed"], 1);
}
