//! The flood detector: a streaming state machine over management frames.
//!
//! See `docs/wids.md` for the rules, thresholds and confidence model.

use crate::capture::Record;
use crate::frame::{self, is_group, mac_to_string, parse_frame, Mac, Mgmt, MgmtHeader};
use crate::link::decapsulate;
use crate::report::{AttackKind, AttackReport, Rule};
use std::collections::{BTreeMap, HashMap};

/// Detector thresholds. The defaults are documented in `docs/wids.md`.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorConfig {
    /// Burst rule: this many frames of one flow (claimed transmitter, BSSID, receiver)...
    pub burst_frames: usize,
    /// ... within this many seconds (sliding window).
    pub burst_window_s: f64,
    /// Sustained rule: this many frames of one flow within one episode (gaps of at most
    /// `episode_gap_s`), whatever the rate.
    pub sustained_frames: u64,
    /// Frames of one (BSSID, target) further apart than this start a new episode.
    pub episode_gap_s: f64,
    /// Identical (transmitter, sequence, fragment, subtype) within this many seconds are
    /// one frame seen twice.
    pub dedup_window_s: f64,
    /// Triggered floods below this confidence are not reported.
    pub min_confidence: f64,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            burst_frames: 10,
            burst_window_s: 1.0,
            sustained_frames: 30,
            episode_gap_s: 2.0,
            dedup_window_s: 0.010,
            min_confidence: 0.0,
        }
    }
}

/// Upper bound on flows tracked per (BSSID, target); further claimed transmitters share
/// one overflow flow (so floods from random transmitter addresses still add up).
const MAX_FLOWS: usize = 16;
/// Upper bound on access points remembered from beacons.
const MAX_APS: usize = 65_536;
/// Peak-rate buckets: 100 buckets of 10 ms = a one-second sliding window.
const BUCKETS: usize = 100;
const BUCKET_S: f64 = 0.01;

