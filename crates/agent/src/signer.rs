//! Signing of uplink messages, shared by the link (for `hello`) and the agents.
//!
//! Durable records are numbered by the outbox; live messages by the transport counter
//! here. Keeping the key and the counter in one place means no code path can send a
//! live message with a number from elsewhere.

use crate::transport_seq::TransportSeq;
use std::sync::Mutex;
use threshold_proto::{DeviceId, DeviceKey, Kind, SignedMessage};

#[derive(Debug)]
pub struct Signer {
    key: DeviceKey,
    id: DeviceId,
    transport: Mutex<TransportSeq>,
}

impl Signer {
    pub fn new(key: DeviceKey, transport: TransportSeq) -> Self {
        let id = key.device_id();
        Signer {
            key,
            id,
            transport: Mutex::new(transport),
        }
    }

    pub fn device_id(&self) -> DeviceId {
        self.id
    }

    /// Sign a live message (hello, heartbeat, state) with the next transport seq.
    pub fn live(&self, kind: Kind, time_ms: i64, body: Vec<u8>) -> Vec<u8> {
        let seq = match self.transport.lock() {
            Ok(mut t) => t.next_seq(),
            Err(poisoned) => poisoned.into_inner().next_seq(),
        };
        SignedMessage::sign(&self.key, kind, self.id, seq, time_ms, body).into_bytes()
    }

    /// Sign a durable record (event, frame) with a seq from the outbox.
    pub fn record(&self, kind: Kind, seq: u64, time_ms: i64, body: Vec<u8>) -> Vec<u8> {
        SignedMessage::sign(&self.key, kind, self.id, seq, time_ms, body).into_bytes()
    }
}
