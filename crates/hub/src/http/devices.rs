//! Device enrolment (pairing codes), listing with live state, and revocation.

use crate::auth::{self, Principal};
use crate::gateway::registry::DeviceEntry;
use crate::http::dto::*;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{self, ApiJson};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;
use threshold_core::liveness::Liveness;
use threshold_proto::body::DeviceKind;
use threshold_proto::{DeviceId, PublicKey};
use threshold_store::{DeviceRow, Role};

/// Pairing codes: 12 characters from an alphabet without look-alikes, shown as
/// XXXX-XXXX-XXXX; only a hash is stored.
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
const PAIRING_TTL_MS: i64 = 15 * 60 * 1000;

fn new_pairing_code() -> ApiResult<String> {
    let mut b = [0u8; 12];
    getrandom::getrandom(&mut b).map_err(|e| ApiError::Internal(e.to_string()))?;
    let chars: String = b
        .iter()
        .map(|x| char::from(CODE_ALPHABET[usize::from(*x) % CODE_ALPHABET.len()]))
        .collect();
    Ok(format!(
        "{}-{}-{}",
        &chars[0..4],
        &chars[4..8],
        &chars[8..12]
    ))
}

fn normalize_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

#[utoipa::path(post, operation_id = "devices_create_pairing_code", path = "/homes/{id}/pairing-codes", request_body = CreatePairingCode, tag = "devices",
    params(("id" = String, Path)), responses((status = 201, body = PairingCodeJson), (status = 404, body = ErrorBody)))]
pub async fn create_pairing_code(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<CreatePairingCode>,
) -> ApiResult<(StatusCode, Json<PairingCodeJson>)> {
    let owner = p.require(Role::Owner)?;
    let home = st
        .store
        .home(owner, extract::id(&id)?)
        .await
        .map_err(|_| ApiError::NotFound("home"))?;
    let kind = DeviceKind::parse(&req.kind).ok_or_else(|| {
        ApiError::invalid(
            "invalid_field",
            "kind must be camera, lock, contact_sensor, wifi_sensor or garage_opener",
        )
    })?;
    let name = extract::text("name", &req.name, 100)?;
    let door_id = match &req.door_id {
        Some(d) => Some(
            st.access
                .doors
                .get(extract::id(d)?)
                .filter(|x| x.home_id == home.id)
                .ok_or_else(|| ApiError::invalid("invalid_door", "no such door at this home"))?
                .id,
        ),
        None => None,
    };
    let code = new_pairing_code()?;
    let now = st.clock.now_ms();
    st.store
        .create_pairing_code(threshold_store::NewPairing {
            code_hash: &auth::sha256_hex(&normalize_code(&code)),
            home_id: &home.id,
            kind: kind.as_str(),
            name: &name,
            door_id: door_id.as_deref(),
            now,
            expires_ms: now + PAIRING_TTL_MS,
        })
        .await?;
    crate::audit::record(
        &st,
        "pairing_code.created",
        &p.actor(),
        &format!("home:{}", home.id),
        json!({"kind": kind.as_str()}),
    )
    .await;
    Ok((
        StatusCode::CREATED,
        Json(PairingCodeJson {
            code,
            expires_at_ms: now + PAIRING_TTL_MS,
        }),
    ))
}

/// The bytes a device signs to prove it holds the key it enrols.
pub fn enrol_proof_message(code: &str, public_key_hex: &str) -> Vec<u8> {
    format!("threshold-enrol-v1:{code}:{public_key_hex}").into_bytes()
}

