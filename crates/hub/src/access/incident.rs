//! A delivery's state machine (`threshold_core::delivery`) applied: the hub feeds it
//! what happened, persists the transition with a conditional update (so of several
//! racing inputs exactly one moves the delivery, and its effects happen once), then
//! carries out the effects: alerts, the courier's "leave now", the relock command.

use crate::access::doors::{self, Door};
use crate::access::unlock;
use crate::events::HubEvent;
use crate::state::AppState;
use serde_json::json;
use threshold_core::alert::AlertKind;
use threshold_core::delivery::{
    self, Alert, Delivery, DeliveryState, Effect, Input, Invalid, Step,
};
use threshold_store::DeliveryRow;

/// The machine's view of a stored delivery.
fn machine(state: &AppState, d: &DeliveryRow) -> Option<Delivery> {
    let door = d
        .door_id
        .as_deref()
        .and_then(|id| state.access.doors.get(id));
    Some(Delivery {
        state: DeliveryState::parse(&d.state)?,
        barrier: doors::barrier(state, door.as_ref()),
        window_end: d.window_end_ms,
        delivered_at: d.delivered_ms,
        camera_lost_at: d.camera_lost_ms,
    })
}

/// The step `input` would take delivery `d` at `now`, decided by core and not yet
/// applied; `None` when it does not apply.
pub fn planned(state: &AppState, d: &DeliveryRow, input: Input, now: i64) -> Option<Step> {
    let m = machine(state, d)?;
    delivery::step(&m, input, now, &state.config.delivery_limits())
        .ok()
        .flatten()
}

/// Apply `input` to delivery `d` at the hub's now. Returns the step taken (None when
/// nothing changed, or another path got there first), or why a person's action does
/// not fit the delivery's state.
pub async fn apply(
    state: &AppState,
    d: &DeliveryRow,
    input: Input,
) -> Result<Option<Step>, Invalid> {
    let now = state.clock.now_ms();
    let Some(m) = machine(state, d) else {
        tracing::error!(delivery = %d.id, state = %d.state, "delivery in an unknown state");
        return Ok(None);
    };
    let Some(step) = delivery::step(&m, input, now, &state.config.delivery_limits())? else {
        return Ok(None);
    };
    let door = d
        .door_id
        .as_deref()
        .and_then(|id| state.access.doors.get(id));
    if step.to != step.from {
        // A camera is blamed only if, when the incident is written, the hub still may
        // blame it and the door is still blind: a blame decided just before the hub
        // fell behind, whose write then waited behind the hub's backlog, would
        // otherwise land as an incident the hub could not vouch for (a 90-s flood of
        // `threshold bench liveness --flood-cameras`: one write waited 54 s). The
        // pass blames it again once the hub can vouch, if the door is still blind.
        let withdrawn = std::sync::atomic::AtomicBool::new(false);
        let still = || match (input, &door) {
            (Input::CameraBlind(_), Some(door)) => {
                let at = state.clock.now_ms();
                let holds = doors::may_blame(state, door, at)
                    && doors::blind_to_blame(state, door, at).is_err();
                withdrawn.store(!holds, std::sync::atomic::Ordering::Relaxed);
                holds
            }
            _ => true,
        };
        // The pass's index follows the delivery as it now is.
        match state
            .store
            .transition_delivery_if(&d.id, step.from.as_str(), step.to.as_str(), now, still)
            .await
        {
            Ok(Some(row)) => {
                state.access.open.update(row);
                crate::fleet::changes::announce(
                    state,
                    crate::fleet::changes::Change::Delivery(d.id.clone()),
                )
                .await;
            }
            Ok(None) if withdrawn.load(std::sync::atomic::Ordering::Relaxed) => {
                tracing::info!(delivery = %d.id, "camera not blamed: when the incident could be written, the hub could not vouch for the door or the door was watched again");
                return Ok(None);
            }
            Ok(None) => {
                // Moved by someone else first: the row we acted on was stale.
                if let Ok(row) = state.store.delivery_any(&d.id).await {
                    state.access.open.update(row);
                }
                return Ok(None);
            }
            Err(e) => {
                tracing::error!(error = %e, delivery = %d.id, "could not store a delivery transition; retried by the watcher");
                return Ok(None);
            }
        }
        transitioned(state, d, &step, input, now).await;
    }
    for e in &step.effects {
        effect(state, d, door.as_ref(), e, input, now).await;
    }
    if step.to == DeliveryState::CameraLost && step.from != DeliveryState::CameraLost {
        // The door may already be closed: relock now rather than wait for it to
        // close again (the lock's own rule relocks on closing; this covers a door
        // that was closed when the camera went).
        if let Some(door) = &door {
            follow_door(state, d, door).await;
        }
    }
    Ok(Some(step))
}

