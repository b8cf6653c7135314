//! Guest access grants (a weekly cleaner, a neighbour for a week).
//!
//! A grant belongs to one home, is valid between two instants, optionally only in
//! weekly windows (day 1 = Monday, minutes since local midnight in the home's time
//! zone; grants from before zones keep their fixed UTC offset), and can be revoked at
//! any time. Whether the camera rule ("no eyes, no
//! entry") applies is chosen per grant.
//!
//! Authentication: each grant has its own secret (32 random bytes, hex), shown to the
//! owner once at creation and stored only as its SHA-256. The guest unlocks with
//! `POST /api/v1/guest/unlock {"secret": "..."}` — no account needed, nothing else
//! to guess; revoking the grant kills the secret. The unlock is the same signed
//! single-use token as a courier's, with grant `guest:<grant id>`.

pub use threshold_core::hours::WeeklyWindow;

/// Is `now_ms` inside one of the windows, in the home's time zone? No windows = any
/// time.
pub fn in_weekly(windows: &[WeeklyWindow], tz: &jiff::tz::TimeZone, now_ms: i64) -> bool {
    threshold_core::hours::in_windows(windows, tz, now_ms)
}

/// Is `now_ms` inside one of grant `g`'s weekly windows, in its home's time zone
/// (`home`; a grant from before zones keeps its fixed UTC offset)?
pub fn grant_in_weekly(
    g: &threshold_store::GuestGrantRow,
    home: Option<&threshold_store::HomeRow>,
    now_ms: i64,
) -> bool {
    let windows: Vec<WeeklyWindow> = serde_json::from_str(&g.weekly).unwrap_or_default();
    let tz = match home {
        Some(h) => crate::access::hours::home_zone(h, g.utc_offset_minutes),
        None => threshold_core::hours::fixed(g.utc_offset_minutes),
    };
    in_weekly(&windows, &tz, now_ms)
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
        let utc = threshold_core::hours::fixed(0);
        assert!(in_weekly(&w, &utc, monday_10));
        assert!(!in_weekly(&w, &utc, monday_10 + 3 * 3_600_000));
        assert!(!in_weekly(&w, &utc, monday_10 + 24 * 3_600_000));
        // UTC+3: 13:00 local, outside.
        assert!(!in_weekly(
            &w,
            &threshold_core::hours::fixed(180),
            monday_10
        ));
        assert!(in_weekly(&[], &utc, monday_10));
    }
}
