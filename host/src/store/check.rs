//! `kiln store check` and `kiln store backup`: the store is never silently
//! lost or silently corrupt.
//!
//! - [`check_file`] runs redb's integrity check (checksums of every page and
//!   the allocator state) and then walks every table, decoding every record,
//!   so a damaged byte is found now and named (table, job, task), not later
//!   as one failing API call.
//! - [`Store::backup_to`] copies every table inside one read transaction: a
//!   consistent snapshot taken while the daemon runs, which never waits for
//!   writers and never blocks them. The copy is a fresh, compact redb file.

use std::path::Path;

use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    WriteTransaction,
};
use serde::Serialize;

use super::outbox::{DEAD_EVENTS, JOB_SECRETS, OUTBOX, OUTBOX_BY_JOB, WEBHOOK_DELIVERIES};
use super::{
    At, ETAGS, JOBS, META, PLUGIN_UPLOADS, PLUGINS, ROLES, Result, STYLES, Store, StoreError, TASK_ERRORS, TASK_KEYS,
    TASK_STATE, TASKS, TENANT_JOBS, TENANTS, TOKENS, corrupt,
};
use crate::auth::{RoleRecord, TenantRecord, TokenRecord};
use crate::model::{JobRecord, PluginRecord, StyleRecord};

/// redb's page size: its default, which `Store::open` keeps (only a write
/// transaction would report it, and a check never writes).
const PAGE_SIZE: u64 = 4096;

/// At most this many problems are listed; the count is always whole.
const MAX_LISTED: usize = 100;

/// What `kiln store check` found.
#[derive(Debug, Default, Serialize)]
pub struct CheckReport {
    /// redb's own check: page checksums and the allocator state.
    pub integrity_ok: bool,
    /// What redb's check said when it failed with an error.
    pub integrity_error: Option<String>,
    /// Each table: records read, and the space they take.
    pub tables: Vec<TableReport>,
    /// The file's size.
    pub file_bytes: u64,
    /// How many records failed to decode (all of them counted).
    pub problem_count: u64,
    /// The first problems, each naming the table and the record.
    pub problems: Vec<String>,
}

/// One table in a [`CheckReport`]: where a store's bytes go.
#[derive(Debug, Default, Serialize)]
pub struct TableReport {
    pub name: &'static str,
    pub records: u64,
    /// Keys and values as inserted.
    pub stored_bytes: u64,
    /// The bytes of its B-tree's pages (leaves and branches), whole.
    pub page_bytes: u64,
}

impl CheckReport {
    /// Records of `table`, if it was read.
    pub fn records(&self, table: &str) -> Option<u64> {
        self.tables.iter().find(|t| t.name == table).map(|t| t.records)
    }

    pub fn is_clean(&self) -> bool {
        self.integrity_ok && self.problem_count == 0
    }

    fn problem(&mut self, e: StoreError) {
        self.problem_count += 1;
        if self.problems.len() < MAX_LISTED {
            self.problems.push(e.to_string());
        }
    }
}

/// Check the store file at `path` (the daemon must be stopped: redb allows
/// one process). Never writes to it.
pub fn check_file(path: &Path) -> Result<CheckReport> {
    let shown = path.display().to_string();
    let open_error = |e: &dyn std::fmt::Display| StoreError::Open { path: shown.clone(), message: e.to_string() };
    let meta = std::fs::metadata(path).map_err(|e| open_error(&e))?;
    if meta.len() == 0 {
        return Err(open_error(&"the file is empty (0 bytes): restore it from a backup"));
    }
    let mut db = Database::builder().open(path).map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => open_error(
            &"the daemon has it open: stop the daemon, or check a copy (`kiln store backup copy.redb`, then `kiln store check --file copy.redb`)",
        ),
        e => open_error(&e),
    })?;
    let mut report = CheckReport { file_bytes: meta.len(), ..CheckReport::default() };
    match db.check_integrity() {
        Ok(ok) => report.integrity_ok = ok,
        Err(e) => report.integrity_error = Some(e.to_string()),
    }
    // Walk even a store that failed the check: what still reads is worth knowing.
    let walked = db.begin_read().map_err(StoreError::from).and_then(|txn| walk(&txn, &mut report));
    if let Err(e) = walked {
        report.problem(e);
    }
    Ok(report)
}

