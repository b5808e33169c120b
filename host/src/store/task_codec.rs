//! How a task record is kept in the `tasks` table.
//!
//! A million-task job left 632 bytes per task in redb when records were JSON:
//! field names, RFC 3339 times, `null`s, and the job and seq that the table's
//! key already holds. The compact form is postcard (varints, no names) after
//! a version byte. Version 2 also keeps each output key as a reference into
//! the source key where they share a piece (`copy/{key}`, `thumbs/{barename}.webp`):
//! output keys are mostly the source key again, and in a copy job they were a
//! quarter of the record. A finished copy task takes 71 bytes (the test below;
//! 70 in version 2, 85 in version 1, 302 as JSON). Version 3 appends the cluster worker that
//! ran the task (one byte when the daemon ran it). Records of versions 1 and 2
//! and JSON records of earlier versions are still read (JSON starts with `{`,
//! never with a version byte), and rewritten in the current form whenever they change.

use serde::{Deserialize, Serialize};

use crate::model::{JobId, TaskErrorRecord, TaskRecord, TaskState};
use crate::runtime::TaskErrorKind;

/// The first byte of a compact record: outputs written whole (version 1),
/// or as references into the source key (version 2); version 3 (written
/// now) is version 2 followed by the worker's name.
const V1: u8 = 1;
const V2: u8 = 2;
const V3: u8 = 3;

/// An output key as `head`, then `len` bytes of the source key from byte
/// `from`, then `tail`.
#[derive(Serialize, Deserialize)]
struct OutputKey<H, T> {
    head: H,
    from: u32,
    len: u32,
    tail: T,
}

/// Shared pieces shorter than this are not worth the two varints.
const MIN_SHARED: usize = 4;

/// `output` as a reference into `source`: the longest of the source key
/// (whole, without its extension, its base name, its base name without the
/// extension) found in the output, or the longest common suffix.
fn output_key<'a>(source: &str, output: &'a str) -> OutputKey<&'a str, &'a str> {
    let dot = source.rfind('.').filter(|&d| d > 0).unwrap_or(source.len());
    let slash = source.rfind('/').map_or(0, |s| s + 1).min(dot);
    let mut best: Option<(usize, usize, usize)> = None; // (at in output, from, len)
    for (from, to) in [(0, source.len()), (0, dot), (slash, source.len()), (slash, dot)] {
        let piece = &source[from..to];
        if piece.len() >= MIN_SHARED
            && best.is_none_or(|(_, _, len)| piece.len() > len)
            && let Some(at) = output.find(piece)
        {
            best = Some((at, from, piece.len()));
        }
    }
    let mut suffix = source.bytes().rev().zip(output.bytes().rev()).take_while(|(a, b)| a == b).count();
    while !source.is_char_boundary(source.len() - suffix) {
        suffix -= 1;
    }
    if suffix >= MIN_SHARED && best.is_none_or(|(_, _, len)| suffix > len) {
        best = Some((output.len() - suffix, source.len() - suffix, suffix));
    }
    match best {
        Some((at, from, len)) => {
            OutputKey { head: &output[..at], from: from as u32, len: len as u32, tail: &output[at + len..] }
        }
        None => OutputKey { head: output, from: 0, len: 0, tail: "" },
    }
}

/// The output key a reference stands for; an error for one that points outside the source key.
fn resolve(source: &str, key: OutputKey<String, String>) -> Result<String, String> {
    let (from, len) = (key.from as usize, key.len as usize);
    let piece = from
        .checked_add(len)
        .and_then(|to| source.get(from..to))
        .ok_or_else(|| format!("an output refers to bytes {from}..+{len} of a source key of {} bytes", source.len()))?;
    Ok([key.head.as_str(), piece, key.tail.as_str()].concat())
}

