//! Deliveries: dispatchers create them, couriers act on their own, owners see theirs.

use crate::access::entry::{courier as courier_entry, CourierRequest};
use crate::access::incident;
use crate::auth::Principal;
use crate::http::dto::*;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{self, ApiJson};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::json;
use threshold_core::delivery::{Input, Invalid};
use threshold_core::entry::Position;
use threshold_store::Role;

/// The longest delivery window a dispatcher may ask for.
const MAX_WINDOW_MS: i64 = 24 * 3600 * 1000;
/// How far from now a window may start: a day back (a late entry in a dispatcher's
/// system), a year ahead.
const WINDOW_PAST_MS: i64 = 24 * 3600 * 1000;
const WINDOW_FUTURE_MS: i64 = 366 * 24 * 3600 * 1000;

/// A delivery window must be a real, bounded stretch of time near now. Computed
/// without overflow: `[-1, i64::MAX]` is refused, not wrapped into a short window.
pub fn check_window(start: i64, end: i64, now: i64) -> ApiResult<()> {
    let bad = |m: &str| Err(ApiError::invalid("invalid_window", m));
    let Some(len) = end.checked_sub(start) else {
        return bad("the window is not a real stretch of time");
    };
    if len <= 0 {
        return bad("window_end_ms must be after window_start_ms");
    }
    if len > MAX_WINDOW_MS {
        return bad("a delivery window may be at most 24 hours");
    }
    if start < now.saturating_sub(WINDOW_PAST_MS) || start > now.saturating_add(WINDOW_FUTURE_MS) {
        return bad("a delivery window must start between a day ago and a year from now");
    }
    Ok(())
}

