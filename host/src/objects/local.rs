//! The fast path for local buckets: sources and outputs are read and written
//! with `std::fs`, keyed exactly as the sorted lister names files
//! (`root/key`), with the write-then-rename of `object_store`'s local store.
//!
//! `object_store`'s `LocalFileSystem` sends every call (open, each read,
//! put) to tokio's blocking pool. For small objects those thread hops, not
//! the file system, were most of a task's cost. Here small files are read and
//! written on the calling worker thread: from the page cache that takes a few
//! microseconds. A bucket on a slow file system (a network mount, a cold disk)
//! must not stall the executor, though: the bucket keeps a moving average of
//! its calls' durations, and while it is above [`SLOW`] the calls go to the
//! blocking pool (back inline once it falls below [`FAST`]). An average, not
//! one slow call: on a busy machine any call may be preempted for a while.
//!
//! Outputs are kept in memory up to [`SPILL`] bytes, then spill to a staged
//! file (see `staged`: anonymous on Linux, else `dest#N`). Commit writes or
//! finishes it and publishes it at `dest`; abort drops it. So a failed task
//! leaves no object, and a reader never sees a partial one. Like
//! `object_store`'s local store, nothing is fsynced.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, UNIX_EPOCH};

use bytes::Bytes;

use super::ObjectsError;
use super::staged::Staged;
use super::upload::RenderKey;
use crate::runtime::{InputSource, ObjectMeta, OutputTarget, OutputWriter};

/// Calls go to the blocking pool while their average duration is above
/// `SLOW`, and come back inline once it is below `FAST`.
const SLOW: Duration = Duration::from_millis(1);
const FAST: Duration = Duration::from_micros(200);
/// Sources up to this size are read whole in one call; larger ones stream.
const READ_WHOLE: u64 = 256 << 10;
/// Output bytes kept in memory before they spill to the staged file.
const SPILL: usize = 1 << 20;
/// Output bytes one task keeps in memory across all its outputs: past this,
/// each output spills at once, so a plugin that opens a thousand outputs of
/// just under [`SPILL`] holds 8 MiB of host memory, not a gigabyte.
const TASK_HELD: u64 = 8 << 20;

