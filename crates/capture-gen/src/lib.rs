//! A dev tool, not part of the product: a deterministic, seeded generator of 802.11
//! captures, the synthetic test corpus (attacks and normal life) and the large
//! benchmark file.
//!
//! Every case comes with the attacks a correct detector reports ([`ExpectedAttack`]);
//! [`corpus`] enumerates them.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use threshold_wids::frame::{mac_to_string, Mac, BROADCAST};
use threshold_wids::report::AttackKind;

/// Container format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Classic pcap (microsecond timestamps).
    Pcap,
    /// pcapng (one interface, nanosecond timestamps).
    PcapNg,
}

/// Link layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Radiotap (127) with Flags and antenna signal.
    Radiotap,
    /// Plain 802.11 (105).
    Dot11,
    /// PPI (192) with an 802.11-Common field.
    Ppi,
}

impl Link {
    fn linktype(self) -> u16 {
        match self {
            Link::Radiotap => 127,
            Link::Dot11 => 105,
            Link::Ppi => 192,
        }
    }
}

/// The scenarios the generator can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseKind {
    /// aireplay-ng `-0 3 -a AP -c STA`: three bursts of 64 deauth pairs (AP->STA and
    /// STA->AP), one shared sequence counter from 0, reason 7, duration 314, 180 ms apart.
    AireplayDirected,
    /// mdk-style broadcast deauthentication flood claiming the AP, 500 frames/s for 2 s.
    MdkBroadcast,
    /// mdk4-style mixed deauth/disassoc flood against two stations, random reasons.
    MixedFlood,
    /// Broadcast deauth flood from random spoofed transmitter addresses.
    RandomSourceBroadcast,
    /// Slow flood: one deauth every 0.5 s for 30 s (below any burst threshold).
    SlowSustained,
    /// Unprotected broadcast deauth flood on a network whose RSN requires MFP.
    MfpNetworkAttack,
    /// [`CaseKind::AireplayDirected`] with every frame written twice.
    DuplicatedAireplay,
    /// Normal: stations leaving (disassoc reason 8, deauth reason 3) with retries.
    ClientLeaving,
    /// Normal: the AP ageing out six idle stations (deauth reason 4, retried).
    ApAgeing,
    /// Normal: a station roaming back and forth between two APs.
    Roaming,
    /// Normal: an AP restarting (three broadcast deauths, reason 3), then beaconing again.
    ApRestart,
    /// Normal on an MFP network: protected unicast deauths and broadcast ones with a
    /// Management MIC element.
    ProtectedMfp,
    /// Normal life with every frame written twice.
    DuplicatedBenign,
    /// Deauths that failed their FCS (radiotap bad-FCS flag): must be ignored.
    BadFcsNoise,
    /// A busy network: 30 stations coming and going over a minute.
    BusyNormal,
}

/// An attack a correct detector reports for a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedAttack {
    /// Kind.
    pub kind: AttackKind,
    /// BSSID, `aa:bb:..`.
    pub bssid: String,
    /// Victim station or broadcast address.
    pub target: String,
    /// Broadcast or targeted.
    pub broadcast: bool,
    /// Frames after de-duplication.
    pub frames: u64,
}

/// One corpus entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    /// File stem.
    pub name: &'static str,
    /// Scenario.
    pub kind: CaseKind,
    /// Container.
    pub format: Format,
    /// Link layer.
    pub link: Link,
    /// Seed.
    pub seed: u64,
}

impl Case {
    /// File name with the right extension.
    pub fn file_name(&self) -> String {
        match self.format {
            Format::Pcap => format!("{}.pcap", self.name),
            Format::PcapNg => format!("{}.pcapng", self.name),
        }
    }
}

