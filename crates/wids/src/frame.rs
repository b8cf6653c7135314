//! IEEE 802.11 management frame parsing: just what the detector needs.
//!
//! All reads are bounds-checked (`get`); a short or odd frame yields `None` or a frame
//! with fewer fields, never a panic.

/// A MAC address.
pub type Mac = [u8; 6];

/// The broadcast address.
pub const BROADCAST: Mac = [0xff; 6];

/// Management frame subtypes we care about.
pub mod subtype {
    /// Association request.
    pub const ASSOC_REQ: u8 = 0;
    /// Reassociation request.
    pub const REASSOC_REQ: u8 = 2;
    /// Beacon.
    pub const BEACON: u8 = 8;
    /// Disassociation.
    pub const DISASSOC: u8 = 10;
    /// Authentication.
    pub const AUTH: u8 = 11;
    /// Deauthentication.
    pub const DEAUTH: u8 = 12;
}

/// Frame Control flag: Retry.
pub const FC_RETRY: u8 = 0x08;
/// Frame Control flag: Protected Frame.
pub const FC_PROTECTED: u8 = 0x40;
/// Frame Control flag: +HTC/Order.
pub const FC_ORDER: u8 = 0x80;

/// Element id of the Management MIC element (802.11w BIP).
pub const EID_MMIE: u8 = 76;
/// Element id of the RSN element.
pub const EID_RSN: u8 = 48;
/// Element id of the SSID element.
pub const EID_SSID: u8 = 0;

/// Format a MAC address as `aa:bb:cc:dd:ee:ff`.
pub fn mac_to_string(m: &Mac) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// Group (multicast/broadcast) address bit.
pub fn is_group(m: &Mac) -> bool {
    m[0] & 1 != 0
}

/// The common 24-byte management header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MgmtHeader {
    /// Management subtype (0..=15).
    pub subtype: u8,
    /// The Frame Control flags byte.
    pub flags: u8,
    /// Duration/ID field in microseconds.
    pub duration: u16,
    /// Receiver (addr1).
    pub addr1: Mac,
    /// Transmitter (addr2).
    pub addr2: Mac,
    /// BSSID (addr3).
    pub addr3: Mac,
    /// Sequence number (12 bits).
    pub seq: u16,
    /// Fragment number (4 bits).
    pub frag: u8,
}

impl MgmtHeader {
    /// The Protected bit.
    pub fn protected(&self) -> bool {
        self.flags & FC_PROTECTED != 0
    }
    /// The Retry bit.
    pub fn retry(&self) -> bool {
        self.flags & FC_RETRY != 0
    }
}

/// A parsed management frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mgmt<'a> {
    /// A beacon.
    Beacon(Beacon<'a>),
    /// A deauthentication or disassociation frame.
    Disconnect(Disconnect),
    /// Authentication / (re)association request: a station (re)joining.
    Join,
    /// Any other management frame.
    Other,
}

/// Beacon contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Beacon<'a> {
    /// SSID bytes (may be empty / hidden).
    pub ssid: &'a [u8],
    /// RSN capabilities, when an RSN element with capabilities is present.
    pub rsn_caps: Option<u16>,
}

impl Beacon<'_> {
    /// RSN says management frame protection is required (MFPR, bit 6).
    pub fn mfp_required(&self) -> bool {
        self.rsn_caps.is_some_and(|c| c & 0x0040 != 0)
    }
    /// RSN says management frame protection is capable (MFPC, bit 7).
    pub fn mfp_capable(&self) -> bool {
        self.rsn_caps.is_some_and(|c| c & 0x0080 != 0)
    }
}

/// Deauthentication / disassociation body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disconnect {
    /// Reason code; `None` when the Protected bit is set (the body is encrypted) or the
    /// body is too short.
    pub reason: Option<u16>,
    /// A Management MIC element (BIP, 802.11w) was found on a group-addressed frame.
    pub has_mmie: bool,
}

