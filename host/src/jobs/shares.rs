//! Fair share at a cluster's workers. The scheduler shares *claims* among
//! tenants, but a worker runs whatever order it pulls, and a tenant whose
//! tasks are slow would, order after order, come to hold every worker's
//! slots. So while several tenants have work, each may have at most its
//! fair part of the live workers' slots ordered and unanswered; its other
//! claimed tasks wait here, and go out as its orders are answered. (A single
//! daemon's dispatcher does the same for its local slots.) Each tenant's
//! orders also have their own consumer, taken in turn by the workers, so a
//! newcomer's orders never queue behind another tenant's.

use std::collections::{BTreeMap, HashMap, VecDeque};

/// Claimed tasks (`T`) waiting to be ordered, and orders out, per tenant.
pub(super) struct Shares<T> {
    out: HashMap<String, usize>,
    held: BTreeMap<String, VecDeque<T>>,
    held_count: usize,
    /// Which tenant goes first at the next [`Shares::release`].
    turn: usize,
}

impl<T> Default for Shares<T> {
    fn default() -> Self {
        Shares { out: HashMap::new(), held: BTreeMap::new(), held_count: 0, turn: 0 }
    }
}

impl<T> Shares<T> {
    /// A claimed task of `tenant`, to be ordered when its share allows.
    pub fn hold(&mut self, tenant: &str, task: T) {
        self.held.entry(tenant.to_string()).or_default().push_back(task);
        self.held_count += 1;
    }

    /// One of `tenant`'s orders was answered (or taken back).
    pub fn answered(&mut self, tenant: &str) {
        if let Some(n) = self.out.get_mut(tenant) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.out.remove(tenant);
            }
        }
    }

    /// The tasks that may be ordered now, given the live workers' `slots`
    /// (each counted as out from here on): all of them while one tenant has
    /// work (the scheduler's window bounds it), else each tenant's tasks up
    /// to its fair part of the slots.
    pub fn release(&mut self, slots: usize) -> Vec<(String, T)> {
        let with_work = self.held.keys().chain(self.out.keys().filter(|t| !self.held.contains_key(*t))).count();
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
                && let Some(task) = queue.pop_front()
            {
                *out += 1;
                self.held_count -= 1;
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
        self.held_count -= taken.len();
        taken
    }

    /// Tasks waiting here.
    pub fn held(&self) -> usize {
        self.held_count
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
        let mut s = Shares::default();
        for i in 0..10 {
            s.hold("slow", i);
        }
        assert_eq!(s.release(4).len(), 10, "alone: the scheduler's window is the only bound");
        for i in 0..10 {
            s.hold("fast", i);
            s.hold("slow", 10 + i);
        }
        // Two tenants on 4 slots: 2 each; `slow` already has 10 out.
        assert_eq!(tenants_of(&s.release(4)), vec!["fast", "fast"]);
        assert_eq!(s.held(), 18);
        for _ in 0..9 {
            s.answered("slow");
        }
        assert_eq!(tenants_of(&s.release(4)), vec!["slow"], "1 out, 1 more allowed");
        s.answered("fast");
        assert_eq!(tenants_of(&s.release(4)), vec!["fast"]);
    }

    #[test]
    fn held_tasks_of_a_stopped_job_are_taken_back() {
        let mut s = Shares::default();
        s.hold("a", (1, 1));
        s.hold("a", (2, 1));
        s.hold("b", (1, 2));
        assert_eq!(s.take_back(|(job, _)| *job == 1), vec![(1, 1), (1, 2)]);
        assert_eq!(s.held(), 1);
        assert_eq!(s.release(4), vec![("a".to_string(), (2, 1))]);
    }

    #[test]
    fn tenants_take_turns_going_first() {
        let mut s = Shares::default();
        for i in 0..4 {
            s.hold("a", i);
            s.hold("b", i);
            s.hold("c", i);
        }
        // 3 tenants on 3 slots: one each, whoever goes first.
        let first = s.release(3);
        assert_eq!(first.len(), 3);
        for t in ["a", "b", "c"] {
            s.answered(t);
        }
        let second = s.release(3);
        assert_ne!(first[0].0, second[0].0, "the turn moved on");
    }
}