/// The committed synthetic corpus: every scenario, over both containers and link layers.
pub fn corpus() -> Vec<Case> {
    use CaseKind::*;
    use Format::*;
    use Link::*;
    let c = |name, kind, format, link, seed| Case {
        name,
        kind,
        format,
        link,
        seed,
    };
    vec![
        c(
            "aireplay_directed_rt",
            AireplayDirected,
            PcapNg,
            Radiotap,
            1,
        ),
        c("aireplay_directed_dot11", AireplayDirected, Pcap, Dot11, 2),
        c("mdk_broadcast_rt_fcs", MdkBroadcast, Pcap, Radiotap, 3),
        c("mdk_broadcast_ppi", MdkBroadcast, PcapNg, Ppi, 4),
        c("mixed_flood_dot11", MixedFlood, PcapNg, Dot11, 5),
        c("mixed_flood_rt", MixedFlood, Pcap, Radiotap, 6),
        c(
            "random_source_broadcast",
            RandomSourceBroadcast,
            Pcap,
            Radiotap,
            7,
        ),
        c("slow_sustained", SlowSustained, Pcap, Dot11, 8),
        c("mfp_network_attack", MfpNetworkAttack, PcapNg, Radiotap, 9),
        c(
            "duplicated_aireplay",
            DuplicatedAireplay,
            PcapNg,
            Radiotap,
            10,
        ),
        c(
            "duplicated_aireplay_dot11",
            DuplicatedAireplay,
            Pcap,
            Dot11,
            11,
        ),
        c("client_leaving", ClientLeaving, Pcap, Radiotap, 12),
        c("client_leaving_dot11", ClientLeaving, PcapNg, Dot11, 13),
        c("ap_ageing", ApAgeing, PcapNg, Radiotap, 14),
        c("roaming", Roaming, Pcap, Dot11, 15),
        c("ap_restart", ApRestart, PcapNg, Dot11, 16),
        c("protected_mfp", ProtectedMfp, PcapNg, Radiotap, 17),
        c("protected_mfp_dot11", ProtectedMfp, Pcap, Dot11, 18),
        c("duplicated_benign", DuplicatedBenign, Pcap, Radiotap, 19),
        c("bad_fcs_noise", BadFcsNoise, Pcap, Radiotap, 20),
        c("busy_normal", BusyNormal, PcapNg, Radiotap, 21),
    ]
}

/// Deterministic PRNG (splitmix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    /// A locally administered unicast MAC.
    pub fn mac(&mut self) -> Mac {
        let v = self.next_u64().to_le_bytes();
        [(v[0] & 0xfc) | 0x02, v[1], v[2], v[3], v[4], v[5]]
    }
}

/// IEEE CRC-32 (the 802.11 FCS).
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xedb8_8320 & mask);
        }
    }
    !crc
}

// ---------------------------------------------------------------- frames

/// A management header.
#[allow(clippy::too_many_arguments)]
pub fn mgmt_header(
    subtype: u8,
    flags: u8,
    duration: u16,
    a1: Mac,
    a2: Mac,
    a3: Mac,
    seq: u16,
) -> Vec<u8> {
    let mut v = Vec::with_capacity(64);
    v.push(subtype << 4);
    v.push(flags);
    v.extend_from_slice(&duration.to_le_bytes());
    v.extend_from_slice(&a1);
    v.extend_from_slice(&a2);
    v.extend_from_slice(&a3);
    v.extend_from_slice(&((seq & 0x0fff) << 4).to_le_bytes());
    v
}

/// A deauthentication (subtype 12) or disassociation (10) frame.
#[allow(clippy::too_many_arguments)]
pub fn disconnect(
    subtype: u8,
    a1: Mac,
    a2: Mac,
    a3: Mac,
    seq: u16,
    reason: u16,
    duration: u16,
    retry: bool,
) -> Vec<u8> {
    let mut v = mgmt_header(
        subtype,
        if retry { 0x08 } else { 0 },
        duration,
        a1,
        a2,
        a3,
        seq,
    );
    v.extend_from_slice(&reason.to_le_bytes());
    v
}

/// A protected unicast deauth/disassoc: Protected bit, CCMP header + ciphertext + MIC.
pub fn protected_disconnect(
    subtype: u8,
    a1: Mac,
    a2: Mac,
    a3: Mac,
    seq: u16,
    rng: &mut Rng,
) -> Vec<u8> {
    let mut v = mgmt_header(subtype, 0x40, 314, a1, a2, a3, seq);
    for _ in 0..18 {
        v.push(rng.below(256) as u8);
    }
    v
}

/// A broadcast deauth/disassoc carrying a Management MIC element (BIP-CMAC-128).
pub fn mmie_disconnect(
    subtype: u8,
    ap: Mac,
    seq: u16,
    reason: u16,
    ipn: u64,
    rng: &mut Rng,
) -> Vec<u8> {
    let mut v = mgmt_header(subtype, 0, 0, BROADCAST, ap, ap, seq);
    v.extend_from_slice(&reason.to_le_bytes());
    v.push(76);
    v.push(16);
    v.extend_from_slice(&4u16.to_le_bytes()); // key id
    v.extend_from_slice(ipn.to_le_bytes().get(..6).unwrap_or(&[0; 6]));
    for _ in 0..8 {
        v.push(rng.below(256) as u8);
    }
    v
}

