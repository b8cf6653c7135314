//! Verifying the whole audit chain against its signed checkpoints, with a key the
//! verifier pinned beforehand: never with a key read from the data being verified,
//! since whoever can rewrite the database can also write a key of their own beside a
//! history they re-signed. A witness log (`witness`) adds what a key cannot: the
//! checkpoints someone outside saw, which a history rewritten and signed again with
//! the hub's own key no longer matches.

use super::witness::{self, Comparison, Seen};
use std::collections::{HashMap, HashSet};
use threshold_core::audit::{checkpoint_message, AuditEntry, AuditLink, ChainBreak, ChainVerifier};
use threshold_proto::PublicKey;
use threshold_store::{CheckpointRow, Store, StoreError};

#[derive(Debug, serde::Serialize)]
pub struct VerifyReport {
    /// The last entry of the chain verified (its sequence number).
    pub entries: u64,
    pub checkpoints: u64,
    /// The last entry a verified checkpoint covers (entries after it are chained but
    /// not yet signed).
    pub signed_through: u64,
    /// The pinned key the checkpoints were verified with (hex).
    pub key: String,
    pub ok: bool,
    pub first_break: Option<String>,
    /// A per-home export: the home.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub home: Option<String>,
    /// The first entry the chain at hand starts from (1, or the entry after the
    /// signed checkpoint a per-home export starts at).
    pub from_seq: u64,
    /// A per-home export: that home's entries, shown in full.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub home_entries: Option<u64>,
    /// A per-home export: the other entries, shown as links only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub links: Option<u64>,
    /// With a witness log: what comparing the two found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub witness: Option<Comparison>,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyFailure {
    #[error("{0}")]
    Chain(#[from] ChainBreak),
    #[error("checkpoint at entry {0}: signature does not verify")]
    BadCheckpointSignature(i64),
    #[error(
        "checkpoint at entry {0}: signed by another key than the pinned one (history re-signed?)"
    )]
    ForeignKey(i64),
    #[error("checkpoint at entry {0}: the chain's hash there differs from the signed one (history was rewritten)")]
    CheckpointMismatch(i64),
    #[error("checkpoint at entry {0}: no such entry (the log was truncated)")]
    CheckpointBeyondEnd(i64),
    #[error("entry {0}: an entry of this home shown without its contents (the export hides it)")]
    HiddenEntry(u64),
    #[error("the export starts after entry {0}, and no checkpoint signed at entry {0} anchors it")]
    Unanchored(u64),
}

/// Recompute the whole chain and check every signed checkpoint against it, each
/// signed by `pinned`.
pub async fn verify(store: &Store, pinned: &PublicKey) -> Result<VerifyReport, StoreError> {
    verify_with_witness(store, pinned, None).await
}

/// [`verify`], and compare the chain with the checkpoints a witness saw.
pub async fn verify_with_witness(
    store: &Store,
    pinned: &PublicKey,
    seen: Option<&[Seen]>,
) -> Result<VerifyReport, StoreError> {
    let checkpoints = store.checkpoints().await?;
    let mut v = Verifier::new(&checkpoints, seen);
    let mut after = 0u64;
    loop {
        let page = store.audit_page(after, 1000).await?;
        if page.is_empty() || !v.push_all(&page) {
            break;
        }
        after = page.last().map_or(after, |e| e.seq);
    }
    Ok(v.finish(&checkpoints, pinned))
}

/// Whether `c` is a checkpoint signed by `pinned` (its key named as `pinned`, its
/// signature good).
pub fn signed_by(c: &CheckpointRow, pinned: &PublicKey) -> bool {
    check_signature(c, pinned).is_ok()
}

fn check_signature(c: &CheckpointRow, pinned: &PublicKey) -> Result<[u8; 32], VerifyFailure> {
    if c.hub_key.parse::<PublicKey>().ok().as_ref() != Some(pinned) {
        return Err(VerifyFailure::ForeignKey(c.seq));
    }
    let mut sig = [0u8; 64];
    let mut hash = [0u8; 32];
    let parsed = hex::decode_to_slice(&c.signature, &mut sig).is_ok()
        && hex::decode_to_slice(&c.hash, &mut hash).is_ok();
    let sig_ok = parsed
        && c.seq >= 0
        && pinned
            .0
            .verify_strict(
                &checkpoint_message(c.seq as u64, &hash, c.time_ms),
                &ed25519_dalek::Signature::from_bytes(&sig),
            )
            .is_ok();
    if !sig_ok {
        return Err(VerifyFailure::BadCheckpointSignature(c.seq));
    }
    Ok(hash)
}

/// The chain, entry by entry (or link by link), then the checkpoints: the same check
/// for the database and for an export read from a file (`export`).
pub struct Verifier {
    chain: ChainVerifier,
    from_seq: u64,
    /// Where the chain's hash is kept: at checkpoints and witnessed checkpoints.
    wanted: HashSet<i64>,
    hashes: HashMap<i64, [u8; 32]>,
    failure: Option<VerifyFailure>,
    seen: Option<Vec<Seen>>,
    /// A per-home export's home: links must not be its entries.
    home: Option<String>,
    home_entries: u64,
    links: u64,
}

