//! Raising an alert: stored once per cause, audited, put on the owner's live feed and
//! sent to their webhooks.

pub mod endpoints;
pub mod gaps;
pub mod push;
pub mod system;
pub mod wake;
pub mod webhooks;

use crate::events::HubEvent;
use crate::state::AppState;
use serde::Serialize;
use serde_json::json;
use threshold_core::alert::AlertKind;
use threshold_store::{AlertRow, NewAlert};
use utoipa::ToSchema;

/// An alert to raise: its kind (which fixes its code and severity,
/// `threshold_core::alert`) and what it is about.
#[derive(Clone, Debug)]
pub struct Alert<'a> {
    pub kind: AlertKind,
    pub home_id: &'a str,
    pub device_id: Option<&'a str>,
    pub delivery_id: Option<&'a str>,
    pub message: &'a str,
    /// JSON: what the hub knew when it raised it.
    pub evidence: &'a str,
    /// What caused it, unique per cause: a second alert with the same key is not
    /// raised. None: no deduplication.
    pub cause_key: Option<&'a str>,
}

/// Store an alert and tell the owner. Returns the stored alert; `None` if an alert
/// with the same cause key was raised before (nothing more happens: one cause, one
/// alert) or it could not be stored (logged).
pub async fn raise(state: &AppState, owner_id: &str, alert: Alert<'_>) -> Option<AlertRow> {
    let a = NewAlert {
        home_id: alert.home_id,
        device_id: alert.device_id,
        delivery_id: alert.delivery_id,
        severity: alert.kind.severity().as_str(),
        kind: alert.kind.code(),
        message: alert.message,
        evidence: alert.evidence,
        cause_key: alert.cause_key,
    };
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
    state.metrics.count_alert(&row.kind);
    tracing::warn!(alert = %row.kind, home = %row.home_id, severity = %row.severity, "alert raised");
    crate::audit::record(
        state,
        "alert",
        "hub",
        &format!("home:{}", row.home_id),
        json!({"alert_id": row.id, "kind": row.kind, "severity": row.severity}),
    )
    .await;
    let body = alert_json(&row);
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

/// An alert as the owner's apps, webhooks and the live feed see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertJson {
    pub id: String,
    pub home_id: String,
    pub device_id: Option<String>,
    pub delivery_id: Option<String>,
    pub severity: String,
    pub kind: String,
    pub message: String,
    #[schema(value_type = Object)]
    pub evidence: serde_json::Value,
    pub created_ms: i64,
    pub acked_ms: Option<i64>,
}

pub fn alert_json(a: &AlertRow) -> serde_json::Value {
    serde_json::to_value(AlertJson {
        id: a.id.clone(),
        home_id: a.home_id.clone(),
        device_id: a.device_id.clone(),
        delivery_id: a.delivery_id.clone(),
        severity: a.severity.clone(),
        kind: a.kind.clone(),
        message: a.message.clone(),
        evidence: serde_json::from_str(&a.evidence).unwrap_or(json!({})),
        created_ms: a.created_ms,
        acked_ms: a.acked_ms,
    })
    .unwrap_or(json!({}))
}

/// How many due gaps one access pass raises at most: each is a few durable writes, and
/// the pass also decides incidents; the rest wait for the next pass (250 ms).
const GAPS_PER_PASS: usize = 8;

/// Raise an alert for due gaps in devices' event logs whose records are still
/// missing (`gaps`), a few per call.
pub async fn raise_due_gaps(state: &AppState) {
    for gap in state.gaps.take_due(state.clock.now_ms(), GAPS_PER_PASS) {
        let still: Vec<(u64, u64)> = state
            .registry
            .with(&gap.device, |e| {
                e.events
                    .missing()
                    .ranges()
                    .iter()
                    .copied()
                    .filter(|&(a, b)| a <= gap.to && b >= gap.from)
                    .collect()
            })
            .unwrap_or_default();
        let (Some(&(first, _)), Some(&(_, last))) = (still.first(), still.last()) else {
            continue;
        };
        let name = state
            .registry
            .identity(&gap.device)
            .map(|(_, _, name, _)| name)
            .unwrap_or_else(|| "A device".into());
        let message = format!(
            "{name}: events {first} to {last} are missing from its log; they may arrive late"
        );
        let device = gap.device.to_hex();
        raise(
            state,
            &gap.owner_id,
            Alert {
                kind: AlertKind::SequenceGap,
                home_id: &gap.home_id,
                device_id: Some(&device),
                delivery_id: None,
                message: &message,
                evidence: &json!({"from": gap.from, "to": gap.to, "still_missing": still})
                    .to_string(),
                cause_key: None,
            },
        )
        .await;
    }
}
