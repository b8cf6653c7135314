//! Message bodies. All bodies are UTF-8 JSON objects, except `frame`, whose body is a
//! length-prefixed JSON header followed by the JPEG bytes. Unknown JSON fields are
//! ignored so that newer devices can talk to older hubs.

use serde::{Deserialize, Serialize};

/// Device kinds the hub knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    Camera,
    Lock,
    ContactSensor,
    WifiSensor,
    /// A garage-door opener: the door itself is the barrier (no bolt). It takes unlock
    /// tokens like a lock (open) and the `lock` command (close).
    GarageOpener,
}

impl DeviceKind {
    /// Every kind, in a fixed order (metrics, parsing).
    pub const ALL: [DeviceKind; 5] = [
        DeviceKind::Camera,
        DeviceKind::Lock,
        DeviceKind::ContactSensor,
        DeviceKind::WifiSensor,
        DeviceKind::GarageOpener,
    ];

    /// Whether this kind opens and secures a door: receives unlock tokens, `lock`
    /// commands and the door's camera set.
    pub fn actuates_door(self) -> bool {
        matches!(self, DeviceKind::Lock | DeviceKind::GarageOpener)
    }

    /// Whether this kind reports a door's physical state (`state` messages).
    pub fn reports_state(self) -> bool {
        matches!(
            self,
            DeviceKind::Lock | DeviceKind::ContactSensor | DeviceKind::GarageOpener
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DeviceKind::Camera => "camera",
            DeviceKind::Lock => "lock",
            DeviceKind::ContactSensor => "contact_sensor",
            DeviceKind::WifiSensor => "wifi_sensor",
            DeviceKind::GarageOpener => "garage_opener",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// `hello`: sent once after every (re)connect.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub agent: String,
    pub kind: DeviceKind,
    /// Random per agent start, so the hub can tell a reboot from a reconnect.
    pub boot_id: String,
}

/// The newest frame a camera has captured, summarised.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrameSummary {
    /// Frame log sequence number.
    pub seq: u64,
    /// Capture time, Unix milliseconds, device clock.
    pub time_ms: i64,
    /// SHA-256 of the JPEG, hex.
    pub sha256: String,
    /// 8x8 luma thumbnail (64 bytes, hex): lets the hub tell a frozen picture from a
    /// still scene without receiving the frame.
    pub thumb: String,
}

/// Records waiting on the device's disk for an acknowledgement.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OutboxStats {
    pub records: u64,
    pub bytes: u64,
}

/// `heartbeat`: several times a second. Its arrival is what keeps a device live.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame: Option<FrameSummary>,
    #[serde(default)]
    pub outbox: OutboxStats,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BoltState {
    Locked,
    Unlocked,
    Moving,
    Jammed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DoorState {
    Open,
    Closed,
}

/// Which way a garage door is moving, or that it stopped part-way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DoorMotion {
    Opening,
    Closing,
    /// Stopped neither fully open nor fully closed.
    Stopped,
}

/// `state`: a lock's, contact sensor's or garage-door opener's current physical state;
/// also its heartbeat.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bolt: Option<BoltState>,
    /// `closed` only when the door is fully closed; a garage door part-way is `open`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub door: Option<DoorState>,
    /// Garage-door openers: the door is moving or stopped part-way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub motion: Option<DoorMotion>,
    /// Garage-door openers: the safety sensor reports something in the door's way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub obstructed: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub battery_pct: Option<u8>,
    #[serde(default)]
    pub outbox: OutboxStats,
}

/// `event`: one entry of the device's durable event log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// What happened, e.g. `door_opened`. See docs/protocol.md for the list.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Type-specific details.
    #[serde(default)]
    pub detail: serde_json::Value,
}

/// Header of a `frame` record. The body is `u32 BE header length`, this header as JSON,
/// then the JPEG bytes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrameHeader {
    pub width: u32,
    pub height: u32,
    pub sha256: String,
    pub thumb: String,
}

/// Why a frame body could not be split.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameBodyError {
    #[error("frame body shorter than its header length prefix says")]
    Truncated,
    #[error("frame header is not valid JSON: {0}")]
    BadHeader(String),
}

pub fn encode_frame_body(header: &FrameHeader, jpeg: &[u8]) -> Vec<u8> {
    let h = serde_json::to_vec(header).unwrap_or_default();
    let mut out = Vec::with_capacity(4 + h.len() + jpeg.len());
    out.extend_from_slice(&(h.len() as u32).to_be_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(jpeg);
    out
}

pub fn decode_frame_body(body: &[u8]) -> Result<(FrameHeader, &[u8]), FrameBodyError> {
    let len_bytes: [u8; 4] = body
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or(FrameBodyError::Truncated)?;
    let len = u32::from_be_bytes(len_bytes) as usize;
    let end = 4usize.checked_add(len).ok_or(FrameBodyError::Truncated)?;
    let h = body.get(4..end).ok_or(FrameBodyError::Truncated)?;
    let header = serde_json::from_slice(h).map_err(|e| FrameBodyError::BadHeader(e.to_string()))?;
    Ok((header, body.get(end..).unwrap_or_default()))
}

/// `ack`: the hub has durably stored these records; the device may drop them.
/// Ranges are inclusive `[first, last]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    #[serde(default)]
    pub events: Vec<(u64, u64)>,
    #[serde(default)]
    pub frames: Vec<(u64, u64)>,
}

