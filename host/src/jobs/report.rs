//! Completion reports: one row per task (source key, outputs, state, error,
//! attempts, bytes, duration), as CSV or JSON Lines. Served streamed by
//! `GET /v1/jobs/{id}/report`, and written to a bucket when a job whose spec
//! names a `report` ends. Either way the tasks are read a page at a time
//! through the store's cursor, so memory stays flat whatever the job's size.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use futures::Stream;

use crate::auth::{Access, RoleRecord};
use crate::model::{JobId, JobRecord, ReportFormat, ReportScope, ReportSpec, TaskRecord, TaskState};
use crate::objects::Buckets;
use crate::store::{Store, StoreError, TaskFilter};

use super::{Inner, JobError};

/// Tasks read per store page.
const PAGE: usize = 500;

/// The CSV header; JSON Lines rows have the same names.
pub const COLUMNS: [&str; 11] = [
    "source_key",
    "outputs",
    "state",
    "error_kind",
    "error_message",
    "attempts",
    "bytes_in",
    "bytes_out",
    "duration_ms",
    "result",
    "worker",
];

impl ReportFormat {
    pub fn content_type(self) -> &'static str {
        match self {
            ReportFormat::Csv => "text/csv; charset=utf-8",
            ReportFormat::Jsonl => "application/x-ndjson",
        }
    }
    pub fn extension(self) -> &'static str {
        match self {
            ReportFormat::Csv => "csv",
            ReportFormat::Jsonl => "jsonl",
        }
    }
}

/// A report spec's format: as given, else `jsonl` for keys ending `.jsonl`
/// or `.ndjson`, else CSV.
pub fn format_of(spec: &ReportSpec) -> ReportFormat {
    spec.format.unwrap_or_else(|| {
        let lower = spec.key.to_ascii_lowercase();
        if lower.ends_with(".jsonl") || lower.ends_with(".ndjson") { ReportFormat::Jsonl } else { ReportFormat::Csv }
    })
}

/// The report's key for job `id`.
pub fn render_key(spec: &ReportSpec, id: JobId) -> String {
    spec.key.replace("{jobid}", &id.to_string())
}

/// Checked at job creation: the bucket exists, the key is a valid key whose
/// only variable is `{jobid}`, and the job's role (if any) may write it.
pub fn check_spec(spec: &ReportSpec, role: Option<&RoleRecord>, buckets: &Buckets) -> Result<(), JobError> {
    let invalid = |field, message: String| JobError::Invalid { field, message };
    buckets.get(&spec.bucket).map_err(|e| invalid("report.bucket", e.to_string()))?;
    let without = spec.key.replace("{jobid}", "");
    if without.contains(['{', '}']) {
        return Err(invalid("report.key", format!("`{}`: the only variable of a report key is `{{jobid}}`", spec.key)));
    }
    let sample = render_key(spec, 1);
    crate::template::check_key(&sample)
        .map_err(|rule| invalid("report.key", format!("`{}` is not a valid key: {rule}", spec.key)))?;
    if let Some(role) = role {
        // Every id renders a key that starts with the text before `{jobid}`.
        let head = spec.key.split("{jobid}").next().unwrap_or("");
        let fixed = if spec.key.contains("{jobid}") { head } else { spec.key.as_str() };
        role.allows(&spec.bucket, fixed, Access::Write)
            .map_err(|e| JobError::Forbidden { field: "report.key", message: e.to_string() })?;
    }
    Ok(())
}

/// Append `field` to a CSV row, quoted when it holds a comma, a quote or a line end.
fn csv_field(out: &mut String, field: &str) {
    if field.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&field.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(field);
    }
}

/// The CSV header line.
pub fn csv_header() -> String {
    let mut line = COLUMNS.join(",");
    line.push_str("\r\n");
    line
}

/// One task as a CSV row (RFC 4180, CRLF line end); outputs joined with `;`.
pub fn csv_row(out: &mut String, t: &TaskRecord) {
    let (kind, message) = t.error.as_ref().map_or(("", ""), |e| (e.kind.as_str(), e.message.as_str()));
    let fields = [
        t.source_key.clone(),
        t.outputs.join(";"),
        t.state.as_str().to_string(),
        kind.to_string(),
        message.to_string(),
        t.attempts.to_string(),
        t.bytes_in.to_string(),
        t.bytes_out.to_string(),
        t.duration_ms.map(|d| d.to_string()).unwrap_or_default(),
        t.result.as_ref().map(|r| r.to_string()).unwrap_or_default(),
        t.worker.clone().unwrap_or_default(),
    ];
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        csv_field(out, f);
    }
    out.push_str("\r\n");
}

