//! Limits on guessing a guest link, and on a device's credential renewals: attempts
//! per key within a window. Every attempt counts, allowed or not, so a leaked or
//! scripted guest secret cannot open the door over and over, and nobody makes the hub
//! verify signatures or store challenges for one device without end. A single hub counts in memory; the nodes of a fleet count together in
//! the database (`Store::fleet_throttle`, scope `guest` or `credentials`).

use std::collections::HashMap;
use std::sync::Mutex;

/// Attempts per key: at most `MAX_ATTEMPTS` in `WINDOW_MS` (a fixed window from the
/// first attempt).
#[derive(Debug)]
pub struct AttemptLimiter(Keys, &'static str);

#[derive(Debug)]
enum Keys {
    Local(Mutex<HashMap<String, (i64, i64)>>),
    Shared(threshold_store::Store),
}

/// The window's count after one more attempt at `now`, given (count, window start).
fn count(entry: &mut (i64, i64), now: i64) -> bool {
    if now - entry.1 >= AttemptLimiter::WINDOW_MS {
        *entry = (0, now);
    }
    if entry.0 >= AttemptLimiter::MAX_ATTEMPTS {
        return false;
    }
    entry.0 += 1;
    true
}

impl AttemptLimiter {
    pub const MAX_ATTEMPTS: i64 = 10;
    pub const WINDOW_MS: i64 = 5 * 60 * 1000;

    /// Counted in this process's memory (a single hub); `scope` names what is
    /// counted (`guest`, `credentials`).
    pub fn local(scope: &'static str) -> AttemptLimiter {
        AttemptLimiter(Keys::Local(Mutex::new(HashMap::new())), scope)
    }

    /// Counted in the database, together with a fleet's other nodes, under `scope`.
    pub fn shared(store: threshold_store::Store, scope: &'static str) -> AttemptLimiter {
        AttemptLimiter(Keys::Shared(store), scope)
    }

    /// Count an attempt for `key`; false (not counted) if the key has had its
    /// attempts for this window, or if the shared count cannot be reached.
    pub async fn attempt(&self, key: &str, now: i64) -> bool {
        let key: String = key.chars().take(64).collect();
        match &self.0 {
            Keys::Local(m) => {
                let mut m = m.lock().unwrap_or_else(|p| p.into_inner());
                if m.len() > 100_000 {
                    m.retain(|_, &mut (_, since)| now - since < Self::WINDOW_MS);
                }
                count(m.entry(key).or_insert((0, now)), now)
            }
            Keys::Shared(store) => {
                let counted = store
                    .fleet_throttle(self.1, &key, |row| {
                        let mut e = (row.failures, row.last_failure_ms);
                        let ok = count(&mut e, now);
                        (row.failures, row.last_failure_ms) = e;
                        ok
                    })
                    .await;
                counted.unwrap_or_else(|e| {
                    tracing::error!(error = %e, scope = self.1, "attempt count unreachable");
                    false
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ten_attempts_per_window_then_none_until_it_passes() {
        let l = AttemptLimiter::local("guest");
        for _ in 0..AttemptLimiter::MAX_ATTEMPTS {
            assert!(l.attempt("grant", 1000).await);
        }
        assert!(!l.attempt("grant", 1001).await);
        assert!(l.attempt("other", 1001).await, "keys are independent");
        assert!(
            l.attempt("grant", 1000 + AttemptLimiter::WINDOW_MS).await,
            "a new window"
        );
    }
}
