//! The on-disk outbox: every durable record (event, frame) the device has signed and not
//! yet seen acknowledged by the hub.
//!
//! Why it exists: laws 5 and 6. A jammed link or a power cut must not lose a door
//! opening or the footage of it. Records are written here *before* they are sent, and
//! only an `ack` from the hub (or the ring limits, for frames) removes them.
//!
//! Layout: one directory per [`Space`] with append-only segment files
//! `seg-{first_seq:020}.log`. Each record is framed as
//! `magic "TOB1" | len u32 BE | crc32(payload) u32 BE | payload`, payload =
//! `seq u64 BE | time_ms i64 BE | flags u8 | data` where data is the exact signed
//! message. On open every segment is scanned; a record whose CRC fails is skipped (the
//! scanner re-synchronises on the next magic), and a torn tail of the newest segment is
//! cut off, so a power cut costs at most the record being written. Acknowledged ranges
//! are kept in `acks.json` (rewritten atomically; losing it only means re-sending
//! records the hub already has, which is harmless). The next sequence number is the
//! larger of `next_seq` (written when a segment is created) and the newest record on
//! disk plus one, so numbers never repeat across restarts.

use crate::crc32::crc32;
use crate::fsutil::{sync_dir, write_atomic};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use threshold_proto::body::{Ack, OutboxStats};

const REC_MAGIC: [u8; 4] = *b"TOB1";
const FRAME_HEADER: usize = 12;
const PAYLOAD_HEADER: usize = 17;
/// Largest payload accepted when scanning (a maximal message plus the payload header).
const MAX_PAYLOAD: usize = threshold_proto::MAX_MESSAGE_BYTES + PAYLOAD_HEADER;
/// Flag bit: the record should be uploaded (a frame nobody asked for stays local).
const FLAG_UPLOAD: u8 = 1;

/// The two record logs of a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Space {
    Events,
    Frames,
}

impl Space {
    pub fn name(self) -> &'static str {
        match self {
            Space::Events => "events",
            Space::Frames => "frames",
        }
    }
}

/// Limits and durability of one space.
#[derive(Clone, Debug)]
pub struct SpaceConfig {
    /// Evict the oldest segments when the space uses more than this on disk.
    pub max_bytes: u64,
    /// Evict segments whose newest record is older than this (frames only).
    pub max_age_ms: Option<i64>,
    /// Start a new segment file once the current one reaches this size.
    pub segment_bytes: u64,
    /// `None`: fsync after every append (events). `Some(ms)`: fsync at most this often
    /// (frames: a power cut may lose the last fraction of a second of video).
    pub fsync_interval_ms: Option<i64>,
}

impl SpaceConfig {
    pub fn events() -> Self {
        SpaceConfig {
            max_bytes: 64 << 20,
            max_age_ms: None,
            segment_bytes: 1 << 20,
            fsync_interval_ms: None,
        }
    }
    pub fn frames() -> Self {
        SpaceConfig {
            max_bytes: 256 << 20,
            max_age_ms: Some(60 * 60 * 1000),
            segment_bytes: 4 << 20,
            fsync_interval_ms: Some(1000),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("record of {0} bytes is larger than the outbox accepts")]
    TooLarge(usize),
    #[error("append with seq {got}, expected {expected}")]
    OutOfOrder { got: u64, expected: u64 },
}

/// Counters for operators and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub appended: u64,
    pub write_errors: u64,
    /// Unacknowledged records meant for upload that the ring limits dropped.
    pub evicted_unacked: u64,
    /// Records found corrupt on disk and dropped.
    pub corrupt_dropped: u64,
}

/// What an append caused besides storing the record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppendReport {
    /// Unacknowledged upload records evicted by the limits, as an inclusive seq range
    /// (the caller records an `outbox_overflow` event for it).
    pub evicted_unacked: Option<(u64, u64)>,
}

/// One record found by [`scan`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scanned {
    pub offset: usize,
    pub framed_len: usize,
    pub seq: u64,
    pub time_ms: i64,
    pub flags: u8,
}

/// Result of scanning a segment's bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanResult {
    pub records: Vec<Scanned>,
    /// End of the last valid record: everything after it is garbage.
    pub valid_end: usize,
    /// Stretches of bytes that were not valid records.
    pub corrupt_regions: usize,
}

fn be_u32(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(..4)?.try_into().ok()?))
}
fn be_u64(b: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(..8)?.try_into().ok()?))
}

