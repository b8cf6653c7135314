//! The delivery flow: entry decisions (law 2), unlock capabilities (law 3), incidents
//! when the camera is lost mid-delivery (law 4), and door events checked against
//! sessions (law 5).
//!
//! Delivery states: `scheduled` -> `inside` (entry granted, session open) ->
//! `delivered` (courier says so) -> `completed` (a fresh signed report says closed and
//! locked). A camera lost during `inside`/`delivered` marks the delivery compromised.
//!
//! Every unlock (delivery, owner, guest) opens an access session (store `access.rs`):
//! the interval in which a door opening is authorised. Door events are judged by their
//! signed device time against those intervals, so a lock log uploaded late after an
//! outage is judged as of when it happened, not as of when it arrived.
//!
//! A session watcher ([`spawn_watcher`]) closes delivered sessions as soon as a fresh
//! signed state report says closed and locked (it runs every 250 ms, so a fresh
//! report completes a session without waiting for a door event), and raises
//! `session_not_secured` when that cannot be confirmed within the limit
//! (`session_secure_limit_ms` in the configuration, default 120 s).

use crate::audit::Record;
use crate::domain::raise_alert;
use crate::events::HubEvent;
use crate::gateway::monitor::Transition;
use crate::state::AppState;
use serde_json::json;
use threshold_core::liveness::Liveness;
use threshold_core::policy::{decide, Decision, EntryFacts, Position};
use threshold_proto::body::{BoltState, DeviceKind, DoorState, Stream, Unlock};
use threshold_proto::{DeviceId, Kind, SignedMessage};
use threshold_store::{DeliveryRow, EntryClaim, HomeRow, NewAlert, NewTimelineRow, SessionRow};

/// Homes with a delivered (or compromised) session waiting for a fresh
/// closed-and-locked report; refreshed by the watcher, read on every lock report.
static AWAITING_SECURE: std::sync::Mutex<std::collections::BTreeSet<String>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

fn awaiting(f: impl FnOnce(&mut std::collections::BTreeSet<String>)) {
    let mut g = AWAITING_SECURE.lock().unwrap_or_else(|p| p.into_inner());
    f(&mut g)
}

/// A lock's fresh signed state report was accepted: if it says closed and locked and
/// a session of its home is waiting for exactly that, complete it now rather than at
/// the watcher's next tick.
pub fn on_fresh_state(state: &AppState, device: &DeviceId, s: &threshold_proto::body::State) {
    if s.bolt != Some(BoltState::Locked) || s.door != Some(DoorState::Closed) {
        return;
    }
    let Some(home) = state
        .registry
        .with(device, |e| {
            (e.kind == DeviceKind::Lock).then(|| e.home_id.clone())
        })
        .flatten()
    else {
        return;
    };
    let mut waiting = false;
    awaiting(|set| waiting = set.contains(&home));
    if waiting {
        let st = state.clone();
        tokio::spawn(async move { try_complete(&st, &home).await });
    }
}

/// The courier marked delivered: watch this home for a closed-and-locked report.
pub fn await_secure(home_id: &str) {
    awaiting(|set| {
        set.insert(home_id.to_owned());
    });
}

pub const SESSION_STATES: [&str; 2] = ["inside", "delivered"];