/// Whether the key's file name ends in `#` and digits: the names of files
/// being written (see `staged`), which `object_store`'s local store also refuses.
fn is_staging_name(key: &str) -> bool {
    let name = key.rsplit('/').next().unwrap_or(key);
    name.rsplit_once('#').is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// A local bucket's folder and how its calls are run.
#[derive(Clone)]
pub struct LocalDir {
    pub root: PathBuf,
    bucket: Arc<str>,
    pace: Arc<Pace>,
}

/// The moving average of a bucket's call durations, and where calls run.
#[derive(Default)]
struct Pace {
    /// Exponential moving average, in nanoseconds, weight 1/32 per call.
    average_ns: AtomicU64,
    blocking: AtomicBool,
    /// Whether the first move to the blocking pool was logged.
    said: AtomicBool,
}

impl Pace {
    fn record(&self, took: Duration, bucket: &str) {
        let took = took.as_nanos().min(u64::MAX as u128) as u64;
        // Racy updates lose a sample now and then; an average does not mind.
        let old = self.average_ns.load(Ordering::Relaxed);
        let average = old - old / 32 + took / 32;
        self.average_ns.store(average, Ordering::Relaxed);
        let blocking = self.blocking.load(Ordering::Relaxed);
        if !blocking && average > SLOW.as_nanos() as u64 {
            self.blocking.store(true, Ordering::Relaxed);
            // Said once at info; a file system near the threshold may go back and forth.
            if !self.said.swap(true, Ordering::Relaxed) {
                tracing::info!(
                    bucket,
                    average_us = average / 1000,
                    "slow file system: local I/O moves to the blocking pool"
                );
            } else {
                tracing::debug!(bucket, average_us = average / 1000, "local I/O moves to the blocking pool");
            }
        } else if blocking && average < FAST.as_nanos() as u64 {
            self.blocking.store(false, Ordering::Relaxed);
            tracing::debug!(bucket, average_us = average / 1000, "local I/O runs inline again");
        }
    }
}

impl LocalDir {
    pub fn new(root: PathBuf, bucket: String) -> Self {
        LocalDir { root, bucket: bucket.into(), pace: Arc::default() }
    }

    /// Run a file-system call: inline while the file system is fast, else on
    /// the blocking pool. Either way its own duration feeds the average.
    async fn call<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let timed = {
            let (pace, bucket) = (self.pace.clone(), self.bucket.clone());
            move || {
                let started = Instant::now();
                let out = f();
                pace.record(started.elapsed(), &bucket);
                out
            }
        };
        if self.pace.blocking.load(Ordering::Relaxed) {
            return tokio::task::spawn_blocking(timed).await.expect("file-system call panicked");
        }
        timed()
    }

    /// The file of `key`, refused if the key is not a valid object key.
    fn path(&self, key: &str) -> Result<PathBuf, ObjectsError> {
        let parsed = super::store_path(key)?;
        if parsed.as_ref() != key {
            return Err(ObjectsError::BadKey { key: key.to_string(), reason: "not a normalised key".into() });
        }
        if is_staging_name(key) {
            return Err(ObjectsError::BadKey {
                key: key.to_string(),
                reason: "a name ending in `#` and digits is kept for files being written".into(),
            });
        }
        Ok(self.root.join(key))
    }

    fn io_error(&self, key: &str, e: std::io::Error) -> ObjectsError {
        match e.kind() {
            ErrorKind::NotFound => ObjectsError::NotFound { bucket: self.bucket.to_string(), key: key.to_string() },
            _ => ObjectsError::Store { bucket: self.bucket.to_string(), message: format!("{key}: {e}") },
        }
    }

    /// The object's metadata and its bytes: read whole if small, else streamed.
    pub async fn open(&self, key: &str) -> Result<(ObjectMeta, InputSource), ObjectsError> {
        let path = self.path(key)?;
        let opened = self
            .call(move || -> std::io::Result<(std::fs::Metadata, File, Option<Vec<u8>>)> {
                // Non-blocking, so that a FIFO (or another special file) in a
                // bucket's folder is refused below instead of blocking a
                // worker thread at open; for regular files it changes nothing.
                let mut file = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
                    .open(&path)?;
                let meta = file.metadata()?;
                if meta.is_dir() {
                    return Err(ErrorKind::NotFound.into());
                }
                if !meta.is_file() {
                    return Err(std::io::Error::new(ErrorKind::InvalidInput, "not a regular file"));
                }
                let whole = if meta.len() <= READ_WHOLE {
                    // Exactly the size just read, as object_store's local get does
                    // (and without `read_to_end`'s extra fstat and seek).
                    let mut buf = vec![0; meta.len() as usize];
                    file.read_exact(&mut buf)?;
                    Some(buf)
                } else {
                    None
                };
                Ok((meta, file, whole))
            })
            .await;
        let (meta, file, whole) = opened.map_err(|e| self.io_error(key, e))?;
        let object = object_meta(&self.bucket, key.to_string(), &meta);
        let input = match whole {
            Some(bytes) => InputSource::from_bytes(bytes),
            None => InputSource::from_file(file, meta.len()).map_err(|e| self.io_error(key, e))?,
        };
        Ok((object, input))
    }

    /// A target that writes a task's outputs under this folder.
    pub fn target(&self, render: RenderKey) -> LocalTarget {
        LocalTarget { dir: self.clone(), render, held: Arc::default() }
    }
}

/// Metadata as the lister reports it, so etags agree with `object_store`'s local `head`.
pub fn object_meta(bucket: &str, key: String, meta: &std::fs::Metadata) -> ObjectMeta {
    let mtime = meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).unwrap_or_default();
    ObjectMeta {
        bucket: bucket.to_string(),
        key,
        size: Some(meta.len()),
        content_type: None,
        etag: Some(format!("{:x}-{:x}-{:x}", meta.ino(), mtime.as_micros(), meta.len())),
        last_modified: Some(mtime.as_secs() as i64),
    }
}