/// Parse a record starting at `pos`, if there is a valid one.
fn record_at(bytes: &[u8], pos: usize) -> Option<Scanned> {
    let head = bytes.get(pos..pos.checked_add(FRAME_HEADER)?)?;
    if head.get(..4)? != REC_MAGIC {
        return None;
    }
    let len = be_u32(head.get(4..)?)? as usize;
    let crc = be_u32(head.get(8..)?)?;
    if !(PAYLOAD_HEADER..=MAX_PAYLOAD).contains(&len) {
        return None;
    }
    let start = pos + FRAME_HEADER;
    let payload = bytes.get(start..start.checked_add(len)?)?;
    if crc32(payload) != crc {
        return None;
    }
    Some(Scanned {
        offset: pos,
        framed_len: FRAME_HEADER + len,
        seq: be_u64(payload)?,
        time_ms: be_u64(payload.get(8..)?)? as i64,
        flags: *payload.get(16)?,
    })
}

/// Find every valid record in a segment's bytes. Never panics: torn tails, flipped bits
/// and garbage are skipped by re-synchronising on the next record magic.
pub fn scan(bytes: &[u8]) -> ScanResult {
    let mut out = ScanResult::default();
    let mut pos = 0usize;
    let mut in_garbage = false;
    while pos < bytes.len() {
        if let Some(r) = record_at(bytes, pos) {
            pos += r.framed_len;
            out.valid_end = pos;
            out.records.push(r);
            in_garbage = false;
            continue;
        }
        if !in_garbage {
            out.corrupt_regions += 1;
            in_garbage = true;
        }
        let from = pos + 1;
        match bytes
            .get(from..)
            .and_then(|rest| rest.windows(4).position(|w| w == REC_MAGIC))
        {
            Some(p) => pos = from + p,
            None => break,
        }
    }
    out
}

fn frame_record(seq: u64, time_ms: i64, flags: u8, data: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(PAYLOAD_HEADER + data.len());
    payload.extend_from_slice(&seq.to_be_bytes());
    payload.extend_from_slice(&time_ms.to_be_bytes());
    payload.push(flags);
    payload.extend_from_slice(data);
    let mut out = Vec::with_capacity(FRAME_HEADER + payload.len());
    out.extend_from_slice(&REC_MAGIC);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32(&payload).to_be_bytes());
    out.extend_from_slice(&payload);
    out
}

#[derive(Debug)]
struct Seg {
    path: PathBuf,
    bytes: u64,
    live: usize,
    newest_ms: i64,
}

#[derive(Clone, Copy, Debug)]
struct Loc {
    seg: u64,
    offset: u64,
    framed_len: u32,
    upload: bool,
}

/// One append-only, segment-based record log.
#[derive(Debug)]
pub struct SpaceLog {
    dir: PathBuf,
    cfg: SpaceConfig,
    segs: BTreeMap<u64, Seg>,
    index: BTreeMap<u64, Loc>,
    active: Option<(u64, File)>,
    next_seq: u64,
    acked: Vec<(u64, u64)>,
    last_sync_ms: i64,
    unsynced: bool,
    upload_records: u64,
    upload_bytes: u64,
    counters: Counters,
}

fn seg_name(id: u64) -> String {
    format!("seg-{id:020}.log")
}

fn parse_seg_name(name: &str) -> Option<u64> {
    name.strip_prefix("seg-")?
        .strip_suffix(".log")?
        .parse()
        .ok()
}

