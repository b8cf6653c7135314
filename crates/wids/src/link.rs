//! Link-layer decapsulation: radiotap (linktype 127), PPI (192) and plain 802.11 (105).
//!
//! Only what the detector needs is parsed: the radiotap Flags field (FCS at end, bad FCS),
//! the antenna signal in dBm and the TSFT. Every access is bounds-checked; malformed
//! headers yield `None`, never a panic.

/// Linktype of plain IEEE 802.11 frames.
pub const LINKTYPE_IEEE802_11: i32 = 105;
/// Linktype of IEEE 802.11 frames behind a radiotap header.
pub const LINKTYPE_RADIOTAP: i32 = 127;
/// Linktype of IEEE 802.11 frames behind a PPI header.
pub const LINKTYPE_PPI: i32 = 192;

/// Radiotap Flags: the frame includes the FCS at its end.
pub const RT_FLAG_FCS_AT_END: u8 = 0x10;
/// Radiotap Flags: the frame failed the FCS check.
pub const RT_FLAG_BAD_FCS: u8 = 0x40;

/// What the radiotap header said about one frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RadiotapInfo {
    /// Total header length (`it_len`): the 802.11 frame starts here.
    pub len: usize,
    /// The Flags field, when present.
    pub flags: Option<u8>,
    /// Antenna signal in dBm, when present.
    pub signal_dbm: Option<i8>,
    /// The TSFT (microseconds of the receiver's timer), when present.
    pub tsft: Option<u64>,
}

/// Parse a radiotap header. Returns `None` when the header is malformed or longer than
/// the data.
pub fn parse_radiotap(data: &[u8]) -> Option<RadiotapInfo> {
    // it_version (must be 0), it_pad, it_len (LE u16), it_present (LE u32) ...
    if *data.first()? != 0 {
        return None;
    }
    let len = usize::from(u16::from_le_bytes([*data.get(2)?, *data.get(3)?]));
    if len < 8 || len > data.len() {
        return None;
    }
    let hdr = data.get(..len)?;
    let word = |off: usize| -> Option<u32> {
        Some(u32::from_le_bytes([
            *hdr.get(off)?,
            *hdr.get(off + 1)?,
            *hdr.get(off + 2)?,
            *hdr.get(off + 3)?,
        ]))
    };
    let present0 = word(4)?;
    // Skip the extended present words (bit 31 = another word follows).
    let mut off = 8usize;
    let mut p = present0;
    let mut words = 1;
    while p & 0x8000_0000 != 0 {
        p = word(off)?;
        off += 4;
        words += 1;
        if words > 64 {
            return None;
        }
    }
    let mut info = RadiotapInfo {
        len,
        ..RadiotapInfo::default()
    };
    // The fields of the first (default radiotap) namespace come first, in bit order, each
    // aligned to its natural alignment relative to the start of the header. We only walk
    // bits 0..=5, so we only need the sizes of those fields.
    // (bit, align, size)
    const FIELDS: [(u32, usize, usize); 6] = [
        (0, 8, 8), // TSFT
        (1, 1, 1), // Flags
        (2, 1, 1), // Rate
        (3, 2, 4), // Channel
        (4, 1, 2), // FHSS
        (5, 1, 1), // dBm antenna signal
    ];
    for (bit, align, size) in FIELDS {
        if present0 & (1 << bit) == 0 {
            continue;
        }
        off = off.checked_add(align - 1)? / align * align;
        let field = hdr.get(off..off.checked_add(size)?)?;
        match bit {
            0 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(field);
                info.tsft = Some(u64::from_le_bytes(b));
            }
            1 => info.flags = field.first().copied(),
            5 => info.signal_dbm = field.first().map(|&v| v as i8),
            _ => {}
        }
        off += size;
    }
    Some(info)
}

/// One 802.11 frame taken out of its link-layer wrapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decapsulated<'a> {
    /// The 802.11 frame, without FCS when the wrapper said one was present.
    pub frame: &'a [u8],
    /// Antenna signal in dBm, when known.
    pub signal_dbm: Option<i8>,
}

