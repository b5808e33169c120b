//! The planner: pages through a job's selection and writes its tasks in
//! batches, each with the listing cursor, so planning resumes after a crash;
//! in trigger mode it then lists again (`follow`) or takes object events.

use super::*;

/// Keys listed per planner batch (one transaction each).
const PLAN_PAGE: usize = 1000;

/// Page through the selection, writing tasks and the cursor batch by batch.
pub(super) async fn planner(inner: Arc<Inner>, id: JobId, spec: JobSpec, cursor: Option<String>) {
    let mut result = plan(&inner, id, &spec, cursor).await;
    if result.is_ok() && spec.follow {
        result = follow(&inner, id, &spec).await;
    }
    if let Some(a) = inner.active.lock().unwrap().get_mut(&id) {
        a.planner_running = false;
    }
    match result {
        Err(e) => fail_job(&inner, id, e).await,
        // The listing may have ended the job (an empty selection): tell listeners.
        Ok(()) => {
            if let Ok(Some(job)) = inner.store.call(move |s| s.get_job(id)).await {
                publish(&inner, &job);
            }
        }
    }
    report::job_changed(&inner, id).await;
    inner.wake.notify_one();
}

/// The role a running job was prepared with.
fn job_role(inner: &Inner, id: JobId) -> Option<crate::auth::RoleRecord> {
    inner.active.lock().unwrap().get(&id).and_then(|a| a.prepared.role.clone())
}

/// A listing sees only what the job's role may read, as a listing made with
/// the role's own permissions would: keys outside are neither planned nor
/// shown. (A manifest names its keys itself: one outside the grants becomes a
/// task that fails with kind `grant`.)
pub(crate) fn listed_under_role(spec: &JobSpec, role: Option<&crate::auth::RoleRecord>, key: &str) -> bool {
    spec.input.manifest.is_some()
        || role.is_none_or(|r| r.allows(&spec.input.bucket, key, crate::auth::Access::Read).is_ok())
}

/// A page of the selection as tasks to plan: what the role lets the listing see.
fn to_plan(
    spec: &JobSpec,
    role: Option<&crate::auth::RoleRecord>,
    objects: Vec<crate::runtime::ObjectMeta>,
) -> Vec<PlannedObject> {
    objects
        .into_iter()
        .filter(|o| listed_under_role(spec, role, &o.key))
        .map(|o| PlannedObject { key: o.key, size: o.size, etag: o.etag, last_modified: o.last_modified })
        .collect()
}

/// Trigger mode by polling: after the backfill, list the selection again
/// every `follow_interval`, queueing new and changed objects, until the job
/// is no longer Running.
pub(super) async fn follow(inner: &Arc<Inner>, id: JobId, spec: &JobSpec) -> Result<(), String> {
    loop {
        let state = inner.store.call(move |s| s.get_job(id)).await.map_err(|e| e.to_string())?.map(|j| j.state);
        if state != Some(JobState::Running) {
            return Ok(());
        }
        tokio::time::sleep(spec.follow_interval).await;
        let mut pager = Pager::open(&inner.buckets, spec, None, PLAN_PAGE).await.map_err(|e| e.to_string())?;
        let role = job_role(inner, id);
        loop {
            let page = pager.next_page().await.map_err(|e| e.to_string())?;
            let objects = to_plan(spec, role.as_ref(), page.objects);
            let queued = inner.store.call(move |s| s.follow_planned(id, &objects)).await.map_err(|e| e.to_string())?;
            if queued > 0 {
                tracing::info!(job = id, queued, "follow: new or changed objects");
                inner.wake.notify_one();
            }
            if page.done {
                break;
            }
        }
    }
}

