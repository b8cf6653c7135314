//! Device-supplied text, bounded before it goes anywhere (logs, alerts, evidence).

/// At most `max` characters of device-supplied text.
pub fn bounded(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}
