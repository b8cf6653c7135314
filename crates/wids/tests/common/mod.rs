//! Shared test helpers.
#![allow(dead_code)]

use std::path::PathBuf;

/// The real captures in `../shared/captures` relative to the repository root, or `None`
/// (with a printed note) when they are absent and services are not required.
pub fn captures_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/captures"
    ));
    if dir.join("README.md").exists() {
        return Some(dir);
    }
    if std::env::var("THRESHOLD_REQUIRE_SERVICES").as_deref() == Ok("1") {
        panic!(
            "THRESHOLD_REQUIRE_SERVICES=1 but the real captures are missing at {}",
            dir.display()
        );
    }
    eprintln!(
        "note: real captures not found at {}; skipping (set THRESHOLD_REQUIRE_SERVICES=1 to fail instead)",
        dir.display()
    );
    None
}

pub const HEIGVD: &str = "heigvd_swi22_aireplay_directed.pcapng";
pub const DEMENTED: &str = "dementedproton_aireplay_directed_dlt105.pcap";
pub const BENIGN: &str = "aircrack_wpa-psk-linksys_benign.cap";

/// A fresh temporary directory under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "threshold-wids-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&d).expect("create temp dir");
    d
}
