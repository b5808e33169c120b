//! The store's health: a full or failing disk is a pause, not a death.
//!
//! When a write fails with an I/O error (the disk is full, or gone
//! read-only), redb refuses every later call with "Previous I/O error
//! occurred" until the database is opened again. So the first such error
//! marks the store *unavailable* with its reason and takes the database out:
//! every call answers [`StoreError::Unavailable`] at once (the API maps it to
//! 503 and `/readyz` says why), and [`Store::try_recover`], which the daemon
//! calls every few hundred milliseconds meanwhile, opens the file again and
//! proves it with a small write. Nothing that was committed is lost: redb
//! only ever exposes committed transactions, and reopening repairs the rest.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use redb::{Database, ReadTransaction, ReadableDatabase, WriteTransaction};

use super::{META, Result, Store, StoreError};

/// The open database, or why it is not open.
pub(super) struct Handle {
    pub(super) path: PathBuf,
    db: RwLock<Option<Arc<Database>>>,
    unavailable: Mutex<Option<String>>,
}

impl Handle {
    pub(super) fn new(path: PathBuf, db: Database) -> Handle {
        Handle { path, db: RwLock::new(Some(Arc::new(db))), unavailable: Mutex::new(None) }
    }
}

impl Store {
    /// The database, unless a disk error took it out.
    pub(super) fn db(&self) -> Result<Arc<Database>> {
        if let Some(reason) = self.handle.unavailable.lock().unwrap().clone() {
            return Err(StoreError::Unavailable(reason));
        }
        let db = self.handle.db.read().unwrap().clone();
        db.ok_or_else(|| StoreError::Unavailable("the store is being reopened".into()))
    }

    pub(super) fn begin_write(&self) -> Result<WriteTransaction> {
        self.db()?.begin_write().map_err(|e| self.failed(e.into()))
    }

    pub(super) fn begin_read(&self) -> Result<ReadTransaction> {
        self.db()?.begin_read().map_err(|e| self.failed(e.into()))
    }

    pub(super) fn commit(&self, txn: WriteTransaction) -> Result<()> {
        txn.commit().map_err(|e| self.failed(e.into()))
    }

    /// An error from the database: an I/O error makes the store unavailable.
    pub(super) fn failed(&self, e: StoreError) -> StoreError {
        let StoreError::Io(reason) = e else { return e };
        let mut unavailable = self.handle.unavailable.lock().unwrap();
        if unavailable.is_none() {
            tracing::error!(
                path = %self.handle.path.display(),
                %reason,
                "the store cannot be written; refusing writes until it can be reopened"
            );
            *unavailable = Some(reason.clone());
        }
        drop(unavailable);
        self.handle.db.write().unwrap().take();
        StoreError::Unavailable(reason)
    }

    /// The store's file.
    pub fn path(&self) -> &std::path::Path {
        &self.handle.path
    }

    /// Why the store is unavailable, if it is.
    pub fn unavailable(&self) -> Option<String> {
        self.handle.unavailable.lock().unwrap().clone()
    }

    /// Reopen an unavailable store and prove it with a write. True when the
    /// store is available (again). Blocking: call it off the async threads.
    pub fn try_recover(&self) -> bool {
        if self.handle.unavailable.lock().unwrap().is_none() {
            return true;
        }
        // A call that began before the failure may still hold the old
        // database; it will fail fast. Opening again while it lives is
        // refused ("already open"), and the next try succeeds.
        let db = match super::open_database(&self.handle.path) {
            Ok(db) => db,
            Err(e) => {
                tracing::debug!(error = %e, "the store cannot be reopened yet");
                return false;
            }
        };
        let probe = (|| -> Result<()> {
            let txn = db.begin_write()?;
            txn.open_table(META)?.insert("last_reopened", crate::model::now().to_string().as_str())?;
            txn.commit()?;
            Ok(())
        })();
        if let Err(e) = probe {
            tracing::debug!(error = %e, "the reopened store cannot be written yet");
            return false;
        }
        *self.handle.db.write().unwrap() = Some(Arc::new(db));
        let reason = self.handle.unavailable.lock().unwrap().take();
        tracing::info!(path = %self.handle.path.display(), was = ?reason, "the store is writable again");
        true
    }

    /// Reopen the store by itself whenever it is unavailable; runs for the daemon's life.
    pub async fn watch_health(self) {
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            if self.unavailable().is_some() {
                let store = self.clone();
                let _ = tokio::task::spawn_blocking(move || store.try_recover()).await;
            }
        }
    }

    /// Make the next write fail as a full disk would (tests of recovery).
    #[doc(hidden)]
    pub fn fail_for_tests(&self, reason: &str) {
        self.failed(StoreError::Io(reason.into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_io_error_makes_the_store_unavailable_until_it_is_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("k.redb")).unwrap();
        let job =
            store.create_job(super::super::tests::spec(), None, crate::model::JobState::Running).unwrap().unwrap();
        store.fail_for_tests("No space left on device (os error 28)");
        let err = store.get_job(job.id).unwrap_err();
        assert!(matches!(&err, StoreError::Unavailable(r) if r.contains("No space left")), "{err}");
        assert_eq!(store.unavailable().as_deref(), Some("No space left on device (os error 28)"));
        assert!(store.try_recover());
        assert_eq!(store.unavailable(), None);
        assert_eq!(store.get_job(job.id).unwrap().unwrap().id, job.id, "what was committed is still there");
    }
}
