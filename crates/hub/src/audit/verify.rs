//! Verifying the whole audit chain against its signed checkpoints, with a key the
//! verifier pinned beforehand: never with a key read from the data being verified,
//! since whoever can rewrite the database can also write a key of their own beside a
//! history they re-signed.

use threshold_core::audit::{checkpoint_message, AuditEntry, ChainBreak, ChainVerifier};
use threshold_proto::PublicKey;
use threshold_store::{CheckpointRow, Store, StoreError};

#[derive(Debug, serde::Serialize)]
pub struct VerifyReport {
    pub entries: u64,
    pub checkpoints: u64,
    /// The last entry a verified checkpoint covers (entries after it are chained but
    /// not yet signed).
    pub signed_through: u64,
    /// The pinned key the checkpoints were verified with (hex).
    pub key: String,
    pub ok: bool,
    pub first_break: Option<String>,
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
}

/// Recompute the whole chain and check every signed checkpoint against it, each
/// signed by `pinned`.
pub async fn verify(store: &Store, pinned: &PublicKey) -> Result<VerifyReport, StoreError> {
    let checkpoints = store.checkpoints().await?;
    let mut v = Verifier::new(&checkpoints);
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

/// The chain, entry by entry, then the checkpoints: the same check for the database
/// and for an export read from a file (`export`).
pub struct Verifier {
    chain: ChainVerifier,
    wanted: std::collections::HashSet<i64>,
    hashes_at_checkpoints: std::collections::HashMap<i64, [u8; 32]>,
    failure: Option<VerifyFailure>,
}

impl Verifier {
    pub fn new(checkpoints: &[CheckpointRow]) -> Verifier {
        Verifier {
            chain: ChainVerifier::new(),
            wanted: checkpoints.iter().map(|c| c.seq).collect(),
            hashes_at_checkpoints: std::collections::HashMap::new(),
            failure: None,
        }
    }

    /// Add the next entries in order; false once the chain is broken.
    pub fn push_all(&mut self, entries: &[AuditEntry]) -> bool {
        for e in entries {
            if self.failure.is_some() {
                return false;
            }
            if let Err(b) = self.chain.push(e) {
                self.failure = Some(b.into());
                return false;
            }
            if self.wanted.contains(&(e.seq as i64)) {
                self.hashes_at_checkpoints.insert(e.seq as i64, e.hash);
            }
        }
        self.failure.is_none()
    }

    /// Check every checkpoint against the chain seen and the pinned key.
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
        VerifyReport {
            entries: self.chain.head().0,
            checkpoints: checkpoints.len() as u64,
            signed_through,
            key: pinned.to_hex(),
            ok: self.failure.is_none(),
            first_break: self.failure.map(|f| f.to_string()),
        }
    }

    fn checkpoint(&self, c: &CheckpointRow, pinned: &PublicKey) -> Result<(), VerifyFailure> {
        if c.hub_key.parse::<PublicKey>().ok().as_ref() != Some(pinned) {
            return Err(VerifyFailure::ForeignKey(c.seq));
        }
        let mut sig = [0u8; 64];
        let mut hash = [0u8; 32];
        let parsed = hex::decode_to_slice(&c.signature, &mut sig).is_ok()
            && hex::decode_to_slice(&c.hash, &mut hash).is_ok();
        let sig_ok = parsed
            && pinned
                .0
                .verify_strict(
                    &checkpoint_message(c.seq as u64, &hash, c.time_ms),
                    &ed25519_dalek_sig(&sig),
                )
                .is_ok();
        if !sig_ok {
            return Err(VerifyFailure::BadCheckpointSignature(c.seq));
        }
        match self.hashes_at_checkpoints.get(&c.seq) {
            None => Err(VerifyFailure::CheckpointBeyondEnd(c.seq)),
            Some(h) if *h != hash => Err(VerifyFailure::CheckpointMismatch(c.seq)),
            Some(_) => Ok(()),
        }
    }
}

fn ed25519_dalek_sig(b: &[u8; 64]) -> threshold_proto_sig::Signature {
    threshold_proto_sig::Signature::from_bytes(b)
}

mod threshold_proto_sig {
    pub use ed25519_dalek::Signature;
}
