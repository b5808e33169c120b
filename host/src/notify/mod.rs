//! Webhook notifications: CloudEvents 1.0 in structured mode, signed with
//! HMAC-SHA256, delivered at least once from the outbox in redb.
//!
//! Events are written by the store in the same transaction as the change
//! they report, so none is lost in a crash: the facts ([`EventData`]), of
//! which this module makes the CloudEvent when it sends one. The [`Deliverer`] POSTs them in
//! order per job, retries with exponential backoff, and after `give_up_after`
//! moves an event to the job's dead events, where the API shows it.
//!
//! Each request carries `Kiln-Signature: t=UNIX_SECONDS,v1=HEX`, where HEX is
//! HMAC-SHA256 over `"{t}.{body}"` with the job's secret.
//!
//! Webhooks go only to public addresses unless the admin allows private
//! networks: see [`destination`].

mod address;
mod deliver;
mod destination;
mod send;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

pub use deliver::{Deliverer, WebhookConfig, WebhookLoop};
pub use destination::{DestinationError, check_destination, check_url};

use crate::model::TaskRecord;
use crate::store::{EventData, JobSnapshot, OutboxEntry, StoredEvent};

/// CloudEvent `type` of a job's state change.
pub const JOB_STATE_CHANGED: &str = "dev.kiln.job.state_changed";
/// CloudEvent `type` of a finished task.
pub const TASK_FINISHED: &str = "dev.kiln.task.finished";

use crate::timefmt::rfc3339;

/// The CloudEvent of an outbox entry, exactly as it is POSTed.
pub fn cloud_event(entry: &OutboxEntry) -> Value {
    match &entry.event {
        StoredEvent::Built(event) => event.clone(),
        StoredEvent::Data(data) => match data.as_ref() {
            EventData::JobState { job } => job_event(entry.seq, job),
            EventData::TaskFinished { job, task } => task_event(entry.seq, job, task),
        },
    }
}

/// The CloudEvent `type` of an outbox entry.
pub fn event_type(entry: &OutboxEntry) -> &str {
    match &entry.event {
        StoredEvent::Built(event) => event["type"].as_str().unwrap_or_default(),
        StoredEvent::Data(data) => match data.as_ref() {
            EventData::JobState { .. } => JOB_STATE_CHANGED,
            EventData::TaskFinished { .. } => TASK_FINISHED,
        },
    }
}

fn envelope(seq: u64, kind: &str, job: &JobSnapshot, subject: String, data: Value) -> Value {
    json!({
        "specversion": "1.0",
        "id": format!("{}-{seq}", job.id),
        "source": format!("/kiln/jobs/{}", job.id),
        "type": kind,
        "subject": subject,
        "time": rfc3339(job.updated_at),
        "datacontenttype": "application/json",
        "kilnsequence": seq,
        "data": data,
    })
}

/// The event of a job's (new) state.
fn job_event(seq: u64, job: &JobSnapshot) -> Value {
    let data = json!({
        "job": job.id,
        "name": job.name,
        "tenant": job.tenant,
        "state": job.state,
        "counters": job.counters,
        "error": job.error,
        "tags": job.tags,
        "created_at": rfc3339(job.created_at),
        "finished_at": job.finished_at.map(rfc3339),
    });
    envelope(seq, JOB_STATE_CHANGED, job, format!("jobs/{}", job.id), data)
}

/// The event of one finished task: source, outputs, state, error and timings.
fn task_event(seq: u64, job: &JobSnapshot, task: &TaskRecord) -> Value {
    let data = json!({
        "job": job.id,
        "seq": task.seq,
        "source": {"bucket": job.input_bucket, "key": task.source_key, "etag": task.etag, "size": task.size},
        "outputs": task.outputs.iter().map(|k| json!({"bucket": job.output_bucket, "key": k})).collect::<Vec<_>>(),
        "state": task.state,
        "error": task.error,
        "attempts": task.attempts,
        "duration_ms": task.duration_ms,
        "bytes_in": task.bytes_in,
        "bytes_out": task.bytes_out,
        "finished_at": task.finished_at.map(rfc3339),
        "result": task.result,
    });
    envelope(seq, TASK_FINISHED, job, format!("jobs/{}/tasks/{}", job.id, task.seq), data)
}

/// The `Kiln-Signature` header value for `body` sent at `timestamp`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={timestamp},v1={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_like_the_documented_example() {
        // The README's verification example must agree with this.
        let sig = sign("my-webhook-secret", 1_700_000_000, br#"{"specversion":"1.0"}"#);
        let mut mac = Hmac::<Sha256>::new_from_slice(b"my-webhook-secret").unwrap();
        mac.update(br#"1700000000.{"specversion":"1.0"}"#);
        assert_eq!(sig, format!("t=1700000000,v1={}", hex::encode(mac.finalize().into_bytes())));
    }
}
