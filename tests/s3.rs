//! S3 buckets on a real S3-compatible server: moto's server, from PyPI
//! (`scripts/test` installs it). The test starts it on a free loopback port and
//! runs the common cloud scenario.

mod common;

#[tokio::test]
async fn job_between_s3_buckets_on_moto() {
    let Some(emu) = common::cloud::moto_with_buckets().await else { return };
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
    assert_eq!(
        common::cloud::open_uploads(&emu.url, "results").await,
        Vec::<String>::new(),
        "multipart uploads left open"
    );
}
