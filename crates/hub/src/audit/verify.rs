//! Verifying the whole audit chain against its signed checkpoints, with a key the
//! verifier pinned beforehand: never with a key read from the data being verified,
//! since whoever can rewrite the database can also write a key of their own beside a
//! history they re-signed.

use threshold_core::audit::{checkpoint_message, ChainBreak, ChainVerifier};
use threshold_proto::PublicKey;
use threshold_store::{Store, StoreError};

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
    let mut v = ChainVerifier::new();
    let mut hashes_at_checkpoints = std::collections::HashMap::new();
    let wanted: std::collections::HashSet<i64> = checkpoints.iter().map(|c| c.seq).collect();
    let mut after = 0u64;
    let mut failure: Option<VerifyFailure> = None;
    let mut signed_through = 0u64;
    'outer: loop {
        let page = store.audit_page(after, 1000).await?;
        if page.is_empty() {
            break;
        }
        for e in &page {
            if let Err(b) = v.push(e) {
                failure = Some(b.into());
                break 'outer;
            }
            if wanted.contains(&(e.seq as i64)) {
                hashes_at_checkpoints.insert(e.seq as i64, e.hash);
            }
            after = e.seq;
        }
    }
    if failure.is_none() {
        for c in &checkpoints {
            if c.hub_key.parse::<PublicKey>().ok().as_ref() != Some(pinned) {
                failure = Some(VerifyFailure::ForeignKey(c.seq));
                break;
            }
            let key = Some(pinned);
            let mut sig = [0u8; 64];
            let mut hash = [0u8; 32];
            let parsed = hex::decode_to_slice(&c.signature, &mut sig).is_ok()
                && hex::decode_to_slice(&c.hash, &mut hash).is_ok();
            let sig_ok = parsed
                && key.is_some_and(|k| {
                    let s = ed25519_dalek_sig(&sig);
                    k.0.verify_strict(&checkpoint_message(c.seq as u64, &hash, c.time_ms), &s)
                        .is_ok()
                });
            if !sig_ok {
                failure = Some(VerifyFailure::BadCheckpointSignature(c.seq));
                break;
            }
            match hashes_at_checkpoints.get(&c.seq) {
                None => {
                    failure = Some(VerifyFailure::CheckpointBeyondEnd(c.seq));
                    break;
                }
                Some(h) if *h != hash => {
                    failure = Some(VerifyFailure::CheckpointMismatch(c.seq));
                    break;
                }
                Some(_) => signed_through = signed_through.max(c.seq as u64),
            }
        }
    }
    Ok(VerifyReport {
        entries: v.head().0,
        checkpoints: checkpoints.len() as u64,
        signed_through,
        key: pinned.to_hex(),
        ok: failure.is_none(),
        first_break: failure.map(|f| f.to_string()),
    })
}

fn ed25519_dalek_sig(b: &[u8; 64]) -> threshold_proto_sig::Signature {
    threshold_proto_sig::Signature::from_bytes(b)
}

mod threshold_proto_sig {
    pub use ed25519_dalek::Signature;
}