/// A management frame: header plus body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Header.
    pub hdr: MgmtHeader,
    /// Body.
    pub body: Mgmt<'a>,
}

fn mac_at(b: &[u8], off: usize) -> Option<Mac> {
    let s = b.get(off..off + 6)?;
    let mut m = [0u8; 6];
    m.copy_from_slice(s);
    Some(m)
}

/// Parse a management frame header. Returns `None` for non-management frames, protocol
/// versions other than 0 and frames shorter than 24 bytes.
#[inline]
pub fn parse_header(f: &[u8]) -> Option<(MgmtHeader, &[u8])> {
    let fc0 = *f.first()?;
    // protocol version 0, type 0 (management)
    if fc0 & 0x0f != 0 {
        return None;
    }
    let flags = *f.get(1)?;
    let duration = u16::from_le_bytes([*f.get(2)?, *f.get(3)?]);
    let sc = u16::from_le_bytes([*f.get(22)?, *f.get(23)?]);
    let hdr = MgmtHeader {
        subtype: fc0 >> 4,
        flags,
        duration,
        addr1: mac_at(f, 4)?,
        addr2: mac_at(f, 10)?,
        addr3: mac_at(f, 16)?,
        seq: sc >> 4,
        frag: (sc & 0x0f) as u8,
    };
    // +HTC: a 4-byte HT Control field follows the header in management frames.
    let body_off = if flags & FC_ORDER != 0 { 28 } else { 24 };
    let body = f.get(body_off..).unwrap_or(&[]);
    Some((hdr, body))
}

/// Iterate over information elements: (id, data). Stops at the first malformed element.
pub fn elements(mut b: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let id = *b.first()?;
        let len = usize::from(*b.get(1)?);
        let data = b.get(2..2 + len)?;
        b = b.get(2 + len..).unwrap_or(&[]);
        Some((id, data))
    })
}

fn rsn_capabilities(rsn: &[u8]) -> Option<u16> {
    // version(2) group cipher(4) pairwise count(2) + 4n, akm count(2) + 4n, caps(2)
    let mut off = 6usize;
    let pc = usize::from(u16::from_le_bytes([*rsn.get(off)?, *rsn.get(off + 1)?]));
    off += 2 + 4 * pc;
    let ac = usize::from(u16::from_le_bytes([*rsn.get(off)?, *rsn.get(off + 1)?]));
    off += 2 + 4 * ac;
    Some(u16::from_le_bytes([*rsn.get(off)?, *rsn.get(off + 1)?]))
}

