//! How many of a job's tasks go in one order. A task of a millisecond or
//! less cost the coordinator more in messages (its order, the order's ack,
//! its result, the result's ack) than in everything else, so short tasks go
//! out in bundles: a worker runs a bundle's tasks one after another in one
//! slot and answers them with one result. A bundle is sized from what the
//! job's tasks took at the workers, so it lasts about [`BUNDLE_TARGET`]:
//! long tasks still go one per order, and fair share, which counts the
//! workers' slots held, is not upset by a bundle holding a slot for long.

use std::time::Duration;

use crate::jobs::pace::{Paces, Sizing};

/// About how long a bundle should run at a worker: long enough that the
/// messages are a small part of the work even for thumbnails of a few
/// milliseconds (an order costs the coordinator about twice what a task
/// does), short enough that a bundle holds a slot no longer than a task of
/// an ordinary job would, and that a job's last bundles end together.
const BUNDLE_TARGET: Duration = Duration::from_millis(50);
/// Tasks in one order, at most: past this the messages cost little, and a
/// bundle lost with its worker is run again whole.
pub const MAX_BUNDLE: usize = 32;

/// Tasks of a job per order: [`BUNDLE_TARGET`] of its work, from 1 (until
/// its tasks have been measured, and for long ones) to [`MAX_BUNDLE`].
pub const BUNDLE: Sizing = Sizing { work: BUNDLE_TARGET, least: 1, most: MAX_BUNDLE };

/// The paces of the jobs' tasks at the workers, measured once per result of
/// an order (a bundle's tasks together), so each measure weighs a fifth.
pub fn paces() -> Paces {
    Paces::new(0.2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn short_tasks_are_bundled_long_ones_are_not() {
        let mut p = paces();
        assert_eq!(p.tasks(1, BUNDLE), 1, "not measured yet: one task per order");
        // 32 tasks of 200 µs: as many as the target allows, at most MAX_BUNDLE.
        p.record(1, 32, us(32 * 200));
        assert_eq!(p.tasks(1, BUNDLE), MAX_BUNDLE);
        // Small thumbnails of 5 ms: ten per order (50 ms).
        p.record(2, 1, us(5_000));
        assert_eq!(p.tasks(2, BUNDLE), 10);
        // Large ones of 80 ms: one each.
        p.record(3, 1, us(80_000));
        assert_eq!(p.tasks(3, BUNDLE), 1);
        assert_eq!(p.most_tasks(BUNDLE), MAX_BUNDLE);
        p.forget(1);
        assert_eq!(p.most_tasks(BUNDLE), 10);
        // Nothing measured (a released order): no change.
        p.record(2, 4, Duration::ZERO);
        assert_eq!(p.tasks(2, BUNDLE), 10);
    }

    #[test]
    fn a_job_whose_tasks_slow_down_gets_smaller_bundles() {
        let mut p = paces();
        p.record(1, 32, us(32 * 100));
        assert_eq!(p.tasks(1, BUNDLE), MAX_BUNDLE);
        // Its tasks now take 20 ms each: within a few orders, two per order.
        for _ in 0..12 {
            let n = p.tasks(1, BUNDLE);
            p.record(1, n, us(n as u64 * 20_000));
        }
        assert_eq!(p.tasks(1, BUNDLE), 2);
    }
}