/// Current liveness of the home's devices of one kind: the best of them.
pub async fn home_liveness(
    state: &AppState,
    home_id: &str,
    kind: DeviceKind,
) -> (Liveness, Vec<DeviceId>) {
    let now = state.clock.now_ms();
    let cfg = state.config.liveness();
    let mut best = Liveness::Offline;
    let mut ids = Vec::new();
    state.registry.for_home(home_id, |e| {
        if e.kind == kind && !e.revoked {
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
pub async fn lock_state(
    state: &AppState,
    home_id: &str,
) -> Option<(Option<BoltState>, Option<DoorState>, bool, Option<i64>)> {
    let now = state.clock.now_ms();
    let cfg = state.config.liveness();
    let mut out = None;
    state.registry.for_home(home_id, |e| {
        if e.kind == DeviceKind::Lock && !e.revoked {
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
    home: &HomeRow,
    req: EntryRequest,
) -> Result<EntryOutcome, crate::error::ApiError> {
    let now = state.clock.now_ms();
    let (camera, cams) = home_liveness(state, &home.id, DeviceKind::Camera).await;
    let (lock, locks) = home_liveness(state, &home.id, DeviceKind::Lock).await;
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
    // A courier not assigned learns nothing about the home (camera, lock, position):
    // the only reason they get is that it is not theirs.
    if !facts.courier_assigned {
        decision = Decision {
            allowed: false,
            reasons: vec![threshold_core::policy::Refusal::NotAssigned],
        };
    }
    let grant = format!("delivery:{}", d.id);
    let actor = format!("courier:{courier_id}");
    let reasons_of = |decision: &Decision| -> serde_json::Value {
        let reasons: Vec<&str> = decision.reasons.iter().map(|r| r.code()).collect();
        json!({"delivery_id": d.id, "allowed": decision.allowed, "reasons": reasons,
            "position": {"lat": req.position.lat, "lon": req.position.lon, "accuracy_m": req.position.accuracy_m},
            "camera": camera.as_str(), "lock": lock.as_str()})
    };
    let row = |kind: &str, detail: String| NewTimelineRow {
        home_id: home.id.clone(),
        device_id: None,
        delivery_id: Some(d.id.clone()),
        time_ms: now,
        kind: kind.to_owned(),
        detail,
    };
    // A yes is one commit, before the token leaves: the claim (exactly one of several
    // concurrent requests moves the delivery out of `scheduled` and opens the access
    // session a door opening is judged against), the decision and token audit entries
    // and the timeline rows; concurrent requests share the commit (the journal's group
    // commit). A no is one commit too. Either way every decision is in the audit log
    // before the courier hears of it.
    let mut unlocks = None;
    if decision.allowed {
        let prepared = prepare_unlocks(state, &locks, &grant, now)?;
        let detail = reasons_of(&decision);
        let mut audit = vec![Record::new("decision", &actor, &grant, detail.clone())];
        audit.extend(unlock_records(&prepared, &grant, &actor));
        let timeline = vec![
            row("decision", detail.to_string()),
            row(
                "unlock_sent",
                json!({"expires_at_ms": prepared.expires}).to_string(),
            ),
        ];
        let claim = EntryClaim {
            delivery_id: d.id.clone(),
            home_id: home.id.clone(),
            grant_ref: grant.clone(),
            now_ms: now,
        };
        match state.journal.write_claimed(claim, audit, timeline).await {
            Ok(Some(_)) => unlocks = Some(prepared),
            Ok(None) => {
                decision = Decision {
                    allowed: false,
                    reasons: vec![threshold_core::policy::Refusal::AlreadyUsed],
                };
            }
            // Fail secure: no record, no entry.
            Err(e) => return Err(crate::error::ApiError::Internal(e.to_string())),
        }
    }
    if let Some(u) = &unlocks {
        send_unlocks(state, u, now).await;
        request_streams(state, &cams, now + 60_000).await;
    } else {
        // A refusal for someone not assigned says nothing to the owner's timeline
        // about that courier beyond the fact of the attempt.
        let detail = reasons_of(&decision);
        crate::audit::record_all(
            state,
            vec![Record::new("decision", &actor, &grant, detail.clone())],
            vec![row("decision", detail.to_string())],
        )
        .await;
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
    if unlocks.is_some() {
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
        token_expires_at_ms: unlocks.map(|u| u.expires),
    })
}

/// Sign and send a single-use unlock capability to each lock, audited. Returns the
/// expiry.
pub async fn issue_unlock(
    state: &AppState,
    locks: &[DeviceId],
    grant: &str,
    actor: &str,
    now: i64,
) -> Result<i64, crate::error::ApiError> {
    let u = prepare_unlocks(state, locks, grant, now)?;
    send_unlocks(state, &u, now).await;
    crate::audit::record_all(state, unlock_records(&u, grant, actor), Vec::new()).await;
    Ok(u.expires)
}

/// Single-use unlock capabilities for some locks: each lock's nonce and the expiry,
/// chosen before anything is written, so the audit log can name them.
pub struct Unlocks {
    pub expires: i64,
    grant: String,
    nonces: Vec<(DeviceId, String)>,
}

pub fn prepare_unlocks(
    state: &AppState,
    locks: &[DeviceId],
    grant: &str,
    now: i64,
) -> Result<Unlocks, crate::error::ApiError> {
    let mut nonces = Vec::with_capacity(locks.len());
    for lock_id in locks {
        let mut nonce = [0u8; 16];
        getrandom::getrandom(&mut nonce)
            .map_err(|e| crate::error::ApiError::Internal(e.to_string()))?;
        nonces.push((*lock_id, hex::encode(nonce)));
    }
    Ok(Unlocks {
        expires: now + state.config.unlock_token_ttl_ms,
        grant: grant.to_owned(),
        nonces,
    })
}

/// Sign and publish the capabilities. Signed only now, not when prepared: a device
/// refuses a downlink whose number is not above the last one it accepted, so a token
/// must not be overtaken by a later-numbered message to the same lock.
pub async fn send_unlocks(state: &AppState, u: &Unlocks, now: i64) {
    for (lock_id, nonce) in &u.nonces {
        let token = Unlock {
            grant: u.grant.clone(),
            nonce: nonce.clone(),
            expires_at_ms: u.expires,
        };
        let m = state
            .downlink
            .sign(&state.hub_key, *lock_id, Kind::Unlock, &token, now);
        state.downlink.publish(*lock_id, m).await;
    }
}

fn unlock_records(sent: &Unlocks, grant: &str, actor: &str) -> Vec<Record> {
    sent.nonces
        .iter()
        .map(|(lock_id, nonce)| {
            Record::new(
                "token.issued",
                actor,
                &format!("device:{lock_id}"),
                json!({"grant": grant, "nonce": nonce, "expires_at_ms": sent.expires}),
            )
        })
        .collect()
}

/// Send the `lock` downlink (throw the bolt now) to each lock, audited.
pub async fn send_lock(state: &AppState, locks: &[DeviceId], actor: &str, reason: &str) {
    let now = state.clock.now_ms();
    for lock_id in locks {
        let m = state.downlink.sign(
            &state.hub_key,
            *lock_id,
            Kind::Lock,
            &threshold_proto::body::LockCommand {
                reason: reason.to_owned(),
            },
            now,
        );
        state.downlink.publish(*lock_id, m).await;
        crate::audit::record(
            state,
            "lock.command",
            actor,
            &format!("device:{lock_id}"),
            json!({"reason": reason}),
        )
        .await;
    }
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
        let _ = state.store.session_compromised(&d.id, now).await;
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

/// When a session stops authorising door openings: at "delivered", at close, or at
/// its scheduled end, whichever comes first.
fn authorised_until(s: &SessionRow) -> Option<i64> {
    [s.delivered_ms, s.closed_ms, s.ends_ms]
        .into_iter()
        .flatten()
        .min()
}

/// How a door opening at device time `t` relates to the home's sessions.
#[derive(Debug, PartialEq)]
enum Opening<'a> {
    Authorised,
    /// Inside a delivery session, but after its camera was lost.
    Unwatched(&'a SessionRow),
    /// After the courier marked delivered (or after a session ended) while that
    /// delivery was not yet confirmed closed and locked.
    AfterDelivery(&'a SessionRow),
    Unauthorised,
}

fn classify_opening(sessions: &[SessionRow], t: i64, slack: i64) -> Opening<'_> {
    let mut after = None;
    for s in sessions {
        if t + slack < s.opened_ms {
            continue;
        }
        let until = authorised_until(s);
        if until.is_none_or(|u| t <= u + slack) {
            if let Some(c) = s.compromised_ms {
                if t > c {
                    return Opening::Unwatched(s);
                }
            }
            return Opening::Authorised;
        }
        if s.delivery_id.is_some() && s.closed_ms.is_none_or(|c| t <= c + slack) {
            after = Some(s);
        }
    }
    match after {
        Some(s) => Opening::AfterDelivery(s),
        None => Opening::Unauthorised,
    }
}

/// Law 5: door openings are checked against sessions as of the event's signed device
/// time, whenever the hub learns of them (a log uploaded after an outage included).
/// Bolt events close owner and guest sessions; refused tokens are reported.
pub async fn on_door_event(
    state: &AppState,
    home_id: &str,
    owner_id: &str,
    device: &str,
    event_type: &str,
    msg: &SignedMessage,
) {
    let t = msg.time_ms;
    match event_type {
        "door_opened" => on_door_opened(state, home_id, owner_id, device, msg).await,
        "bolt_locked" | "relocked" => {
            // The door is locked again: owner and guest sessions opened before end.
            if let Ok(open) = state.store.open_sessions(home_id).await {
                for s in open.iter().filter(|s| {
                    s.delivery_id.is_none() && s.opened_ms + 1_000 < t && !s.grant_ref.is_empty()
                }) {
                    let _ = state.store.close_session(&s.id, t).await;
                }
            }
            try_complete(state, home_id).await;
        }
        "door_closed" => try_complete(state, home_id).await,
        "token_refused" => on_token_refused(state, home_id, owner_id, device, msg).await,
        _ => {}
    }
}

async fn on_door_opened(
    state: &AppState,
    home_id: &str,
    owner_id: &str,
    device: &str,
    msg: &SignedMessage,
) {
    let t = msg.time_ms;
    let slack = state.config.max_clock_skew_ms.max(0);
    let sessions = match state
        .store
        .sessions_near(home_id, t, slack + 24 * 3600 * 1000)
        .await
    {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "could not read sessions; treating door opening as unauthorised");
            Vec::new()
        }
    };
    let late_ms = state.clock.now_ms() - t;
    let (kind, message, delivery) = match classify_opening(&sessions, t, slack) {
        Opening::Authorised => return,
        Opening::Unwatched(s) => (
            "door_opened_unwatched",
            "The door was opened during a delivery after the camera stopped watching.",
            s.delivery_id.clone(),
        ),
        Opening::AfterDelivery(s) => (
            "door_opened_after_delivery",
            "The door was opened again after the courier marked the parcel delivered.",
            s.delivery_id.clone(),
        ),
        Opening::Unauthorised => (
            "unauthorized_entry",
            "The door was opened with no authorised delivery, owner or guest session.",
            None,
        ),
    };
    if let Some(d) = &delivery {
        let _ = state
            .store
            .add_timeline(
                home_id,
                Some(device),
                Some(d),
                t,
                &format!("incident.{kind}"),
                &json!({"device_time_ms": t, "event_seq": msg.seq, "learned_late_ms": late_ms})
                    .to_string(),
            )
            .await;
    }
    raise_alert(
        state,
        owner_id,
        NewAlert {
            home_id,
            device_id: Some(device),
            delivery_id: delivery.as_deref(),
            severity: "critical",
            kind,
            message,
            evidence: &json!({"device_time_ms": t, "event_seq": msg.seq, "learned_late_ms": late_ms,
                "sessions_considered": sessions.iter().map(|s| json!({"grant": s.grant_ref, "opened_ms": s.opened_ms, "delivered_ms": s.delivered_ms, "compromised_ms": s.compromised_ms, "closed_ms": s.closed_ms})).collect::<Vec<_>>()})
            .to_string(),
        },
    )
    .await;
}

/// A token the lock refused. The benign case: the lock says `nonce_reused` for a
/// nonce it had itself accepted less than a token lifetime earlier (a duplicate
/// delivery of the same capability). Anything else (a refusal without a nonce, i.e.
/// rejected at the envelope: bad signature, wrong lock, replayed downlink sequence;
/// an expired token; a nonce reused later) may be a replay or forgery: alert.
async fn on_token_refused(
    state: &AppState,
    home_id: &str,
    owner_id: &str,
    device: &str,
    msg: &SignedMessage,
) {
    let detail = msg
        .json::<threshold_proto::body::Event>()
        .map(|e| e.detail)
        .unwrap_or(json!({}));
    let reason = detail
        .get("reason")
        .and_then(|r| r.as_str())
        .unwrap_or("unknown");
    let reason = crate::gateway::ingest::bounded(reason, 32);
    let nonce = detail.get("nonce").and_then(|n| n.as_str()).unwrap_or("");
    let accepted_at = state
        .store
        .nonce_accepted(device, nonce)
        .await
        .unwrap_or(None);
    if reason == "nonce_reused"
        && accepted_at.is_some_and(|a| msg.time_ms <= a + state.config.unlock_token_ttl_ms)
    {
        tracing::info!(
            device,
            "duplicate delivery of an accepted unlock token; not an incident"
        );
        return;
    }
    let message =
        format!("The lock refused an unlock token ({reason}): possible replay or forged command.");
    raise_alert(
        state,
        owner_id,
        NewAlert {
            home_id,
            device_id: Some(device),
            delivery_id: None,
            severity: "warning",
            kind: "token_refused",
            message: &message,
            evidence: &json!({"reason": reason, "device_time_ms": msg.time_ms, "event_seq": msg.seq,
                "grant": detail.get("grant").and_then(|g| g.as_str()).map(|g| crate::gateway::ingest::bounded(g, 128)),
                "nonce": crate::gateway::ingest::bounded(nonce, 64)})
            .to_string(),
        },
    )
    .await;
}

/// Close sessions whose door is confirmed closed and locked by a fresh signed report.
pub async fn try_complete(state: &AppState, home_id: &str) {
    let Some((Some(BoltState::Locked), Some(DoorState::Closed), true, report_at)) =
        lock_state(state, home_id).await
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
            let session = state.store.session_of_delivery(&d.id).await.ok();
            if let Some(s) = &session {
                let _ = state.store.close_session(&s.id, now).await;
            }
            let summary = json!({
                "delivery_id": d.id,
                "parcel_ref": d.parcel_ref,
                "entry_granted_ms": session.as_ref().map(|s| s.opened_ms),
                "delivered_ms": session.as_ref().and_then(|s| s.delivered_ms),
                "secured_ms": now,
                "lock_report_ms": report_at,
                "door": "closed",
                "bolt": "locked",
                "camera_lost": d.compromised,
                "clip": format!("/api/v1/deliveries/{}/recording", d.id),
            });
            let _ = state
                .store
                .add_timeline(
                    home_id,
                    None,
                    Some(&d.id),
                    now,
                    "completed",
                    &summary.to_string(),
                )
                .await;
            crate::audit::record(
                state,
                "delivery.completed",
                "hub",
                &format!("delivery:{}", d.id),
                summary.clone(),
            )
            .await;
            if let Ok(h) = state.store.home_any(home_id).await {
                state.bus.publish(HubEvent {
                    owner_id: h.owner_id,
                    courier_id: Some(d.courier_id.clone()),
                    home_id: home_id.to_owned(),
                    event_type: "delivery.completed".into(),
                    time_ms: now,
                    data: summary,
                });
            }
        }
    }
}

/// Every 250 ms: complete delivered sessions whose lock now reports closed and locked
/// (freshly), alert on sessions that could not be secured within the limit, and end
/// owner/guest sessions past their end.
pub fn spawn_watcher(state: AppState) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if state.stopped() {
                return;
            }
            watch_once(&state).await;
        }
    });
}