#[derive(Debug, Clone)]
struct ApInfo {
    last_seq: u16,
    last_ts: f64,
    beacons: u64,
    signal_ewma: Option<f64>,
    mfp_required: bool,
    ssid: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct DedupKey {
    addr2: Mac,
    seq: u16,
    frag: u8,
    subtype: u8,
}

#[derive(Debug, Clone, Copy)]
struct DedupEntry {
    ts: f64,
    paired: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct GroupKey {
    bssid: Mac,
    target: Mac,
}

#[derive(Debug, Clone)]
struct Flow {
    tx: Mac,
    rx: Mac,
    frames: u64,
    ring: Vec<f64>,
    head: usize,
    last_seq: Option<u16>,
}

impl Flow {
    fn new(tx: Mac, rx: Mac, n: usize) -> Flow {
        Flow {
            tx,
            rx,
            frames: 0,
            ring: Vec::with_capacity(n),
            head: 0,
            last_seq: None,
        }
    }
    /// Record a frame; returns the span of the last `n` frames once `n` were seen.
    fn push(&mut self, ts: f64, n: usize) -> Option<f64> {
        self.frames += 1;
        if self.ring.len() < n {
            self.ring.push(ts);
            if self.ring.len() == n {
                let first = self.ring.first().copied().unwrap_or(ts);
                return Some(ts - first);
            }
            return None;
        }
        // ring is full: the slot at head holds the oldest of the last n
        let oldest = self.ring.get(self.head).copied().unwrap_or(ts);
        if let Some(slot) = self.ring.get_mut(self.head) {
            *slot = ts;
        }
        self.head = (self.head + 1) % n.max(1);
        // span of the newest n frames: from the (new) oldest to ts
        let new_oldest = self.ring.get(self.head).copied().unwrap_or(oldest);
        Some(ts - new_oldest)
    }
}

#[derive(Debug, Clone)]
struct Peak {
    buckets: [u32; BUCKETS],
    head: i64,
    sum: u64,
    peak: u64,
}

impl Peak {
    fn new() -> Peak {
        Peak {
            buckets: [0; BUCKETS],
            head: i64::MIN,
            sum: 0,
            peak: 0,
        }
    }
    fn push(&mut self, ts: f64) {
        // clamp: any timestamp (even NaN or +-inf from a hostile file) maps to a bucket
        // number whose differences cannot overflow
        let b = (ts / BUCKET_S).floor().clamp(-1e15, 1e15) as i64;
        if self.head == i64::MIN {
            self.head = b;
        }
        if b > self.head {
            let steps = (b - self.head).min(BUCKETS as i64);
            for k in 1..=steps {
                let idx = (self.head + k).rem_euclid(BUCKETS as i64) as usize;
                if let Some(slot) = self.buckets.get_mut(idx) {
                    self.sum -= u64::from(*slot);
                    *slot = 0;
                }
            }
            self.head = b;
        }
        // frames older than the window (out of order by > 1 s) are only counted in the sum
        // of their own bucket when still inside the window
        if self.head - b < BUCKETS as i64 {
            let idx = b.rem_euclid(BUCKETS as i64) as usize;
            if let Some(slot) = self.buckets.get_mut(idx) {
                *slot = slot.saturating_add(1);
                self.sum += 1;
            }
        }
        self.peak = self.peak.max(self.sum);
    }
}

#[derive(Debug, Clone)]
struct Episode {
    key: GroupKey,
    broadcast: bool,
    start: f64,
    end: f64,
    frames: u64,
    deauth: u64,
    disassoc: u64,
    reasons: BTreeMap<u16, u64>,
    flows: Vec<Flow>,
    protected_frames: u64,
    dur314: u64,
    reason7: u64,
    seq_consistent: u64,
    seq_anomalous: u64,
    seq_zero_starts: u64,
    seq_restarts: u64,
    shared_counter: u64,
    sig_ap_sum: f64,
    sig_ap_n: u64,
    sig_beacon_sum: f64,
    unprotected_on_mfp: u64,
    rejoins: u64,
    duplicates: u64,
    peak: Peak,
    triggered: Option<Rule>,
    alerted: bool,
    last_tx: Mac,
    last_seq: Option<u16>,
}

impl Episode {
    fn new(key: GroupKey, broadcast: bool, ts: f64) -> Episode {
        Episode {
            key,
            broadcast,
            start: ts,
            end: ts,
            frames: 0,
            deauth: 0,
            disassoc: 0,
            reasons: BTreeMap::new(),
            flows: Vec::new(),
            protected_frames: 0,
            dur314: 0,
            reason7: 0,
            seq_consistent: 0,
            seq_anomalous: 0,
            seq_zero_starts: 0,
            seq_restarts: 0,
            shared_counter: 0,
            sig_ap_sum: 0.0,
            sig_ap_n: 0,
            sig_beacon_sum: 0.0,
            unprotected_on_mfp: 0,
            rejoins: 0,
            duplicates: 0,
            peak: Peak::new(),
            triggered: None,
            alerted: false,
            last_tx: [0; 6],
            last_seq: None,
        }
    }
}

/// Streaming detector. Feed it records or frames in capture order, then call
/// [`Detector::finish`].
#[derive(Debug)]
pub struct Detector {
    cfg: DetectorConfig,
    capture: Option<String>,
    aps: HashMap<Mac, ApInfo>,
    dedup: HashMap<DedupKey, DedupEntry>,
    groups: HashMap<GroupKey, Episode>,
    done: Vec<AttackReport>,
    alerts: Vec<AttackReport>,
    last_sweep: f64,
    now: f64,
    records: u64,
    disconnect_frames: u64,
}

/// A deauthentication/disassociation frame, reduced to what the detector needs.
#[derive(Debug, Clone, Copy)]
struct Obs {
    ts: f64,
    hdr: MgmtHeader,
    signal: Option<i8>,
    reason: Option<u16>,
    protected: bool,
}

impl Detector {
    /// A detector with the given thresholds.
    pub fn new(cfg: DetectorConfig) -> Detector {
        Detector {
            cfg,
            capture: None,
            aps: HashMap::new(),
            dedup: HashMap::new(),
            groups: HashMap::new(),
            done: Vec::new(),
            alerts: Vec::new(),
            last_sweep: f64::NEG_INFINITY,
            now: f64::NEG_INFINITY,
            records: 0,
            disconnect_frames: 0,
        }
    }

    /// Name the capture (file name or interface) in the reports.
    pub fn with_capture(mut self, name: impl Into<String>) -> Detector {
        self.capture = Some(name.into());
        self
    }

    /// Records fed so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Deauthentication/disassociation frames counted so far (after de-duplication).
    pub fn disconnect_frames(&self) -> u64 {
        self.disconnect_frames
    }

