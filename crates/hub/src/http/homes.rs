//! Homes, their settings, timelines and alerts: all scoped to the signed-in owner.

use crate::auth::Principal;
use crate::http::dto::*;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{self, ApiJson, ApiQuery};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use threshold_store::{NewHome, Role};

#[utoipa::path(get, operation_id = "homes_list", path = "/homes", tag = "homes", responses((status = 200, body = [HomeJson])))]
pub async fn list(State(st): State<AppState>, p: Principal) -> ApiResult<Json<Vec<HomeJson>>> {
    let owner = p.require(Role::Owner)?;
    Ok(Json(
        st.store
            .homes(owner)
            .await?
            .iter()
            .map(HomeJson::from)
            .collect(),
    ))
}

#[utoipa::path(post, operation_id = "homes_create", path = "/homes", request_body = CreateHome, tag = "homes", responses((status = 201, body = HomeJson), (status = 400, body = ErrorBody)))]
pub async fn create(
    State(st): State<AppState>,
    p: Principal,
    ApiJson(req): ApiJson<CreateHome>,
) -> ApiResult<(StatusCode, Json<HomeJson>)> {
    let owner = p.require(Role::Owner)?;
    let name = extract::text("name", &req.name, 100)?;
    let geofence = req.geofence_m.unwrap_or(75.0);
    let pos_ok = req.lat.is_finite()
        && req.lon.is_finite()
        && (-90.0..=90.0).contains(&req.lat)
        && (-180.0..=180.0).contains(&req.lon);
    if !pos_ok {
        return Err(ApiError::invalid(
            "invalid_position",
            "lat must be within -90..90 and lon within -180..180",
        ));
    }
    if !geofence.is_finite() || !(10.0..=1000.0).contains(&geofence) {
        return Err(ApiError::invalid(
            "invalid_field",
            "geofence_m must be between 10 and 1000",
        ));
    }
    let time_zone = checked_zone(req.time_zone.as_deref())?;
    let address = checked_address(req.address.as_deref())?;
    let h = st
        .store
        .create_home(
            NewHome {
                owner_id: owner,
                name: &name,
                lat: req.lat,
                lon: req.lon,
                geofence_m: geofence,
                time_zone: time_zone.as_deref(),
            },
            st.clock.now_ms(),
        )
        .await?;
    let h = match address {
        Some(a) => st.store.set_home_address(owner, &h.id, &a).await?,
        None => h,
    };
    crate::audit::record(
        &st,
        "home.created",
        &p.actor(),
        &format!("home:{}", h.id),
        json!({}),
    )
    .await;
    Ok((StatusCode::CREATED, Json((&h).into())))
}

#[utoipa::path(get, operation_id = "homes_get", path = "/homes/{id}", tag = "homes", params(("id" = String, Path)), responses((status = 200, body = HomeJson), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<HomeJson>> {
    let owner = p.require(Role::Owner)?;
    let h = st
        .store
        .home(owner, extract::id(&id)?)
        .await
        .map_err(|_| ApiError::NotFound("home"))?;
    Ok(Json((&h).into()))
}

#[utoipa::path(put, operation_id = "homes_settings", path = "/homes/{id}/settings", request_body = HomeSettings, tag = "homes", params(("id" = String, Path)), responses((status = 200, body = HomeJson)))]
pub async fn settings(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<HomeSettings>,
) -> ApiResult<Json<HomeJson>> {
    let owner = p.require(Role::Owner)?;
    let hours = req.allowed_hours.unwrap_or(json!({}));
    validate_hours(&hours)?;
    let time_zone = checked_zone(req.time_zone.as_deref())?;
    let h = st
        .store
        .update_home_settings(
            owner,
            extract::id(&id)?,
            req.in_home_enabled,
            req.approval_required,
            &hours.to_string(),
            time_zone.as_deref(),
        )
        .await
        .map_err(|_| ApiError::NotFound("home"))?;
    let h = match checked_address(req.address.as_deref())? {
        Some(a) => st.store.set_home_address(owner, &h.id, &a).await?,
        None => h,
    };
    crate::audit::record(
        &st,
        "home.settings",
        &p.actor(),
        &format!("home:{}", h.id),
        json!({"in_home_enabled": h.in_home_enabled}),
    )
    .await;
    Ok(Json((&h).into()))
}

