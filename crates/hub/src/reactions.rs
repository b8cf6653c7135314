//! What the hub does about device happenings: timeline entries, live events for the
//! owner's app, alerts, and the audit log.

use crate::events::HubEvent;
use crate::gateway::port::{Happening, Reacting, Reactions};
use crate::gateway::transition::{Change, Transition};
use crate::state::AppState;
use serde_json::json;
use threshold_core::alert::AlertKind;
use threshold_core::liveness::Liveness;
use threshold_core::record_log::Arrival;
use threshold_proto::body::{BoltState, DeviceKind, DoorState, State};
use threshold_proto::{DeviceId, SignedMessage};
use threshold_store::NewTimelineRow;

/// Devices whose changes are reacted to at the same time, within one batch.
const REACTIONS_AT_ONCE: usize = 64;

/// What a liveness change says on the timeline and the live feed: (kind, detail).
fn transition_entry(state: &AppState, t: &Transition) -> (&'static str, serde_json::Value) {
    match &t.change {
        Change::Liveness { from, to } => (
            "liveness",
            json!({"from": from.as_str(), "to": to.as_str(), "last_fresh_ms": t.last_fresh_ms}),
        ),
        Change::Frozen(f) => ("possibly_frozen", json!({"frozen": f})),
        Change::OfflineNotice => (
            "offline_notice",
            json!({"grace_ms": state.config.offline_grace_ms}),
        ),
    }
}

/// A batch of liveness changes, in the order to apply them (`monitor::take_batch`):
/// their timeline rows in one commit (one durable write, not one per change: at ten
/// thousand cameras, changes came faster than one commit each could keep up with,
/// and a camera lost mid-delivery waited behind them), then each one's live event
/// and reactions: one device's in order, different devices' side by side. An incident
/// is several durable writes; one after another, a hundred cameras lost in a minute
/// waited seconds for each other's disk flushes, which side by side they share
/// (`threshold_store` group commit). Racing reactions are safe by construction: a
/// delivery moves only by a conditional update (`access::incident::apply`).
pub async fn on_transitions(state: &AppState, mut batch: Vec<Transition>) {
    // In a fleet, each home's node acts on its devices' changes (every node sees
    // them, and keeps judging entries by them).
    batch.retain(|t| state.fleet.owns_home(&t.home_id));
    if batch.is_empty() {
        return;
    }
    let rows: Vec<NewTimelineRow> = batch
        .iter()
        .map(|t| {
            let (kind, detail) = transition_entry(state, t);
            NewTimelineRow {
                home_id: t.home_id.clone(),
                device_id: Some(t.device.to_hex()),
                delivery_id: None,
                time_ms: t.at_ms,
                kind: kind.to_owned(),
                detail: detail.to_string(),
            }
        })
        .collect();
    if let Err(e) = state.store.add_timeline_rows(&rows).await {
        tracing::error!(error = %e, changes = rows.len(), "could not store timeline entries");
    }
    let mut slot: std::collections::HashMap<DeviceId, usize> = Default::default();
    let mut by_device: Vec<Vec<Transition>> = Vec::new();
    for t in batch {
        match slot.get(&t.device) {
            Some(&i) => by_device[i].push(t),
            None => {
                slot.insert(t.device, by_device.len());
                by_device.push(vec![t]);
            }
        }
    }
    // Devices side by side, a bounded number at a time: when thousands of cameras come
    // live at once, a future for each at once held tens of megabytes (heaptrack at
    // 3 000 cameras: 10 MB at the hub's peak) that the allocator kept afterwards.
    use futures_util::StreamExt;
    futures_util::stream::iter(by_device)
        .for_each_concurrent(REACTIONS_AT_ONCE, |changes| async move {
            for t in changes {
                react_to_transition(state, t).await;
            }
        })
        .await;
}

