//! Threshold's Wi-Fi intrusion detection: 802.11 capture parsing and
//! deauthentication/disassociation flood detection (law 7: "name the attack").
//!
//! * [`scan_files`] reads pcap/pcapng captures (radiotap, plain 802.11 or PPI) in
//!   constant memory and returns one [`AttackReport`] per attack.
//! * [`write_reports_human`] / [`write_reports_json`] print them.
//! * Its speed is measured by `threshold bench wids` (crates/bench); the synthetic test
//!   corpus and benchmark file come from crates/capture-gen (a dev tool).
//! * [`supplicant`] detects the same attacks without monitor mode, from wpa_supplicant's
//!   control-socket events.
//! * `watch_interface` (cargo feature `live`) scans a monitor-mode interface via libpcap.
//!
//! Rules, thresholds, confidence and comparisons with Kismet and nzyme: `docs/wids.md`.

#![deny(clippy::unwrap_used, clippy::indexing_slicing)]

pub mod capture;
pub mod detect;
pub mod frame;
pub mod link;
#[cfg(feature = "live")]
pub mod live;
pub mod report;
pub mod supplicant;

pub use detect::{Detector, DetectorConfig};
#[cfg(feature = "live")]
pub use live::watch_interface;
pub use report::{write_reports_human, write_reports_json, AttackKind, AttackReport, Rule};

use std::path::{Path, PathBuf};

/// Errors of the Wi-Fi detector.
#[derive(Debug, thiserror::Error)]
pub enum WidsError {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a readable capture.
    #[error("{path}: {msg}")]
    Format {
        /// File.
        path: String,
        /// What is wrong.
        msg: String,
    },
    /// Live capture failed.
    #[error("capture on {iface}: {msg}")]
    Live {
        /// Interface.
        iface: String,
        /// What went wrong.
        msg: String,
    },
}

/// Scan one capture with `cfg`; returns the reports and the number of records.
pub fn scan_file(path: &Path, cfg: &DetectorConfig) -> Result<(Vec<AttackReport>, u64), WidsError> {
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| WidsError::Io {
        path: name.clone(),
        source,
    })?;
    let mut det = Detector::new(cfg.clone()).with_capture(name.clone());
    let stats = capture::read_capture(file, &name, |rec| det.push_record(rec))?;
    Ok((det.finish(), stats.records))
}

/// Scan capture files (pcap or pcapng; radiotap, 802.11 or PPI) for deauthentication and
/// disassociation floods. Each file is scanned on its own; reports come in file order,
/// then by start time.
pub fn scan_files(paths: &[PathBuf], cfg: &DetectorConfig) -> Result<Vec<AttackReport>, WidsError> {
    let mut out = Vec::new();
    for p in paths {
        let (reports, _) = scan_file(p, cfg)?;
        out.extend(reports);
    }
    Ok(out)
}
