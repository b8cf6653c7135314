//! Appending to the audit log, with a signed checkpoint of the chain head every N
//! entries, and verifying the whole chain.

use crate::state::AppState;
use threshold_core::audit::{checkpoint_message, ChainBreak, ChainVerifier};
use threshold_proto::{DeviceKey, PublicKey};
use threshold_store::{CheckpointRow, Store, StoreError};

/// Record a security-relevant event. Failures are logged loudly but do not fail the
/// action that caused them (the action itself is already durable in its own table).
pub async fn record(
    state: &AppState,
    kind: &str,
    actor: &str,
    subject: &str,
    detail: serde_json::Value,
) {
    let _serial = state.audit_lock.lock().await;
    let now = state.clock.now_ms();
    match state
        .store
        .append_audit(now, kind, actor, subject, &detail.to_string())
        .await
    {
        Ok(e) => {
            if state.config.audit_checkpoint_every > 0
                && e.seq % state.config.audit_checkpoint_every == 0
            {
                if let Err(err) =
                    checkpoint(&state.store, &state.hub_key, e.seq, &e.hash, now).await
                {
                    tracing::error!(error = %err, "could not write audit checkpoint");
                }
            }
        }
        Err(err) => tracing::error!(error = %err, kind, "could not append to audit log"),
    }
}

pub async fn checkpoint(
    store: &Store,
    key: &DeviceKey,
    seq: u64,
    hash: &[u8; 32],
    now: i64,
) -> Result<(), StoreError> {
    let sig = key.sign(&checkpoint_message(seq, hash, now));
    store
        .add_checkpoint(&CheckpointRow {
            seq: seq as i64,
            hash: hex::encode(hash),
            time_ms: now,
            hub_key: key.public().to_hex(),
            signature: hex::encode(sig),
        })
        .await
}

#[derive(Debug, serde::Serialize)]
pub struct VerifyReport {
    pub entries: u64,
    pub checkpoints: u64,
    pub ok: bool,
    pub first_break: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyFailure {
    #[error("{0}")]
    Chain(#[from] ChainBreak),
    #[error("checkpoint at entry {0}: signature does not verify")]
    BadCheckpointSignature(i64),
    #[error("checkpoint at entry {0}: the chain's hash there differs from the signed one (history was rewritten)")]
    CheckpointMismatch(i64),
    #[error("checkpoint at entry {0}: no such entry (the log was truncated)")]
    CheckpointBeyondEnd(i64),
}

/// Recompute the whole chain and check every signed checkpoint against it.
pub async fn verify(store: &Store) -> Result<VerifyReport, StoreError> {
    let checkpoints = store.checkpoints().await?;
    let mut v = ChainVerifier::new();
    let mut hashes_at_checkpoints = std::collections::HashMap::new();
    let wanted: std::collections::HashSet<i64> = checkpoints.iter().map(|c| c.seq).collect();
    let mut after = 0u64;
    let mut failure: Option<VerifyFailure> = None;
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
            let key: Option<PublicKey> = c.hub_key.parse().ok();
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
                Some(_) => {}
            }
        }
    }
    Ok(VerifyReport {
        entries: v.head().0,
        checkpoints: checkpoints.len() as u64,
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