    /// Feed one capture record (any linktype; unsupported ones are ignored).
    #[inline]
    pub fn push_record(&mut self, rec: &Record<'_>) {
        self.records += 1;
        if let Ok(d) = decapsulate(rec.linktype, rec.data) {
            self.push_frame(rec.ts, d.frame, d.signal_dbm);
        }
    }

    /// Feed one 802.11 frame (no link-layer header, no FCS) with its signal, if known.
    #[inline]
    pub fn push_frame(&mut self, ts: f64, f: &[u8], signal: Option<i8>) {
        let ts = if ts.is_finite() { ts } else { 0.0 };
        // Fast path: only management frames interest us.
        match f.first() {
            Some(&fc0) if fc0 & 0x0f == 0 => {}
            _ => return,
        }
        let Some(fr) = parse_frame(f) else { return };
        if ts.is_finite() && ts > self.now {
            self.now = ts;
        }
        if self.now - self.last_sweep >= 1.0 {
            self.sweep(self.now);
        }
        match fr.body {
            Mgmt::Beacon(b) => {
                if fr.hdr.addr2 != fr.hdr.addr3 {
                    return;
                }
                let len = self.aps.len();
                let ap = match self.aps.get_mut(&fr.hdr.addr2) {
                    Some(ap) => ap,
                    None if len < MAX_APS => self.aps.entry(fr.hdr.addr2).or_insert(ApInfo {
                        last_seq: fr.hdr.seq,
                        last_ts: ts,
                        beacons: 0,
                        signal_ewma: None,
                        mfp_required: false,
                        ssid: String::new(),
                    }),
                    None => return,
                };
                ap.last_seq = fr.hdr.seq;
                ap.last_ts = ts;
                ap.beacons += 1;
                ap.mfp_required = b.mfp_required();
                if ap.ssid.is_empty() && !b.ssid.is_empty() && b.ssid.iter().any(|&c| c != 0) {
                    ap.ssid = String::from_utf8_lossy(b.ssid.get(..32).unwrap_or(b.ssid)).into();
                }
                if let Some(s) = signal {
                    let s = f64::from(s);
                    ap.signal_ewma = Some(match ap.signal_ewma {
                        Some(e) => e * 0.8 + s * 0.2,
                        None => s,
                    });
                }
            }
            Mgmt::Join => {
                // a station (addr2) (re)joining the BSS addr3 while being flooded
                let key = GroupKey {
                    bssid: fr.hdr.addr3,
                    target: fr.hdr.addr2,
                };
                if fr.hdr.subtype == frame::subtype::AUTH
                    && self.groups.contains_key(&key)
                    && !self.is_duplicate(&fr.hdr, ts)
                {
                    if let Some(ep) = self.groups.get_mut(&key) {
                        if ts - ep.end <= self.cfg.episode_gap_s {
                            ep.rejoins += 1;
                        }
                    }
                }
            }
            Mgmt::Disconnect(d) => {
                let obs = Obs {
                    ts,
                    hdr: fr.hdr,
                    signal,
                    reason: d.reason,
                    protected: fr.hdr.protected() || d.has_mmie,
                };
                self.disconnect(obs);
            }
            Mgmt::Other => {}
        }
    }

    fn is_duplicate(&mut self, hdr: &MgmtHeader, ts: f64) -> bool {
        let key = DedupKey {
            addr2: hdr.addr2,
            seq: hdr.seq,
            frag: hdr.frag,
            subtype: hdr.subtype,
        };
        let w = self.cfg.dedup_window_s;
        if let Some(e) = self.dedup.get_mut(&key) {
            if (ts - e.ts).abs() <= w && (hdr.retry() || !e.paired) {
                if hdr.retry() {
                    // a retransmission chain: measure the window from the latest try
                    e.ts = ts;
                } else {
                    e.paired = true;
                }
                return true;
            }
        }
        self.dedup.insert(key, DedupEntry { ts, paired: false });
        if self.dedup.len() > 65_536 {
            let now = self.now;
            self.dedup.retain(|_, e| now - e.ts <= w);
        }
        false
    }

