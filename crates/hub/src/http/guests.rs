//! Guest access: owners create, list and revoke grants; guests unlock with their
//! grant's secret. See `crate::guests` for the rules.

use crate::access::guests::WeeklyWindow;
use crate::auth::Principal;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{self, ApiJson};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use threshold_store::{GuestGrantRow, NewGuestGrant, Role};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGrant {
    pub name: String,
    pub valid_from_ms: i64,
    pub valid_until_ms: i64,
    /// `[{"day": 1..7 (Monday = 1), "start_minute", "end_minute"}]`, local time of the
    /// home.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub weekly: Vec<WeeklyWindow>,
    #[serde(default)]
    pub utc_offset_minutes: i64,
    /// Does "no eyes, no entry" apply to this guest? Default true. Turning it off is
    /// the owner's standing waiver, recorded with each of the guest's unlocks.
    pub camera_required: Option<bool>,
    /// The door the guest may open; default: the home's door when it has one.
    pub door_id: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GuestUnlock {
    pub secret: String,
}

fn grant_json(g: &GuestGrantRow) -> serde_json::Value {
    json!({"id": g.id, "home_id": g.home_id, "name": g.name, "valid_from_ms": g.valid_from_ms,
        "valid_until_ms": g.valid_until_ms, "weekly": serde_json::from_str::<serde_json::Value>(&g.weekly).unwrap_or(json!([])),
        "utc_offset_minutes": g.utc_offset_minutes, "camera_required": g.camera_required, "door_id": g.door_id,
        "created_ms": g.created_ms, "revoked_ms": g.revoked_ms})
}

#[utoipa::path(post, operation_id = "guests_create", path = "/homes/{id}/guests", request_body = CreateGrant, tag = "guests", params(("id" = String, Path)), responses((status = 201), (status = 400), (status = 404)))]
pub async fn create(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<CreateGrant>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let owner = p.require(Role::Owner)?.to_owned();
    let h = st
        .store
        .home(&owner, extract::id(&id)?)
        .await
        .map_err(|_| ApiError::NotFound("home"))?;
    let name = extract::text("name", &req.name, 80)?;
    if req.valid_until_ms <= req.valid_from_ms {
        return Err(ApiError::invalid(
            "invalid_window",
            "valid_until_ms must be after valid_from_ms",
        ));
    }
    if req.weekly.len() > 28 || req.weekly.iter().any(|w| !w.is_valid()) {
        return Err(ApiError::invalid(
            "invalid_window",
            "weekly windows need day 1..7 and start_minute < end_minute within 0..1440 (at most 28)",
        ));
    }
    if !(-14 * 60..=14 * 60).contains(&req.utc_offset_minutes) {
        return Err(ApiError::invalid(
            "invalid_field",
            "utc_offset_minutes must be within -840..840",
        ));
    }
    let door = match &req.door_id {
        Some(d) => st
            .access
            .doors
            .get(extract::id(d)?)
            .filter(|x| x.home_id == h.id)
            .ok_or_else(|| ApiError::invalid("invalid_door", "no such door at this home"))?,
        None => {
            let mut doors = st.access.doors.of_home(&h.id);
            if doors.len() != 1 {
                return Err(ApiError::invalid(
                    "door_required",
                    "this home has several doors (or none); name one with door_id",
                ));
            }
            doors.remove(0)
        }
    };
    let secret = crate::auth::new_session_token()?;
    let weekly = serde_json::to_string(&req.weekly).unwrap_or_else(|_| "[]".into());
    let g = st
        .store
        .create_guest_grant(
            NewGuestGrant {
                home_id: &h.id,
                owner_id: &owner,
                name: &name,
                secret_hash: &crate::auth::sha256_hex(&secret),
                valid_from_ms: req.valid_from_ms,
                valid_until_ms: req.valid_until_ms,
                weekly: &weekly,
                utc_offset_minutes: req.utc_offset_minutes,
                camera_required: req.camera_required.unwrap_or(true),
                door_id: &door.id,
            },
            st.clock.now_ms(),
        )
        .await?;
    crate::audit::record(
        &st,
        "guest.granted",
        &p.actor(),
        &format!("home:{}", h.id),
        grant_json(&g),
    )
    .await;
    let mut v = grant_json(&g);
    v["secret"] = json!(secret);
    Ok((StatusCode::CREATED, Json(v)))
}

#[utoipa::path(get, operation_id = "guests_list", path = "/homes/{id}/guests", tag = "guests", params(("id" = String, Path)), responses((status = 200), (status = 404)))]
pub async fn list(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<serde_json::Value>>> {
    let owner = p.require(Role::Owner)?;
    let h = st
        .store
        .home(owner, extract::id(&id)?)
        .await
        .map_err(|_| ApiError::NotFound("home"))?;
    let rows = st.store.guest_grants(owner, &h.id).await?;
    Ok(Json(rows.iter().map(grant_json).collect()))
}

#[utoipa::path(delete, operation_id = "guests_revoke", path = "/homes/{id}/guests/{grant_id}", tag = "guests", params(("id" = String, Path), ("grant_id" = String, Path)), responses((status = 200), (status = 404)))]
pub async fn revoke(
    State(st): State<AppState>,
    p: Principal,
    Path((id, grant_id)): Path<(String, String)>,
) -> ApiResult<Json<serde_json::Value>> {
    let owner = p.require(Role::Owner)?.to_owned();
    let g = st
        .store
        .guest_grant(&owner, extract::id(&grant_id)?)
        .await
        .map_err(|_| ApiError::NotFound("guest grant"))?;
    if g.home_id != extract::id(&id)? {
        return Err(ApiError::NotFound("guest grant"));
    }
    st.store
        .revoke_guest_grant(&owner, &g.id, st.clock.now_ms())
        .await
        .map_err(|_| ApiError::NotFound("guest grant"))?;
    crate::audit::record_in(
        &st,
        &g.home_id,
        "guest.revoked",
        &p.actor(),
        &format!("guest:{}", g.id),
        json!({}),
    )
    .await;
    Ok(Json(json!({"revoked": true})))
}

/// The grant a guest's secret opens; an empty, overlong or unknown secret is
/// `NotFound`, all alike.
async fn grant_by_secret(st: &AppState, secret: &str) -> ApiResult<GuestGrantRow> {
    if secret.is_empty() || secret.len() > 128 {
        return Err(ApiError::NotFound("guest grant"));
    }
    st.store
        .guest_grant_by_secret(&crate::auth::sha256_hex(secret))
        .await
        .map_err(|_| ApiError::NotFound("guest grant"))
}

/// A guest asks to unlock. Answer: the decision with every reason for a refusal.
#[utoipa::path(post, operation_id = "guests_unlock", path = "/guest/unlock", request_body = GuestUnlock, tag = "guests", security(()), responses((status = 200), (status = 404), (status = 429)))]
pub async fn unlock(
    State(st): State<AppState>,
    ApiJson(req): ApiJson<GuestUnlock>,
) -> ApiResult<Json<serde_json::Value>> {
    let g = grant_by_secret(&st, &req.secret).await?;
    let now = st.clock.now_ms();
    // Every attempt counts, allowed or not: at most AttemptLimiter::MAX_ATTEMPTS per
    // grant in AttemptLimiter::WINDOW_MS (across a fleet's nodes).
    if !st.guest_limiter.attempt(&g.id, now).await {
        return Err(ApiError::TooManyAttempts);
    }
    let out = crate::access::entry::guest(&st, &g).await?;
    let reasons: Vec<&str> = out.decision.reasons.iter().map(|r| r.code()).collect();
    let (allowed, expires) = (out.decision.allowed, out.token_expires_at_ms);
    Ok(Json(
        json!({"allowed": allowed, "reasons": reasons, "token_expires_at_ms": expires}),
    ))
}

/// What a guest's page shows: whose door, when the link works, whether it works now
/// (`active`, or why not: `not_yet`, `expired`, `revoked`, `outside_hours`) and whether
/// the door's camera is watching (`live`, or not; `waived` when the owner waived it).
/// Counts no attempt: only `/guest/unlock` does.
#[utoipa::path(post, operation_id = "guests_status", path = "/guest/status", request_body = GuestUnlock, tag = "guests", security(()),
    responses((status = 200, body = Object), (status = 404, body = crate::http::dto::ErrorBody)))]
