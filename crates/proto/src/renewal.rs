//! A device's broker credential renewal (docs/protocol.md §8.6): the device proves it
//! holds its enrolled key by signing the hub's single-use challenge, and gets a new
//! broker password. This module is the proof: the exact bytes signed, and checking
//! them.

use crate::identity::{DeviceId, DeviceKey, PublicKey};

/// The domain of the signed text: no other signature a device makes (enrolment
/// proofs, protocol messages, which start with the bytes `THR1`) can be taken for one.
pub const DOMAIN: &str = "threshold-renew-v1";

/// A challenge nonce: 32 random bytes as 64 lowercase hex characters.
pub const NONCE_HEX_LEN: usize = 64;

/// Why a renewal proof was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RenewalError {
    #[error("the nonce is not 64 lowercase hex characters")]
    BadNonce,
    #[error("the signature is not 128 hex characters")]
    BadSignatureEncoding,
    #[error("the signature does not verify with the device's key")]
    BadSignature,
}

/// Whether `nonce` has the form the hub issues (64 lowercase hex characters).
pub fn valid_nonce(nonce: &str) -> bool {
    nonce.len() == NONCE_HEX_LEN
        && nonce
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The exact bytes a device signs: the ASCII text
/// `threshold-renew-v1:{device_id}:{nonce}`, no trailing newline.
pub fn message(device: &DeviceId, nonce: &str) -> Vec<u8> {
    format!("{DOMAIN}:{}:{nonce}", device.to_hex()).into_bytes()
}

/// The device's proof for `nonce`, as sent: 128 lowercase hex characters.
pub fn sign(key: &DeviceKey, nonce: &str) -> String {
    hex::encode(key.sign(&message(&key.device_id(), nonce)))
}

/// Check a proof for `nonce` with the device's enrolled `key` (strict Ed25519
/// verification, as for every signature in the protocol).
pub fn verify(key: &PublicKey, nonce: &str, signature_hex: &str) -> Result<(), RenewalError> {
    if !valid_nonce(nonce) {
        return Err(RenewalError::BadNonce);
    }
    let mut sig = [0u8; 64];
    hex::decode_to_slice(signature_hex, &mut sig)
        .map_err(|_| RenewalError::BadSignatureEncoding)?;
    let sig = ed25519_dalek::Signature::from_bytes(&sig);
    key.0
        .verify_strict(&message(&key.device_id(), nonce), &sig)
        .map_err(|_| RenewalError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONCE: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn the_signed_text_names_the_device_and_the_nonce() {
        let key = DeviceKey::from_seed(&[1; 32]);
        let text = String::from_utf8(message(&key.device_id(), NONCE)).unwrap();
        assert_eq!(
            text,
            format!("threshold-renew-v1:{}:{NONCE}", key.device_id().to_hex())
        );
    }

    #[test]
    fn a_proof_verifies_only_for_its_key_and_nonce() {
        let key = DeviceKey::from_seed(&[1; 32]);
        let other = DeviceKey::from_seed(&[2; 32]);
        let proof = sign(&key, NONCE);
        assert_eq!(proof.len(), 128);
        assert_eq!(verify(&key.public(), NONCE, &proof), Ok(()));
        let other_nonce = NONCE.replace("1f", "20");
        assert_eq!(
            verify(&key.public(), &other_nonce, &proof),
            Err(RenewalError::BadSignature)
        );
        assert_eq!(
            verify(&other.public(), NONCE, &proof),
            Err(RenewalError::BadSignature),
            "another device's key"
        );
        // Another device's proof for the same nonce is not this device's.
        assert_eq!(
            verify(&key.public(), NONCE, &sign(&other, NONCE)),
            Err(RenewalError::BadSignature)
        );
        // The enrolment proof's domain is not this one.
        let enrol = hex::encode(
            key.sign(format!("threshold-enrol-v1:{NONCE}:{}", key.public().to_hex()).as_bytes()),
        );
        assert_eq!(
            verify(&key.public(), NONCE, &enrol),
            Err(RenewalError::BadSignature)
        );
    }

    #[test]
    fn malformed_inputs_are_refused_before_any_verification() {
        let key = DeviceKey::from_seed(&[1; 32]);
        let proof = sign(&key, NONCE);
        for bad in [
            "",
            "abc",
            &NONCE.to_uppercase(),
            &format!("{NONCE}00"),
            &NONCE.replace('0', "g"),
        ] {
            assert_eq!(
                verify(&key.public(), bad, &proof),
                Err(RenewalError::BadNonce),
                "{bad}"
            );
        }
        for bad in ["", "zz", &proof[..126], &format!("{proof}00")] {
            assert_eq!(
                verify(&key.public(), NONCE, bad),
                Err(RenewalError::BadSignatureEncoding),
                "{bad}"
            );
        }
    }
}