/// One liveness change, its timeline row already stored: the owner's live event, an
/// incident for a camera lost mid-delivery, offline and frozen alerts, Wi-Fi evidence.
async fn react_to_transition(state: &AppState, t: Transition) {
    let device = t.device.to_hex();
    let (kind, detail) = transition_entry(state, &t);
    state.bus.publish(HubEvent {
        owner_id: t.owner_id.clone(),
        courier_id: None,
        home_id: t.home_id.clone(),
        event_type: format!("device.{kind}"),
        time_ms: t.at_ms,
        data: json!({"device_id": device, "name": t.name, "kind": t.kind.as_str(), "change": detail}),
    });
    // The owner's webhooks hear when a device goes offline or comes back.
    if let Change::Liveness { from, to } = t.change {
        let event = match (from, to) {
            (_, Liveness::Offline) if from != Liveness::Offline => Some("device.offline"),
            (Liveness::Offline, _) if to != Liveness::Offline => Some("device.online"),
            _ => None,
        };
        if let Some(event) = event {
            crate::alerts::webhooks::publish(
                state,
                &t.owner_id,
                event,
                &json!({"device_id": device, "home_id": t.home_id, "name": t.name,
                    "kind": t.kind.as_str(), "at_ms": t.at_ms}),
            )
            .await;
        }
    }
    match t.change {
        Change::Liveness {
            from: Liveness::Live,
            ..
        } if t.kind == DeviceKind::Camera => {
            crate::access::incident::on_camera_blind(state, &t.device).await;
        }
        Change::OfflineNotice => {
            let msg = format!(
                "{} has been offline for more than {} s",
                t.name,
                state.config.offline_grace_ms / 1000
            );
            crate::alerts::raise(
                state,
                &t.owner_id,
                crate::alerts::Alert {
                    kind: AlertKind::DeviceOffline,
                    home_id: &t.home_id,
                    device_id: Some(&device),
                    delivery_id: None,
                    message: &msg,
                    evidence: &json!({"last_fresh_ms": t.last_fresh_ms}).to_string(),
                    cause_key: None,
                },
            )
            .await;
        }
        Change::Frozen(true) => {
            crate::access::incident::on_camera_blind(state, &t.device).await;
            let msg = format!(
                "{}: the picture has stopped changing; the camera may be frozen",
                t.name
            );
            crate::alerts::raise(
                state,
                &t.owner_id,
                crate::alerts::Alert {
                    kind: AlertKind::CameraPossiblyFrozen,
                    home_id: &t.home_id,
                    device_id: Some(&device),
                    delivery_id: None,
                    message: &msg,
                    evidence: "{}",
                    cause_key: None,
                },
            )
            .await;
        }
        _ => {}
    }
    crate::wifi::on_transition(state, &t).await;
}

/// What a device's event record adds to the owner's timeline (the event, and a
/// sequence gap it reveals) and, for door and bolt events, to the audit log. Written
/// in the same commit as the record itself (see `Journal::write_event`), so a stored
/// event is never missing from the timeline.
fn event_records(
    state: &AppState,
    msg: &SignedMessage,
    event_type: &str,
    detail: &str,
    arrival: &Arrival,
) -> (Vec<crate::audit::Record>, Vec<NewTimelineRow>) {
    let Some(home_id) = state.registry.with(&msg.device, |e| e.home_id.clone()) else {
        return (Vec::new(), Vec::new());
    };
    let device = msg.device.to_hex();
    let detail_json: serde_json::Value = serde_json::from_str(detail).unwrap_or(json!({}));
    let tl = json!({"event": event_type, "seq": msg.seq, "device_time_ms": msg.time_ms, "detail": detail_json, "late": matches!(arrival, Arrival::FilledGap)});
    let mut timeline = vec![NewTimelineRow {
        home_id: home_id.clone(),
        device_id: Some(device.clone()),
        delivery_id: None,
        time_ms: msg.time_ms,
        kind: format!("device.{event_type}"),
        detail: tl.to_string(),
    }];
    if let Arrival::OpenedGap { from, to } = arrival {
        timeline.push(NewTimelineRow {
            home_id: home_id.clone(),
            device_id: Some(device.clone()),
            delivery_id: None,
            time_ms: state.clock.now_ms(),
            kind: "sequence_gap".into(),
            detail: json!({"from": from, "to": to}).to_string(),
        });
    }
    let audited = matches!(
        event_type,
        "door_opened"
            | "door_closed"
            | "bolt_unlocked"
            | "bolt_locked"
            | "token_accepted"
            | "token_refused"
            | "relocked"
            | "close_commanded"
            | "obstruction_detected"
            | "obstruction_cleared"
    );
    let audit = if audited {
        vec![crate::audit::Record::new(
            "door_event",
            &format!("device:{device}"),
            &format!("home:{home_id}"),
            tl,
        )]
    } else {
        Vec::new()
    };
    (audit, timeline)
}