    fn disconnect(&mut self, o: Obs) {
        let dup = self.is_duplicate(&o.hdr, o.ts);
        let h = o.hdr;
        let broadcast = is_group(&h.addr1);
        let target = if broadcast || h.addr2 == h.addr3 {
            h.addr1
        } else if h.addr1 == h.addr3 {
            h.addr2
        } else {
            h.addr1
        };
        let key = GroupKey {
            bssid: h.addr3,
            target,
        };
        if dup {
            if let Some(ep) = self.groups.get_mut(&key) {
                ep.duplicates += 1;
            }
            return;
        }
        self.disconnect_frames += 1;
        // close a stale episode of this group first
        if let Some(ep) = self.groups.get(&key) {
            if o.ts - ep.end > self.cfg.episode_gap_s {
                if let Some(ep) = self.groups.remove(&key) {
                    self.close(ep);
                }
            }
        }
        let cfg = &self.cfg;
        let ep = self
            .groups
            .entry(key)
            .or_insert_with(|| Episode::new(key, broadcast, o.ts));
        ep.end = ep.end.max(o.ts);
        ep.start = ep.start.min(o.ts);
        ep.frames += 1;
        if h.subtype == frame::subtype::DEAUTH {
            ep.deauth += 1;
        } else {
            ep.disassoc += 1;
        }
        if let Some(r) = o.reason {
            if ep.reasons.len() < 1024 || ep.reasons.contains_key(&r) {
                *ep.reasons.entry(r).or_insert(0) += 1;
            }
            if r == 7 {
                ep.reason7 += 1;
            }
        }
        if o.protected {
            ep.protected_frames += 1;
        }
        if h.duration == 314 {
            ep.dur314 += 1;
        }
        ep.peak.push(o.ts);

        // evidence against the AP's beacons
        if let Some(ap) = self.aps.get(&h.addr3) {
            if ap.mfp_required && !o.protected {
                ep.unprotected_on_mfp += 1;
            }
            if h.addr2 == h.addr3 {
                if ap.beacons >= 2 && (o.ts - ap.last_ts).abs() <= 10.0 {
                    let delta = h.seq.wrapping_sub(ap.last_seq) & 0x0fff;
                    if (1..=300).contains(&delta) {
                        ep.seq_consistent += 1;
                    } else {
                        ep.seq_anomalous += 1;
                    }
                }
                if let (Some(s), Some(e)) = (o.signal, ap.signal_ewma) {
                    ep.sig_ap_sum += f64::from(s);
                    ep.sig_beacon_sum += e;
                    ep.sig_ap_n += 1;
                }
            }
        }
        // one counter shared by both claimed directions: one injector forging both
        if let Some(ls) = ep.last_seq {
            if ep.last_tx != h.addr2 && h.seq == (ls + 1) & 0x0fff {
                ep.shared_counter += 1;
            }
        }
        ep.last_seq = Some(h.seq);
        ep.last_tx = h.addr2;

        // the flow (claimed transmitter, BSSID, receiver)
        let n = cfg.burst_frames.clamp(2, 4096);
        let idx = match ep
            .flows
            .iter()
            .position(|f| f.tx == h.addr2 && f.rx == h.addr1)
        {
            Some(i) => i,
            None if ep.flows.len() < MAX_FLOWS => {
                ep.flows.push(Flow::new(h.addr2, h.addr1, n));
                ep.flows.len() - 1
            }
            None => {
                // overflow flow: every further transmitter adds up here
                match ep.flows.iter().position(|f| f.tx == [0; 6]) {
                    Some(i) => i,
                    None => {
                        ep.flows.push(Flow::new([0; 6], h.addr1, n));
                        ep.flows.len() - 1
                    }
                }
            }
        };
        let Some(flow) = ep.flows.get_mut(idx) else {
            return;
        };
        match flow.last_seq {
            None if h.seq <= 2 => ep.seq_zero_starts += 1,
            Some(ls) if (8..4080).contains(&ls) && h.seq <= 2 => ep.seq_restarts += 1,
            _ => {}
        }
        flow.last_seq = Some(h.seq);
        let span = flow.push(o.ts, n);
        let frames = flow.frames;
        if ep.triggered.is_none() {
            if span.is_some_and(|s| s <= cfg.burst_window_s) {
                ep.triggered = Some(Rule::Burst);
            } else if frames >= cfg.sustained_frames {
                ep.triggered = Some(Rule::Sustained);
            }
        }
        if ep.triggered.is_some() && !ep.alerted {
            ep.alerted = true;
            let r = build_report(ep, &self.aps, self.capture.as_deref(), true);
            if r.confidence >= self.cfg.min_confidence {
                self.alerts.push(r);
            }
        }
    }

