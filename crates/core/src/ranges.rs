//! Sets of sequence numbers as sorted, disjoint, inclusive ranges.

/// Sorted, non-overlapping, non-adjacent inclusive ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeSet(Vec<(u64, u64)>);

impl RangeSet {
    pub fn new() -> Self {
        RangeSet(Vec::new())
    }

    pub fn from_ranges(ranges: impl IntoIterator<Item = (u64, u64)>) -> Self {
        let mut s = RangeSet::new();
        for (a, b) in ranges {
            s.insert_range(a, b);
        }
        s
    }

    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, x: u64) -> bool {
        self.0.iter().any(|&(a, b)| a <= x && x <= b)
    }

    pub fn count(&self) -> u64 {
        self.0.iter().map(|&(a, b)| b - a + 1).sum()
    }

    pub fn insert(&mut self, x: u64) {
        self.insert_range(x, x);
    }

    pub fn insert_range(&mut self, a: u64, b: u64) {
        if a > b {
            return;
        }
        let (mut lo, mut hi) = (a, b);
        let mut out = Vec::with_capacity(self.0.len() + 1);
        let mut placed = false;
        for &(x, y) in &self.0 {
            if y.saturating_add(1) < lo {
                out.push((x, y));
            } else if hi.saturating_add(1) < x {
                if !placed {
                    out.push((lo, hi));
                    placed = true;
                }
                out.push((x, y));
            } else {
                lo = lo.min(x);
                hi = hi.max(y);
            }
        }
        if !placed {
            out.push((lo, hi));
        }
        out.sort_unstable();
        self.0 = out;
    }

    pub fn remove(&mut self, x: u64) {
        let mut out = Vec::with_capacity(self.0.len() + 1);
        for &(a, b) in &self.0 {
            if x < a || x > b {
                out.push((a, b));
                continue;
            }
            if a < x {
                out.push((a, x - 1));
            }
            if x < b {
                out.push((x + 1, b));
            }
        }
        self.0 = out;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_merge_adjacent_and_overlapping() {
        let mut s = RangeSet::new();
        s.insert(5);
        s.insert(7);
        assert_eq!(s.ranges(), &[(5, 5), (7, 7)]);
        s.insert(6);
        assert_eq!(s.ranges(), &[(5, 7)]);
        s.insert_range(1, 3);
        s.insert_range(2, 10);
        assert_eq!(s.ranges(), &[(1, 10)]);
        assert_eq!(s.count(), 10);
    }

    #[test]
    fn remove_splits() {
        let mut s = RangeSet::from_ranges([(1, 10)]);
        s.remove(5);
        assert_eq!(s.ranges(), &[(1, 4), (6, 10)]);
        s.remove(1);
        s.remove(10);
        assert_eq!(s.ranges(), &[(2, 4), (6, 9)]);
        assert!(!s.contains(5));
        assert!(s.contains(6));
    }

    #[test]
    fn extremes_do_not_overflow() {
        let mut s = RangeSet::new();
        s.insert(u64::MAX);
        s.insert(u64::MAX - 1);
        s.insert(0);
        assert_eq!(s.ranges(), &[(0, 0), (u64::MAX - 1, u64::MAX)]);
    }
}
