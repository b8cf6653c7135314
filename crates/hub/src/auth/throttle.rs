//! Sign-in throttling that holds under concurrency, with backoff instead of lockout.
//!
//! Every attempt reserves its place before the password is checked, so forty guesses
//! sent at once are counted as forty, not as however many finished before the
//! others were let in. The first `free` failures of a key (an account, or a source
//! address) cost nothing; beyond them a key allows one attempt at a time, each only
//! after a delay that doubles with every further failure, up to `max_delay_ms`. An
//! attacker guessing at someone's account therefore slows it to one try every
//! `max_delay_ms` (and so slows the owner's own sign-in by at most that much) instead
//! of locking the owner out; a source that guesses across many accounts is slowed on
//! its own key. Failures are forgotten `window_ms` after the last one.

use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub free: u32,
    pub max_delay_ms: i64,
    pub window_ms: i64,
    /// Whether a success forgets the key's failures. True for an account (its owner
    /// got in); false for a source, which could otherwise reset its count by signing
    /// in to an account of its own between guesses.
    pub success_clears: bool,
}

impl Limits {
    /// Per account: ten free failures, then 1 s, 2 s, … up to 30 s between attempts.
    pub const ACCOUNT: Limits = Limits {
        free: 10,
        max_delay_ms: 30_000,
        window_ms: 15 * 60_000,
        success_clears: true,
    };
    /// Per source address, across accounts (generous: behind a proxy or a shared
    /// network many people have one address).
    pub const SOURCE: Limits = Limits {
        free: 50,
        max_delay_ms: 30_000,
        window_ms: 15 * 60_000,
        success_clears: false,
    };
}

#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    failures: u32,
    pending: u32,
    last_failure_ms: i64,
}

/// The most keys kept; beyond it, forgotten entries are swept first.
const MAX_KEYS: usize = 100_000;

#[derive(Debug)]
pub struct Throttle {
    limits: Limits,
    keys: Mutex<HashMap<String, Entry>>,
}

impl Throttle {
    pub fn new(limits: Limits) -> Throttle {
        Throttle {
            limits,
            keys: Mutex::new(HashMap::new()),
        }
    }

    fn delay_after(&self, failures: u32) -> i64 {
        let over = failures.saturating_sub(self.limits.free).min(20);
        (1000i64 << over).min(self.limits.max_delay_ms)
    }

    /// Reserve an attempt for `key`, or say how many milliseconds to wait.
    pub fn begin(&self, key: &str, now_ms: i64) -> Result<(), i64> {
        let mut t = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if t.len() >= MAX_KEYS {
            let window = self.limits.window_ms;
            t.retain(|_, e| e.pending > 0 || now_ms - e.last_failure_ms < window);
        }
        let key: String = key.chars().take(96).collect();
        let e = t.entry(key).or_default();
        if e.pending == 0 && e.failures > 0 && now_ms - e.last_failure_ms >= self.limits.window_ms {
            *e = Entry::default();
        }
        if e.failures + e.pending >= self.limits.free {
            if e.pending > 0 {
                return Err(self.delay_after(e.failures + 1));
            }
            let wait = e.last_failure_ms + self.delay_after(e.failures) - now_ms;
            if wait > 0 {
                return Err(wait);
            }
        }
        e.pending += 1;
        Ok(())
    }

    /// Give back an attempt that was let through but not made (nothing was checked).
    pub fn cancel(&self, key: &str) {
        let mut t = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let key: String = key.chars().take(96).collect();
        if let Some(e) = t.get_mut(&key) {
            e.pending = e.pending.saturating_sub(1);
            if e.failures == 0 && e.pending == 0 {
                t.remove(&key);
            }
        }
    }

    /// End an attempt [`begin`](Self::begin) let through.
    pub fn finish(&self, key: &str, now_ms: i64, succeeded: bool) {
        let mut t = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let key: String = key.chars().take(96).collect();
        let Some(e) = t.get_mut(&key) else { return };
        e.pending = e.pending.saturating_sub(1);
        if succeeded {
            if self.limits.success_clears {
                e.failures = 0;
            }
        } else {
            e.failures = e.failures.saturating_add(1);
            e.last_failure_ms = now_ms;
        }
        if e.failures == 0 && e.pending == 0 {
            t.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Limits = Limits {
        free: 3,
        max_delay_ms: 8_000,
        window_ms: 60_000,
        success_clears: true,
    };

    #[test]
    fn a_source_cannot_reset_its_count_by_signing_in() {
        let t = Throttle::new(Limits {
            success_clears: false,
            ..L
        });
        for _ in 0..3 {
            t.begin("ip:x", 0).unwrap();
            t.finish("ip:x", 0, false);
        }
        // A success on an account of its own does not give the budget back: still
        // one attempt at a time.
        assert!(t.begin("ip:x", 1000).is_ok());
        t.finish("ip:x", 1000, true);
        let let_in = (0..3).filter(|_| t.begin("ip:x", 1000).is_ok()).count();
        assert_eq!(let_in, 1);
    }

    #[test]
    fn attempts_in_flight_count_against_the_free_budget() {
        let t = Throttle::new(L);
        let let_in = (0..40).filter(|_| t.begin("ann", 0).is_ok()).count();
        assert_eq!(
            let_in, 3,
            "forty at once: only the free budget gets through"
        );
    }

    #[test]
    fn beyond_the_budget_one_at_a_time_with_doubling_delays() {
        let t = Throttle::new(L);
        for _ in 0..3 {
            t.begin("ann", 0).unwrap();
            t.finish("ann", 0, false);
        }
        assert_eq!(t.begin("ann", 0), Err(1000));
        t.begin("ann", 1000).unwrap();
        assert!(t.begin("ann", 1000).is_err(), "one at a time");
        t.finish("ann", 1000, false);
        assert_eq!(
            t.begin("ann", 2000),
            Err(1000),
            "2 s after the last failure"
        );
        t.begin("ann", 3000).unwrap();
        t.finish("ann", 3000, false);
        t.begin("ann", 7000).unwrap();
        t.finish("ann", 7000, false);
        // Capped: never more than max_delay_ms.
        assert_eq!(t.begin("ann", 7000), Err(8000));
        t.begin("ann", 15_000).unwrap();
        t.finish("ann", 15_000, false);
        assert_eq!(t.begin("ann", 15_000), Err(8000));
    }

    #[test]
    fn success_clears_and_time_forgets() {
        let t = Throttle::new(L);
        for _ in 0..3 {
            t.begin("ann", 0).unwrap();
            t.finish("ann", 0, false);
        }
        assert!(t.begin("ann", 500).is_err());
        assert!(t.begin("ann", 60_000).is_ok(), "window passed");
        t.finish("ann", 60_000, true);
        for _ in 0..3 {
            assert!(t.begin("ann", 60_001).is_ok());
            t.finish("ann", 60_001, false);
        }
        assert!(t.begin("bob", 60_001).is_ok(), "keys are independent");
    }
}
