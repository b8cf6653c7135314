//! The hub's live event bus: what owners' apps receive over the WebSocket, without
//! polling. Each event names the owner it belongs to, and the socket forwards only that
//! owner's events.
//!
//! Two feeds: [`EventBus::subscribe`] has every event, raised on this node or (in a
//! fleet) on another node; [`EventBus::subscribe_local`] only those raised here, for
//! what must happen once in the fleet (Web Push).

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize)]
pub struct HubEvent {
    #[serde(skip)]
    pub owner_id: String,
    /// Also delivered to this courier, when set.
    #[serde(skip)]
    pub courier_id: Option<String>,
    pub home_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub time_ms: i64,
    pub data: serde_json::Value,
}

/// A [`HubEvent`] as it travels between fleet nodes: everything, its addressees too.
#[derive(Debug, Serialize, Deserialize)]
pub struct WireEvent {
    pub owner_id: String,
    pub courier_id: Option<String>,
    pub home_id: String,
    pub event_type: String,
    pub time_ms: i64,
    pub data: serde_json::Value,
}

impl From<&HubEvent> for WireEvent {
    fn from(e: &HubEvent) -> Self {
        WireEvent {
            owner_id: e.owner_id.clone(),
            courier_id: e.courier_id.clone(),
            home_id: e.home_id.clone(),
            event_type: e.event_type.clone(),
            time_ms: e.time_ms,
            data: e.data.clone(),
        }
    }
}

impl From<WireEvent> for HubEvent {
    fn from(w: WireEvent) -> Self {
        HubEvent {
            owner_id: w.owner_id,
            courier_id: w.courier_id,
            home_id: w.home_id,
            event_type: w.event_type,
            time_ms: w.time_ms,
            data: w.data,
        }
    }
}

type Forward = tokio::sync::mpsc::UnboundedSender<HubEvent>;

#[derive(Clone, Debug)]
pub struct EventBus {
    all: tokio::sync::broadcast::Sender<HubEvent>,
    local: tokio::sync::broadcast::Sender<HubEvent>,
    /// In a fleet: where this node's events go to reach the other nodes.
    to_peers: std::sync::Arc<std::sync::OnceLock<Forward>>,
}

impl EventBus {
    pub fn new() -> Self {
        EventBus {
            all: tokio::sync::broadcast::channel(4096).0,
            local: tokio::sync::broadcast::channel(4096).0,
            to_peers: Default::default(),
        }
    }

    /// An event raised on this node.
    pub fn publish(&self, e: HubEvent) {
        if let Some(tx) = self.to_peers.get() {
            let _ = tx.send(e.clone());
        }
        // No subscribers is fine: nobody is watching.
        let _ = self.local.send(e.clone());
        let _ = self.all.send(e);
    }

    /// An event raised on another node of the fleet.
    pub fn publish_from_peer(&self, e: HubEvent) {
        let _ = self.all.send(e);
    }

    /// From now on, this node's events are also handed to `tx` (set once).
    pub fn forward_to_peers(&self, tx: Forward) {
        let _ = self.to_peers.set(tx);
    }

    /// Every event, wherever in the fleet it was raised.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<HubEvent> {
        self.all.subscribe()
    }

    /// Only the events raised on this node.
    pub fn subscribe_local(&self) -> tokio::sync::broadcast::Receiver<HubEvent> {
        self.local.subscribe()
    }
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}
