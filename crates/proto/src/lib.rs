//! The Threshold device protocol: what travels between a device agent and the hub.
//!
//! Every message is a [`SignedMessage`]: a fixed binary header, a body and an Ed25519
//! signature over the exact bytes that precede it. Signing the transmitted bytes (not a
//! re-encoding of them) means there is no canonicalisation step for a device maker to
//! get wrong. See `docs/protocol.md` for the normative description and test vectors.
#![forbid(unsafe_code)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![cfg_attr(test, allow(clippy::indexing_slicing, clippy::unwrap_used))]

pub mod body;
pub mod envelope;
pub mod identity;
pub mod kind;
pub mod renewal;
pub mod statement;
pub mod topic;

pub use envelope::{
    verify_many, DecodeError, SignedMessage, UnverifiedMessage, VerifyError, HEADER_LEN, MAGIC,
    SIGNATURE_LEN,
};
pub use identity::{DeviceId, DeviceKey, PublicKey};
pub use kind::{Kind, SeqSpace};

/// Largest message the hub accepts (a JPEG frame plus headers). Larger payloads are
/// rejected before any parsing work.
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
