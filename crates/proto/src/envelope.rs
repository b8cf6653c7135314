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
        let (signed, sig) = self.signed_and_signature();
        let sig = Signature::from_slice(sig).map_err(|_| VerifyError::BadSignature)?;
        key.0
            .verify_strict(signed, &sig)
            .map_err(|_| VerifyError::BadSignature)?;
        Ok(self.checked())
    }

    fn signed_and_signature(&self) -> (&[u8], &[u8]) {
        self.raw.split_at(self.signed_len)
    }

    /// Only once its signature was checked (here or in [`verify_many`]).
    fn checked(self) -> SignedMessage {
        SignedMessage {
            kind: self.kind,
            device: self.device,
            seq: self.seq,
            time_ms: self.time_ms,
            body: self.body,
            raw: self.raw,
        }
    }
}

/// The most signatures [`verify_many`] checks in one equation.
pub const MAX_BATCH: usize = 64;

/// Check many messages, each with its own key, at less cost per signature than
/// checking them one by one (performance.md, History 2026-12-05 night): what [`UnverifiedMessage::verify`] answers for each, in
/// the order given. Up to [`MAX_BATCH`] signatures are checked together in one
/// multiscalar multiplication (ed25519-dalek's `verify_batch`, its coefficients drawn
/// from the batch itself). A signature made by Ed25519 signing (RFC 8032 §5.1.6) passes
/// the batch exactly when it passes the strict check; a batch that does not hold, a
/// lone message or a small-order key is checked one by one with the strict rule, so a
/// bad signature costs its batch a second look and never refuses a good message.
pub fn verify_many(
    items: Vec<(UnverifiedMessage, PublicKey)>,
) -> Vec<Result<SignedMessage, VerifyError>> {
    let mut out = Vec::with_capacity(items.len());
    let mut rest = items.into_iter();
    loop {
        let chunk: Vec<_> = rest.by_ref().take(MAX_BATCH).collect();
        if chunk.is_empty() {
            return out;
        }
        if batch_holds(&chunk) {
            out.extend(chunk.into_iter().map(|(m, _)| Ok(m.checked())));
        } else {
            out.extend(chunk.into_iter().map(|(m, k)| m.verify(&k)));
        }
    }
}

