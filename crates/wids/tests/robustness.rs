#![allow(clippy::indexing_slicing)]
//! No input makes the parsers panic; a truncated last record is a clean end of file.

mod common;

use common::{captures_dir, temp_dir, BENIGN, DEMENTED, HEIGVD};
use threshold_capture_gen::{write_case, CaseKind, Format, Link, Rng};
use threshold_wids::capture::read_capture_with_buffer;
use threshold_wids::frame::parse_frame;
use threshold_wids::link::{decapsulate, parse_radiotap};
use threshold_wids::{Detector, DetectorConfig};

/// Scan bytes held in memory; Ok((records, attacks)) or the error text.
fn scan_bytes(bytes: &[u8]) -> Result<(u64, usize), String> {
    let mut det = Detector::new(DetectorConfig::default());
    let stats = read_capture_with_buffer(bytes, "mem", 16 * 1024, |rec| det.push_record(rec))
        .map_err(|e| e.to_string())?;
    Ok((stats.records, det.finish().len()))
}

fn check_truncations(bytes: &[u8], step: usize) {
    let full = scan_bytes(bytes).expect("full file scans").0;
    let mut last = 0u64;
    let mut header_ok_at = None;
    for cut in (0..=bytes.len()).step_by(step.max(1)) {
        match scan_bytes(bytes.get(..cut).expect("cut")) {
            Ok((n, _)) => {
                header_ok_at.get_or_insert(cut);
                assert!(n >= last, "records went down at cut {cut}");
                assert!(n <= full);
                last = n;
            }
            Err(e) => {
                // only a cut inside the file header may fail
                assert!(
                    header_ok_at.is_none(),
                    "cut {cut} failed after the header: {e}"
                );
                assert!(cut < 1024, "cut {cut}: {e}");
            }
        }
    }
}

/// Record boundaries of a little-endian pcap or pcapng file: (header length, records).
fn records(bytes: &[u8]) -> (usize, Vec<(usize, usize)>) {
    let u32at =
        |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().expect("4 bytes")) as usize;
    let mut out = Vec::new();
    if bytes[..4] == [0x0a, 0x0d, 0x0d, 0x0a] {
        // pcapng: the header is every block before the first packet block
        let mut off = 0;
        let mut header = None;
        while off + 8 <= bytes.len() {
            let (ty, len) = (u32at(off), u32at(off + 4));
            if (ty == 6 || ty == 3) && header.is_none() {
                header = Some(off);
            }
            if header.is_some() && (ty == 6 || ty == 3) {
                out.push((off, off + len));
            }
            off += len;
        }
        (header.unwrap_or(bytes.len()), out)
    } else {
        let mut off = 24;
        while off + 16 <= bytes.len() {
            let len = 16 + u32at(off + 8);
            out.push((off, off + len));
            off += len;
        }
        (24, out)
    }
}

/// Every truncation of the real captures. Scanning every prefix of a file is quadratic
/// (too slow for a debug-build test), so each record is cut at every offset behind the
/// file's header: that is the same parser state as the prefix ending there (the records
/// before a cut are whole). Whole-file prefixes are also checked at a stride.
#[test]
fn every_truncation_of_the_real_captures() {
    let Some(dir) = captures_dir() else { return };
    for name in [HEIGVD, DEMENTED, BENIGN] {
        let bytes = std::fs::read(dir.join(name)).expect("read");
        let (hlen, recs) = records(&bytes);
        assert!(!recs.is_empty());
        for cut in 0..=hlen {
            // inside the header: an error or an empty capture, never a panic
            let _ = scan_bytes(&bytes[..cut]);
        }
        for &(s, e) in &recs {
            let mut file = bytes[..hlen].to_vec();
            file.extend_from_slice(&bytes[s..e]);
            for cut in hlen..file.len() {
                let (n, _) = scan_bytes(&file[..cut]).expect("truncated record is a clean end");
                assert_eq!(n, 0, "{name}: cut {cut} of record at {s}");
            }
            assert_eq!(scan_bytes(&file).expect("whole record").0, 1);
        }
        check_truncations(&bytes, 97);
    }
}