/// An IANA time zone name, checked against the time zone database.
fn checked_zone(name: Option<&str>) -> ApiResult<Option<String>> {
    match name {
        None => Ok(None),
        Some(n) => threshold_core::hours::zone(n)
            .map(|_| Some(n.to_owned()))
            .map_err(|e| ApiError::invalid("invalid_time_zone", e.to_string())),
    }
}

fn validate_hours(v: &serde_json::Value) -> ApiResult<()> {
    let obj = v
        .as_object()
        .ok_or_else(|| ApiError::invalid("invalid_field", "allowed_hours must be an object"))?;
    if obj.is_empty() {
        return Ok(());
    }
    let minute = |k: &str| {
        obj.get(k)
            .and_then(|x| x.as_i64())
            .filter(|m| (0..=1440).contains(m))
    };
    match (minute("start_minute"), minute("end_minute")) {
        (Some(s), Some(e)) if s < e => Ok(()),
        _ => Err(ApiError::invalid(
            "invalid_window",
            "allowed_hours needs start_minute < end_minute, both within 0..1440",
        )),
    }
}

#[derive(Debug, Deserialize)]
pub struct Page {
    pub limit: Option<i64>,
    pub since_ms: Option<i64>,
}

#[utoipa::path(get, operation_id = "homes_timeline", path = "/homes/{id}/timeline", tag = "homes", params(("id" = String, Path)), responses((status = 200, body = [TimelineJson])))]
pub async fn timeline(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<Page>,
) -> ApiResult<Json<Vec<TimelineJson>>> {
    let owner = p.require(Role::Owner)?;
    let rows = st
        .store
        .timeline(
            owner,
            extract::id(&id)?,
            q.since_ms.unwrap_or(0),
            q.limit.unwrap_or(200).clamp(1, 1000),
        )
        .await?;
    Ok(Json(
        rows.iter()
            .map(|t| TimelineJson {
                id: t.id.clone(),
                device_id: t.device_id.clone(),
                delivery_id: t.delivery_id.clone(),
                time_ms: t.time_ms,
                kind: t.kind.clone(),
                detail: serde_json::from_str(&t.detail).unwrap_or(json!({})),
            })
            .collect(),
    ))
}

#[utoipa::path(get, operation_id = "homes_alerts", path = "/alerts", tag = "alerts", responses((status = 200, body = [AlertJson])))]
pub async fn alerts(
    State(st): State<AppState>,
    p: Principal,
    ApiQuery(q): ApiQuery<Page>,
) -> ApiResult<Json<Vec<serde_json::Value>>> {
    let owner = p.require(Role::Owner)?;
    Ok(Json(
        st.store
            .alerts(owner, q.limit.unwrap_or(100).clamp(1, 1000))
            .await?
            .iter()
            .map(alert_json)
            .collect(),
    ))
}

