//! Anti-replay for live messages: a sliding window over the transport sequence number,
//! as in IPsec (RFC 4303 §3.4.3). A message is new if its number is above the highest
//! seen, or within the window below it and not yet seen. The highest number is
//! persisted, so after a restart nothing at or below it is accepted.

/// How far below the highest number a late message is still accepted.
pub const WINDOW: u64 = 64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayWindow {
    highest: u64,
    /// Bit i set = `highest - i` seen.
    seen: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// First time we see this number.
    New,
    /// Seen before: a broker redelivery or an attacker's replay; no effect either way.
    Duplicate,
    /// Below the window: too old to tell, refused.
    TooOld,
}

impl ReplayWindow {
    /// A window that has seen nothing: every number from 1 on is new. Sequence 0 is
    /// never valid, so a persisted `highest` of 0 means "nothing seen".
    pub fn new() -> Self {
        ReplayWindow {
            highest: 0,
            seen: 1,
        }
    }

    /// Restore after a restart: everything at or below `highest` counts as seen.
    pub fn restored(highest: u64) -> Self {
        ReplayWindow {
            highest,
            seen: u64::MAX,
        }
    }

    pub fn highest(&self) -> u64 {
        self.highest
    }

    /// What `seq` would be, without recording it.
    pub fn check(&self, seq: u64) -> Verdict {
        if seq > self.highest {
            return Verdict::New;
        }
        let back = self.highest - seq;
        if back >= WINDOW {
            return Verdict::TooOld;
        }
        if self.seen & (1u64 << back) != 0 {
            Verdict::Duplicate
        } else {
            Verdict::New
        }
    }

    /// Record `seq` if it is new; returns the verdict either way.
    pub fn accept(&mut self, seq: u64) -> Verdict {
        let v = self.check(seq);
        if v != Verdict::New {
            return v;
        }
        if seq > self.highest {
            let shift = seq - self.highest;
            self.seen = if shift >= WINDOW {
                0
            } else {
                self.seen << shift
            };
            self.seen |= 1;
            self.highest = seq;
        } else {
            self.seen |= 1u64 << (self.highest - seq);
        }
        Verdict::New
    }
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn increasing_numbers_are_new_and_repeats_are_duplicates() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.accept(1), Verdict::New);
        assert_eq!(w.accept(2), Verdict::New);
        assert_eq!(w.accept(2), Verdict::Duplicate);
        assert_eq!(w.accept(1), Verdict::Duplicate);
    }

    #[test]
    fn zero_is_never_new() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.accept(0), Verdict::Duplicate);
    }

    #[test]
    fn late_message_inside_window_is_accepted_once() {
        let mut w = ReplayWindow::new();
        w.accept(10);
        assert_eq!(w.accept(8), Verdict::New);
        assert_eq!(w.accept(8), Verdict::Duplicate);
        assert_eq!(w.accept(9), Verdict::New);
    }

    #[test]
    fn message_below_window_is_too_old() {
        let mut w = ReplayWindow::new();
        w.accept(1000);
        assert_eq!(w.accept(1000 - WINDOW), Verdict::TooOld);
        assert_eq!(w.accept(1000 - WINDOW + 1), Verdict::New);
    }

    #[test]
    fn big_jump_clears_window() {
        let mut w = ReplayWindow::new();
        w.accept(5);
        w.accept(5 + 10 * WINDOW);
        assert_eq!(w.accept(5), Verdict::TooOld);
        assert_eq!(w.accept(5 + 10 * WINDOW - 1), Verdict::New);
    }

    #[test]
    fn restored_window_refuses_everything_up_to_highest() {
        let mut w = ReplayWindow::restored(100);
        assert_eq!(w.accept(100), Verdict::Duplicate);
        assert_eq!(w.accept(99), Verdict::Duplicate);
        assert_eq!(w.accept(1), Verdict::TooOld);
        assert_eq!(w.accept(101), Verdict::New);
    }
}