/// A beacon with SSID and, when `rsn_caps` is given, an RSN element (CCMP, PSK).
pub fn beacon(ap: Mac, seq: u16, ssid: &str, rsn_caps: Option<u16>, tsf: u64) -> Vec<u8> {
    let mut v = mgmt_header(8, 0, 0, BROADCAST, ap, ap, seq);
    v.extend_from_slice(&tsf.to_le_bytes());
    v.extend_from_slice(&100u16.to_le_bytes());
    v.extend_from_slice(&0x0411u16.to_le_bytes());
    v.push(0);
    v.push(ssid.len().min(32) as u8);
    v.extend_from_slice(ssid.as_bytes().get(..ssid.len().min(32)).unwrap_or(&[]));
    v.extend_from_slice(&[1, 8, 0x82, 0x84, 0x8b, 0x96, 0x0c, 0x12, 0x18, 0x24]);
    v.extend_from_slice(&[3, 1, 6]);
    if let Some(caps) = rsn_caps {
        let mut rsn = vec![1, 0, 0x00, 0x0f, 0xac, 4, 1, 0, 0x00, 0x0f, 0xac, 4, 1, 0];
        rsn.extend_from_slice(&[0x00, 0x0f, 0xac, if caps & 0x40 != 0 { 6 } else { 2 }]);
        rsn.extend_from_slice(&caps.to_le_bytes());
        v.push(48);
        v.push(rsn.len() as u8);
        v.extend_from_slice(&rsn);
    }
    v
}

/// An authentication request (open system, transaction 1) from a station.
pub fn auth(sta: Mac, ap: Mac, seq: u16) -> Vec<u8> {
    let mut v = mgmt_header(11, 0, 314, ap, sta, ap, seq);
    v.extend_from_slice(&[0, 0, 1, 0, 0, 0]);
    v
}

/// A (non-QoS) data frame of `len` body bytes.
pub fn data(to_ds: bool, a1: Mac, a2: Mac, a3: Mac, seq: u16, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(24 + len);
    v.push(0x08);
    v.push(if to_ds { 0x41 } else { 0x42 });
    v.extend_from_slice(&44u16.to_le_bytes());
    v.extend_from_slice(&a1);
    v.extend_from_slice(&a2);
    v.extend_from_slice(&a3);
    v.extend_from_slice(&((seq & 0x0fff) << 4).to_le_bytes());
    v.extend(std::iter::repeat_n(0xa5u8, len));
    v
}

/// An ACK control frame.
pub fn ack(ra: Mac) -> Vec<u8> {
    let mut v = vec![0xd4, 0, 0, 0];
    v.extend_from_slice(&ra);
    v
}

// ---------------------------------------------------------------- writer

/// How one frame is captured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capt {
    /// Antenna signal.
    pub signal: i8,
    /// Append the FCS (radiotap FCS-at-end flag).
    pub fcs: bool,
    /// Mark it as failing the FCS check (radiotap bad-FCS flag; FCS appended, wrong).
    pub bad_fcs: bool,
    /// Use the injection-echo radiotap variant (rate + TX flags, no signal), as in
    /// captures that hold every injected frame twice.
    pub tx_echo: bool,
}

/// A streaming capture writer.
pub struct CaptureWriter<W: Write> {
    w: W,
    format: Format,
    link: Link,
    buf: Vec<u8>,
    /// Records written.
    pub records: u64,
}

impl CaptureWriter<BufWriter<File>> {
    /// Create `path`.
    pub fn create(path: &Path, format: Format, link: Link) -> io::Result<Self> {
        let f = File::create(path)?;
        CaptureWriter::new(BufWriter::with_capacity(1 << 20, f), format, link)
    }
}

impl<W: Write> CaptureWriter<W> {
    /// Write the file header(s) to `w`.
    pub fn new(mut w: W, format: Format, link: Link) -> io::Result<Self> {
        let lt = link.linktype();
        match format {
            Format::Pcap => {
                w.write_all(&0xa1b2_c3d4u32.to_le_bytes())?;
                w.write_all(&2u16.to_le_bytes())?;
                w.write_all(&4u16.to_le_bytes())?;
                w.write_all(&0i32.to_le_bytes())?;
                w.write_all(&0u32.to_le_bytes())?;
                w.write_all(&65535u32.to_le_bytes())?;
                w.write_all(&u32::from(lt).to_le_bytes())?;
            }
            Format::PcapNg => {
                // SHB
                w.write_all(&0x0a0d_0d0au32.to_le_bytes())?;
                w.write_all(&28u32.to_le_bytes())?;
                w.write_all(&0x1a2b_3c4du32.to_le_bytes())?;
                w.write_all(&1u16.to_le_bytes())?;
                w.write_all(&0u16.to_le_bytes())?;
                w.write_all(&(-1i64).to_le_bytes())?;
                w.write_all(&28u32.to_le_bytes())?;
                // IDB with if_tsresol = 9 (nanoseconds)
                w.write_all(&1u32.to_le_bytes())?;
                w.write_all(&32u32.to_le_bytes())?;
                w.write_all(&lt.to_le_bytes())?;
                w.write_all(&0u16.to_le_bytes())?;
                w.write_all(&65535u32.to_le_bytes())?;
                w.write_all(&9u16.to_le_bytes())?;
                w.write_all(&1u16.to_le_bytes())?;
                w.write_all(&[9, 0, 0, 0])?;
                w.write_all(&[0, 0, 0, 0])?;
                w.write_all(&32u32.to_le_bytes())?;
            }
        }
        Ok(CaptureWriter {
            w,
            format,
            link,
            buf: Vec::with_capacity(4096),
            records: 0,
        })
    }