/// Why a record yielded no frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Linktype we do not handle.
    UnsupportedLinktype,
    /// Malformed or truncated wrapper header.
    Malformed,
    /// The capture marked the frame as failing its FCS check.
    BadFcs,
}

/// Take the 802.11 frame out of one capture record.
pub fn decapsulate(linktype: i32, data: &[u8]) -> Result<Decapsulated<'_>, Skip> {
    match linktype {
        LINKTYPE_IEEE802_11 => Ok(Decapsulated {
            frame: data,
            signal_dbm: None,
        }),
        LINKTYPE_RADIOTAP => {
            let rt = parse_radiotap(data).ok_or(Skip::Malformed)?;
            let flags = rt.flags.unwrap_or(0);
            if flags & RT_FLAG_BAD_FCS != 0 {
                return Err(Skip::BadFcs);
            }
            let mut frame = data.get(rt.len..).ok_or(Skip::Malformed)?;
            if flags & RT_FLAG_FCS_AT_END != 0 {
                let keep = frame.len().checked_sub(4).ok_or(Skip::Malformed)?;
                frame = frame.get(..keep).ok_or(Skip::Malformed)?;
            }
            Ok(Decapsulated {
                frame,
                signal_dbm: rt.signal_dbm,
            })
        }
        LINKTYPE_PPI => decapsulate_ppi(data),
        _ => Err(Skip::UnsupportedLinktype),
    }
}

