//! "I expect a delivery from X today": an owner notes an expected delivery for a home;
//! when a merchant's delivery for that home arrives within its window, the expectation
//! points at it, and the owner follows the live delivery from there.

use crate::auth::Principal;
use crate::http::dto::ErrorBody;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{self, ApiJson};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use threshold_store::{ExpectationRow, Role};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateExpectation {
    /// What the owner expects, in their words ("shoes from Acme").
    pub note: String,
    /// The merchant (a dispatcher account) expected; absent: any.
    pub dispatcher_id: Option<String>,
    pub window_start_ms: i64,
    pub window_end_ms: i64,
}

async fn json_of(st: &AppState, e: &ExpectationRow) -> serde_json::Value {
    let delivery = match &e.delivery_id {
        Some(id) => st.store.delivery_any(id).await.ok(),
        None => None,
    };
    json!({"id": e.id, "home_id": e.home_id, "note": e.note, "dispatcher_id": e.dispatcher_id,
        "window_start_ms": e.window_start_ms, "window_end_ms": e.window_end_ms,
        "created_ms": e.created_ms, "delivery_id": e.delivery_id, "matched_ms": e.matched_ms,
        "delivery_state": delivery.map(|d| d.state)})
}

#[utoipa::path(post, operation_id = "expectations_create", path = "/homes/{id}/expectations", tag = "deliveries",
    params(("id" = String, Path)), request_body = CreateExpectation,
    responses((status = 201, body = Object), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn create(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<CreateExpectation>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let owner = p.require(Role::Owner)?;
    let note = extract::text("note", &req.note, 200)?;
    if req.window_end_ms <= req.window_start_ms
        || req.window_end_ms - req.window_start_ms > 7 * 24 * 3_600_000
    {
        return Err(ApiError::invalid(
            "invalid_window",
            "window_end_ms must be after window_start_ms, within 7 days",
        ));
    }
    let dispatcher = match req.dispatcher_id.as_deref() {
        Some(d) => Some(extract::id(d)?),
        None => None,
    };
    let e = st
        .store
        .create_expectation(
            owner,
            extract::id(&id)?,
            dispatcher,
            &note,
            (req.window_start_ms, req.window_end_ms),
            st.clock.now_ms(),
        )
        .await
        .map_err(|_| ApiError::NotFound("home"))?;
    Ok((StatusCode::CREATED, Json(json_of(&st, &e).await)))
}

#[utoipa::path(get, operation_id = "expectations_list", path = "/homes/{id}/expectations", tag = "deliveries",
    params(("id" = String, Path)), responses((status = 200, body = [Object]), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<serde_json::Value>>> {
    let owner = p.require(Role::Owner)?;
    let id = extract::id(&id)?;
    st.store
        .home(owner, id)
        .await
        .map_err(|_| ApiError::NotFound("home"))?;
    // Those whose window has not ended more than a day ago.
    let since = st.clock.now_ms() - 24 * 3_600_000;
    let mut out = Vec::new();
    for e in st.store.expectations(owner, id, since).await? {
        out.push(json_of(&st, &e).await);
    }
    Ok(Json(out))
}

#[utoipa::path(delete, operation_id = "expectations_delete", path = "/homes/{id}/expectations/{expectation_id}", tag = "deliveries",
    params(("id" = String, Path), ("expectation_id" = String, Path)), responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(st): State<AppState>,
    p: Principal,
    Path((_, exp)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let owner = p.require(Role::Owner)?;
    st.store
        .delete_expectation(owner, extract::id(&exp)?)
        .await
        .map_err(|_| ApiError::NotFound("expectation"))?;
    Ok(StatusCode::NO_CONTENT)
}

/// A delivery was created for `home`: the expectation it fulfils (if any) points at
/// it, and the owner's apps hear so at once.
pub async fn on_delivery_created(
    st: &AppState,
    home: &threshold_store::HomeRow,
    d: &threshold_store::DeliveryRow,
) {
    let matched = st
        .store
        .match_expectation(
            &home.id,
            &d.dispatcher_id,
            (d.window_start_ms, d.window_end_ms),
            &d.id,
            st.clock.now_ms(),
        )
        .await;
    match matched {
        Ok(Some(expectation)) => st.bus.publish(crate::events::HubEvent {
            owner_id: home.owner_id.clone(),
            courier_id: None,
            home_id: home.id.clone(),
            event_type: "expectation.matched".into(),
            time_ms: st.clock.now_ms(),
            data: json!({"expectation_id": expectation, "delivery_id": d.id}),
        }),
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "could not match the delivery to an expectation"),
    }
}
