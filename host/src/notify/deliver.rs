//! Delivery from the outbox: in order per job, at least once, with
//! exponential backoff, giving up (visibly) after `give_up_after`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::destination::{DestinationError, PublicOnly, check_literal, check_url, refusal};
use crate::model::now;
use crate::store::{OutboxEntry, Store};

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// Longest wait for a receiver's answer.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// The first retry waits this long; each next one twice as long...
    #[serde(with = "humantime_serde")]
    pub first_backoff: Duration,
    /// ... up to this.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// An event not delivered this long after it happened is given up on, and
    /// listed under the job's dead events.
    #[serde(with = "humantime_serde")]
    pub give_up_after: Duration,
    /// Also deliver to loopback, private, link-local and other non-public
    /// addresses. Off by default, so a tenant cannot make the daemon call
    /// services on its own host or network.
    pub allow_private_networks: bool,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            timeout: Duration::from_secs(10),
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            give_up_after: Duration::from_secs(24 * 3600),
            allow_private_networks: false,
        }
    }
}

/// Delivers the outbox in the background.
pub struct Deliverer {
    store: Store,
    http: reqwest::Client,
    config: WebhookConfig,
    wake: Arc<Notify>,
}

/// The webhook client. It follows no redirects (a 3xx is a failed attempt:
/// a redirect could lead anywhere) and uses no proxy from the environment
/// (a proxy would connect on its behalf, past the address checks). Unless
/// private networks are allowed, its resolver lets it connect only to
/// public addresses.
fn client(config: &WebhookConfig) -> reqwest::Client {
    let builder = reqwest::Client::builder().timeout(config.timeout).redirect(reqwest::redirect::Policy::none()).no_proxy();
    let builder = if config.allow_private_networks { builder } else { builder.dns_resolver(PublicOnly) };
    builder.build().expect("a plain HTTP client builds")
}

/// POST one event; the error says why it was not delivered.
async fn send(http: &reqwest::Client, allow_private_networks: bool, entry: &OutboxEntry) -> Result<(), String> {
    let refused = |e: &DestinationError| format!("refused: {e}");
    let url = check_url(&entry.url).map_err(|e| refused(&e))?;
    if !allow_private_networks {
        check_literal(&url).map_err(|e| refused(&e))?;
    }
    let body = serde_json::to_vec(&entry.event).expect("events serialise");
    let result = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/cloudevents+json; charset=utf-8")
        .header("Kiln-Signature", super::sign(&entry.secret, now(), &body))
        .header("Kiln-Event-Id", entry.event["id"].as_str().unwrap_or_default())
        .body(body)
        .send()
        .await;
    match result {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) if r.status().is_redirection() => Err(format!("the receiver answered {} (redirects are not followed)", r.status())),
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

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl Deliverer {
    /// Start delivering; `wake` is notified when new events are committed.
    pub fn start(store: Store, config: WebhookConfig, wake: Arc<Notify>) {
        let d = Deliverer { store, http: client(&config), config, wake };
        tokio::spawn(d.run());
    }

    async fn run(self) {
        loop {
            let entries = match self.store.call(|s| s.outbox(1000)).await {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(error = %e, "reading the webhook outbox");
                    Vec::new()
                }
            };
            // A job whose oldest event is not delivered yet waits: events of a job arrive in order.
            let mut blocked: HashSet<u64> = HashSet::new();
            let mut soonest: Option<i64> = None;
            for entry in entries {
                if blocked.contains(&entry.job) {
                    continue;
                }
                if entry.next_attempt_at > now_ms() {
                    blocked.insert(entry.job);
                    soonest = Some(soonest.map_or(entry.next_attempt_at, |s: i64| s.min(entry.next_attempt_at)));
                    continue;
                }
                if !self.deliver(&entry).await {
                    blocked.insert(entry.job);
                }
            }
            let idle = soonest.map_or(Duration::from_secs(1), |t| Duration::from_millis((t - now_ms()).clamp(10, 1000) as u64));
            let _ = tokio::time::timeout(idle, self.wake.notified()).await;
        }
    }

    /// One attempt; true if delivered.
    async fn deliver(&self, entry: &OutboxEntry) -> bool {
        let error = send(&self.http, self.config.allow_private_networks, entry).await.err();
        let m = crate::metrics::global();
        let seq = entry.seq;
        let Some(error) = error else {
            m.webhook("delivered");
            if let Err(e) = self.store.call(move |s| s.event_delivered(seq)).await {
                tracing::error!(error = %e, "recording a delivered event");
            }
            return true;
        };
        let age = Duration::from_secs((now() - entry.created_at).max(0) as u64);
        if age >= self.config.give_up_after {
            m.webhook("given_up");
            tracing::warn!(job = entry.job, event = %entry.event["id"], url = %entry.url, %error, attempts = entry.attempts + 1, "webhook given up: listed under the job's dead events");
            let e = error.clone();
            let _ = self.store.call(move |s| s.event_given_up(seq, &e)).await;
        } else {
            m.webhook("failed");
            let backoff = self.config.first_backoff.saturating_mul(1 << entry.attempts.min(20)).min(self.config.max_backoff);
            tracing::debug!(job = entry.job, url = %entry.url, %error, ?backoff, "webhook attempt failed");
            let next = now_ms() + backoff.as_millis() as i64;
            let e = error.clone();
            let _ = self.store.call(move |s| s.event_deferred(seq, next, &e)).await;
        }
        false
    }
}