    /// Write one 802.11 frame captured at `ts` (Unix seconds).
    pub fn write(&mut self, ts: f64, frame: &[u8], c: Capt) -> io::Result<()> {
        self.buf.clear();
        let with_fcs = c.fcs || c.bad_fcs;
        match self.link {
            Link::Radiotap => {
                if c.tx_echo {
                    // rate (bit 2) + TX flags (bit 15)
                    self.buf.extend_from_slice(&[0, 0, 12, 0]);
                    self.buf.extend_from_slice(&0x0000_8004u32.to_le_bytes());
                    self.buf.extend_from_slice(&[2, 0, 0x18, 0]);
                } else {
                    let mut flags = 0u8;
                    if with_fcs {
                        flags |= 0x10;
                    }
                    if c.bad_fcs {
                        flags |= 0x40;
                    }
                    self.buf.extend_from_slice(&[0, 0, 10, 0]);
                    self.buf.extend_from_slice(&0x0000_0022u32.to_le_bytes());
                    self.buf.push(flags);
                    self.buf.push(c.signal as u8);
                }
            }
            Link::Ppi => {
                self.buf.extend_from_slice(&[0, 0, 32, 0]);
                self.buf.extend_from_slice(&105u32.to_le_bytes());
                self.buf.extend_from_slice(&2u16.to_le_bytes());
                self.buf.extend_from_slice(&20u16.to_le_bytes());
                let mut common = [0u8; 20];
                let mut flags = 0u16;
                if with_fcs {
                    flags |= 1;
                }
                if c.bad_fcs {
                    flags |= 4;
                }
                if let Some(s) = common.get_mut(8..10) {
                    s.copy_from_slice(&flags.to_le_bytes());
                }
                if let Some(s) = common.get_mut(18) {
                    *s = c.signal as u8;
                }
                self.buf.extend_from_slice(&common);
            }
            Link::Dot11 => {}
        }
        self.buf.extend_from_slice(frame);
        if with_fcs && self.link != Link::Dot11 {
            let mut crc = crc32(frame);
            if c.bad_fcs {
                crc ^= 0xdead_beef;
            }
            self.buf.extend_from_slice(&crc.to_le_bytes());
        }
        let len = self.buf.len() as u32;
        match self.format {
            Format::Pcap => {
                let secs = ts.floor();
                let usec = ((ts - secs) * 1e6).round().min(999_999.0);
                self.w.write_all(&(secs as u32).to_le_bytes())?;
                self.w.write_all(&(usec as u32).to_le_bytes())?;
                self.w.write_all(&len.to_le_bytes())?;
                self.w.write_all(&len.to_le_bytes())?;
                self.w.write_all(&self.buf)?;
            }
            Format::PcapNg => {
                let ns = (ts * 1e9).round() as u64;
                let pad = (4 - (self.buf.len() % 4)) % 4;
                let total = 32 + len + pad as u32;
                self.w.write_all(&6u32.to_le_bytes())?;
                self.w.write_all(&total.to_le_bytes())?;
                self.w.write_all(&0u32.to_le_bytes())?;
                self.w.write_all(&((ns >> 32) as u32).to_le_bytes())?;
                self.w.write_all(&(ns as u32).to_le_bytes())?;
                self.w.write_all(&len.to_le_bytes())?;
                self.w.write_all(&len.to_le_bytes())?;
                self.w.write_all(&self.buf)?;
                self.w.write_all([0u8; 3].get(..pad).unwrap_or(&[]))?;
                self.w.write_all(&total.to_le_bytes())?;
            }
        }
        self.records += 1;
        Ok(())
    }

    /// Flush and return the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.w.flush()?;
        Ok(self.w)
    }
}

// ---------------------------------------------------------------- scenarios

struct Pkt {
    ts: f64,
    frame: Vec<u8>,
    c: Capt,
}

struct Scene {
    rng: Rng,
    pkts: Vec<Pkt>,
    expected: Vec<ExpectedAttack>,
}

const T0: f64 = 1_700_000_000.0;

struct Ap {
    mac: Mac,
    seq: u16,
    signal: i8,
}

impl Ap {
    fn next_seq(&mut self) -> u16 {
        self.seq = (self.seq + 1) & 0x0fff;
        self.seq
    }
}

