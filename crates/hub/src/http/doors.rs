//! Doors and the cameras that watch them, set by the owner; and the merchants the
//! owner trusts to deliver inside.
//!
//! Only a camera bound to a door can satisfy the entry rule for that door, and only
//! that door's lock receives a capability for it. A change of binding is audited, put
//! on the timeline, and sent to the door's lock at once (`cameras` downlink).

use crate::access::doors::lock_view;
use crate::auth::Principal;
use crate::fleet::changes::home_changed;
use crate::http::dto::ErrorBody;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{self, ApiJson};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use threshold_proto::body::DeviceKind;
use threshold_store::{DoorChange, DoorRow, Role};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDoor {
    pub name: String,
    /// Whether couriers may be sent through it (default true).
    pub accepts_deliveries: Option<bool>,
}

/// Members left out stay as they are; `null` for `lock_id`/`contact_id` detaches.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateDoor {
    pub name: Option<String>,
    #[serde(default, with = "serde_with_null")]
    #[schema(value_type = Option<String>)]
    pub lock_id: Option<Option<String>>,
    #[serde(default, with = "serde_with_null")]
    #[schema(value_type = Option<String>)]
    pub contact_id: Option<Option<String>>,
    /// The cameras that watch this door (replaces the list).
    pub camera_ids: Option<Vec<String>>,
    pub accepts_deliveries: Option<bool>,
}

/// `Option<Option<T>>` that tells "absent" (outer None) from `null` (Some(None)).
mod serde_with_null {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

fn door_json(st: &AppState, d: &DoorRow) -> serde_json::Value {
    let lock = st.access.doors.get(&d.id).map(|door| lock_view(st, &door));
    json!({"id": d.id, "home_id": d.home_id, "name": d.name, "lock_id": d.lock_id, "contact_id": d.contact_id,
        "camera_ids": d.camera_ids, "accepts_deliveries": d.accepts_deliveries, "created_ms": d.created_ms,
        "lock": lock})
}

async fn owned_home(st: &AppState, owner: &str, id: &str) -> ApiResult<threshold_store::HomeRow> {
    st.store
        .home(owner, extract::id(id)?)
        .await
        .map_err(|_| ApiError::NotFound("home"))
}

#[utoipa::path(get, operation_id = "doors_list", path = "/homes/{id}/doors", tag = "doors", params(("id" = String, Path)), responses((status = 200), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<serde_json::Value>>> {
    let owner = p.require(Role::Owner)?;
    let h = owned_home(&st, owner, &id).await?;
    let rows = st.store.doors_of_home(&h.id).await?;
    Ok(Json(rows.iter().map(|d| door_json(&st, d)).collect()))
}

