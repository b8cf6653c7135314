//! Gaps in a lock's or sensor's event log, alerted only if they stay open: records
//! arrive out of order around a reconnect, so a gap gets a grace period first. The
//! gaps wait here with their due time on the hub's clock, one entry per device (its
//! gaps merged), so the list is bounded by the devices; the access pass raises those
//! still missing when due, a few per pass (`alerts::raise_due_gaps`).

use std::collections::HashMap;
use std::sync::Mutex;
use threshold_proto::DeviceId;

/// A device's gaps waiting for their grace period.
#[derive(Clone, Debug, PartialEq)]
pub struct PendingGap {
    pub device: DeviceId,
    pub home_id: String,
    pub owner_id: String,
    /// The missing record numbers, inclusive (the span of every gap merged in).
    pub from: u64,
    pub to: u64,
    /// When the earliest of them is due.
    pub due_ms: i64,
}

#[derive(Debug, Default)]
pub struct PendingGaps(Mutex<HashMap<DeviceId, PendingGap>>);

impl PendingGaps {
    /// Wait for a gap; one the device already has waiting is widened, and keeps its
    /// earlier due time.
    pub fn add(&self, gap: PendingGap) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(gap.device)
            .and_modify(|g| {
                g.from = g.from.min(gap.from);
                g.to = g.to.max(gap.to);
                g.due_ms = g.due_ms.min(gap.due_ms);
            })
            .or_insert(gap);
    }

    /// At most `limit` gaps due at `now`, earliest first, removed from the list.
    pub fn take_due(&self, now: i64, limit: usize) -> Vec<PendingGap> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut due: Vec<(i64, DeviceId)> = map
            .values()
            .filter(|g| g.due_ms <= now)
            .map(|g| (g.due_ms, g.device))
            .collect();
        due.sort();
        due.truncate(limit);
        due.into_iter()
            .filter_map(|(_, d)| map.remove(&d))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gap(device: u8, from: u64, to: u64, due_ms: i64) -> PendingGap {
        PendingGap {
            device: DeviceId([device; 16]),
            home_id: "h".into(),
            owner_id: "o".into(),
            from,
            to,
            due_ms,
        }
    }

    #[test]
    fn gaps_are_handed_out_once_when_due_earliest_first_and_a_few_at_a_time() {
        let p = PendingGaps::default();
        p.add(gap(1, 2, 3, 2_000));
        p.add(gap(2, 5, 5, 1_000));
        p.add(gap(3, 7, 7, 9_000));
        assert!(p.take_due(999, 10).is_empty());
        assert_eq!(p.take_due(2_500, 1), vec![gap(2, 5, 5, 1_000)]);
        assert_eq!(p.take_due(2_500, 1), vec![gap(1, 2, 3, 2_000)]);
        assert!(p.take_due(2_500, 10).is_empty(), "handed out once");
        assert_eq!(p.take_due(9_000, 10), vec![gap(3, 7, 7, 9_000)]);
    }

    #[test]
    fn a_device_has_one_entry_however_many_gaps_it_opens() {
        let p = PendingGaps::default();
        for i in 0..10_000u64 {
            p.add(gap(1, 10 + 2 * i, 10 + 2 * i, 5_000 + i as i64));
        }
        let due = p.take_due(i64::MAX, usize::MAX);
        assert_eq!(due, vec![gap(1, 10, 10 + 2 * 9_999, 5_000)]);
    }
}
