//! Local hours: the owner's hours for in-home deliveries and a guest's weekly windows
//! are wall-clock times in the home's time zone (an IANA name such as
//! `Europe/Amsterdam`), so "08:00-18:00" means eight in the morning on the day after a
//! daylight-saving change too. Time zone rules come from the IANA database through
//! `jiff` (the system copy when there is one, else the copy built in).

use crate::Millis;
use jiff::tz::{Offset, TimeZone};
use jiff::Timestamp;

/// A weekly window: ISO weekday (1 = Monday ... 7 = Sunday) and minutes since local
/// midnight, `start_minute` included, `end_minute` excluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeeklyWindow {
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

/// Why a time zone name was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown time zone {0:?}: use an IANA name such as Europe/Amsterdam")]
pub struct UnknownZone(pub String);

/// The time zone of an IANA name.
pub fn zone(name: &str) -> Result<TimeZone, UnknownZone> {
    if name.is_empty() || name.len() > 64 {
        return Err(UnknownZone(name.chars().take(64).collect()));
    }
    TimeZone::get(name).map_err(|_| UnknownZone(name.to_owned()))
}

/// A fixed offset from UTC, in minutes (homes and grants from before time zones).
pub fn fixed(offset_minutes: i64) -> TimeZone {
    let secs = offset_minutes.clamp(-14 * 60, 14 * 60) * 60;
    TimeZone::fixed(Offset::from_seconds(secs as i32).unwrap_or(Offset::UTC))
}

/// The local ISO weekday (1 = Monday) and minute of the day of `now` in `tz`.
pub fn local_day_minute(tz: &TimeZone, now: Millis) -> Option<(i64, i64)> {
    let t = Timestamp::from_millisecond(now).ok()?;
    let z = t.to_zoned(tz.clone());
    let day = i64::from(z.weekday().to_monday_one_offset());
    let minute = i64::from(z.hour()) * 60 + i64::from(z.minute());
    Some((day, minute))
}

/// Whether `now` is inside one of the windows, in `tz`. No windows: any time.
pub fn in_windows(windows: &[WeeklyWindow], tz: &TimeZone, now: Millis) -> bool {
    if windows.is_empty() {
        return true;
    }
    let Some((day, minute)) = local_day_minute(tz, now) else {
        return false;
    };
    windows
        .iter()
        .any(|w| w.day == day && minute >= w.start_minute && minute < w.end_minute)
}

/// The owner's daily hours on some weekdays (none listed: every day) as windows.
pub fn daily(days: &[i64], start_minute: i64, end_minute: i64) -> Vec<WeeklyWindow> {
    let all = [1, 2, 3, 4, 5, 6, 7];
    let days: &[i64] = if days.is_empty() { &all } else { days };
    days.iter()
        .map(|&day| WeeklyWindow {
            day,
            start_minute,
            end_minute,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Millis {
        s.parse::<Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn owner_hours_hold_in_local_time_across_daylight_saving_changes() {
        let ams = zone("Europe/Amsterdam").unwrap();
        let hours = daily(&[], 8 * 60, 18 * 60);
        // 2026-03-29: clocks go from 02:00 to 03:00 (UTC+1 -> UTC+2). The day after,
        // 08:30 local is 06:30 UTC.
        assert!(in_windows(&hours, &ams, at("2026-03-30T06:30:00Z")));
        assert!(
            !in_windows(&hours, &ams, at("2026-03-30T05:30:00Z")),
            "07:30 local"
        );
        // 2026-10-25: back from 03:00 to 02:00 (UTC+2 -> UTC+1). The day after, 08:30
        // local is 07:30 UTC.
        assert!(in_windows(&hours, &ams, at("2026-10-26T07:30:00Z")));
        assert!(
            !in_windows(&hours, &ams, at("2026-10-26T06:30:00Z")),
            "07:30 local"
        );
        // A fixed offset of the winter's +1 h would have been wrong in summer.
        assert!(!in_windows(&hours, &fixed(60), at("2026-03-30T06:30:00Z")));
    }

    #[test]
    fn weekly_windows_use_the_local_weekday() {
        // Monday 2026-11-23 23:30 in New York is Tuesday 04:30 UTC.
        let ny = zone("America/New_York").unwrap();
        let monday_late = [WeeklyWindow {
            day: 1,
            start_minute: 23 * 60,
            end_minute: 24 * 60,
        }];
        assert!(in_windows(&monday_late, &ny, at("2026-11-24T04:30:00Z")));
        assert!(!in_windows(
            &monday_late,
            &TimeZone::UTC,
            at("2026-11-24T04:30:00Z")
        ));
        assert!(in_windows(&[], &ny, 0));
    }

    #[test]
    fn bad_zone_names_are_refused() {
        for n in ["", "Mars/Olympus", "../../etc/passwd", &"x".repeat(100)] {
            assert!(zone(n).is_err(), "{n}");
        }
        assert!(zone("UTC").is_ok());
    }

    #[test]
    fn windows_validate() {
        assert!(WeeklyWindow {
            day: 7,
            start_minute: 0,
            end_minute: 1440
        }
        .is_valid());
        assert!(!WeeklyWindow {
            day: 0,
            start_minute: 0,
            end_minute: 10
        }
        .is_valid());
        assert!(!WeeklyWindow {
            day: 1,
            start_minute: 10,
            end_minute: 10
        }
        .is_valid());
        assert_eq!(daily(&[2, 4], 0, 60).len(), 2);
    }
}