async fn watch_once(state: &AppState) {
    let now = state.clock.now_ms();
    let Ok(open) = state.store.sessions_to_watch(now, 10_000).await else {
        return;
    };
    let limit = state.config.session_secure_limit_ms;
    let mut homes = std::collections::BTreeSet::new();
    for s in &open {
        if s.delivery_id.is_none() {
            if s.ends_ms.is_some_and(|e| e < now) {
                let _ = state.store.close_session(&s.id, now).await;
            }
            continue;
        }
        let Some(since) = s.delivered_ms.or(s.compromised_ms) else {
            continue;
        };
        homes.insert(s.home_id.clone());
        if now - since > limit && s.secure_alert_ms.is_none() {
            secure_alert(state, s, since, now).await;
        }
    }
    awaiting(|set| *set = homes.clone());
    for h in homes {
        try_complete(state, &h).await;
    }
}

async fn secure_alert(state: &AppState, s: &SessionRow, since: i64, now: i64) {
    // Re-check: a completion may have just closed it.
    if state
        .store
        .session_of_delivery(s.delivery_id.as_deref().unwrap_or(""))
        .await
        .is_ok_and(|x| x.closed_ms.is_some())
    {
        return;
    }
    let lock = lock_state(state, &s.home_id).await;
    // Camera lost while the courier was inside and never marked delivered, but the
    // door is confirmed closed and locked right now: secure, nothing to alert.
    if s.delivered_ms.is_none()
        && matches!(
            lock,
            Some((Some(BoltState::Locked), Some(DoorState::Closed), true, _))
        )
    {
        return;
    }
    if !state
        .store
        .mark_secure_alert(&s.id, now)
        .await
        .unwrap_or(false)
    {
        return;
    }
    let Ok(home) = state.store.home_any(&s.home_id).await else {
        return;
    };
    let (bolt, door, fresh, at) = match &lock {
        Some((b, d, f, at)) => (
            b.map(|b| format!("{b:?}").to_lowercase()),
            d.map(|d| format!("{d:?}").to_lowercase()),
            *f,
            *at,
        ),
        None => (None, None, false, None),
    };
    let what = match (&bolt, &door, fresh) {
        (_, _, false) => "the lock has not sent a fresh signed report",
        (_, Some(d), true) if d == "open" => "the door was left open",
        _ => "the door is not confirmed locked",
    };
    let message = format!(
        "The delivery could not be confirmed closed and locked within {} s: {what}.",
        state.config.session_secure_limit_ms / 1000
    );
    raise_alert(
        state,
        &home.owner_id,
        NewAlert {
            home_id: &s.home_id,
            device_id: None,
            delivery_id: s.delivery_id.as_deref(),
            severity: "critical",
            kind: "session_not_secured",
            message: &message,
            evidence: &json!({"since_ms": since, "limit_ms": state.config.session_secure_limit_ms, "bolt": bolt.unwrap_or_else(|| "unknown".into()),
                "door": door.unwrap_or_else(|| "unknown".into()), "report_fresh": fresh, "report_received_ms": at})
            .to_string(),
        },
    )
    .await;
}

