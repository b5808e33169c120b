//! One webhook request: the HTTP client and a signed POST of one event.

use super::destination::{DestinationError, PublicOnly, check_literal, check_url, refusal};
use crate::model::now;
use crate::store::OutboxEntry;

/// The webhook client. It follows no redirects (a 3xx is a failed attempt:
/// a redirect could lead anywhere) and uses no proxy from the environment
/// (a proxy would connect on its behalf, past the address checks). Unless
/// private networks are allowed, its resolver lets it connect only to
/// public addresses.
pub(super) fn client(config: &super::WebhookConfig) -> reqwest::Client {
    let builder =
        reqwest::Client::builder().timeout(config.timeout).redirect(reqwest::redirect::Policy::none()).no_proxy();
    let builder = if config.allow_private_networks { builder } else { builder.dns_resolver(PublicOnly) };
    builder.build().expect("a plain HTTP client builds")
}

/// POST one event; the error says why it was not delivered.
pub(super) async fn send(
    http: &reqwest::Client,
    allow_private_networks: bool,
    entry: &OutboxEntry,
) -> Result<(), String> {
    let refused = |e: &DestinationError| format!("refused: {e}");
    let url = check_url(&entry.url).map_err(|e| refused(&e))?;
    if !allow_private_networks {
        check_literal(&url).map_err(|e| refused(&e))?;
    }
    let event = super::cloud_event(entry);
    let body = serde_json::to_vec(&event).expect("events serialise");
    let result = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/cloudevents+json; charset=utf-8")
        .header("Kiln-Signature", super::sign(&entry.secret, now(), &body))
        .header("Kiln-Event-Id", event["id"].as_str().unwrap_or_default())
        .body(body)
        .send()
        .await;
    match result {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) if r.status().is_redirection() => {
            Err(format!("the receiver answered {} (redirects are not followed)", r.status()))
        }
        Ok(r) => Err(format!("the receiver answered {}", r.status())),
        Err(e) => Err(match refusal(&e) {
            Some(d) => refused(d),
            None => format!("cannot reach the receiver: {}", causes(&e)),
        }),
    }
}

/// An error and its causes, `: `-separated (reqwest's own message leaves them out).
fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text = format!("{text}: {c}");
        cause = c.source();
    }
    text
}
