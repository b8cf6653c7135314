//! Hub -> device messages in a fleet. A device refuses any downlink whose number is not
//! above the last it accepted (docs/protocol.md §6.4), so its downlinks must arrive in
//! the order they were numbered: the node acting for its home numbers (from the
//! database's per-device counter) and sends every one of them over its one broker
//! connection. A node that decides something for another node's home (an entry asked
//! of it, an owner's lock command) leaves the message for the acting node
//! (`fleet_downlinks`, announced by NOTIFY), which sends it at once; a node taking a
//! home over sends what was left waiting.

use crate::state::AppState;
use threshold_proto::{DeviceId, Kind};

/// Waiting downlinks older than this are dropped, not sent (an unlock token inside
/// would have expired; a lock command that late would surprise whoever is at the door).
pub const DOWNLINK_MAX_WAIT_MS: i64 = 30_000;

/// Send `body` as a `kind` downlink to `device`: directly if this node acts for the
/// device's home (or is a single hub), otherwise through the acting node. False if it
/// could not be sent or left.
pub async fn send(
    state: &AppState,
    device: DeviceId,
    kind: Kind,
    body: &impl serde::Serialize,
) -> bool {
    let now = state.clock.now_ms();
    let home = state.registry.with(&device, |e| e.home_id.clone());
    match home {
        Some(home) if !state.fleet.owns_home(&home) => {
            let Ok(json) = serde_json::to_string(body) else {
                return false;
            };
            match state
                .store
                .fleet_queue_downlink(&device.to_hex(), &home, kind.code(), &json, now)
                .await
            {
                Ok(_) => true,
                Err(e) => {
                    tracing::error!(device = %device, error = %e, "fleet: could not leave a downlink for the acting node");
                    false
                }
            }
        }
        _ => {
            state
                .downlink
                .send(&state.hub_key, device, kind, body, now)
                .await
        }
    }
}

/// A waiting downlink was announced: send it if this node acts for its home.
pub async fn on_announced(state: &AppState, id: i64, home_id: &str) {
    if state.fleet.owns_home(home_id) {
        take_and_send(state, id).await;
    }
}

/// Send whatever waits for the homes this node acts for (after a takeover, or when
/// notifications may have been missed); drop what waited too long.
pub async fn send_waiting(state: &AppState) {
    let waiting = match state.store.fleet_waiting_downlinks(1000).await {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "fleet: could not read waiting downlinks");
            return;
        }
    };
    let now = state.clock.now_ms();
    for w in waiting {
        if now.saturating_sub(w.created_ms) > DOWNLINK_MAX_WAIT_MS {
            if let Ok(Some(old)) = state.store.fleet_take_downlink(w.id).await {
                tracing::warn!(device = %old.device_id, kind = old.kind, "fleet: a downlink waited too long for its home's node; dropped");
            }
        } else if state.fleet.owns_home(&w.home_id) {
            take_and_send(state, w.id).await;
        }
    }
}

async fn take_and_send(state: &AppState, id: i64) {
    let w = match state.store.fleet_take_downlink(id).await {
        Ok(Some(w)) => w,
        Ok(None) => return, // another node sent it
        Err(e) => {
            tracing::warn!(error = %e, "fleet: could not take a waiting downlink");
            return;
        }
    };
    let (Ok(device), Some(kind), Ok(body)) = (
        w.device_id.parse::<DeviceId>(),
        u8::try_from(w.kind).ok().and_then(Kind::from_code),
        serde_json::from_str::<serde_json::Value>(&w.body),
    ) else {
        tracing::error!(id = w.id, "fleet: unreadable waiting downlink dropped");
        return;
    };
    if !kind.is_uplink() {
        let now = state.clock.now_ms();
        if !state
            .downlink
            .send(&state.hub_key, device, kind, &body, now)
            .await
        {
            tracing::warn!(device = %device, "fleet: a downlink left by another node could not be sent");
        }
    }
}