/// One task as a JSON Lines row.
pub fn jsonl_row(out: &mut String, t: &TaskRecord) {
    let row = serde_json::json!({
        "source_key": t.source_key,
        "outputs": t.outputs,
        "state": t.state,
        "error_kind": t.error.as_ref().map(|e| &e.kind),
        "error_message": t.error.as_ref().map(|e| &e.message),
        "attempts": t.attempts,
        "bytes_in": t.bytes_in,
        "bytes_out": t.bytes_out,
        "duration_ms": t.duration_ms,
        "result": t.result,
        "worker": t.worker,
    });
    out.push_str(&row.to_string());
    out.push('\n');
}

fn filter(scope: ReportScope) -> TaskFilter {
    TaskFilter { state: (scope == ReportScope::Failed).then_some(TaskState::Failed), ..Default::default() }
}

/// The report of job `id` as a stream of chunks, one per page of tasks.
/// Rows are in planning order; a job still running gives the rows so far.
pub fn stream(
    store: Store,
    id: JobId,
    format: ReportFormat,
    scope: ReportScope,
) -> impl Stream<Item = Result<Bytes, StoreError>> + Send + 'static {
    // State: the cursor of the next page, or `None` once done; whether the header is out.
    let start = (Some(None::<String>), format == ReportFormat::Csv);
    futures::stream::unfold(start, move |(cursor, header)| {
        let store = store.clone();
        async move {
            let cursor = cursor?;
            let page = store.call(move |s| s.list_tasks(id, &filter(scope), cursor.as_deref(), PAGE)).await;
            let (tasks, next) = match page {
                Ok(p) => p,
                Err(e) => return Some((Err(e), (None, false))),
            };
            let mut chunk = if header { csv_header() } else { String::new() };
            for t in &tasks {
                match format {
                    ReportFormat::Csv => csv_row(&mut chunk, t),
                    ReportFormat::Jsonl => jsonl_row(&mut chunk, t),
                }
            }
            Some((Ok(Bytes::from(chunk)), (next.map(Some), false)))
        }
    })
}

// ---- written to a bucket when a job ends ----

/// Called with jobs as they are after a change: a job that has ended and
/// names a report gets it written (again, if it ended again after retry-failed).
pub(super) fn jobs_changed(inner: &Arc<Inner>, jobs: &[JobRecord]) {
    for job in jobs.iter().filter(|j| j.state.is_terminal() && j.spec.report.is_some()) {
        // Only a daemon that is stopping has no writer left to hear it.
        let _ = inner.reports.send(job.id);
    }
}

/// Writes the reports of ended jobs, one at a time, as a background loop
/// (`reports`): a job that ends again while its report is due is written once.
pub(super) struct ReportWriter {
    pub inner: Arc<Inner>,
    pub rx: tokio::sync::mpsc::UnboundedReceiver<JobId>,
    /// Jobs whose report is due, oldest job first.
    pub due: BTreeSet<JobId>,
}

impl crate::background::Background for ReportWriter {
    fn name(&self) -> String {
        "reports".into()
    }

    async fn wait(&mut self) -> bool {
        if self.due.is_empty() {
            match self.rx.recv().await {
                Some(id) => self.due.insert(id),
                None => return false,
            };
        }
        while let Ok(id) = self.rx.try_recv() {
            self.due.insert(id);
        }
        true
    }

    async fn round(&mut self) -> Result<(), String> {
        let Some(id) = self.due.pop_first() else { return Ok(()) };
        write(&self.inner, id).await.map_err(|e| {
            tracing::warn!(job = id, error = %e, "writing the job's report failed");
            format!("job {id}: {e}")
        })
    }
}

/// After a change the caller did not see the result of: read the job and pass it on.
pub(super) async fn job_changed(inner: &Arc<Inner>, id: JobId) {
    if let Ok(Some(job)) = inner.store.call(move |s| s.get_job(id)).await {
        jobs_changed(inner, &[job]);
    }
}

/// At start-up: reports of jobs that ended in the last week but whose report
/// is missing (the daemon stopped before writing it) are written now.
pub(super) fn catch_up(inner: Arc<Inner>) {
    tokio::spawn(async move {
        let week_ago = crate::model::now() - 7 * 86_400;
        let ended = inner
            .store
            .call(|s| {
                s.jobs_in(&[
                    crate::model::JobState::Succeeded,
                    crate::model::JobState::Failed,
                    crate::model::JobState::Cancelled,
                ])
            })
            .await;
        let Ok(ended) = ended else { return };
        let mut missing = Vec::new();
        for job in ended.into_iter().filter(|j| j.finished_at.is_some_and(|t| t >= week_ago)) {
            let Some(spec) = &job.spec.report else { continue };
            let Ok(bucket) = inner.buckets.get(&spec.bucket) else { continue };
            if matches!(
                bucket.head(&render_key(spec, job.id)).await,
                Err(crate::objects::ObjectsError::NotFound { .. })
            ) {
                missing.push(job);
            }
        }
        jobs_changed(&inner, &missing);
    });
}

