//! Fair share at a cluster's workers. The scheduler shares *claims* among
//! tenants, but a worker runs whatever order it pulls, and a tenant whose
//! tasks are slow would, order after order, come to hold every worker's
//! slots. So while several tenants have work, each may have at most its
//! fair part of the live workers' slots ordered and unanswered; its other
//! claimed tasks wait here, and go out as its orders are answered. (A single
//! daemon's dispatcher does the same for its local slots.) Each tenant's
//! orders also have their own consumer, taken in turn by the workers, so a
//! newcomer's orders never queue behind another tenant's. What is shared is
//! orders, each holding one slot, whether it carries one task or a bundle.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

/// How long a tenant whose orders were all answered still counts as having
/// work: the scheduler claims its next tasks a moment after its last ones
/// are answered, and in that moment another tenant alone would fill the
/// whole window with its orders (slow ones, maybe, that the workers then
/// pull before the first tenant's next orders).
pub(super) const LINGER: Duration = Duration::from_secs(1);

/// Claimed tasks (`T`: one order's worth) waiting to be ordered, and orders out, per tenant.
pub(super) struct Shares<T> {
    out: HashMap<String, usize>,
    /// Orders out, of every tenant.
    out_total: usize,
    held: BTreeMap<String, VecDeque<T>>,
    /// Tenants with nothing out nor held, and when their last order was answered.
    idle_since: HashMap<String, Instant>,
    linger: Duration,
    /// Which tenant goes first at the next [`Shares::release`].
    turn: usize,
}

impl<T> Default for Shares<T> {
    fn default() -> Self {
        Shares::lingering(LINGER)
    }
}

impl<T> Shares<T> {
    /// Shares where a tenant counts as having work for `linger` after its last order is answered.
    pub fn lingering(linger: Duration) -> Self {
        Shares { out: HashMap::new(), out_total: 0, held: BTreeMap::new(), idle_since: HashMap::new(), linger, turn: 0 }
    }

    /// A claimed task of `tenant`, to be ordered when its share allows.
    pub fn hold(&mut self, tenant: &str, task: T) {
        self.held.entry(tenant.to_string()).or_default().push_back(task);
    }

    /// The last order's worth held for `tenant`, to add a task to.
    pub fn last_held(&mut self, tenant: &str) -> Option<&mut T> {
        self.held.get_mut(tenant).and_then(|q| q.back_mut())
    }

    /// One of `tenant`'s orders was answered (or taken back).
    pub fn answered(&mut self, tenant: &str) {
        if let Some(n) = self.out.get_mut(tenant) {
            *n = n.saturating_sub(1);
            self.out_total = self.out_total.saturating_sub(1);
            if *n == 0 {
                self.out.remove(tenant);
                self.idle_since.insert(tenant.to_string(), Instant::now());
            }
        }
    }

    /// The orders that may go out now, given the live workers' `slots`
    /// (each counted as out from here on): while one tenant has work, up to
    /// `window` out; else each tenant's up to its fair part of the slots
    /// (a newcomer's go out at once, though a tenant alone before filled the window).
    pub fn release(&mut self, slots: usize, window: usize) -> Vec<(String, T)> {
        let linger = self.linger;
        self.idle_since.retain(|_, since| since.elapsed() < linger);
        let busy = |t: &String| self.held.contains_key(t) || self.out.contains_key(t);
        let with_work = self.held.keys().chain(self.out.keys().filter(|t| !self.held.contains_key(*t))).count()
            + self.idle_since.keys().filter(|t| !busy(t)).count();
        let cap = if with_work <= 1 { usize::MAX } else { slots.div_ceil(with_work).max(1) };
        let mut tenants: Vec<String> = self.held.keys().cloned().collect();
        if tenants.is_empty() {
            return Vec::new();
        }
        let k = self.turn % tenants.len();
        tenants.rotate_left(k);
        self.turn = self.turn.wrapping_add(1);
        let mut released = Vec::new();
        for tenant in tenants {
            let out = self.out.entry(tenant.clone()).or_default();
            let queue = self.held.get_mut(&tenant).expect("listed above");
            while *out < cap
                && (with_work > 1 || self.out_total < window)
                && let Some(task) = queue.pop_front()
            {
                *out += 1;
                self.out_total += 1;
                released.push((tenant.clone(), task));
            }
            if queue.is_empty() {
                self.held.remove(&tenant);
            }
            if self.out.get(&tenant) == Some(&0) {
                self.out.remove(&tenant);
            }
        }
        released
    }

