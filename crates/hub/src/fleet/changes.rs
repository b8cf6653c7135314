//! What every node caches, kept true across the fleet: a node that changes a device
//! (revoked, enrolled), a home's doors (cameras bound, locks paired) or a delivery's
//! state announces it; every node (itself included) reloads that one thing from the
//! database. A node that may have missed announcements (its listening connection was
//! lost) reloads everything instead.

use crate::state::AppState;
use threshold_proto::DeviceId;
use threshold_store::fleet::Channel;

/// One cached thing that changed in the database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Device(String),
    Home(String),
    Delivery(String),
    /// An owner's webhook endpoints (by owner id).
    Webhooks(String),
}

impl Change {
    pub fn payload(&self) -> String {
        match self {
            Change::Device(id) => format!("device:{id}"),
            Change::Home(id) => format!("home:{id}"),
            Change::Delivery(id) => format!("delivery:{id}"),
            Change::Webhooks(owner) => format!("webhooks:{owner}"),
        }
    }

    pub fn parse(payload: &str) -> Option<Change> {
        let (what, id) = payload.split_once(':')?;
        if id.is_empty() || id.len() > 128 {
            return None;
        }
        let id = id.to_owned();
        match what {
            "device" => Some(Change::Device(id)),
            "home" => Some(Change::Home(id)),
            "delivery" => Some(Change::Delivery(id)),
            "webhooks" => Some(Change::Webhooks(id)),
            _ => None,
        }
    }
}

/// Tell the other nodes (a single hub has nobody to tell). A lost announcement is
/// logged; the periodic reconciliation of open deliveries, and a device's next
/// message (looked up when unknown), are the slower ways the news still arrives.
pub async fn announce(state: &AppState, change: Change) {
    if state.fleet.node_id().is_none() {
        return;
    }
    if let Err(e) = state
        .store
        .fleet_notify(Channel::Changes, &change.payload())
        .await
    {
        tracing::error!(error = %e, change = %change.payload(), "fleet: could not announce a change");
    }
}

/// An owner's webhook endpoints changed here: reload them, and tell the other nodes.
pub async fn webhooks_changed(state: &AppState, owner_id: &str) {
    let change = Change::Webhooks(owner_id.to_owned());
    apply(state, &change).await;
    announce(state, change).await;
}

/// A home's doors changed here: reload them, and tell the other nodes.
pub async fn home_changed(
    state: &AppState,
    home_id: &str,
) -> Result<Vec<threshold_store::DoorRow>, threshold_store::StoreError> {
    let rows = crate::access::doors::reload_home(state, home_id).await?;
    announce(state, Change::Home(home_id.to_owned())).await;
    Ok(rows)
}

/// A delivery moved here outside the state machine's own update (an entry claimed
/// with its audit record): follow it in the open index, and tell the other nodes.
pub async fn delivery_changed(state: &AppState, id: &str) {
    let change = Change::Delivery(id.to_owned());
    apply(state, &change).await;
    announce(state, change).await;
}

/// Reload what `change` names from the database.
pub async fn apply(state: &AppState, change: &Change) {
    let result = match change {
        Change::Device(id) => reload_device(state, id, false).await,
        Change::Home(id) => reload_home_and_tell_locks(state, id).await,
        Change::Delivery(id) => match state.store.delivery_any(id).await {
            Ok(row) => {
                state.access.open.update(row);
                Ok(())
            }
            Err(e) => Err(e),
        },
        Change::Webhooks(owner) => match state.store.webhook_endpoints(owner).await {
            Ok(rows) => {
                state.webhooks.endpoints.set_owner(owner, rows);
                Ok(())
            }
            Err(e) => Err(e),
        },
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, change = %change.payload(), "fleet: could not reload a change");
    }
}

/// Another node changed a home's doors: reload them; if this node acts for the home,
/// each lock whose cameras changed learns its new set now. The changing node's own
/// message may have been sent while nobody acted for the home, or before the lock was
/// connected; the acting node telling it again closes that gap (a lock takes the newest
/// set; a repeat is harmless).
async fn reload_home_and_tell_locks(
    state: &AppState,
    home_id: &str,
) -> Result<(), threshold_store::StoreError> {
    let before = state.access.doors.of_home(home_id);
    crate::access::doors::reload_home(state, home_id).await?;
    if state.fleet.owns_home(home_id) {
        let changed: Vec<_> = state
            .access
            .doors
            .of_home(home_id)
            .into_iter()
            .filter(|d| {
                !before
                    .iter()
                    .any(|b| b.id == d.id && b.lock == d.lock && b.cameras == d.cameras)
            })
            .collect();
        crate::access::unlock::send_cameras_to_locks(state, &changed).await;
    }
    Ok(())
}

