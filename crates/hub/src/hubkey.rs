//! The hub's own Ed25519 key: signs downlink messages, unlock tokens and audit
//! checkpoints. Kept in a 0600 file, refused when others can read it; several hub
//! processes share it by pointing at the same file.

use std::path::Path;
use threshold_proto::DeviceKey;

#[derive(Debug, thiserror::Error)]
pub enum HubKeyError {
    #[error("cannot read or write hub key {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("hub key file {0} is not 64 hex characters")]
    Malformed(String),
    #[error("operating system random source failed: {0}")]
    Random(String),
    #[error(transparent)]
    Exposed(#[from] crate::secrets::SecretFileError),
}

pub fn load_or_create(path: &Path) -> Result<DeviceKey, HubKeyError> {
    let io = |source| HubKeyError::Io {
        path: path.display().to_string(),
        source,
    };
    if !matches!(path.try_exists(), Ok(true)) {
        let key = DeviceKey::generate().map_err(|e| HubKeyError::Random(e.to_string()))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        // Another process starting at the same moment may win: then its key is the key.
        if crate::secrets::create_private_once(path, hex::encode(key.seed()).as_bytes())
            .map_err(io)?
        {
            return Ok(key);
        }
    }
    match std::fs::read_to_string(path) {
        Ok(text) => {
            crate::secrets::check_private(path)?;
            let mut seed = [0u8; 32];
            hex::decode_to_slice(text.trim(), &mut seed)
                .map_err(|_| HubKeyError::Malformed(path.display().to_string()))?;
            Ok(DeviceKey::from_seed(&seed))
        }
        Err(e) => Err(io(e)),
    }
}