    /// Take back the held tasks `which` picks (their job stopped).
    pub fn take_back(&mut self, which: impl Fn(&T) -> bool) -> Vec<T> {
        let mut taken = Vec::new();
        for queue in self.held.values_mut() {
            let (gone, kept): (VecDeque<T>, VecDeque<T>) = std::mem::take(queue).into_iter().partition(&which);
            *queue = kept;
            taken.extend(gone);
        }
        self.held.retain(|_, q| !q.is_empty());
        taken
    }

    /// Orders' worth waiting here.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.held.values().map(VecDeque::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenants_of(released: &[(String, u32)]) -> Vec<&str> {
        released.iter().map(|(t, _)| t.as_str()).collect()
    }

    #[test]
    fn a_tenant_alone_orders_everything_and_shares_once_another_has_work() {
        let mut s = Shares::lingering(Duration::ZERO);
        for i in 0..10 {
            s.hold("slow", i);
        }
        assert_eq!(s.release(4, usize::MAX).len(), 10, "alone: the scheduler's window is the only bound");
        for i in 0..10 {
            s.hold("fast", i);
            s.hold("slow", 10 + i);
        }
        // Two tenants on 4 slots: 2 each; `slow` already has 10 out.
        assert_eq!(tenants_of(&s.release(4, usize::MAX)), vec!["fast", "fast"]);
        assert_eq!(s.held(), 18);
        for _ in 0..9 {
            s.answered("slow");
        }
        assert_eq!(tenants_of(&s.release(4, usize::MAX)), vec!["slow"], "1 out, 1 more allowed");
        s.answered("fast");
        assert_eq!(tenants_of(&s.release(4, usize::MAX)), vec!["fast"]);
    }

    #[test]
    fn held_tasks_of_a_stopped_job_are_taken_back() {
        let mut s = Shares::lingering(Duration::ZERO);
        s.hold("a", (1, 1));
        s.hold("a", (2, 1));
        s.hold("b", (1, 2));
        assert_eq!(s.take_back(|(job, _)| *job == 1), vec![(1, 1), (1, 2)]);
        assert_eq!(s.held(), 1);
        assert_eq!(s.release(4, usize::MAX), vec![("a".to_string(), (2, 1))]);
    }

    #[test]
    fn tenants_take_turns_going_first() {
        let mut s = Shares::lingering(Duration::ZERO);
        for i in 0..4 {
            s.hold("a", i);
            s.hold("b", i);
            s.hold("c", i);
        }
        // 3 tenants on 3 slots: one each, whoever goes first.
        let first = s.release(3, usize::MAX);
        assert_eq!(first.len(), 3);
        for t in ["a", "b", "c"] {
            s.answered(t);
        }
        let second = s.release(3, usize::MAX);
        assert_ne!(first[0].0, second[0].0, "the turn moved on");
    }

    #[test]
    fn no_more_orders_go_out_than_the_window_and_held_ones_take_more_tasks() {
        let mut s: Shares<Vec<u32>> = Shares::lingering(Duration::ZERO);
        for i in 0..5 {
            s.hold("a", vec![i]);
        }
        s.last_held("a").unwrap().push(9);
        let out = s.release(2, 3);
        assert_eq!(out.len(), 3, "alone, but within the window");
        s.answered("a");
        assert_eq!(s.release(2, 3), vec![("a".to_string(), vec![3])]);
        assert!(s.release(2, 3).is_empty(), "the window is full");
        // A newcomer's go out at once, up to its fair part of the slots.
        s.hold("b", vec![7]);
        s.hold("b", vec![8]);
        assert_eq!(s.release(2, 3), vec![("b".to_string(), vec![7])]);
        s.answered("a");
        s.answered("b");
        assert_eq!(s.release(2, 3), vec![("b".to_string(), vec![8])], "`a` has more than its part out");
        s.answered("b");
        s.answered("a");
        assert_eq!(s.release(2, 3), vec![("a".to_string(), vec![4, 9])]);
        assert!(s.release(2, 3).is_empty() && s.last_held("a").is_none());
    }

    #[test]
    fn a_tenant_between_two_claims_keeps_its_share_for_a_moment() {
        let mut s = Shares::lingering(Duration::from_millis(200));
        s.hold("fast", 1);
        s.hold("slow", 1);
        assert_eq!(s.release(4, 8).len(), 2);
        // `fast`'s order is answered and its next tasks are not claimed yet:
        // `slow` does not take the whole window meanwhile.
        s.answered("fast");
        for i in 2..10 {
            s.hold("slow", i);
        }
        assert_eq!(tenants_of(&s.release(4, 8)), vec!["slow"], "its fair part: 2 of 4 slots");
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(s.release(4, 8).len(), 6, "`fast` stayed away: `slow` alone fills the window");
    }
}
