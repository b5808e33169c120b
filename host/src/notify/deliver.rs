//! Delivery from the outbox: in order per job, at least once, with
//! exponential backoff, giving up (visibly) after `give_up_after`.
//!
//! A dispatcher reads the oldest waiting event of each job and hands each
//! that is due to a delivery task of its own; `concurrency` of them send at
//! once. A job has at most one delivery under way, and its next event is
//! its oldest only once that one is delivered or given up: so each job's
//! events arrive in order, while a slow or dead receiver delays only its own
//! job's events.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, Semaphore};

use super::send::{client, send};
use crate::model::{JobId, now};
use crate::store::{OutboxEntry, Store};

/// Jobs whose next event one read of the outbox considers, at most.
const HEADS_PER_READ: usize = 4096;

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
    /// Deliveries in flight at once, each to a different job's receiver:
    /// a slow receiver holds up its own job's events, not the others'.
    pub concurrency: usize,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            timeout: Duration::from_secs(10),
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            give_up_after: Duration::from_secs(24 * 3600),
            allow_private_networks: false,
            concurrency: 16,
        }
    }
}

/// Delivers the outbox in the background.
pub struct Deliverer {
    store: Store,
    http: reqwest::Client,
    config: WebhookConfig,
    /// Notified when events are committed, and when a delivery ends.
    wake: Arc<Notify>,
    /// Jobs with a delivery under way.
    busy: Mutex<HashSet<JobId>>,
    /// Deliveries sending at once.
    slots: Arc<Semaphore>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl Deliverer {
    /// The deliverer, as a background loop (`webhooks`) that hands each job's
    /// due event to a delivery task; `wake` is notified when new events are committed.
    pub fn start(store: Store, config: WebhookConfig, wake: Arc<Notify>) -> WebhookLoop {
        let slots = Arc::new(Semaphore::new(config.concurrency.max(1)));
        let d = Deliverer { store, http: client(&config), config, wake, busy: Mutex::default(), slots };
        WebhookLoop { deliverer: Arc::new(d), from_job: 0, idle: None }
    }
}

/// The deliverer's dispatch loop: read each job's due event, hand it to a
/// delivery task, then wait for news (or for the soonest retry).
pub struct WebhookLoop {
    deliverer: Arc<Deliverer>,
    /// Where the next read of the outbox goes on from.
    from_job: JobId,
    /// How long to wait before the next round; `None` before the first.
    idle: Option<Duration>,
}

impl crate::background::Background for WebhookLoop {
    fn name(&self) -> String {
        "webhooks".into()
    }

    async fn wait(&mut self) -> bool {
        if let Some(idle) = self.idle {
            let _ = tokio::time::timeout(idle, self.deliverer.wake.notified()).await;
        }
        true
    }

    async fn round(&mut self) -> Result<(), String> {
        let d = &self.deliverer;
        self.idle = Some(Duration::from_secs(1));
        let from_job = self.from_job;
        let heads = d
            .store
            .call(move |s| s.outbox_heads(from_job, HEADS_PER_READ))
            .await
            .map_err(|e| format!("reading the webhook outbox: {e}"))?;
        // More jobs wait than one read holds: the next read goes on after them.
        self.from_job = match heads.last() {
            Some(last) if heads.len() == HEADS_PER_READ => last.job + 1,
            _ => 0,
        };
        let mut soonest: Option<i64> = None;
        for entry in heads {
            if entry.next_attempt_at > now_ms() {
                soonest = Some(soonest.map_or(entry.next_attempt_at, |s| s.min(entry.next_attempt_at)));
            } else if d.busy.lock().unwrap().insert(entry.job) {
                tokio::spawn(d.clone().deliver_head(entry));
            }
        }
        self.idle = soonest.map(|t| Duration::from_millis((t - now_ms()).clamp(10, 1000) as u64)).or(self.idle);
        Ok(())
    }
}

impl Deliverer {
    /// Deliver a job's oldest event (once a slot is free), then let the
    /// dispatcher hand out the job's next one.
    async fn deliver_head(self: Arc<Self>, seen: OutboxEntry) {
        let _slot = self.slots.clone().acquire_owned().await.expect("the semaphore is never closed");
        // The dispatcher's read may be older than the last delivery of this
        // job: act on the event as it is now (still waiting, and due).
        let seq = seen.seq;
        match self.store.call(move |s| s.outbox_entry(seq)).await {
            Ok(Some(entry)) if entry.next_attempt_at <= now_ms() => self.attempt(&entry).await,
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "reading a webhook event"),
        }
        self.busy.lock().unwrap().remove(&seen.job);
        self.wake.notify_one();
    }

    /// One attempt, recorded: delivered, deferred with backoff, or given up.
    async fn attempt(&self, entry: &OutboxEntry) {
        let error = send(&self.http, self.config.allow_private_networks, entry).await.err();
        let m = crate::metrics::global();
        let (job, seq) = (entry.job, entry.seq);
        let Some(error) = error else {
            m.webhook("delivered");
            let kind = super::event_type(entry).to_string();
            if let Err(e) = self.store.call(move |s| s.event_delivered(job, seq, &kind)).await {
                tracing::error!(error = %e, "recording a delivered event");
            }
            return;
        };
        let age = Duration::from_secs((now() - entry.created_at).max(0) as u64);
        if age >= self.config.give_up_after {
            m.webhook("given_up");
            tracing::warn!(job = entry.job, seq = entry.seq, url = %entry.url, %error, attempts = entry.attempts + 1, "webhook given up: listed under the job's dead events");
            let e = error.clone();
            let _ = self.store.call(move |s| s.event_given_up(seq, &e)).await;
        } else {
            m.webhook("failed");
            let backoff =
                self.config.first_backoff.saturating_mul(1 << entry.attempts.min(20)).min(self.config.max_backoff);
            tracing::debug!(job = entry.job, url = %entry.url, %error, ?backoff, "webhook attempt failed");
            let next = now_ms() + backoff.as_millis() as i64;
            let e = error.clone();
            let _ = self.store.call(move |s| s.event_deferred(seq, next, &e)).await;
        }
    }
}
