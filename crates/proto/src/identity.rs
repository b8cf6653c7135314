//! Device and hub identities: Ed25519 keys and the device id derived from a public key.

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// A device id is the first 16 bytes of SHA-256 of the device's public key.
///
/// Deriving the id from the key means nobody can claim an id without holding its key,
/// and a device maker needs no registry of serial numbers.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId(pub [u8; 16]);

impl DeviceId {
    pub fn from_public_key(key: &PublicKey) -> Self {
        let digest = Sha256::digest(key.0.as_bytes());
        let mut id = [0u8; 16];
        for (dst, src) in id.iter_mut().zip(digest.iter()) {
            *dst = *src;
        }
        DeviceId(id)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceId({})", self.to_hex())
    }
}

/// Why a textual id or key was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseIdError {
    #[error("expected {expected} lowercase hex characters")]
    BadHex { expected: usize },
    #[error("not a valid Ed25519 public key")]
    BadKey,
}

impl FromStr for DeviceId {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut id = [0u8; 16];
        if s.len() != 32 || hex::decode_to_slice(s, &mut id).is_err() {
            return Err(ParseIdError::BadHex { expected: 32 });
        }
        Ok(DeviceId(id))
    }
}

/// An Ed25519 public key (device or hub).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(pub VerifyingKey);

impl PublicKey {
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, ParseIdError> {
        VerifyingKey::from_bytes(bytes)
            .map(PublicKey)
            .map_err(|_| ParseIdError::BadKey)
    }
    pub fn to_hex(&self) -> String {
        hex::encode(self.0.as_bytes())
    }
    pub fn device_id(&self) -> DeviceId {
        DeviceId::from_public_key(self)
    }
}

impl FromStr for PublicKey {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut b = [0u8; 32];
        if s.len() != 64 || hex::decode_to_slice(s, &mut b).is_err() {
            return Err(ParseIdError::BadHex { expected: 64 });
        }
        PublicKey::from_bytes(&b)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_hex())
    }
}

/// A private signing key. Its `Debug` never prints the secret.
#[derive(Clone)]
pub struct DeviceKey(SigningKey);

impl DeviceKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed)?;
        Ok(Self::from_seed(&seed))
    }
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        DeviceKey(SigningKey::from_bytes(seed))
    }
    pub fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }
    pub fn device_id(&self) -> DeviceId {
        self.public().device_id()
    }
    pub fn sign(&self, bytes: &[u8]) -> [u8; 64] {
        self.0.sign(bytes).to_bytes()
    }
}

impl fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "DeviceKey(public={}, secret=<redacted>)",
            self.public().to_hex()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_id_round_trips_through_hex() {
        let key = DeviceKey::from_seed(&[7u8; 32]);
        let id = key.device_id();
        assert_eq!(id.to_hex().parse::<DeviceId>(), Ok(id));
    }

    #[test]
    fn bad_hex_ids_are_refused() {
        assert!("zz".parse::<DeviceId>().is_err());
        assert!("00".repeat(17).parse::<DeviceId>().is_err());
        assert!("not hex at all, but 32 chars...."
            .parse::<DeviceId>()
            .is_err());
    }

    #[test]
    fn debug_hides_secret() {
        let key = DeviceKey::from_seed(&[9u8; 32]);
        let shown = format!("{key:?}");
        assert!(!shown.contains(&hex::encode([9u8; 32])));
        assert!(shown.contains("redacted"));
    }
}
