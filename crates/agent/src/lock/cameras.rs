//! The cameras that watch this lock's door, kept on disk (`cameras.json`, written
//! atomically) so a restarted lock still knows whose statements to accept. The set
//! comes from the enrolment answer, then from the hub's signed `cameras` messages.

use crate::fsutil::write_atomic;
use serde::{Deserialize, Serialize};
use std::path::Path;
use threshold_proto::PublicKey;

const FILE: &str = "cameras.json";

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoorCameraSet {
    pub door_id: String,
    /// Ed25519 public keys, hex.
    pub cameras: Vec<String>,
}

impl DoorCameraSet {
    /// The set's keys. A set is valid whole or not at all (docs/protocol.md §9.11): an
    /// invalid one (a damaged file, a bad enrolment answer) counts as no camera, so the
    /// lock opens for waivers only until the hub sends a valid set. Logged.
    pub fn keys(&self) -> Vec<PublicKey> {
        threshold_proto::body::camera_keys(&self.cameras).unwrap_or_else(|e| {
            tracing::error!(error = %e, "camera set invalid; no camera can vouch until the hub sends one");
            Vec::new()
        })
    }
}

/// The stored set, if any (an unreadable file counts as none, logged).
pub fn load(data_dir: &Path) -> Option<DoorCameraSet> {
    let bytes = std::fs::read(data_dir.join(FILE)).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!(error = %e, "cameras.json unreadable; waiting for the hub to send the set");
            None
        }
    }
}

/// Where the camera set a lock starts with came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// `cameras.json`: the lock's own stored set, recorded when it was stored.
    Stored,
    /// The enrolment answer's `door_cameras` (first start after pairing, or the file
    /// was lost): new to the lock's event log.
    Enrolment,
}

/// The set to start with: the stored one, else the enrolment's `door_cameras` (with its
/// `door_id`, or an empty door id when the hub did not name the door: the hub's
/// `cameras` message after `hello` names it). `None` when neither says anything; the
/// lock then knows no camera and refuses every token without a waiver.
pub fn initial(
    data_dir: &Path,
    enrolment: &crate::identity::Enrolment,
) -> Option<(DoorCameraSet, Origin)> {
    if let Some(set) = load(data_dir) {
        return Some((set, Origin::Stored));
    }
    if enrolment.door_id.is_none() && enrolment.door_cameras.is_empty() {
        return None;
    }
    let set = DoorCameraSet {
        door_id: enrolment.door_id.clone().unwrap_or_default(),
        cameras: enrolment.door_cameras.clone(),
    };
    Some((set, Origin::Enrolment))
}

pub fn save(data_dir: &Path, set: &DoorCameraSet) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(set).map_err(std::io::Error::other)?;
    write_atomic(&data_dir.join(FILE), &bytes, false, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_set_loads_back_and_a_bad_set_counts_as_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()), None);
        let k = threshold_proto::DeviceKey::from_seed(&[3; 32])
            .public()
            .to_hex();
        let set = DoorCameraSet {
            door_id: "front".into(),
            cameras: vec![k, "zz".into()],
        };
        save(dir.path(), &set).unwrap();
        let back = load(dir.path()).unwrap();
        assert_eq!(back, set);
        assert!(
            back.keys().is_empty(),
            "one bad key: the whole set is refused"
        );
        let good = DoorCameraSet {
            door_id: "front".into(),
            cameras: vec![set.cameras[0].clone()],
        };
        assert_eq!(good.keys().len(), 1);
        std::fs::write(dir.path().join(FILE), b"{not json").unwrap();
        assert_eq!(load(dir.path()), None);
    }

    fn enrolment(door_id: Option<&str>, cameras: &[&str]) -> crate::identity::Enrolment {
        crate::identity::Enrolment {
            device_id: "00".repeat(16),
            home_id: "h".into(),
            hub_public_key: "11".repeat(32),
            mqtt: crate::identity::MqttSettings {
                host: "127.0.0.1".into(),
                port: 1883,
                tls_port: None,
                username: "u".into(),
                password: "p".into(),
                topic_prefix: "t".into(),
            },
            heartbeat_ms: 250,
            door_id: door_id.map(str::to_owned),
            door_cameras: cameras.iter().map(|c| c.to_string()).collect(),
            hub_url: None,
        }
    }

    #[test]
    fn the_stored_set_wins_over_the_enrolment_which_is_used_even_without_a_door_id() {
        let dir = tempfile::tempdir().unwrap();
        let k = threshold_proto::DeviceKey::from_seed(&[3; 32])
            .public()
            .to_hex();
        assert_eq!(initial(dir.path(), &enrolment(None, &[])), None);
        let (set, origin) = initial(dir.path(), &enrolment(None, &[&k])).unwrap();
        assert_eq!(
            (set.door_id.as_str(), set.keys().len(), origin),
            ("", 1, Origin::Enrolment)
        );
        let (set, _) = initial(dir.path(), &enrolment(Some("front"), &[&k])).unwrap();
        assert_eq!(set.door_id, "front");
        let stored = DoorCameraSet {
            door_id: "back".into(),
            cameras: Vec::new(),
        };
        save(dir.path(), &stored).unwrap();
        assert_eq!(
            initial(dir.path(), &enrolment(Some("front"), &[&k])),
            Some((stored, Origin::Stored))
        );
    }
}
