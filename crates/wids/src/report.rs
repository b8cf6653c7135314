//! Attack reports and their printers.

use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;

/// Which frames made up the attack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AttackKind {
    /// Deauthentication frames only.
    Deauth,
    /// Disassociation frames only.
    Disassoc,
    /// Both.
    Both,
}

impl AttackKind {
    /// `deauth`, `disassoc` or `both`.
    pub fn as_str(self) -> &'static str {
        match self {
            AttackKind::Deauth => "deauth",
            AttackKind::Disassoc => "disassoc",
            AttackKind::Both => "both",
        }
    }
}

/// Which threshold the flood crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rule {
    /// `burst_frames` within `burst_window_s` in one flow.
    Burst,
    /// `sustained_frames` in one flow within one episode.
    Sustained,
}

/// One detected deauthentication/disassociation attack.
///
/// JSON field names are stable (see `docs/wids.md`). Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttackReport {
    /// `deauth`, `disassoc` or `both`.
    pub kind: AttackKind,
    /// The claimed transmitter (addr2) with the most frames (the AP on a tie).
    pub transmitter: String,
    /// The receiver (addr1) of that transmitter's frames.
    pub receiver: String,
    /// The BSSID (addr3).
    pub bssid: String,
    /// The victim: the station being disconnected, or the broadcast address.
    pub target: String,
    /// The network's SSID when a beacon was seen.
    pub ssid: Option<String>,
    /// Addressed to a group (broadcast/multicast) address.
    pub broadcast: bool,
    /// Reason code -> frames (unprotected frames only: a protected body is encrypted).
    pub reason_codes: BTreeMap<u16, u64>,
    /// Frames counted (after removing duplicate copies).
    pub frames: u64,
    /// Of which deauthentications.
    pub deauth_frames: u64,
    /// Of which disassociations.
    pub disassoc_frames: u64,
    /// Claimed transmitter -> frames (both directions of a directed attack).
    pub transmitters: BTreeMap<String, u64>,
    /// First frame, Unix seconds.
    pub start: f64,
    /// Last frame, Unix seconds.
    pub end: f64,
    /// Most frames in any one-second window (10 ms granularity).
    pub peak_rate_per_s: f64,
    /// Most frames carried 802.11w protection (Protected bit, or a Management MIC element
    /// on a broadcast frame).
    pub protected: bool,
    /// Number of protected frames.
    pub protected_frames: u64,
    /// Whether the network's beacons require MFP (`null` when no beacon was seen).
    pub network_requires_mfp: Option<bool>,
    /// Confidence that this is an attack, 0..1 (see `docs/wids.md`).
    pub confidence: f64,
    /// `low` (< 0.45), `medium` (< 0.75) or `high`.
    pub confidence_label: String,
    /// Which threshold was crossed.
    pub rule: Rule,
    /// Human-readable evidence behind the confidence.
    pub evidence: Vec<String>,
    /// An early alert for a flood still in progress (live mode only).
    pub ongoing: bool,
    /// The capture (file path or interface) this came from.
    pub capture: Option<String>,
}

fn fmt_time(t: f64) -> String {
    // Capture timestamps are seconds (with a fraction) since the epoch, UTC.
    let ms = (t * 1000.0).floor();
    match jiff::Timestamp::from_millisecond(ms as i64) {
        Ok(ts) if t.is_finite() && ms.abs() < i64::MAX as f64 => {
            format!("{} UTC", ts.strftime("%Y-%m-%d %H:%M:%S%.3f"))
        }
        _ => format!("{t}"),
    }
}

/// Human-readable report, one block per attack.
pub fn write_reports_human(reports: &[AttackReport], out: &mut dyn Write) -> std::io::Result<()> {
    if reports.is_empty() {
        writeln!(out, "no deauthentication/disassociation attack detected")?;
        return Ok(());
    }
    for (i, r) in reports.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        let what = match r.kind {
            AttackKind::Deauth => "deauthentication",
            AttackKind::Disassoc => "disassociation",
            AttackKind::Both => "deauthentication + disassociation",
        };
        let scope = if r.broadcast {
            "broadcast".to_string()
        } else {
            format!("targeted at {}", r.target)
        };
        writeln!(
            out,
            "ATTACK {}: {what} flood, {scope}{}",
            i + 1,
            if r.ongoing { " (in progress)" } else { "" }
        )?;
        let ssid = r
            .ssid
            .as_deref()
            .map(|s| format!(" ({s:?})"))
            .unwrap_or_default();
        writeln!(out, "  network     {}{ssid}", r.bssid)?;
        writeln!(out, "  claimed     {} -> {}", r.transmitter, r.receiver)?;
        if r.transmitters.len() > 1 {
            let list: Vec<String> = r
                .transmitters
                .iter()
                .map(|(m, n)| format!("{m} x{n}"))
                .collect();
            writeln!(out, "  claimed by  {}", list.join(", "))?;
        }
        writeln!(
            out,
            "  when        {} .. {} ({:.2} s)",
            fmt_time(r.start),
            fmt_time(r.end),
            r.end - r.start
        )?;
        writeln!(
            out,
            "  frames      {} (deauth {}, disassoc {}), peak {} per second",
            r.frames, r.deauth_frames, r.disassoc_frames, r.peak_rate_per_s
        )?;
        let reasons: Vec<String> = r
            .reason_codes
            .iter()
            .map(|(c, n)| format!("{c} x{n}"))
            .collect();
        writeln!(
            out,
            "  reasons     {}",
            if reasons.is_empty() {
                "unreadable (protected)".to_string()
            } else {
                reasons.join(", ")
            }
        )?;
        writeln!(
            out,
            "  protected   {} ({} of {} frames)",
            if r.protected { "yes" } else { "no" },
            r.protected_frames,
            r.frames
        )?;
        writeln!(
            out,
            "  confidence  {:.2} ({})",
            r.confidence, r.confidence_label
        )?;
        for e in &r.evidence {
            writeln!(out, "    - {e}")?;
        }
        if let Some(c) = &r.capture {
            writeln!(out, "  capture     {c}")?;
        }
    }
    Ok(())
}

/// JSON lines: one object per attack per line, nothing else.
pub fn write_reports_json(reports: &[AttackReport], out: &mut dyn Write) -> std::io::Result<()> {
    for r in reports {
        let line = serde_json::to_string(r).map_err(std::io::Error::other)?;
        writeln!(out, "{line}")?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::fmt_time;

    #[test]
    fn civil_time() {
        assert_eq!(fmt_time(0.0), "1970-01-01 00:00:00.000 UTC");
        assert_eq!(fmt_time(1646925723.5), "2022-03-10 15:22:03.500 UTC");
        assert_eq!(fmt_time(951782400.0), "2000-02-29 00:00:00.000 UTC");
    }
}
