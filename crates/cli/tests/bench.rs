//! `threshold bench liveness` with a flood, through the real binary at a small size:
//! the flood's cameras (a device process of their own) send only from their start and
//! are counted, the hub is sampled through the flood, comes back by itself, and calls
//! no camera lost (no camera is silenced, so any such alert would be false). Speed is
//! not asserted (that is what the benchmark reports; docs/performance.md).

use serde_json::Value;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_threshold");

#[test]
fn a_flooded_hub_blames_no_camera_and_comes_back_by_itself() {
    let out = Command::new(BIN)
        .args([
            "bench",
            "liveness",
            "--cameras",
            "20",
            "--hz",
            "4",
            "--duration",
            "14",
            "--silence",
            "0",
            "--flood-cameras",
            "200",
            "--flood-hz",
            "20",
            "--flood-from",
            "3",
            "--flood-for",
            "4",
        ])
        .env("THRESHOLD_LOG", "error")
        .output()
        .expect("run the benchmark");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "benchmark failed: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().expect("a JSON line");
    let v: Value = serde_json::from_str(line).expect("JSON");
    let o = &v["overload"];
    assert_eq!(o["flood_cameras"], 200, "{v}");
    assert!(
        o["flood_offered_per_s"].as_f64().is_some_and(|r| r > 0.0),
        "the flood's cameras sent: {v}"
    );
    assert!(
        o["accepted_per_s_in_flood"]
            .as_f64()
            .is_some_and(|r| r > 0.0),
        "the hub went on accepting: {v}"
    );
    assert!(
        o["rss_peak_in_flood_bytes"].as_u64().is_some_and(|r| r > 0),
        "sampled through the flood: {v}"
    );
    assert!(
        o["recovered_after_s"].as_f64().is_some(),
        "the hub vouched again for every camera after the flood, without a restart: {v}"
    );
    assert_eq!(v["silenced"], 0, "{v}");
    assert_eq!(v["false_alerts"], 0, "no camera lost under a flood: {v}");
}