#[utoipa::path(post, operation_id = "doors_create", path = "/homes/{id}/doors", tag = "doors", params(("id" = String, Path)), request_body = CreateDoor,
    responses((status = 201), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn create(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<CreateDoor>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let owner = p.require(Role::Owner)?;
    let h = owned_home(&st, owner, &id).await?;
    let name = extract::text("name", &req.name, 80)?;
    if st.access.doors.of_home(&h.id).len() >= 64 {
        return Err(ApiError::invalid(
            "too_many_doors",
            "a home may have at most 64 doors",
        ));
    }
    let d = st
        .store
        .create_door(
            &h.id,
            &name,
            req.accepts_deliveries.unwrap_or(true),
            st.clock.now_ms(),
        )
        .await?;
    home_changed(&st, &h.id).await?;
    crate::audit::record(
        &st,
        "door.created",
        &p.actor(),
        &format!("door:{}", d.id),
        json!({"home_id": h.id, "name": name}),
    )
    .await;
    Ok((StatusCode::CREATED, Json(door_json(&st, &d))))
}

/// A device of this home, of one of `kinds`, not revoked.
async fn home_device(
    st: &AppState,
    owner: &str,
    home_id: &str,
    id: &str,
    kinds: &[DeviceKind],
    field: &str,
) -> ApiResult<String> {
    let d = st
        .store
        .device(owner, extract::id(id)?)
        .await
        .map_err(|_| ApiError::invalid("invalid_device", format!("{field}: no such device")))?;
    let kind_ok = DeviceKind::parse(&d.kind).is_some_and(|k| kinds.contains(&k));
    if d.home_id != home_id || d.revoked_ms.is_some() || !kind_ok {
        return Err(ApiError::invalid(
            "invalid_device",
            format!("{field}: not a device of this home of the right kind"),
        ));
    }
    Ok(d.id)
}

#[utoipa::path(patch, operation_id = "doors_update", path = "/homes/{id}/doors/{door_id}", tag = "doors", params(("id" = String, Path), ("door_id" = String, Path)), request_body = UpdateDoor,
    responses((status = 200), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update(
    State(st): State<AppState>,
    p: Principal,
    Path((id, door_id)): Path<(String, String)>,
    ApiJson(req): ApiJson<UpdateDoor>,
) -> ApiResult<Json<serde_json::Value>> {
    let owner = p.require(Role::Owner)?;
    let h = owned_home(&st, owner, &id).await?;
    let before = st
        .store
        .door(owner, extract::id(&door_id)?)
        .await
        .ok()
        .filter(|d| d.home_id == h.id)
        .ok_or(ApiError::NotFound("door"))?;
    let mut change = DoorChange {
        name: req
            .name
            .as_deref()
            .map(|n| extract::text("name", n, 80))
            .transpose()?,
        accepts_deliveries: req.accepts_deliveries,
        ..Default::default()
    };
    if let Some(l) = &req.lock_id {
        change.lock_id = Some(match l {
            Some(l) => Some(
                home_device(
                    &st,
                    owner,
                    &h.id,
                    l,
                    &[DeviceKind::Lock, DeviceKind::GarageOpener],
                    "lock_id",
                )
                .await?,
            ),
            None => None,
        });
    }
    if let Some(c) = &req.contact_id {
        change.contact_id = Some(match c {
            Some(c) => Some(
                home_device(
                    &st,
                    owner,
                    &h.id,
                    c,
                    &[DeviceKind::ContactSensor],
                    "contact_id",
                )
                .await?,
            ),
            None => None,
        });
    }
    if let Some(cams) = &req.camera_ids {
        if cams.len() > threshold_proto::body::MAX_DOOR_CAMERAS {
            return Err(ApiError::invalid(
                "invalid_field",
                "at most 16 cameras per door",
            ));
        }
        let mut ids = Vec::new();
        for c in cams {
            ids.push(home_device(&st, owner, &h.id, c, &[DeviceKind::Camera], "camera_ids").await?);
        }
        ids.sort();
        ids.dedup();
        change.camera_ids = Some(ids);
    }
    st.store
        .update_door(&before.id, &change)
        .await
        .map_err(|e| match e {
            threshold_store::StoreError::Conflict(what) => {
                ApiError::ConflictCode("device_on_another_door", what)
            }
            other => other.into(),
        })?;
    home_changed(&st, &h.id).await?;
    let after = st.store.door(owner, &before.id).await?;
    let detail = json!({"door_id": after.id, "name": after.name, "lock_id": after.lock_id, "contact_id": after.contact_id,
        "camera_ids": after.camera_ids, "accepts_deliveries": after.accepts_deliveries,
        "cameras_before": before.camera_ids, "lock_before": before.lock_id});
    crate::audit::record(
        &st,
        "door.changed",
        &p.actor(),
        &format!("door:{}", after.id),
        detail.clone(),
    )
    .await;
    let _ = st
        .store
        .add_timeline(
            &h.id,
            None,
            None,
            st.clock.now_ms(),
            "door.changed",
            &detail.to_string(),
        )
        .await;
    if let Some(door) = st.access.doors.get(&after.id) {
        // The lock learns its cameras now, not at its next reconnect.
        crate::access::unlock::send_door_cameras(&st, &door).await;
    }
    Ok(Json(door_json(&st, &after)))
}

#[utoipa::path(delete, operation_id = "doors_delete", path = "/homes/{id}/doors/{door_id}", tag = "doors", params(("id" = String, Path), ("door_id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete(
    State(st): State<AppState>,
    p: Principal,
    Path((id, door_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let owner = p.require(Role::Owner)?;
    let h = owned_home(&st, owner, &id).await?;
    let d = st
        .store
        .door(owner, extract::id(&door_id)?)
        .await
        .ok()
        .filter(|d| d.home_id == h.id)
        .ok_or(ApiError::NotFound("door"))?;
    if !st.store.active_deliveries_of_door(&d.id).await?.is_empty() {
        return Err(ApiError::ConflictCode(
            "door_in_use",
            "a delivery through this door is under way".into(),
        ));
    }
    st.store.delete_door(&d.id).await?;
    home_changed(&st, &h.id).await?;
    crate::audit::record_in(
        &st,
        &h.id,
        "door.deleted",
        &p.actor(),
        &format!("door:{}", d.id),
        json!({"name": d.name}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, operation_id = "doors_merchants", path = "/homes/{id}/merchants", tag = "doors", params(("id" = String, Path)), responses((status = 200), (status = 404, body = ErrorBody)))]
pub async fn merchants(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<serde_json::Value>>> {
    let owner = p.require(Role::Owner)?;
    let h = owned_home(&st, owner, &id).await?;
    let rows = st.store.merchants(&h.id).await?;
    Ok(Json(
        rows.iter()
            .map(|m| json!({"dispatcher_id": m.dispatcher_id, "name": m.display_name, "trusted_ms": m.trusted_ms}))
            .collect(),
    ))
}

/// Trust a merchant (dispatcher account) to deliver inside this home without asking
/// each time. Revocable; deliveries from anyone else wait for the owner's approval.
#[utoipa::path(put, operation_id = "doors_trust", path = "/homes/{id}/merchants/{dispatcher_id}", tag = "doors", params(("id" = String, Path), ("dispatcher_id" = String, Path)),
    responses((status = 200), (status = 404, body = ErrorBody)))]
pub async fn trust(
    State(st): State<AppState>,
    p: Principal,
    Path((id, dispatcher_id)): Path<(String, String)>,
) -> ApiResult<Json<serde_json::Value>> {
    let owner = p.require(Role::Owner)?;
    let h = owned_home(&st, owner, &id).await?;
    let u = st
        .store
        .user(extract::id(&dispatcher_id)?)
        .await
        .ok()
        .filter(|u| u.role == Role::Dispatcher)
        .ok_or(ApiError::NotFound("dispatcher"))?;
    st.store
        .trust_merchant(&h.id, &u.id, st.clock.now_ms())
        .await?;
    crate::audit::record(
        &st,
        "merchant.trusted",
        &p.actor(),
        &format!("home:{}", h.id),
        json!({"dispatcher_id": u.id}),
    )
    .await;
    Ok(Json(
        json!({"dispatcher_id": u.id, "name": u.display_name, "trusted": true}),
    ))
}

#[utoipa::path(delete, operation_id = "doors_distrust", path = "/homes/{id}/merchants/{dispatcher_id}", tag = "doors", params(("id" = String, Path), ("dispatcher_id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn distrust(
    State(st): State<AppState>,
    p: Principal,
    Path((id, dispatcher_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let owner = p.require(Role::Owner)?;
    let h = owned_home(&st, owner, &id).await?;
    if !st
        .store
        .distrust_merchant(&h.id, extract::id(&dispatcher_id)?)
        .await?
    {
        return Err(ApiError::NotFound("merchant"));
    }
    crate::audit::record(
        &st,
        "merchant.distrusted",
        &p.actor(),
        &format!("home:{}", h.id),
        json!({"dispatcher_id": dispatcher_id}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
