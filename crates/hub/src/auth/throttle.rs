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
//!
//! A single hub keeps the entries in memory; the nodes of a fleet share them in the
//! database (`Store::fleet_throttle`, under a row lock), so guesses spread over the
//! nodes count as much as guesses sent to one. An attempt reserved and never finished
//! (its request dropped, its node killed) stops counting after `STALE_PENDING_MS`.

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

/// A reservation older than this was abandoned (a dropped request, a killed node):
/// no sign-in takes this long (the password check has its own bounded pool).
pub const STALE_PENDING_MS: i64 = 60_000;

/// One key's state: the same fields in memory and in the database.
pub type Entry = threshold_store::fleet::ThrottleRow;

/// The rules, on one entry: let an attempt in, or say how long to wait.
fn admit(e: &mut Entry, limits: &Limits, now_ms: i64) -> Result<(), i64> {
    if e.pending > 0 && now_ms - e.pending_since_ms >= STALE_PENDING_MS {
        e.pending = 0;
    }
    if e.pending == 0 && e.failures > 0 && now_ms - e.last_failure_ms >= limits.window_ms {
        *e = Entry::default();
    }
    if e.failures + e.pending >= i64::from(limits.free) {
        if e.pending > 0 {
            return Err(delay_after(limits, e.failures + 1));
        }
        let wait = e.last_failure_ms + delay_after(limits, e.failures) - now_ms;
        if wait > 0 {
            return Err(wait);
        }
    }
    e.pending += 1;
    e.pending_since_ms = now_ms;
    Ok(())
}

fn give_back(e: &mut Entry) {
    e.pending = (e.pending - 1).max(0);
}

fn settle(e: &mut Entry, limits: &Limits, now_ms: i64, succeeded: bool) {
    e.pending = (e.pending - 1).max(0);
    if succeeded {
        if limits.success_clears {
            e.failures = 0;
        }
    } else {
        e.failures = e.failures.saturating_add(1);
        e.last_failure_ms = now_ms;
    }
}

fn delay_after(limits: &Limits, failures: i64) -> i64 {
    let over = (failures - i64::from(limits.free)).clamp(0, 20);
    (1000i64 << over).min(limits.max_delay_ms)
}

/// The most keys kept in memory; beyond it, forgotten entries are swept first.
const MAX_KEYS: usize = 100_000;

#[derive(Debug)]
enum Keys {
    Local(Mutex<HashMap<String, Entry>>),
    /// A fleet's: in the database, under this scope.
    Shared {
        store: threshold_store::Store,
        scope: &'static str,
    },
}

#[derive(Debug)]
pub struct Throttle {
    limits: Limits,
    keys: Keys,
}

impl Throttle {
    /// Entries in this process's memory (a single hub).
    pub fn new(limits: Limits) -> Throttle {
        Throttle {
            limits,
            keys: Keys::Local(Mutex::new(HashMap::new())),
        }
    }

    /// Entries shared by a fleet's nodes, in the database under `scope`.
    pub fn shared(limits: Limits, store: threshold_store::Store, scope: &'static str) -> Throttle {
        Throttle {
            limits,
            keys: Keys::Shared { store, scope },
        }
    }

    /// Apply `change` to `key`'s entry, dropping entries that hold nothing. `None`
    /// if the shared entries could not be reached.
    async fn with<R>(
        &self,
        key: &str,
        now_ms: i64,
        change: impl FnOnce(&mut Entry) -> R,
    ) -> Option<R> {
        let key: String = key.chars().take(96).collect();
        match &self.keys {
            Keys::Local(m) => {
                let mut t = m.lock().unwrap_or_else(|p| p.into_inner());
                if t.len() >= MAX_KEYS {
                    let window = self.limits.window_ms;
                    t.retain(|_, e| e.pending > 0 || now_ms - e.last_failure_ms < window);
                }
                let e = t.entry(key.clone()).or_default();
                let out = change(e);
                if e.failures == 0 && e.pending == 0 {
                    t.remove(&key);
                }
                Some(out)
            }
            Keys::Shared { store, scope } => {
                match store.fleet_throttle(scope, &key, change).await {
                    Ok(out) => Some(out),
                    Err(e) => {
                        tracing::error!(error = %e, "sign-in throttle unreachable");
                        None
                    }
                }
            }
        }
    }

