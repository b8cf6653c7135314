//! A garage-door opener's safety sensor saw something in the door's way. The opener
//! logs it in its signed event log (`obstruction_detected`); the owner is told once per
//! report, with the door and whether a delivery is under way, because an obstructed
//! door that was told to close stays open.

use crate::state::AppState;
use serde_json::json;
use threshold_core::alert::AlertKind;
use threshold_proto::SignedMessage;

pub async fn on_obstruction(state: &AppState, home_id: &str, owner_id: &str, msg: &SignedMessage) {
    let device = msg.device.to_hex();
    let door = state
        .access
        .doors
        .of_device(&msg.device)
        .into_iter()
        .find(|d| d.lock == Some(msg.device));
    let name = door
        .as_ref()
        .map(|d| d.name.as_str())
        .unwrap_or("The garage door");
    let delivery = match &door {
        Some(d) => state
            .store
            .active_deliveries_of_door(&d.id)
            .await
            .unwrap_or_default()
            .into_iter()
            .next()
            .map(|d| d.id),
        None => None,
    };
    let message = format!(
        "{name}: the opener's safety sensor reports an obstruction in the door's way. The door may not close until it is cleared."
    );
    crate::alerts::raise(
        state,
        owner_id,
        crate::alerts::Alert {
            kind: AlertKind::GarageObstructed,
            home_id,
            device_id: Some(&device),
            delivery_id: delivery.as_deref(),
            message: &message,
            evidence:
                &json!({"door_id": door.as_ref().map(|d| &d.id), "device_time_ms": msg.time_ms,
                "event_seq": msg.seq, "delivery_id": delivery})
                .to_string(),
            cause_key: Some(&format!("garage_obstructed:{device}:{}", msg.seq)),
        },
    )
    .await;
}