pub async fn status(
    State(st): State<AppState>,
    ApiJson(req): ApiJson<GuestUnlock>,
) -> ApiResult<Json<serde_json::Value>> {
    let g = grant_by_secret(&st, &req.secret).await?;
    let now = st.clock.now_ms();
    let home = st.store.home_any(&g.home_id).await.ok();
    let door = g.door_id.as_deref().and_then(|id| st.access.doors.get(id));
    let state = if g.revoked_ms.is_some() {
        "revoked"
    } else if now < g.valid_from_ms {
        "not_yet"
    } else if now > g.valid_until_ms {
        "expired"
    } else if !crate::access::guests::grant_in_weekly(&g, home.as_ref(), now) {
        "outside_hours"
    } else {
        "active"
    };
    let camera = if !g.camera_required {
        "waived".to_owned()
    } else {
        match &door {
            Some(d) => match crate::access::doors::watched(&st, d, now) {
                Ok(()) => "live".to_owned(),
                Err(b) => b.code().to_owned(),
            },
            None => "offline".to_owned(),
        }
    };
    Ok(Json(json!({
        "name": g.name,
        "home_name": home.as_ref().map(|h| h.name.clone()),
        "address": home.as_ref().map(|h| h.address.clone()),
        "door_name": door.as_ref().map(|d| d.name.clone()),
        "valid_from_ms": g.valid_from_ms,
        "valid_until_ms": g.valid_until_ms,
        "weekly": serde_json::from_str::<serde_json::Value>(&g.weekly).unwrap_or(json!([])),
        "state": state,
        "camera": camera,
        "time_ms": now,
    })))
}
