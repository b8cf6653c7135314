//! JSON shapes of the API. Each derives `ToSchema`, so the OpenAPI document is
//! generated from these very types.

use serde::{Deserialize, Serialize};
use serde_json::json;
use threshold_store::{DeliveryRow, DeviceRow, HomeRow, UserRow};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserJson {
    pub id: String,
    pub role: String,
    pub username: String,
    pub display_name: String,
}

impl From<&UserRow> for UserJson {
    fn from(u: &UserRow) -> Self {
        UserJson {
            id: u.id.clone(),
            role: u.role.as_str().into(),
            username: u.username.clone(),
            display_name: u.display_name.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    pub token: String,
    pub user: UserJson,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub role: String,
    pub username: String,
    pub display_name: Option<String>,
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyCreated {
    pub id: String,
    /// Shown once; only its hash is stored.
    pub key: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateHome {
    pub name: String,
    pub lat: f64,
    pub lon: f64,
    pub geofence_m: Option<f64>,
    /// IANA time zone, e.g. `Europe/Amsterdam`: the owner's hours and guests' weekly
    /// windows are local times there.
    pub time_zone: Option<String>,
    /// The postal address, as couriers and dispatchers will see it.
    pub address: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HomeJson {
    pub id: String,
    pub name: String,
    pub lat: f64,
    pub lon: f64,
    pub geofence_m: f64,
    pub in_home_enabled: bool,
    pub approval_required: bool,
    #[schema(value_type = Object)]
    pub allowed_hours: serde_json::Value,
    pub time_zone: Option<String>,
    /// The postal address (empty: not given).
    pub address: String,
}

impl From<&HomeRow> for HomeJson {
    fn from(h: &HomeRow) -> Self {
        HomeJson {
            id: h.id.clone(),
            name: h.name.clone(),
            lat: h.lat,
            lon: h.lon,
            geofence_m: h.geofence_m,
            in_home_enabled: h.in_home_enabled,
            approval_required: h.approval_required,
            allowed_hours: serde_json::from_str(&h.allowed_hours).unwrap_or(json!({})),
            time_zone: h.time_zone.clone(),
            address: h.address.clone(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HomeSettings {
    pub in_home_enabled: bool,
    #[serde(default)]
    pub approval_required: bool,
    /// `{"days":[1..7],"start_minute":480,"end_minute":1200}` in the home's local time;
    /// `{}` = any time.
    #[schema(value_type = Object)]
    #[serde(default)]
    pub allowed_hours: Option<serde_json::Value>,
    /// IANA time zone of the home, e.g. `Europe/Amsterdam` (left out: unchanged).
    pub time_zone: Option<String>,
    /// The postal address (left out: unchanged).
    pub address: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePairingCode {
    /// camera, lock, contact_sensor, wifi_sensor or garage_opener.
    pub kind: String,
    pub name: String,
    /// The door the device is for: a lock or contact sensor is fitted to it, a camera
    /// watches it. A lock without a door gets a door of its own, named after it; a
    /// camera without one watches no door until the owner binds it.
    pub door_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PairingCodeJson {
    pub code: String,
    pub expires_at_ms: i64,
}

/// Unknown members are ignored (devices may be newer than the hub), unlike the
/// people-facing requests, which refuse them.
#[derive(Debug, Deserialize, ToSchema)]
pub struct EnrolRequest {
    pub pairing_code: String,
    /// Ed25519 public key, 64 hex characters.
    pub public_key: String,
    pub kind: String,
    /// Signature over `threshold-enrol-v1:{pairing_code}:{public_key}`, 128 hex characters.
    pub proof: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MqttSettings {
    pub host: String,
    pub port: u16,
    /// The same endpoint over TLS, when the hub offers it (the certificate is the
    /// hub's HTTPS certificate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_port: Option<u16>,
    pub username: String,
    pub password: String,
    pub topic_prefix: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EnrolResponse {
    pub device_id: String,
    pub home_id: String,
    pub hub_public_key: String,
    pub mqtt: MqttSettings,
    pub heartbeat_ms: i64,
    /// For a lock: the door it is fitted to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub door_id: Option<String>,
    /// For a lock: the public keys (hex) of the cameras that watch its door, whose
    /// liveness statements its unlock tokens carry (docs/protocol.md §8.3).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub door_cameras: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceJson {
    pub id: String,
    pub home_id: String,
    pub kind: String,
    pub name: String,
    pub public_key: String,
    pub enrolled_ms: i64,
    pub revoked: bool,
    /// live, stale or offline, as the hub sees it now.
    pub liveness: String,
    pub last_seen_ms: Option<i64>,
    /// Age in ms of the newest fresh evidence, if any.
    pub age_ms: Option<i64>,
    pub possibly_frozen: bool,
    /// For locks and contact sensors: the last signed state report, and whether it is
    /// fresh enough to be believed. A stale "locked" is shown as unknown.
    #[schema(value_type = Object)]
    pub state: serde_json::Value,
}

pub fn device_json(
    d: &DeviceRow,
    live: Option<(String, Option<i64>, Option<i64>, bool, serde_json::Value)>,
) -> DeviceJson {
    let (liveness, last_seen, age, frozen, state) =
        live.unwrap_or(("offline".into(), d.last_seen_ms, None, false, json!(null)));
    DeviceJson {
        id: d.id.clone(),
        home_id: d.home_id.clone(),
        kind: d.kind.clone(),
        name: d.name.clone(),
        public_key: d.public_key.clone(),
        enrolled_ms: d.enrolled_ms,
        revoked: d.revoked_ms.is_some(),
        liveness,
        last_seen_ms: last_seen,
        age_ms: age,
        possibly_frozen: frozen,
        state,
    }
}

pub use crate::alerts::{alert_json, AlertJson};

#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineJson {
    pub id: String,
    pub device_id: Option<String>,
    pub delivery_id: Option<String>,
    pub time_ms: i64,
    pub kind: String,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDelivery {
    pub home_id: String,
    pub courier_id: String,
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    pub parcel_ref: String,
    /// in_home (default) or in_garage.
    pub placement: Option<String>,
    /// The door the courier may use; default: the home's one door that accepts
    /// deliveries.
    pub door_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryJson {
    pub id: String,
    pub home_id: String,
    pub courier_id: String,
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    pub parcel_ref: String,
    pub placement: String,
    /// scheduled, inside, delivered, camera_lost, completed, ended_after_camera_loss,
    /// ended_unverified or expired.
    pub state: String,
    pub compromised: bool,
    pub door_id: Option<String>,
    pub dispatcher_id: String,
    pub delivered_ms: Option<i64>,
    pub camera_lost_ms: Option<i64>,
    pub ended_ms: Option<i64>,
    /// Where to go: the home's postal address (empty if the owner gave none).
    pub address: String,
}

impl From<&DeliveryRow> for DeliveryJson {
    fn from(d: &DeliveryRow) -> Self {
        DeliveryJson {
            id: d.id.clone(),
            home_id: d.home_id.clone(),
            courier_id: d.courier_id.clone(),
            window_start_ms: d.window_start_ms,
            window_end_ms: d.window_end_ms,
            parcel_ref: d.parcel_ref.clone(),
            placement: d.placement.clone(),
            state: d.state.clone(),
            compromised: d.compromised,
            door_id: d.door_id.clone(),
            dispatcher_id: d.dispatcher_id.clone(),
            delivered_ms: d.delivered_ms,
            camera_lost_ms: d.camera_lost_ms,
            ended_ms: d.ended_ms,
            address: String::new(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EntryRequestJson {
    pub lat: f64,
    pub lon: f64,
    pub accuracy_m: f64,
    pub parcel_ref: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReasonJson {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionJson {
    pub allowed: bool,
    pub reasons: Vec<ReasonJson>,
    pub token_expires_at_ms: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, searchable code, e.g. `invalid_request`, `not_found`.
    pub code: String,
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyJson {
    pub id: String,
    pub name: String,
    pub created_ms: i64,
    pub revoked_ms: Option<i64>,
}
