//! Law 5 and "one door opening is one event": every `door_opened` a lock or contact
//! sensor reports becomes one recorded opening of its door (the other device's report
//! of the same opening is merged into it), attributed to the session it falls in
//! (`threshold_core::opening::attribute`), whenever the hub learns of it. An opening
//! no session covers is one `unauthorized_entry`; openings while a delivery's camera
//! was lost or after it was marked delivered are one alert per delivery, the rest of
//! them evidence on its timeline.

use crate::state::AppState;
use serde_json::json;
use threshold_core::alert::AlertKind;
use threshold_core::opening::{attribute, same_opening, Attribution, Recorded, SessionKind, Span};
use threshold_proto::{DeviceId, SignedMessage};
use threshold_store::{OpeningRow, SessionRow};

/// Reports of the same opening by two devices of a door are at most this far apart.
pub const MERGE_MS: i64 = 3_000;

fn span(s: &SessionRow) -> Span {
    let kind = if s.delivery_id.is_some() {
        SessionKind::Delivery
    } else if s.grant_ref.starts_with("guest:") {
        SessionKind::Guest
    } else {
        SessionKind::Owner
    };
    Span {
        kind,
        opened_ms: s.opened_ms,
        delivered_ms: s.delivered_ms,
        camera_lost_ms: s.compromised_ms,
        ends_ms: s.ends_ms,
        closed_ms: s.closed_ms,
    }
}

