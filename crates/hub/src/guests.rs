//! Guest access grants (a weekly cleaner, a neighbour for a week).
//!
//! A grant belongs to one home, is valid between two instants, optionally only in
//! weekly windows (day 1 = Monday, minutes since local midnight, with the grant's UTC
//! offset), and can be revoked at any time. Whether the camera rule ("no eyes, no
//! entry") applies is chosen per grant.
//!
//! Authentication: each grant has its own secret (32 random bytes, hex), shown to the
//! owner once at creation and stored only as its SHA-256. The guest unlocks with
//! `POST /api/v1/guest/unlock {"secret": "..."}` — no account needed, nothing else
//! to guess; revoking the grant kills the secret. The unlock is the same signed
//! single-use token as a courier's, with grant `guest:<grant id>`.

use serde::Deserialize;

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WeeklyWindow {
    /// 1 = Monday ... 7 = Sunday.
    pub day: i64,
    pub start_minute: i64,
    pub end_minute: i64,
}

impl WeeklyWindow {
    pub fn is_valid(&self) -> bool {
        (1..=7).contains(&self.day)
            && (0..=1440).contains(&self.start_minute)
            && (0..=1440).contains(&self.end_minute)
            && self.start_minute < self.end_minute
    }
}

/// Is `now_ms` inside one of the windows (local time = UTC + offset)? No windows =
/// any time.
pub fn in_weekly(windows: &[WeeklyWindow], utc_offset_minutes: i64, now_ms: i64) -> bool {
    if windows.is_empty() {
        return true;
    }
    let local_min = now_ms.div_euclid(60_000) + utc_offset_minutes;
    let minute = local_min.rem_euclid(1440);
    // 1970-01-01 was a Thursday (day 4).
    let day = (local_min.div_euclid(1440) + 3).rem_euclid(7) + 1;
    windows
        .iter()
        .any(|w| w.day == day && minute >= w.start_minute && minute < w.end_minute)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekly_windows() {
        // 2026-11-23 was a Monday; 10:00 UTC.
        let monday_10 = 1_795_428_000_000i64;
        let w = [WeeklyWindow {
            day: 1,
            start_minute: 9 * 60,
            end_minute: 12 * 60,
        }];
        assert!(in_weekly(&w, 0, monday_10));
        assert!(!in_weekly(&w, 0, monday_10 + 3 * 3_600_000));
        assert!(!in_weekly(&w, 0, monday_10 + 24 * 3_600_000));
        // UTC+3: 13:00 local, outside.
        assert!(!in_weekly(&w, 180, monday_10));
        assert!(in_weekly(&[], 0, monday_10));
    }
}