impl Jobs {
    /// An object-store event (an S3 notification) for a bucket: queue the
    /// object in every following Running job of `caller` whose selection
    /// holds it. Returns how many tasks were queued.
    pub async fn object_event(&self, caller: &Principal, bucket: &str, object: PlannedObject) -> Result<u64, JobError> {
        let candidates: Vec<JobId> = {
            let active = self.inner.active.lock().unwrap();
            active
                .iter()
                .filter(|(_, a)| {
                    let spec = &a.prepared.spec;
                    // Size and time filters apply when the event carries them; a
                    // missing value passes (the etag check still guards re-runs).
                    let meta = crate::runtime::ObjectMeta {
                        key: object.key.clone(),
                        size: object.size,
                        last_modified: object.last_modified,
                        ..Default::default()
                    };
                    spec.follow
                        && caller.owns(a.prepared.tenant.as_deref())
                        && spec.input.bucket == bucket
                        && object.key.starts_with(&spec.input.prefix)
                        && listed_under_role(spec, a.prepared.role.as_ref(), &object.key)
                        && crate::select::Filter::for_job(spec).is_ok_and(|f| f.matches_known(&meta))
                })
                .map(|(id, _)| *id)
                .collect()
        };
        let mut queued = 0;
        for id in candidates {
            let running = self
                .inner
                .store
                .call(move |s| s.get_job(id))
                .await
                .map_err(internal)?
                .is_some_and(|j| j.state == JobState::Running);
            if !running {
                continue;
            }
            let o = vec![object.clone()];
            queued += self.inner.store.call(move |s| s.follow_planned(id, &o)).await.map_err(internal)?;
        }
        if queued > 0 {
            self.inner.wake.notify_one();
        }
        Ok(queued)
    }
}

async fn plan(inner: &Arc<Inner>, id: JobId, spec: &JobSpec, cursor: Option<String>) -> Result<(), String> {
    let still_running = |job: Option<JobRecord>| job.is_some_and(|j| j.state == JobState::Running);
    if !spec.input.keys.is_empty() {
        // Explicit keys: metadata comes from the GET at run time.
        let chunks: Vec<Vec<PlannedObject>> = spec
            .input
            .keys
            .chunks(PLAN_PAGE)
            .map(|c| {
                c.iter()
                    .map(|k| PlannedObject { key: k.clone(), size: None, etag: None, last_modified: None })
                    .collect()
            })
            .collect();
        let n = chunks.len();
        for (i, chunk) in chunks.into_iter().enumerate() {
            let done = i + 1 == n;
            patiently(inner, move |s| s.add_planned(id, &chunk, None, done)).await?;
            inner.wake.notify_one();
        }
        if n == 0 {
            patiently(inner, move |s| s.add_planned(id, &[], None, true)).await?;
        }
        return Ok(());
    }
    let mut pager = Pager::open(&inner.buckets, spec, cursor.as_deref(), PLAN_PAGE).await.map_err(|e| e.to_string())?;
    let role = job_role(inner, id);
    loop {
        let page = pager.next_page().await.map_err(|e| e.to_string())?;
        let objects = to_plan(spec, role.as_ref(), page.objects);
        let (cursor, done) = (page.cursor, page.done);
        patiently(inner, move |s| s.add_planned(id, &objects, cursor.as_deref(), done)).await?;
        inner.wake.notify_one();
        if done {
            return Ok(());
        }
        // Stop when the job is suspended or cancelled; resume re-plans from the cursor.
        if !still_running(patiently(inner, move |s| s.get_job(id)).await?) {
            return Ok(());
        }
    }
}

/// A store call that waits out an unavailable store (a full disk: see
/// `store::health`) instead of failing the job; other errors are returned.
pub(super) async fn patiently<T: Send + 'static>(
    inner: &Inner,
    f: impl Fn(&Store) -> crate::store::Result<T> + Send + Sync + 'static,
) -> Result<T, String> {
    let f = Arc::new(f);
    let mut warned = false;
    loop {
        let call = f.clone();
        match inner.store.call(move |s| call(s)).await {
            Err(crate::store::StoreError::Unavailable(reason)) => {
                if !warned {
                    tracing::warn!(%reason, "the store is unavailable; planning waits for it");
                    warned = true;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            result => return result.map_err(|e| e.to_string()),
        }
    }
}