#[test]
fn every_truncation_of_generated_files() {
    let dir = temp_dir("trunc");
    for (i, (fmt, link)) in [
        (Format::Pcap, Link::Radiotap),
        (Format::PcapNg, Link::Ppi),
        (Format::PcapNg, Link::Dot11),
    ]
    .into_iter()
    .enumerate()
    {
        let p = dir.join(format!("t{i}"));
        write_case(CaseKind::ApRestart, &p, fmt, link, 40 + i as u64).expect("write");
        let bytes = std::fs::read(&p).expect("read");
        check_truncations(&bytes, 7);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn random_and_mutated_inputs_do_not_panic() {
    let mut rng = Rng::new(77);
    let mut seeds: Vec<Vec<u8>> = Vec::new();
    if let Some(dir) = captures_dir() {
        for name in [HEIGVD, DEMENTED] {
            let b = std::fs::read(dir.join(name)).expect("read");
            seeds.push(b.get(..b.len().min(4000)).expect("prefix").to_vec());
        }
    }
    let dir = temp_dir("fuzz");
    let p = dir.join("seed.pcapng");
    write_case(
        CaseKind::ProtectedMfp,
        &p,
        Format::PcapNg,
        Link::Radiotap,
        3,
    )
    .expect("write");
    let b = std::fs::read(&p).expect("read");
    seeds.push(b.get(..b.len().min(4000)).expect("prefix").to_vec());
    let _ = std::fs::remove_dir_all(&dir);

    for i in 0..3000u32 {
        // mutate a seed, or pure noise behind a valid header
        let mut buf = match i % 3 {
            0 => {
                let mut v = vec![
                    0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0,
                    127, 0, 0, 0,
                ];
                for _ in 0..rng.below(600) {
                    v.push(rng.below(256) as u8);
                }
                v
            }
            _ => seeds[(i as usize) % seeds.len()].clone(),
        };
        let flips = 1 + rng.below(16);
        for _ in 0..flips {
            if buf.is_empty() {
                break;
            }
            let at = rng.below(buf.len() as u64) as usize;
            buf[at] = rng.below(256) as u8;
        }
        let cut = rng.below(buf.len() as u64 + 1) as usize;
        let _ = scan_bytes(&buf[..cut]);
    }
}

#[test]
fn link_and_frame_parsers_take_any_bytes() {
    let mut rng = Rng::new(5);
    for _ in 0..20_000 {
        let len = rng.below(96) as usize;
        let mut v: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
        // bias toward plausible headers
        if let Some(b) = v.get_mut(0) {
            if rng.below(2) == 0 {
                *b = 0;
            }
        }
        let _ = parse_radiotap(&v);
        for lt in [105, 127, 192, 1] {
            let _ = decapsulate(lt, &v);
        }
        if let Some(b) = v.get_mut(0) {
            *b = [0x80u8, 0xc0, 0xa0, 0xb0, 0x00][rng.below(5) as usize];
        }
        let _ = parse_frame(&v);
        let mut det = Detector::new(DetectorConfig::default());
        for ts in [1.0, -9.2e18, f64::NAN, 1.8e19, f64::INFINITY, 2.0] {
            det.push_frame(ts, &v, None);
        }
        let _ = det.finish();
    }
}

/// Extreme timestamps (a pcapng `if_tsoffset` can be anything) do not overflow anything.
#[test]
fn extreme_timestamps() {
    let mut det = Detector::new(DetectorConfig::default());
    let ap = [2u8, 0, 0, 0, 0, 1];
    let sta = [2u8, 0, 0, 0, 0, 2];
    for (i, ts) in [
        -9.2e18,
        9.2e18,
        f64::NAN,
        -1.0,
        1.8e19,
        f64::NEG_INFINITY,
        0.0,
    ]
    .iter()
    .cycle()
    .take(200)
    .enumerate()
    {
        let f = threshold_capture_gen::disconnect(12, sta, ap, ap, i as u16, 7, 314, false);
        det.push_frame(*ts, &f, Some(-30));
    }
    let _ = det.finish();
}