impl Scene {
    fn new(seed: u64) -> Scene {
        Scene {
            rng: Rng::new(seed),
            pkts: Vec::new(),
            expected: Vec::new(),
        }
    }
    fn push(&mut self, ts: f64, frame: Vec<u8>, signal: i8) {
        self.pkts.push(Pkt {
            ts,
            frame,
            c: Capt {
                signal,
                ..Capt::default()
            },
        });
    }
    fn new_ap(&mut self) -> Ap {
        let mac = self.rng.mac();
        let seq = 1000 + self.rng.below(2000) as u16;
        let signal = -40 - self.rng.below(15) as i8;
        Ap { mac, seq, signal }
    }
    /// Beacons every 102.4 ms plus some data traffic with `stas`, from `t0` to `t1`.
    fn background(
        &mut self,
        ap: &mut Ap,
        stas: &[Mac],
        t0: f64,
        t1: f64,
        ssid: &str,
        rsn: Option<u16>,
    ) {
        let mut t = t0;
        let mut tsf = 1_000_000u64;
        while t < t1 {
            let seq = ap.next_seq();
            let jitter = (self.rng.below(3) as i8) - 1;
            self.push(t, beacon(ap.mac, seq, ssid, rsn, tsf), ap.signal + jitter);
            for (i, sta) in stas.iter().enumerate() {
                if self.rng.below(2) == 0 {
                    let dt = 0.01 + 0.01 * i as f64;
                    let seq = ap.next_seq();
                    let len = 60 + self.rng.below(400) as usize;
                    self.push(
                        t + dt,
                        data(false, *sta, ap.mac, ap.mac, seq, len),
                        ap.signal,
                    );
                    self.push(t + dt + 0.0001, ack(ap.mac), -60);
                }
            }
            t += 0.1024;
            tsf += 102_400;
        }
    }
    fn expect(&mut self, kind: AttackKind, bssid: Mac, target: Mac, frames: u64) {
        self.expected.push(ExpectedAttack {
            kind,
            bssid: mac_to_string(&bssid),
            target: mac_to_string(&target),
            broadcast: target == BROADCAST,
            frames,
        });
    }

    /// aireplay-ng directed deauthentication: `bursts` x 64 pairs.
    fn aireplay(&mut self, ap: &Ap, sta: Mac, t0: f64, bursts: u32) -> u64 {
        let mut t = t0;
        let mut n = 0;
        for _ in 0..bursts {
            for k in 0..64u16 {
                self.push(
                    t,
                    disconnect(12, sta, ap.mac, ap.mac, 2 * k, 7, 314, false),
                    -28,
                );
                self.push(
                    t + 0.0005,
                    disconnect(12, ap.mac, sta, ap.mac, 2 * k + 1, 7, 314, false),
                    -28,
                );
                t += 0.002;
                n += 2;
            }
            // the station tries to come back between bursts
            self.push(t + 0.05, auth(sta, ap.mac, 100 + n as u16), -50);
            t += 0.18;
        }
        n
    }
}

