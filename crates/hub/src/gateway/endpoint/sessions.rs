//! The devices connected to the endpoint right now, one session each, and the hub's
//! way out to them ([`EndpointLink`]).
//!
//! A device has at most one session: a new CONNECT for the same device closes the
//! older one (protocol §2.1). Revoking a device closes its session at once.

use crate::gateway::downlink::{DeviceLink, Granting, Sending};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use threshold_proto::{DeviceId, SignedMessage};

/// Downlinks waiting for one device's socket. A device that does not read falls
/// behind this far, then loses downlinks (they are short-lived by design, §2.1)
/// instead of growing the hub's memory. The queue is flume's, which allocates as
/// messages come: tokio's allocates its first block of 32 slots with the channel,
/// ~1.3 KB for each of 10 000 connected cameras that hardly ever get a downlink
/// (`threshold bench liveness`, docs/performance.md).
pub const QUEUE: usize = 256;

/// What a session's task is told to do.
#[derive(Debug)]
pub enum Outgoing {
    /// Send this message on the device's downlink topic.
    Message(Bytes),
    /// Close the connection with this MQTT 5 DISCONNECT reason code.
    Close(Why),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// Another connection of the same device took over.
    TakenOver,
    /// The owner revoked the device.
    Revoked,
    /// The hub is stopping.
    ShuttingDown,
}

#[derive(Debug)]
struct Handle {
    serial: u64,
    tx: flume::Sender<Outgoing>,
}

#[derive(Debug, Default)]
pub struct Sessions {
    open: Mutex<HashMap<DeviceId, Handle>>,
    serial: AtomicU64,
}

impl Sessions {
    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<DeviceId, Handle>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Register a new session for `device`, closing the one it replaces. Returns the
    /// session's serial (for [`Sessions::closed`]) and its queue.
    pub fn open(&self, device: DeviceId) -> (u64, flume::Receiver<Outgoing>) {
        let serial = self.serial.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = flume::bounded(QUEUE);
        if let Some(old) = self.table().insert(device, Handle { serial, tx }) {
            let _ = old.tx.try_send(Outgoing::Close(Why::TakenOver));
        }
        (serial, rx)
    }

    /// The session `serial` of `device` ended; forget it unless a newer one replaced it.
    pub fn closed(&self, device: DeviceId, serial: u64) {
        let mut t = self.table();
        if t.get(&device).is_some_and(|h| h.serial == serial) {
            t.remove(&device);
        }
    }

    /// Queue wire bytes for `device`. False when it is not connected or not reading.
    pub fn deliver(&self, device: DeviceId, wire: Bytes) -> bool {
        let tx = match self.table().get(&device) {
            Some(h) => h.tx.clone(),
            None => return false,
        };
        tx.try_send(Outgoing::Message(wire)).is_ok()
    }

    /// Close `device`'s session, if it has one.
    pub fn close(&self, device: DeviceId, why: Why) -> bool {
        match self.table().remove(&device) {
            Some(h) => {
                // A full queue still closes: dropping the sender ends the session.
                let _ = h.tx.try_send(Outgoing::Close(why));
                true
            }
            None => false,
        }
    }

    /// Close every session (the hub is stopping).
    pub fn close_all(&self) {
        for (_, h) in self.table().drain() {
            let _ = h.tx.try_send(Outgoing::Close(Why::ShuttingDown));
        }
    }

    pub fn is_connected(&self, device: &DeviceId) -> bool {
        self.table().contains_key(device)
    }

    pub fn count(&self) -> usize {
        self.table().len()
    }
}

/// The running hub's way out to devices when it serves them itself.
#[derive(Debug)]
pub struct EndpointLink(pub std::sync::Arc<Sessions>);

impl DeviceLink for EndpointLink {
    fn send(&self, device: DeviceId, msg: SignedMessage) -> Sending<'_> {
        let ok = self.0.deliver(device, Bytes::from(msg.into_bytes()));
        Box::pin(async move { ok })
    }

    fn revoke(&self, device: DeviceId) -> Granting<'_> {
        self.0.close(device, Why::Revoked);
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: DeviceId = DeviceId([0xa; 16]);

    #[test]
    fn a_second_connection_takes_over_and_the_first_ending_does_not_remove_it() {
        let s = Sessions::default();
        let (first, rx1) = s.open(A);
        let (second, rx2) = s.open(A);
        assert!(matches!(
            rx1.try_recv(),
            Ok(Outgoing::Close(Why::TakenOver))
        ));
        s.closed(A, first);
        assert!(s.is_connected(&A), "the newer session stays");
        assert!(s.deliver(A, Bytes::from_static(b"m")));
        assert!(matches!(rx2.try_recv(), Ok(Outgoing::Message(_))));
        s.closed(A, second);
        assert!(!s.is_connected(&A));
        assert!(
            !s.deliver(A, Bytes::from_static(b"m")),
            "nobody to deliver to"
        );
    }

    #[tokio::test]
    async fn revoking_closes_the_session() {
        let s = std::sync::Arc::new(Sessions::default());
        let (_, rx) = s.open(A);
        assert_eq!(EndpointLink(s.clone()).revoke(A).await, Ok(()));
        assert!(matches!(rx.try_recv(), Ok(Outgoing::Close(Why::Revoked))));
        assert!(!s.is_connected(&A));
        assert!(!s.close(A, Why::Revoked), "nothing left to close");
    }

    #[test]
    fn a_device_that_does_not_read_loses_downlinks_not_memory() {
        let s = Sessions::default();
        let (_, _rx) = s.open(A);
        for _ in 0..QUEUE {
            assert!(s.deliver(A, Bytes::from_static(b"m")));
        }
        assert!(!s.deliver(A, Bytes::from_static(b"m")));
    }

    #[test]
    fn closing_a_full_queue_still_ends_the_session_once_drained() {
        let s = Sessions::default();
        let (_, rx) = s.open(A);
        for _ in 0..QUEUE {
            assert!(s.deliver(A, Bytes::from_static(b"m")));
        }
        assert!(s.close(A, Why::Revoked));
        for _ in 0..QUEUE {
            assert!(matches!(rx.try_recv(), Ok(Outgoing::Message(_))));
        }
        assert!(
            matches!(rx.try_recv(), Err(flume::TryRecvError::Disconnected)),
            "the sender went with the session: the task ends"
        );
    }
}
