//! Tracking a device's durable record log (events or frames) on the hub side.
//!
//! Records are numbered 1, 2, 3... by the device, kept on its disk until acknowledged,
//! and may arrive late or out of order (a backlog after an outage arrives behind live
//! traffic). The hub keeps the highest number seen and the set of missing numbers
//! below it. A number above `highest + 1` opens a gap; a late record fills one.

use crate::ranges::RangeSet;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordLog {
    highest: u64,
    missing: RangeSet,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// Next in order.
    InOrder,
    /// New, and it left the numbers `from..=to` missing before it.
    OpenedGap { from: u64, to: u64 },
    /// A late record that was missing; the gap shrinks.
    FilledGap,
    /// Already stored: store nothing, acknowledge again.
    Duplicate,
}

impl RecordLog {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn restored(highest: u64, missing: RangeSet) -> Self {
        RecordLog { highest, missing }
    }

    pub fn highest(&self) -> u64 {
        self.highest
    }

    pub fn missing(&self) -> &RangeSet {
        &self.missing
    }

    /// What `seq` would be, without recording it.
    pub fn classify(&self, seq: u64) -> Arrival {
        if seq == 0 {
            return Arrival::Duplicate;
        }
        if seq == self.highest.saturating_add(1) {
            Arrival::InOrder
        } else if seq > self.highest {
            Arrival::OpenedGap {
                from: self.highest + 1,
                to: seq - 1,
            }
        } else if self.missing.contains(seq) {
            Arrival::FilledGap
        } else {
            Arrival::Duplicate
        }
    }

    pub fn record(&mut self, seq: u64) -> Arrival {
        let a = self.classify(seq);
        match a {
            Arrival::InOrder => self.highest = seq,
            Arrival::OpenedGap { from, to } => {
                self.missing.insert_range(from, to);
                self.highest = seq;
            }
            Arrival::FilledGap => self.missing.remove(seq),
            Arrival::Duplicate => {}
        }
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_records_leave_no_gaps() {
        let mut l = RecordLog::new();
        for i in 1..=5 {
            assert_eq!(l.record(i), Arrival::InOrder);
        }
        assert!(l.missing().is_empty());
        assert_eq!(l.record(3), Arrival::Duplicate);
    }

    #[test]
    fn skipped_numbers_open_a_gap_that_late_records_fill() {
        let mut l = RecordLog::new();
        l.record(1);
        assert_eq!(l.record(5), Arrival::OpenedGap { from: 2, to: 4 });
        assert_eq!(l.missing().count(), 3);
        assert_eq!(l.record(3), Arrival::FilledGap);
        assert_eq!(l.record(3), Arrival::Duplicate);
        assert_eq!(l.record(2), Arrival::FilledGap);
        assert_eq!(l.record(4), Arrival::FilledGap);
        assert!(l.missing().is_empty());
    }

    #[test]
    fn first_record_after_start_above_one_is_a_gap() {
        let mut l = RecordLog::new();
        assert_eq!(l.record(3), Arrival::OpenedGap { from: 1, to: 2 });
    }
}