fn build(kind: CaseKind, seed: u64) -> Scene {
    use AttackKind::*;
    let mut s = Scene::new(seed);
    match kind {
        CaseKind::AireplayDirected | CaseKind::DuplicatedAireplay => {
            let mut ap = s.new_ap();
            let sta = s.rng.mac();
            let other = s.rng.mac();
            s.background(&mut ap, &[sta, other], T0, T0 + 8.0, "home", Some(0x0000));
            let n = s.aireplay(&ap, sta, T0 + 3.0, 3);
            s.expect(Deauth, ap.mac, sta, n);
        }
        CaseKind::MdkBroadcast => {
            let mut ap = s.new_ap();
            let stas = [s.rng.mac(), s.rng.mac()];
            s.background(&mut ap, &stas, T0, T0 + 6.0, "cafe", None);
            let mut seq = s.rng.below(4096) as u16;
            for i in 0..1000u32 {
                let t = T0 + 2.0 + f64::from(i) * 0.002;
                seq = (seq + 1) & 0x0fff;
                s.push(
                    t,
                    disconnect(12, BROADCAST, ap.mac, ap.mac, seq, 1, 0, false),
                    -31,
                );
            }
            s.expect(Deauth, ap.mac, BROADCAST, 1000);
        }
        CaseKind::MixedFlood => {
            let mut ap = s.new_ap();
            let stas = [s.rng.mac(), s.rng.mac()];
            s.background(&mut ap, &stas, T0, T0 + 6.0, "office", Some(0x0000));
            let mut seq = s.rng.below(4096) as u16;
            for (j, sta) in stas.iter().enumerate() {
                for i in 0..300u32 {
                    let t = T0 + 2.0 + f64::from(i) * 0.005 + j as f64 * 0.0013;
                    seq = (seq + 1) & 0x0fff;
                    let sub = if i % 2 == 0 { 12 } else { 10 };
                    let reason = 1 + s.rng.below(8) as u16;
                    s.push(
                        t,
                        disconnect(sub, *sta, ap.mac, ap.mac, seq, reason, 0, false),
                        -33,
                    );
                }
                s.expect(Both, ap.mac, *sta, 300);
            }
        }
        CaseKind::RandomSourceBroadcast => {
            let mut ap = s.new_ap();
            let stas = [s.rng.mac()];
            s.background(&mut ap, &stas, T0, T0 + 5.0, "shop", None);
            for i in 0..400u32 {
                let t = T0 + 2.0 + f64::from(i) * 0.0025;
                let tx = s.rng.mac();
                let seq = s.rng.below(4096) as u16;
                s.push(
                    t,
                    disconnect(12, BROADCAST, tx, ap.mac, seq, 3, 0, false),
                    -30,
                );
            }
            s.expect(Deauth, ap.mac, BROADCAST, 400);
        }
        CaseKind::SlowSustained => {
            let mut ap = s.new_ap();
            let sta = s.rng.mac();
            s.background(&mut ap, &[sta], T0, T0 + 35.0, "flat", Some(0x0000));
            let mut seq = s.rng.below(4096) as u16;
            for i in 0..60u32 {
                seq = (seq + 1) & 0x0fff;
                let t = T0 + 2.0 + f64::from(i) * 0.5;
                s.push(
                    t,
                    disconnect(12, sta, ap.mac, ap.mac, seq, 7, 0, false),
                    -29,
                );
            }
            s.expect(Deauth, ap.mac, sta, 60);
        }
        CaseKind::MfpNetworkAttack => {
            let mut ap = s.new_ap();
            let stas = [s.rng.mac(), s.rng.mac()];
            s.background(&mut ap, &stas, T0, T0 + 6.0, "secure", Some(0x00c0));
            let mut seq = s.rng.below(4096) as u16;
            for i in 0..300u32 {
                seq = (seq + 1) & 0x0fff;
                let t = T0 + 2.0 + f64::from(i) * 0.01;
                s.push(
                    t,
                    disconnect(12, BROADCAST, ap.mac, ap.mac, seq, 7, 0, false),
                    -35,
                );
            }
            s.expect(Deauth, ap.mac, BROADCAST, 300);
        }
        CaseKind::ClientLeaving | CaseKind::DuplicatedBenign => {
            let mut ap = s.new_ap();
            let stas = [s.rng.mac(), s.rng.mac(), s.rng.mac()];
            s.background(&mut ap, &stas, T0, T0 + 10.0, "home", Some(0x0080));
            // station 0 leaves: disassoc reason 8, retried twice
            let seq = 200 + s.rng.below(1000) as u16;
            let [s0, s1, s2] = stas;
            for r in 0..3 {
                let t = T0 + 3.0 + f64::from(r) * 0.0015;
                s.push(
                    t,
                    disconnect(10, ap.mac, s0, ap.mac, seq, 8, 314, r > 0),
                    -55,
                );
            }
            // station 1 leaves: deauth reason 3
            s.push(
                T0 + 5.0,
                disconnect(12, ap.mac, s1, ap.mac, seq + 7, 3, 314, false),
                -60,
            );
            // station 2 is switched off: deauth reason 3, then the AP confirms, reason 2
            s.push(
                T0 + 7.0,
                disconnect(12, ap.mac, s2, ap.mac, seq + 40, 3, 314, false),
                -58,
            );
            let aseq = ap.next_seq();
            s.push(
                T0 + 7.01,
                disconnect(12, s2, ap.mac, ap.mac, aseq, 2, 314, false),
                ap.signal,
            );
            if kind == CaseKind::DuplicatedBenign {
                // AP ageing out two more, too
                for (i, sta) in [s0, s1].iter().enumerate() {
                    let aseq = ap.next_seq();
                    s.push(
                        T0 + 9.0 + i as f64 * 0.1,
                        disconnect(12, *sta, ap.mac, ap.mac, aseq, 4, 314, false),
                        ap.signal,
                    );
                }
            }
        }
        CaseKind::ApAgeing => {
            let mut ap = s.new_ap();
            let stas: Vec<Mac> = (0..6).map(|_| s.rng.mac()).collect();
            s.background(&mut ap, &stas, T0, T0 + 8.0, "home", Some(0x0000));
            for (i, sta) in stas.iter().enumerate() {
                let seq = ap.next_seq();
                let t = T0 + 4.0 + i as f64 * 0.05;
                for r in 0..7 {
                    s.push(
                        t + f64::from(r) * 0.0012,
                        disconnect(12, *sta, ap.mac, ap.mac, seq, 4, 314, r > 0),
                        ap.signal,
                    );
                }
            }
        }
        CaseKind::Roaming => {
            let mut ap1 = s.new_ap();
            let mut ap2 = s.new_ap();
            let sta = s.rng.mac();
            s.background(&mut ap1, &[], T0, T0 + 12.0, "corp", Some(0x0080));
            s.background(&mut ap2, &[], T0 + 0.05, T0 + 12.0, "corp", Some(0x0080));
            let mut sseq = s.rng.below(4096) as u16;
            for i in 0..4 {
                let t = T0 + 1.0 + f64::from(i) * 2.5;
                let (from, to) = if i % 2 == 0 {
                    (&ap1, &ap2)
                } else {
                    (&ap2, &ap1)
                };
                sseq = (sseq + 3) & 0x0fff;
                s.push(
                    t,
                    disconnect(12, from.mac, sta, from.mac, sseq, 3, 314, false),
                    -60,
                );
                s.push(t + 0.01, auth(sta, to.mac, sseq + 1), -60);
            }
        }
        CaseKind::ApRestart => {
            let mut ap = s.new_ap();
            let stas = [s.rng.mac(), s.rng.mac()];
            s.background(&mut ap, &stas, T0, T0 + 3.0, "home", None);
            for i in 0..3 {
                let seq = ap.next_seq();
                s.push(
                    T0 + 3.05 + f64::from(i) * 0.001,
                    disconnect(12, BROADCAST, ap.mac, ap.mac, seq, 3, 0, false),
                    ap.signal,
                );
            }
            ap.seq = 0;
            s.background(&mut ap, &stas, T0 + 6.0, T0 + 9.0, "home", None);
        }
        CaseKind::ProtectedMfp => {
            let mut ap = s.new_ap();
            let stas: Vec<Mac> = (0..5).map(|_| s.rng.mac()).collect();
            s.background(&mut ap, &stas, T0, T0 + 6.0, "secure", Some(0x00c0));
            for (i, sta) in stas.iter().enumerate() {
                let seq = ap.next_seq();
                let mut rng = s.rng.clone();
                let f = protected_disconnect(12, *sta, ap.mac, ap.mac, seq, &mut rng);
                s.rng = rng;
                s.push(T0 + 3.0 + i as f64 * 0.002, f, ap.signal);
            }
            for i in 0..3u64 {
                let seq = ap.next_seq();
                let mut rng = s.rng.clone();
                let f = mmie_disconnect(12, ap.mac, seq, 3, 100 + i, &mut rng);
                s.rng = rng;
                s.push(T0 + 3.1 + i as f64 * 0.001, f, ap.signal);
            }
        }
        CaseKind::BadFcsNoise => {
            let mut ap = s.new_ap();
            let sta = s.rng.mac();
            s.background(&mut ap, &[sta], T0, T0 + 5.0, "home", None);
            let mut seq = s.rng.below(4096) as u16;
            for i in 0..40u32 {
                seq = (seq + 1) & 0x0fff;
                s.pkts.push(Pkt {
                    ts: T0 + 2.0 + f64::from(i) * 0.01,
                    frame: disconnect(12, sta, ap.mac, ap.mac, seq, 7, 314, false),
                    c: Capt {
                        signal: -80,
                        bad_fcs: true,
                        ..Capt::default()
                    },
                });
            }
            // one genuine, good-FCS deauth
            s.push(
                T0 + 4.0,
                disconnect(12, sta, ap.mac, ap.mac, ap.seq + 1, 4, 314, false),
                ap.signal,
            );
            for p in s.pkts.iter_mut() {
                p.c.fcs = true;
            }
        }
        CaseKind::BusyNormal => {
            let mut ap = s.new_ap();
            let stas: Vec<Mac> = (0..30).map(|_| s.rng.mac()).collect();
            let few: Vec<Mac> = stas.iter().take(4).copied().collect();
            s.background(&mut ap, &few, T0, T0 + 60.0, "busy", Some(0x0080));
            for sta in &stas {
                let t = T0 + 1.0 + s.rng.below(58_000) as f64 / 1000.0;
                let reason = match s.rng.below(3) {
                    0 => 3u16,
                    1 => 8,
                    _ => 4,
                };
                let seq = s.rng.below(4096) as u16;
                if reason == 4 {
                    let aseq = ap.next_seq();
                    s.push(
                        t,
                        disconnect(12, *sta, ap.mac, ap.mac, aseq, 4, 314, false),
                        ap.signal,
                    );
                } else {
                    let sub = if reason == 8 { 10 } else { 12 };
                    s.push(
                        t,
                        disconnect(sub, ap.mac, *sta, ap.mac, seq, reason, 314, false),
                        -60,
                    );
                }
                s.push(t + 1.5, auth(*sta, ap.mac, seq + 1), -60);
            }
        }
    }
    s.pkts.sort_by(|a, b| a.ts.total_cmp(&b.ts));
    if matches!(
        kind,
        CaseKind::DuplicatedAireplay | CaseKind::DuplicatedBenign
    ) {
        let mut doubled = Vec::with_capacity(s.pkts.len() * 2);
        for p in s.pkts {
            let copy = Pkt {
                ts: p.ts + 0.00003,
                frame: p.frame.clone(),
                c: Capt {
                    tx_echo: true,
                    ..p.c
                },
            };
            doubled.push(p);
            doubled.push(copy);
        }
        s.pkts = doubled;
    }
    s
}

