//! The three ways a door opens remotely, all decided by the one rule
//! (`threshold_core::entry::decide`) on the facts of the one door they are for:
//! a courier's delivery, a guest's grant, the owner's remote unlock. Every decision,
//! yes or no, is in the audit log and on the timeline before anyone hears of it; a
//! yes that cannot be recorded is no entry.

use crate::access::doors::{self, Door};
use crate::access::incident;
use crate::access::unlock::{self, Capability};
use crate::access::AccessError;
use crate::audit::Record;
use crate::events::HubEvent;
use crate::state::AppState;
use serde_json::json;
use threshold_core::delivery::{DeliveryState, Input};
use threshold_core::entry::{
    decide, CourierFacts, Decision, DoorFacts, GuestFacts, Position, Principal, Refusal,
};
use threshold_store::{DeliveryRow, EntryClaim, GuestGrantRow, HomeRow, NewTimelineRow};

/// An owner or guest session lasts until the lock relocks, at most this long.
pub const MANUAL_SESSION_MAX_MS: i64 = 10 * 60 * 1000;

/// The answer to an entry request.
#[derive(Debug, serde::Serialize)]
pub struct EntryOutcome {
    pub decision: Decision,
    pub token_expires_at_ms: Option<i64>,
}

/// What the courier's app sends.
pub struct CourierRequest {
    pub position: Position,
    pub parcel_ref: String,
}

fn reason_codes(d: &Decision) -> Vec<&'static str> {
    d.reasons.iter().map(|r| r.code()).collect()
}

fn door_json(door: Option<&Door>, facts: &DoorFacts) -> serde_json::Value {
    json!({
        "door_id": door.map(|d| d.id.clone()),
        "cameras": facts.cameras.iter().map(|c| match c { Ok(()) => "watching", Err(b) => b.code() }).collect::<Vec<_>>(),
        "lock": facts.lock.map(|l| l.as_str()),
    })
}

fn timeline_row(
    home_id: &str,
    delivery_id: Option<&str>,
    now: i64,
    kind: &str,
    detail: String,
) -> NewTimelineRow {
    NewTimelineRow {
        home_id: home_id.to_owned(),
        device_id: None,
        delivery_id: delivery_id.map(str::to_owned),
        time_ms: now,
        kind: kind.to_owned(),
        detail,
    }
}

/// Whether the owner's answer is still needed: neither approved by the owner nor from
/// a merchant the owner trusts for this home (or the owner asks to approve each one).
pub async fn approval_pending(
    state: &AppState,
    d: &DeliveryRow,
    home: &HomeRow,
) -> Result<bool, AccessError> {
    if d.approved {
        return Ok(false);
    }
    if home.approval_required {
        return Ok(true);
    }
    Ok(!state
        .store
        .merchant_trusted(&home.id, &d.dispatcher_id)
        .await?)
}