/// Whether every signature of `chunk` holds in one batch equation. Never for fewer
/// than two, nor with a small-order key or `R`, which the strict check refuses and the
/// batch equation alone would not (protocol.md §3.5); a non-canonical `S` fails the
/// batch's own parse.
fn batch_holds(chunk: &[(UnverifiedMessage, PublicKey)]) -> bool {
    if chunk.len() < 2 || chunk.iter().any(|(_, k)| k.0.is_weak()) {
        return false;
    }
    let mut signed = Vec::with_capacity(chunk.len());
    let mut sigs = Vec::with_capacity(chunk.len());
    let mut keys = Vec::with_capacity(chunk.len());
    for (m, k) in chunk {
        let (bytes, sig) = m.signed_and_signature();
        let Ok(sig) = Signature::from_slice(sig) else {
            return false;
        };
        if encodes_small_order(sig.r_bytes()) {
            return false;
        }
        signed.push(bytes);
        sigs.push(sig);
        keys.push(k.0);
    }
    ed25519_dalek::verify_batch(&signed, &sigs, &keys).is_ok()
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

/// Whether a point's encoding is one of a small-order point's: the eight torsion
/// points' `y`, whatever the sign bit, and `y` = p and p + 1 (0 and 1 not reduced),
/// the only other encodings that decode to one. A comparison of bytes, no decoding.
fn encodes_small_order(encoding: &[u8; 32]) -> bool {
    static SMALL: std::sync::OnceLock<Vec<[u8; 32]>> = std::sync::OnceLock::new();
    let small = SMALL.get_or_init(|| {
        let mut p = [0xffu8; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        let mut p_plus_one = p;
        p_plus_one[0] = 0xee;
        let mut all: Vec<[u8; 32]> = curve25519_dalek::constants::EIGHT_TORSION
            .iter()
            .map(|t| without_sign(t.compress().to_bytes()))
            .collect();
        all.extend([p, p_plus_one]);
        all
    });
    small.contains(&without_sign(*encoding))
}

fn without_sign(mut encoding: [u8; 32]) -> [u8; 32] {
    encoding[31] &= 0x7f;
    encoding
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

    fn signed_by(seed: u8, seq: u64) -> (SignedMessage, PublicKey) {
        let k = DeviceKey::from_seed(&[seed; 32]);
        let m = SignedMessage::sign(
            &k,
            Kind::Heartbeat,
            k.device_id(),
            seq,
            1_700_000_000_000,
            b"{}".to_vec(),
        );
        (m, k.public())
    }

    fn unverified(items: &[(SignedMessage, PublicKey)]) -> Vec<(UnverifiedMessage, PublicKey)> {
        items
            .iter()
            .filter_map(|(m, k)| {
                UnverifiedMessage::decode(m.as_bytes())
                    .ok()
                    .map(|u| (u, *k))
            })
            .collect()
    }

    /// `m` with its signature's last `n` bytes replaced.
    fn with_signature_tail(m: &SignedMessage, tail: &[u8]) -> SignedMessage {
        let mut raw = m.as_bytes().to_vec();
        let at = raw.len() - tail.len();
        raw.splice(at.., tail.iter().copied());
        SignedMessage { raw, ..m.clone() }
    }

    #[test]
    fn many_valid_messages_verify_in_order_across_batches() {
        let items: Vec<_> = (0..2 * MAX_BATCH as u64 + 3)
            .map(|i| signed_by((i % 7) as u8 + 1, i + 1))
            .collect();
        let verdicts = verify_many(unverified(&items));
        assert_eq!(verdicts.len(), items.len());
        for ((m, _), v) in items.iter().zip(verdicts) {
            assert_eq!(v.as_ref(), Ok(m));
        }
    }

    #[test]
    fn one_bad_signature_in_a_batch_refuses_only_that_message() {
        let mut items: Vec<_> = (0..10).map(|i| signed_by(i as u8 + 1, 100 + i)).collect();
        // A forgery (one bit of s), and a signature whose s is not reduced (not
        // canonical: the batch's own parse refuses it).
        items[3].0 = with_signature_tail(&items[3].0, &[items[3].0.signature()[63] ^ 0x01]);
        items[7].0 = with_signature_tail(&items[7].0, &[0xFF; 32]);
        let verdicts = verify_many(unverified(&items));
        for (i, ((m, _), v)) in items.iter().zip(verdicts).enumerate() {
            if i == 3 || i == 7 {
                assert_eq!(v, Err(VerifyError::BadSignature), "message {i}");
            } else {
                assert_eq!(v.as_ref(), Ok(m), "message {i}");
            }
        }
    }

    #[test]
    fn a_small_order_key_is_refused_in_a_batch_as_alone() {
        // The identity as the key, R = [S]B: the batch equation (S·B = R + k·A) holds
        // for any message and any S; the strict check refuses the key. R is an
        // ordinary point, so only the key's check can refuse it.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let weak = PublicKey(ed25519_dalek::VerifyingKey::from_bytes(&identity).unwrap());
        let (m, _) = signed_by(9, 1);
        let s = curve25519_dalek::scalar::Scalar::from(7u64);
        let r = curve25519_dalek::constants::ED25519_BASEPOINT_POINT * s;
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(r.compress().as_bytes());
        sig[32..].copy_from_slice(s.as_bytes());
        assert!(!encodes_small_order(r.compress().as_bytes()));
        let forged = with_signature_tail(&m, &sig);
        let mut items: Vec<_> = (0..4).map(|i| signed_by(i as u8 + 1, 7 + i)).collect();
        items.push((forged.clone(), weak));
        let verdicts = verify_many(unverified(&items));
        assert_eq!(verdicts.last(), Some(&Err(VerifyError::BadSignature)));
        assert!(verdicts.iter().take(4).all(Result::is_ok));
        let alone = UnverifiedMessage::decode(forged.as_bytes()).map(|u| u.verify(&weak));
        assert_eq!(alone, Ok(Err(VerifyError::BadSignature)));
    }

    #[test]
    fn a_small_order_r_is_refused_in_a_batch_as_alone() {
        // R the identity, S = k·a: the batch equation holds for the key's holder; the
        // strict check refuses R. Built with the key's scalar, as only its holder can.
        use curve25519_dalek::scalar::Scalar;
        use sha2::{Digest, Sha512};
        let seed = [5u8; 32];
        let (m, public) = signed_by(5, 3);
        let h = Sha512::digest(seed);
        let mut a = [0u8; 32];
        a.copy_from_slice(&h[..32]);
        a[0] &= 248;
        a[31] &= 127;
        a[31] |= 64;
        let a = Scalar::from_bytes_mod_order(a);
        let mut r = [0u8; 32];
        r[0] = 1;
        let signed = &m.as_bytes()[..m.as_bytes().len() - SIGNATURE_LEN];
        let k = Scalar::from_hash(
            Sha512::new()
                .chain_update(r)
                .chain_update(public.0.as_bytes())
                .chain_update(signed),
        );
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&r);
        sig[32..].copy_from_slice((k * a).as_bytes());
        let crafted = with_signature_tail(&m, &sig);
        let mut items: Vec<_> = (0..4).map(|i| signed_by(i as u8 + 1, 7 + i)).collect();
        items.push((crafted.clone(), public));
        let alone = UnverifiedMessage::decode(crafted.as_bytes()).map(|u| u.verify(&public));
        assert_eq!(alone, Ok(Err(VerifyError::BadSignature)));
        let verdicts = verify_many(unverified(&items));
        assert_eq!(verdicts.last(), Some(&Err(VerifyError::BadSignature)));
        assert!(verdicts.iter().take(4).all(Result::is_ok));
    }

    #[test]
    fn small_order_encodings_are_known_by_their_bytes() {
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(encodes_small_order(&identity));
        let mut signed_identity = identity;
        signed_identity[31] |= 0x80;
        assert!(encodes_small_order(&signed_identity));
        assert!(encodes_small_order(&[0u8; 32]));
        let ordinary = key().public();
        assert!(!encodes_small_order(ordinary.0.as_bytes()));
        let count = (0..8u8)
            .filter(|i| {
                let t = curve25519_dalek::constants::EIGHT_TORSION[*i as usize];
                encodes_small_order(&t.compress().to_bytes())
            })
            .count();
        assert_eq!(count, 8);
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
