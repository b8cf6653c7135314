//! Raising an alert: stored once per cause, audited, put on the owner's live feed and
//! sent to their webhooks.

pub mod push;
pub mod wake;
pub mod webhooks;

use crate::events::HubEvent;
use crate::state::AppState;
use serde_json::json;
use threshold_store::{AlertRow, NewAlert};

/// Store an alert and tell the owner. Returns the stored alert; `None` if an alert
/// with the same cause key was raised before (nothing more happens: one cause, one
/// alert) or it could not be stored (logged).
pub async fn raise(state: &AppState, owner_id: &str, a: NewAlert<'_>) -> Option<AlertRow> {
    let now = state.clock.now_ms();
    let row = match state.store.create_alert(a.clone(), now).await {
        Ok(Some(row)) => row,
        Ok(None) => {
            tracing::debug!(
                cause = a.cause_key.unwrap_or(""),
                "alert already raised for this cause"
            );
            return None;
        }
        Err(e) => {
            tracing::error!(error = %e, kind = a.kind, "could not store alert");
            return None;
        }
    };
    state
        .metrics
        .alerts
        .get_or_create(&crate::metrics::KindLabel {
            kind: row.kind.clone(),
        })
        .inc();
    tracing::warn!(alert = %row.kind, home = %row.home_id, severity = %row.severity, "alert raised");
    crate::audit::record(
        state,
        "alert",
        "hub",
        &format!("home:{}", row.home_id),
        json!({"alert_id": row.id, "kind": row.kind, "severity": row.severity}),
    )
    .await;
    let body = crate::api::dto::alert_json(&row);
    state.bus.publish(HubEvent {
        owner_id: owner_id.to_owned(),
        courier_id: None,
        home_id: row.home_id.clone(),
        event_type: "alert".into(),
        time_ms: now,
        data: body.clone(),
    });
    crate::alerts::webhooks::on_alert(state, owner_id, &body).await;
    Some(row)
}
