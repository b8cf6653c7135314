//! Hub -> device messages: signed with the hub key and numbered by one strictly
//! increasing counter. The counter starts from the wall clock in microseconds, so it
//! keeps increasing across hub restarts without being stored.
//!
//! Messages go to the broker, or, in story tests that run the hub without one, to a
//! list the test reads ([`Downlink::capture`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use threshold_proto::{DeviceId, DeviceKey, Kind, SignedMessage};

#[derive(Debug, Default)]
pub struct Downlink {
    seq: AtomicU64,
    client: Mutex<Option<rumqttc::v5::AsyncClient>>,
    prefix: String,
    captured: Mutex<Option<Vec<(DeviceId, SignedMessage)>>>,
}

impl Downlink {
    pub fn new(prefix: &str, now_ms: i64) -> Self {
        Downlink {
            seq: AtomicU64::new((now_ms.max(0) as u64) * 1000),
            client: Mutex::new(None),
            prefix: prefix.to_owned(),
            captured: Mutex::new(None),
        }
    }

    /// From now on keep published messages for [`Downlink::take_captured`] instead of
    /// sending them (a hub run without a broker).
    pub fn capture(&self) {
        *self.captured.lock().unwrap_or_else(|p| p.into_inner()) = Some(Vec::new());
    }

    /// The messages kept since the last call, in the order they were published.
    pub fn take_captured(&self) -> Vec<(DeviceId, SignedMessage)> {
        self.captured
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    pub fn set_client(&self, c: rumqttc::v5::AsyncClient) {
        *self.client.lock().unwrap_or_else(|p| p.into_inner()) = Some(c);
    }

    pub fn next_seq(&self, now_ms: i64) -> u64 {
        let floor = (now_ms.max(0) as u64) * 1000;
        let mut cur = self.seq.load(Ordering::SeqCst);
        loop {
            let next = cur.saturating_add(1).max(floor);
            match self
                .seq
                .compare_exchange(cur, next, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return next,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Sign a downlink message for `device`.
    pub fn sign(
        &self,
        key: &DeviceKey,
        device: DeviceId,
        kind: Kind,
        body: &impl serde::Serialize,
        now_ms: i64,
    ) -> SignedMessage {
        let body = serde_json::to_vec(body).unwrap_or_default();
        SignedMessage::sign(key, kind, device, self.next_seq(now_ms), now_ms, body)
    }

    /// Publish (QoS 1). Returns false if the hub has no broker connection right now.
    pub async fn publish(&self, device: DeviceId, msg: SignedMessage) -> bool {
        if let Some(kept) = self
            .captured
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            kept.push((device, msg));
            return true;
        }
        let client = self
            .client
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some(client) = client else { return false };
        let topic = threshold_proto::topic::downlink(&self.prefix, &device);
        client
            .publish(
                topic,
                rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                false,
                msg.into_bytes(),
            )
            .await
            .is_ok()
    }
}
