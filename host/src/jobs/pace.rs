//! How long each job's tasks take, and so how many of them make a given
//! amount of work. Two things are sized by it: the tasks the local pool
//! claims ahead of its workers (about 2 ms of a job's work per worker, see
//! `executor`), and the tasks a cluster's coordinator puts in one order
//! (about 50 ms, see `remote::bundles`). Each job has its own pace: one
//! job's fast tasks never size another's.

use std::collections::HashMap;
use std::time::Duration;

use crate::model::JobId;

/// Jobs whose pace is kept. A job's pace is forgotten when it stops, so this
/// only bounds the map if stops were missed; the jobs still running measure
/// theirs again within a few tasks.
const KEPT: usize = 4096;

/// Per job, a moving average of the time one task takes.
pub(super) struct Paces {
    /// Nanoseconds per task.
    jobs: HashMap<JobId, f64>,
    /// The weight of each new measure in the average: small for a measure
    /// per task (it is noisy), larger for one per bundle of tasks.
    weight: f64,
}

/// How many tasks: about `work` of them, but at least `least` and at most `most`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sizing {
    pub work: Duration,
    pub least: usize,
    pub most: usize,
}

impl Sizing {
    fn tasks(&self, per_task_ns: f64) -> usize {
        let n = self.work.as_nanos() as f64 / per_task_ns.max(1.0);
        (n as usize).clamp(self.least, self.most)
    }
}

impl Paces {
    pub(super) fn new(weight: f64) -> Paces {
        Paces { jobs: HashMap::new(), weight }
    }

    /// `tasks` tasks of `job` took `took` together. Nothing measured (no
    /// task, or no time: a released order) changes nothing.
    pub(super) fn record(&mut self, job: JobId, tasks: usize, took: Duration) {
        if tasks == 0 || took.is_zero() {
            return;
        }
        let per_task = took.as_nanos() as f64 / tasks as f64;
        if self.jobs.len() >= KEPT && !self.jobs.contains_key(&job) {
            self.jobs.clear();
        }
        let weight = self.weight;
        self.jobs.entry(job).and_modify(|p| *p += weight * (per_task - *p)).or_insert(per_task);
    }

    /// Tasks of `job` that make `sizing.work`; the least until one of its
    /// tasks has been measured.
    pub(super) fn tasks(&self, job: JobId, sizing: Sizing) -> usize {
        self.jobs.get(&job).map_or(sizing.least, |p| sizing.tasks(*p))
    }

    /// The most tasks any job needs for `sizing.work` (the least if none
    /// has been measured).
    pub(super) fn most_tasks(&self, sizing: Sizing) -> usize {
        self.jobs.values().map(|p| sizing.tasks(*p)).max().unwrap_or(sizing.least)
    }

    /// The job stopped: its pace is of no more use.
    pub(super) fn forget(&mut self, job: JobId) {
        self.jobs.remove(&job);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_MS: Sizing = Sizing { work: Duration::from_millis(2), least: 2, most: 32 };

    #[test]
    fn each_job_has_its_own_pace() {
        let mut p = Paces::new(1.0 / 16.0);
        assert_eq!(p.tasks(1, TWO_MS), 2, "unmeasured: the least");
        for _ in 0..20 {
            p.record(1, 1, Duration::from_micros(60));
            p.record(2, 1, Duration::from_millis(5));
        }
        assert_eq!(p.tasks(1, TWO_MS), 32, "1 KiB copies: the most");
        assert_eq!(p.tasks(2, TWO_MS), 2, "5 ms thumbnails: the least");
        assert_eq!(p.tasks(3, TWO_MS), 2, "a new job is not sized by the others");
        assert_eq!(p.most_tasks(TWO_MS), 32);
        p.forget(1);
        assert_eq!((p.tasks(1, TWO_MS), p.most_tasks(TWO_MS)), (2, 2));
        p.record(2, 4, Duration::ZERO);
        assert_eq!(p.tasks(2, TWO_MS), 2, "nothing measured: no change");
    }

    #[test]
    fn a_measure_moves_the_average_by_its_weight() {
        let mut p = Paces::new(0.25);
        p.record(1, 10, Duration::from_micros(1000));
        assert_eq!(p.jobs[&1], 100_000.0, "the first measure is the pace: 100 us per task");
        p.record(1, 1, Duration::from_micros(500));
        assert_eq!(p.jobs[&1], 200_000.0, "a quarter of the way to 500 us");
    }

    #[test]
    fn the_map_stays_bounded() {
        let mut p = Paces::new(0.5);
        for job in 0..(KEPT as u64 + 10) {
            p.record(job, 1, Duration::from_micros(60));
        }
        assert!(p.jobs.len() <= KEPT);
    }
}
