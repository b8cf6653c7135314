//! Wi-Fi attack evidence on the device (law 7: "name the attack").
//!
//! A camera (or a standalone Wi-Fi sensor) with a configured Wi-Fi sensor runs the
//! detectors of `threshold-wids` on a thread of their own:
//!
//! * `supplicant_ctrl`: the device's own wpa_supplicant control socket; its link events
//!   (`CTRL-EVENT-DISCONNECTED ... reason=7`, beacon loss) feed a
//!   [`LinkEventDetector`] (no monitor mode needed);
//! * `capture_iface` (cargo feature `wifi-live`): a monitor-mode interface scanned by the
//!   802.11 flood detector through libpcap.
//!
//! Every finding becomes a signed `event` record of type `wifi_attack` in the device's
//! outbox (docs/protocol.md §9.5), so, like any record, it survives the outage the attack
//! causes and is uploaded on reconnect. A detector reports an attack twice: once while
//! it is going on (`"ongoing": true`) and once when it has ended; the hub merges the two.

use crate::agent::{CommonConfig, Device};
use crate::link::shutdown_signalled;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use threshold_proto::body::{DeviceKind, Event, Heartbeat};
use threshold_proto::Kind;
use threshold_wids::supplicant::{unix_now, LinkEventDetector, SupplicantClient};
use tokio::sync::{mpsc, watch};

pub use threshold_wids::supplicant::{LinkDetectorConfig, LinkFinding};

/// The event type of attack evidence.
pub const EVENT_TYPE: &str = "wifi_attack";

/// Counters of a Wi-Fi sensor, readable at any time (tests, diagnostics).
#[derive(Debug, Default)]
pub struct WifiSensorStats {
    /// Link events read from wpa_supplicant.
    pub link_events: AtomicU64,
    /// Findings stored as `wifi_attack` records in the outbox.
    pub recorded: AtomicU64,
    /// Failed connections or reads of the control socket.
    pub errors: AtomicU64,
}

/// Which Wi-Fi sensors a device runs.
#[derive(Clone, Debug, Default)]
pub struct WifiSensorConfig {
    /// wpa_supplicant's control socket for the device's interface, e.g.
    /// `/var/run/wpa_supplicant/wlan0`.
    pub supplicant_ctrl: Option<PathBuf>,
    /// Where our end of the control socket is bound (default: the system temp folder).
    pub supplicant_local_dir: Option<PathBuf>,
    /// Thresholds of the link-event detector.
    pub link_detector: LinkDetectorConfig,
    /// A monitor-mode interface (e.g. `wlan1mon`) to scan for deauthentication floods.
    #[cfg(feature = "wifi-live")]
    pub capture_iface: Option<String>,
    /// Shared counters (cloning shares them).
    pub stats: Arc<WifiSensorStats>,
}

impl WifiSensorConfig {
    /// A sensor reading wpa_supplicant's control socket at `ctrl`.
    pub fn supplicant(ctrl: impl Into<PathBuf>) -> Self {
        WifiSensorConfig {
            supplicant_ctrl: Some(ctrl.into()),
            ..WifiSensorConfig::default()
        }
    }
}

/// The `wifi_attack` event for a finding from the device's own link events.
pub fn link_finding_event(f: &LinkFinding) -> Event {
    let mut detail = serde_json::to_value(f).unwrap_or_else(|_| serde_json::json!({}));
    if let Some(o) = detail.as_object_mut() {
        o.insert("source".into(), "link".into());
    }
    Event {
        event_type: EVENT_TYPE.into(),
        detail,
    }
}

/// The `wifi_attack` event for a report of the monitor-mode flood detector.
pub fn monitor_report_event(r: &threshold_wids::AttackReport) -> Event {
    let mut detail = serde_json::to_value(r).unwrap_or_else(|_| serde_json::json!({}));
    if let Some(o) = detail.as_object_mut() {
        o.insert("source".into(), "monitor".into());
        // the local capture path or interface name is of no use to the hub
        o.remove("capture");
    }
    Event {
        event_type: EVENT_TYPE.into(),
        detail,
    }
}

/// Running sensor threads. Dropping this stops the wpa_supplicant reader within about
/// half a second; a libpcap capture thread ends with the process.
pub(crate) struct WifiSensors {
    stop: Arc<AtomicBool>,
}