pub struct LocalTarget {
    dir: LocalDir,
    render: RenderKey,
    /// Bytes the task's outputs hold in memory, together.
    held: Arc<AtomicU64>,
}

#[async_trait::async_trait]
impl OutputTarget for LocalTarget {
    async fn open(&mut self, index: u32, extension: Option<&str>) -> Result<Box<dyn OutputWriter>, String> {
        let key = (self.render)(index, extension)?;
        let dest = self.dir.path(&key).map_err(|e| e.to_string())?;
        let shown = format!("{}/{key}", self.dir.bucket);
        let held = self.held.clone();
        Ok(Box::new(LocalOutput { dir: self.dir.clone(), dest, key, shown, buf: Vec::new(), staged: None, held }))
    }
}

struct LocalOutput {
    dir: LocalDir,
    dest: PathBuf,
    key: String,
    /// `bucket/key`, for messages.
    shown: String,
    buf: Vec<u8>,
    /// The file being written, once the output outgrew [`SPILL`].
    staged: Option<Staged>,
    /// The task's bytes in memory, `buf` included.
    held: Arc<AtomicU64>,
}

impl Drop for LocalOutput {
    fn drop(&mut self) {
        self.held.fetch_sub(self.buf.len() as u64, Ordering::Relaxed);
    }
}