/// What is written: borrowed from the record, so encoding copies no string
/// twice. `O`: the outputs as the version writes them.
#[derive(Serialize)]
struct Written<'a, O> {
    source_key: &'a str,
    size: Option<u64>,
    etag: Option<&'a str>,
    last_modified: Option<i64>,
    state: u8,
    attempts: u32,
    outputs: O,
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
/// `O` is how outputs are kept: whole (version 1) or as [`OutputKey`]s.
#[derive(Deserialize)]
struct Read<O> {
    source_key: String,
    size: Option<u64>,
    etag: Option<String>,
    last_modified: Option<i64>,
    state: u8,
    attempts: u32,
    outputs: Vec<O>,
    error: Option<(String, String)>,
    duration_ms: Option<u64>,
    bytes_in: u64,
    bytes_out: u64,
    finished_at: Option<i64>,
    result: Option<String>,
}

pub(super) fn encode(task: &TaskRecord) -> Vec<u8> {
    let outputs: Vec<_> = task.outputs.iter().map(|o| output_key(&task.source_key, o)).collect();
    let bytes = encode_as(task, V3, outputs);
    postcard::to_extend(&task.worker.as_deref(), bytes).expect("task records always serialise")
}

/// `task` as record version `version`, its outputs given as that version writes them.
fn encode_as<O: Serialize>(task: &TaskRecord, version: u8, outputs: O) -> Vec<u8> {
    let written = Written {
        source_key: &task.source_key,
        size: task.size,
        etag: task.etag.as_deref(),
        last_modified: task.last_modified,
        state: task.state.code(),
        attempts: task.attempts,
        outputs,
        error: task.error.as_ref().map(|e| (e.kind.as_str(), e.message.as_str())),
        duration_ms: task.duration_ms,
        bytes_in: task.bytes_in,
        bytes_out: task.bytes_out,
        finished_at: task.finished_at,
        result: task.result.as_ref().map(|v| v.to_string()),
    };
    postcard::to_extend(&written, vec![version]).expect("task records always serialise")
}

/// The source key of a compact record, read without decoding the rest (it
/// comes first): filters on the key skip the rows they reject for the cost
/// of a comparison. `None` for a JSON record, or a damaged one.
pub(super) fn source_key(bytes: &[u8]) -> Option<&str> {
    match bytes.split_first() {
        Some((&(V1 | V2 | V3), rest)) => postcard::take_from_bytes::<&str>(rest).ok().map(|(key, _)| key),
        _ => None,
    }
}

/// Decode a record of task `seq` of `job`; the error says what is wrong with it.
pub(super) fn decode(job: JobId, seq: u64, bytes: &[u8]) -> Result<TaskRecord, String> {
    let references = |source: &str, keys: Vec<OutputKey<String, String>>| {
        keys.into_iter().map(|k| resolve(source, k)).collect::<Result<Vec<_>, _>>()
    };
    match bytes.first() {
        Some(&V3) => {
            let (r, rest): (Read<OutputKey<String, String>>, _) =
                postcard::take_from_bytes(&bytes[1..]).map_err(|e| e.to_string())?;
            let worker: Option<String> = postcard::from_bytes(rest).map_err(|e| format!("the task's worker: {e}"))?;
            Ok(TaskRecord { worker, ..into_task(job, seq, r, references)? })
        }
        Some(&V2) => {
            let r: Read<OutputKey<String, String>> = postcard::from_bytes(&bytes[1..]).map_err(|e| e.to_string())?;
            into_task(job, seq, r, references)
        }
        Some(&V1) => {
            let r: Read<String> = postcard::from_bytes(&bytes[1..]).map_err(|e| e.to_string())?;
            into_task(job, seq, r, |_, keys| Ok(keys))
        }
        Some(b'{') => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
        Some(v) => Err(format!("unknown task record version {v}")),
        None => Err("empty task record".into()),
    }
}