    fn close(&mut self, ep: Episode) {
        if ep.triggered.is_some() {
            let r = build_report(&ep, &self.aps, self.capture.as_deref(), false);
            if r.confidence >= self.cfg.min_confidence {
                self.done.push(r);
            }
        }
    }

    /// Close the episodes that ended more than `episode_gap_s` before `now` and forget
    /// stale de-duplication state. Called automatically as capture time advances; call it
    /// from a live loop when no frames arrive.
    pub fn sweep(&mut self, now: f64) {
        self.last_sweep = now;
        let gap = self.cfg.episode_gap_s;
        let stale: Vec<GroupKey> = self
            .groups
            .iter()
            .filter(|(_, ep)| now - ep.end > gap)
            .map(|(k, _)| *k)
            .collect();
        for k in stale {
            if let Some(ep) = self.groups.remove(&k) {
                self.close(ep);
            }
        }
        let w = self.cfg.dedup_window_s;
        self.dedup.retain(|_, e| now - e.ts <= w);
    }

    /// Reports of attacks that have ended (their episode closed) since the last call.
    pub fn take_reports(&mut self) -> Vec<AttackReport> {
        std::mem::take(&mut self.done)
    }

    /// Early alerts: one report (with `ongoing: true`) when a flood first crosses a
    /// threshold, before it ends.
    pub fn take_alerts(&mut self) -> Vec<AttackReport> {
        std::mem::take(&mut self.alerts)
    }