#[utoipa::path(post, operation_id = "deliveries_create", path = "/deliveries", request_body = CreateDelivery, tag = "deliveries",
    responses((status = 201, body = DeliveryJson), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn create(
    State(st): State<AppState>,
    p: Principal,
    ApiJson(req): ApiJson<CreateDelivery>,
) -> ApiResult<(StatusCode, Json<DeliveryJson>)> {
    let dispatcher = p.require(Role::Dispatcher)?;
    let now = st.clock.now_ms();
    check_window(req.window_start_ms, req.window_end_ms, now)?;
    let parcel = extract::text("parcel_ref", &req.parcel_ref, 128)?;
    let placement = req.placement.as_deref().unwrap_or("in_home");
    if !matches!(placement, "in_home" | "in_garage") {
        return Err(ApiError::invalid(
            "invalid_field",
            "placement must be in_home or in_garage",
        ));
    }
    let home = st
        .store
        .home_any(extract::id(&req.home_id)?)
        .await
        .map_err(|_| ApiError::NotFound("home"))?;
    let courier = st
        .store
        .user(extract::id(&req.courier_id)?)
        .await
        .map_err(|_| ApiError::NotFound("courier"))?;
    if courier.role != Role::Courier {
        return Err(ApiError::NotFound("courier"));
    }
    let door = match &req.door_id {
        Some(id) => st
            .access
            .doors
            .get(extract::id(id)?)
            .filter(|d| d.home_id == home.id && d.accepts_deliveries)
            .ok_or_else(|| {
                ApiError::invalid(
                    "invalid_door",
                    "that door does not take deliveries at this home",
                )
            })?,
        None => {
            let mut doors: Vec<_> = st
                .access
                .doors
                .of_home(&home.id)
                .into_iter()
                .filter(|d| d.accepts_deliveries)
                .collect();
            if doors.len() != 1 {
                return Err(ApiError::invalid(
                    "door_required",
                    "this home has no single door for deliveries; name one with door_id",
                ));
            }
            doors.remove(0)
        }
    };
    let d = st
        .store
        .create_delivery(
            &home.id,
            &courier.id,
            dispatcher,
            req.window_start_ms,
            req.window_end_ms,
            &parcel,
            placement,
            &door.id,
            now,
        )
        .await?;
    crate::audit::record(
        &st,
        "delivery.created",
        &p.actor(),
        &format!("delivery:{}", d.id),
        json!({"home_id": home.id, "courier_id": courier.id, "door_id": door.id}),
    )
    .await;
    let _ = st
        .store
        .add_timeline(
            &home.id,
            None,
            Some(&d.id),
            st.clock.now_ms(),
            "delivery.scheduled",
            &json!({"window_start_ms": d.window_start_ms, "window_end_ms": d.window_end_ms, "door_id": door.id, "dispatcher_id": dispatcher})
                .to_string(),
        )
        .await;
    crate::http::expectations::on_delivery_created(&st, &home, &d).await;
    Ok((StatusCode::CREATED, Json((&d).into())))
}

/// Each role sees only its own: an owner the deliveries to their homes, a courier
/// those assigned to them, a dispatcher those they created.
#[utoipa::path(get, operation_id = "deliveries_list", path = "/deliveries", tag = "deliveries", responses((status = 200, body = [DeliveryJson])))]
pub async fn list(State(st): State<AppState>, p: Principal) -> ApiResult<Json<Vec<DeliveryJson>>> {
    let now = st.clock.now_ms();
    let rows = match p.user.role {
        Role::Owner => st.store.owner_deliveries(&p.user.id, 200).await?,
        Role::Courier => {
            st.store
                .courier_deliveries(&p.user.id, now - 12 * 3600 * 1000, now + 24 * 3600 * 1000)
                .await?
        }
        Role::Dispatcher => st.store.dispatcher_deliveries(&p.user.id, 200).await?,
        Role::Admin => return Err(ApiError::Forbidden),
    };
    // Each delivery with where it goes (one lookup per home, not per delivery).
    let mut addresses: std::collections::HashMap<String, String> = Default::default();
    let mut out = Vec::with_capacity(rows.len());
    for d in &rows {
        let mut j = DeliveryJson::from(d);
        if !addresses.contains_key(&d.home_id) {
            let a = st
                .store
                .home_any(&d.home_id)
                .await
                .map(|h| h.address)
                .unwrap_or_default();
            addresses.insert(d.home_id.clone(), a);
        }
        j.address = addresses.get(&d.home_id).cloned().unwrap_or_default();
        out.push(j);
    }
    Ok(Json(out))
}

async fn visible(
    st: &AppState,
    p: &Principal,
    id: &str,
) -> ApiResult<threshold_store::DeliveryRow> {
    let d = st
        .store
        .delivery_any(extract::id(id)?)
        .await
        .map_err(|_| ApiError::NotFound("delivery"))?;
    let ok = match p.user.role {
        Role::Courier => d.courier_id == p.user.id,
        Role::Dispatcher => d.dispatcher_id == p.user.id,
        Role::Owner => st.store.home(&p.user.id, &d.home_id).await.is_ok(),
        Role::Admin => false,
    };
    if ok {
        Ok(d)
    } else {
        Err(ApiError::NotFound("delivery"))
    }
}

#[utoipa::path(get, operation_id = "deliveries_get", path = "/deliveries/{id}", tag = "deliveries", params(("id" = String, Path)), responses((status = 200, body = DeliveryJson), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let d = visible(&st, &p, &id).await?;
    let mut v = serde_json::to_value(DeliveryJson::from(&d)).unwrap_or(json!({}));
    // Law 1: the courier and the owner see the door's lock as it truly is.
    let door = d.door_id.as_deref().and_then(|id| st.access.doors.get(id));
    v["lock"] = match &door {
        Some(door) => crate::access::doors::lock_view(&st, door),
        None => json!({"bolt": "unknown", "door": "unknown", "fresh": false, "present": false}),
    };
    v["door_name"] = json!(door.map(|x| x.name));
    v["approved"] = json!(d.approved);
    if let Ok(h) = st.store.home_any(&d.home_id).await {
        v["needs_approval"] = json!(crate::access::entry::approval_pending(&st, &d, &h).await?);
        v["address"] = json!(h.address);
    }
    if p.user.role == Role::Owner {
        v["timeline"] = json!(owner_timeline(&st, &d).await?);
    }
    Ok(Json(v))
}

