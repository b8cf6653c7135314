//! The owner's lock of one door: truthful state, remote unlock under the entry rule
//! (with the explicit "unlock without camera" override, recorded as such) and remote
//! lock (the `lock` downlink). An owner unlock opens an access session for that door
//! until its lock reports locked again (at most 10 minutes), so the opening that
//! follows is the owner's, not an "unauthorised entry".
//!
//! `/homes/{id}/lock...` act on the home's door when it has exactly one.

use crate::access::doors::{self, Door};
use crate::access::unlock::send_lock;
use crate::auth::Principal;
use crate::http::dto::ErrorBody;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{self, OptionalJson};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use threshold_store::Role;

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnlockRequest {
    /// The owner's explicit override: unlock although no camera of the door is
    /// watching. Recorded as such on the timeline, in the audit chain and in the
    /// lock's own signed log.
    #[serde(default)]
    pub without_camera: bool,
}

/// The owner's door, looked up in the directory after checking the owner's scope.
pub async fn owned_door(st: &AppState, owner: &str, door_id: &str) -> ApiResult<Door> {
    let row = st
        .store
        .door(owner, extract::id(door_id)?)
        .await
        .map_err(|_| ApiError::NotFound("door"))?;
    st.access
        .doors
        .get(&row.id)
        .ok_or(ApiError::NotFound("door"))
}

/// The home's one door (for the home-level routes).
async fn only_door(st: &AppState, owner: &str, home_id: &str) -> ApiResult<Door> {
    let h = st
        .store
        .home(owner, extract::id(home_id)?)
        .await
        .map_err(|_| ApiError::NotFound("home"))?;
    let mut doors = st.access.doors.of_home(&h.id);
    if doors.len() != 1 {
        return Err(ApiError::invalid(
            "door_required",
            "this home has several doors (or none): use /api/v1/doors/{door_id}/...",
        ));
    }
    Ok(doors.remove(0))
}

async fn view(st: &AppState, door: &Door) -> Json<serde_json::Value> {
    Json(doors::lock_view(st, door))
}

async fn unlock_door(
    st: &AppState,
    owner: &str,
    door: &Door,
    req: UnlockRequest,
) -> ApiResult<Json<serde_json::Value>> {
    let out = crate::access::entry::owner(st, owner, door, req.without_camera).await?;
    if !out.decision.allowed {
        let codes: Vec<&str> = out.decision.reasons.iter().map(|r| r.code()).collect();
        return Err(ApiError::ConflictCode(
            "entry_refused",
            format!(
                "not unlocked ({}); nothing was sent{}",
                codes.join(", "),
                if codes
                    .iter()
                    .any(|c| c.starts_with("camera_") || *c == "no_camera_bound")
                {
                    ". To unlock anyway, confirm \"unlock without camera\" (without_camera: true)"
                } else {
                    ""
                }
            ),
        ));
    }
    Ok(Json(json!({
        "allowed": true,
        "door_id": door.id,
        "camera_override": out.decision.camera_waived.is_some(),
        "token_expires_at_ms": out.token_expires_at_ms,
    })))
}

async fn lock_door(st: &AppState, actor: &str, door: &Door) -> ApiResult<Json<serde_json::Value>> {
    let Some(lock) = door.lock else {
        return Err(ApiError::invalid("no_lock", "this door has no lock"));
    };
    send_lock(st, lock, actor, "owner").await;
    let _ = st
        .store
        .add_timeline(
            &door.home_id,
            None,
            None,
            st.clock.now_ms(),
            "owner.lock",
            &json!({"door_id": door.id}).to_string(),
        )
        .await;
    // Sent is not done: the state says "locked" only once a fresh report says so.
    Ok(Json(
        json!({"sent": 1, "door_id": door.id, "state": doors::lock_view(st, door)}),
    ))
}

#[utoipa::path(get, operation_id = "lock_door_get", path = "/doors/{id}/lock", tag = "lock", params(("id" = String, Path)), responses((status = 200), (status = 404, body = ErrorBody)))]
pub async fn door_get(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let owner = p.require(Role::Owner)?;
    let door = owned_door(&st, owner, &id).await?;
    Ok(view(&st, &door).await)
}

#[utoipa::path(post, operation_id = "lock_door_unlock", path = "/doors/{id}/unlock", tag = "lock", params(("id" = String, Path)), request_body = UnlockRequest,
    responses((status = 200), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn door_unlock(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<UnlockRequest>,
) -> ApiResult<Json<serde_json::Value>> {
    let owner = p.require(Role::Owner)?.to_owned();
    let door = owned_door(&st, &owner, &id).await?;
    unlock_door(&st, &owner, &door, body).await
}

#[utoipa::path(post, operation_id = "lock_door_lock", path = "/doors/{id}/lock", tag = "lock", params(("id" = String, Path)), responses((status = 200), (status = 404, body = ErrorBody)))]
pub async fn door_lock(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let owner = p.require(Role::Owner)?.to_owned();
    let door = owned_door(&st, &owner, &id).await?;
    lock_door(&st, &p.actor(), &door).await
}

#[utoipa::path(get, operation_id = "lock_get", path = "/homes/{id}/lock", tag = "lock", params(("id" = String, Path)), responses((status = 200), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let owner = p.require(Role::Owner)?;
    let door = only_door(&st, owner, &id).await?;
    Ok(view(&st, &door).await)
}

#[utoipa::path(post, operation_id = "lock_unlock", path = "/homes/{id}/lock/unlock", tag = "lock", params(("id" = String, Path)), request_body = UnlockRequest,
    responses((status = 200), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn unlock(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<UnlockRequest>,
) -> ApiResult<Json<serde_json::Value>> {
    let owner = p.require(Role::Owner)?.to_owned();
    let door = only_door(&st, &owner, &id).await?;
    unlock_door(&st, &owner, &door, body).await
}

#[utoipa::path(post, operation_id = "lock_lock", path = "/homes/{id}/lock/lock", tag = "lock", params(("id" = String, Path)), responses((status = 200), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn lock(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let owner = p.require(Role::Owner)?.to_owned();
    let door = only_door(&st, &owner, &id).await?;
    lock_door(&st, &p.actor(), &door).await
}