impl Verifier {
    pub fn new(checkpoints: &[CheckpointRow], seen: Option<&[Seen]>) -> Verifier {
        let mut wanted: HashSet<i64> = checkpoints.iter().map(|c| c.seq).collect();
        if let Some(s) = seen {
            wanted.extend(s.iter().map(|s| s.seq as i64));
        }
        Verifier {
            chain: ChainVerifier::new(),
            from_seq: 1,
            wanted,
            hashes: HashMap::new(),
            failure: None,
            seen: seen.map(<[Seen]>::to_vec),
            home: None,
            home_entries: 0,
            links: 0,
        }
    }

    /// Verify one home's export: its entries in full, the others as links that must
    /// not be its own.
    pub fn for_home(mut self, home: &str) -> Verifier {
        self.home = Some(home.to_owned());
        self
    }

    /// Start after entry `seq`, which a checkpoint signed by the pinned key must cover
    /// (checked in [`Verifier::finish`] with every checkpoint).
    pub fn anchored(mut self, seq: u64, checkpoints: &[CheckpointRow]) -> Verifier {
        let anchor = checkpoints.iter().find(|c| c.seq == seq as i64);
        let mut hash = [0u8; 32];
        match anchor {
            Some(c) if hex::decode_to_slice(&c.hash, &mut hash).is_ok() => {
                self.chain = ChainVerifier::after(seq, hash);
                self.hashes.insert(seq as i64, hash);
                self.from_seq = seq + 1;
            }
            _ => self.failure = Some(VerifyFailure::Unanchored(seq)),
        }
        self
    }

    fn keep(&mut self, seq: u64, hash: [u8; 32]) {
        if self.wanted.contains(&(seq as i64)) {
            self.hashes.insert(seq as i64, hash);
        }
    }

    /// Add the next entries in order; false once the chain is broken.
    pub fn push_all(&mut self, entries: &[AuditEntry]) -> bool {
        entries.iter().all(|e| self.push(e))
    }

    /// Add the next entry; false once the chain is broken.
    pub fn push(&mut self, e: &AuditEntry) -> bool {
        if self.failure.is_some() {
            return false;
        }
        if let Err(b) = self.chain.push(e) {
            self.failure = Some(b.into());
            return false;
        }
        if self.home.is_some() {
            self.home_entries += 1;
        }
        self.keep(e.seq, e.hash);
        true
    }

    /// Add the next entry, shown as a link; false once the chain is broken or the
    /// link is in fact an entry of the export's home.
    pub fn push_link(&mut self, l: &AuditLink) -> bool {
        if self.failure.is_some() {
            return false;
        }
        if let Err(b) = self.chain.push_link(l) {
            self.failure = Some(b.into());
            return false;
        }
        if self.home.as_deref().is_some_and(|h| l.is_of(h)) {
            self.failure = Some(VerifyFailure::HiddenEntry(l.seq));
            return false;
        }
        self.links += 1;
        self.keep(l.seq, l.hash);
        true
    }

    /// Check every checkpoint against the chain seen and the pinned key, and the
    /// chain against the witness log if there is one.
    pub fn finish(mut self, checkpoints: &[CheckpointRow], pinned: &PublicKey) -> VerifyReport {
        let mut signed_through = 0u64;
        if self.failure.is_none() {
            for c in checkpoints {
                if let Err(f) = self.checkpoint(c, pinned) {
                    self.failure = Some(f);
                    break;
                }
                signed_through = signed_through.max(c.seq as u64);
            }
        }
        let head = self.chain.head().0;
        let witness = self.seen.as_ref().map(|seen| {
            witness::compare(seen, self.from_seq.saturating_sub(1).max(1), |s| {
                (s <= head)
                    .then(|| self.hashes.get(&(s as i64)).copied())
                    .flatten()
            })
        });
        let witness_ok = witness.as_ref().is_none_or(|w| w.ok);
        VerifyReport {
            entries: head,
            checkpoints: checkpoints.len() as u64,
            signed_through,
            key: pinned.to_hex(),
            ok: self.failure.is_none() && witness_ok,
            first_break: self
                .failure
                .map(|f| f.to_string())
                .or_else(|| witness.as_ref().and_then(|w| w.first_rewritten.clone())),
            home: self.home.clone(),
            from_seq: self.from_seq,
            home_entries: self.home.as_ref().map(|_| self.home_entries),
            links: self.home.as_ref().map(|_| self.links),
            witness,
        }
    }

    fn checkpoint(&self, c: &CheckpointRow, pinned: &PublicKey) -> Result<(), VerifyFailure> {
        let hash = check_signature(c, pinned)?;
        // Checkpoints before the part of the chain at hand (a per-home export that
        // starts at a later checkpoint) are checked for their signature only.
        if (c.seq as u64) + 1 < self.from_seq {
            return Ok(());
        }
        match self.hashes.get(&c.seq) {
            None => Err(VerifyFailure::CheckpointBeyondEnd(c.seq)),
            Some(h) if *h != hash => Err(VerifyFailure::CheckpointMismatch(c.seq)),
            Some(_) => Ok(()),
        }
    }
}
