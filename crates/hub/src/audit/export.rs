//! The audit log as a file to verify away from the hub: JSON lines, a header, every
//! entry in order, then every signed checkpoint. `threshold audit export` writes it;
//! `threshold audit verify --export FILE --key KEY` checks it with the pinned key
//! alone, trusting nothing else in the file.

use super::verify::{Verifier, VerifyReport};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};
use threshold_core::audit::AuditEntry;
use threshold_proto::PublicKey;
use threshold_store::{CheckpointRow, Store, StoreError};

pub const FORMAT: &str = "threshold-audit-export-v1";

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Line {
    Header {
        format: String,
        exported_ms: i64,
    },
    Entry {
        seq: u64,
        time_ms: i64,
        kind: String,
        actor: String,
        subject: String,
        detail: String,
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
}

/// Write the whole log; returns the entries and checkpoints written.
pub async fn write(
    store: &Store,
    out: &mut impl Write,
    now_ms: i64,
) -> Result<(u64, u64), ExportError> {
    let line = |out: &mut dyn Write, l: &Line| -> Result<(), ExportError> {
        serde_json::to_writer(&mut *out, l).map_err(std::io::Error::other)?;
        out.write_all(b"\n")?;
        Ok(())
    };
    line(
        out,
        &Line::Header {
            format: FORMAT.into(),
            exported_ms: now_ms,
        },
    )?;
    let (mut entries, mut after) = (0u64, 0u64);
    loop {
        let page = store.audit_page(after, 1000).await?;
        if page.is_empty() {
            break;
        }
        for e in &page {
            line(
                out,
                &Line::Entry {
                    seq: e.seq,
                    time_ms: e.time_ms,
                    kind: e.kind.clone(),
                    actor: e.actor.clone(),
                    subject: e.subject.clone(),
                    detail: e.detail.clone(),
                    prev_hash: hex::encode(e.prev_hash),
                    hash: hex::encode(e.hash),
                },
            )?;
            entries += 1;
            after = e.seq;
        }
    }
    let checkpoints = store.checkpoints().await?;
    for c in &checkpoints {
        line(
            out,
            &Line::Checkpoint {
                seq: c.seq,
                hash: c.hash.clone(),
                time_ms: c.time_ms,
                hub_key: c.hub_key.clone(),
                signature: c.signature.clone(),
            },
        )?;
    }
    out.flush()?;
    Ok((entries, checkpoints.len() as u64))
}

fn hash32(s: &str, line: usize) -> Result<[u8; 32], ExportError> {
    let mut h = [0u8; 32];
    hex::decode_to_slice(s, &mut h).map_err(|_| ExportError::Malformed {
        line,
        message: "a hash is not 64 hex characters".into(),
    })?;
    Ok(h)
}

/// Check an export with the pinned key, as [`super::verify`] checks the database.
pub fn verify(input: impl BufRead, pinned: &PublicKey) -> Result<VerifyReport, ExportError> {
    let mut entries = Vec::new();
    let mut checkpoints = Vec::new();
    let mut header = false;
    for (i, text) in input.lines().enumerate() {
        let text = text?;
        if text.trim().is_empty() {
            continue;
        }
        let n = i + 1;
        let l: Line = serde_json::from_str(&text).map_err(|e| ExportError::Malformed {
            line: n,
            message: e.to_string(),
        })?;
        match l {
            Line::Header { format, .. } => {
                if format != FORMAT || header {
                    return Err(ExportError::Malformed {
                        line: n,
                        message: format!("not a {FORMAT} header"),
                    });
                }
                header = true;
            }
            _ if !header => {
                return Err(ExportError::Malformed {
                    line: n,
                    message: "the file does not start with its header".into(),
                })
            }
            Line::Entry {
                seq,
                time_ms,
                kind,
                actor,
                subject,
                detail,
                prev_hash,
                hash,
            } => entries.push(AuditEntry {
                seq,
                time_ms,
                kind,
                actor,
                subject,
                detail,
                prev_hash: hash32(&prev_hash, n)?,
                hash: hash32(&hash, n)?,
            }),
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
    let mut v = Verifier::new(&checkpoints);
    v.push_all(&entries);
    Ok(v.finish(&checkpoints, pinned))
}