#[utoipa::path(post, operation_id = "devices_enrol", path = "/enrol", request_body = EnrolRequest, tag = "devices", security(()),
    responses((status = 201, body = EnrolResponse), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn enrol(
    State(st): State<AppState>,
    ApiJson(req): ApiJson<EnrolRequest>,
) -> ApiResult<(StatusCode, Json<EnrolResponse>)> {
    let key: PublicKey = req
        .public_key
        .parse()
        .ok()
        .filter(|k: &PublicKey| {
            !k.0.is_weak() && req.public_key.bytes().all(|b| !b.is_ascii_uppercase())
        })
        .ok_or_else(|| {
            ApiError::invalid(
                "invalid_public_key",
                "public_key must be 64 lowercase hex characters of a valid Ed25519 key",
            )
        })?;
    let kind = DeviceKind::parse(&req.kind)
        .ok_or_else(|| ApiError::invalid("invalid_field", "unknown device kind"))?;
    let mut sig = [0u8; 64];
    hex::decode_to_slice(req.proof.trim(), &mut sig)
        .map_err(|_| ApiError::invalid("bad_proof", "proof must be 128 hex characters"))?;
    let sig = ed25519_dalek::Signature::from_bytes(&sig);
    key.0
        .verify_strict(&enrol_proof_message(req.pairing_code.trim(), &req.public_key), &sig)
        .map_err(|_| ApiError::invalid("bad_proof", "proof does not verify: sign `threshold-enrol-v1:{pairing_code}:{public_key}` with the device key"))?;
    let now = st.clock.now_ms();
    let device_id = key.device_id();
    if st.store.device_any(&device_id.to_hex()).await.is_ok() {
        return Err(ApiError::ConflictCode(
            "already_enrolled",
            "this device key is already enrolled; generate a new key to enrol again".into(),
        ));
    }
    let code_hash = auth::sha256_hex(&normalize_code(&req.pairing_code));
    // A request for the wrong kind must not use the code up.
    match st.store.pairing_code_kind(&code_hash, now).await? {
        Some(k) if k != kind.as_str() => {
            return Err(ApiError::invalid(
                "kind_mismatch",
                format!("this pairing code is for a {k}"),
            ));
        }
        _ => {}
    }
    let mut pw = [0u8; 24];
    getrandom::getrandom(&mut pw).map_err(|e| ApiError::Internal(e.to_string()))?;
    let mqtt_password = hex::encode(pw);
    // The device's broker rights first (an external broker may need them
    // provisioned): if that fails, the pairing code is not used up.
    st.downlink
        .grant(device_id, &mqtt_password)
        .await
        .map_err(|e| {
            tracing::error!(device = %device_id, error = %e, "cannot give the device its broker rights");
            ApiError::Unavailable("broker_unavailable", "the MQTT broker did not accept the device; try again".into())
        })?;
    let enrolled = async {
        let pairing = st
            .store
            .take_pairing_code(&code_hash, now)
            .await
            .map_err(|_| {
                ApiError::NotFoundCode(
                    "invalid_pairing_code",
                    "pairing code unknown, used or expired".into(),
                )
            })?;
        let row = st
            .store
            .enrol_device(
                &device_id.to_hex(),
                &pairing.home_id,
                kind.as_str(),
                &pairing.name,
                &key.to_hex(),
                &auth::sha256_hex(&mqtt_password),
                now,
            )
            .await?;
        Ok::<_, ApiError>((pairing, row))
    }
    .await;
    let (pairing, row) = match enrolled {
        Ok(v) => v,
        Err(e) => {
            let _ = st.downlink.revoke(device_id).await;
            return Err(e);
        }
    };
    if let Some(entry) = DeviceEntry::from_row(&row, &[], &[]) {
        st.registry.insert(entry);
    }
    crate::fleet::changes::announce(&st, crate::fleet::changes::Change::Device(row.id.clone()))
        .await;
    let door = attach_to_door(&st, &pairing, kind, &row.id, now).await?;
    crate::audit::record(
        &st,
        "device.enrolled",
        &format!("owner:{}", pairing.owner_id),
        &format!("device:{device_id}"),
        json!({"kind": kind.as_str(), "home_id": pairing.home_id, "public_key": key.to_hex()}),
    )
    .await;
    let _ = st
        .store
        .add_timeline(
            &pairing.home_id,
            Some(&device_id.to_hex()),
            None,
            now,
            "device.enrolled",
            &json!({"kind": kind.as_str(), "name": pairing.name}).to_string(),
        )
        .await;
    Ok((
        StatusCode::CREATED,
        Json(EnrolResponse {
            device_id: device_id.to_hex(),
            home_id: pairing.home_id,
            hub_public_key: st.hub_key.public().to_hex(),
            mqtt: mqtt_settings(&st, &device_id, mqtt_password),
            heartbeat_ms: st.config.heartbeat_ms,
            door_cameras: match (&door, kind) {
                (Some(d), k) if k.actuates_door() => {
                    crate::access::unlock::door_camera_keys(&st, d)
                }
                _ => Vec::new(),
            },
            door_id: door.map(|d| d.id),
        }),
    ))
}

/// The broker settings a device is given (at enrolment and at a credential renewal).
pub fn mqtt_settings(st: &AppState, device_id: &DeviceId, password: String) -> MqttSettings {
    MqttSettings {
        host: st.device_mqtt_host.clone(),
        port: st.device_mqtt_port,
        tls_port: st.device_mqtt_tls_port,
        username: device_id.to_hex(),
        password,
        topic_prefix: st.config.mqtt_topic_prefix.clone(),
    }
}

/// Fit a newly enrolled device to its door: a lock to the door its pairing code
/// names (or a new door of its own, named after it), a contact sensor to the named
/// door (or the home's only door without one), a camera to watch the named door (a
/// camera paired without a door watches none until the owner binds it: a garden
/// camera must never vouch for the front door by accident).
async fn attach_to_door(
    st: &AppState,
    pairing: &threshold_store::PairingRow,
    kind: DeviceKind,
    device_id: &str,
    now: i64,
) -> ApiResult<Option<crate::access::doors::Door>> {
    let home = &pairing.home_id;
    let named = pairing
        .door_id
        .as_deref()
        .and_then(|d| st.access.doors.get(d));
    let mut change = threshold_store::DoorChange::default();
    let door_id = match kind {
        DeviceKind::Lock | DeviceKind::GarageOpener => {
            let id = match named.filter(|d| d.lock.is_none()) {
                Some(d) => d.id,
                None => {
                    st.store
                        .create_door(home, &pairing.name, true, now)
                        .await?
                        .id
                }
            };
            change.lock_id = Some(Some(device_id.to_owned()));
            Some(id)
        }
        DeviceKind::ContactSensor => {
            let target = named.or_else(|| {
                let free: Vec<_> = st
                    .access
                    .doors
                    .of_home(home)
                    .into_iter()
                    .filter(|d| d.contact.is_none())
                    .collect();
                (free.len() == 1).then(|| free.into_iter().next()).flatten()
            });
            change.contact_id = Some(Some(device_id.to_owned()));
            target.filter(|d| d.contact.is_none()).map(|d| d.id)
        }
        DeviceKind::Camera => {
            // A door has at most 16 cameras (a lock refuses a larger set); a camera
            // beyond that watches no door until the owner binds it. Added in the
            // database, not from this node's view of the door, which a concurrent
            // enrolment may have changed.
            match named {
                Some(d)
                    if st
                        .store
                        .add_door_camera(&d.id, device_id, threshold_proto::body::MAX_DOOR_CAMERAS)
                        .await? =>
                {
                    Some(d.id)
                }
                _ => None,
            }
        }
        DeviceKind::WifiSensor => None,
    };
    let Some(door_id) = door_id else {
        return Ok(None);
    };
    st.store.update_door(&door_id, &change).await?;
    crate::fleet::changes::home_changed(st, home).await?;
    let door = st.access.doors.get(&door_id);
    if let (Some(d), DeviceKind::Camera) = (&door, kind) {
        crate::access::unlock::send_door_cameras(st, d).await;
    }
    Ok(door)
}

/// The hub's live view of a device, for the API.
pub fn live_view(
    st: &AppState,
    d: &DeviceRow,
) -> Option<(String, Option<i64>, Option<i64>, bool, serde_json::Value)> {
    let id: DeviceId = d.id.parse().ok()?;
    let now = st.clock.now_ms();
    let cfg = st.config.liveness();
    st.registry.with(&id, |e| {
        let l = e.liveness.state(now, &cfg);
        let fresh = l == Liveness::Live;
        let state = match (e.last_state.clone().unwrap_or_default(), e.kind) {
            (s, kind) if kind.reports_state() => {
                // Law 1 for state: "locked" only while a fresh signed report says so.
                let shown = |v: Option<String>| if fresh { v.unwrap_or_else(|| "unknown".into()) } else { "unknown".into() };
                let mut v = json!({
                    "bolt": if e.kind == DeviceKind::Lock { Some(shown(s.bolt.map(|b| format!("{b:?}").to_lowercase()))) } else { None },
                    "door": shown(s.door.map(|b| format!("{b:?}").to_lowercase())),
                    "last_reported": {"bolt": s.bolt, "door": s.door},
                    "battery_pct": s.battery_pct,
                    "fresh": fresh,
                    "reported_at_ms": e.last_state_at,
                    "unknown_since_ms": if fresh { None } else { e.liveness.fresh_at().map(|f| f + cfg.live_window_ms) },
                });
                if kind == DeviceKind::GarageOpener {
                    v["motion"] = json!(fresh.then_some(s.motion).flatten());
                    v["obstructed"] = json!(fresh.then_some(s.obstructed).flatten());
                }
                v
            }
            _ => json!({"newest_frame": e.liveness.newest_frame().map(|(seq, t)| json!({"seq": seq, "capture_ms": t})),
                "watching": e.liveness.watch(now, &cfg).err().map(|b| b.code()).unwrap_or("watching"),
                "clock_offset_ms": e.liveness.clock_offset(now)}),
        };
        (l.as_str().to_owned(), e.liveness.last_seen_at(), e.liveness.fresh_at().map(|f| now - f), e.liveness.possibly_frozen(now, &cfg), state)
    })
}

#[utoipa::path(get, operation_id = "devices_list", path = "/homes/{id}/devices", tag = "devices", params(("id" = String, Path)), responses((status = 200, body = [DeviceJson])))]
pub async fn list(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<DeviceJson>>> {
    let owner = p.require(Role::Owner)?;
    let home = st
        .store
        .home(owner, extract::id(&id)?)
        .await
        .map_err(|_| ApiError::NotFound("home"))?;
    let rows = st.store.devices_of_home(owner, &home.id).await?;
    Ok(Json(
        rows.iter()
            .map(|d| device_json(d, live_view(&st, d)))
            .collect(),
    ))
}

#[utoipa::path(get, operation_id = "devices_get", path = "/devices/{id}", tag = "devices", params(("id" = String, Path)), responses((status = 200, body = DeviceJson), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<DeviceJson>> {
    let owner = p.require(Role::Owner)?;
    let d = st
        .store
        .device(owner, extract::id(&id)?)
        .await
        .map_err(|_| ApiError::NotFound("device"))?;
    Ok(Json(device_json(&d, live_view(&st, &d))))
}

/// Revoke a device: from this moment its messages are refused, its connection to the
/// hub's device endpoint is closed and a new one is refused.
#[utoipa::path(delete, operation_id = "devices_revoke", path = "/devices/{id}", tag = "devices", params(("id" = String, Path)), responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn revoke(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let owner = p.require(Role::Owner)?;
    let id = extract::id(&id)?;
    st.store
        .revoke_device(owner, id, st.clock.now_ms())
        .await
        .map_err(|_| ApiError::NotFound("device"))?;
    if let Ok(did) = id.parse::<DeviceId>() {
        st.registry.with(&did, |e| e.revoked = true);
        // Every node of a fleet refuses it too, within moments.
        crate::fleet::changes::announce(&st, crate::fleet::changes::Change::Device(id.to_owned()))
            .await;
        // Revoked in the database and the registry already: verification refuses it
        // whatever the broker does. Cutting it off the transport is the second wall.
        if let Err(e) = st.downlink.revoke(did).await {
            tracing::error!(device = %did, error = %e, "revoked device's broker rights could not be removed; remove them by hand");
        }
        // A revoked camera no longer vouches at the lock either: the locks of the
        // doors it watched learn their cameras without it.
        let watched: Vec<_> = st
            .access
            .doors
            .of_device(&did)
            .into_iter()
            .filter(|d| d.cameras.contains(&did))
            .collect();
        crate::access::unlock::send_cameras_to_locks(&st, &watched).await;
    }
    crate::audit::record(
        &st,
        "device.revoked",
        &p.actor(),
        &format!("device:{id}"),
        json!({}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// The newest verified frame of a camera, with its capture time and age in headers.
#[utoipa::path(get, operation_id = "devices_latest_frame", path = "/devices/{id}/frame.jpg", tag = "devices", params(("id" = String, Path)), responses((status = 200, content_type = "image/jpeg"), (status = 404, body = ErrorBody)))]
pub async fn latest_frame(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let owner = p.require(Role::Owner)?;
    let d = st
        .store
        .device(owner, extract::id(&id)?)
        .await
        .map_err(|_| ApiError::NotFound("device"))?;
    let did: DeviceId = d.id.parse().map_err(|_| ApiError::NotFound("device"))?;
    let f = st.live.latest(&did).ok_or(ApiError::NotFound("frame"))?;
    let now = st.clock.now_ms();
    Ok((
        [
            (header::CONTENT_TYPE, "image/jpeg".to_owned()),
            (header::CACHE_CONTROL, "no-store".to_owned()),
            (
                header::HeaderName::from_static("x-capture-ms"),
                f.capture_ms.to_string(),
            ),
            (
                header::HeaderName::from_static("x-age-ms"),
                (now - f.received_ms).to_string(),
            ),
        ],
        f.jpeg,
    ))
}