/// Door and bolt happenings of the delivery's door that belong on its timeline.
const DOOR_KINDS: [&str; 8] = [
    "device.door_closed",
    "device.bolt_locked",
    "device.bolt_unlocked",
    "device.relocked",
    "device.close_commanded",
    "device.obstruction_detected",
    "device.obstruction_cleared",
    "device.token_accepted",
];

/// The delivery's timeline as its owner reads it: the hub's entries, and the door's
/// own signed account of the same minutes (closed, locked, commanded) from entry
/// granted until the delivery ended (a minute on, for the door that closes after),
/// each with who did it.
async fn owner_timeline(
    st: &AppState,
    d: &threshold_store::DeliveryRow,
) -> ApiResult<Vec<serde_json::Value>> {
    let rows = st.store.delivery_timeline(&d.id).await?;
    let courier = st.store.user(&d.courier_id).await.ok().map(|u| u.username);
    let door = d.door_id.as_deref().and_then(|id| st.access.doors.get(id));
    // At one instant: what led to an entry, then the door's own reports, then what the
    // hub concluded from them (a delivery completed by the bolt's "locked").
    let hub_rank = |kind: &str| match kind {
        "delivery.scheduled" | "decision" | "unlock_sent" => 0,
        _ => 2,
    };
    let mut out: Vec<((i64, u8), serde_json::Value)> = rows
        .iter()
        .map(|t| {
            let who = match t.kind.as_str() {
                "decision" | "unlock_sent" | "delivered" | "delivery.delivered" => {
                    courier.clone().map(|c| format!("courier {c}"))
                }
                "approved" => Some("you".to_owned()),
                _ => Some("hub".to_owned()),
            };
            (
                (t.time_ms, hub_rank(&t.kind)),
                json!({"time_ms": t.time_ms, "kind": t.kind, "who": who,
                    "detail": serde_json::from_str::<serde_json::Value>(&t.detail).unwrap_or(json!({}))}),
            )
        })
        .collect();
    let granted = rows
        .iter()
        .find(|t| t.kind == "unlock_sent")
        .map(|t| t.time_ms);
    if let (Some(door), Some(from)) = (door, granted) {
        let devices: Vec<String> = door
            .lock
            .iter()
            .chain(door.contact.iter())
            .map(|x| x.to_hex())
            .collect();
        if let Some(first) = devices.first() {
            let second = devices.get(1).unwrap_or(first);
            let ended = rows
                .iter()
                .rev()
                .find(|t| {
                    t.kind
                        .strip_prefix("delivery.")
                        .and_then(threshold_core::delivery::DeliveryState::parse)
                        .is_some_and(|s| s.is_terminal())
                })
                .map(|t| t.time_ms);
            let to = ended.map_or(st.clock.now_ms(), |e| e.saturating_add(60_000));
            for t in st
                .store
                .door_device_timeline(&d.home_id, (first, second), from, to)
                .await?
            {
                if !DOOR_KINDS.contains(&t.kind.as_str()) {
                    continue;
                }
                let who = t
                    .device_id
                    .as_deref()
                    .and_then(|x| x.parse().ok())
                    .and_then(|x| st.registry.identity(&x))
                    .map(|(_, _, name, _)| name);
                out.push((
                    (t.time_ms, 1),
                    json!({"time_ms": t.time_ms, "kind": t.kind, "who": who, "device_id": t.device_id,
                        "detail": serde_json::from_str::<serde_json::Value>(&t.detail).unwrap_or(json!({}))}),
                ));
            }
        }
    }
    // Stable: rows of one rank keep their stored (causal) order at equal times.
    out.sort_by_key(|(k, _)| *k);
    Ok(out.into_iter().map(|(_, v)| v).collect())
}