/// Write scenario `kind` to `path`; returns the attacks a correct detector reports.
pub fn write_case(
    kind: CaseKind,
    path: &Path,
    format: Format,
    link: Link,
    seed: u64,
) -> io::Result<Vec<ExpectedAttack>> {
    let scene = build(kind, seed);
    let mut w = CaptureWriter::create(path, format, link)?;
    for p in &scene.pkts {
        w.write(p.ts, &p.frame, p.c)?;
    }
    w.finish()?;
    Ok(scene.expected)
}

/// The attacks a correct detector reports for `case` (without writing anything).
pub fn expected(case: &Case) -> Vec<ExpectedAttack> {
    build(case.kind, case.seed).expected
}

/// Write every corpus case into `dir`; returns (path, expected attacks) per case.
pub fn write_corpus(dir: &Path) -> io::Result<Vec<(std::path::PathBuf, Vec<ExpectedAttack>)>> {
    let mut out = Vec::new();
    for c in corpus() {
        let path = dir.join(c.file_name());
        let exp = write_case(c.kind, &path, c.format, c.link, c.seed)?;
        out.push((path, exp));
    }
    Ok(out)
}

/// Summary of [`write_large`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LargeInfo {
    /// Records written.
    pub frames: u64,
    /// Deauthentication/disassociation frames among them.
    pub disconnect_frames: u64,
    /// Attacks a correct detector reports.
    pub attacks: u64,
}

