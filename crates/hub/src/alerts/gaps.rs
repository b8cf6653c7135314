//! Gaps in a lock's or sensor's event log, alerted only if they stay open: records
//! arrive out of order around a reconnect, so a gap gets a grace period first. The
//! gaps wait here with their due time on the hub's clock; the access pass (every
//! 250 ms) raises those still missing when due (`alerts::raise_due_gaps`).

use std::sync::Mutex;
use threshold_proto::DeviceId;

/// At most this many gaps wait at once (a device may send anything): beyond it the
/// oldest is due at once rather than forgotten or kept without bound.
const MAX_PENDING: usize = 10_000;

/// A gap that opened in a device's event log.
#[derive(Clone, Debug, PartialEq)]
pub struct PendingGap {
    pub device: DeviceId,
    pub home_id: String,
    pub owner_id: String,
    /// The missing record numbers, inclusive.
    pub from: u64,
    pub to: u64,
    /// What the owner reads if it is still open when due.
    pub message: String,
    pub due_ms: i64,
}

#[derive(Debug, Default)]
pub struct PendingGaps(Mutex<Vec<PendingGap>>);

impl PendingGaps {
    /// Wait for a gap; with the list full, its oldest gap is due at `now`.
    pub fn add(&self, gap: PendingGap, now: i64) {
        let mut list = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if list.len() >= MAX_PENDING {
            if let Some(oldest) = list.iter_mut().min_by_key(|g| g.due_ms) {
                oldest.due_ms = oldest.due_ms.min(now);
            }
        }
        list.push(gap);
    }

    /// The gaps due at `now`, removed from the list.
    pub fn take_due(&self, now: i64) -> Vec<PendingGap> {
        let mut list = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let (due, wait): (Vec<_>, Vec<_>) = list.drain(..).partition(|g| g.due_ms <= now);
        *list = wait;
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gap(to: u64, due_ms: i64) -> PendingGap {
        PendingGap {
            device: DeviceId([7; 16]),
            home_id: "h".into(),
            owner_id: "o".into(),
            from: 2,
            to,
            message: "m".into(),
            due_ms,
        }
    }

    #[test]
    fn gaps_are_handed_out_once_when_due() {
        let p = PendingGaps::default();
        p.add(gap(3, 1_000), 0);
        p.add(gap(9, 2_000), 0);
        assert!(p.take_due(999).is_empty());
        assert_eq!(p.take_due(1_500), vec![gap(3, 1_000)]);
        assert!(p.take_due(1_500).is_empty(), "handed out once");
        assert_eq!(p.take_due(5_000), vec![gap(9, 2_000)]);
    }

    #[test]
    fn a_full_list_makes_its_oldest_gap_due_rather_than_growing_without_bound() {
        let p = PendingGaps::default();
        for i in 0..MAX_PENDING as i64 {
            p.add(gap(3, 10_000 + i), 0);
        }
        p.add(gap(4, 20_000), 500);
        let due = p.take_due(500);
        assert_eq!(due, vec![gap(3, 500)], "the oldest waiting gap, due now");
        assert_eq!(p.take_due(i64::MAX).len(), MAX_PENDING);
    }
}