/// What the door's fresh reports mean for its deliveries: closed and locked secures
/// them; closed with the bolt plainly retracted asks for a relock (a bolt moving or
/// jammed is not commanded again on every report).
fn door_input(s: doors::Secured) -> Option<Input> {
    match (s.closed, s.locked, s.retracted) {
        (true, true, _) => Some(Input::Secured),
        (true, false, true) => Some(Input::DoorClosed),
        _ => None,
    }
}

/// After a transition into the incident, act on what the door says now.
async fn follow_door(state: &AppState, d: &DeliveryRow, door: &Door) {
    let now = state.clock.now_ms();
    let Ok(fresh) = state.store.delivery_any(&d.id).await else {
        return;
    };
    let Some(input) = door_input(doors::secured(state, door, now)) else {
        return;
    };
    let _ = Box::pin(apply(state, &fresh, input)).await;
}

async fn transitioned(state: &AppState, d: &DeliveryRow, step: &Step, input: Input, now: i64) {
    let owner = state.access.owners.of(&state.store, &d.home_id).await.ok();
    let mut detail = json!({"delivery_id": d.id, "from": step.from.as_str(), "to": step.to.as_str(),
        "door_id": d.door_id});
    if let Input::CameraBlind(b) = input {
        detail["camera"] = json!(b.code());
    }
    if step.to.is_terminal() {
        let session = state.store.session_of_delivery(&d.id).await.ok();
        let lock = d
            .door_id
            .as_deref()
            .and_then(|id| state.access.doors.get(id))
            .map(|door| doors::lock_view(state, &door));
        detail["summary"] = json!({
            "parcel_ref": d.parcel_ref,
            "entry_granted_ms": session.as_ref().map(|s| s.opened_ms),
            "delivered_ms": d.delivered_ms,
            "camera_lost_ms": d.camera_lost_ms,
            "ended_ms": now,
            "bolt": lock.as_ref().map(|l| l["bolt"].clone()),
            "door": lock.as_ref().map(|l| l["door"].clone()),
            "lock_report_ms": lock.as_ref().map(|l| l["reported_at_ms"].clone()),
            "clip": format!("/api/v1/deliveries/{}/recording", d.id),
        });
    }
    crate::audit::record_all(
        state,
        vec![crate::audit::Record::new(
            &format!("delivery.{}", step.to.as_str()),
            "hub",
            &format!("delivery:{}", d.id),
            detail.clone(),
        )
        .in_home(&d.home_id)],
        vec![threshold_store::NewTimelineRow {
            home_id: d.home_id.clone(),
            device_id: None,
            delivery_id: Some(d.id.clone()),
            time_ms: now,
            kind: format!("delivery.{}", step.to.as_str()),
            detail: detail.to_string(),
        }],
    )
    .await;
    if let Some(owner_id) = owner {
        crate::alerts::webhooks::publish(
            state,
            &owner_id,
            "delivery.state_changed",
            &json!({"delivery_id": d.id, "home_id": d.home_id, "from": step.from.as_str(),
                "to": step.to.as_str(), "at_ms": now}),
        )
        .await;
        state.bus.publish(HubEvent {
            owner_id,
            courier_id: Some(d.courier_id.clone()),
            home_id: d.home_id.clone(),
            event_type: format!("delivery.{}", step.to.as_str()),
            time_ms: now,
            data: detail,
        });
    }
}

