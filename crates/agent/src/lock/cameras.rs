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
    /// The keys that parse; a key that does not is left out and logged.
    pub fn keys(&self) -> Vec<PublicKey> {
        self.cameras
            .iter()
            .filter_map(|k| match k.parse::<PublicKey>() {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::warn!(error = %e, "ignoring an unreadable camera key");
                    None
                }
            })
            .collect()
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

pub fn save(data_dir: &Path, set: &DoorCameraSet) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(set).map_err(std::io::Error::other)?;
    write_atomic(&data_dir.join(FILE), &bytes, false, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_set_loads_back_and_bad_keys_are_left_out() {
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
        assert_eq!(back.keys().len(), 1);
        std::fs::write(dir.path().join(FILE), b"{not json").unwrap();
        assert_eq!(load(dir.path()), None);
    }
}
