//! The hub's live event bus: what owners' apps receive over the WebSocket, without
//! polling. Each event names the owner it belongs to, and the socket forwards only that
//! owner's events.

use serde::Serialize;

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

#[derive(Clone, Debug)]
pub struct EventBus(tokio::sync::broadcast::Sender<HubEvent>);

impl EventBus {
    pub fn new() -> Self {
        EventBus(tokio::sync::broadcast::channel(4096).0)
    }
    pub fn publish(&self, e: HubEvent) {
        // No subscribers is fine: nobody is watching.
        let _ = self.0.send(e);
    }
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<HubEvent> {
        self.0.subscribe()
    }
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}
