//! Attack evidence without monitor mode: wpa_supplicant's control socket.
//!
//! A camera usually cannot capture in monitor mode, but its Wi-Fi stack says what happened
//! to it. [`SupplicantClient`] speaks wpa_supplicant's control-interface protocol (a Unix
//! datagram socket per interface, e.g. `/var/run/wpa_supplicant/wlan0`): requests such as
//! `ATTACH`, `PING`, `SIGNAL_POLL`, and unsolicited events (`<3>CTRL-EVENT-...`) once
//! attached. [`LinkEventDetector`] is pure: it turns a timed stream of [`LinkEvent`]s into
//! [`LinkFinding`]s:
//!
//! * repeated disconnects with reason 6 or 7 that were not locally generated, with quick
//!   reconnects: the deauthentication attack signature;
//! * beacon loss without any deauthentication: likely radio jamming.

use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One event from wpa_supplicant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// `CTRL-EVENT-CONNECTED - Connection to BSSID completed ...`
    Connected {
        /// BSSID, when given.
        bssid: Option<String>,
    },
    /// `CTRL-EVENT-DISCONNECTED bssid=.. reason=N [locally_generated=1]`
    Disconnected {
        /// BSSID, when given.
        bssid: Option<String>,
        /// Reason code, when given.
        reason: Option<u16>,
        /// This station decided to disconnect (the frame was not received from the air).
        locally_generated: bool,
    },
    /// `CTRL-EVENT-BEACON-LOSS`
    BeaconLoss,
    /// `CTRL-EVENT-SIGNAL-CHANGE above=.. signal=-65 ...`
    SignalChange {
        /// Signal in dBm, when given.
        signal_dbm: Option<i32>,
    },
    /// Any other event (kept for logs).
    Other(String),
}

fn field<'a>(msg: &'a str, key: &str) -> Option<&'a str> {
    msg.split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

/// Parse one unsolicited control-interface message (with or without the `<N>` priority
/// prefix and an `IFNAME=...` prefix). Returns `None` for an empty message.
pub fn parse_event(msg: &str) -> Option<LinkEvent> {
    let mut m = msg.trim();
    if let Some(rest) = m.strip_prefix("IFNAME=") {
        m = rest
            .split_once(' ')
            .map(|(_, r)| r)
            .unwrap_or("")
            .trim_start();
    }
    if m.starts_with('<') {
        if let Some((_, rest)) = m.split_once('>') {
            m = rest;
        }
    }
    if m.is_empty() {
        return None;
    }
    let ev = if m.starts_with("CTRL-EVENT-DISCONNECTED") {
        LinkEvent::Disconnected {
            bssid: field(m, "bssid").map(str::to_string),
            reason: field(m, "reason").and_then(|r| r.parse().ok()),
            locally_generated: field(m, "locally_generated") == Some("1"),
        }
    } else if m.starts_with("CTRL-EVENT-CONNECTED") {
        let bssid = m
            .split_once("Connection to ")
            .and_then(|(_, r)| r.split_whitespace().next())
            .map(str::to_string);
        LinkEvent::Connected { bssid }
    } else if m.starts_with("CTRL-EVENT-BEACON-LOSS") {
        LinkEvent::BeaconLoss
    } else if m.starts_with("CTRL-EVENT-SIGNAL-CHANGE") {
        LinkEvent::SignalChange {
            signal_dbm: field(m, "signal").and_then(|s| s.parse().ok()),
        }
    } else {
        LinkEvent::Other(m.to_string())
    };
    Some(ev)
}

/// The answer to `SIGNAL_POLL`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SignalPoll {
    /// RSSI in dBm.
    pub rssi_dbm: Option<i32>,
    /// Link speed in Mbit/s.
    pub link_speed_mbps: Option<i32>,
    /// Noise in dBm (9999 means unknown in wpa_supplicant).
    pub noise_dbm: Option<i32>,
    /// Frequency in MHz.
    pub frequency_mhz: Option<i32>,
}

/// Parse a `SIGNAL_POLL` reply (`RSSI=-52\nLINKSPEED=144\nNOISE=9999\nFREQUENCY=5180`).
pub fn parse_signal_poll(reply: &str) -> SignalPoll {
    let mut p = SignalPoll::default();
    for line in reply.lines() {
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().parse::<i32>().ok();
            match k.trim() {
                "RSSI" => p.rssi_dbm = v,
                "LINKSPEED" => p.link_speed_mbps = v,
                "NOISE" => p.noise_dbm = v.filter(|&n| n != 9999),
                "FREQUENCY" => p.frequency_mhz = v,
                _ => {}
            }
        }
    }
    p
}