#[utoipa::path(post, operation_id = "homes_ack_alert", path = "/alerts/{id}/ack", tag = "alerts", params(("id" = String, Path)), responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn ack_alert(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let owner = p.require(Role::Owner)?;
    let id = extract::id(&id)?;
    st.store
        .ack_alert(owner, id, st.clock.now_ms())
        .await
        .map_err(|_| ApiError::NotFound("alert"))?;
    if let Ok(row) = st.store.alert(owner, id).await {
        crate::alerts::webhooks::publish(
            &st,
            owner,
            "alert.acknowledged",
            &crate::alerts::alert_json(&row),
        )
        .await;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A postal address as given: trimmed, one to five lines of printable text, at most
/// 300 characters (`None`: not given).
fn checked_address(a: Option<&str>) -> ApiResult<Option<String>> {
    let Some(a) = a.map(str::trim) else {
        return Ok(None);
    };
    let printable = a.chars().all(|c| c == '\n' || !c.is_control());
    if a.chars().count() > 300 || a.lines().count() > 5 || !printable {
        return Err(ApiError::invalid(
            "invalid_field",
            "address must be at most 300 characters on at most 5 lines",
        ));
    }
    Ok(Some(a.to_owned()))
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// How many hours back (1 to 168; default 24).
    pub hours: Option<i64>,
}

fn liveness_named(s: &str) -> Option<threshold_core::liveness::Liveness> {
    use threshold_core::liveness::Liveness::*;
    match s {
        "live" => Some(Live),
        "stale" => Some(Stale),
        "offline" => Some(Offline),
        _ => None,
    }
}

/// The last hours of a home at a glance: for each camera, lock and sensor, bands of one
/// state each (`live`, `stale`, `offline`, or `unknown` before it was enrolled), from
/// the liveness changes the hub recorded; and marks for entries and incidents.
#[utoipa::path(get, operation_id = "homes_history", path = "/homes/{id}/history", tag = "homes",
    params(("id" = String, Path), HistoryQuery),
    responses((status = 200, body = Object), (status = 404, body = crate::http::dto::ErrorBody)))]
pub async fn history(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    use threshold_core::history::{bands, Change};
    let owner = p.require(Role::Owner)?;
    let home = st
        .store
        .home(owner, extract::id(&id)?)
        .await
        .map_err(|_| ApiError::NotFound("home"))?;
    let hours = q.hours.unwrap_or(24);
    if !(1..=168).contains(&hours) {
        return Err(ApiError::invalid(
            "invalid_field",
            "hours must be between 1 and 168",
        ));
    }
    let now = st.clock.now_ms();
    let from = now - hours * 3_600_000;
    let rows = st.store.timeline(owner, &home.id, from, 20_000).await?;
    let mut devices = Vec::new();
    for d in st.store.devices_of_home(owner, &home.id).await? {
        if d.revoked_ms.is_some() || d.kind == "wifi_sensor" {
            continue;
        }
        let changes: Vec<Change> = rows
            .iter()
            .filter(|t| t.kind == "liveness" && t.device_id.as_deref() == Some(d.id.as_str()))
            .filter_map(|t| {
                let detail: serde_json::Value = serde_json::from_str(&t.detail).ok()?;
                Some(Change {
                    at_ms: t.time_ms,
                    from: liveness_named(detail["from"].as_str()?)?,
                    to: liveness_named(detail["to"].as_str()?)?,
                })
            })
            .collect();
        let current = match d.id.parse::<threshold_proto::DeviceId>() {
            Ok(did) => crate::access::doors::device_liveness(&st, &did, now),
            Err(_) => threshold_core::liveness::Liveness::Offline,
        };
        let b = bands(&changes, from, now, d.enrolled_ms, current);
        devices.push(json!({
            "device_id": d.id, "name": d.name, "kind": d.kind,
            "bands": b.iter().map(|b| json!({"from_ms": b.from_ms, "to_ms": b.to_ms, "state": b.state.as_str()})).collect::<Vec<_>>(),
        }));
    }
    let marks: Vec<serde_json::Value> = rows
        .iter()
        .filter_map(|t| {
            let detail: serde_json::Value = serde_json::from_str(&t.detail).unwrap_or(json!({}));
            let allowed = detail["allowed"] == json!(true);
            let kind = if t.kind.starts_with("incident.") || t.kind == "delivery.camera_lost" {
                "incident"
            } else if allowed && matches!(t.kind.as_str(), "decision" | "owner.unlock" | "guest.decision") {
                "entry"
            } else {
                return None;
            };
            Some(json!({"time_ms": t.time_ms, "kind": kind, "delivery_id": t.delivery_id, "device_id": t.device_id}))
        })
        .collect();
    Ok(Json(
        json!({"from_ms": from, "to_ms": now, "devices": devices, "marks": marks}),
    ))
}
