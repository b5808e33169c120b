//! How often `--wait` polls a job: about when the job should end at the rate
//! seen so far, so a short job is not kept waiting up to a whole poll
//! interval after it ended, and a long one is not polled needlessly.

use std::time::Duration;

const MIN: Duration = Duration::from_millis(10);
const MAX: Duration = Duration::from_millis(200);

/// The pause before the next poll, given the tasks done and in total so far
/// and the time since waiting began.
pub fn next_poll(done: u64, total: u64, elapsed: Duration) -> Duration {
    if done == 0 || total <= done {
        // No rate yet (or the total is still growing): back off from MIN.
        return (elapsed / 4).clamp(MIN, MAX);
    }
    let eta = elapsed.mul_f64((total - done) as f64 / done as f64);
    eta.clamp(MIN, MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_near_the_expected_end_within_bounds() {
        let ms = Duration::from_millis;
        assert_eq!(next_poll(0, 0, ms(0)), MIN);
        assert_eq!(next_poll(0, 100, ms(400)), ms(100));
        assert_eq!(next_poll(0, 100, ms(10_000)), MAX);
        assert_eq!(next_poll(50, 100, ms(100)), ms(100), "half done in 100 ms: done in 100 ms more");
        assert_eq!(next_poll(99, 100, ms(100)), MIN);
        assert_eq!(next_poll(1, 1_000_000, ms(100)), MAX);
    }
}