static LOCAL_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A client of one wpa_supplicant control socket.
#[derive(Debug)]
pub struct SupplicantClient {
    sock: UnixDatagram,
    local: PathBuf,
    pending: VecDeque<String>,
    attached: bool,
}

impl SupplicantClient {
    /// Connect to the control socket at `ctrl_path` (e.g. `/var/run/wpa_supplicant/wlan0`),
    /// binding our end in the system temp dir as wpa_ctrl does.
    pub fn connect(ctrl_path: &Path) -> io::Result<SupplicantClient> {
        Self::connect_from(ctrl_path, &std::env::temp_dir())
    }

    /// Like [`SupplicantClient::connect`], binding our end in `local_dir`.
    pub fn connect_from(ctrl_path: &Path, local_dir: &Path) -> io::Result<SupplicantClient> {
        let n = LOCAL_COUNTER.fetch_add(1, Ordering::Relaxed);
        let local = local_dir.join(format!("threshold_wpa_ctrl_{}-{}", std::process::id(), n));
        let _ = std::fs::remove_file(&local);
        let sock = UnixDatagram::bind(&local)?;
        let client = SupplicantClient {
            sock,
            local,
            pending: VecDeque::new(),
            attached: false,
        };
        client.sock.connect(ctrl_path)?;
        Ok(client)
    }

    fn recv_msg(&self, timeout: Duration) -> io::Result<Option<String>> {
        self.sock
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
        let mut buf = vec![0u8; 4096];
        match self.sock.recv(&mut buf) {
            Ok(n) => Ok(Some(
                String::from_utf8_lossy(buf.get(..n).unwrap_or(&[])).into_owned(),
            )),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Send a request and wait for its reply. Unsolicited events (messages starting with
    /// `<`) that arrive meanwhile are queued for [`SupplicantClient::next_event`].
    pub fn request(&mut self, cmd: &str, timeout: Duration) -> io::Result<String> {
        self.sock.send(cmd.as_bytes())?;
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no reply to {cmd}"),
                ));
            }
            match self.recv_msg(left)? {
                Some(m) if m.starts_with('<') || m.starts_with("IFNAME=") => {
                    // keep at most 1024 queued events; older ones are dropped
                    if self.pending.len() >= 1024 {
                        self.pending.pop_front();
                    }
                    self.pending.push_back(m);
                }
                Some(m) => return Ok(m),
                None => {}
            }
        }
    }

    /// `ATTACH`: subscribe to unsolicited events.
    pub fn attach(&mut self) -> io::Result<()> {
        let r = self.request("ATTACH", Duration::from_secs(2))?;
        if r.trim() != "OK" {
            return Err(io::Error::other(format!("ATTACH refused: {}", r.trim())));
        }
        self.attached = true;
        Ok(())
    }

    /// `DETACH`.
    pub fn detach(&mut self) -> io::Result<()> {
        if self.attached {
            self.attached = false;
            let r = self.request("DETACH", Duration::from_secs(2))?;
            if r.trim() != "OK" {
                return Err(io::Error::other(format!("DETACH refused: {}", r.trim())));
            }
        }
        Ok(())
    }

    /// `PING` -> `PONG`.
    pub fn ping(&mut self) -> io::Result<bool> {
        Ok(self.request("PING", Duration::from_secs(2))?.trim() == "PONG")
    }

    /// `SIGNAL_POLL`.
    pub fn signal_poll(&mut self) -> io::Result<SignalPoll> {
        let r = self.request("SIGNAL_POLL", Duration::from_secs(2))?;
        if r.trim() == "FAIL" {
            return Err(io::Error::other("SIGNAL_POLL failed (not associated?)"));
        }
        Ok(parse_signal_poll(&r))
    }

    /// The next unsolicited event, waiting up to `timeout`.
    pub fn next_event(&mut self, timeout: Duration) -> io::Result<Option<LinkEvent>> {
        if let Some(m) = self.pending.pop_front() {
            return Ok(parse_event(&m));
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv_msg(left)? {
                Some(m) if m.starts_with('<') || m.starts_with("IFNAME=") => {
                    return Ok(parse_event(&m))
                }
                Some(_) => {} // a stray reply
                None => return Ok(None),
            }
            if left.is_zero() {
                return Ok(None);
            }
        }
    }
}

