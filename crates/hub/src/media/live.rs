//! The newest verified frame of each camera, and a broadcast of new ones for live
//! viewers.

use std::collections::HashMap;
use std::sync::Mutex;
use threshold_proto::DeviceId;

#[derive(Clone, Debug)]
pub struct LiveFrame {
    pub device: DeviceId,
    pub seq: u64,
    /// Device capture time.
    pub capture_ms: i64,
    /// Hub receive time.
    pub received_ms: i64,
    pub jpeg: bytes::Bytes,
}

#[derive(Debug)]
pub struct LiveFrames {
    latest: Mutex<HashMap<DeviceId, LiveFrame>>,
    tx: tokio::sync::broadcast::Sender<LiveFrame>,
    /// Viewers per camera, so the hub asks cameras for frames only while watched.
    viewers: Mutex<HashMap<DeviceId, usize>>,
}

impl Default for LiveFrames {
    fn default() -> Self {
        LiveFrames {
            latest: Mutex::default(),
            tx: tokio::sync::broadcast::channel(256).0,
            viewers: Mutex::default(),
        }
    }
}

impl LiveFrames {
    pub fn publish(&self, f: LiveFrame) {
        let _ = self.tx.send(f.clone());
        let mut l = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        let newer = l.get(&f.device).is_none_or(|old| f.seq > old.seq);
        if newer {
            l.insert(f.device, f);
        }
    }

    pub fn latest(&self, d: &DeviceId) -> Option<LiveFrame> {
        self.latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(d)
            .cloned()
    }

    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<LiveFrame> {
        self.tx.subscribe()
    }

    pub fn add_viewer(&self, d: DeviceId) {
        *self
            .viewers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(d)
            .or_default() += 1;
    }

    pub fn remove_viewer(&self, d: &DeviceId) {
        let mut v = self.viewers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = v.get_mut(d) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                v.remove(d);
            }
        }
    }

    pub fn watched(&self) -> Vec<DeviceId> {
        self.viewers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .copied()
            .collect()
    }
}