/// Write a large radiotap pcap of `frames` records for benchmarks: 20 APs beaconing,
/// data frames (60..460 byte bodies) and ACKs, and every 200,000 frames a 2,000-frame
/// broadcast deauthentication flood (about 1% of the frames). Streams to disk.
pub fn write_large(path: &Path, frames: u64) -> io::Result<LargeInfo> {
    let mut rng = Rng::new(0x5eed);
    let mut w = CaptureWriter::create(path, Format::Pcap, Link::Radiotap)?;
    let aps: Vec<Mac> = (0..20).map(|_| rng.mac()).collect();
    let stas: Vec<Mac> = (0..200).map(|_| rng.mac()).collect();
    let mut seqs = [0u16; 20];
    let mut info = LargeInfo {
        frames: 0,
        disconnect_frames: 0,
        attacks: 0,
    };
    let mut t = T0;
    let mut i = 0u64;
    let mut flood_left = 0u32;
    let mut flood_ap = 0usize;
    let mut flood_seq = 0u16;
    while i < frames {
        t += 0.00002;
        let c = Capt {
            signal: -40 - (i % 30) as i8,
            ..Capt::default()
        };
        if i % 200_000 == 100_000 && frames - i > 4_000 {
            flood_left = 2_000;
            flood_ap = rng.below(20) as usize;
            flood_seq = rng.below(4096) as u16;
            info.attacks += 1;
        }
        let ap_i = (i % 20) as usize;
        let ap = aps.get(ap_i).copied().unwrap_or([2; 6]);
        let seq = seqs.get_mut(ap_i).map(|s| {
            *s = (*s + 1) & 0x0fff;
            *s
        });
        let seq = seq.unwrap_or(0);
        if flood_left > 0 && i.is_multiple_of(4) {
            flood_left -= 1;
            flood_seq = (flood_seq + 1) & 0x0fff;
            let fap = aps.get(flood_ap).copied().unwrap_or([2; 6]);
            w.write(
                t,
                &disconnect(12, BROADCAST, fap, fap, flood_seq, 7, 314, false),
                c,
            )?;
            info.disconnect_frames += 1;
        } else {
            match i % 50 {
                0 => w.write(t, &beacon(ap, seq, "bench", Some(0x0080), i), c)?,
                1..=35 => {
                    let sta = stas.get((i % 200) as usize).copied().unwrap_or([4; 6]);
                    let len = 60 + (i.wrapping_mul(2_654_435_761) % 400) as usize;
                    w.write(t, &data(i.is_multiple_of(2), ap, sta, ap, seq, len), c)?
                }
                _ => w.write(t, &ack(ap), c)?,
            }
        }
        i += 1;
    }
    info.frames = w.records;
    w.finish()?;
    Ok(info)
}