impl Drop for SupplicantClient {
    fn drop(&mut self) {
        let _ = self.detach();
        let _ = std::fs::remove_file(&self.local);
    }
}

/// Wall-clock Unix seconds.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Attach to `ctrl_path` and feed its events to a [`LinkEventDetector`] until `run_for`
/// elapses (forever when `None`), calling `on_finding` for each finding.
pub fn monitor(
    ctrl_path: &Path,
    cfg: LinkDetectorConfig,
    run_for: Option<Duration>,
    mut on_finding: impl FnMut(&LinkFinding),
) -> io::Result<()> {
    let mut client = SupplicantClient::connect(ctrl_path)?;
    client.attach()?;
    let mut det = LinkEventDetector::new(cfg);
    let started = Instant::now();
    loop {
        if run_for.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        let ev = client.next_event(Duration::from_millis(500))?;
        let now = unix_now();
        let found = match ev {
            Some(ev) => det.observe(now, &ev),
            None => det.tick(now),
        };
        for f in &found {
            on_finding(f);
        }
    }
    for f in &det.finish(unix_now()) {
        on_finding(f);
    }
    Ok(())
}

// ------------------------------------------------------------------ detector

/// Thresholds of [`LinkEventDetector`].
#[derive(Debug, Clone, PartialEq)]
pub struct LinkDetectorConfig {
    /// Disconnects (not locally generated, reason in `reasons`) within `window_s` that make
    /// a deauthentication attack.
    pub min_disconnects: u64,
    /// Sliding window, seconds; also the quiet time that ends an episode.
    pub window_s: f64,
    /// Reason codes of the signature (6: class 2 frame from nonauthenticated station,
    /// 7: class 3 frame from nonassociated station: what aireplay-ng sends).
    pub reasons: Vec<u16>,
    /// A reconnect within this many seconds of a disconnect is "quick".
    pub quick_reconnect_s: f64,
    /// A beacon loss with no received deauthentication within this many seconds either
    /// side points to jamming.
    pub jam_quiet_s: f64,
}

impl Default for LinkDetectorConfig {
    fn default() -> Self {
        LinkDetectorConfig {
            min_disconnects: 3,
            window_s: 60.0,
            reasons: vec![6, 7],
            quick_reconnect_s: 10.0,
            jam_quiet_s: 5.0,
        }
    }
}

/// What the link events point to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkFindingKind {
    /// Repeated received deauthentications with quick reconnects.
    DeauthAttack,
    /// Beacon loss without deauthentication.
    JammingSuspected,
}

/// A conclusion from link events.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinkFinding {
    /// Kind.
    pub kind: LinkFindingKind,
    /// The BSSID we were connected to, when known.
    pub bssid: Option<String>,
    /// First event, Unix seconds.
    pub start: f64,
    /// Last event, Unix seconds.
    pub end: f64,
    /// Qualifying disconnects.
    pub disconnects: u64,
    /// Reconnects within `quick_reconnect_s`.
    pub quick_reconnects: u64,
    /// Beacon losses.
    pub beacon_losses: u64,
    /// Reason code -> disconnects.
    pub reason_codes: BTreeMap<u16, u64>,
    /// 0..1.
    pub confidence: f64,
    /// Why.
    pub evidence: Vec<String>,
    /// Early alert: the episode is still going on.
    pub ongoing: bool,
}

#[derive(Debug, Clone, Default)]
struct DeauthEpisode {
    times: VecDeque<f64>,
    start: f64,
    end: f64,
    disconnects: u64,
    quick_reconnects: u64,
    reasons: BTreeMap<u16, u64>,
    bssid: Option<String>,
    alerted: bool,
    awaiting_reconnect: Option<f64>,
}

#[derive(Debug, Clone, Default)]
struct JamEpisode {
    start: f64,
    end: f64,
    losses: u64,
    local_disconnects: u64,
    local_reasons: BTreeMap<u16, u64>,
    signal_before: Option<i32>,
    bssid: Option<String>,
}

