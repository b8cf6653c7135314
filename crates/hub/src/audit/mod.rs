//! The audit log: appending through the journal (`journal`: group commit, signed
//! checkpoints of the chain head every N entries, each handed to an external witness
//! when one is set: `witness`), verifying the whole chain with a pinned key
//! (`verify`), and the log, or one home's part of it, as a file to verify offline
//! (`export`).

pub mod export;
pub mod journal;
mod verify;
pub mod witness;

pub use journal::{Journal, JournalError, Record};
pub use verify::{verify, verify_with_witness, VerifyFailure, VerifyReport};

use crate::state::AppState;
use threshold_store::NewTimelineRow;

/// Record a security-relevant event of `home_id` (see [`record`]).
pub async fn record_in(
    state: &AppState,
    home_id: &str,
    kind: &str,
    actor: &str,
    subject: &str,
    detail: serde_json::Value,
) {
    record_all(
        state,
        vec![Record::new(kind, actor, subject, detail).in_home(home_id)],
        Vec::new(),
    )
    .await;
}

/// Record a security-relevant event. Failures are logged loudly but do not fail the
/// action that caused them (the action itself is already durable in its own table).
/// The home it belongs to: see [`Record::new`].
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
    let audit: Vec<Record> = audit.into_iter().map(|r| attribute(state, r)).collect();
    let kinds: Vec<String> = audit.iter().map(|r| r.kind.clone()).collect();
    if let Err(err) = state.journal.write(audit, timeline).await {
        tracing::error!(error = %err, audit = ?kinds, "could not append to the audit log and timeline");
    }
}

/// A record about a device or a door belongs to the home the device or door is in
/// now (the hub's registry and doors, in memory), unless it names its home already.
fn attribute(state: &AppState, r: Record) -> Record {
    if r.home().is_some() {
        return r;
    }
    let home = if let Some(id) = r.subject.strip_prefix("device:") {
        id.parse::<threshold_proto::DeviceId>()
            .ok()
            .and_then(|d| state.registry.with(&d, |e| e.home_id.clone()))
    } else if let Some(id) = r.subject.strip_prefix("door:") {
        state.access.doors.get(id).map(|d| d.home_id)
    } else {
        None
    };
    match home {
        Some(h) => r.in_home(&h),
        None => r,
    }
}
