//! Web Push subscriptions over HTTP (owners): the hub's public key and the browser's
//! subscriptions. Sending is `alerts::push`.

use crate::alerts::push::{Push, SubscribeError};
use crate::auth::Principal;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::ApiJson;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use threshold_store::Role;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionKeys {
    pub p256dh: String,
    pub auth: String,
}

/// The browser's `PushSubscription.toJSON()`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct SubscribeRequest {
    pub endpoint: String,
    pub keys: SubscriptionKeys,
    #[serde(default, rename = "expirationTime")]
    #[schema(value_type = Option<Object>)]
    pub _expiration_time: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnsubscribeRequest {
    pub endpoint: String,
}

#[utoipa::path(get, operation_id = "push_key", path = "/push/key", tag = "push",
    responses((status = 200, description = "the hub's VAPID public key", body = Object), (status = 403, body = crate::http::dto::ErrorBody)))]
async fn key(
    p: Principal,
    Extension(push): Extension<Arc<Push>>,
) -> ApiResult<Json<serde_json::Value>> {
    p.require(Role::Owner)?;
    Ok(Json(json!({"public_key": push.public_key()})))
}

#[utoipa::path(get, operation_id = "push_list", path = "/push/subscriptions", tag = "push",
    responses((status = 200, description = "the owner's subscriptions (endpoint, created_ms)", body = Object), (status = 403, body = crate::http::dto::ErrorBody)))]
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

#[utoipa::path(post, operation_id = "push_subscribe", path = "/push/subscriptions", tag = "push", request_body = SubscribeRequest,
    responses((status = 201, description = "kept"), (status = 400, body = crate::http::dto::ErrorBody), (status = 409, body = crate::http::dto::ErrorBody)))]
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

#[utoipa::path(delete, operation_id = "push_unsubscribe", path = "/push/subscriptions", tag = "push", request_body = UnsubscribeRequest,
    responses((status = 204, description = "forgotten"), (status = 404, body = crate::http::dto::ErrorBody)))]
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

/// Push routes (relative to `/api/v1`), documented; absent without Web Push.
pub fn router(push: Option<Arc<Push>>) -> OpenApiRouter<AppState> {
    let Some(push) = push else {
        return OpenApiRouter::new();
    };
    OpenApiRouter::new()
        .routes(routes!(key))
        .routes(routes!(list, subscribe, unsubscribe))
        .layer(Extension(push))
}
