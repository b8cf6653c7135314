//! Which homes this node acts for. Every node of a fleet hears every device and keeps
//! its liveness (so any node can judge an entry, and a node taking over knows the
//! cameras already); only the node holding a home's partition acts on what happens
//! there: stores its devices' records, raises its alerts, moves its deliveries. A
//! single hub owns every home from the start.

use std::sync::atomic::{AtomicI64, Ordering};

/// "Not owned" in [`Ownership`]'s table.
const NOT_OWNED: i64 = i64::MAX;

#[derive(Debug)]
pub struct Ownership {
    /// This node's name in the fleet; `None` for a single hub.
    node: Option<String>,
    /// Per partition: since when (hub clock, ms) this node holds it, or `NOT_OWNED`.
    since: Vec<AtomicI64>,
}

impl Ownership {
    /// A single hub: one partition, held since ever.
    pub fn single() -> Ownership {
        Ownership {
            node: None,
            since: vec![AtomicI64::new(i64::MIN)],
        }
    }

    /// A fleet node named `node`, holding none of `parts` partitions yet.
    pub fn node(node: &str, parts: u32) -> Ownership {
        Ownership {
            node: Some(node.to_owned()),
            since: (0..parts.max(1))
                .map(|_| AtomicI64::new(NOT_OWNED))
                .collect(),
        }
    }

    pub fn node_id(&self) -> Option<&str> {
        self.node.as_deref()
    }

    pub fn partitions(&self) -> u32 {
        self.since.len() as u32
    }

    /// The partition a home belongs to: FNV-1a of its id, so every node agrees
    /// without asking anyone.
    pub fn partition_of(&self, home_id: &str) -> u32 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in home_id.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        (h % self.since.len() as u64) as u32
    }

    /// Whether this node acts for `home_id` now.
    pub fn owns_home(&self, home_id: &str) -> bool {
        self.held_since(home_id).is_some()
    }

    /// Since when this node acts for `home_id`, if it does.
    pub fn held_since(&self, home_id: &str) -> Option<i64> {
        let s = self.since[self.partition_of(home_id) as usize].load(Ordering::SeqCst);
        (s != NOT_OWNED).then_some(s)
    }

    /// Whether a camera of `home_id` that is not watching may be blamed by this node:
    /// it must have held the home for a live window, so a takeover itself never looks
    /// like a camera lost (the previous owner may have been the one who knew).
    pub fn may_blame(&self, home_id: &str, now: i64, live_window_ms: i64) -> bool {
        self.held_since(home_id)
            .is_some_and(|s| now.saturating_sub(s) > live_window_ms)
    }

    pub fn hold(&self, part: u32, since: i64) {
        if let Some(s) = self.since.get(part as usize) {
            // Keep the earlier time if already held (a renewal is not a takeover).
            let _ = s.compare_exchange(NOT_OWNED, since, Ordering::SeqCst, Ordering::SeqCst);
        }
    }

    pub fn drop_part(&self, part: u32) {
        if let Some(s) = self.since.get(part as usize) {
            s.store(NOT_OWNED, Ordering::SeqCst);
        }
    }

    pub fn holds(&self, part: u32) -> bool {
        self.since
            .get(part as usize)
            .is_some_and(|s| s.load(Ordering::SeqCst) != NOT_OWNED)
    }

    /// The partitions held now.
    pub fn held(&self) -> Vec<u32> {
        (0..self.since.len() as u32)
            .filter(|&p| self.holds(p))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_hub_owns_every_home_and_may_blame_at_once() {
        let o = Ownership::single();
        assert!(o.owns_home("a") && o.owns_home("b"));
        assert!(o.may_blame("a", 0, 1000));
    }

    #[test]
    fn a_node_acts_only_for_the_homes_it_holds_and_blames_after_a_window() {
        let o = Ownership::node("n1", 16);
        let home = "4f1c0d2a";
        let p = o.partition_of(home);
        assert_eq!(
            p,
            Ownership::node("n2", 16).partition_of(home),
            "nodes agree"
        );
        assert!(!o.owns_home(home));
        o.hold(p, 10_000);
        o.hold(p, 12_000);
        assert_eq!(
            o.held_since(home),
            Some(10_000),
            "a renewal is not a takeover"
        );
        assert!(!o.may_blame(home, 10_900, 1000));
        assert!(o.may_blame(home, 11_001, 1000));
        o.drop_part(p);
        assert!(!o.owns_home(home));
        assert!(o.held().is_empty());
    }

    #[test]
    fn homes_spread_over_the_partitions() {
        let o = Ownership::node("n", 8);
        let mut count = [0u32; 8];
        for i in 0..8000 {
            count[o.partition_of(&format!("{i:032x}")) as usize] += 1;
        }
        assert!(count.iter().all(|&c| (800..1200).contains(&c)), "{count:?}");
    }
}