/// "I'm at the door": the courier asks to enter. The answer lists every reason for a
/// refusal.
#[utoipa::path(post, operation_id = "deliveries_entry", path = "/deliveries/{id}/entry", request_body = EntryRequestJson, tag = "deliveries", params(("id" = String, Path)),
    responses((status = 200, body = DecisionJson), (status = 404, body = ErrorBody)))]
pub async fn entry(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<EntryRequestJson>,
) -> ApiResult<Json<DecisionJson>> {
    let courier = p.require(Role::Courier)?.to_owned();
    let (d, home) = st
        .store
        .delivery_with_home(extract::id(&id)?)
        .await
        .map_err(|_| ApiError::NotFound("delivery"))?;
    let parcel = req.parcel_ref.chars().take(128).collect::<String>();
    let out = courier_entry(
        &st,
        &courier,
        &d,
        &home,
        CourierRequest {
            position: Position {
                lat: req.lat,
                lon: req.lon,
                accuracy_m: req.accuracy_m,
            },
            parcel_ref: parcel,
        },
    )
    .await?;
    Ok(Json(DecisionJson {
        allowed: out.decision.allowed,
        reasons: out
            .decision
            .reasons
            .iter()
            .map(|r| ReasonJson {
                code: r.code().into(),
                message: r.message().into(),
            })
            .collect(),
        token_expires_at_ms: out.token_expires_at_ms,
    }))
}

/// The courier says the parcel is inside. The session closes only when a fresh signed
/// report says the door is closed and locked.
#[utoipa::path(post, operation_id = "deliveries_delivered", path = "/deliveries/{id}/delivered", tag = "deliveries", params(("id" = String, Path)), responses((status = 200, body = DeliveryJson), (status = 409, body = ErrorBody)))]
pub async fn delivered(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<DeliveryJson>> {
    let courier = p.require(Role::Courier)?.to_owned();
    let d = visible(&st, &p, &id).await?;
    match incident::apply(&st, &d, Input::CourierDone).await {
        Ok(_) => {}
        Err(Invalid::CameraLost) => {
            return Err(ApiError::ConflictCode(
                "delivery_compromised",
                "the camera stopped watching during this delivery: leave, close the door, and the hub will secure it".into(),
            ))
        }
        Err(Invalid::NotInside(s)) => {
            return Err(ApiError::invalid(
                "invalid_state",
                format!("delivery is {}, not inside", s.as_str()),
            ))
        }
    }
    crate::audit::record_in(
        &st,
        &d.home_id,
        "delivery.courier_done",
        &format!("courier:{courier}"),
        &format!("delivery:{}", d.id),
        json!({}),
    )
    .await;
    if let Some(door) = d.door_id.as_deref().and_then(|id| st.access.doors.get(id)) {
        st.access.await_secure(&door.id);
        incident::on_door_state(&st, &door).await;
    }
    let d = st.store.delivery_any(&d.id).await?;
    Ok(Json((&d).into()))
}

/// The owner approves one delivery (needed when the home requires approval).
#[utoipa::path(post, operation_id = "deliveries_approve", path = "/deliveries/{id}/approve", tag = "deliveries", params(("id" = String, Path)), responses((status = 200, body = DeliveryJson), (status = 404, body = ErrorBody), (status = 400, body = ErrorBody)))]
pub async fn approve(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<DeliveryJson>> {
    p.require(Role::Owner)?;
    let d = visible(&st, &p, &id).await?;
    let now = st.clock.now_ms();
    if !st.store.set_delivery_approved(&d.id, now).await? {
        return Err(ApiError::invalid(
            "invalid_state",
            format!("delivery is {}, not scheduled", d.state),
        ));
    }
    crate::audit::record_in(
        &st,
        &d.home_id,
        "delivery.approved",
        &p.actor(),
        &format!("delivery:{}", d.id),
        json!({}),
    )
    .await;
    let _ = st
        .store
        .add_timeline(&d.home_id, None, Some(&d.id), now, "approved", "{}")
        .await;
    let d = st.store.delivery_any(&d.id).await?;
    Ok(Json((&d).into()))
}