impl SpaceLog {
    /// Open (or create) the log in `dir`, recovering from whatever a crash left behind.
    pub fn open(dir: &Path, cfg: SpaceConfig) -> Result<Self, OutboxError> {
        let ioe = |source| OutboxError::Io {
            path: dir.to_path_buf(),
            source,
        };
        fs::create_dir_all(dir).map_err(ioe)?;
        let mut ids: Vec<u64> = fs::read_dir(dir)
            .map_err(ioe)?
            .filter_map(|e| e.ok())
            .filter_map(|e| parse_seg_name(&e.file_name().to_string_lossy()))
            .collect();
        ids.sort_unstable();
        let acked: Vec<(u64, u64)> = fs::read(dir.join("acks.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let counter: u64 = fs::read_to_string(dir.join("next_seq"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1);
        let mut log = SpaceLog {
            dir: dir.to_path_buf(),
            cfg,
            segs: BTreeMap::new(),
            index: BTreeMap::new(),
            active: None,
            next_seq: counter.max(1),
            acked: Vec::new(),
            last_sync_ms: 0,
            unsynced: false,
            upload_records: 0,
            upload_bytes: 0,
            counters: Counters::default(),
        };
        let last_id = ids.last().copied();
        for id in ids {
            let path = dir.join(seg_name(id));
            let bytes = fs::read(&path).map_err(|source| OutboxError::Io {
                path: path.clone(),
                source,
            })?;
            let scanned = scan(&bytes);
            if scanned.corrupt_regions > 0 {
                tracing::warn!(path = %path.display(), regions = scanned.corrupt_regions, "outbox segment had corrupt or torn bytes; skipped them");
            }
            let mut seg = Seg {
                path: path.clone(),
                bytes: scanned.valid_end as u64,
                live: 0,
                newest_ms: i64::MIN,
            };
            for r in &scanned.records {
                log.next_seq = log.next_seq.max(r.seq.saturating_add(1));
                seg.newest_ms = seg.newest_ms.max(r.time_ms);
                if is_acked(&acked, r.seq) {
                    continue;
                }
                let loc = Loc {
                    seg: id,
                    offset: r.offset as u64,
                    framed_len: r.framed_len as u32,
                    upload: r.flags & FLAG_UPLOAD != 0,
                };
                if let Some(old) = log.index.insert(r.seq, loc) {
                    if let Some(s) = log.segs.get_mut(&old.seg) {
                        s.live = s.live.saturating_sub(1);
                    } else if old.seg == id {
                        seg.live = seg.live.saturating_sub(1);
                    }
                    log.unaccount(&old);
                }
                seg.live += 1;
                log.account(&loc);
            }
            // Dropped records: bytes that were not valid records and are not a torn tail.
            log.counters.corrupt_dropped += scanned.corrupt_regions as u64;
            if Some(id) == last_id {
                if (scanned.valid_end as u64) < bytes.len() as u64 {
                    // Cut the torn tail so new appends follow a valid record.
                    let f = OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .map_err(|source| OutboxError::Io {
                            path: path.clone(),
                            source,
                        })?;
                    f.set_len(scanned.valid_end as u64)
                        .map_err(|source| OutboxError::Io {
                            path: path.clone(),
                            source,
                        })?;
                    f.sync_all().map_err(|source| OutboxError::Io {
                        path: path.clone(),
                        source,
                    })?;
                }
                if scanned.records.is_empty() {
                    let _ = fs::remove_file(&path);
                    continue;
                }
                let f = OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .map_err(|source| OutboxError::Io {
                        path: path.clone(),
                        source,
                    })?;
                log.active = Some((id, f));
                log.segs.insert(id, seg);
            } else if seg.live == 0 {
                let _ = fs::remove_file(&path);
            } else {
                log.segs.insert(id, seg);
            }
        }
        log.acked = acked;
        log.prune_acked();
        Ok(log)
    }

    fn account(&mut self, loc: &Loc) {
        if loc.upload {
            self.upload_records += 1;
            self.upload_bytes += u64::from(loc.framed_len);
        }
    }

    fn unaccount(&mut self, loc: &Loc) {
        if loc.upload {
            self.upload_records = self.upload_records.saturating_sub(1);
            self.upload_bytes = self.upload_bytes.saturating_sub(u64::from(loc.framed_len));
        }
    }

    /// The seq the next appended record must carry (sign it with this number).
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Records waiting for an ack that are meant for upload.
    pub fn stats(&self) -> OutboxStats {
        OutboxStats {
            records: self.upload_records,
            bytes: self.upload_bytes,
        }
    }

    /// Total bytes of all segment files.
    pub fn disk_bytes(&self) -> u64 {
        self.segs.values().map(|s| s.bytes).sum()
    }

    /// Whether `seq` is still held (not acknowledged, not evicted).
    pub fn contains(&self, seq: u64) -> bool {
        self.index.contains_key(&seq)
    }

    /// Append the signed record `data` with number `seq` (must be [`Self::next_seq`]).
    ///
    /// The sequence number is used up even if the write fails (disk full), so a record
    /// that was also sent live can never share its number with a later one; the hub then
    /// sees an honest gap. The error is counted and returned; the log stays usable.
    pub fn append(
        &mut self,
        seq: u64,
        time_ms: i64,
        upload: bool,
        data: &[u8],
        now_ms: i64,
    ) -> Result<AppendReport, OutboxError> {
        if seq != self.next_seq {
            return Err(OutboxError::OutOfOrder {
                got: seq,
                expected: self.next_seq,
            });
        }
        if data.len() + PAYLOAD_HEADER > MAX_PAYLOAD {
            return Err(OutboxError::TooLarge(data.len()));
        }
        self.next_seq = seq.saturating_add(1);
        match self.write_record(seq, time_ms, upload, data, now_ms) {
            Ok(()) => {
                self.counters.appended += 1;
                Ok(self.evict(now_ms))
            }
            Err(e) => {
                self.counters.write_errors += 1;
                let _ = self.write_counter();
                Err(e)
            }
        }
    }

    fn write_counter(&self) -> std::io::Result<()> {
        write_atomic(
            &self.dir.join("next_seq"),
            self.next_seq.to_string().as_bytes(),
            false,
            true,
        )
    }

    fn write_record(
        &mut self,
        seq: u64,
        time_ms: i64,
        upload: bool,
        data: &[u8],
        now_ms: i64,
    ) -> Result<(), OutboxError> {
        let roll = match &self.active {
            None => true,
            Some((id, _)) => self
                .segs
                .get(id)
                .is_none_or(|s| s.bytes >= self.cfg.segment_bytes),
        };
        if roll {
            self.roll(seq)?;
        }
        let Some((id, file)) = self.active.as_mut() else {
            return Err(OutboxError::Io {
                path: self.dir.clone(),
                source: std::io::Error::other("no active segment"),
            });
        };
        let id = *id;
        let Some(seg) = self.segs.get_mut(&id) else {
            return Err(OutboxError::Io {
                path: self.dir.clone(),
                source: std::io::Error::other("active segment missing"),
            });
        };
        let rec = frame_record(seq, time_ms, if upload { FLAG_UPLOAD } else { 0 }, data);
        if let Err(source) = file.write_all(&rec) {
            // Undo a partial write so the next record starts clean; if even that fails,
            // abandon this segment (the next append starts a new one).
            if file.set_len(seg.bytes).is_err() {
                self.active = None;
            }
            return Err(OutboxError::Io {
                path: seg.path.clone(),
                source,
            });
        }
        let must_sync = match self.cfg.fsync_interval_ms {
            None => true,
            Some(iv) => now_ms.saturating_sub(self.last_sync_ms) >= iv,
        };
        if must_sync {
            if let Err(e) = file.sync_data() {
                self.counters.write_errors += 1;
                tracing::error!(path = %seg.path.display(), error = %e, "outbox fsync failed");
            }
            self.last_sync_ms = now_ms;
            self.unsynced = false;
        } else {
            self.unsynced = true;
        }
        let loc = Loc {
            seg: id,
            offset: seg.bytes,
            framed_len: rec.len() as u32,
            upload,
        };
        seg.bytes += rec.len() as u64;
        seg.live += 1;
        seg.newest_ms = seg.newest_ms.max(time_ms);
        self.index.insert(seq, loc);
        self.account(&loc);
        Ok(())
    }

    fn roll(&mut self, first_seq: u64) -> Result<(), OutboxError> {
        self.sync();
        // Retire segments with nothing left in them (a fully acknowledged previous
        // segment, or one abandoned after a write error) now that none is active.
        self.active = None;
        let empty: Vec<u64> = self
            .segs
            .iter()
            .filter(|(_, s)| s.live == 0)
            .map(|(k, _)| *k)
            .collect();
        for id in empty {
            self.remove_seg(id);
        }
        let path = self.dir.join(seg_name(first_seq));
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| OutboxError::Io {
                path: path.clone(),
                source,
            })?;
        let _ = sync_dir(&self.dir);
        // Remember how far the numbering went, in case every segment is later removed.
        let _ = write_atomic(
            &self.dir.join("next_seq"),
            first_seq.saturating_add(1).to_string().as_bytes(),
            false,
            true,
        );
        // A leftover file under the same name (abandoned after a write error) may hold
        // garbage; new records are appended after it and the scanner skips it.
        let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        self.segs.insert(
            first_seq,
            Seg {
                path,
                bytes,
                live: 0,
                newest_ms: i64::MIN,
            },
        );
        self.active = Some((first_seq, file));
        Ok(())
    }

    /// Flush appended records to disk if the last ones were not yet (batched fsync).
    pub fn sync(&mut self) {
        if self.unsynced {
            if let Some((_, f)) = &self.active {
                if f.sync_data().is_err() {
                    self.counters.write_errors += 1;
                }
            }
            self.unsynced = false;
        }
    }

    fn active_id(&self) -> Option<u64> {
        self.active.as_ref().map(|(id, _)| *id)
    }

    fn remove_seg(&mut self, id: u64) -> Option<(u64, u64)> {
        let seg = self.segs.remove(&id)?;
        let end = self
            .segs
            .range(id..)
            .next()
            .map(|(k, _)| *k)
            .unwrap_or(u64::MAX);
        let seqs: Vec<u64> = self
            .index
            .range(id..end)
            .filter(|(_, l)| l.seg == id)
            .map(|(s, _)| *s)
            .collect();
        let mut range: Option<(u64, u64)> = None;
        for s in seqs {
            if let Some(loc) = self.index.remove(&s) {
                self.unaccount(&loc);
                if loc.upload {
                    self.counters.evicted_unacked += 1;
                    range = Some(range.map_or((s, s), |(a, b)| (a.min(s), b.max(s))));
                }
            }
        }
        if let Err(e) = fs::remove_file(&seg.path) {
            tracing::warn!(path = %seg.path.display(), error = %e, "could not remove outbox segment");
        }
        range
    }

    fn evict(&mut self, now_ms: i64) -> AppendReport {
        let mut report = AppendReport::default();
        while let Some((&oldest, seg)) = self.segs.iter().next() {
            if Some(oldest) == self.active_id() {
                break;
            }
            let too_big = self.disk_bytes() > self.cfg.max_bytes;
            let too_old = self
                .cfg
                .max_age_ms
                .is_some_and(|age| seg.newest_ms < now_ms.saturating_sub(age));
            if !(too_big || too_old) {
                break;
            }
            if let Some((a, b)) = self.remove_seg(oldest) {
                report.evicted_unacked = Some(match report.evicted_unacked {
                    None => (a, b),
                    Some((x, y)) => (x.min(a), y.max(b)),
                });
            }
        }
        if let Some((a, b)) = report.evicted_unacked {
            tracing::warn!(dir = %self.dir.display(), from = a, to = b, "outbox full: dropped unacknowledged records");
        }
        report
    }

    /// Remove acknowledged records (inclusive ranges). Segments left empty are deleted.
    pub fn ack(&mut self, ranges: &[(u64, u64)]) {
        let mut changed = false;
        for &(a, b) in ranges {
            if a > b {
                continue;
            }
            let seqs: Vec<u64> = self.index.range(a..=b).map(|(s, _)| *s).collect();
            for s in seqs {
                if let Some(loc) = self.index.remove(&s) {
                    changed = true;
                    self.unaccount(&loc);
                    let empty = match self.segs.get_mut(&loc.seg) {
                        Some(seg) => {
                            seg.live = seg.live.saturating_sub(1);
                            seg.live == 0
                        }
                        None => false,
                    };
                    if empty && Some(loc.seg) != self.active_id() {
                        self.remove_seg(loc.seg);
                    }
                }
            }
            self.acked.push((a, b));
        }
        if changed {
            self.prune_acked();
            let path = self.dir.join("acks.json");
            if let Ok(bytes) = serde_json::to_vec(&self.acked) {
                if let Err(e) = write_atomic(&path, &bytes, false, false) {
                    tracing::warn!(error = %e, "could not persist outbox acks (records may be re-sent)");
                }
            }
        }
    }

    /// Merge ack ranges and forget the ones below every record still on disk.
    fn prune_acked(&mut self) {
        let floor = self.segs.keys().next().copied().unwrap_or(u64::MAX);
        let mut v: Vec<(u64, u64)> = self
            .acked
            .iter()
            .copied()
            .filter(|&(a, b)| a <= b && b >= floor)
            .collect();
        v.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(v.len());
        for (a, b) in v {
            match merged.last_mut() {
                Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        self.acked = merged;
    }

    /// Up to `limit` upload records with `after < seq < before`, oldest first, as the
    /// exact signed bytes. Records that fail their CRC on re-read are dropped.
    pub fn pending(&mut self, after: u64, before: u64, limit: usize) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        if after.saturating_add(1) >= before {
            return out;
        }
        let wanted: Vec<(u64, Loc)> = self
            .index
            .range(after.saturating_add(1)..before)
            .filter(|(_, l)| l.upload)
            .take(limit)
            .map(|(s, l)| (*s, *l))
            .collect();
        for (seq, loc) in wanted {
            match self.read(&loc) {
                Some(data) => out.push((seq, data)),
                None => {
                    tracing::warn!(seq, "outbox record unreadable; dropped");
                    self.counters.corrupt_dropped += 1;
                    if let Some(l) = self.index.remove(&seq) {
                        self.unaccount(&l);
                    }
                }
            }
        }
        out
    }

    fn read(&self, loc: &Loc) -> Option<Vec<u8>> {
        let seg = self.segs.get(&loc.seg)?;
        let mut f = File::open(&seg.path).ok()?;
        f.seek(SeekFrom::Start(loc.offset)).ok()?;
        let mut buf = vec![0u8; loc.framed_len as usize];
        f.read_exact(&mut buf).ok()?;
        record_at(&buf, 0)?;
        Some(buf.get(FRAME_HEADER + PAYLOAD_HEADER..)?.to_vec())
    }
}

/// Whether `seq` lies in one of the (unsorted) inclusive ranges.
fn is_acked(ranges: &[(u64, u64)], seq: u64) -> bool {
    ranges.iter().any(|&(a, b)| a <= seq && seq <= b)
}

/// Both logs of a device under `{data_dir}/outbox/`.
#[derive(Debug)]
pub struct Outbox {
    pub events: SpaceLog,
    pub frames: SpaceLog,
}

impl Outbox {
    pub fn open(
        data_dir: &Path,
        events: SpaceConfig,
        frames: SpaceConfig,
    ) -> Result<Self, OutboxError> {
        let root = data_dir.join("outbox");
        Ok(Outbox {
            events: SpaceLog::open(&root.join("events"), events)?,
            frames: SpaceLog::open(&root.join("frames"), frames)?,
        })
    }

    pub fn space(&mut self, space: Space) -> &mut SpaceLog {
        match space {
            Space::Events => &mut self.events,
            Space::Frames => &mut self.frames,
        }
    }

    /// Apply a hub `ack`.
    pub fn ack(&mut self, ack: &Ack) {
        self.events.ack(&ack.events);
        self.frames.ack(&ack.frames);
    }

    /// Both spaces' upload records waiting for an ack.
    pub fn stats(&self) -> OutboxStats {
        let (e, f) = (self.events.stats(), self.frames.stats());
        OutboxStats {
            records: e.records + f.records,
            bytes: e.bytes + f.bytes,
        }
    }

    pub fn sync(&mut self) {
        self.events.sync();
        self.frames.sync();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> SpaceConfig {
        SpaceConfig {
            max_bytes: 1 << 20,
            max_age_ms: None,
            segment_bytes: 300,
            fsync_interval_ms: None,
        }
    }

    fn put(log: &mut SpaceLog, n: usize, upload: bool) -> Vec<u64> {
        (0..n)
            .map(|i| {
                let s = log.next_seq();
                log.append(
                    s,
                    1000 + s as i64,
                    upload,
                    format!("record-{s}-{i}").as_bytes(),
                    1000 + s as i64,
                )
                .unwrap();
                s
            })
            .collect()
    }

    fn all(log: &mut SpaceLog) -> Vec<(u64, Vec<u8>)> {
        log.pending(0, u64::MAX, usize::MAX)
    }

    fn seg_files(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("seg-"))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn records_survive_restart_in_order_and_numbers_continue() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = SpaceLog::open(dir.path(), small()).unwrap();
        assert_eq!(log.next_seq(), 1);
        let seqs = put(&mut log, 20, true);
        assert_eq!(seqs, (1..=20).collect::<Vec<_>>());
        let before = all(&mut log);
        drop(log);
        let mut log = SpaceLog::open(dir.path(), small()).unwrap();
        assert_eq!(all(&mut log), before);
        assert_eq!(log.next_seq(), 21);
        assert_eq!(log.stats().records, 20);
        assert!(seg_files(dir.path()).len() > 1, "small segments roll");
        assert_eq!(before.first().unwrap().1, b"record-1-0");
    }

    #[test]
    fn torn_tail_is_dropped_and_appends_continue_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = SpaceLog::open(
            dir.path(),
            SpaceConfig {
                segment_bytes: 1 << 20,
                ..small()
            },
        )
        .unwrap();
        put(&mut log, 5, true);
        drop(log);
        let seg = seg_files(dir.path()).pop().unwrap();
        let len = fs::metadata(&seg).unwrap().len();
        // Every possible tear inside the last record loses only that record.
        let full = fs::read(&seg).unwrap();
        let last_len = frame_record(5, 0, 1, b"record-5-4").len() as u64;
        for cut in (len - last_len)..len {
            fs::write(&seg, &full[..cut as usize]).unwrap();
            let mut log = SpaceLog::open(dir.path(), small()).unwrap();
            let seqs: Vec<u64> = all(&mut log).into_iter().map(|(s, _)| s).collect();
            assert_eq!(seqs, vec![1, 2, 3, 4], "cut at {cut}");
            assert_eq!(
                fs::metadata(&seg).unwrap().len(),
                len - last_len,
                "torn tail truncated"
            );
        }
        let mut log = SpaceLog::open(dir.path(), small()).unwrap();
        assert_eq!(
            log.next_seq(),
            5,
            "the torn record was never acknowledged, its number is reused"
        );
        put(&mut log, 2, true);
        drop(log);
        let mut log = SpaceLog::open(dir.path(), small()).unwrap();
        let seqs: Vec<u64> = all(&mut log).into_iter().map(|(s, _)| s).collect();
        assert_eq!(seqs, vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn corrupt_middle_record_is_skipped_without_losing_neighbours() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = SpaceLog::open(
            dir.path(),
            SpaceConfig {
                segment_bytes: 1 << 20,
                ..small()
            },
        )
        .unwrap();
        put(&mut log, 5, true);
        drop(log);
        let seg = seg_files(dir.path()).pop().unwrap();
        let bytes = fs::read(&seg).unwrap();
        let rec_len = frame_record(1, 0, 1, b"record-1-0").len();
        // Flip a payload byte of record 2, then separately its length field.
        for (what, at) in [
            ("payload", rec_len + FRAME_HEADER + 20),
            ("length", rec_len + 6),
            ("magic", rec_len),
        ] {
            let mut b = bytes.clone();
            b[at] ^= 0x5a;
            fs::write(&seg, &b).unwrap();
            let mut log = SpaceLog::open(dir.path(), small()).unwrap();
            let seqs: Vec<u64> = all(&mut log).into_iter().map(|(s, _)| s).collect();
            assert_eq!(seqs, vec![1, 3, 4, 5], "{what}");
            assert_eq!(log.counters().corrupt_dropped, 1, "{what}");
            assert_eq!(log.next_seq(), 6);
        }
    }

    #[test]
    fn acks_remove_records_persistently_and_delete_segments() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = SpaceLog::open(dir.path(), small()).unwrap();
        put(&mut log, 30, true);
        let files_before = seg_files(dir.path()).len();
        log.ack(&[(1, 10), (15, 15), (40, 30)]);
        let seqs: Vec<u64> = all(&mut log).into_iter().map(|(s, _)| s).collect();
        let expect: Vec<u64> = (11..=30).filter(|s| *s != 15).collect();
        assert_eq!(seqs, expect);
        assert!(
            seg_files(dir.path()).len() < files_before,
            "fully acked segments are deleted"
        );
        drop(log);
        let mut log = SpaceLog::open(dir.path(), small()).unwrap();
        let seqs: Vec<u64> = all(&mut log).into_iter().map(|(s, _)| s).collect();
        assert_eq!(seqs, expect);
        assert_eq!(log.stats().records, 19);
        log.ack(&[(1, 30)]);
        assert_eq!(log.stats(), OutboxStats::default());
        assert_eq!(log.next_seq(), 31);
        drop(log);
        let log = SpaceLog::open(dir.path(), small()).unwrap();
        assert_eq!(
            log.next_seq(),
            31,
            "numbers never repeat even when everything was acked"
        );
    }

    #[test]
    fn byte_limit_evicts_oldest_and_reports_unacked_loss() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = SpaceConfig {
            max_bytes: 1000,
            max_age_ms: None,
            segment_bytes: 200,
            fsync_interval_ms: Some(1000),
        };
        let mut log = SpaceLog::open(dir.path(), cfg).unwrap();
        let mut evicted = Vec::new();
        for _ in 0..100 {
            let s = log.next_seq();
            let r = log.append(s, s as i64, true, &[7u8; 40], s as i64).unwrap();
            if let Some(range) = r.evicted_unacked {
                evicted.push(range);
            }
        }
        assert!(log.disk_bytes() <= 1000 + 200);
        let seqs: Vec<u64> = all(&mut log).into_iter().map(|(s, _)| s).collect();
        assert_eq!(*seqs.last().unwrap(), 100);
        assert!(
            seqs.windows(2).all(|w| w[1] == w[0] + 1),
            "the newest records are kept contiguously"
        );
        assert_eq!(evicted.first().unwrap().0, 1, "the oldest go first");
        assert_eq!(evicted.last().unwrap().1 + 1, seqs[0]);
        assert_eq!(log.counters().evicted_unacked, seqs[0] - 1);
    }