fn alert_text(
    a: Alert,
    door: Option<&Door>,
    camera: Option<&str>,
    limits: &delivery::Limits,
    obstructed: bool,
) -> String {
    let name = door.map(|d| d.name.as_str()).unwrap_or("the door");
    let limits_ms = (limits.secure_ms, limits.incident_ms);
    match a {
        Alert::GarageLeftOpen => format!(
            "{name} may be open: no fresh signed report confirmed it closed within {} s of the hub's close command.{} The opener was told to close again.",
            limits.garage_close_ms / 1000,
            if obstructed { " The opener reports an obstruction in the door's way." } else { "" }
        ),
        Alert::CameraLostDuringDelivery => format!("Camera {} stopped watching {name} during a delivery. The courier was told to leave; the door will not unlock again for this delivery, and the lock is told to relock as soon as the door is closed.", camera.unwrap_or("?")),
        Alert::DoorMayBeUnlocked => format!("{name} may be unlocked: after the camera was lost during a delivery, no fresh signed report confirmed it closed and locked within {} s. The lock was told to lock again.", limits_ms.1 / 1000),
        Alert::SessionNotSecured => format!("The delivery could not be confirmed closed and locked within {} s of being marked delivered: {name} may be open or unlocked. The lock was told to lock.", limits_ms.0 / 1000),
    }
}

async fn effect(
    state: &AppState,
    d: &DeliveryRow,
    door: Option<&Door>,
    e: &Effect,
    input: Input,
    now: i64,
) {
    match e {
        Effect::Alert(a) => {
            let Ok(owner_id) = state.access.owners.of(&state.store, &d.home_id).await else {
                return;
            };
            let limits = state.config.delivery_limits();
            let lock_view = door.map(|x| doors::lock_view(state, x));
            let obstructed = lock_view
                .as_ref()
                .is_some_and(|l| l["obstructed"] == json!(true));
            let camera = match input {
                Input::CameraBlind(b) => Some(b.code()),
                _ => None,
            };
            // The newest frame any of the door's cameras captured (hub clock).
            let last_fresh = door.and_then(|x| {
                x.cameras
                    .iter()
                    .filter_map(|c| state.registry.with(c, |e| e.liveness.fresh_at()).flatten())
                    .max()
            });
            let evidence = json!({"door_id": d.door_id, "camera": camera,
                "last_fresh_ms": last_fresh, "since_last_fresh_ms": last_fresh.map(|f| now - f), "camera_lost_ms": d.camera_lost_ms.or((*a == Alert::CameraLostDuringDelivery).then_some(now)),
                "delivered_ms": d.delivered_ms, "detected_ms": now, "lock": lock_view,
                "cameras": door.map(|x| x.cameras.iter().map(|c| json!({"device_id": c.to_hex(), "verdict": doors::camera_watch(state, c, now).err().map(|b| b.code()).unwrap_or("watching"),
                    "last_frame_hub_ms": state.registry.with(c, |e| e.liveness.fresh_at()).flatten()})).collect::<Vec<_>>())});
            let mut evidence = evidence;
            if *a == Alert::GarageLeftOpen {
                evidence["last_frame"] = last_frame(state, d, door);
            }
            let cause = format!("{}:{}", a.code(), d.id);
            // The camera the alert is about: the door's last one to watch.
            let camera_id = (*a == Alert::CameraLostDuringDelivery)
                .then(|| {
                    door.and_then(|x| {
                        x.cameras
                            .iter()
                            .max_by_key(|c| {
                                state.registry.with(c, |e| e.liveness.fresh_at()).flatten()
                            })
                            .map(|c| c.to_hex())
                    })
                })
                .flatten();
            let camera_name = camera_id
                .as_deref()
                .and_then(|c| c.parse().ok())
                .and_then(|c| state.registry.identity(&c))
                .map(|(_, _, name, _)| name);
            let message = alert_text(*a, door, camera_name.as_deref(), &limits, obstructed);
            crate::alerts::raise(
                state,
                &owner_id,
                crate::alerts::Alert {
                    kind: AlertKind::Delivery(*a),
                    home_id: &d.home_id,
                    device_id: camera_id.as_deref(),
                    delivery_id: Some(&d.id),
                    message: &message,
                    evidence: &evidence.to_string(),
                    cause_key: Some(&cause),
                },
            )
            .await;
        }
        Effect::LeaveNow => {
            if let Ok(owner_id) = state.access.owners.of(&state.store, &d.home_id).await {
                state.bus.publish(HubEvent {
                    owner_id,
                    courier_id: Some(d.courier_id.clone()),
                    home_id: d.home_id.clone(),
                    event_type: "delivery.leave_now".into(),
                    time_ms: now,
                    data: json!({"delivery_id": d.id, "message": "The camera is not watching. Leave now and close the door behind you."}),
                });
            }
        }
        Effect::Relock => {
            if !state.access.relock_due(&d.id, now) {
                return;
            }
            if let Some(lock) = door.and_then(|x| x.lock) {
                let reason = match (input, d.state.as_str()) {
                    (Input::CameraBlind(_), _) | (_, "camera_lost") => "camera_lost",
                    // A garage door closed when the courier is done.
                    (_, "inside") => "delivered",
                    _ => "not_secured",
                };
                unlock::send_lock(state, lock, "hub", reason).await;
            }
        }
        // The store closed the session with the transition.
        Effect::CloseSession => {}
    }
}