/// A `door_opened` record from `device` (already stored and acknowledged).
pub async fn on_door_opened(
    state: &AppState,
    home_id: &str,
    owner_id: &str,
    device: &DeviceId,
    msg: &SignedMessage,
) {
    let now = state.clock.now_ms();
    // When it happened on the hub's clock: the device's signed time, mapped with its
    // clock offset as estimated now.
    let t = state
        .registry
        .with(device, |e| e.liveness.to_hub_time(msg.time_ms, now))
        .unwrap_or(msg.time_ms);
    let door = state
        .access
        .doors
        .of_device(device)
        .into_iter()
        .find(|d| d.lock == Some(*device) || d.contact == Some(*device));
    let door_id = door.as_ref().map(|d| d.id.clone());
    let key = door_id.clone().unwrap_or_else(|| format!("home:{home_id}"));
    let lock = state.access.opening_lock(&key);
    let _one_at_a_time = lock.lock().await;
    let dev = device.to_hex();
    // The same physical opening, already reported by the door's other device?
    let recorded = match state
        .store
        .openings_between(home_id, door_id.as_deref(), t - MERGE_MS, t + MERGE_MS)
        .await
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "could not read door openings; judging this one on its own");
            Vec::new()
        }
    };
    let reporters: Vec<Vec<String>> = recorded
        .iter()
        .map(|o| o.reported_by.split(',').map(str::to_owned).collect())
        .collect();
    let views: Vec<Recorded<'_>> = recorded
        .iter()
        .zip(&reporters)
        .map(|(o, r)| Recorded {
            at_ms: o.at_ms,
            reported_by: r,
        })
        .collect();
    if let Some(i) = same_opening(&views, &dev, t, MERGE_MS) {
        if let (Some(o), Some(r)) = (recorded.get(i), reporters.get(i)) {
            let by = r
                .iter()
                .cloned()
                .chain([dev.clone()])
                .collect::<Vec<_>>()
                .join(",");
            if let Err(e) = state.store.set_opening_reporters(&o.id, &by).await {
                tracing::error!(error = %e, "could not merge a door opening");
            }
            tracing::debug!(opening = %o.id, device = %dev, "second report of one door opening merged");
        }
        return;
    }
    let slack = state.config.max_clock_skew_ms.max(0);
    let sessions = match state
        .store
        .sessions_near(home_id, door_id.as_deref(), t, slack + 24 * 3600 * 1000)
        .await
    {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "could not read sessions; treating the door opening as unauthorised");
            Vec::new()
        }
    };
    let spans: Vec<Span> = sessions.iter().map(span).collect();
    let attribution = attribute(&spans, t, slack);
    let session = |i: usize| sessions.get(i);
    let (word, s) = match attribution {
        Attribution::Authorised(i) => ("authorised", session(i)),
        Attribution::Unwatched(i) => ("unwatched", session(i)),
        Attribution::AfterDelivery(i) => ("after_delivery", session(i)),
        Attribution::Unauthorised => ("unauthorised", None),
    };
    let opening = OpeningRow {
        id: threshold_store::new_id(),
        home_id: home_id.to_owned(),
        door_id: door_id.clone(),
        at_ms: t,
        reported_by: dev.clone(),
        attribution: word.to_owned(),
        session_id: s.map(|s| s.id.clone()),
        delivery_id: s.and_then(|s| s.delivery_id.clone()),
    };
    if let Err(e) = state.store.insert_opening(&opening, now).await {
        tracing::error!(error = %e, "could not record a door opening");
    }
    let late_ms = now - t;
    let evidence = json!({"opening_id": opening.id, "door_id": door_id, "door": door.as_ref().map(|d| d.name.clone()),
        "at_ms": t, "device_time_ms": msg.time_ms, "reported_by": dev, "event_seq": msg.seq, "learned_late_ms": late_ms,
        "session": s.map(|s| json!({"grant": s.grant_ref, "opened_ms": s.opened_ms, "delivered_ms": s.delivered_ms,
            "camera_lost_ms": s.compromised_ms, "closed_ms": s.closed_ms}))});
    let door_name = door
        .as_ref()
        .map(|d| d.name.clone())
        .unwrap_or_else(|| "A door".into());
    let (kind, message, cause) = match attribution {
        Attribution::Authorised(_) => {
            let _ = state
                .store
                .add_timeline(
                    home_id,
                    Some(&dev),
                    opening.delivery_id.as_deref(),
                    t,
                    "door.opened",
                    &evidence.to_string(),
                )
                .await;
            return;
        }
        Attribution::Unwatched(_) => (
            AlertKind::DoorOpenedUnwatched,
            format!("{door_name} was opened during a delivery after its camera stopped watching."),
            format!(
                "door_opened_unwatched:{}",
                opening.delivery_id.clone().unwrap_or_default()
            ),
        ),
        Attribution::AfterDelivery(_) => (
            AlertKind::DoorOpenedAfterDelivery,
            format!("{door_name} was opened again after the courier marked the parcel delivered."),
            format!(
                "door_opened_after_delivery:{}",
                opening.delivery_id.clone().unwrap_or_default()
            ),
        ),
        Attribution::Unauthorised => (
            AlertKind::UnauthorizedEntry,
            format!("{door_name} was opened with no authorised delivery, owner or guest session."),
            format!("unauthorized_entry:{}", opening.id),
        ),
    };
    let _ = state
        .store
        .add_timeline(
            home_id,
            Some(&dev),
            opening.delivery_id.as_deref(),
            t,
            &format!("incident.{}", kind.code()),
            &evidence.to_string(),
        )
        .await;
    crate::alerts::raise(
        state,
        owner_id,
        crate::alerts::Alert {
            kind,
            home_id,
            device_id: Some(&dev),
            delivery_id: opening.delivery_id.as_deref(),
            message: &message,
            evidence: &evidence.to_string(),
            cause_key: Some(&cause),
        },
    )
    .await;
}

/// The door is locked again: owner and guest sessions of that door opened before it
/// end (an opening after the relock is no longer theirs).
pub async fn on_relocked(state: &AppState, home_id: &str, device: &DeviceId, t: i64) {
    let door = state
        .access
        .doors
        .of_device(device)
        .into_iter()
        .find(|d| d.lock == Some(*device));
    let Ok(open) = state.store.open_sessions(home_id).await else {
        return;
    };
    for s in open.iter().filter(|s| {
        s.delivery_id.is_none()
            && s.opened_ms + 1_000 < t
            && (door.is_none()
                || s.door_id.is_none()
                || s.door_id == door.as_ref().map(|d| d.id.clone()))
    }) {
        let _ = state.store.close_session(&s.id, t).await;
    }
}