    #[test]
    fn age_limit_evicts_and_local_only_records_are_not_reported() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = SpaceConfig {
            max_bytes: 1 << 20,
            max_age_ms: Some(1000),
            segment_bytes: 100,
            fsync_interval_ms: Some(1000),
        };
        let mut log = SpaceLog::open(dir.path(), cfg).unwrap();
        for t in 0..50i64 {
            let s = log.next_seq();
            let r = log.append(s, t * 100, false, &[1u8; 40], t * 100).unwrap();
            assert_eq!(
                r.evicted_unacked, None,
                "frames nobody wanted are dropped silently"
            );
        }
        assert!(!log.contains(1));
        assert!(log.contains(50));
        assert!(
            all(&mut log).is_empty(),
            "local-only records are never offered for upload"
        );
        assert_eq!(log.stats(), OutboxStats::default());
    }

    #[test]
    fn pending_respects_window_and_upload_flag() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = SpaceLog::open(dir.path(), small()).unwrap();
        for i in 0..10u64 {
            let s = log.next_seq();
            log.append(s, 0, i % 2 == 0, b"x", 0).unwrap();
        }
        let seqs: Vec<u64> = log.pending(2, 9, 100).into_iter().map(|(s, _)| s).collect();
        assert_eq!(seqs, vec![3, 5, 7]);
        let seqs: Vec<u64> = log
            .pending(0, u64::MAX, 2)
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert_eq!(seqs, vec![1, 3]);
        assert!(matches!(
            log.append(99, 0, true, b"x", 0),
            Err(OutboxError::OutOfOrder { .. })
        ));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn disk_full_is_reported_counted_and_survived() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = SpaceLog::open(dir.path(), small()).unwrap();
        // The first segment file is /dev/full: every write fails with ENOSPC.
        std::os::unix::fs::symlink("/dev/full", dir.path().join(seg_name(1))).unwrap();
        let err = log.append(1, 0, true, b"lost", 0);
        assert!(matches!(err, Err(OutboxError::Io { .. })), "{err:?}");
        assert_eq!(log.counters().write_errors, 1);
        assert_eq!(log.next_seq(), 2, "the number is used up, never reused");
        fs::remove_file(dir.path().join(seg_name(1))).unwrap();
        log.append(2, 0, true, b"kept", 0).unwrap();
        assert_eq!(all(&mut log), vec![(2, b"kept".to_vec())]);
    }

    #[test]
    fn scanner_never_panics_on_truncations_and_noise() {
        let mut bytes = Vec::new();
        for s in 1..=6u64 {
            bytes.extend(frame_record(
                s,
                s as i64,
                1,
                &vec![s as u8; 30 + s as usize],
            ));
        }
        for n in 0..=bytes.len() {
            let r = scan(&bytes[..n]);
            assert!(r.valid_end <= n);
            for (i, rec) in r.records.iter().enumerate() {
                assert_eq!(rec.seq, i as u64 + 1);
            }
        }
        let mut x: u64 = 0x1234_5678_9abc_def1;
        for round in 0..3000 {
            let mut b = bytes.clone();
            for _ in 0..(round % 5 + 1) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = (x as usize) % b.len();
                b[i] = (x >> 40) as u8;
            }
            let r = scan(&b);
            assert!(r.records.iter().all(|rec| (1..=6).contains(&rec.seq)));
        }
        let noise: Vec<u8> = (0..5000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let _ = scan(&noise);
        let mut magic_spam = Vec::new();
        for _ in 0..1000 {
            magic_spam.extend_from_slice(&REC_MAGIC);
            magic_spam.extend_from_slice(&[0xff; 8]);
        }
        assert!(scan(&magic_spam).records.is_empty());
    }

    #[test]
    fn outbox_wraps_two_spaces_and_applies_hub_acks() {
        let dir = tempfile::tempdir().unwrap();
        let mut ob =
            Outbox::open(dir.path(), SpaceConfig::events(), SpaceConfig::frames()).unwrap();
        put(ob.space(Space::Events), 3, true);
        put(ob.space(Space::Frames), 4, true);
        assert_eq!(ob.stats().records, 7);
        ob.ack(&Ack {
            events: vec![(1, 3)],
            frames: vec![(1, 2)],
        });
        assert_eq!(ob.stats().records, 2);
        assert_eq!(ob.events.next_seq(), 4);
    }
}