    /// Reserve an attempt for `key`, or say how many milliseconds to wait. Without
    /// its shared entries, a fleet node lets nobody try (wait a second).
    pub async fn begin(&self, key: &str, now_ms: i64) -> Result<(), i64> {
        let limits = self.limits;
        self.with(key, now_ms, |e| admit(e, &limits, now_ms))
            .await
            .unwrap_or(Err(1000))
    }

    /// Give back an attempt that was let through but not made (nothing was checked).
    pub async fn cancel(&self, key: &str) {
        self.with(key, 0, give_back).await;
    }

    /// End an attempt [`begin`](Self::begin) let through.
    pub async fn finish(&self, key: &str, now_ms: i64, succeeded: bool) {
        let limits = self.limits;
        self.with(key, now_ms, |e| settle(e, &limits, now_ms, succeeded))
            .await;
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

    #[tokio::test]
    async fn a_source_cannot_reset_its_count_by_signing_in() {
        let t = Throttle::new(Limits {
            success_clears: false,
            ..L
        });
        for _ in 0..3 {
            t.begin("ip:x", 0).await.unwrap();
            t.finish("ip:x", 0, false).await;
        }
        // A success on an account of its own does not give the budget back: still
        // one attempt at a time.
        assert!(t.begin("ip:x", 1000).await.is_ok());
        t.finish("ip:x", 1000, true).await;
        let mut let_in = 0;
        for _ in 0..3 {
            let_in += usize::from(t.begin("ip:x", 1000).await.is_ok());
        }
        assert_eq!(let_in, 1);
    }

    #[tokio::test]
    async fn attempts_in_flight_count_against_the_free_budget() {
        let t = Throttle::new(L);
        let mut let_in = 0;
        for _ in 0..40 {
            let_in += usize::from(t.begin("ann", 0).await.is_ok());
        }
        assert_eq!(
            let_in, 3,
            "forty at once: only the free budget gets through"
        );
    }

    #[tokio::test]
    async fn beyond_the_budget_one_at_a_time_with_doubling_delays() {
        let t = Throttle::new(L);
        for _ in 0..3 {
            t.begin("ann", 0).await.unwrap();
            t.finish("ann", 0, false).await;
        }
        assert_eq!(t.begin("ann", 0).await, Err(1000));
        t.begin("ann", 1000).await.unwrap();
        assert!(t.begin("ann", 1000).await.is_err(), "one at a time");
        t.finish("ann", 1000, false).await;
        assert_eq!(
            t.begin("ann", 2000).await,
            Err(1000),
            "2 s after the last failure"
        );
        t.begin("ann", 3000).await.unwrap();
        t.finish("ann", 3000, false).await;
        t.begin("ann", 7000).await.unwrap();
        t.finish("ann", 7000, false).await;
        // Capped: never more than max_delay_ms.
        assert_eq!(t.begin("ann", 7000).await, Err(8000));
        t.begin("ann", 15_000).await.unwrap();
        t.finish("ann", 15_000, false).await;
        assert_eq!(t.begin("ann", 15_000).await, Err(8000));
    }

    #[tokio::test]
    async fn success_clears_and_time_forgets() {
        let t = Throttle::new(L);
        for _ in 0..3 {
            t.begin("ann", 0).await.unwrap();
            t.finish("ann", 0, false).await;
        }
        assert!(t.begin("ann", 500).await.is_err());
        assert!(t.begin("ann", 60_000).await.is_ok(), "window passed");
        t.finish("ann", 60_000, true).await;
        for _ in 0..3 {
            assert!(t.begin("ann", 60_001).await.is_ok());
            t.finish("ann", 60_001, false).await;
        }
        assert!(t.begin("bob", 60_001).await.is_ok(), "keys are independent");
    }

    #[tokio::test]
    async fn an_abandoned_attempt_stops_counting() {
        let t = Throttle::new(L);
        for _ in 0..3 {
            t.begin("ann", 0).await.unwrap();
        }
        // Three reserved and never finished (the requests were dropped): the owner is
        // held back for a while, not forever.
        assert!(t.begin("ann", 1_000).await.is_err());
        assert!(t.begin("ann", STALE_PENDING_MS).await.is_ok());
    }
}
