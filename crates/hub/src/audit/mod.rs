//! The audit log: appending through the journal (`journal`: group commit, signed
//! checkpoints of the chain head every N entries), verifying the whole chain with a
//! pinned key (`verify`), and the log as a file to verify offline (`export`).

pub mod export;
pub mod journal;
mod verify;

pub use journal::{Journal, JournalError, Record};
pub use verify::{verify, VerifyFailure, VerifyReport};

use crate::state::AppState;
use threshold_store::NewTimelineRow;

/// Record a security-relevant event. Failures are logged loudly but do not fail the
/// action that caused them (the action itself is already durable in its own table).
pub async fn record(
    state: &AppState,
    kind: &str,
    actor: &str,
    subject: &str,
    detail: serde_json::Value,
) {
    record_all(
        state,
        vec![Record::new(kind, actor, subject, detail)],
        Vec::new(),
    )
    .await;
}

/// Record several audit entries (consecutive in the chain) and timeline rows in one
/// commit, e.g. a decision and the token it issued. Failures are logged, as for
/// [`record`].
pub async fn record_all(state: &AppState, audit: Vec<Record>, timeline: Vec<NewTimelineRow>) {
    let kinds: Vec<String> = audit.iter().map(|r| r.kind.clone()).collect();
    if let Err(err) = state.journal.write(audit, timeline).await {
        tracing::error!(error = %err, audit = ?kinds, "could not append to the audit log and timeline");
    }
}