    /// End of input: close every episode and return all reports, ordered by start.
    pub fn finish(mut self) -> Vec<AttackReport> {
        let mut keys: Vec<GroupKey> = self.groups.keys().copied().collect();
        keys.sort();
        for k in keys {
            if let Some(ep) = self.groups.remove(&k) {
                self.close(ep);
            }
        }
        let mut out = std::mem::take(&mut self.done);
        out.sort_by(|a, b| a.start.total_cmp(&b.start).then(a.bssid.cmp(&b.bssid)));
        out
    }
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn build_report(
    ep: &Episode,
    aps: &HashMap<Mac, ApInfo>,
    capture: Option<&str>,
    ongoing: bool,
) -> AttackReport {
    let bssid = ep.key.bssid;
    // main claimed transmitter: most frames; on a tie, the BSSID (the AP) wins
    let top = ep
        .flows
        .iter()
        .max_by_key(|f| (f.frames, f.tx == bssid))
        .map(|f| (f.tx, f.rx))
        .unwrap_or((bssid, ep.key.target));
    let mut transmitters = BTreeMap::new();
    for f in &ep.flows {
        let name = if f.tx == [0; 6] {
            "other".to_string()
        } else {
            mac_to_string(&f.tx)
        };
        *transmitters.entry(name).or_insert(0) += f.frames;
    }
    let kind = match (ep.deauth > 0, ep.disassoc > 0) {
        (true, true) => AttackKind::Both,
        (false, true) => AttackKind::Disassoc,
        _ => AttackKind::Deauth,
    };
    let ap = aps.get(&bssid);
    let mut evidence = Vec::new();
    let mut conf: f64 = 0.5;
    let dur = ep.end - ep.start;
    match ep.triggered {
        Some(Rule::Sustained) => evidence.push(format!(
            "sustained flood: {} frames with gaps of at most the episode gap over {:.1} s",
            ep.frames, dur
        )),
        _ => evidence.push(format!(
            "flood: {} {} frames in {:.2} s, peak {} per second",
            ep.frames,
            match kind {
                AttackKind::Deauth => "deauthentication",
                AttackKind::Disassoc => "disassociation",
                AttackKind::Both => "deauthentication and disassociation",
            },
            dur,
            ep.peak.peak
        )),
    }
    let bidir = ep.flows.iter().any(|f| f.tx == bssid && f.frames >= 3)
        && ep
            .flows
            .iter()
            .any(|f| f.tx != bssid && f.rx == bssid && f.frames >= 3);
    if bidir {
        conf += 0.10;
        evidence
            .push("frames claim both directions (AP to station and station to AP) at once".into());
    }
    if ep.shared_counter * 3 >= ep.frames && ep.shared_counter >= 3 {
        conf += 0.15;
        evidence.push(format!(
            "both claimed transmitters use one sequence counter ({} alternating steps): one injector forging both",
            ep.shared_counter
        ));
    }
    if share(ep.reason7, ep.frames) >= 0.9 && share(ep.dur314, ep.frames) >= 0.9 {
        conf += 0.15;
        evidence.push("aireplay-ng signature: reason 7 and duration 314 us on every frame".into());
    } else if share(ep.dur314, ep.frames) >= 0.9 {
        conf += 0.05;
        evidence.push("duration field 314 us (aireplay-ng's value) on every frame".into());
    }
    if ep.seq_anomalous >= 3 && ep.seq_anomalous > ep.seq_consistent {
        conf += 0.15;
        evidence.push(format!(
            "{} of {} frames claiming the AP carry sequence numbers that do not follow the AP's beacon counter",
            ep.seq_anomalous,
            ep.seq_anomalous + ep.seq_consistent
        ));
    }
    if ep.seq_zero_starts + ep.seq_restarts > 0 {
        conf += 0.10;
        evidence.push(format!(
            "sequence numbers start or restart at 0 ({} times): an injection tool's own counter",
            ep.seq_zero_starts + ep.seq_restarts
        ));
    }
    let mut signal_mismatch = false;
    if ep.sig_ap_n > 0 {
        let mean = ep.sig_ap_sum / ep.sig_ap_n as f64;
        let beacon = ep.sig_beacon_sum / ep.sig_ap_n as f64;
        if (mean - beacon).abs() >= 10.0 {
            signal_mismatch = true;
            conf += 0.15;
            evidence.push(format!(
                "signal of frames claiming the AP averages {mean:.0} dBm, the AP's beacons {beacon:.0} dBm"
            ));
        }
    }
    if ep.unprotected_on_mfp > 0 {
        conf += 0.15;
        evidence.push(format!(
            "{} unprotected frames on a network whose RSN element requires management frame protection",
            ep.unprotected_on_mfp
        ));
    }
    if ep.flows.len() >= MAX_FLOWS {
        conf += 0.15;
        evidence.push(format!(
            "more than {} distinct claimed transmitters: spoofed random source addresses",
            MAX_FLOWS - 1
        ));
    }
    if ep.rejoins >= 2 {
        conf += 0.05;
        evidence.push(format!(
            "the station tried to rejoin {} times during the flood",
            ep.rejoins
        ));
    }
    if ep.peak.peak >= 100 {
        conf += 0.05;
        evidence.push(format!(
            "{} frames in one second: far above any legitimate disconnection pattern",
            ep.peak.peak
        ));
    }
    if ep.seq_consistent > 0 && ep.seq_anomalous == 0 && !signal_mismatch {
        conf -= 0.25;
        evidence.push(
            "sequence numbers follow the AP's own counter: possibly the genuine AP (for example rejecting a confused station)".into(),
        );
    }
    if ep.duplicates > 0 {
        evidence.push(format!(
            "{} duplicate copies of frames ignored",
            ep.duplicates
        ));
    }
    let protected = ep.protected_frames * 2 > ep.frames;
    if protected {
        conf = conf.min(0.3);
        evidence.push(
            "most frames are protected (802.11w): clients with MFP discard forged or replayed ones"
                .into(),
        );
    }
    let conf = (conf.clamp(0.05, 0.99) * 100.0).round() / 100.0;
    let label = if conf >= 0.75 {
        "high"
    } else if conf >= 0.45 {
        "medium"
    } else {
        "low"
    };
    AttackReport {
        kind,
        transmitter: mac_to_string(&top.0),
        receiver: mac_to_string(&top.1),
        bssid: mac_to_string(&bssid),
        target: mac_to_string(&ep.key.target),
        ssid: ap.map(|a| a.ssid.clone()).filter(|s| !s.is_empty()),
        broadcast: ep.broadcast,
        reason_codes: ep.reasons.clone(),
        frames: ep.frames,
        deauth_frames: ep.deauth,
        disassoc_frames: ep.disassoc,
        transmitters,
        start: ep.start,
        end: ep.end,
        peak_rate_per_s: ep.peak.peak as f64,
        protected,
        protected_frames: ep.protected_frames,
        network_requires_mfp: ap.map(|a| a.mfp_required),
        confidence: conf,
        confidence_label: label.into(),
        rule: ep.triggered.unwrap_or(Rule::Burst),
        evidence,
        ongoing,
        capture: capture.map(str::to_string),
    }
}
