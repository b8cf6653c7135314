//! Web Push subscriptions over HTTP (owners): the hub's public key and the browser's
//! subscriptions. Sending is `alerts::push`.

use crate::alerts::push::{Push, SubscribeError};
use crate::auth::Principal;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::ApiJson;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use threshold_store::Role;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionKeys {
    pub p256dh: String,
    pub auth: String,
}

/// The browser's `PushSubscription.toJSON()`.
#[derive(Debug, Deserialize)]
pub struct SubscribeRequest {
    pub endpoint: String,
    pub keys: SubscriptionKeys,
    #[serde(default, rename = "expirationTime")]
    pub _expiration_time: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnsubscribeRequest {
    pub endpoint: String,
}

async fn key(
    p: Principal,
    Extension(push): Extension<Arc<Push>>,
) -> ApiResult<Json<serde_json::Value>> {
    p.require(Role::Owner)?;
    Ok(Json(json!({"public_key": push.public_key()})))
}

async fn list(
    p: Principal,
    Extension(push): Extension<Arc<Push>>,
) -> ApiResult<Json<serde_json::Value>> {
    let owner = p.require(Role::Owner)?;
    let subs: Vec<_> = push
        .subscriptions(owner)
        .await
        .into_iter()
        .map(|s| json!({"endpoint": s.endpoint, "created_ms": s.created_ms}))
        .collect();
    Ok(Json(json!(subs)))
}

async fn subscribe(
    State(st): State<AppState>,
    p: Principal,
    Extension(push): Extension<Arc<Push>>,
    ApiJson(req): ApiJson<SubscribeRequest>,
) -> ApiResult<StatusCode> {
    let owner = p.require(Role::Owner)?;
    push.subscribe(
        owner,
        req.endpoint,
        req.keys.p256dh,
        req.keys.auth,
        st.clock.now_ms(),
    )
    .await
    .map_err(|e| match e {
        SubscribeError::BadEndpoint => ApiError::invalid("invalid_endpoint", e.to_string()),
        SubscribeError::BadKey(k) => ApiError::invalid("invalid_key", k.to_string()),
        SubscribeError::TooMany => ApiError::Conflict(e.to_string()),
        SubscribeError::Taken => ApiError::ConflictCode("endpoint_in_use", e.to_string()),
        SubscribeError::Store(m) => ApiError::Internal(m),
    })?;
    crate::audit::record(&st, "push.subscribed", &p.actor(), "push", json!({})).await;
    Ok(StatusCode::CREATED)
}

async fn unsubscribe(
    p: Principal,
    Extension(push): Extension<Arc<Push>>,
    ApiJson(req): ApiJson<UnsubscribeRequest>,
) -> ApiResult<StatusCode> {
    let owner = p.require(Role::Owner)?;
    if push.remove(Some(owner), &req.endpoint).await {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("subscription"))
    }
}

/// Push routes (relative to `/api/v1`); absent without Web Push.
pub fn router(push: Option<Arc<Push>>) -> Router<AppState> {
    let Some(push) = push else {
        return Router::new();
    };
    Router::new()
        .route("/push/key", get(key))
        .route(
            "/push/subscriptions",
            get(list).post(subscribe).delete(unsubscribe),
        )
        .layer(Extension(push))
}