impl Drop for WifiSensors {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Start the configured sensors; findings arrive on the returned channel. With no
/// sensor configured, the channel is closed at once (its `recv` yields `None`).
pub(crate) fn spawn(cfg: Option<&WifiSensorConfig>) -> (WifiSensors, mpsc::Receiver<Event>) {
    let (tx, rx) = mpsc::channel(64);
    let stop = Arc::new(AtomicBool::new(false));
    if let Some(cfg) = cfg {
        if let Some(ctrl) = cfg.supplicant_ctrl.clone() {
            let (cfg, tx, stop) = (cfg.clone(), tx.clone(), stop.clone());
            let r = std::thread::Builder::new()
                .name("wifi-supplicant".into())
                .spawn(move || supplicant_thread(&ctrl, &cfg, &tx, &stop));
            if let Err(e) = r {
                tracing::error!(error = %e, "could not start the wpa_supplicant reader");
            }
        }
        #[cfg(feature = "wifi-live")]
        if let Some(iface) = cfg.capture_iface.clone() {
            let tx = tx.clone();
            let r = std::thread::Builder::new()
                .name("wifi-capture".into())
                .spawn(move || {
                    let res = threshold_wids::watch_interface(
                        &iface,
                        &threshold_wids::DetectorConfig::default(),
                        |r| {
                            let _ = tx.blocking_send(monitor_report_event(r));
                        },
                    );
                    if let Err(e) = res {
                        tracing::error!(error = %e, "Wi-Fi capture stopped");
                    }
                });
            if let Err(e) = r {
                tracing::error!(error = %e, "could not start the Wi-Fi capture");
            }
        }
    }
    (WifiSensors { stop }, rx)
}

/// Read link events until `stop`, reconnecting (1 s .. 30 s backoff) when the socket is
/// missing or wpa_supplicant restarts. The detector keeps its state across reconnects.
fn supplicant_thread(
    ctrl: &std::path::Path,
    cfg: &WifiSensorConfig,
    tx: &mpsc::Sender<Event>,
    stop: &AtomicBool,
) {
    let mut det = LinkEventDetector::new(cfg.link_detector.clone());
    let mut backoff = Duration::from_secs(1);
    let send = |found: Vec<LinkFinding>| {
        for f in &found {
            tracing::warn!(kind = ?f.kind, ongoing = f.ongoing, disconnects = f.disconnects, "Wi-Fi attack evidence");
            if tx.blocking_send(link_finding_event(f)).is_err() {
                return false;
            }
        }
        true
    };
    while !stop.load(Ordering::Relaxed) {
        let connected = match &cfg.supplicant_local_dir {
            Some(dir) => SupplicantClient::connect_from(ctrl, dir),
            None => SupplicantClient::connect(ctrl),
        }
        .and_then(|mut c| c.attach().map(|()| c));
        let mut client = match connected {
            Ok(c) => {
                tracing::info!(ctrl = %ctrl.display(), "attached to wpa_supplicant");
                backoff = Duration::from_secs(1);
                c
            }
            Err(e) => {
                let n = cfg.stats.errors.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    tracing::warn!(error = %e, ctrl = %ctrl.display(), errors_total = n, "wpa_supplicant control socket unavailable");
                }
                if !send(det.tick(unix_now())) {
                    return;
                }
                sleep_unless_stopped(backoff, stop);
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        let mut idle_polls = 0u32;
        while !stop.load(Ordering::Relaxed) {
            let found = match client.next_event(Duration::from_millis(500)) {
                Ok(Some(ev)) => {
                    idle_polls = 0;
                    cfg.stats.link_events.fetch_add(1, Ordering::Relaxed);
                    det.observe(unix_now(), &ev)
                }
                Ok(None) => {
                    // wpa_supplicant may have restarted and forgotten us: check now and then
                    idle_polls += 1;
                    if idle_polls.is_multiple_of(20) && !client.ping().unwrap_or(false) {
                        cfg.stats.errors.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    det.tick(unix_now())
                }
                Err(e) => {
                    cfg.stats.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "wpa_supplicant control socket read failed");
                    break;
                }
            };
            if !send(found) {
                return;
            }
        }
    }
}

fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) {
    let until = std::time::Instant::now() + d;
    while !stop.load(Ordering::Relaxed) {
        let left = until.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
}

/// Store a finding in the outbox (sent live when connected, else on reconnect).
pub(crate) fn record(dev: &Device, cfg: Option<&WifiSensorConfig>, ev: &Event) {
    dev.record_event(ev);
    if let Some(c) = cfg {
        c.stats.recorded.fetch_add(1, Ordering::Relaxed);
    }
}

/// A standalone Wi-Fi sensor device (kind `wifi_sensor`).
#[derive(Clone, Debug)]
pub struct WifiSensorAgentConfig {
    pub common: CommonConfig,
    pub wifi: WifiSensorConfig,
}

impl WifiSensorAgentConfig {
    pub fn new(data_dir: impl Into<PathBuf>, wifi: WifiSensorConfig) -> Self {
        WifiSensorAgentConfig {
            common: CommonConfig::new(data_dir),
            wifi,
        }
    }
}

/// Run a standalone Wi-Fi sensor until `shutdown` becomes true: heartbeats (without a
/// frame) keep it live at the hub; findings are recorded as `wifi_attack` events.
pub async fn run_wifi_sensor(
    cfg: WifiSensorAgentConfig,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut dev = Device::start(&cfg.common, DeviceKind::WifiSensor, shutdown.clone()).await?;
    let (sensors, mut rx) = spawn(Some(&cfg.wifi));
    let mut hb = tokio::time::interval(dev.heartbeat);
    hb.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sync = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = shutdown_signalled(&mut shutdown) => break,
            Some(ev) = rx.recv() => record(&dev, Some(&cfg.wifi), &ev),
            Some(ev) = dev.link_events.recv() => dev.on_link_transition(&ev),
            _ = hb.tick() => {
                let outbox = dev.with_outbox(|o| o.stats());
                let body = serde_json::to_vec(&Heartbeat { frame: None, outbox }).unwrap_or_default();
                dev.send_live(Kind::Heartbeat, body);
            }
            _ = sync.tick() => dev.with_outbox(|o| o.sync()),
        }
    }
    drop(sensors);
    dev.stop().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use threshold_wids::supplicant::LinkFindingKind;

