//! The owner's hours for in-home deliveries, in the home's time zone
//! (`threshold_core::hours`).

use jiff::tz::TimeZone;
use serde_json::json;
use threshold_core::hours::{daily, fixed, in_windows, zone};
use threshold_store::HomeRow;

/// The home's time zone: its IANA zone, or for a home from before zones the fixed
/// offset its hours were written with (UTC if none).
pub fn home_zone(home: &HomeRow, legacy_offset_minutes: i64) -> TimeZone {
    match home.time_zone.as_deref().map(zone) {
        Some(Ok(tz)) => tz,
        _ => fixed(legacy_offset_minutes),
    }
}

/// Whether `now_ms` is inside the owner's hours: `{"days": [1..7], "start_minute",
/// "end_minute"}` in the home's local time (1 = Monday; no days: every day); no hours
/// set means any time.
pub fn within_owner_hours(home: &HomeRow, now_ms: i64) -> bool {
    let v: serde_json::Value = serde_json::from_str(&home.allowed_hours).unwrap_or(json!({}));
    let (Some(start), Some(end)) = (
        v.get("start_minute").and_then(|x| x.as_i64()),
        v.get("end_minute").and_then(|x| x.as_i64()),
    ) else {
        return true;
    };
    let offset = v
        .get("utc_offset_minutes")
        .and_then(|x| x.as_i64())
        .unwrap_or(0);
    let days: Vec<i64> = v
        .get("days")
        .and_then(|d| d.as_array())
        .map(|d| d.iter().filter_map(|x| x.as_i64()).collect())
        .unwrap_or_default();
    in_windows(&daily(&days, start, end), &home_zone(home, offset), now_ms)
}
