//! S3 buckets on a real S3-compatible server: moto's server, from PyPI
//! (`scripts/test` installs it). The test starts it on a free loopback port and
//! runs the common cloud scenario.

use crate::common;

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
    // The content type a 0.2.0 plugin gave its output is stored on the object.
    use object_store::ObjectStore;
    let s3 = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(&emu.url)
        .with_bucket_name("results")
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .with_allow_http(true)
        .build()
        .unwrap();
    let head = object_store::GetOptions { head: true, ..Default::default() };
    let got = s3.get_opts(&"tail/big.txt".into(), head).await.unwrap();
    let stored = got.attributes.get(&object_store::Attribute::ContentType).map(|v| v.to_string());
    assert_eq!(stored.as_deref(), Some("text/plain; charset=utf-8"));
}
