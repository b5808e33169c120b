//! S3 buckets on a real S3-compatible server: moto's server, from PyPI
//! (`scripts/test` installs it). The test starts it on a free loopback port and
//! runs the common cloud scenario.

mod common;

use common::emulator::{self, Emulator};

#[tokio::test]
async fn job_between_s3_buckets_on_moto() {
    let Some(moto) = emulator::find("moto_server", "`pip install 'moto[s3,server]'`") else { return };
    let emu = Emulator::start(&moto, &["-H", "127.0.0.1", "-p", "{port}"]);
    let http = reqwest::Client::new();
    for bucket in ["photos", "results"] {
        let r = http.put(format!("{}/{bucket}", emu.url)).send().await.unwrap();
        assert!(r.status().is_success(), "creating bucket {bucket}: {}", r.status());
    }
    let bucket = |name: &str, bucket: &str| {
        format!(
            r#"
[buckets.{name}]
kind = "s3"
bucket = "{bucket}"
endpoint = "{url}"
access_key_id = "test"
secret_access_key = "test"
path_style = true
allow_http = true
"#,
            url = emu.url
        )
    };
    let config = bucket("cin", "photos") + &bucket("cout", "results");
    common::cloud::job_scenario("s3", &config).await;
}
