//! The tenants' `running_jobs` quota, enforced in the very write transaction
//! that makes a job Running (create, resume, retry-failed). redb has one
//! writer at a time, so concurrent requests are serialised here and cannot
//! pass the quota together, as a check made before the transaction could.

use redb::{ReadableTable, WriteTransaction};

use super::{At, JOBS, Result, TENANT_JOBS, TENANTS, decode};
use crate::auth::TenantRecord;
use crate::model::{JobRecord, JobState};

/// A tenant already runs as many jobs as its `running_jobs` quota allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tenant `{tenant}` already has {running} running jobs, its `running_jobs` quota")]
pub struct RunningJobsFull {
    pub tenant: String,
    pub running: u32,
}

/// Only the state of a job record: counting needs no more.
#[derive(serde::Deserialize)]
struct StateOnly {
    state: JobState,
}

/// May `job` become Running, coming from `before`? Refused if it is a
/// tenant's job and the tenant already has its quota of Running jobs (the
/// quota as stored with the tenant; an unknown tenant has no cap here).
pub(super) fn may_start(
    txn: &WriteTransaction,
    before: Option<JobState>,
    job: &JobRecord,
) -> Result<std::result::Result<(), RunningJobsFull>> {
    let Some(tenant) = job.tenant.as_deref() else { return Ok(Ok(())) };
    if job.state != JobState::Running || before == Some(JobState::Running) {
        return Ok(Ok(()));
    }
    let record: Option<TenantRecord> =
        txn.open_table(TENANTS)?.get(tenant)?.map(|v| decode("tenants", At::Name(tenant), v.value())).transpose()?;
    let Some(quota) = record.map(|r| r.quotas.running_jobs) else { return Ok(Ok(())) };
    let jobs = txn.open_table(JOBS)?;
    let mut running = 0;
    for entry in txn.open_table(TENANT_JOBS)?.range((tenant, 0)..=(tenant, u64::MAX))? {
        if running >= quota {
            break;
        }
        let id = entry?.0.value().1;
        let Some(v) = jobs.get(id)?.filter(|_| id != job.id) else { continue };
        if decode::<StateOnly>("jobs", At::Job(id), v.value())?.state == JobState::Running {
            running += 1;
        }
    }
    if running >= quota {
        return Ok(Err(RunningJobsFull { tenant: tenant.to_string(), running }));
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use crate::auth::{Quotas, TenantRecord};
    use crate::model::JobState;
    use crate::store::Store;
    use crate::store::tests::spec;

    #[test]
    fn a_tenant_runs_at_most_its_quota_whichever_way_jobs_start() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("k.redb")).unwrap();
        let quotas = Quotas { running_jobs: 2, ..Quotas::default() };
        store.create_tenant(&TenantRecord { name: "acme".into(), roles: vec![], quotas, created_at: 0 }).unwrap();
        let acme = || Some("acme".to_string());
        let a = store.create_job(spec(), acme(), JobState::Running).unwrap().unwrap();
        let ready = store.create_job(spec(), acme(), JobState::Ready).unwrap().unwrap();
        store.create_job(spec(), acme(), JobState::Running).unwrap().unwrap();
        let full = store.create_job(spec(), acme(), JobState::Running).unwrap().unwrap_err();
        assert_eq!(full.to_string(), "tenant `acme` already has 2 running jobs, its `running_jobs` quota");
        // Ready is not running; the admin's jobs have no quota.
        store.create_job(spec(), acme(), JobState::Ready).unwrap().unwrap();
        store.create_job(spec(), None, JobState::Running).unwrap().unwrap();

        let resume = |id| {
            store
                .update_job::<super::RunningJobsFull>(id, |j| {
                    j.state = JobState::Running;
                    Ok(())
                })
                .unwrap()
                .unwrap()
        };
        assert!(resume(ready.id).is_err(), "resume is refused at the quota");
        // A change that keeps a job Running is no new start.
        assert!(resume(a.id).is_ok());
        store
            .update_job::<super::RunningJobsFull>(a.id, |j| {
                j.state = JobState::Suspended;
                Ok(())
            })
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(resume(ready.id).is_ok(), "a slot was freed");
        assert_eq!(store.get_job(ready.id).unwrap().unwrap().state, JobState::Running);
    }
}
