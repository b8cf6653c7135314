//! The audit log as a file to verify away from the hub: JSON lines, a header, every
//! entry in order, then every signed checkpoint. `threshold audit export` writes it;
//! `threshold audit verify --export FILE --key KEY` checks it with the pinned key
//! alone, trusting nothing else in the file.
//!
//! **One home's export** (`--home ID`, and the owner's
//! `GET /api/v1/homes/{id}/audit/export`) has the same lines, except that every entry
//! not committed to that home is a `link` line: its sequence number, home tag, body
//! hash, previous hash and hash (`threshold_core::audit::AuditLink`), and nothing of
//! its contents. The chain still recomputes end to end through the links up to each
//! signed checkpoint, and the verifier checks that no link is an entry of the home
//! (a link's home tag is computed from the home's id and its place in the chain). A
//! chain begun before entries were committed to homes (v1 entries) cannot be shown
//! that way: a home's export then starts after the checkpoint the hub signed at its
//! last v1 entry (`journal`), and says so (`from_seq` in its header).

use super::verify::{Verifier, VerifyReport};
use super::witness::Seen;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};
use threshold_core::audit::{AuditEntry, AuditLink, EntryHome};
use threshold_proto::PublicKey;
use threshold_store::{CheckpointRow, Store, StoreError};

/// The format written now (entries may be v2, a home's export has links).
pub const FORMAT: &str = "threshold-audit-export-v2";
/// Exports written before home commitments; still read.
pub const FORMAT_V1: &str = "threshold-audit-export-v1";

fn one() -> u8 {
    1
}

