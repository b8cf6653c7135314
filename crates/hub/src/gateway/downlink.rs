//! Hub -> device messages: signed with the hub key and numbered by one strictly
//! increasing counter. The counter starts from the wall clock in microseconds, so it
//! keeps increasing across hub restarts without being stored. In a fleet, where any
//! node may command any lock, the numbers come from one counter per device in the
//! database instead (`Store::next_downlink_seq`), still at least the wall clock.
//!
//! A device refuses a number not above the last it accepted, so a message must be
//! handed over in the order it was numbered: numbering and hand-over happen under one
//! lock per device (sharded), or two concurrent messages to one lock (a record's ack
//! and the owner's lock command) could swap places and the lock would refuse the
//! earlier one as a replay (seen under load in the fleet tests).
//!
//! Where a signed message goes is a port, [`DeviceLink`]: the device's connection to
//! the hub's endpoint (`gateway::endpoint::sessions::EndpointLink`), an external
//! broker (`gateway::mqtt::MqttLink`), or a list a story test reads ([`Captured`]),
//! for a hub run without a transport.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use threshold_proto::{DeviceId, DeviceKey, Kind, SignedMessage};

pub type Sending<'a> = Pin<Box<dyn Future<Output = bool> + Send + 'a>>;

/// A change of a device's rights on the transport; the error says why it failed.
pub type Granting<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// The way out to devices.
pub trait DeviceLink: Send + Sync + std::fmt::Debug {
    /// Hand `msg` over for `device`; false if it cannot go now (no broker
    /// connection, or the device is not connected to the hub's endpoint).
    fn send(&self, device: DeviceId, msg: SignedMessage) -> Sending<'_>;

    /// Let a newly enrolled `device` connect with `password` and use its own topics.
    /// The hub's own endpoint needs nothing (it reads the registry); an external
    /// broker may need the device provisioned (`gateway::dynsec`).
    fn grant<'a>(&'a self, _device: DeviceId, _password: &'a str) -> Granting<'a> {
        Box::pin(async { Ok(()) })
    }

    /// Let `device` connect with its renewed `password` from now on, the old one no
    /// more (a credential renewal, docs/protocol.md §8.6). The hub's own endpoint
    /// needs nothing (it reads the registry); an external broker may need the device's
    /// client provisioned or its password set (`gateway::dynsec`).
    fn renew<'a>(&'a self, _device: DeviceId, _password: &'a str) -> Granting<'a> {
        Box::pin(async { Ok(()) })
    }

    /// Take a revoked `device`'s rights away and cut its connection at once, where
    /// the link can (the hub's endpoint, or a provisioned external broker).
    fn revoke(&self, _device: DeviceId) -> Granting<'_> {
        Box::pin(async { Ok(()) })
    }
}

/// Locks held from numbering a device's message until it is handed to the link.
#[derive(Debug)]
struct SendOrder(Box<[tokio::sync::Mutex<()>]>);

impl Default for SendOrder {
    fn default() -> Self {
        SendOrder((0..64).map(|_| tokio::sync::Mutex::new(())).collect())
    }
}

impl SendOrder {
    fn of(&self, device: &DeviceId) -> &tokio::sync::Mutex<()> {
        let i = usize::from(device.0[0]) % self.0.len();
        &self.0[i]
    }
}

#[derive(Debug, Default)]
pub struct Downlink {
    seq: AtomicU64,
    order: SendOrder,
    /// In a fleet: the database, whose per-device counters number the messages.
    shared: std::sync::OnceLock<threshold_store::Store>,
    /// `None` until the hub has a way out (its broker connection is set up).
    link: Mutex<Option<Arc<dyn DeviceLink>>>,
}

impl Downlink {
    pub fn new(now_ms: i64) -> Self {
        Downlink {
            seq: AtomicU64::new((now_ms.max(0) as u64) * 1000),
            order: SendOrder::default(),
            shared: std::sync::OnceLock::new(),
            link: Mutex::new(None),
        }
    }

