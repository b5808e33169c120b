//! Azure buckets on a real Azure Blob Storage emulator: Azurite, from the npm
//! registry (`scripts/test` installs it into `target/emulators`). The test
//! starts it on a free loopback port and runs the common cloud scenario.

use crate::common;

use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use common::emulator::{self, Emulator};

/// Azurite's well-known development account and key (public, from Microsoft's docs).
const ACCOUNT: &str = "devstoreaccount1";
const KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Create a container: object_store has no call for it, so sign it here (Shared Key).
async fn create_container(endpoint: &str, container: &str) {
    let url = format!("{endpoint}/{ACCOUNT}/{container}?restype=container");
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    let version = "2023-11-03";
    // VERB, then 11 standard headers (all empty), the x-ms headers, the resource.
    let to_sign = format!(
        "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{ACCOUNT}/{ACCOUNT}/{container}\nrestype:container"
    );
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &BASE64_STANDARD.decode(KEY).unwrap());
    let signature = BASE64_STANDARD.encode(ring::hmac::sign(&key, to_sign.as_bytes()).as_ref());
    let r = reqwest::Client::new()
        .put(&url)
        .header("x-ms-date", &date)
        .header("x-ms-version", version)
        .header("content-length", "0")
        .header("authorization", format!("SharedKey {ACCOUNT}:{signature}"))
        .send()
        .await
        .unwrap();
    let status = r.status();
    assert!(status.is_success(), "creating container {container}: {status} {}", r.text().await.unwrap_or_default());
}

#[tokio::test]
async fn job_between_azure_containers_on_azurite() {
    let Some(azurite) = emulator::find("azurite-blob", "`npm install azurite` into target/emulators") else { return };
    let emu = Emulator::start(
        &azurite,
        &[
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            "{port}",
            "--inMemoryPersistence",
            "--silent",
            "--skipApiVersionCheck",
            "--disableTelemetry",
        ],
    );
    for container in ["photos", "results"] {
        create_container(&emu.url, container).await;
    }
    // The account and key default to Azurite's with `use_emulator`.
    let config = format!(
        r#"
[buckets.cin]
kind = "azure"
container = "photos"
use_emulator = true
endpoint = "{url}"

[buckets.cout]
kind = "azure"
container = "results"
use_emulator = true
endpoint = "{url}"
"#,
        url = emu.url
    );
    common::cloud::job_scenario("azure", &config).await;
}