    #[test]
    fn monitor_reports_follow_the_protocol_schema() {
        use threshold_capture_gen::{corpus, write_case};
        let dir = tempfile::tempdir().unwrap();
        let case = corpus()
            .into_iter()
            .find(|c| !threshold_capture_gen::expected(c).is_empty())
            .unwrap();
        let path = dir.path().join(case.file_name());
        write_case(case.kind, &path, case.format, case.link, case.seed).unwrap();
        let (reports, _) =
            threshold_wids::scan_file(&path, &threshold_wids::DetectorConfig::default()).unwrap();
        let r = reports.first().expect("an attack");
        let e = monitor_report_event(r);
        assert_eq!(e.event_type, "wifi_attack");
        let d = e.detail.as_object().unwrap();
        assert_eq!(d["source"], "monitor");
        assert!(!d.contains_key("capture"), "local paths stay local");
        for k in [
            "kind",
            "transmitter",
            "receiver",
            "bssid",
            "target",
            "broadcast",
            "reason_codes",
            "frames",
            "start",
            "end",
            "peak_rate_per_s",
            "protected",
            "confidence",
            "evidence",
            "ongoing",
        ] {
            assert!(d.contains_key(k), "{k} missing");
        }
        assert_eq!(d["frames"], r.frames);
    }

    #[test]
    fn link_findings_follow_the_protocol_schema() {
        let f = LinkFinding {
            kind: LinkFindingKind::DeauthAttack,
            bssid: Some("02:00:00:00:01:00".into()),
            start: 1_700_000_000.5,
            end: 1_700_000_020.25,
            disconnects: 4,
            quick_reconnects: 4,
            beacon_losses: 0,
            reason_codes: BTreeMap::from([(7, 4)]),
            confidence: 0.9,
            evidence: vec!["x".into()],
            ongoing: false,
        };
        let e = link_finding_event(&f);
        assert_eq!(e.event_type, "wifi_attack");
        let d = &e.detail;
        assert_eq!(d["source"], "link");
        assert_eq!(d["kind"], "deauth_attack");
        assert_eq!(d["reason_codes"]["7"], 4);
        assert_eq!(d["start"], 1_700_000_000.5);
        assert_eq!(d["confidence"], 0.9);
        assert_eq!(d["ongoing"], false);
    }
}