/// Write the report of job `id` as its spec asks: streamed into an upload
/// that is completed only when every row is written.
async fn write(inner: &Arc<Inner>, id: JobId) -> Result<(), String> {
    let Some(job) = inner.store.call(move |s| s.get_job(id)).await.map_err(|e| e.to_string())? else { return Ok(()) };
    let Some(spec) = job.spec.report.clone() else { return Ok(()) };
    let key = render_key(&spec, id);
    // The role may have changed since the job was created.
    let role = super::resolve_role(&inner.store, job.tenant.as_deref(), job.spec.role.as_deref())
        .map_err(|e| e.to_string())?;
    if let Some(role) = role {
        role.allows(&spec.bucket, &key, Access::Write).map_err(|e| e.to_string())?;
    }
    let bucket = inner.buckets.get(&spec.bucket).map_err(|e| e.to_string())?;
    let shown_key = key.clone();
    let mut target = bucket.target(Box::new(move |_, _, _| Ok(shown_key.clone())));
    let mut writer = target.open(1, None).await?;
    let mut rows = std::pin::pin!(stream(inner.store.clone(), id, format_of(&spec), spec.scope));
    while let Some(chunk) = futures::StreamExt::next(&mut rows).await {
        let written = match chunk {
            Ok(bytes) => writer.write(bytes).await,
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = written {
            writer.abort().await;
            return Err(e);
        }
    }
    writer.commit().await?;
    tracing::info!(job = id, bucket = %spec.bucket, key = %key, "report written");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TaskErrorRecord;

    fn task(key: &str, state: TaskState) -> TaskRecord {
        TaskRecord {
            job: 1,
            seq: 1,
            source_key: key.into(),
            size: None,
            etag: None,
            last_modified: None,
            state,
            attempts: 1,
            outputs: vec![],
            error: None,
            duration_ms: Some(7),
            bytes_in: 3,
            bytes_out: 0,
            finished_at: None,
            result: None,
            worker: None,
        }
    }

    #[test]
    fn csv_rows_quote_what_needs_quoting() {
        let mut t = task("a,b \"c\".txt", TaskState::Failed);
        t.error =
            Some(TaskErrorRecord { kind: crate::runtime::TaskErrorKind::Failed, message: "line one\nline two".into() });
        let mut out = String::new();
        csv_row(&mut out, &t);
        assert_eq!(out, "\"a,b \"\"c\"\".txt\",,failed,failed,\"line one\nline two\",1,3,0,7,,\r\n");
        let mut t = task("x.txt", TaskState::Succeeded);
        t.outputs = vec!["o/1.txt".into(), "o/2.txt".into()];
        t.duration_ms = None;
        let mut out = String::new();
        csv_row(&mut out, &t);
        assert_eq!(out, "x.txt,o/1.txt;o/2.txt,succeeded,,,1,3,0,,,\r\n");
        assert_eq!(
            csv_header(),
            "source_key,outputs,state,error_kind,error_message,attempts,bytes_in,bytes_out,duration_ms,result,worker\r\n"
        );
    }

    #[test]
    fn jsonl_rows_have_the_same_columns() {
        let mut out = String::new();
        jsonl_row(&mut out, &task("k", TaskState::Succeeded));
        let v: serde_json::Value = serde_json::from_str(out.trim_end()).unwrap();
        let names: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut want = COLUMNS.to_vec();
        want.sort();
        assert_eq!(names, want);
        assert_eq!(v["error_kind"], serde_json::Value::Null);
    }

    #[test]
    fn report_keys_and_formats() {
        let spec = ReportSpec {
            bucket: "b".into(),
            key: "reports/{jobid}.jsonl".into(),
            format: None,
            scope: ReportScope::All,
        };
        assert_eq!(render_key(&spec, 42), "reports/42.jsonl");
        assert_eq!(format_of(&spec), ReportFormat::Jsonl);
        let spec = ReportSpec { key: "r/{jobid}".into(), ..spec };
        assert_eq!(format_of(&spec), ReportFormat::Csv);
    }
}
