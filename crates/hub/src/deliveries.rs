//! The delivery flow: entry decisions (law 2), unlock capabilities (law 3), incidents
//! when the camera is lost mid-delivery (law 4), and door events checked against
//! sessions (law 5).
//!
//! Delivery states: `scheduled` -> `inside` (entry granted, session open) ->
//! `delivered` (courier says so) -> `completed` (a fresh signed report says closed and
//! locked). A camera lost during `inside`/`delivered` marks the delivery compromised.

use crate::domain::raise_alert;
use crate::events::HubEvent;
use crate::gateway::monitor::Transition;
use crate::state::AppState;
use serde_json::json;
use threshold_core::liveness::Liveness;
use threshold_core::policy::{decide, Decision, EntryFacts, Position};
use threshold_proto::body::{BoltState, DeviceKind, DoorState, Stream, Unlock};
use threshold_proto::{DeviceId, Kind, SignedMessage};
use threshold_store::{DeliveryRow, NewAlert};

pub const SESSION_STATES: [&str; 2] = ["inside", "delivered"];

/// Current liveness of the home's devices of one kind: the best of them.
pub fn home_liveness(
    state: &AppState,
    home_id: &str,
    kind: DeviceKind,
) -> (Liveness, Vec<DeviceId>) {
    let now = state.clock.now_ms();
    let cfg = state.config.liveness();
    let mut best = Liveness::Offline;
    let mut ids = Vec::new();
    state.registry.for_each(|e| {
        if e.home_id == home_id && e.kind == kind && !e.revoked {
            ids.push(e.id);
            let s = e.liveness.state(now, &cfg);
            if s == Liveness::Live || (s == Liveness::Stale && best == Liveness::Offline) {
                best = s;
            }
        }
    });
    (best, ids)
}

/// The lock's confirmed state: only a fresh signed report counts.
pub fn lock_state(
    state: &AppState,
    home_id: &str,
) -> Option<(Option<BoltState>, Option<DoorState>, bool, Option<i64>)> {
    let now = state.clock.now_ms();
    let cfg = state.config.liveness();
    let mut out = None;
    state.registry.for_each(|e| {
        if e.home_id == home_id && e.kind == DeviceKind::Lock && !e.revoked {
            let fresh = e.liveness.state(now, &cfg) == Liveness::Live;
            let s = e.last_state.clone().unwrap_or_default();
            out = Some((s.bolt, s.door, fresh, e.last_state_at));
        }
    });
    out
}

fn within_owner_hours(allowed_hours: &str, now_ms: i64) -> bool {
    let v: serde_json::Value = serde_json::from_str(allowed_hours).unwrap_or(json!({}));
    let (Some(start), Some(end)) = (
        v.get("start_minute").and_then(|x| x.as_i64()),
        v.get("end_minute").and_then(|x| x.as_i64()),
    ) else {
        return true;
    };
    let offset = v
        .get("utc_offset_minutes")
        .and_then(|x| x.as_i64())
        .unwrap_or(0);
    let local_min = (now_ms / 60_000 + offset).rem_euclid(1440);
    let day = ((now_ms / 60_000 + offset).div_euclid(1440) + 3).rem_euclid(7) + 1; // 1 = Monday
    let day_ok = v
        .get("days")
        .and_then(|d| d.as_array())
        .is_none_or(|d| d.iter().any(|x| x.as_i64() == Some(day)));
    day_ok && local_min >= start && local_min < end
}

#[derive(Debug, serde::Serialize)]
pub struct EntryOutcome {
    pub decision: Decision,
    pub token_expires_at_ms: Option<i64>,
}

pub struct EntryRequest {
    pub position: Position,
    pub parcel_ref: String,
}

