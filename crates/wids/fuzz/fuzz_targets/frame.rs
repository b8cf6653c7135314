//! Link-layer and 802.11 parsing of arbitrary records, and the detector fed with them:
//! no panics. A radiotap record and the same frame as plain 802.11 must parse alike.
#![no_main]

use libfuzzer_sys::fuzz_target;
use threshold_wids::frame::parse_frame;
use threshold_wids::link::{decapsulate, parse_radiotap};
use threshold_wids::{Detector, DetectorConfig};

fuzz_target!(|data: &[u8]| {
    let _ = parse_radiotap(data);
    let mut det = Detector::new(DetectorConfig::default());
    for lt in [105, 127, 192] {
        if let Ok(d) = decapsulate(lt, data) {
            let _ = parse_frame(d.frame);
            det.push_frame(1.0, d.frame, d.signal_dbm);
        }
    }
    // round trip: wrap the bytes in a minimal radiotap header; it must decapsulate back
    let mut rt = vec![0u8, 0, 8, 0, 0, 0, 0, 0];
    rt.extend_from_slice(data);
    let d = decapsulate(127, &rt).expect("minimal radiotap header");
    assert_eq!(d.frame, data);
    assert_eq!(parse_frame(d.frame), parse_frame(data));
    let _ = det.finish();
});
