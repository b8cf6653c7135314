//! Streaming pcap / pcapng reading in constant memory.
//!
//! Records are handed to a callback one at a time from a bounded buffer
//! ([`READ_BUFFER`] bytes). A truncated last record is treated as the end of the file.

use crate::WidsError;
use pcap_parser::pcapng::Block;
use pcap_parser::{create_reader, PcapBlockOwned, PcapError};
use std::io::Read;

/// Size of the streaming read buffer. A single record larger than this is an error.
pub const READ_BUFFER: usize = 1 << 20;

/// One record from a capture file.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// Capture time, Unix seconds.
    pub ts: f64,
    /// The record's linktype (per interface for pcapng).
    pub linktype: i32,
    /// The captured bytes.
    pub data: &'a [u8],
}

/// Counters from one pass over a capture.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Packet records seen.
    pub records: u64,
    /// The file ended inside a record (treated as end of file).
    pub truncated: bool,
}

#[derive(Clone, Copy)]
struct Iface {
    linktype: i32,
    resolution: u64,
    offset: i64,
}

fn legacy_linktype(network: i32) -> i32 {
    // The upper bits of the pcap header's linktype field may carry FCS information
    // (LT_FCS_DATAWITHFCS); the linktype is the low 28 bits.
    network & 0x0fff_ffff
}

/// Read a capture from `reader`, calling `f` for every packet record.
///
/// `name` is used in error messages only.
pub fn read_capture<R, F>(reader: R, name: &str, f: F) -> Result<ReadStats, WidsError>
where
    R: Read + Send,
    F: FnMut(&Record<'_>),
{
    read_capture_with_buffer(reader, name, READ_BUFFER, f)
}

/// [`read_capture`] with a chosen buffer size (the largest record that can be read).
pub fn read_capture_with_buffer<R, F>(
    reader: R,
    name: &str,
    buffer: usize,
    mut f: F,
) -> Result<ReadStats, WidsError>
where
    R: Read + Send,
    F: FnMut(&Record<'_>),
{
    let format_err = |msg: String| WidsError::Format {
        path: name.to_string(),
        msg,
    };
    let buffer = buffer.max(4096);
    let mut rdr = match create_reader(buffer, reader) {
        Ok(r) => r,
        Err(PcapError::Eof) => return Err(format_err("empty file".into())),
        Err(PcapError::Incomplete(_)) => {
            return Err(format_err("file too short for a capture header".into()))
        }
        Err(PcapError::HeaderNotRecognized) => {
            return Err(format_err(
                "not a pcap or pcapng file (or its header is truncated)".into(),
            ))
        }
        Err(e) => return Err(format_err(format!("cannot read header: {e:?}"))),
    };
    let mut stats = ReadStats::default();
    // legacy pcap state
    let mut legacy_linktype_v: i32 = 0;
    let mut legacy_nanos = false;
    // pcapng state: interfaces of the current section
    let mut ifaces: Vec<Iface> = Vec::new();
    // guard against a reader that never makes progress
    let mut stalls = 0u32;
    loop {
        match rdr.next() {
            Ok((offset, block)) => {
                stalls = 0;
                match block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        legacy_linktype_v = legacy_linktype(h.network.0);
                        legacy_nanos = h.is_nanosecond_precision();
                    }
                    PcapBlockOwned::Legacy(b) => {
                        stats.records += 1;
                        let frac = if legacy_nanos {
                            f64::from(b.ts_usec) / 1e9
                        } else {
                            f64::from(b.ts_usec) / 1e6
                        };
                        let caplen = b.caplen as usize;
                        let data = b.data.get(..caplen).unwrap_or(b.data);
                        f(&Record {
                            ts: f64::from(b.ts_sec) + frac,
                            linktype: legacy_linktype_v,
                            data,
                        });
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => ifaces.clear(),
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        if ifaces.len() < 4096 {
                            ifaces.push(Iface {
                                linktype: idb.linktype.0,
                                resolution: idb.ts_resolution().unwrap_or(1_000_000).max(1),
                                offset: idb.ts_offset(),
                            });
                        }
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        stats.records += 1;
                        if let Some(iface) = ifaces.get(epb.if_id as usize) {
                            let ts_raw = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                            let secs = (ts_raw / iface.resolution) as f64;
                            let frac = (ts_raw % iface.resolution) as f64 / iface.resolution as f64;
                            let ts = secs + frac + iface.offset as f64;
                            let caplen = epb.caplen as usize;
                            let data = epb.data.get(..caplen).unwrap_or(epb.data);
                            f(&Record {
                                ts,
                                linktype: iface.linktype,
                                data,
                            });
                        }
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                        stats.records += 1;
                        if let Some(iface) = ifaces.first() {
                            let len = (spb.origlen as usize).min(spb.data.len());
                            let data = spb.data.get(..len).unwrap_or(spb.data);
                            f(&Record {
                                ts: 0.0,
                                linktype: iface.linktype,
                                data,
                            });
                        }
                    }
                    PcapBlockOwned::NG(_) => {}
                }
                rdr.consume(offset);
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::UnexpectedEof) => {
                // The file ends inside a record: that record is the end of the file.
                stats.truncated = true;
                break;
            }
            Err(PcapError::Incomplete(_)) => {
                stalls += 1;
                if stalls > 1_000 {
                    stats.truncated = true;
                    break;
                }
                rdr.refill()
                    .map_err(|e| format_err(format!("read error: {e:?}")))?;
            }
            Err(PcapError::BufferTooSmall) => {
                return Err(format_err(format!(
                    "record larger than {buffer} bytes after {} records",
                    stats.records
                )))
            }
            Err(e) => {
                return Err(format_err(format!(
                    "malformed record after {} records: {e:?}",
                    stats.records
                )))
            }
        }
    }
    Ok(stats)
}
