//! `threshold bench wids FILE`: the detector's throughput on a capture, and the
//! benchmark file itself (`threshold bench wids --generate N FILE`).

use serde::Serialize;
use std::path::Path;
use std::time::Instant;
use threshold_wids::{scan_file, DetectorConfig};

/// One run; printed as one JSON line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WidsReport {
    /// Records read.
    pub frames: u64,
    /// Records per second of wall-clock time (open, read, parse, detect).
    pub frames_per_s: f64,
    /// Attacks reported.
    pub attacks: usize,
}

/// Scan `path` with the default configuration and measure the rate.
pub fn run(path: &Path) -> anyhow::Result<WidsReport> {
    let t0 = Instant::now();
    let (reports, frames) = scan_file(path, &DetectorConfig::default())?;
    let secs = t0.elapsed().as_secs_f64().max(1e-9);
    Ok(WidsReport {
        frames,
        frames_per_s: (frames as f64 / secs).round(),
        attacks: reports.len(),
    })
}

/// Write the benchmark file: `frames` radiotap records with a deauthentication flood
/// every 200 000 (docs/performance.md). Deterministic.
pub fn generate(path: &Path, frames: u64) -> anyhow::Result<serde_json::Value> {
    let info = threshold_capture_gen::write_large(path, frames)?;
    Ok(serde_json::json!({
        "file": path.display().to_string(),
        "frames": info.frames,
        "disconnect_frames": info.disconnect_frames,
        "attacks_expected": info.attacks,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_benchmark_file_holds_the_attacks_it_promises() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bench.pcap");
        let info = generate(&path, 400_001).unwrap();
        let r = run(&path).unwrap();
        assert_eq!(r.frames, info["frames"].as_u64().unwrap());
        assert_eq!(r.attacks as u64, info["attacks_expected"].as_u64().unwrap());
        assert!(r.attacks >= 2, "{r:?}");
    }
}
