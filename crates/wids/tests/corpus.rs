#![allow(clippy::indexing_slicing)]
//! Precision and recall over the generated corpus plus the three real captures.

mod common;

use common::{captures_dir, temp_dir, BENIGN, DEMENTED, HEIGVD};
use threshold_capture_gen::{write_corpus, ExpectedAttack};
use threshold_wids::{scan_files, AttackKind, AttackReport, DetectorConfig};

fn matches(r: &AttackReport, e: &ExpectedAttack) -> bool {
    r.bssid == e.bssid && r.target == e.target && r.broadcast == e.broadcast && r.kind == e.kind
}

#[test]
fn corpus_precision_and_recall() {
    let dir = temp_dir("corpus");
    let mut cases = write_corpus(&dir).expect("write corpus");
    // the enumeration agrees with what was written
    for (case, (_, exp)) in threshold_capture_gen::corpus().iter().zip(&cases) {
        assert_eq!(&threshold_capture_gen::expected(case), exp);
    }
    if let Some(real) = captures_dir() {
        let exp = |bssid: &str, target: &str, frames| ExpectedAttack {
            kind: AttackKind::Deauth,
            bssid: bssid.into(),
            target: target.into(),
            broadcast: false,
            frames,
        };
        cases.push((
            real.join(HEIGVD),
            vec![exp("dc:a5:f4:60:c2:b0", "c0:ee:fb:e2:4f:1f", 128)],
        ));
        cases.push((
            real.join(DEMENTED),
            vec![exp("00:14:5c:9a:86:f4", "30:3a:64:e1:76:11", 28)],
        ));
        cases.push((real.join(BENIGN), vec![]));
    }
    let cfg = DetectorConfig::default();
    let (mut tp, mut fp, mut fneg) = (0u32, 0u32, 0u32);
    let mut frame_mismatch = Vec::new();
    for (path, expected) in &cases {
        let reports = scan_files(std::slice::from_ref(path), &cfg).expect("scan");
        let mut used = vec![false; reports.len()];
        for e in expected {
            match reports
                .iter()
                .enumerate()
                .find(|(i, r)| !used[*i] && matches(r, e))
            {
                Some((i, r)) => {
                    used[i] = true;
                    tp += 1;
                    if r.frames != e.frames {
                        frame_mismatch.push(format!(
                            "{}: {} frames, expected {}",
                            path.display(),
                            r.frames,
                            e.frames
                        ));
                    }
                }
                None => {
                    fneg += 1;
                    eprintln!("MISSED in {}: {e:?}\n  got {reports:#?}", path.display());
                }
            }
        }
        for (i, r) in reports.iter().enumerate() {
            if !used[i] {
                fp += 1;
                eprintln!("FALSE POSITIVE in {}: {r:#?}", path.display());
            }
        }
    }
    let precision = if tp + fp == 0 {
        1.0
    } else {
        f64::from(tp) / f64::from(tp + fp)
    };
    let recall = if tp + fneg == 0 {
        1.0
    } else {
        f64::from(tp) / f64::from(tp + fneg)
    };
    println!(
        "wids corpus: {} captures, {} expected attacks, tp={tp} fp={fp} fn={fneg}, precision={precision:.3} recall={recall:.3}",
        cases.len(),
        tp + fneg
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert!(precision >= 1.0, "precision {precision}");
    assert!(recall >= 1.0, "recall {recall}");
    assert!(frame_mismatch.is_empty(), "{frame_mismatch:#?}");
}

/// The evidence behind the confidence is there for the cases built to show it.
#[test]
fn corpus_evidence() {
    use threshold_capture_gen::{write_case, CaseKind, Format, Link};
    let dir = temp_dir("evidence");
    let cases: [(CaseKind, &[&str]); 4] = [
        (
            CaseKind::AireplayDirected,
            &[
                "aireplay-ng signature",
                "one sequence counter",
                "do not follow the AP's beacon counter",
                "signal of frames claiming the AP",
                "rejoin 3 times",
            ],
        ),
        (
            CaseKind::MfpNetworkAttack,
            &["requires management frame protection"],
        ),
        (
            CaseKind::RandomSourceBroadcast,
            &["spoofed random source addresses"],
        ),
        (
            CaseKind::DuplicatedAireplay,
            &["384 duplicate copies", "rejoin 3 times"],
        ),
    ];
    for (i, (kind, needles)) in cases.iter().enumerate() {
        let p = dir.join(format!("e{i}.pcapng"));
        write_case(*kind, &p, Format::PcapNg, Link::Radiotap, 100 + i as u64).expect("write");
        let r = scan_files(&[p], &DetectorConfig::default()).expect("scan");
        assert_eq!(r.len(), 1, "{kind:?}: {r:#?}");
        let all = r[0].evidence.join("\n");
        for n in *needles {
            assert!(all.contains(n), "{kind:?}: no {n:?} in\n{all}");
        }
        assert!(r[0].confidence >= 0.7, "{kind:?}: {}", r[0].confidence);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