/// The lock as the apps must show it (law 1): "locked" only while a fresh signed
/// report says so, otherwise "unknown" with the time it became unknown.
pub async fn lock_view(state: &AppState, home_id: &str) -> serde_json::Value {
    let cfg = state.config.liveness();
    let mut out = json!({"bolt": "unknown", "door": "unknown", "fresh": false, "present": false});
    state.registry.for_home(home_id, |e| {
        if e.kind == DeviceKind::Lock && !e.revoked {
            let now = state.clock.now_ms();
            let fresh = e.liveness.state(now, &cfg) == Liveness::Live;
            let s = e.last_state.clone().unwrap_or_default();
            let shown = |v: Option<String>| {
                if fresh {
                    v.unwrap_or_else(|| "unknown".into())
                } else {
                    "unknown".into()
                }
            };
            out = json!({
                "present": true,
                "device_id": e.id.to_hex(),
                "bolt": shown(s.bolt.map(|b| format!("{b:?}").to_lowercase())),
                "door": shown(s.door.map(|d| format!("{d:?}").to_lowercase())),
                "fresh": fresh,
                "reported_at_ms": e.last_state_at,
                "unknown_since_ms": if fresh { None } else { e.liveness.fresh_at().map(|f| f + cfg.live_window_ms) },
            });
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(
        opened: i64,
        delivered: Option<i64>,
        compromised: Option<i64>,
        closed: Option<i64>,
    ) -> SessionRow {
        SessionRow {
            id: "s".into(),
            home_id: "h".into(),
            grant_ref: "delivery:d".into(),
            delivery_id: Some("d".into()),
            opened_ms: opened,
            ends_ms: None,
            delivered_ms: delivered,
            compromised_ms: compromised,
            closed_ms: closed,
            secure_alert_ms: None,
        }
    }

    #[test]
    fn openings_are_judged_by_device_time() {
        let open = vec![s(1_000, None, None, None)];
        assert_eq!(classify_opening(&open, 1_500, 100), Opening::Authorised);
        assert_eq!(classify_opening(&open, 500, 100), Opening::Unauthorised);
        let delivered = vec![s(1_000, Some(5_000), None, None)];
        assert_eq!(
            classify_opening(&delivered, 4_000, 100),
            Opening::Authorised
        );
        assert!(matches!(
            classify_opening(&delivered, 9_000, 100),
            Opening::AfterDelivery(_)
        ));
        // Completed at 6 s: a later opening is plain unauthorised entry.
        let closed = vec![s(1_000, Some(5_000), None, Some(6_000))];
        assert_eq!(
            classify_opening(&closed, 20_000, 100),
            Opening::Unauthorised
        );
        let lost = vec![s(1_000, None, Some(3_000), None)];
        assert!(matches!(
            classify_opening(&lost, 4_000, 100),
            Opening::Unwatched(_)
        ));
        assert_eq!(classify_opening(&[], 4_000, 100), Opening::Unauthorised);
    }
}