/// The newest frame any of the door's cameras sent, as recorded in the delivery's
/// recording (which is still open when a delivery's alert is raised): what the owner
/// looks at first when told the garage may be open.
fn last_frame(state: &AppState, d: &DeliveryRow, door: Option<&Door>) -> serde_json::Value {
    let newest = door.and_then(|x| {
        x.cameras
            .iter()
            .filter_map(|c| state.live.latest(c))
            .max_by_key(|f| f.capture_ms)
    });
    match newest {
        Some(f) => json!({
            "camera": f.device.to_hex(),
            "seq": f.seq,
            "capture_ms": f.capture_ms,
            "url": format!("/api/v1/deliveries/{}/recording/frames/{}/{}", d.id, f.device.to_hex(), f.seq),
        }),
        None => serde_json::Value::Null,
    }
}

/// The door's devices reported something that may secure or endanger its open
/// deliveries: closed and locked completes them; closed but not locked during an
/// incident relocks.
pub async fn on_door_state(state: &AppState, door: &Door) {
    let now = state.clock.now_ms();
    let Some(input) = door_input(doors::secured(state, door, now)) else {
        return;
    };
    for d in state.access.open.of_door(&door.id) {
        let _ = apply(state, &d, input).await;
    }
}

/// A camera's verdict changed for the worse: each door it watches that is no longer
/// watched by any camera is an incident for its open deliveries (unless the hub itself
/// cannot vouch now: law 10).
pub async fn on_camera_blind(state: &AppState, camera: &threshold_proto::DeviceId) {
    let now = state.clock.now_ms();
    for door in state.access.doors.of_device(camera) {
        if !door.cameras.contains(camera) || !doors::may_blame(state, &door, now) {
            continue;
        }
        let Err(blind) = doors::blind_to_blame(state, &door, now) else {
            continue;
        };
        for d in state.access.open.of_door(&door.id) {
            let _ = apply(state, &d, Input::CameraBlind(blind)).await;
        }
    }
}