/// `stream`: send full frames until `until_ms` (hub clock) at up to `fps` frames a
/// second. Sent while someone watches and during deliveries; repeated to extend.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stream {
    pub until_ms: i64,
    pub fps: u32,
}

/// `unlock`: a single-use capability. The envelope binds it to one lock (the device id)
/// and the hub's signature; the lock refuses it after `expires_at_ms` (allowing a
/// bounded clock skew) or if it has seen the nonce before.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Unlock {
    /// What authorises it: `delivery:<id>`, `guest:<id>` or `owner:<id>`.
    pub grant: String,
    /// 16 random bytes, hex.
    pub nonce: String,
    pub expires_at_ms: i64,
    /// The door camera's liveness statement: standard base64 of a `heartbeat`
    /// envelope exactly as the camera signed it (docs/protocol.md §9.9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub camera: Option<String>,
    /// Instead of `camera`: the owner waived the camera rule (`owner_override` or
    /// `guest_grant`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub camera_waived: Option<String>,
}

/// `cameras`: which cameras watch the lock's door (Ed25519 public keys, hex).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DoorCameras {
    pub door_id: String,
    pub cameras: Vec<String>,
}

/// At most this many cameras watch one door (a `cameras` message names no more).
pub const MAX_DOOR_CAMERAS: usize = 16;

/// Why a door's camera set is not valid (docs/protocol.md §9.11).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CameraSetError {
    #[error("door_id must be 1 to 64 bytes")]
    DoorId,
    #[error("more than {MAX_DOOR_CAMERAS} cameras")]
    TooMany,
    #[error("a camera key is not 64 lowercase hex characters of an Ed25519 public key")]
    BadKey,
}

/// The keys of a camera set, each valid and each once (in the order given); the
/// whole set is refused if any entry is not (§9.11).
pub fn camera_keys(cameras: &[String]) -> Result<Vec<crate::PublicKey>, CameraSetError> {
    if cameras.len() > MAX_DOOR_CAMERAS {
        return Err(CameraSetError::TooMany);
    }
    let mut keys: Vec<crate::PublicKey> = Vec::with_capacity(cameras.len());
    for c in cameras {
        if c.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(CameraSetError::BadKey);
        }
        let k: crate::PublicKey = c.parse().map_err(|_| CameraSetError::BadKey)?;
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    Ok(keys)
}

impl DoorCameras {
    /// The message's keys, if the message is valid (§9.11).
    pub fn keys(&self) -> Result<Vec<crate::PublicKey>, CameraSetError> {
        if self.door_id.is_empty() || self.door_id.len() > 64 {
            return Err(CameraSetError::DoorId);
        }
        camera_keys(&self.cameras)
    }
}

/// `lock`: throw the bolt now (the owner's remote lock). Locks also relock on their own.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LockCommand {
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_camera_set_is_valid_whole_or_not_at_all() {
        let k = |n: u8| crate::DeviceKey::from_seed(&[n; 32]).public().to_hex();
        let set = |door: &str, cams: Vec<String>| DoorCameras {
            door_id: door.into(),
            cameras: cams,
        };
        assert_eq!(
            set("front", vec![k(1), k(2), k(1)]).keys().unwrap().len(),
            2
        );
        assert_eq!(set("front", vec![]).keys().unwrap().len(), 0);
        assert_eq!(set("", vec![k(1)]).keys(), Err(CameraSetError::DoorId));
        assert_eq!(
            set(&"d".repeat(65), vec![]).keys(),
            Err(CameraSetError::DoorId)
        );
        let many: Vec<String> = (1..=17).map(k).collect();
        assert_eq!(set("front", many).keys(), Err(CameraSetError::TooMany));
        for bad in [k(1).to_uppercase(), "zz".repeat(32), k(1)[..62].to_owned()] {
            assert_eq!(
                set("front", vec![k(2), bad.clone()]).keys(),
                Err(CameraSetError::BadKey),
                "{bad}"
            );
        }
    }

    #[test]
    fn frame_body_round_trips() {
        let h = FrameHeader {
            width: 64,
            height: 48,
            sha256: "00".into(),
            thumb: "11".into(),
        };
        let b = encode_frame_body(&h, b"\xff\xd8jpeg\xff\xd9");
        let (h2, jpeg) = decode_frame_body(&b).unwrap();
        assert_eq!(h2, h);
        assert_eq!(jpeg, b"\xff\xd8jpeg\xff\xd9");
    }

    #[test]
    fn frame_body_truncations_are_errors() {
        let h = FrameHeader {
            width: 1,
            height: 1,
            sha256: "aa".into(),
            thumb: "bb".into(),
        };
        let b = encode_frame_body(&h, b"x");
        let hdr_end = b.len() - 1;
        for n in 0..hdr_end {
            assert!(
                decode_frame_body(&b[..n]).is_err(),
                "prefix of {n} bytes accepted"
            );
        }
        assert!(decode_frame_body(&[0xff, 0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let s: State = serde_json::from_str(r#"{"bolt":"locked","future_field":1}"#).unwrap();
        assert_eq!(s.bolt, Some(BoltState::Locked));
    }
}
