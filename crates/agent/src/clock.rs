//! Wall-clock access in one place. Logic that depends on time takes `now_ms` as an
//! argument so it can be tested without sleeping; only the agent loops call this.

use std::time::{SystemTime, UNIX_EPOCH};

/// Current Unix time in milliseconds (0 if the clock is before 1970, which the hub
/// will then reject as clock skew rather than us panicking).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
