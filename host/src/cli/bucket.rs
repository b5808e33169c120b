//! `kiln buckets`: the buckets the caller may use.

use super::client::Client;

pub async fn buckets(client: &Client) -> anyhow::Result<()> {
    let list = client.get("/v1/buckets", &[]).await?;
    client.print(&list, |l| {
        l.as_array()
            .into_iter()
            .flatten()
            .map(|b| format!("{:<24} {}", b["name"].as_str().unwrap_or(""), b["kind"].as_str().unwrap_or("")))
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}