/// PPI: `pph_version u8, pph_flags u8, pph_len u16le, pph_dlt u32le`, then TLV fields
/// (`type u16le, len u16le, data`). Field type 2 (802.11-Common) carries flags
/// (0x0001 FCS present, 0x0004 FCS invalid) and the dBm antenna signal.
fn decapsulate_ppi(data: &[u8]) -> Result<Decapsulated<'_>, Skip> {
    let b = |i: usize| data.get(i).copied().ok_or(Skip::Malformed);
    if b(0)? != 0 {
        return Err(Skip::Malformed);
    }
    let len = usize::from(u16::from_le_bytes([b(2)?, b(3)?]));
    let dlt = u32::from_le_bytes([b(4)?, b(5)?, b(6)?, b(7)?]);
    if len < 8 || len > data.len() {
        return Err(Skip::Malformed);
    }
    if dlt != LINKTYPE_IEEE802_11 as u32 {
        return Err(Skip::UnsupportedLinktype);
    }
    let mut off = 8usize;
    let mut fcs = false;
    let mut signal = None;
    while off + 4 <= len {
        let ftype = u16::from_le_bytes([b(off)?, b(off + 1)?]);
        let flen = usize::from(u16::from_le_bytes([b(off + 2)?, b(off + 3)?]));
        let body = data.get(off + 4..off + 4 + flen).ok_or(Skip::Malformed)?;
        if ftype == 2 && flen >= 20 {
            let flags = u16::from_le_bytes([
                *body.get(8).ok_or(Skip::Malformed)?,
                *body.get(9).ok_or(Skip::Malformed)?,
            ]);
            if flags & 0x0004 != 0 {
                return Err(Skip::BadFcs);
            }
            fcs = flags & 0x0001 != 0;
            signal = body.get(18).map(|&v| v as i8);
        }
        off += 4 + flen;
    }
    let mut frame = data.get(len..).ok_or(Skip::Malformed)?;
    if fcs {
        let keep = frame.len().checked_sub(4).ok_or(Skip::Malformed)?;
        frame = frame.get(..keep).ok_or(Skip::Malformed)?;
    }
    Ok(Decapsulated {
        frame,
        signal_dbm: signal,
    })
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn radiotap_alignment_tsft_flags_signal() {
        // present: TSFT(0) Flags(1) Rate(2) Channel(3) signal(5)
        let present: u32 = 0b10_1111;
        let mut h = vec![0u8, 0, 0, 0];
        h.extend_from_slice(&present.to_le_bytes());
        h.extend_from_slice(&0x1122_3344_5566_7788u64.to_le_bytes()); // offset 8, aligned
        h.push(RT_FLAG_FCS_AT_END); // flags
        h.push(2); // rate
        h.extend_from_slice(&2437u16.to_le_bytes()); // channel at offset 18 (aligned 2)
        h.extend_from_slice(&0u16.to_le_bytes());
        h.push(0xc4); // -60 dBm
        let len = h.len() as u16;
        h[2..4].copy_from_slice(&len.to_le_bytes());
        let rt = parse_radiotap(&h).expect("parse");
        assert_eq!(rt.tsft, Some(0x1122_3344_5566_7788));
        assert_eq!(rt.flags, Some(RT_FLAG_FCS_AT_END));
        assert_eq!(rt.signal_dbm, Some(-60));
        assert_eq!(rt.len, h.len());
    }

    #[test]
    fn radiotap_extended_present_and_alignment_padding() {
        // word0: Flags + signal + ext; word1: something in another namespace, no ext.
        let w0: u32 = (1 << 1) | (1 << 5) | (1 << 31);
        let w1: u32 = 1 << 3;
        let mut h = vec![0u8, 0, 0, 0];
        h.extend_from_slice(&w0.to_le_bytes());
        h.extend_from_slice(&w1.to_le_bytes());
        h.push(RT_FLAG_BAD_FCS);
        h.push(0xd8); // -40
        let len = h.len() as u16;
        h[2..4].copy_from_slice(&len.to_le_bytes());
        let rt = parse_radiotap(&h).expect("parse");
        assert_eq!(rt.flags, Some(RT_FLAG_BAD_FCS));
        assert_eq!(rt.signal_dbm, Some(-40));
        let mut rec = h.clone();
        rec.extend_from_slice(&[0xc0, 0, 0, 0]);
        assert_eq!(decapsulate(LINKTYPE_RADIOTAP, &rec), Err(Skip::BadFcs));
    }

    #[test]
    fn radiotap_rejects_garbage() {
        assert_eq!(parse_radiotap(&[]), None);
        assert_eq!(parse_radiotap(&[1, 0, 8, 0, 0, 0, 0, 0]), None);
        assert_eq!(parse_radiotap(&[0, 0, 200, 0, 0, 0, 0, 0]), None);
        // ext bit set forever
        assert_eq!(
            parse_radiotap(&[0, 0, 12, 0, 0, 0, 0, 0x80, 0, 0, 0, 0x80]),
            None
        );
    }

    #[test]
    fn fcs_is_stripped() {
        let mut rec = vec![0u8, 0, 9, 0, 2, 0, 0, 0, RT_FLAG_FCS_AT_END];
        rec.extend_from_slice(&[0xc0, 0, 1, 2, 9, 9, 9, 9]);
        let d = decapsulate(LINKTYPE_RADIOTAP, &rec).expect("ok");
        assert_eq!(d.frame, &[0xc0, 0, 1, 2]);
    }

    #[test]
    fn ppi_common_field() {
        let mut rec = vec![0u8, 0, 0, 0];
        rec.extend_from_slice(&105u32.to_le_bytes());
        rec.extend_from_slice(&2u16.to_le_bytes());
        rec.extend_from_slice(&20u16.to_le_bytes());
        let mut common = [0u8; 20];
        common[8] = 0x01; // FCS present
        common[18] = 0xce; // -50
        rec.extend_from_slice(&common);
        let len = rec.len() as u16;
        rec[2..4].copy_from_slice(&len.to_le_bytes());
        rec.extend_from_slice(&[0xc0, 0, 7, 7, 1, 2, 3, 4]);
        let d = decapsulate(LINKTYPE_PPI, &rec).expect("ok");
        assert_eq!(d.frame, &[0xc0, 0, 7, 7]);
        assert_eq!(d.signal_dbm, Some(-50));
        rec[8 + 4 + 8] = 0x05;
        assert_eq!(decapsulate(LINKTYPE_PPI, &rec), Err(Skip::BadFcs));
    }
}