/// A courier's request to enter for a delivery. On yes, exactly one of several
/// concurrent requests claims the delivery (`scheduled` -> `inside`), in the same
/// commit as the decision's audit entries, its access session and its recording; only
/// then does the capability leave for the delivery's door's lock.
pub async fn courier(
    state: &AppState,
    courier_id: &str,
    d: &DeliveryRow,
    home: &HomeRow,
    req: CourierRequest,
) -> Result<EntryOutcome, AccessError> {
    let now = state.clock.now_ms();
    let door = d
        .door_id
        .as_deref()
        .and_then(|id| state.access.doors.get(id));
    let facts = doors::facts(state, door.as_ref(), now);
    let who = Principal::Courier(CourierFacts {
        assigned: d.courier_id == courier_id,
        delivery: DeliveryState::parse(&d.state).unwrap_or(DeliveryState::Expired),
        window_start: d.window_start_ms,
        window_end: d.window_end_ms,
        position: req.position,
        home_lat: home.lat,
        home_lon: home.lon,
        geofence_m: home.geofence_m,
        parcel_expected: d.parcel_ref.clone(),
        parcel_scanned: req.parcel_ref.clone(),
        owner_allows_in_home: home.in_home_enabled,
        within_owner_hours: crate::access::hours::within_owner_hours(home, now),
        approval_pending: approval_pending(state, d, home).await?,
    });
    let mut decision = decide(now, &who, &facts);
    let grant = format!("delivery:{}", d.id);
    let actor = format!("courier:{courier_id}");
    let detail = |decision: &Decision| {
        json!({"delivery_id": d.id, "allowed": decision.allowed, "reasons": reason_codes(decision),
            "position": {"lat": req.position.lat, "lon": req.position.lon, "accuracy_m": req.position.accuracy_m},
            "door": door_json(door.as_ref(), &facts)})
    };
    let mut capability = None;
    if decision.allowed {
        if let (Some(door), Some(lock)) = (&door, door.as_ref().and_then(|x| x.lock)) {
            let cap = unlock::prepare(state, door, lock, &grant, now, None)?;
            let detail = detail(&decision);
            let audit = vec![
                Record::new("decision", &actor, &grant, detail.clone()).in_home(&home.id),
                unlock::record(&cap, &actor).in_home(&home.id),
            ];
            let timeline = vec![
                timeline_row(&home.id, Some(&d.id), now, "decision", detail.to_string()),
                timeline_row(
                    &home.id,
                    Some(&d.id),
                    now,
                    "unlock_sent",
                    json!({"expires_at_ms": cap.expires, "door_id": door.id, "camera": cap.camera.map(|c| c.to_hex())}).to_string(),
                ),
            ];
            // The claim moves the delivery as the state machine says (scheduled to
            // inside); the store makes it conditional, so one of racing requests wins.
            let claimed = match incident::planned(state, d, Input::EntryGranted, now) {
                Some(step) => {
                    let claim = EntryClaim {
                        from_state: step.from.as_str(),
                        to_state: step.to.as_str(),
                        delivery_id: d.id.clone(),
                        home_id: home.id.clone(),
                        door_id: door.id.clone(),
                        grant_ref: grant.clone(),
                        now_ms: now,
                    };
                    // Fail secure: no record, no entry.
                    state
                        .journal
                        .write_claimed(claim, audit, timeline)
                        .await
                        .map_err(|e| AccessError::NotRecorded(e.to_string()))?
                        .is_some()
                }
                None => false,
            };
            if claimed {
                capability = Some(cap);
            } else {
                decision = Decision::refused(Refusal::AlreadyUsed);
            }
        }
    }
    match (&capability, &door) {
        (Some(cap), Some(door)) => {
            unlock::send(state, cap).await;
            state.access.await_secure(&door.id);
            unlock::request_streams(state, &door.cameras, now + 60_000).await;
            state.bus.publish(HubEvent {
                owner_id: home.owner_id.clone(),
                courier_id: Some(courier_id.to_owned()),
                home_id: home.id.clone(),
                event_type: "delivery.entry_granted".into(),
                time_ms: now,
                data: json!({"delivery_id": d.id, "door_id": door.id}),
            });
            // After the token is on its way: the pass watches the session from now on,
            // on whichever node acts for the home.
            crate::fleet::changes::delivery_changed(state, &d.id).await;
        }
        _ => {
            // A refusal for someone not assigned says nothing to the owner's timeline
            // about that courier beyond the fact of the attempt.
            let detail = detail(&decision);
            crate::audit::record_all(
                state,
                vec![Record::new("decision", &actor, &grant, detail.clone()).in_home(&home.id)],
                vec![timeline_row(
                    &home.id,
                    Some(&d.id),
                    now,
                    "decision",
                    detail.to_string(),
                )],
            )
            .await;
        }
    }
    decided(
        state,
        &home.owner_id,
        "courier",
        (&home.id, Some(&d.id), d.door_id.as_deref()),
        &decision,
        capability.is_some(),
    )
    .await;
    Ok(EntryOutcome {
        decision,
        token_expires_at_ms: capability.map(|c| c.expires),
    })
}

/// A decision made: counted, and told to the owner's webhooks (`entry.decided`).
async fn decided(
    state: &AppState,
    owner_id: &str,
    by: &str,
    at: (&str, Option<&str>, Option<&str>),
    decision: &Decision,
    allowed: bool,
) {
    state
        .metrics
        .decisions
        .get_or_create(&crate::metrics::OutcomeLabel {
            outcome: if allowed { "allowed" } else { "refused" }.into(),
        })
        .inc();
    let (home_id, delivery_id, door_id) = at;
    crate::alerts::webhooks::publish(
        state,
        owner_id,
        "entry.decided",
        &json!({"home_id": home_id, "delivery_id": delivery_id, "door_id": door_id,
            "by": by, "allowed": allowed, "reasons": reason_codes(decision)}),
    )
    .await;
}

