//! The owner's lock: truthful state, remote unlock (a signed single-use token with
//! grant `owner:<user id>`, exactly like a courier's) and remote lock (the `lock`
//! downlink). Both are audited and put on the timeline; an owner unlock opens an
//! access session until the lock reports locked again (at most 10 minutes), so the
//! door opening that follows is not an "unauthorised entry".

use crate::api::extract;
use crate::auth::Principal;
use crate::deliveries::{home_liveness, issue_unlock, lock_view, send_lock};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::Json;
use serde_json::json;
use threshold_core::liveness::Liveness;
use threshold_proto::body::DeviceKind;
use threshold_store::Role;

/// An owner/guest session lasts until the lock relocks, at most this long.
pub const MANUAL_SESSION_MAX_MS: i64 = 10 * 60 * 1000;

#[utoipa::path(get, path = "/api/v1/homes/{id}/lock", tag = "lock", params(("id" = String, Path)), responses((status = 200), (status = 404)))]
pub async fn get(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let owner = p.require(Role::Owner)?;
    let h = st
        .store
        .home(owner, extract::id(&id)?)
        .await
        .map_err(|_| ApiError::NotFound("home"))?;
    Ok(Json(lock_view(&st, &h.id).await))
}

#[utoipa::path(post, path = "/api/v1/homes/{id}/lock/unlock", tag = "lock", params(("id" = String, Path)), responses((status = 200), (status = 404), (status = 409)))]
pub async fn unlock(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let owner = p.require(Role::Owner)?.to_owned();
    let h = st
        .store
        .home(&owner, extract::id(&id)?)
        .await
        .map_err(|_| ApiError::NotFound("home"))?;
    let now = st.clock.now_ms();
    let (lock, locks) = home_liveness(&st, &h.id, DeviceKind::Lock).await;
    let allowed = lock == Liveness::Live;
    let detail = json!({"allowed": allowed, "reasons": if allowed { vec![] } else { vec!["lock_offline"] }, "lock": lock.as_str()});
    crate::audit::record(
        &st,
        "decision",
        &p.actor(),
        &format!("home:{}", h.id),
        detail.clone(),
    )
    .await;
    let _ = st
        .store
        .add_timeline(&h.id, None, None, now, "owner.unlock", &detail.to_string())
        .await;
    if !allowed {
        return Err(ApiError::Conflict(
            "the lock is not reachable (lock_offline); nothing was sent".into(),
        ));
    }
    let grant = format!("owner:{owner}");
    st.store
        .open_session(&h.id, &grant, None, now, Some(now + MANUAL_SESSION_MAX_MS))
        .await?;
    let expires = issue_unlock(&st, &locks, &grant, &p.actor(), now).await?;
    Ok(Json(
        json!({"allowed": true, "token_expires_at_ms": expires, "locks": locks.len()}),
    ))
}

#[utoipa::path(post, path = "/api/v1/homes/{id}/lock/lock", tag = "lock", params(("id" = String, Path)), responses((status = 200), (status = 404)))]
pub async fn lock(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let owner = p.require(Role::Owner)?.to_owned();
    let h = st
        .store
        .home(&owner, extract::id(&id)?)
        .await
        .map_err(|_| ApiError::NotFound("home"))?;
    let (lock, locks) = home_liveness(&st, &h.id, DeviceKind::Lock).await;
    send_lock(&st, &locks, &p.actor(), "owner").await;
    let _ = st
        .store
        .add_timeline(
            &h.id,
            None,
            None,
            st.clock.now_ms(),
            "owner.lock",
            &json!({"lock": lock.as_str()}).to_string(),
        )
        .await;
    // Sent is not done: the state says "locked" only once a fresh report says so.
    Ok(Json(
        json!({"sent": locks.len(), "lock": lock.as_str(), "state": lock_view(&st, &h.id).await}),
    ))
}