/// Read the open deliveries from the database into the access pass's index (what moved
/// while the read ran is kept): the pass's periodic reconciliation, and catching up on
/// missed announcements.
pub async fn read_open_deliveries(state: &AppState) -> Result<(), threshold_store::StoreError> {
    let began = state.clock.now_ms();
    let rows = state
        .store
        .deliveries_in_states(
            &threshold_core::delivery::DeliveryState::session_open_names(),
            crate::access::open::READ_LIMIT,
        )
        .await?;
    state.access.open.replace_all(rows, began);
    Ok(())
}

/// Announcements may have been missed: reload every device's identity, every door and
/// the open deliveries.
pub async fn catch_up(state: &AppState) {
    let result: Result<(), threshold_store::StoreError> = async {
        for row in state.store.all_devices().await? {
            apply_identity(state, &row);
        }
        {
            let _newest_wins = state.access.doors.reloading().await;
            state.access.doors.set_all(&state.store.all_doors().await?);
        }
        state
            .webhooks
            .endpoints
            .set_all(state.store.all_webhook_endpoints().await?);
        read_open_deliveries(state).await
    }
    .await;
    match result {
        Ok(()) => tracing::info!("fleet: caught up with changes from the database"),
        Err(e) => tracing::error!(error = %e, "fleet: could not catch up with changes"),
    }
}

/// A device's row, applied to its cached entry (or a new entry): who it is, whose, and
/// whether it is revoked. With `records`, also its event and frame logs as stored,
/// which a node taking over its home must start from (it did not store them itself).
pub async fn reload_device(
    state: &AppState,
    id: &str,
    records: bool,
) -> Result<(), threshold_store::StoreError> {
    let row = state.store.device_any(id).await?;
    let Ok(did) = id.parse::<DeviceId>() else {
        return Ok(());
    };
    if !state.registry.contains(&did) || records {
        let Some(fresh) = crate::gateway::loading::fenced_entry(state, &row).await? else {
            return Ok(());
        };
        let known = state.registry.with(&did, |e| {
            e.events = fresh.events.clone();
            e.frames = fresh.frames.clone();
        });
        if known.is_none() {
            state.registry.insert(fresh);
            return Ok(());
        }
    }
    apply_identity(state, &row);
    Ok(())
}

fn apply_identity(state: &AppState, row: &threshold_store::DeviceRow) {
    let Ok(did) = row.id.parse::<DeviceId>() else {
        return;
    };
    let moved = state.registry.with(&did, |e| {
        e.revoked = row.revoked_ms.is_some();
        // A renewed broker password (`http::credentials`) is taken at every node.
        e.mqtt_password_hash = row.mqtt_password_hash.clone();
        e.name = row.name.clone();
        e.owner_id = row.owner_id.clone();
        e.home_id != row.home_id
    });
    if moved == Some(true) {
        tracing::warn!(device = %row.id, "fleet: a device's home changed; it is reloaded on its next message");
    }
}

/// A node takes partitions `parts` over: every device of their homes starts from the
/// records the database holds (the previous owner stored them, not this node). One
/// query for all devices; a device's gaps are read only where its logs differ.
pub async fn take_over_records(
    state: &AppState,
    parts: &[u32],
) -> Result<(), threshold_store::StoreError> {
    for row in state.store.all_devices().await? {
        if !parts.contains(&state.fleet.partition_of(&row.home_id)) {
            continue;
        }
        let Ok(did) = row.id.parse::<DeviceId>() else {
            continue;
        };
        let stale = state
            .registry
            .with(&did, |e| {
                e.events.highest() as i64 != row.event_hwm
                    || e.frames.highest() as i64 != row.frame_hwm
                    || !e.events.missing().ranges().is_empty()
                    || !e.frames.missing().ranges().is_empty()
            })
            .unwrap_or(true);
        if stale {
            reload_device(state, &row.id, true).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_travel_as_short_text_and_nothing_else_parses() {
        for c in [
            Change::Device("ab".into()),
            Change::Home("h1".into()),
            Change::Delivery("d1".into()),
            Change::Webhooks("o1".into()),
        ] {
            assert_eq!(Change::parse(&c.payload()), Some(c));
        }
        assert_eq!(Change::parse("device:"), None);
        assert_eq!(Change::parse("user:x"), None);
        assert_eq!(Change::parse("nothing"), None);
        assert_eq!(Change::parse(&format!("home:{}", "x".repeat(200))), None);
    }
}
