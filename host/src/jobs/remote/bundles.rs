//! How many of a job's tasks go in one order. A task of a millisecond or
//! less cost the coordinator more in messages (its order, the order's ack,
//! its result, the result's ack) than in everything else, so short tasks go
//! out in bundles: a worker runs a bundle's tasks one after another in one
//! slot and answers them with one result. A bundle is sized from what the
//! job's tasks took at the workers, so it lasts about [`BUNDLE_TARGET_US`]:
//! long tasks still go one per order, and fair share, which counts the
//! workers' slots held, is not upset by a bundle holding a slot for long.

use std::collections::HashMap;

use crate::model::JobId;

/// About how long a bundle should run at a worker: long enough that the
/// messages are a small part of the work even for thumbnails of a few
/// milliseconds (an order costs the coordinator about twice what a task
/// does), short enough that a bundle holds a slot no longer than a task of
/// an ordinary job would, and that a job's last bundles end together.
pub const BUNDLE_TARGET_US: f64 = 50_000.0;
/// Tasks in one order, at most: past this the messages cost little, and a
/// bundle lost with its worker is run again whole.
pub const MAX_BUNDLE: usize = 32;

/// What a job's tasks take at the workers, as results come in.
#[derive(Debug, Clone, Copy)]
struct Pace {
    /// Microseconds per task, a moving average over its orders.
    per_task_us: f64,
}

/// The pace of each job that has had a result.
#[derive(Default)]
pub struct Paces {
    jobs: HashMap<JobId, Pace>,
}

impl Paces {
    /// An order of `job` with `tasks` tasks ran for `took_us`.
    pub fn record(&mut self, job: JobId, tasks: usize, took_us: u64) {
        if tasks == 0 || took_us == 0 {
            return;
        }
        let per_task_us = took_us as f64 / tasks as f64;
        // Bounded: paces of jobs that ended are forgotten now and then; the
        // jobs still running measure theirs again within a few results.
        if self.jobs.len() >= 1024 && !self.jobs.contains_key(&job) {
            self.jobs.clear();
        }
        self.jobs
            .entry(job)
            .and_modify(|p| p.per_task_us = 0.8 * p.per_task_us + 0.2 * per_task_us)
            .or_insert(Pace { per_task_us });
    }

    /// Tasks of `job` per order: one until its tasks have been measured.
    pub fn bundle(&self, job: JobId) -> usize {
        self.jobs.get(&job).map_or(1, |p| {
            let n = BUNDLE_TARGET_US / p.per_task_us.max(1.0);
            (n as usize).clamp(1, MAX_BUNDLE)
        })
    }

    /// The largest bundle of any job: the scheduler's window, in tasks, is
    /// this many per order the workers may hold.
    pub fn largest(&self) -> usize {
        self.jobs.keys().map(|&job| self.bundle(job)).max().unwrap_or(1)
    }

    /// The job ended: its pace is of no more use.
    pub fn forget(&mut self, job: JobId) {
        self.jobs.remove(&job);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_tasks_are_bundled_long_ones_are_not() {
        let mut p = Paces::default();
        assert_eq!(p.bundle(1), 1, "not measured yet: one task per order");
        // 32 tasks of 200 µs: as many as the target allows, at most MAX_BUNDLE.
        p.record(1, 32, 32 * 200);
        assert_eq!(p.bundle(1), MAX_BUNDLE);
        // Small thumbnails of 5 ms: ten per order (50 ms).
        p.record(2, 1, 5_000);
        assert_eq!(p.bundle(2), 10);
        // Large ones of 80 ms: one each.
        p.record(3, 1, 80_000);
        assert_eq!(p.bundle(3), 1);
        assert_eq!(p.largest(), MAX_BUNDLE);
        p.forget(1);
        assert_eq!(p.largest(), 10);
        // Nothing measured (a released order): no change.
        p.record(2, 4, 0);
        assert_eq!(p.bundle(2), 10);
    }

    #[test]
    fn a_job_whose_tasks_slow_down_gets_smaller_bundles() {
        let mut p = Paces::default();
        p.record(1, 32, 32 * 100);
        assert_eq!(p.bundle(1), MAX_BUNDLE);
        // Its tasks now take 20 ms each: within a few orders, two per order.
        for _ in 0..12 {
            p.record(1, p.bundle(1), p.bundle(1) as u64 * 20_000);
        }
        assert_eq!(p.bundle(1), 2);
    }
}
