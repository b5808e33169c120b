//! The planner: pages through a job's selection and writes its tasks in
//! batches, each with the listing cursor, so planning resumes after a crash;
//! in trigger mode it then lists again (`follow`) or takes object events.

use super::*;

/// Keys listed per planner batch (one transaction each).
const PLAN_PAGE: usize = 1000;

/// A job's planner, as a short background loop (`planner (job N)`): one
/// round pages through the whole selection, writing tasks and the cursor
/// batch by batch; in trigger mode by polling, each later round lists the
/// selection again, every `follow_interval`, while the job runs.
pub(super) struct Planner {
    inner: Arc<Inner>,
    id: JobId,
    spec: JobSpec,
    /// Where the first listing resumes (after a crash or a suspension).
    cursor: Option<String>,
    next: Next,
    /// Why planning failed: the job fails, and the planner stops.
    failed: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Next {
    Backfill,
    Follow,
    Done,
}

impl Planner {
    pub(super) fn new(inner: Arc<Inner>, id: JobId, spec: JobSpec, cursor: Option<String>) -> Planner {
        Planner { inner, id, spec, cursor, next: Next::Backfill, failed: None }
    }

    async fn still_running(&self) -> Result<bool, String> {
        let id = self.id;
        let job = self.inner.store.call(move |s| s.get_job(id)).await.map_err(|e| e.to_string())?;
        Ok(job.is_some_and(|j| j.state == JobState::Running))
    }

    /// The planner stops: the job may start again (resume), fails if planning
    /// did, and listeners hear of a listing that ended it (an empty selection).
    async fn finish(&mut self) {
        let (inner, id) = (&self.inner, self.id);
        if let Some(a) = inner.active.lock().unwrap().get_mut(&id) {
            a.planner_running = false;
        }
        match self.failed.take() {
            Some(e) => fail_job(inner, id, e).await,
            None => {
                if let Ok(Some(job)) = inner.store.call(move |s| s.get_job(id)).await {
                    publish(inner, &job);
                }
            }
        }
        report::job_changed(inner, id).await;
        inner.wake.notify_one();
    }
}

impl crate::background::Background for Planner {
    fn name(&self) -> String {
        format!("planner (job {})", self.id)
    }

    fn lasting(&self) -> bool {
        false
    }

    async fn wait(&mut self) -> bool {
        let go_on = match self.next {
            Next::Backfill => true,
            Next::Follow => {
                // Stop when the job is no longer Running; look again after the interval.
                let mut running = self.still_running().await;
                if running == Ok(true) {
                    tokio::time::sleep(self.spec.follow_interval).await;
                    running = self.still_running().await;
                }
                running.unwrap_or_else(|e| {
                    self.failed = Some(e);
                    false
                })
            }
            Next::Done => false,
        };
        if !go_on {
            self.finish().await;
        }
        go_on
    }

    async fn round(&mut self) -> Result<(), String> {
        let result = match self.next {
            Next::Backfill => plan(&self.inner, self.id, &self.spec, self.cursor.take()).await,
            _ => follow_once(&self.inner, self.id, &self.spec).await,
        };
        self.next = if result.is_ok() && self.spec.follow { Next::Follow } else { Next::Done };
        if let Err(e) = &result {
            self.failed = Some(e.clone());
        }
        result
    }
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

/// Trigger mode by polling: list the selection again, queueing new and changed objects.
async fn follow_once(inner: &Arc<Inner>, id: JobId, spec: &JobSpec) -> Result<(), String> {
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
            return Ok(());
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