/// The record read, its outputs made whole by `outputs` (given the source key).
fn into_task<O>(
    job: JobId,
    seq: u64,
    r: Read<O>,
    outputs: impl FnOnce(&str, Vec<O>) -> Result<Vec<String>, String>,
) -> Result<TaskRecord, String> {
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
        outputs: outputs(&r.source_key, r.outputs)?,
        source_key: r.source_key,
        size: r.size,
        etag: r.etag,
        last_modified: r.last_modified,
        state,
        attempts: r.attempts,
        error,
        duration_ms: r.duration_ms,
        bytes_in: r.bytes_in,
        bytes_out: r.bytes_out,
        finished_at: r.finished_at,
        result,
        worker: None,
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
            worker: None,
        }
    }

    #[test]
    fn round_trips_and_is_small() {
        let task = finished();
        let bytes = encode(&task);
        assert_eq!(decode(7, 123_456, &bytes).unwrap(), task);
        let json = serde_json::to_vec(&task).unwrap();
        assert!(bytes.len() * 3 < json.len(), "{} bytes against JSON's {}", bytes.len(), json.len());
        assert!(bytes.len() <= 71, "{}", bytes.len());
    }

    #[test]
    fn the_worker_round_trips() {
        let task = TaskRecord { worker: Some("worker-b.example".into()), ..finished() };
        let bytes = encode(&task);
        assert_eq!(bytes[0], V3);
        assert_eq!(decode(7, 123_456, &bytes).unwrap(), task);
        assert_eq!(source_key(&bytes), Some("d42/obj-123456.bin"));
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

    /// `output` written as a reference into `source`, and read back.
    fn round_trip(source: &str, output: &str) -> String {
        let r = output_key(source, output);
        resolve(source, OutputKey { head: r.head.into(), from: r.from, len: r.len, tail: r.tail.into() }).unwrap()
    }

    #[test]
    fn output_keys_are_kept_as_references_into_the_source_key() {
        let source = "photos/2024/IMG_0001.JPG";
        for output in [
            "copy/photos/2024/IMG_0001.JPG",    // the whole key
            "thumbs/photos/2024/IMG_0001.webp", // without its extension
            "flat/IMG_0001.JPG",                // its base name
            "IMG_0001-200.webp",                // its base name without the extension
            "a/b/0001.JPG",                     // a common suffix only
            "unrelated/out.bin",                // nothing shared
            "",                                 // (no output is empty, but it must survive)
            "ünï/photos/2024/IMG_0001.JPG.gz",
        ] {
            assert_eq!(round_trip(source, output), output);
        }
        assert_eq!(output_key(source, "copy/photos/2024/IMG_0001.JPG").head, "copy/");
        assert_eq!(output_key(source, "thumbs/photos/2024/IMG_0001.webp").tail, ".webp");
        // A common suffix never splits a character.
        assert_eq!(round_trip("dir/ÿé.txt", "x/é.txt"), "x/é.txt");
        // A reference outside the key (a damaged record) is an error.
        let bad = OutputKey { head: String::new(), from: 20, len: 10, tail: String::new() };
        assert!(resolve(source, bad).unwrap_err().contains("source key of 24 bytes"));
        let split = OutputKey { head: String::new(), from: 5, len: 1, tail: String::new() };
        assert!(resolve("dir/ÿé", split).is_err(), "inside a character");
    }

    #[test]
    fn the_source_key_reads_without_decoding_the_record() {
        let task = finished();
        assert_eq!(source_key(&encode(&task)), Some("d42/obj-123456.bin"));
        assert_eq!(source_key(&serde_json::to_vec(&task).unwrap()), None, "JSON is decoded whole");
        assert_eq!(source_key(&encode(&task)[..5]), None, "cut short");
    }

    #[test]
    fn version_1_and_2_records_are_read() {
        let t = finished();
        assert_eq!(decode(7, 123_456, &encode_as(&t, V1, &t.outputs)).unwrap(), t);
        let references: Vec<_> = t.outputs.iter().map(|o| output_key(&t.source_key, o)).collect();
        assert_eq!(decode(7, 123_456, &encode_as(&t, V2, references)).unwrap(), t);
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