/// Read every record of every table; decode those that hold JSON.
fn walk(txn: &ReadTransaction, report: &mut CheckReport) -> Result<()> {
    for table in [
        len(txn, "meta", META)?,
        len(txn, "task_keys", TASK_KEYS)?,
        len(txn, "task_state", TASK_STATE)?,
        len(txn, "task_errors", TASK_ERRORS)?,
        len(txn, "tenant_jobs", TENANT_JOBS)?,
        len(txn, "etags", ETAGS)?,
        len(txn, "outbox_by_job", OUTBOX_BY_JOB)?,
        len(txn, "job_secrets", JOB_SECRETS)?,
    ] {
        report.tables.push(table);
    }

    decode_all::<u64, JobRecord>(txn, JOBS, "jobs", report, |id| At::Job(id).to_string())?;
    let tasks = txn.open_table(TASKS)?;
    let mut n = 0;
    for e in tasks.iter()? {
        let (k, v) = e?;
        n += 1;
        let (job, seq) = k.value();
        if let Err(e) = super::decode_task(job, seq, v.value()) {
            report.problem(e);
        }
    }
    report.tables.push(table_report("tasks", n, &tasks)?);
    decode_all::<u64, serde_json::Value>(txn, OUTBOX, "outbox", report, |seq| At::Event(seq).to_string())?;
    decode_all::<(u64, u64), serde_json::Value>(txn, DEAD_EVENTS, "dead_events", report, |(_, seq)| {
        At::Event(seq).to_string()
    })?;
    decode_all::<u64, super::outbox::Deliveries>(txn, WEBHOOK_DELIVERIES, "webhook_deliveries", report, |id| {
        At::Job(id).to_string()
    })?;
    decode_all::<&str, StyleRecord>(txn, STYLES, "styles", report, |name| At::Name(name).to_string())?;
    decode_all::<&str, TenantRecord>(txn, TENANTS, "tenants", report, |name| At::Name(name).to_string())?;
    decode_all::<&str, TokenRecord>(txn, TOKENS, "tokens", report, |name| At::Name(name).to_string())?;
    decode_all::<&str, RoleRecord>(txn, ROLES, "roles", report, |name| At::Name(name).to_string())?;
    decode_all::<&str, PluginRecord>(txn, PLUGINS, "plugins", report, |name| At::Name(name).to_string())?;
    decode_all::<&str, PluginRecord>(txn, PLUGIN_UPLOADS, "plugin_uploads", report, |name| At::Name(name).to_string())?;
    Ok(())
}

fn table_report(name: &'static str, records: u64, table: &impl ReadableTableMetadata) -> Result<TableReport> {
    let stats = table.stats()?;
    Ok(TableReport {
        name,
        records,
        stored_bytes: stats.stored_bytes(),
        page_bytes: (stats.leaf_pages() + stats.branch_pages()) * PAGE_SIZE,
    })
}

fn len<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &ReadTransaction,
    name: &'static str,
    table: TableDefinition<K, V>,
) -> Result<TableReport> {
    // Iterate rather than `len()`: every page is read, so a damaged one shows.
    let table = txn.open_table(table)?;
    let mut n = 0;
    for e in table.iter()? {
        e?;
        n += 1;
    }
    table_report(name, n, &table)
}

/// Decode every JSON record of a table, naming each one that fails by
/// `at(key)`; counts the records.
fn decode_all<K: redb::Key + 'static, T: serde::de::DeserializeOwned>(
    txn: &ReadTransaction,
    table: TableDefinition<K, &[u8]>,
    name: &'static str,
    report: &mut CheckReport,
    at: impl Fn(K::SelfType<'_>) -> String,
) -> Result<()> {
    let table = txn.open_table(table)?;
    let mut n = 0;
    for e in table.iter()? {
        let (k, v) = e?;
        n += 1;
        // `at` formats the key only for a record that fails.
        if let Err(e) = serde_json::from_slice::<T>(v.value()) {
            report.problem(corrupt(name, at(k.value()), e));
        }
    }
    report.tables.push(table_report(name, n, &table)?);
    Ok(())
}