/// Pure detector over a timed stream of link events. Times must not go backwards by
/// much; they are Unix seconds (any monotonic seconds work).
#[derive(Debug, Clone, Default)]
pub struct LinkEventDetector {
    cfg: LinkDetectorConfig,
    deauth: Option<DeauthEpisode>,
    jam: Option<JamEpisode>,
    last_received_deauth: Option<f64>,
    last_signal: Option<i32>,
    bssid: Option<String>,
}

impl LinkEventDetector {
    /// New detector.
    pub fn new(cfg: LinkDetectorConfig) -> LinkEventDetector {
        LinkEventDetector {
            cfg,
            ..LinkEventDetector::default()
        }
    }

    /// Feed one event at time `t`; returns findings concluded (or first alerted) now.
    pub fn observe(&mut self, t: f64, ev: &LinkEvent) -> Vec<LinkFinding> {
        let mut out = self.tick(t);
        match ev {
            LinkEvent::Connected { bssid } => {
                if bssid.is_some() {
                    self.bssid = bssid.clone();
                }
                if let Some(ep) = self.deauth.as_mut() {
                    if let Some(d) = ep.awaiting_reconnect.take() {
                        if t - d <= self.cfg.quick_reconnect_s {
                            ep.quick_reconnects += 1;
                        }
                    }
                }
            }
            LinkEvent::Disconnected {
                bssid,
                reason,
                locally_generated,
            } => {
                let bssid = bssid.clone().or_else(|| self.bssid.clone());
                if !locally_generated {
                    self.last_received_deauth = Some(t);
                    // a received deauth explains any beacon loss around it
                    if let Some(j) = self.jam.as_ref() {
                        if t - j.end <= self.cfg.jam_quiet_s {
                            self.jam = None;
                        }
                    }
                }
                let qualifies =
                    !locally_generated && reason.is_some_and(|r| self.cfg.reasons.contains(&r));
                if qualifies {
                    let ep = self.deauth.get_or_insert_with(|| DeauthEpisode {
                        start: t,
                        ..DeauthEpisode::default()
                    });
                    ep.end = t;
                    ep.disconnects += 1;
                    if let Some(r) = reason {
                        *ep.reasons.entry(*r).or_insert(0) += 1;
                    }
                    if bssid.is_some() {
                        ep.bssid = bssid.clone();
                    }
                    ep.awaiting_reconnect = Some(t);
                    ep.times.push_back(t);
                    while ep.times.front().is_some_and(|&f| t - f > self.cfg.window_s) {
                        ep.times.pop_front();
                    }
                    if !ep.alerted && ep.times.len() as u64 >= self.cfg.min_disconnects {
                        ep.alerted = true;
                        let f = deauth_finding(ep, &self.cfg, true);
                        out.push(f);
                    }
                } else if *locally_generated {
                    if let Some(j) = self.jam.as_mut() {
                        j.local_disconnects += 1;
                        j.end = t;
                        if let Some(r) = reason {
                            *j.local_reasons.entry(*r).or_insert(0) += 1;
                        }
                    }
                }
            }
            LinkEvent::BeaconLoss => {
                let recent_deauth = self
                    .last_received_deauth
                    .is_some_and(|d| t - d <= self.cfg.jam_quiet_s);
                if !recent_deauth {
                    let signal = self.last_signal;
                    let bssid = self.bssid.clone();
                    let j = self.jam.get_or_insert_with(|| JamEpisode {
                        start: t,
                        signal_before: signal,
                        bssid,
                        ..JamEpisode::default()
                    });
                    j.end = t;
                    j.losses += 1;
                }
            }
            LinkEvent::SignalChange { signal_dbm } => {
                if signal_dbm.is_some() {
                    self.last_signal = *signal_dbm;
                }
            }
            LinkEvent::Other(_) => {}
        }
        out
    }

    /// Advance time without an event: concludes episodes that have gone quiet.
    pub fn tick(&mut self, t: f64) -> Vec<LinkFinding> {
        let mut out = Vec::new();
        if self
            .deauth
            .as_ref()
            .is_some_and(|ep| t - ep.end > self.cfg.window_s)
        {
            if let Some(ep) = self.deauth.take() {
                if ep.alerted {
                    out.push(deauth_finding(&ep, &self.cfg, false));
                }
            }
        }
        if self
            .jam
            .as_ref()
            .is_some_and(|j| t - j.end > self.cfg.jam_quiet_s)
        {
            if let Some(j) = self.jam.take() {
                out.push(jam_finding(&j));
            }
        }
        out
    }

