//! The signed envelope every message travels in.
//!
//! Layout (all integers big-endian):
//!
//! | offset | size | field                                   |
//! |--------|------|-----------------------------------------|
//! | 0      | 4    | magic `THR1`                            |
//! | 4      | 1    | kind code                               |
//! | 5      | 1    | flags (must be 0 in version 1)          |
//! | 6      | 16   | device id                               |
//! | 22     | 8    | seq (u64)                               |
//! | 30     | 8    | time, Unix milliseconds (i64)           |
//! | 38     | 4    | body length n (u32)                     |
//! | 42     | n    | body                                    |
//! | 42+n   | 64   | Ed25519 signature over bytes 0..42+n    |

use crate::identity::{DeviceId, DeviceKey, PublicKey};
use crate::kind::Kind;
use crate::MAX_MESSAGE_BYTES;
use ed25519_dalek::Signature;

pub const MAGIC: [u8; 4] = *b"THR1";
pub const HEADER_LEN: usize = 42;
pub const SIGNATURE_LEN: usize = 64;

/// Why bytes could not be read as a message. Each has a stable reason string used in
/// logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("message is {len} bytes, more than the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("message is shorter than header and signature")]
    Truncated,
    #[error("magic bytes are not THR1")]
    BadMagic,
    #[error("unknown message kind {0}")]
    UnknownKind(u8),
    #[error("flags byte {0:#04x} is not 0")]
    BadFlags(u8),
    #[error("body length field does not match the message length")]
    LengthMismatch,
}

impl DecodeError {
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::TooLarge { .. } => "too_large",
            DecodeError::Truncated => "truncated",
            DecodeError::BadMagic => "bad_magic",
            DecodeError::UnknownKind(_) => "unknown_kind",
            DecodeError::BadFlags(_) => "bad_flags",
            DecodeError::LengthMismatch => "length_mismatch",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("signature does not verify with the expected key")]
    BadSignature,
}

/// A parsed message whose signature has not been checked yet. The only way to get at a
/// [`SignedMessage`] is [`UnverifiedMessage::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnverifiedMessage {
    pub kind: Kind,
    pub device: DeviceId,
    pub seq: u64,
    pub time_ms: i64,
    pub body: Vec<u8>,
    signed_len: usize,
    raw: Vec<u8>,
}

/// A message whose signature verified against the key that was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedMessage {
    pub kind: Kind,
    pub device: DeviceId,
    pub seq: u64,
    pub time_ms: i64,
    pub body: Vec<u8>,
    raw: Vec<u8>,
}

fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    u64::from_be_bytes(a)
}

impl UnverifiedMessage {
    /// Parse bytes off the wire. Never panics; every failure is a [`DecodeError`].
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(DecodeError::TooLarge {
                len: bytes.len(),
                max: MAX_MESSAGE_BYTES,
            });
        }
        let header = bytes.get(..HEADER_LEN).ok_or(DecodeError::Truncated)?;
        if bytes.len() < HEADER_LEN + SIGNATURE_LEN {
            return Err(DecodeError::Truncated);
        }
        let (magic, rest) = header.split_at(4);
        if magic != MAGIC {
            return Err(DecodeError::BadMagic);
        }
        let (kind_b, rest) = rest.split_at(1);
        let (flags_b, rest) = rest.split_at(1);
        let (dev, rest) = rest.split_at(16);
        let (seq, rest) = rest.split_at(8);
        let (time, len) = rest.split_at(8);
        let kind_code = kind_b.first().copied().unwrap_or_default();
        let kind = Kind::from_code(kind_code).ok_or(DecodeError::UnknownKind(kind_code))?;
        let flags = flags_b.first().copied().unwrap_or_default();
        if flags != 0 {
            return Err(DecodeError::BadFlags(flags));
        }
        let mut device = [0u8; 16];
        device.copy_from_slice(dev);
        let mut len_a = [0u8; 4];
        len_a.copy_from_slice(len);
        let body_len = u32::from_be_bytes(len_a) as usize;
        let signed_len = HEADER_LEN
            .checked_add(body_len)
            .ok_or(DecodeError::LengthMismatch)?;
        if signed_len.checked_add(SIGNATURE_LEN) != Some(bytes.len()) {
            return Err(DecodeError::LengthMismatch);
        }
        let body = bytes
            .get(HEADER_LEN..signed_len)
            .ok_or(DecodeError::LengthMismatch)?
            .to_vec();
        Ok(UnverifiedMessage {
            kind,
            device: DeviceId(device),
            seq: be_u64(seq),
            time_ms: be_u64(time) as i64,
            body,
            signed_len,
            raw: bytes.to_vec(),
        })
    }

    /// Check the signature with `key`. Uses strict verification (rejects small-order
    /// and non-canonical encodings), so a signature cannot be malleated.
    pub fn verify(self, key: &PublicKey) -> Result<SignedMessage, VerifyError> {
        let (signed, sig) = self.raw.split_at(self.signed_len);
        let sig = Signature::from_slice(sig).map_err(|_| VerifyError::BadSignature)?;
        key.0
            .verify_strict(signed, &sig)
            .map_err(|_| VerifyError::BadSignature)?;
        Ok(SignedMessage {
            kind: self.kind,
            device: self.device,
            seq: self.seq,
            time_ms: self.time_ms,
            body: self.body,
            raw: self.raw,
        })
    }
}

