//! The real captures in ../shared/captures yield what their README says.

mod common;

use common::{captures_dir, BENIGN, DEMENTED, HEIGVD};
use threshold_wids::{
    scan_files, write_reports_human, write_reports_json, AttackKind, DetectorConfig,
};

#[test]
fn heigvd_aireplay_directed() {
    let Some(dir) = captures_dir() else { return };
    let r = scan_files(&[dir.join(HEIGVD)], &DetectorConfig::default()).expect("scan");
    assert_eq!(r.len(), 1, "{r:#?}");
    let a = &r[0];
    assert_eq!(a.kind, AttackKind::Deauth);
    assert_eq!(a.bssid, "dc:a5:f4:60:c2:b0");
    assert_eq!(a.target, "c0:ee:fb:e2:4f:1f");
    assert!(!a.broadcast);
    // 256 records, every injected frame captured twice: 128 frames (64 each way)
    assert_eq!(a.frames, 128);
    assert_eq!(a.transmitters.len(), 2);
    assert_eq!(a.reason_codes.get(&7), Some(&128));
    assert!(a.end - a.start < 0.7);
    assert!(a.confidence >= 0.75, "{a:#?}");
    let mut human = Vec::new();
    write_reports_human(&r, &mut human).expect("print");
    let human = String::from_utf8(human).expect("utf8");
    println!("{human}");
    let mut json = Vec::new();
    write_reports_json(&r, &mut json).expect("json");
    println!("{}", String::from_utf8(json).expect("utf8"));
    assert!(human.contains("targeted at c0:ee:fb:e2:4f:1f"));
}

#[test]
fn dementedproton_aireplay_directed() {
    let Some(dir) = captures_dir() else { return };
    let r = scan_files(&[dir.join(DEMENTED)], &DetectorConfig::default()).expect("scan");
    assert_eq!(r.len(), 1, "{r:#?}");
    let a = &r[0];
    assert_eq!(a.target, "30:3a:64:e1:76:11");
    assert_eq!(a.bssid, "00:14:5c:9a:86:f4");
    assert_eq!(a.frames, 28);
    assert!(!a.broadcast);
    assert!(a.confidence >= 0.75, "{a:#?}");
}

#[test]
fn benign_network_yields_nothing() {
    let Some(dir) = captures_dir() else { return };
    let r = scan_files(&[dir.join(BENIGN)], &DetectorConfig::default()).expect("scan");
    assert!(r.is_empty(), "{r:#?}");
}

#[test]
fn json_lines_have_the_fields() {
    let Some(dir) = captures_dir() else { return };
    let r = scan_files(
        &[dir.join(HEIGVD), dir.join(BENIGN), dir.join(DEMENTED)],
        &DetectorConfig::default(),
    )
    .expect("scan");
    let mut out = Vec::new();
    write_reports_json(&r, &mut out).expect("json");
    let text = String::from_utf8(out).expect("utf8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    for l in lines {
        let v: serde_json::Value = serde_json::from_str(l).expect("one object per line");
        for k in [
            "kind",
            "transmitter",
            "receiver",
            "bssid",
            "broadcast",
            "reason_codes",
            "frames",
            "start",
            "end",
            "peak_rate_per_s",
            "protected",
            "confidence",
            "evidence",
        ] {
            assert!(v.get(k).is_some(), "missing {k} in {l}");
        }
        assert!(v["start"].as_f64().expect("start") > 1.5e9);
        assert!(v["reason_codes"]["7"].as_u64().is_some());
    }
}
