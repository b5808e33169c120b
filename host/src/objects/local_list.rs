//! Listing a local folder in key order.
//!
//! `object_store`'s local store lists in directory-walk order, which cannot be
//! resumed from a cursor. This walker visits each directory's entries sorted
//! by name, with a directory sorting as `name/`: that yields keys in exact
//! byte order, so "everything after key K" is a resumable cursor. Only one
//! directory's entries per level are held in memory, and a bounded channel
//! gives backpressure, so memory does not grow with the listing.
//!
//! Objects go through the channel [`BATCH`] at a time: one wake-up of the
//! planner per object cost more than reading the directory.

use std::path::{Path, PathBuf};

use futures::StreamExt;
use futures::stream::BoxStream;

use super::ObjectsError;
use crate::runtime::ObjectMeta;

pub fn sorted(
    root: PathBuf,
    bucket: String,
    prefix: String,
    after: Option<String>,
) -> BoxStream<'static, Result<ObjectMeta, ObjectsError>> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let mut walk = Walk { bucket: &bucket, prefix: &prefix, after: after.as_deref(), tx: &tx, batch: Vec::new() };
        if let Err(e) = walk.dir(&root, "") {
            walk.batch.push(Err(ObjectsError::Store { bucket: bucket.clone(), message: e.to_string() }));
        }
        // Whatever is gathered (a receiver gone takes nothing, which is fine).
        walk.flush();
    });
    tokio_stream_from(rx)
}

/// Objects sent to the planner at once.
const BATCH: usize = 128;

type Batch = Vec<Result<ObjectMeta, ObjectsError>>;

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Batch>,
) -> BoxStream<'static, Result<ObjectMeta, ObjectsError>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).flat_map(futures::stream::iter).boxed()
}

struct Walk<'a> {
    bucket: &'a str,
    prefix: &'a str,
    after: Option<&'a str>,
    tx: &'a tokio::sync::mpsc::Sender<Batch>,
    batch: Batch,
}

/// Whether the walk goes on (the receiver is still listening).
type Go = bool;

impl Walk<'_> {
    /// Send what is gathered; whether the receiver still listens.
    fn flush(&mut self) -> Go {
        self.batch.is_empty() || self.tx.blocking_send(std::mem::take(&mut self.batch)).is_ok()
    }

    fn dir(&mut self, dir: &Path, key_prefix: &str) -> std::io::Result<Go> {
        let mut entries: Vec<(String, bool)> = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else { continue };
            // Skip hidden files and the store's in-flight uploads (`name#N`).
            if name.starts_with('.') || name.contains('#') {
                continue;
            }
            let is_dir = entry.file_type()?.is_dir();
            entries.push((if is_dir { format!("{name}/") } else { name }, is_dir));
        }
        // The directory is closed before going down: a deep tree holds no descriptor per level.
        entries.sort_unstable();
        for (name, is_dir) in entries {
            let key = format!("{key_prefix}{name}");
            if is_dir {
                // Every key below starts with `key` (which ends in `/`).
                let overlaps = key.starts_with(self.prefix) || self.prefix.starts_with(&key);
                let all_before = self.after.is_some_and(|a| key.as_str() < a && !a.starts_with(&key));
                if overlaps && !all_before && !self.dir(&dir.join(name.trim_end_matches('/')), &key)? {
                    return Ok(false);
                }
                continue;
            }
            if !key.starts_with(self.prefix) || self.after.is_some_and(|a| key.as_str() <= a) {
                continue;
            }
            let meta = std::fs::metadata(dir.join(&name))?;
            // The same etag scheme as object_store's local `head` and the fast path's `open`.
            self.batch.push(Ok(super::local::object_meta(self.bucket, key, &meta)));
            if self.batch.len() >= BATCH && !self.flush() {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;

    async fn keys(root: &Path, prefix: &str, after: Option<&str>) -> Vec<String> {
        sorted(root.into(), "b".into(), prefix.into(), after.map(String::from))
            .map_ok(|m| m.key)
            .try_collect()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn lists_in_byte_order_and_resumes_after_a_key() {
        let dir = tempfile::tempdir().unwrap();
        for key in ["a/b", "a-c", "a/a/z", "b", "a0", ".hidden", "c/d/e/f"] {
            let p = dir.path().join(key);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, key).unwrap();
        }
        let all = keys(dir.path(), "", None).await;
        let mut sorted_all = all.clone();
        sorted_all.sort();
        assert_eq!(all, sorted_all);
        assert_eq!(all, vec!["a-c", "a/a/z", "a/b", "a0", "b", "c/d/e/f"]);
        assert_eq!(keys(dir.path(), "", Some("a/a/z")).await, vec!["a/b", "a0", "b", "c/d/e/f"]);
        assert_eq!(keys(dir.path(), "a/", None).await, vec!["a/a/z", "a/b"]);
        assert_eq!(keys(dir.path(), "c/d", None).await, vec!["c/d/e/f"]);
    }
}
