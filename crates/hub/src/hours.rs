//! The owner's hours for in-home deliveries.

use serde_json::json;

/// Whether `now_ms` is inside the owner's allowed hours: `{"start_minute",
/// "end_minute", "utc_offset_minutes", "days": [1..7]}` (1 = Monday); no hours set
/// means any time.
pub fn within_owner_hours(allowed_hours: &str, now_ms: i64) -> bool {
    let v: serde_json::Value = serde_json::from_str(allowed_hours).unwrap_or(json!({}));
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
    let local = now_ms.div_euclid(60_000).saturating_add(offset);
    let local_min = local.rem_euclid(1440);
    // 1970-01-01 was a Thursday (day 4).
    let day = (local.div_euclid(1440) + 3).rem_euclid(7) + 1;
    let day_ok = v
        .get("days")
        .and_then(|d| d.as_array())
        .is_none_or(|d| d.iter().any(|x| x.as_i64() == Some(day)));
    day_ok && local_min >= start && local_min < end
}