    /// From now on, messages go out through `link`.
    pub fn connect(&self, link: Arc<dyn DeviceLink>) {
        *self.link.lock().unwrap_or_else(|p| p.into_inner()) = Some(link);
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

    /// From now on, number messages with the database's per-device counters (fleet).
    pub fn share_numbers(&self, store: threshold_store::Store) {
        let _ = self.shared.set(store);
    }

    /// The number for the next message to `device`; `None` if the shared counter
    /// cannot be read (the message is not sent: a guessed number could be refused by
    /// the device, or make it refuse the next real one).
    async fn number(&self, device: DeviceId, now_ms: i64) -> Option<u64> {
        match self.shared.get() {
            None => Some(self.next_seq(now_ms)),
            Some(store) => {
                let floor = now_ms.max(0).saturating_mul(1000);
                match store.next_downlink_seq(&device.to_hex(), floor).await {
                    Ok(n) => u64::try_from(n).ok(),
                    Err(e) => {
                        tracing::error!(device = %device, error = %e, "no downlink number: message not sent");
                        None
                    }
                }
            }
        }
    }

    /// Sign a downlink message for `device`; `None` if it cannot be numbered. Not
    /// ordered with other messages: the hub sends with [`Downlink::send`] (tests sign
    /// to forge and replay).
    pub async fn sign(
        &self,
        key: &DeviceKey,
        device: DeviceId,
        kind: Kind,
        body: &impl serde::Serialize,
        now_ms: i64,
    ) -> Option<SignedMessage> {
        let body = serde_json::to_vec(body).unwrap_or_default();
        let seq = self.number(device, now_ms).await?;
        Some(SignedMessage::sign(key, kind, device, seq, now_ms, body))
    }

    /// Sign and send; false if it could not be numbered or sent now. Messages to one
    /// device are handed over in the order they were numbered.
    pub async fn send(
        &self,
        key: &DeviceKey,
        device: DeviceId,
        kind: Kind,
        body: &impl serde::Serialize,
        now_ms: i64,
    ) -> bool {
        let _in_order = self.order.of(&device).lock().await;
        match self.sign(key, device, kind, body, now_ms).await {
            Some(m) => self.publish(device, m).await,
            None => false,
        }
    }

    fn current(&self) -> Option<Arc<dyn DeviceLink>> {
        self.link.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// See [`DeviceLink::grant`]; without a link there is nothing to provision.
    pub async fn grant(&self, device: DeviceId, password: &str) -> Result<(), String> {
        match self.current() {
            Some(link) => link.grant(device, password).await,
            None => Ok(()),
        }
    }

    /// See [`DeviceLink::renew`]; without a link there is nothing to provision.
    pub async fn renew(&self, device: DeviceId, password: &str) -> Result<(), String> {
        match self.current() {
            Some(link) => link.renew(device, password).await,
            None => Ok(()),
        }
    }

    /// See [`DeviceLink::revoke`].
    pub async fn revoke(&self, device: DeviceId) -> Result<(), String> {
        match self.current() {
            Some(link) => link.revoke(device).await,
            None => Ok(()),
        }
    }

    /// Send through the link. Returns false if there is no way out right now.
    pub async fn publish(&self, device: DeviceId, msg: SignedMessage) -> bool {
        match self.current() {
            Some(link) => link.send(device, msg).await,
            None => false,
        }
    }
}

/// A link that keeps every message, in order, for a test to read.
#[derive(Debug, Default)]
pub struct Captured(Mutex<Vec<(DeviceId, SignedMessage)>>);

impl Captured {
    /// The messages kept since the last call, in the order they were sent.
    pub fn take(&self) -> Vec<(DeviceId, SignedMessage)> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl DeviceLink for Captured {
    fn send(&self, device: DeviceId, msg: SignedMessage) -> Sending<'_> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((device, msg));
        Box::pin(async { true })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn messages_are_numbered_upward_and_go_out_only_through_a_link() {
        let d = Downlink::new(1_000);
        let key = DeviceKey::generate().unwrap();
        let dev = DeviceId([1; 16]);
        let a = d
            .sign(&key, dev, Kind::Ack, &serde_json::json!({}), 1_000)
            .await
            .unwrap();
        assert!(!d.publish(dev, a.clone()).await, "no link yet");
        let kept = Arc::new(Captured::default());
        d.connect(kept.clone());
        // The clock going back does not make the counter go back.
        let b = d
            .sign(&key, dev, Kind::Ack, &serde_json::json!({}), 500)
            .await
            .unwrap();
        assert!(b.seq > a.seq);
        assert!(d.publish(dev, b.clone()).await);
        assert_eq!(kept.take(), vec![(dev, b)]);
        assert!(kept.take().is_empty());
    }

    /// A link that takes its time (yields a few times) before the message is out.
    #[derive(Debug, Default)]
    struct Slow(Captured);

    impl DeviceLink for Slow {
        fn send(&self, device: DeviceId, msg: SignedMessage) -> Sending<'_> {
            Box::pin(async move {
                for _ in 0..(msg.seq % 5) {
                    tokio::task::yield_now().await;
                }
                self.0.send(device, msg).await
            })
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_messages_to_one_device_leave_in_the_order_they_were_numbered() {
        let d = Arc::new(Downlink::new(1_000));
        let link = Arc::new(Slow::default());
        d.connect(link.clone());
        let key = Arc::new(DeviceKey::generate().unwrap());
        let dev = DeviceId([7; 16]);
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let (d, key) = (d.clone(), key.clone());
                tokio::spawn(async move {
                    d.send(&key, dev, Kind::Ack, &serde_json::json!({}), 1_000)
                        .await
                })
            })
            .collect();
        for t in tasks {
            assert!(t.await.unwrap());
        }
        let seqs: Vec<u64> = link.0.take().into_iter().map(|(_, m)| m.seq).collect();
        assert_eq!(seqs.len(), 200);
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "handed over out of order: the device would refuse the later-sent lower numbers"
        );
    }
}
