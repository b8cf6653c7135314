//! Law 3: unlocks are capabilities. One single-use token for the door's own lock,
//! signed by the hub, bound to (lock, grant, nonce) with a short expiry, and carrying
//! the door camera's own signed liveness statement, which the lock checks itself
//! (docs/protocol.md §9.9, §10.3). When the owner waived the camera rule, the token
//! says so instead, and the lock records it.

use crate::access::doors::{self, Door};
use crate::access::AccessError;
use crate::audit::Record;
use crate::state::AppState;
use serde_json::json;
use threshold_core::entry::CameraWaiver;
use threshold_proto::body::{LockCommand, Stream, Unlock};
use threshold_proto::{DeviceId, Kind};

/// A capability chosen before anything is written, so the audit log can name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capability {
    pub lock: DeviceId,
    pub grant: String,
    pub nonce: String,
    pub expires: i64,
    /// The camera whose statement the token carries.
    pub camera: Option<DeviceId>,
    statement: Option<String>,
    pub waived: Option<CameraWaiver>,
}

/// Prepare the capability for `door`'s lock. Without a waiver it carries the newest
/// statement of a watching camera of the door (the entry rule has just said one is
/// watching; if it stopped in between, the token goes without and the lock refuses it:
/// fail secure).
pub fn prepare(
    state: &AppState,
    door: &Door,
    lock: DeviceId,
    grant: &str,
    now: i64,
    waived: Option<CameraWaiver>,
) -> Result<Capability, AccessError> {
    let mut nonce = [0u8; 16];
    getrandom::getrandom(&mut nonce).map_err(|e| AccessError::Random(e.to_string()))?;
    let (camera, statement) = match waived {
        Some(_) => (None, None),
        None => match doors::statement(state, door, now) {
            Some((c, s)) => (Some(c), Some(s)),
            None => (None, None),
        },
    };
    Ok(Capability {
        lock,
        grant: grant.to_owned(),
        nonce: hex::encode(nonce),
        expires: now + state.config.unlock_token_ttl_ms,
        camera,
        statement,
        waived,
    })
}

/// Sign and publish the capability. Signed only now, not when prepared: a device
/// refuses a downlink whose number is not above the last one it accepted, so a token
/// must not be overtaken by a later-numbered message to the same lock.
pub async fn send(state: &AppState, c: &Capability) {
    let token = Unlock {
        grant: c.grant.clone(),
        nonce: c.nonce.clone(),
        expires_at_ms: c.expires,
        camera: c.statement.clone(),
        camera_waived: c.waived.map(|w| w.code().to_owned()),
    };
    crate::fleet::downlinks::send(state, c.lock, Kind::Unlock, &token).await;
}

/// The audit entry naming the capability.
pub fn record(c: &Capability, actor: &str) -> Record {
    Record::new(
        "token.issued",
        actor,
        &format!("device:{}", c.lock),
        json!({"grant": c.grant, "nonce": c.nonce, "expires_at_ms": c.expires,
            "camera": c.camera.map(|d| d.to_hex()), "camera_waived": c.waived.map(|w| w.code())}),
    )
}

/// Send the `lock` downlink (throw the bolt now), audited.
pub async fn send_lock(state: &AppState, lock: DeviceId, actor: &str, reason: &str) {
    crate::fleet::downlinks::send(
        state,
        lock,
        Kind::Lock,
        &LockCommand {
            reason: reason.to_owned(),
        },
    )
    .await;
    crate::audit::record(
        state,
        "lock.command",
        actor,
        &format!("device:{lock}"),
        json!({"reason": reason}),
    )
    .await;
}

/// Ask cameras for full frames until `until_ms`.
pub async fn request_streams(state: &AppState, cams: &[DeviceId], until_ms: i64) {
    for c in cams {
        crate::fleet::downlinks::send(state, *c, Kind::Stream, &Stream { until_ms, fps: 5 }).await;
    }
}

/// Tell a lock which cameras watch its door (their public keys), so it can check the
/// statements its tokens carry. Sent when the lock says hello and when the binding
/// changes.
pub async fn send_door_cameras(state: &AppState, door: &Door) {
    let Some(lock) = door.lock else { return };
    let keys: Vec<String> = door
        .cameras
        .iter()
        .filter_map(|c| {
            state
                .registry
                .with(c, |e| (!e.revoked).then(|| e.key.to_hex()))
                .flatten()
        })
        .collect();
    crate::fleet::downlinks::send(
        state,
        lock,
        Kind::Cameras,
        &threshold_proto::body::DoorCameras {
            door_id: door.id.clone(),
            cameras: keys,
        },
    )
    .await;
}

/// Tell the lock of each of `doors` (those that have one) which cameras watch it.
pub async fn send_cameras_to_locks(state: &AppState, doors: &[Door]) {
    for door in doors.iter().filter(|d| d.lock.is_some()) {
        send_door_cameras(state, door).await;
    }
}

/// The cameras' public keys for a lock at enrolment.
pub fn door_camera_keys(state: &AppState, door: &Door) -> Vec<String> {
    door.cameras
        .iter()
        .filter_map(|c| {
            state
                .registry
                .with(c, |e| (!e.revoked).then(|| e.key.to_hex()))
                .flatten()
        })
        .collect()
}