impl SignedMessage {
    /// Build and sign a message. `device` is the sender for uplink kinds and the
    /// recipient for downlink kinds (the hub signs those).
    pub fn sign(
        key: &DeviceKey,
        kind: Kind,
        device: DeviceId,
        seq: u64,
        time_ms: i64,
        body: Vec<u8>,
    ) -> Self {
        let mut raw = Vec::with_capacity(HEADER_LEN + body.len() + SIGNATURE_LEN);
        raw.extend_from_slice(&MAGIC);
        raw.push(kind.code());
        raw.push(0);
        raw.extend_from_slice(&device.0);
        raw.extend_from_slice(&seq.to_be_bytes());
        raw.extend_from_slice(&time_ms.to_be_bytes());
        raw.extend_from_slice(&(body.len() as u32).to_be_bytes());
        raw.extend_from_slice(&body);
        let sig = key.sign(&raw);
        raw.extend_from_slice(&sig);
        SignedMessage {
            kind,
            device,
            seq,
            time_ms,
            body,
            raw,
        }
    }

    /// The exact bytes to publish (and to store as evidence).
    pub fn as_bytes(&self) -> &[u8] {
        &self.raw
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.raw
    }

    pub fn signature(&self) -> &[u8] {
        self.raw
            .get(self.raw.len().saturating_sub(SIGNATURE_LEN)..)
            .unwrap_or_default()
    }

    /// Parse the body as JSON of the given type.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> DeviceKey {
        DeviceKey::from_seed(&[1u8; 32])
    }

    fn sample() -> SignedMessage {
        let k = key();
        SignedMessage::sign(
            &k,
            Kind::Heartbeat,
            k.device_id(),
            42,
            1_700_000_000_000,
            b"{\"a\":1}".to_vec(),
        )
    }

    #[test]
    fn sign_then_decode_and_verify_round_trips() {
        let m = sample();
        let back = UnverifiedMessage::decode(m.as_bytes()).map(|u| u.verify(&key().public()));
        assert_eq!(back, Ok(Ok(m)));
    }

    #[test]
    fn any_flipped_bit_breaks_the_signature_or_the_parse() {
        let m = sample();
        let bytes = m.as_bytes().to_vec();
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            if let Some(x) = b.get_mut(i) {
                *x ^= 0x01;
            }
            let ok = UnverifiedMessage::decode(&b).map(|u| u.verify(&key().public()).is_ok());
            assert_ne!(ok, Ok(true), "flipping byte {i} went unnoticed");
        }
    }

    #[test]
    fn wrong_key_is_refused() {
        let other = DeviceKey::from_seed(&[2u8; 32]);
        let u = UnverifiedMessage::decode(sample().as_bytes());
        assert_eq!(u.map(|u| u.verify(&other.public()).is_err()), Ok(true));
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = sample().into_bytes();
        for n in 0..bytes.len() {
            assert!(UnverifiedMessage::decode(bytes.get(..n).unwrap_or_default()).is_err());
        }
    }

    #[test]
    fn header_errors_are_named() {
        let mut b = sample().into_bytes();
        b[0] = b'X';
        assert_eq!(
            UnverifiedMessage::decode(&b).err(),
            Some(DecodeError::BadMagic)
        );
        let mut b = sample().into_bytes();
        b[4] = 200;
        assert_eq!(
            UnverifiedMessage::decode(&b).err(),
            Some(DecodeError::UnknownKind(200))
        );
        let mut b = sample().into_bytes();
        b[5] = 1;
        assert_eq!(
            UnverifiedMessage::decode(&b).err(),
            Some(DecodeError::BadFlags(1))
        );
        let mut b = sample().into_bytes();
        b.push(0);
        assert_eq!(
            UnverifiedMessage::decode(&b).err(),
            Some(DecodeError::LengthMismatch)
        );
        let big = vec![0u8; MAX_MESSAGE_BYTES + 1];
        assert!(matches!(
            UnverifiedMessage::decode(&big),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn pseudo_random_inputs_never_panic() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let base = sample().into_bytes();
        for round in 0..5000 {
            let mut b = base.clone();
            for _ in 0..(round % 7 + 1) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = (x as usize) % b.len();
                if let Some(v) = b.get_mut(i) {
                    *v = (x >> 32) as u8;
                }
            }
            let _ = UnverifiedMessage::decode(&b).map(|u| u.verify(&key().public()));
        }
    }
}
