//! How a task record is kept in the `tasks` table.
//!
//! A million-task job left 632 bytes per task in redb when records were JSON:
//! field names, RFC 3339 times, `null`s, and the job and seq that the table's
//! key already holds. The compact form is postcard (varints, no names) after
//! a version byte: a finished copy task takes 85 bytes instead of 302 (the
//! test below; most of the 85 are its key, output key and etag). Records written as JSON by earlier versions are still read
//! (JSON starts with `{`, never with a version byte), and rewritten compactly
//! whenever they change.

use serde::{Deserialize, Serialize};

use crate::model::{JobId, TaskErrorRecord, TaskRecord, TaskState};
use crate::runtime::TaskErrorKind;

/// The first byte of a compact record.
const V1: u8 = 1;

/// What is written: borrowed from the record, so encoding copies no string twice.
#[derive(Serialize)]
struct Written<'a> {
    source_key: &'a str,
    size: Option<u64>,
    etag: Option<&'a str>,
    last_modified: Option<i64>,
    state: u8,
    attempts: u32,
    outputs: &'a [String],
    /// The error's kind by name (stable across versions, unlike a variant index), and its message.
    error: Option<(&'a str, &'a str)>,
    duration_ms: Option<u64>,
    bytes_in: u64,
    bytes_out: u64,
    finished_at: Option<i64>,
    /// The plugin's result as JSON text: postcard cannot hold a self-describing value.
    result: Option<String>,
}

/// What is read back; the same fields in the same order as [`Written`].
#[derive(Deserialize)]
struct Read {
    source_key: String,
    size: Option<u64>,
    etag: Option<String>,
    last_modified: Option<i64>,
    state: u8,
    attempts: u32,
    outputs: Vec<String>,
    error: Option<(String, String)>,
    duration_ms: Option<u64>,
    bytes_in: u64,
    bytes_out: u64,
    finished_at: Option<i64>,
    result: Option<String>,
}

pub(super) fn encode(task: &TaskRecord) -> Vec<u8> {
    let written = Written {
        source_key: &task.source_key,
        size: task.size,
        etag: task.etag.as_deref(),
        last_modified: task.last_modified,
        state: task.state.code(),
        attempts: task.attempts,
        outputs: &task.outputs,
        error: task.error.as_ref().map(|e| (e.kind.as_str(), e.message.as_str())),
        duration_ms: task.duration_ms,
        bytes_in: task.bytes_in,
        bytes_out: task.bytes_out,
        finished_at: task.finished_at,
        result: task.result.as_ref().map(|v| v.to_string()),
    };
    postcard::to_extend(&written, vec![V1]).expect("task records always serialise")
}

/// Decode a record of task `seq` of `job`; the error says what is wrong with it.
pub(super) fn decode(job: JobId, seq: u64, bytes: &[u8]) -> Result<TaskRecord, String> {
    match bytes.first() {
        Some(&V1) => {}
        Some(b'{') => return serde_json::from_slice(bytes).map_err(|e| e.to_string()),
        Some(v) => return Err(format!("unknown task record version {v}")),
        None => return Err("empty task record".into()),
    }
    let r: Read = postcard::from_bytes(&bytes[1..]).map_err(|e| e.to_string())?;
    let state = *TaskState::ALL.get(r.state as usize).ok_or_else(|| format!("unknown task state {}", r.state))?;
    let error = r.error.map(|(kind, message)| TaskErrorRecord {
        kind: TaskErrorKind::ALL.into_iter().find(|k| k.as_str() == kind).unwrap_or(TaskErrorKind::Unknown),
        message,
    });
    let result = match r.result {
        Some(text) => Some(serde_json::from_str(&text).map_err(|e| format!("the task's result: {e}"))?),
        None => None,
    };
    Ok(TaskRecord {
        job,
        seq,
        source_key: r.source_key,
        size: r.size,
        etag: r.etag,
        last_modified: r.last_modified,
        state,
        attempts: r.attempts,
        outputs: r.outputs,
        error,
        duration_ms: r.duration_ms,
        bytes_in: r.bytes_in,
        bytes_out: r.bytes_out,
        finished_at: r.finished_at,
        result,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished() -> TaskRecord {
        TaskRecord {
            job: 7,
            seq: 123_456,
            source_key: "d42/obj-123456.bin".into(),
            size: Some(1024),
            etag: Some("\"5f3a-1d2c\"".into()),
            last_modified: Some(1_764_892_800),
            state: TaskState::Succeeded,
            attempts: 1,
            outputs: vec!["copies/d42/obj-123456.bin".into()],
            error: None,
            duration_ms: Some(0),
            bytes_in: 1024,
            bytes_out: 1024,
            finished_at: Some(1_764_892_801),
            result: None,
        }
    }

    #[test]
    fn round_trips_and_is_small() {
        let task = finished();
        let bytes = encode(&task);
        assert_eq!(decode(7, 123_456, &bytes).unwrap(), task);
        let json = serde_json::to_vec(&task).unwrap();
        assert!(bytes.len() * 3 < json.len(), "{} bytes against JSON's {}", bytes.len(), json.len());
        assert!(bytes.len() <= 100, "{}", bytes.len());
    }

    #[test]
    fn errors_results_and_every_state_round_trip() {
        for state in TaskState::ALL {
            for kind in TaskErrorKind::ALL {
                let mut task = finished();
                task.state = state;
                task.outputs.clear();
                task.error = Some(TaskErrorRecord { kind, message: "deadline of 30s exceeded".into() });
                task.result = Some(serde_json::json!({"pages": 3, "title": "ünïcode", "list": [1.5, null, true]}));
                assert_eq!(decode(7, 123_456, &encode(&task)).unwrap(), task);
            }
        }
    }

    #[test]
    fn json_records_of_earlier_versions_are_read() {
        let task = finished();
        let json = serde_json::to_vec(&task).unwrap();
        assert_eq!(decode(7, 123_456, &json).unwrap(), task);
    }

    #[test]
    fn damage_is_an_error_never_a_panic() {
        let bytes = encode(&finished());
        for cut in 0..bytes.len() {
            let _ = decode(1, 1, &bytes[..cut]);
        }
        assert!(decode(1, 1, b"").is_err());
        assert!(decode(1, 1, b"{not json").is_err());
        assert!(decode(1, 1, &[9, 1, 2]).unwrap_err().contains("version 9"));
        let mut t = finished();
        t.size = None;
        t.etag = None;
        t.last_modified = None;
        let mut bad_state = encode(&t);
        // The version, the key's length and bytes, three `None`s, then the state.
        let at = 1 + 1 + t.source_key.len() + 3;
        assert_eq!(bad_state[at], TaskState::Succeeded.code());
        bad_state[at] = 42;
        assert!(decode(1, 1, &bad_state).unwrap_err().contains("unknown task state 42"));
    }
}