    /// End of the stream at time `t`: conclude everything still open.
    pub fn finish(&mut self, t: f64) -> Vec<LinkFinding> {
        let mut out = Vec::new();
        if let Some(ep) = self.deauth.take() {
            if ep.alerted {
                out.push(deauth_finding(&ep, &self.cfg, false));
            }
        }
        if let Some(j) = self.jam.take() {
            // a received deauth would already have cleared it
            let _ = t;
            out.push(jam_finding(&j));
        }
        out
    }
}

fn deauth_finding(ep: &DeauthEpisode, cfg: &LinkDetectorConfig, ongoing: bool) -> LinkFinding {
    let mut evidence = vec![format!(
        "{} disconnects with reason {:?} received from the air (not locally generated) within {:.0} s",
        ep.disconnects,
        ep.reasons.keys().collect::<Vec<_>>(),
        (ep.end - ep.start).max(0.0)
    )];
    let mut conf: f64 = 0.6;
    if ep.quick_reconnects > 0 {
        conf += 0.2;
        evidence.push(format!(
            "reconnected within {:.0} s {} times: the AP was there all along",
            cfg.quick_reconnect_s, ep.quick_reconnects
        ));
    }
    if ep.reasons.contains_key(&7) {
        conf += 0.1;
        evidence.push("reason 7 is aireplay-ng's default".into());
    }
    LinkFinding {
        kind: LinkFindingKind::DeauthAttack,
        bssid: ep.bssid.clone(),
        start: ep.start,
        end: ep.end,
        disconnects: ep.disconnects,
        quick_reconnects: ep.quick_reconnects,
        beacon_losses: 0,
        reason_codes: ep.reasons.clone(),
        confidence: (conf.min(0.95) * 100.0).round() / 100.0,
        evidence,
        ongoing,
    }
}