#[async_trait::async_trait]
impl OutputWriter for LocalOutput {
    async fn write(&mut self, bytes: Bytes) -> Result<(), String> {
        let n = bytes.len() as u64;
        if self.staged.is_none()
            && self.buf.len() + bytes.len() <= SPILL
            && self.held.load(Ordering::Relaxed) + n <= TASK_HELD
        {
            self.buf.extend_from_slice(&bytes);
            self.held.fetch_add(n, Ordering::Relaxed);
            return Ok(());
        }
        // Large output, or the task holds enough already: stream it to the staged file, off the executor.
        self.held.fetch_sub(self.buf.len() as u64, Ordering::Relaxed);
        let (dest, staged, pending) = (self.dest.clone(), self.staged.take(), std::mem::take(&mut self.buf));
        let result = tokio::task::spawn_blocking(move || -> std::io::Result<Staged> {
            let mut staged = match staged {
                Some(s) => s,
                None => Staged::create(&dest)?,
            };
            match staged.write_all(&pending).and_then(|()| staged.write_all(&bytes)) {
                Ok(()) => Ok(staged),
                Err(e) => {
                    let _ = staged.discard();
                    Err(e)
                }
            }
        })
        .await
        .expect("file write panicked");
        self.staged = Some(result.map_err(|e| format!("writing {}: {e}", self.shown))?);
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<String, String> {
        self.held.fetch_sub(self.buf.len() as u64, Ordering::Relaxed);
        let (dir, dest, key, shown) = (self.dir.clone(), self.dest.clone(), self.key.clone(), self.shown.clone());
        let (buf, staged) = (std::mem::take(&mut self.buf), self.staged.take());
        let publish = move || -> std::io::Result<()> {
            let mut staged = match staged {
                Some(s) => s,
                None => Staged::create(&dest)?,
            };
            if let Err(e) = staged.write_all(&buf) {
                let _ = staged.discard();
                return Err(e);
            }
            staged.publish(&dest)
        };
        dir.call(publish).await.map_err(|e| format!("completing {shown}: {e}"))?;
        Ok(key)
    }

    async fn abort(mut self: Box<Self>) {
        if let Some(staged) = self.staged.take() {
            self.dir.call(move || staged.discard()).await.unwrap_or_else(|e| {
                tracing::warn!(location = %self.shown, error = %e, "removing a staged output failed");
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(key: &'static str) -> RenderKey {
        Box::new(move |_, _| Ok(key.to_string()))
    }

    #[test]
    fn a_slow_file_system_moves_calls_to_the_blocking_pool_and_back() {
        let pace = Pace::default();
        for _ in 0..20 {
            pace.record(Duration::from_millis(30), "b");
        }
        assert!(
            pace.blocking.load(Ordering::Relaxed),
            "an occasional preemption does not switch; a run of slow calls does"
        );
        for _ in 0..200 {
            pace.record(Duration::from_micros(5), "b");
        }
        assert!(!pace.blocking.load(Ordering::Relaxed));
        let pace = Pace::default();
        for i in 0..1000 {
            pace.record(if i % 50 == 0 { Duration::from_millis(10) } else { Duration::from_micros(10) }, "b");
        }
        assert!(!pace.blocking.load(Ordering::Relaxed), "one call in 50 preempted for 10 ms stays inline");
    }

    #[tokio::test]
    async fn commits_by_rename_and_aborts_without_a_trace() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = LocalDir::new(tmp.path().to_path_buf(), "b".into());
        // Small: kept in memory, written at commit into folders made on demand.
        let mut w = dir.target(render("a/b/small.txt")).open(1, None).await.unwrap();
        w.write(Bytes::from_static(b"hello")).await.unwrap();
        assert!(!tmp.path().join("a").exists(), "nothing is visible before the commit");
        assert_eq!(w.commit().await.unwrap(), "a/b/small.txt");
        assert_eq!(std::fs::read(tmp.path().join("a/b/small.txt")).unwrap(), b"hello");

        // Large: spills to a staged `#` file; abort removes it.
        let chunk = Bytes::from(vec![9u8; 700 << 10]);
        let mut w = dir.target(render("big.bin")).open(1, None).await.unwrap();
        w.write(chunk.clone()).await.unwrap();
        w.write(chunk.clone()).await.unwrap();
        w.abort().await;
        let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from("a")], "an aborted output leaves nothing");

        // Large and committed, then read back through `open` (streamed).
        let mut w = dir.target(render("big.bin")).open(1, None).await.unwrap();
        for _ in 0..3 {
            w.write(chunk.clone()).await.unwrap();
        }
        w.commit().await.unwrap();
        let (meta, mut input) = dir.open("big.bin").await.unwrap();
        assert_eq!(meta.size, Some(3 * chunk.len() as u64));
        let mut n = 0;
        loop {
            let got = input.read(1 << 20).await.unwrap();
            if got.is_empty() {
                break;
            }
            n += got.len();
        }
        assert_eq!(n, 3 * chunk.len());

        assert!(matches!(dir.open("missing").await, Err(ObjectsError::NotFound { .. })));
        assert!(matches!(dir.open("a/b").await, Err(ObjectsError::NotFound { .. })), "a folder is not an object");
        assert!(matches!(dir.open("a/../x").await, Err(ObjectsError::BadKey { .. })));
        assert!(
            matches!(dir.open("big.bin#1").await, Err(ObjectsError::BadKey { .. })),
            "a staging name is never an object"
        );
        assert!(dir.target(render("out#12")).open(1, None).await.is_err(), "nor is it written");
    }

    #[test]
    fn staging_names_are_told_apart() {
        assert!(is_staging_name("a/b.jpg#3"));
        assert!(is_staging_name("x#12"));
        assert!(!is_staging_name("a#1/b.jpg"), "only the file name counts");
        assert!(!is_staging_name("tag#v1"));
        assert!(!is_staging_name("x#"));
    }

    #[tokio::test]
    async fn a_fifo_in_the_folder_is_refused_not_waited_on() {
        let tmp = tempfile::tempdir().unwrap();
        let fifo = tmp.path().join("pipe");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let dir = LocalDir::new(tmp.path().to_path_buf(), "b".into());
        let opened =
            tokio::time::timeout(Duration::from_secs(5), dir.open("pipe")).await.expect("open returned at once");
        match opened {
            Err(ObjectsError::Store { message, .. }) => assert!(message.contains("not a regular file"), "{message}"),
            other => panic!("{:?}", other.map(|(m, _)| m.key)),
        }
    }
}
