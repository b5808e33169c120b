//! What the API asks of jobs: create, suspend, resume, cancel, retry the
//! failed tasks, change the priority, delete; and resuming Running jobs at
//! start-up. Each change is one store transaction, then told to listeners.

use super::*;

impl Jobs {
    /// Validate and store a job for `caller`; start it unless `start` is false (then it is Ready).
    pub async fn create(&self, caller: &Principal, spec: JobSpec, start: bool) -> Result<JobRecord, JobError> {
        let tenant = caller.tenant().map(str::to_string);
        let prepared = prepare::prepare(&spec, tenant.as_deref(), &self.prepare_context()).await?;
        self.check_at_creation(&spec).await?;
        let state = if start { JobState::Running } else { JobState::Ready };
        // The store refuses a job created Running at its tenant's `running_jobs` quota.
        let job = self.inner.store.call(move |s| s.create_job(spec, tenant, state)).await.map_err(internal)??;
        publish(&self.inner, &job);
        if start {
            self.insert_active(&job, prepared);
        }
        Ok(job)
    }

    /// The checks made when a job is created (and by a dry run), not each time
    /// it is prepared again (resume, restart): the manifest exists, and the
    /// webhook goes where the daemon's policy allows.
    pub(super) async fn check_at_creation(&self, spec: &JobSpec) -> Result<(), JobError> {
        prepare::check_manifest(spec, &self.inner.buckets).await?;
        if let Some(n) = &spec.notify {
            crate::notify::check_destination(&n.url, self.inner.webhooks_allow_private)
                .await
                .map_err(|e| JobError::Invalid { field: "notify.url", message: e.to_string() })?;
        }
        Ok(())
    }

    /// A tenant's quotas (the defaults if the tenant is unknown).
    pub fn quotas(&self, tenant: &str) -> Quotas {
        self.inner.quotas.read().unwrap().get(tenant).copied().unwrap_or_default()
    }

    /// Record a tenant's new quotas (or, with `None`, its deletion).
    pub fn set_quotas(&self, tenant: &str, quotas: Option<Quotas>) {
        let mut all = self.inner.quotas.write().unwrap();
        match quotas {
            Some(q) => all.insert(tenant.to_string(), q),
            None => all.remove(tenant),
        };
        drop(all);
        self.inner.wake.notify_one();
    }

    /// Serve a job that was Running when the daemon stopped, without calling
    /// its plugin (see [`prepare::PrepareContext::validate_params`]).
    pub(super) async fn resume_at_start(&self, job: &JobRecord) -> Result<(), JobError> {
        let cx = prepare::PrepareContext { validate_params: false, ..self.prepare_context() };
        let prepared = prepare::prepare(&job.spec, job.tenant.as_deref(), &cx).await?;
        self.insert_active(job, prepared);
        Ok(())
    }