fn jam_finding(j: &JamEpisode) -> LinkFinding {
    let mut evidence = vec![format!(
        "{} beacon losses with no deauthentication or disassociation received",
        j.losses
    )];
    let mut conf: f64 = 0.5;
    if j.local_disconnects > 0 {
        conf += 0.1;
        evidence.push(format!(
            "{} disconnects were locally generated (reasons {:?}): the station gave up on a silent AP",
            j.local_disconnects,
            j.local_reasons.keys().collect::<Vec<_>>()
        ));
    }
    if let Some(s) = j.signal_before {
        if s > -70 {
            conf += 0.2;
            evidence.push(format!(
                "signal was {s} dBm just before: a strong link does not fade out by itself"
            ));
        } else {
            evidence.push(format!(
                "signal was {s} dBm just before: a weak link may simply have dropped"
            ));
        }
    }
    LinkFinding {
        kind: LinkFindingKind::JammingSuspected,
        bssid: j.bssid.clone(),
        start: j.start,
        end: j.end,
        disconnects: j.local_disconnects,
        quick_reconnects: 0,
        beacon_losses: j.losses,
        reason_codes: j.local_reasons.clone(),
        confidence: (conf.min(0.9) * 100.0).round() / 100.0,
        evidence,
        ongoing: false,
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_events() {
        assert_eq!(
            parse_event("<3>CTRL-EVENT-DISCONNECTED bssid=02:00:00:00:01:00 reason=7"),
            Some(LinkEvent::Disconnected {
                bssid: Some("02:00:00:00:01:00".into()),
                reason: Some(7),
                locally_generated: false
            })
        );
        assert_eq!(
            parse_event("IFNAME=wlan0 <3>CTRL-EVENT-DISCONNECTED bssid=02:00:00:00:01:00 reason=3 locally_generated=1"),
            Some(LinkEvent::Disconnected {
                bssid: Some("02:00:00:00:01:00".into()),
                reason: Some(3),
                locally_generated: true
            })
        );
        assert_eq!(
            parse_event("<3>CTRL-EVENT-CONNECTED - Connection to 02:00:00:00:01:00 completed [id=0 id_str=]"),
            Some(LinkEvent::Connected {
                bssid: Some("02:00:00:00:01:00".into())
            })
        );
        assert_eq!(
            parse_event("<3>CTRL-EVENT-BEACON-LOSS"),
            Some(LinkEvent::BeaconLoss)
        );
        assert_eq!(
            parse_event("<3>CTRL-EVENT-SIGNAL-CHANGE above=0 signal=-71 noise=-95 txrate=6500"),
            Some(LinkEvent::SignalChange {
                signal_dbm: Some(-71)
            })
        );
        assert_eq!(parse_event(""), None);
        assert_eq!(parse_event("<3>"), None);
        assert!(matches!(parse_event("<<<>>>"), Some(LinkEvent::Other(_))));
    }

    #[test]
    fn signal_poll() {
        let p = parse_signal_poll("RSSI=-52\nLINKSPEED=144\nNOISE=9999\nFREQUENCY=5180\n");
        assert_eq!(p.rssi_dbm, Some(-52));
        assert_eq!(p.link_speed_mbps, Some(144));
        assert_eq!(p.noise_dbm, None);
        assert_eq!(p.frequency_mhz, Some(5180));
    }

    fn disc(reason: u16, local: bool) -> LinkEvent {
        LinkEvent::Disconnected {
            bssid: Some("02:00:00:00:01:00".into()),
            reason: Some(reason),
            locally_generated: local,
        }
    }

    fn conn() -> LinkEvent {
        LinkEvent::Connected {
            bssid: Some("02:00:00:00:01:00".into()),
        }
    }

    #[test]
    fn deauth_signature() {
        let mut d = LinkEventDetector::new(LinkDetectorConfig::default());
        let mut found = Vec::new();
        for i in 0..4 {
            let t = 100.0 + f64::from(i) * 3.0;
            found.extend(d.observe(t, &disc(7, false)));
            found.extend(d.observe(t + 1.0, &conn()));
        }
        found.extend(d.finish(200.0));
        let alerts: Vec<_> = found.iter().filter(|f| f.ongoing).collect();
        assert_eq!(alerts.len(), 1);
        let last = found.last().expect("final finding");
        assert_eq!(last.kind, LinkFindingKind::DeauthAttack);
        assert_eq!(last.disconnects, 4);
        assert_eq!(last.quick_reconnects, 4);
        assert!(!last.ongoing);
    }

    #[test]
    fn normal_life_is_quiet() {
        let mut d = LinkEventDetector::new(LinkDetectorConfig::default());
        let mut found = Vec::new();
        // locally generated leaves, one AP-side reason 4, one reason 7 (confused AP), roaming
        found.extend(d.observe(10.0, &disc(3, true)));
        found.extend(d.observe(12.0, &conn()));
        found.extend(d.observe(100.0, &disc(4, false)));
        found.extend(d.observe(101.0, &conn()));
        found.extend(d.observe(300.0, &disc(7, false)));
        found.extend(d.observe(301.0, &conn()));
        found.extend(d.finish(400.0));
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn beacon_loss_without_deauth_is_jamming() {
        let mut d = LinkEventDetector::new(LinkDetectorConfig::default());
        let mut found = Vec::new();
        found.extend(d.observe(1.0, &conn()));
        found.extend(d.observe(
            2.0,
            &LinkEvent::SignalChange {
                signal_dbm: Some(-48),
            },
        ));
        found.extend(d.observe(10.0, &LinkEvent::BeaconLoss));
        found.extend(d.observe(10.5, &LinkEvent::BeaconLoss));
        found.extend(d.observe(11.0, &disc(4, true)));
        found.extend(d.tick(30.0));
        assert_eq!(found.len(), 1, "{found:?}");
        let f = found.first().expect("finding");
        assert_eq!(f.kind, LinkFindingKind::JammingSuspected);
        assert_eq!(f.beacon_losses, 2);
        assert!(f.confidence >= 0.75);
    }

    #[test]
    fn beacon_loss_with_deauth_is_not_jamming() {
        let mut d = LinkEventDetector::new(LinkDetectorConfig::default());
        let mut found = Vec::new();
        found.extend(d.observe(1.0, &conn()));
        found.extend(d.observe(10.0, &LinkEvent::BeaconLoss));
        found.extend(d.observe(11.0, &disc(2, false)));
        found.extend(d.tick(30.0));
        found.extend(d.finish(40.0));
        assert!(found.is_empty(), "{found:?}");
    }
}