/// Parse a management frame (header and the bodies the detector uses).
pub fn parse_frame(f: &[u8]) -> Option<Frame<'_>> {
    let (hdr, body) = parse_header(f)?;
    let parsed = match hdr.subtype {
        subtype::BEACON => {
            // timestamp(8) interval(2) capability(2), then elements
            let ies = body.get(12..).unwrap_or(&[]);
            let mut ssid: &[u8] = &[];
            let mut rsn_caps = None;
            for (id, data) in elements(ies) {
                match id {
                    EID_SSID => ssid = data,
                    EID_RSN => rsn_caps = rsn_capabilities(data),
                    _ => {}
                }
            }
            Mgmt::Beacon(Beacon { ssid, rsn_caps })
        }
        subtype::DEAUTH | subtype::DISASSOC => {
            if hdr.protected() {
                // Unicast robust management frame under 802.11w: the body is encrypted
                // (CCMP header + ciphertext + MIC). The reason code cannot be read.
                Mgmt::Disconnect(Disconnect {
                    reason: None,
                    has_mmie: false,
                })
            } else {
                let reason = match (body.first(), body.get(1)) {
                    (Some(&a), Some(&b)) => Some(u16::from_le_bytes([a, b])),
                    _ => None,
                };
                let has_mmie = is_group(&hdr.addr1)
                    && elements(body.get(2..).unwrap_or(&[]))
                        .any(|(id, d)| id == EID_MMIE && (d.len() == 16 || d.len() == 24));
                Mgmt::Disconnect(Disconnect { reason, has_mmie })
            }
        }
        subtype::AUTH | subtype::ASSOC_REQ | subtype::REASSOC_REQ => Mgmt::Join,
        _ => Mgmt::Other,
    };
    Some(Frame { hdr, body: parsed })
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;

    fn hdr(subtype: u8, flags: u8, a1: Mac, a2: Mac, a3: Mac, seq: u16) -> Vec<u8> {
        let mut v = vec![subtype << 4, flags, 0x3a, 0x01];
        v.extend_from_slice(&a1);
        v.extend_from_slice(&a2);
        v.extend_from_slice(&a3);
        v.extend_from_slice(&(seq << 4).to_le_bytes());
        v
    }

    const AP: Mac = [2, 0, 0, 0, 0, 1];
    const STA: Mac = [2, 0, 0, 0, 0, 2];

    #[test]
    fn deauth_reason_and_seq() {
        let mut f = hdr(12, 0, STA, AP, AP, 1234);
        f.extend_from_slice(&7u16.to_le_bytes());
        let fr = parse_frame(&f).expect("frame");
        assert_eq!(fr.hdr.seq, 1234);
        assert_eq!(fr.hdr.duration, 314);
        assert_eq!(
            fr.body,
            Mgmt::Disconnect(Disconnect {
                reason: Some(7),
                has_mmie: false
            })
        );
    }

    #[test]
    fn protected_unicast_has_no_reason() {
        let mut f = hdr(10, FC_PROTECTED, STA, AP, AP, 5);
        f.extend_from_slice(&[0x07, 0x00, 1, 2, 3, 4, 5, 6, 7, 8]);
        let fr = parse_frame(&f).expect("frame");
        assert_eq!(
            fr.body,
            Mgmt::Disconnect(Disconnect {
                reason: None,
                has_mmie: false
            })
        );
    }

    #[test]
    fn broadcast_with_mmie() {
        let mut f = hdr(12, 0, BROADCAST, AP, AP, 5);
        f.extend_from_slice(&3u16.to_le_bytes());
        f.push(EID_MMIE);
        f.push(16);
        f.extend_from_slice(&[0u8; 16]);
        let fr = parse_frame(&f).expect("frame");
        assert_eq!(
            fr.body,
            Mgmt::Disconnect(Disconnect {
                reason: Some(3),
                has_mmie: true
            })
        );
    }

    #[test]
    fn beacon_rsn_mfp() {
        let mut f = hdr(8, 0, BROADCAST, AP, AP, 100);
        f.extend_from_slice(&[0u8; 12]);
        f.extend_from_slice(&[0, 4, b'h', b'o', b'm', b'e']);
        let rsn: Vec<u8> = vec![
            1, 0, 0x00, 0x0f, 0xac, 4, 1, 0, 0x00, 0x0f, 0xac, 4, 1, 0, 0x00, 0x0f, 0xac, 2, 0xc0,
            0x00,
        ];
        f.push(48);
        f.push(rsn.len() as u8);
        f.extend_from_slice(&rsn);
        let fr = parse_frame(&f).expect("frame");
        match fr.body {
            Mgmt::Beacon(b) => {
                assert_eq!(b.ssid, b"home");
                assert!(b.mfp_required());
                assert!(b.mfp_capable());
            }
            other => panic!("not a beacon: {other:?}"),
        }
    }

    #[test]
    fn short_and_non_mgmt() {
        assert!(parse_frame(&[]).is_none());
        assert!(parse_frame(&[0xc0, 0, 0]).is_none());
        assert!(parse_frame(&[0x08, 0x01, 0, 0, 0, 0]).is_none()); // data frame
        let f = hdr(12, 0, STA, AP, AP, 1);
        // deauth with no body: reason unknown
        let fr = parse_frame(&f).expect("frame");
        assert_eq!(
            fr.body,
            Mgmt::Disconnect(Disconnect {
                reason: None,
                has_mmie: false
            })
        );
    }
}