    /// [`Jobs::resume_at_start`] once the job's plugin has compiled; if it
    /// fails to, the job fails, naming why.
    pub(super) async fn resume_when_plugin_ready(&self, job: JobRecord) {
        loop {
            // A compile may end between the check and the wait: look again now and then.
            let _ = tokio::time::timeout(Duration::from_secs(2), self.inner.plugins.compile_ended()).await;
            // Cancelled, suspended or deleted meanwhile: nothing to resume.
            let id = job.id;
            let job = match self.inner.store.call(move |s| s.get_job(id)).await {
                Ok(Some(job)) if job.state == JobState::Running => job,
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(job = id, error = %e, "reading a job waiting for its plugin");
                    continue;
                }
            };
            match self.resume_at_start(&job).await {
                Ok(()) => {
                    tracing::info!(job = job.id, "job resumed: its plugin is ready");
                    self.inner.wake.notify_one();
                    return;
                }
                Err(JobError::PluginNotReady { failure: None, .. }) => continue,
                Err(e) => return self.fail_job(job.id, format!("cannot resume after restart: {e}")).await,
            }
        }
    }

    /// The daemon is stopping: claim no task from now on. Tasks claimed but
    /// not started go back to Pending, their attempt uncounted.
    pub fn stop_claiming(&self) {
        self.inner.stopping.store(true, std::sync::atomic::Ordering::SeqCst);
        self.inner.executor.stopping();
        self.inner.wake.notify_one();
    }

    /// After [`Jobs::stop_claiming`]: wait up to `grace` for the tasks in
    /// flight to finish, then for their results to be committed. Returns how
    /// many tasks were still running at the end of the grace period (they run
    /// again at the next start).
    pub async fn drain(&self, grace: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + grace;
        let running = loop {
            let running: usize = self.inner.active.lock().unwrap().values().map(|a| a.in_flight).sum();
            if running == 0 || tokio::time::Instant::now() >= deadline {
                break running;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        // The group commit takes milliseconds, or retries while the store is unavailable.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while self.inner.uncommitted.load(std::sync::atomic::Ordering::SeqCst) > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        running
    }

    /// Whether a Running job uses the plugin stored under `key` (`owner/name`).
    pub fn plugin_in_use(&self, key: &str) -> Option<JobId> {
        self.inner.active.lock().unwrap().iter().find(|(_, a)| a.prepared.plugin_key == key).map(|(id, _)| *id)
    }

    fn insert_active(&self, job: &JobRecord, prepared: Arc<Prepared>) {
        let start_planner = {
            let mut active = self.inner.active.lock().unwrap();
            let entry = active.entry(job.id).or_insert_with(|| Active::new(prepared));
            // Resumed or retried: a fast-fail halt belongs to the run before.
            entry.halted = false;
            entry.activations += 1;
            let start = !job.planning.done && !entry.planner_running;
            entry.planner_running |= start;
            start
        };
        if start_planner {
            let planner = Planner::new(self.inner.clone(), job.id, job.spec.clone(), job.planning.cursor.clone());
            self.inner.loops.spawn(planner);
        }
        self.inner.wake.notify_one();
    }

    /// A job that `caller` may see. Another tenant's job is "not found": its existence does not leak.
    pub async fn get(&self, caller: &Principal, id: JobId) -> Result<JobRecord, JobError> {
        let job = self.inner.store.call(move |s| s.get_job(id)).await.map_err(internal)?;
        job.filter(|j| caller.owns(j.tenant.as_deref())).ok_or(JobError::NotFound(id))
    }

    /// Change a job of `caller` in one store transaction, and tell listeners.
    /// `f` refuses the change with an error; another tenant's job is not found.
    async fn update_owned(
        &self,
        caller: &Principal,
        id: JobId,
        f: impl FnOnce(&mut JobRecord) -> Result<(), JobError> + Send + 'static,
    ) -> Result<JobRecord, JobError> {
        let caller = caller.clone();
        let result = self
            .inner
            .store
            .call(move |s| {
                s.update_job(id, |job| {
                    if !caller.owns(job.tenant.as_deref()) {
                        return Err(JobError::NotFound(id));
                    }
                    f(job)
                })
            })
            .await
            .map_err(internal)?;
        let job = result.ok_or(JobError::NotFound(id))??;
        publish(&self.inner, &job);
        Ok(job)
    }

    /// Move a job between states, refusing moves the state machine does not allow.
    async fn transition(
        &self,
        caller: &Principal,
        id: JobId,
        action: &'static str,
        allowed: &'static [JobState],
        to: JobState,
    ) -> Result<JobRecord, JobError> {
        self.update_owned(caller, id, move |job| {
            if !allowed.contains(&job.state) {
                return Err(JobError::WrongState { id, state: job.state.as_str(), action });
            }
            if to == JobState::Running && job.state == JobState::Suspended {
                // The reason it was suspended for (a full disk) is over.
                job.error = None;
            }
            job.state = to;
            if to.is_terminal() {
                job.finished_at = Some(now());
            }
            Ok(())
        })
        .await
    }

    /// Change a job's priority, also while it runs.
    pub async fn set_priority(&self, caller: &Principal, id: JobId, priority: i32) -> Result<JobRecord, JobError> {
        let job = self
            .update_owned(caller, id, move |job| {
                job.spec.priority = priority;
                Ok(())
            })
            .await?;
        if let Some(a) = self.inner.active.lock().unwrap().get_mut(&id) {
            a.priority = priority;
        }
        self.inner.wake.notify_one();
        Ok(job)
    }

    /// Live updates of every job (each as it is after a change), and deletions.
    pub fn subscribe(&self) -> broadcast::Receiver<JobUpdate> {
        self.inner.updates.subscribe()
    }

    /// Stop claiming new tasks at once; tasks already running finish.
    pub async fn suspend(&self, caller: &Principal, id: JobId) -> Result<JobRecord, JobError> {
        self.transition(caller, id, "suspend", &[JobState::Running, JobState::Ready], JobState::Suspended).await
    }

    /// Go on from the planner's cursor and the pending tasks.
    pub async fn resume(&self, caller: &Principal, id: JobId) -> Result<JobRecord, JobError> {
        let current = self.get(caller, id).await?;
        // Prepared first: a job whose plugin, style or role is gone is refused
        // here, rather than left Running with nothing to schedule it.
        let prepared = prepare::prepare(&current.spec, current.tenant.as_deref(), &self.prepare_context()).await?;
        // Refused by the store at the tenant's `running_jobs` quota.
        let job =
            self.transition(caller, id, "resume", &[JobState::Suspended, JobState::Ready], JobState::Running).await?;
        self.insert_active(&job, prepared);
        // A job whose work was all done while suspended ends now.
        let job = self
            .inner
            .store
            .call(move |s| s.add_planned(id, &[], None, false).and_then(|_| s.get_job(id)))
            .await
            .map_err(internal)?;
        if let Some(j) = job.as_ref().filter(|j| j.state.is_terminal()) {
            publish(&self.inner, j);
        }
        report::jobs_changed(&self.inner, job.as_slice());
        job.ok_or(JobError::NotFound(id))
    }

    pub async fn cancel(&self, caller: &Principal, id: JobId) -> Result<JobRecord, JobError> {
        let job = self
            .transition(
                caller,
                id,
                "cancel",
                &[JobState::Ready, JobState::Running, JobState::Suspended],
                JobState::Cancelled,
            )
            .await?;
        report::jobs_changed(&self.inner, std::slice::from_ref(&job));
        Ok(job)
    }

    /// Re-drive only the failed tasks.
    pub async fn retry_failed(&self, caller: &Principal, id: JobId) -> Result<JobRecord, JobError> {
        let job = self.get(caller, id).await?;
        if !matches!(job.state, JobState::Failed | JobState::Succeeded | JobState::Running) || job.counters.failed == 0
        {
            return Err(JobError::WrongState {
                id,
                state: job.state.as_str(),
                action: "retry failed tasks: none failed, or the job is not running or ended",
            });
        }
        let prepared = prepare::prepare(&job.spec, job.tenant.as_deref(), &self.prepare_context()).await?;
        match self.inner.store.call(move |s| s.retry_failed(id)).await.map_err(internal)? {
            Ok(_) => {}
            Err(RetryRefused::State(state)) => {
                return Err(JobError::WrongState {
                    id,
                    state: state.as_str(),
                    action: "retry failed tasks: the job changed state meanwhile",
                });
            }
            // Refused by the store at the tenant's `running_jobs` quota, unless the job is Running already.
            Err(RetryRefused::Quota(full)) => return Err(full.into()),
        }
        let job = self.get(caller, id).await?;
        self.insert_active(&job, prepared);
        publish(&self.inner, &job);
        Ok(job)
    }

    /// Delete a job in a terminal state, with its tasks.
    pub async fn delete(&self, caller: &Principal, id: JobId) -> Result<(), JobError> {
        let job = self.get(caller, id).await?;
        if !job.state.is_terminal() {
            return Err(JobError::WrongState { id, state: job.state.as_str(), action: "delete (cancel it first)" });
        }
        self.inner.store.call(move |s| s.delete_job(id)).await.map_err(internal)?;
        // Live listeners end their streams with a `deleted` event.
        let _ = self.inner.updates.send(JobUpdate::Deleted(id));
        Ok(())
    }

    pub(super) async fn fail_job(&self, id: JobId, error: String) {
        fail_job(&self.inner, id, error).await
    }
}