/// Open an owner or guest session for `door` and send its capability; the decision,
/// the capability and the session are recorded first (fail secure).
/// `who` is both the grant (`owner:<id>`, `guest:<id>`) and the actor recorded.
async fn open_and_send(
    state: &AppState,
    door: &Door,
    who: &str,
    decision: &Decision,
    detail: serde_json::Value,
    kind: &str,
    now: i64,
) -> Result<Option<i64>, AccessError> {
    let Some(lock) = door.lock else {
        return Ok(None);
    };
    let home_id = &door.home_id;
    let cap: Capability = unlock::prepare(state, door, lock, who, now, decision.camera_waived)?;
    state
        .journal
        .write(
            vec![
                Record::new(
                    "decision",
                    who,
                    &format!("door:{}", door.id),
                    detail.clone(),
                )
                .in_home(home_id),
                unlock::record(&cap, who).in_home(home_id),
            ],
            vec![timeline_row(home_id, None, now, kind, detail.to_string())],
        )
        .await
        .map_err(|e| AccessError::NotRecorded(e.to_string()))?;
    state
        .store
        .open_session(
            home_id,
            &door.id,
            who,
            None,
            now,
            Some(now + MANUAL_SESSION_MAX_MS),
        )
        .await?;
    unlock::send(state, &cap).await;
    Ok(Some(cap.expires))
}

async fn record_refusal(
    state: &AppState,
    home_id: &str,
    door: &Door,
    actor: &str,
    detail: serde_json::Value,
    kind: &str,
    now: i64,
) {
    crate::audit::record_all(
        state,
        vec![Record::new(
            "decision",
            actor,
            &format!("door:{}", door.id),
            detail.clone(),
        )],
        vec![timeline_row(home_id, None, now, kind, detail.to_string())],
    )
    .await;
}

/// The owner's remote unlock of one door, under the same rule; `without_camera` is
/// the explicit override, recorded as such on the timeline and in the audit chain.
pub async fn owner(
    state: &AppState,
    owner_id: &str,
    door: &Door,
    without_camera: bool,
) -> Result<EntryOutcome, AccessError> {
    let now = state.clock.now_ms();
    let facts = doors::facts(state, Some(door), now);
    let decision = decide(now, &Principal::Owner { without_camera }, &facts);
    let actor = format!("owner:{owner_id}");
    let detail = json!({"allowed": decision.allowed, "reasons": reason_codes(&decision),
        "camera_override": decision.camera_waived.is_some(), "door": door_json(Some(door), &facts)});
    let expires = if decision.allowed {
        open_and_send(state, door, &actor, &decision, detail, "owner.unlock", now).await?
    } else {
        record_refusal(
            state,
            &door.home_id,
            door,
            &actor,
            detail,
            "owner.unlock",
            now,
        )
        .await;
        None
    };
    decided(
        state,
        owner_id,
        "owner",
        (&door.home_id, None, Some(&door.id)),
        &decision,
        expires.is_some(),
    )
    .await;
    Ok(EntryOutcome {
        decision,
        token_expires_at_ms: expires,
    })
}

/// A guest's unlock under their grant, for the grant's door.
pub async fn guest(state: &AppState, g: &GuestGrantRow) -> Result<EntryOutcome, AccessError> {
    let now = state.clock.now_ms();
    let door = g
        .door_id
        .as_deref()
        .and_then(|id| state.access.doors.get(id));
    let facts = doors::facts(state, door.as_ref(), now);
    let home = state.store.home_any(&g.home_id).await.ok();
    let who = Principal::Guest(GuestFacts {
        revoked: g.revoked_ms.is_some(),
        valid_from: g.valid_from_ms,
        valid_until: g.valid_until_ms,
        in_weekly_window: crate::access::guests::grant_in_weekly(g, home.as_ref(), now),
        camera_waived: !g.camera_required,
    });
    let decision = decide(now, &who, &facts);
    let grant = format!("guest:{}", g.id);
    let detail = json!({"grant": grant, "allowed": decision.allowed, "reasons": reason_codes(&decision),
        "camera_waived": decision.camera_waived.map(|w| w.code()), "door": door_json(door.as_ref(), &facts)});
    let expires = match (&door, decision.allowed) {
        (Some(door), true) => {
            open_and_send(
                state,
                door,
                &grant,
                &decision,
                detail,
                "guest.decision",
                now,
            )
            .await?
        }
        (Some(door), false) => {
            record_refusal(
                state,
                &g.home_id,
                door,
                &grant,
                detail,
                "guest.decision",
                now,
            )
            .await;
            None
        }
        (None, _) => {
            crate::audit::record_all(
                state,
                vec![Record::new(
                    "decision",
                    &grant,
                    &format!("home:{}", g.home_id),
                    detail.clone(),
                )],
                vec![timeline_row(
                    &g.home_id,
                    None,
                    now,
                    "guest.decision",
                    detail.to_string(),
                )],
            )
            .await;
            None
        }
    };
    decided(
        state,
        &g.owner_id,
        "guest",
        (&g.home_id, None, g.door_id.as_deref()),
        &decision,
        expires.is_some(),
    )
    .await;
    Ok(EntryOutcome {
        decision,
        token_expires_at_ms: expires,
    })
}