/// What follows a new device event once it and its records are stored: the owner's
/// live feed, an alert if a gap in the lock's log stays open, the delivery flow and
/// the Wi-Fi watch.
async fn on_device_event(
    state: &AppState,
    msg: &SignedMessage,
    event_type: &str,
    detail: &str,
    arrival: &Arrival,
) {
    let device = msg.device.to_hex();
    let Some((home_id, owner_id, name, kind)) = state.registry.identity(&msg.device) else {
        return;
    };
    let detail_json: serde_json::Value = serde_json::from_str(detail).unwrap_or(json!({}));
    state.bus.publish(HubEvent {
        owner_id: owner_id.clone(),
        courier_id: None,
        home_id: home_id.clone(),
        event_type: "device.event".into(),
        time_ms: msg.time_ms,
        data: json!({"device_id": device, "name": name, "event": event_type, "seq": msg.seq, "detail": detail_json}),
    });
    if let Arrival::OpenedGap { from, to } = arrival {
        if kind != DeviceKind::Camera {
            // Records arrive out of order around a reconnect; alert only if the gap is
            // still open after a grace period (`alerts::gaps`).
            state.gaps.add(crate::alerts::gaps::PendingGap {
                device: msg.device,
                home_id: home_id.clone(),
                owner_id: owner_id.clone(),
                from: *from,
                to: *to,
                due_ms: state
                    .clock
                    .now_ms()
                    .saturating_add(state.config.gap_alert_grace_ms.max(0)),
            });
        }
    }
    on_door_event(state, &home_id, &owner_id, event_type, msg).await;
    crate::wifi::on_device_event(state, msg, event_type, detail).await;
}

/// Door and bolt events: openings are judged (law 5), a closed or relocked door may
/// secure a delivery, refused tokens are reported.
async fn on_door_event(
    state: &AppState,
    home_id: &str,
    owner_id: &str,
    event_type: &str,
    msg: &SignedMessage,
) {
    match event_type {
        "door_opened" => {
            crate::access::openings::on_door_opened(state, home_id, owner_id, &msg.device, msg)
                .await
        }
        "bolt_locked" | "relocked" | "door_closed" => {
            if event_type != "door_closed" {
                let now = state.clock.now_ms();
                let t = state
                    .registry
                    .with(&msg.device, |e| e.liveness.to_hub_time(msg.time_ms, now))
                    .unwrap_or(msg.time_ms);
                crate::access::openings::on_relocked(state, home_id, &msg.device, t).await;
            }
            for door in state.access.doors.of_device(&msg.device) {
                if door.lock == Some(msg.device) || door.contact == Some(msg.device) {
                    crate::access::incident::on_door_state(state, &door).await;
                }
            }
        }
        "token_refused" => {
            crate::access::refused::on_token_refused(state, home_id, owner_id, msg).await
        }
        "obstruction_detected" => {
            crate::access::obstruction::on_obstruction(state, home_id, owner_id, msg).await
        }
        _ => {}
    }
}

/// The running hub's reactions to device happenings (the gateway's port).
#[derive(Debug, Default)]
pub struct HubReactions;

impl Reactions for HubReactions {
    fn event_records(
        &self,
        state: &AppState,
        msg: &SignedMessage,
        event_type: &str,
        detail: &str,
        arrival: &Arrival,
    ) -> (Vec<crate::audit::Record>, Vec<NewTimelineRow>) {
        event_records(state, msg, event_type, detail, arrival)
    }

    fn react<'a>(&'a self, state: &'a AppState, happening: Happening<'a>) -> Reacting<'a> {
        Box::pin(async move {
            match happening {
                Happening::StateReport {
                    device,
                    report,
                    changed,
                } => on_state_report(state, &device, &report, changed).await,
                Happening::Hello { device, kind } if kind.actuates_door() => {
                    // A lock (re)connected: it learns which cameras watch its door.
                    for door in state.access.doors.of_device(&device) {
                        if door.lock == Some(device) {
                            crate::access::unlock::send_door_cameras(state, &door).await;
                        }
                    }
                }
                Happening::Hello {
                    device,
                    kind: DeviceKind::Camera,
                } => {
                    crate::media::recording::on_camera_hello(state, device).await;
                }
                Happening::Hello { .. } => {}
                Happening::Event {
                    msg,
                    event_type,
                    detail,
                    arrival,
                } => on_device_event(state, msg, event_type, detail, arrival).await,
            }
        })
    }
}

/// A change of door or bolt, or a "closed and locked" that a delivery is waiting
/// for, goes to the delivery flow.
async fn on_state_report(state: &AppState, device: &DeviceId, report: &State, changed: bool) {
    // A garage door is its own barrier: closed is secure (its kind is looked up only
    // for a closed door without a thrown bolt).
    let secure = report.door == Some(DoorState::Closed)
        && (report.bolt == Some(BoltState::Locked)
            || state.registry.with(device, |e| e.kind) == Some(DeviceKind::GarageOpener));
    for door in state.access.doors.of_device(device) {
        if door.lock != Some(*device) && door.contact != Some(*device) {
            continue;
        }
        if changed || (secure && state.access.awaits_secure(&door.id)) {
            crate::access::incident::on_door_state(state, &door).await;
        }
    }
}