/// Decide a courier's entry request and, if allowed, send the lock its capability.
pub async fn request_entry(
    state: &AppState,
    courier_id: &str,
    d: &DeliveryRow,
    req: EntryRequest,
) -> Result<EntryOutcome, crate::error::ApiError> {
    let now = state.clock.now_ms();
    let home = state.store.home_any(&d.home_id).await?;
    let (camera, cams) = home_liveness(state, &home.id, DeviceKind::Camera);
    let (lock, locks) = home_liveness(state, &home.id, DeviceKind::Lock);
    let facts = EntryFacts {
        now,
        courier_assigned: d.courier_id == courier_id,
        window_start: d.window_start_ms,
        window_end: d.window_end_ms,
        position: req.position,
        home_lat: home.lat,
        home_lon: home.lon,
        geofence_m: home.geofence_m,
        parcel_expected: d.parcel_ref.clone(),
        parcel_scanned: req.parcel_ref.clone(),
        owner_allows_in_home: home.in_home_enabled,
        within_owner_hours: within_owner_hours(&home.allowed_hours, now),
        approval_pending: home.approval_required && !d.approved,
        camera,
        camera_recording: camera == Liveness::Live,
        lock,
        compromised: d.compromised,
        already_entered: d.state != "scheduled",
    };
    let mut decision = decide(&facts);
    // Exactly one concurrent request may win the transition.
    if decision.allowed
        && !state
            .store
            .transition_delivery(&d.id, &["scheduled"], "inside", now)
            .await?
    {
        decision = Decision {
            allowed: false,
            reasons: vec![threshold_core::policy::Refusal::AlreadyUsed],
        };
    }
    let outcome = if decision.allowed {
        "allowed"
    } else {
        "refused"
    };
    state
        .metrics
        .decisions
        .get_or_create(&crate::metrics::OutcomeLabel {
            outcome: outcome.into(),
        })
        .inc();
    let reasons: Vec<&str> = decision.reasons.iter().map(|r| r.code()).collect();
    let detail = json!({"delivery_id": d.id, "allowed": decision.allowed, "reasons": reasons,
        "position": {"lat": req.position.lat, "lon": req.position.lon, "accuracy_m": req.position.accuracy_m},
        "camera": camera.as_str(), "lock": lock.as_str()});
    crate::audit::record(
        state,
        "decision",
        &format!("courier:{courier_id}"),
        &format!("delivery:{}", d.id),
        detail.clone(),
    )
    .await;
    // A refusal for someone not assigned says nothing to the owner's timeline about
    // that courier beyond the fact of the attempt.
    let _ = state
        .store
        .add_timeline(
            &home.id,
            None,
            Some(&d.id),
            now,
            "decision",
            &detail.to_string(),
        )
        .await;
    let mut token_expires_at_ms = None;
    if decision.allowed {
        let expires = now + state.config.unlock_token_ttl_ms;
        for lock_id in &locks {
            let mut nonce = [0u8; 16];
            getrandom::getrandom(&mut nonce)
                .map_err(|e| crate::error::ApiError::Internal(e.to_string()))?;
            let token = Unlock {
                grant: format!("delivery:{}", d.id),
                nonce: hex::encode(nonce),
                expires_at_ms: expires,
            };
            let m = state
                .downlink
                .sign(&state.hub_key, *lock_id, Kind::Unlock, &token, now);
            state.downlink.publish(*lock_id, m).await;
            crate::audit::record(
                state,
                "token.issued",
                "hub",
                &format!("device:{lock_id}"),
                json!({"delivery_id": d.id, "nonce": token.nonce, "expires_at_ms": expires}),
            )
            .await;
        }
        token_expires_at_ms = Some(expires);
        request_streams(state, &cams, now + 60_000).await;
        let _ = state
            .store
            .add_timeline(
                &home.id,
                None,
                Some(&d.id),
                now,
                "unlock_sent",
                &json!({"expires_at_ms": expires}).to_string(),
            )
            .await;
        state.bus.publish(HubEvent {
            owner_id: home.owner_id.clone(),
            courier_id: Some(courier_id.to_owned()),
            home_id: home.id.clone(),
            event_type: "delivery.entry_granted".into(),
            time_ms: now,
            data: json!({"delivery_id": d.id}),
        });
    }
    Ok(EntryOutcome {
        decision,
        token_expires_at_ms,
    })
}

/// Ask cameras for full frames until `until_ms`.
pub async fn request_streams(state: &AppState, cams: &[DeviceId], until_ms: i64) {
    let now = state.clock.now_ms();
    for c in cams {
        let m = state.downlink.sign(
            &state.hub_key,
            *c,
            Kind::Stream,
            &Stream { until_ms, fps: 5 },
            now,
        );
        state.downlink.publish(*c, m).await;
    }
}

