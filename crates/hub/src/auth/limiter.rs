//! Limits on guessing: failed attempts per name in a window.

/// Failed sign-ins per username within a window: after `MAX_FAILURES` the account
/// refuses sign-in until the window passes, so a password cannot be guessed online.
/// Keyed by the name asked for, existing or not, so it reveals nothing.
#[derive(Debug, Default)]
pub struct LoginLimiter(std::sync::Mutex<std::collections::HashMap<String, (u32, i64)>>);

impl LoginLimiter {
    pub const MAX_FAILURES: u32 = 10;
    pub const WINDOW_MS: i64 = 5 * 60 * 1000;

    pub fn blocked(&self, name: &str, now: i64) -> bool {
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.get(name)
            .is_some_and(|&(n, since)| n >= Self::MAX_FAILURES && now - since < Self::WINDOW_MS)
    }

    pub fn failed(&self, name: &str, now: i64) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // Bound the map: forget expired entries when it grows.
        if m.len() > 100_000 {
            m.retain(|_, &mut (_, since)| now - since < Self::WINDOW_MS);
        }
        let e = m.entry(name.chars().take(64).collect()).or_insert((0, now));
        if now - e.1 >= Self::WINDOW_MS {
            *e = (0, now);
        }
        e.0 += 1;
    }

    pub fn succeeded(&self, name: &str) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
    }
}
