//! Alerts about the hub itself, for operators (`GET /api/v1/system/alerts`): it fell
//! behind with its devices' messages, lost its broker, could not reach its database.
//! One per episode of each hub process (the cause key holds the episode's start and,
//! in a fleet, the node's name), resolved when the episode ends.

use crate::state::AppState;
use serde_json::json;
use threshold_core::Millis;

/// The cause key of one episode of `kind` that began at `since`.
pub fn cause(state: &AppState, kind: &str, since: Millis) -> String {
    match state.fleet.node_id() {
        Some(node) => format!("{kind}:{node}:{since}"),
        None => format!("{kind}:{since}"),
    }
}

/// Store a critical system alert (once per cause), count and audit it.
pub async fn raise(
    state: &AppState,
    kind: &str,
    message: &str,
    mut evidence: serde_json::Value,
    since: Millis,
) {
    if let Some(map) = evidence.as_object_mut() {
        map.insert("node".into(), json!(state.fleet.node_id()));
    }
    let key = cause(state, kind, since);
    let raised = state
        .store
        .raise_system_alert(
            threshold_store::NewSystemAlert {
                kind,
                severity: "critical",
                message,
                evidence: &evidence.to_string(),
                cause_key: &key,
            },
            since,
        )
        .await;
    match raised {
        Ok(Some(row)) => {
            state.metrics.count_alert(&row.kind);
            crate::audit::record(
                state,
                "system_alert",
                "hub",
                "hub",
                json!({"alert_id": row.id, "kind": row.kind, "evidence": evidence}),
            )
            .await;
        }
        Ok(None) => {}
        Err(e) => tracing::error!(error = %e, kind, "could not store a system alert"),
    }
}

/// The episode of `kind` that began at `since` ended at `at`.
pub async fn resolve(state: &AppState, kind: &str, since: Millis, at: Millis) {
    if let Err(e) = state
        .store
        .resolve_system_alert(&cause(state, kind, since), at)
        .await
    {
        tracing::error!(error = %e, kind, "could not resolve a system alert");
    }
}