impl Store {
    /// Write a consistent copy of the store to `dest` (which must not exist)
    /// while the daemon runs. Returns the copy's size in bytes.
    pub fn backup_to(&self, dest: &Path) -> Result<u64> {
        let shown = dest.display().to_string();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(dest)
            .map_err(|e| StoreError::Open { path: shown.clone(), message: e.to_string() })?;
        let open_error = |e: redb::DatabaseError| StoreError::Open { path: shown.clone(), message: e.to_string() };
        let backend = redb::backends::FileBackend::new(file).map_err(open_error)?;
        let copy = Database::builder().create_with_backend(backend).map_err(open_error)?;
        let from = self.begin_read()?;
        let to = copy.begin_write()?;
        copy_table(&from, &to, META)?;
        copy_table(&from, &to, JOBS)?;
        copy_table(&from, &to, TASKS)?;
        copy_table(&from, &to, TASK_KEYS)?;
        copy_table(&from, &to, TASK_STATE)?;
        copy_table(&from, &to, TASK_ERRORS)?;
        copy_table(&from, &to, TENANT_JOBS)?;
        copy_table(&from, &to, STYLES)?;
        copy_table(&from, &to, TENANTS)?;
        copy_table(&from, &to, TOKENS)?;
        copy_table(&from, &to, ROLES)?;
        copy_table(&from, &to, PLUGINS)?;
        copy_table(&from, &to, PLUGIN_UPLOADS)?;
        copy_table(&from, &to, ETAGS)?;
        copy_table(&from, &to, OUTBOX)?;
        copy_table(&from, &to, OUTBOX_BY_JOB)?;
        copy_table(&from, &to, DEAD_EVENTS)?;
        copy_table(&from, &to, JOB_SECRETS)?;
        copy_table(&from, &to, WEBHOOK_DELIVERIES)?;
        to.commit()?;
        drop(copy);
        std::fs::metadata(dest).map(|m| m.len()).map_err(|e| StoreError::Open { path: shown, message: e.to_string() })
    }
}

fn copy_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    from: &ReadTransaction,
    to: &WriteTransaction,
    table: TableDefinition<K, V>,
) -> Result<()> {
    let source = from.open_table(table)?;
    let mut target = to.open_table(table)?;
    for e in source.iter()? {
        let (k, v) = e?;
        target.insert(k.value(), v.value())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::JobState;

    #[test]
    fn a_backup_taken_while_open_checks_clean_and_holds_every_record() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("k.redb")).unwrap();
        let job = store.create_job(super::super::tests::spec(), None, JobState::Running).unwrap().unwrap();
        store.add_planned(job.id, &super::super::tests::planned(&["a", "b"]), None, false).unwrap();
        let copy = dir.path().join("copy.redb");
        assert!(store.backup_to(&copy).unwrap() > 0);
        assert!(store.backup_to(&copy).is_err(), "an existing file is never overwritten");
        let report = check_file(&copy).unwrap();
        assert!(report.is_clean(), "{report:?}");
        assert!(report.records("jobs") == Some(1) && report.records("tasks") == Some(2), "{report:?}");
        let reopened = Store::open(&copy).unwrap();
        assert_eq!(reopened.get_job(job.id).unwrap().unwrap().spec.style, job.spec.style);
    }

    #[test]
    fn a_record_that_does_not_decode_is_named_by_job_and_task() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.redb");
        let store = Store::open(&path).unwrap();
        let job = store.create_job(super::super::tests::spec(), None, JobState::Running).unwrap().unwrap();
        store.add_planned(job.id, &super::super::tests::planned(&["a", "b"]), None, false).unwrap();
        let txn = store.begin_write().unwrap();
        txn.open_table(TASKS).unwrap().insert((job.id, 1), b"{not json".as_slice()).unwrap();
        store.commit(txn).unwrap();
        let err = store.get_task(job.id, 1).unwrap_err().to_string();
        assert!(err.contains(&format!("job {}, task 1", job.id)) && err.contains("`tasks`"), "{err}");
        drop(store);
        let report = check_file(&path).unwrap();
        assert!(report.integrity_ok && !report.is_clean());
        assert_eq!(report.problem_count, 1);
        assert!(report.problems[0].contains(&format!("job {}, task 1", job.id)), "{report:?}");
    }

    #[test]
    fn an_empty_file_is_refused_by_the_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.redb");
        std::fs::write(&path, b"").unwrap();
        let err = check_file(&path).unwrap_err().to_string();
        assert!(err.contains("empty (0 bytes)"), "{err}");
    }
}