/// Law 4: the camera stopped being live while a delivery session is open.
pub async fn on_camera_lost(state: &AppState, t: &Transition, to: Liveness) {
    let Ok(active) = state.store.active_deliveries_of_home(&t.home_id).await else {
        return;
    };
    let now = state.clock.now_ms();
    for d in active
        .iter()
        .filter(|d| SESSION_STATES.contains(&d.state.as_str()))
    {
        let _ = state.store.mark_delivery_compromised(&d.id, now).await;
        let latency = t.last_fresh_ms.map(|f| now - f);
        let msg = format!("Camera {} went {} during a delivery. The courier was told to leave; the door will not unlock again for this delivery.", t.name, to.as_str());
        raise_alert(
            state,
            &t.owner_id,
            NewAlert {
                home_id: &t.home_id,
                device_id: Some(&t.device.to_hex()),
                delivery_id: Some(&d.id),
                severity: "critical",
                kind: "camera_lost_during_delivery",
                message: &msg,
                evidence: &json!({"last_fresh_ms": t.last_fresh_ms, "detected_ms": now, "since_last_fresh_ms": latency}).to_string(),
            },
        )
        .await;
        let _ = state
            .store
            .add_timeline(
                &t.home_id,
                Some(&t.device.to_hex()),
                Some(&d.id),
                now,
                "incident.camera_lost",
                &json!({"to": to.as_str()}).to_string(),
            )
            .await;
        state.bus.publish(HubEvent {
            owner_id: t.owner_id.clone(),
            courier_id: Some(d.courier_id.clone()),
            home_id: t.home_id.clone(),
            event_type: "delivery.leave_now".into(),
            time_ms: now,
            data: json!({"delivery_id": d.id, "message": "The camera is not watching. Leave now and close the door behind you."}),
        });
    }
}

/// Law 5: door openings are checked against open sessions, whenever the hub learns
/// of them.
pub async fn on_door_event(
    state: &AppState,
    home_id: &str,
    owner_id: &str,
    device: &str,
    event_type: &str,
    msg: &SignedMessage,
) {
    if event_type != "door_opened" {
        if event_type == "bolt_locked" || event_type == "door_closed" || event_type == "relocked" {
            try_complete(state, home_id).await;
        }
        return;
    }
    let Ok(active) = state.store.active_deliveries_of_home(home_id).await else {
        return;
    };
    let opened_at = msg.time_ms;
    let in_session = active.iter().any(|d| d.state == "inside" && !d.compromised);
    if in_session {
        return;
    }
    let after_delivered = active
        .iter()
        .find(|d| d.state == "delivered" || d.compromised);
    let (kind, message) = match after_delivered {
        Some(_) => (
            "door_opened_after_delivery",
            "The door was opened again after the courier finished (or after the camera was lost).",
        ),
        None => (
            "unauthorized_entry",
            "The door was opened with no authorised delivery or guest session.",
        ),
    };
    raise_alert(
        state,
        owner_id,
        NewAlert {
            home_id,
            device_id: Some(device),
            delivery_id: after_delivered.map(|d| d.id.as_str()),
            severity: "critical",
            kind,
            message,
            evidence: &json!({"device_time_ms": opened_at, "event_seq": msg.seq}).to_string(),
        },
    )
    .await;
}

/// Close sessions whose door is confirmed closed and locked by a fresh signed report.
pub async fn try_complete(state: &AppState, home_id: &str) {
    let Some((Some(BoltState::Locked), Some(DoorState::Closed), true, _)) =
        lock_state(state, home_id)
    else {
        return;
    };
    let Ok(active) = state.store.active_deliveries_of_home(home_id).await else {
        return;
    };
    let now = state.clock.now_ms();
    for d in active.iter().filter(|d| d.state == "delivered") {
        if state
            .store
            .transition_delivery(&d.id, &["delivered"], "completed", now)
            .await
            .unwrap_or(false)
        {
            let _ = state
                .store
                .add_timeline(
                    home_id,
                    None,
                    Some(&d.id),
                    now,
                    "completed",
                    "{\"door\":\"closed\",\"bolt\":\"locked\"}",
                )
                .await;
            crate::audit::record(
                state,
                "delivery.completed",
                "hub",
                &format!("delivery:{}", d.id),
                json!({}),
            )
            .await;
        }
    }
}
