//! Live capture from a monitor-mode interface through libpcap (cargo feature `live`).

use crate::capture::Record;
use crate::{AttackReport, Detector, DetectorConfig, WidsError};

/// Capture on `iface` (already in monitor mode, e.g. `wlan0mon`) and call `on_report` for
/// every attack: once with `ongoing: true` when a flood first crosses a threshold, and
/// once more when it has ended. Runs until the capture fails.
pub fn watch_interface(
    iface: &str,
    cfg: &DetectorConfig,
    mut on_report: impl FnMut(&AttackReport),
) -> Result<(), WidsError> {
    let err = |e: pcap::Error| WidsError::Live {
        iface: iface.to_string(),
        msg: e.to_string(),
    };
    let mut cap = pcap::Capture::from_device(iface)
        .map_err(err)?
        .promisc(true)
        .snaplen(4096)
        .immediate_mode(true)
        .timeout(500)
        .open()
        .map_err(err)?;
    let linktype = cap.get_datalink().0;
    let mut det = Detector::new(cfg.clone()).with_capture(iface.to_string());
    loop {
        match cap.next_packet() {
            Ok(p) => {
                let ts = p.header.ts.tv_sec as f64 + p.header.ts.tv_usec as f64 / 1e6;
                det.push_record(&Record {
                    ts,
                    linktype,
                    data: p.data,
                });
            }
            Err(pcap::Error::TimeoutExpired) => {
                det.sweep(crate::supplicant::unix_now());
            }
            Err(e) => return Err(err(e)),
        }
        for r in det.take_alerts() {
            on_report(&r);
        }
        for r in det.take_reports() {
            on_report(&r);
        }
    }
}