fn is_one(v: &u8) -> bool {
    *v == 1
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Line {
    Header {
        format: String,
        exported_ms: i64,
        /// One home's export: the home.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        home: Option<String>,
        /// The first entry in the file; the entry before it is covered by a signed
        /// checkpoint in the file.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from_seq: Option<u64>,
    },
    Entry {
        seq: u64,
        time_ms: i64,
        kind: String,
        actor: String,
        subject: String,
        detail: String,
        /// 1: written before home commitments (absent in v1 exports); 2: its hash
        /// commits to `home`.
        #[serde(default = "one", skip_serializing_if = "is_one")]
        v: u8,
        /// A v2 entry's home (absent: hub-wide).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        home: Option<String>,
        prev_hash: String,
        hash: String,
    },
    Link {
        seq: u64,
        home_tag: String,
        body_hash: String,
        prev_hash: String,
        hash: String,
    },
    Checkpoint {
        seq: i64,
        hash: String,
        time_ms: i64,
        hub_key: String,
        signature: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot read or write the export: {0}")]
    Io(#[from] std::io::Error),
    #[error("line {line}: {message}")]
    Malformed { line: usize, message: String },
    #[error("no such home: {0}")]
    NoSuchHome(String),
    #[error("the log's entries up to {0} were written before entries named their home, and no checkpoint covers them yet: start the hub once (it signs one), or export the whole log")]
    NotYetAnchored(u64),
}

/// What an export holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Written {
    /// Entries in full.
    pub entries: u64,
    /// Entries of other homes, as links.
    pub links: u64,
    pub checkpoints: u64,
    /// The first entry in the file.
    pub from_seq: u64,
}

fn put(out: &mut dyn Write, l: &Line) -> Result<(), ExportError> {
    serde_json::to_writer(&mut *out, l).map_err(std::io::Error::other)?;
    out.write_all(b"\n")?;
    Ok(())
}

fn checkpoint(c: &CheckpointRow) -> Line {
    Line::Checkpoint {
        seq: c.seq,
        hash: c.hash.clone(),
        time_ms: c.time_ms,
        hub_key: c.hub_key.clone(),
        signature: c.signature.clone(),
    }
}

/// A checkpoint as one JSON line (no newline), as in an export and a witness log.
pub fn checkpoint_line(c: &CheckpointRow) -> String {
    serde_json::to_string(&checkpoint(c)).unwrap_or_default()
}

/// A checkpoint line back.
pub fn parse_checkpoint_line(text: &str) -> Result<CheckpointRow, String> {
    match serde_json::from_str::<Line>(text).map_err(|e| e.to_string())? {
        Line::Checkpoint {
            seq,
            hash,
            time_ms,
            hub_key,
            signature,
        } => Ok(CheckpointRow {
            seq,
            hash,
            time_ms,
            hub_key,
            signature,
        }),
        _ => Err("not a checkpoint line".into()),
    }
}

fn entry(e: &AuditEntry) -> Line {
    Line::Entry {
        seq: e.seq,
        time_ms: e.time_ms,
        kind: e.kind.clone(),
        actor: e.actor.clone(),
        subject: e.subject.clone(),
        detail: e.detail.clone(),
        v: if e.home.is_legacy() { 1 } else { 2 },
        home: e.home.id().map(str::to_owned),
        prev_hash: hex::encode(e.prev_hash),
        hash: hex::encode(e.hash),
    }
}

/// Write the whole log; returns the entries and checkpoints written.
pub async fn write(
    store: &Store,
    out: &mut impl Write,
    now_ms: i64,
) -> Result<(u64, u64), ExportError> {
    let w = write_scoped(store, out, now_ms, None).await?;
    Ok((w.entries, w.checkpoints))
}

/// Write the whole log (`home` = `None`), or one home's export.
pub async fn write_scoped(
    store: &Store,
    out: &mut impl Write,
    now_ms: i64,
    home: Option<&str>,
) -> Result<Written, ExportError> {
    let checkpoints = store.checkpoints().await?;
    // One home's export starts after the last v1 entry, at a checkpoint covering it.
    let from_seq = match (home, store.last_legacy_audit_seq().await?) {
        (Some(_), Some(legacy)) => {
            let anchor = checkpoints
                .iter()
                .map(|c| c.seq as u64)
                .filter(|s| *s >= legacy)
                .min();
            match anchor {
                Some(a) => a + 1,
                // No checkpoint after the v1 entries yet: nothing of the chain can be
                // shown home by home.
                None => return Err(ExportError::NotYetAnchored(legacy)),
            }
        }
        _ => 1,
    };
    put(
        out,
        &Line::Header {
            format: FORMAT.into(),
            exported_ms: now_ms,
            home: home.map(str::to_owned),
            from_seq: home.map(|_| from_seq),
        },
    )?;
    let mut w = Written {
        from_seq,
        ..Written::default()
    };
    let mut after = from_seq.saturating_sub(1);
    let mut home_seen = false;
    loop {
        let page = store.audit_page(after, 1000).await?;
        if page.is_empty() {
            break;
        }
        for e in &page {
            after = e.seq;
            match home {
                None => {
                    put(out, &entry(e))?;
                    w.entries += 1;
                }
                Some(h) if e.home.id() == Some(h) => {
                    put(out, &entry(e))?;
                    w.entries += 1;
                    home_seen = true;
                }
                Some(_) => {
                    let Some(l) = e.link() else {
                        return Err(ExportError::Store(StoreError::Conflict(format!(
                            "entry {} is a v1 entry after the checkpoint the home's export starts at",
                            e.seq
                        ))));
                    };
                    put(
                        out,
                        &Line::Link {
                            seq: l.seq,
                            home_tag: hex::encode(l.home_tag),
                            body_hash: hex::encode(l.body_hash),
                            prev_hash: hex::encode(l.prev_hash),
                            hash: hex::encode(l.hash),
                        },
                    )?;
                    w.links += 1;
                }
            }
        }
    }
    if let (Some(h), false) = (home, home_seen) {
        // A home with no entry yet still gets its (empty) export; one the hub never
        // heard of is named, so a typo is not taken for an empty history.
        if store.home_exists(h).await.ok() != Some(true) {
            return Err(ExportError::NoSuchHome(h.to_owned()));
        }
    }
    for c in &checkpoints {
        put(out, &checkpoint(c))?;
        w.checkpoints += 1;
    }
    out.flush()?;
    Ok(w)
}

fn hash32(s: &str, line: usize) -> Result<[u8; 32], ExportError> {
    let mut h = [0u8; 32];
    hex::decode_to_slice(s, &mut h).map_err(|_| ExportError::Malformed {
        line,
        message: "a hash is not 64 hex characters".into(),
    })?;
    Ok(h)
}

enum Item {
    Entry(AuditEntry),
    Link(AuditLink),
}

/// Check an export with the pinned key, as [`super::verify`] checks the database.
pub fn verify(input: impl BufRead, pinned: &PublicKey) -> Result<VerifyReport, ExportError> {
    verify_with_witness(input, pinned, None)
}

/// [`verify`], and compare the export's chain with what a witness saw.
pub fn verify_with_witness(
    input: impl BufRead,
    pinned: &PublicKey,
    seen: Option<&[Seen]>,
) -> Result<VerifyReport, ExportError> {
    let mut items = Vec::new();
    let mut checkpoints = Vec::new();
    let mut header: Option<(Option<String>, u64)> = None;
    for (i, text) in input.lines().enumerate() {
        let text = text?;
        if text.trim().is_empty() {
            continue;
        }
        let n = i + 1;
        let malformed = |message: String| ExportError::Malformed { line: n, message };
        let l: Line = serde_json::from_str(&text).map_err(|e| malformed(e.to_string()))?;
        let home = match (&l, &header) {
            (
                Line::Header {
                    format,
                    home,
                    from_seq,
                    ..
                },
                None,
            ) if format == FORMAT || (format == FORMAT_V1 && home.is_none()) => {
                // Only one home's export may start later than the first entry.
                let from = match (home, from_seq) {
                    (Some(_), Some(f)) if *f >= 1 => *f,
                    (_, None | Some(1)) => 1,
                    _ => return Err(malformed("a header with a bad from_seq".into())),
                };
                header = Some((home.clone(), from));
                continue;
            }
            (Line::Header { .. }, _) => {
                return Err(malformed(format!("not a {FORMAT} header")));
            }
            (_, None) => {
                return Err(malformed("the file does not start with its header".into()));
            }
            (_, Some((h, _))) => h.clone(),
        };
        match l {
            Line::Header { .. } => {}
            Line::Entry {
                seq,
                time_ms,
                kind,
                actor,
                subject,
                detail,
                v,
                home: entry_home,
                prev_hash,
                hash,
            } => {
                let entry_home = match (v, entry_home) {
                    (1, None) => EntryHome::Legacy,
                    (2, h) => EntryHome::of(h.as_deref()),
                    _ => return Err(malformed(format!("entry {seq}: unknown form"))),
                };
                if let Some(h) = &home {
                    if entry_home.id() != Some(h.as_str()) {
                        return Err(malformed(format!(
                            "entry {seq} is not an entry of home {h}, the home this export is for"
                        )));
                    }
                }
                items.push(Item::Entry(AuditEntry {
                    seq,
                    time_ms,
                    kind,
                    actor,
                    subject,
                    detail,
                    home: entry_home,
                    prev_hash: hash32(&prev_hash, n)?,
                    hash: hash32(&hash, n)?,
                }))
            }
            Line::Link {
                seq,
                home_tag,
                body_hash,
                prev_hash,
                hash,
            } => {
                if home.is_none() {
                    return Err(malformed(
                        "a link in an export of the whole log (links belong in one home's export)"
                            .into(),
                    ));
                }
                items.push(Item::Link(AuditLink {
                    seq,
                    home_tag: hash32(&home_tag, n)?,
                    body_hash: hash32(&body_hash, n)?,
                    prev_hash: hash32(&prev_hash, n)?,
                    hash: hash32(&hash, n)?,
                }))
            }
            Line::Checkpoint {
                seq,
                hash,
                time_ms,
                hub_key,
                signature,
            } => checkpoints.push(CheckpointRow {
                seq,
                hash,
                time_ms,
                hub_key,
                signature,
            }),
        }
    }
    let Some((home, from_seq)) = header else {
        return Err(ExportError::Malformed {
            line: 0,
            message: "an empty file".into(),
        });
    };
    let mut v = Verifier::new(&checkpoints, seen);
    if let Some(h) = &home {
        v = v.for_home(h);
    }
    // Starting anywhere but at the first entry needs a checkpoint signed right before.
    if from_seq > 1 {
        v = v.anchored(from_seq - 1, &checkpoints);
    }
    for item in &items {
        let good = match item {
            Item::Entry(e) => v.push(e),
            Item::Link(l) => v.push_link(l),
        };
        if !good {
            break;
        }
    }
    Ok(v.finish(&checkpoints, pinned))
}
