//! Whole-file fuzzing: any bytes as a capture must not panic, and "split at every
//! offset": a file cut anywhere after its header reads as a clean prefix (no error, no
//! more records than the whole, records never decreasing with the cut).
#![no_main]

use libfuzzer_sys::fuzz_target;
use threshold_wids::capture::read_capture_with_buffer;
use threshold_wids::{Detector, DetectorConfig};

fn scan(bytes: &[u8]) -> Option<u64> {
    let mut det = Detector::new(DetectorConfig::default());
    let r = read_capture_with_buffer(bytes, "fuzz", 16 * 1024, |rec| det.push_record(rec));
    let _ = det.finish();
    r.ok().map(|s| s.records)
}

fuzz_target!(|data: &[u8]| {
    let Some(full) = scan(data) else { return };
    let mut last = 0;
    let mut ok_seen = false;
    // every offset for small inputs, a stride for big ones
    let step = (data.len() / 512).max(1);
    for cut in (0..=data.len()).step_by(step) {
        match scan(data.get(..cut).unwrap_or(data)) {
            Some(n) => {
                ok_seen = true;
                assert!(n >= last && n <= full);
                last = n;
            }
            None => {
                // a prefix of a readable file fails only inside the header, before any
                // prefix was readable; a readable prefix followed by an unreadable one
                // would mean a truncated record was reported as an error
                assert!(!ok_seen, "prefix {cut} failed after a shorter prefix read fine");
            }
        }
    }
});
