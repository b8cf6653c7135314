//! Zigbee2MQTT driver: a real lock and door contact sensor reached through a
//! Zigbee2MQTT bridge on an MQTT broker (often the same Mosquitto).
//!
//! Topic tree (Zigbee2MQTT conventions, `base` defaults to `zigbee2mqtt`):
//! - `base/<lock>`: device state JSON, e.g. `{"lock_state":"locked","state":"LOCK","battery":87}`;
//! - `base/<lock>/set`: commands, `{"state":"LOCK"}` / `{"state":"UNLOCK"}`;
//! - `base/<lock>/get`: ask for a fresh state report;
//! - `base/<sensor>`: contact sensor JSON, `{"contact":true}` (true = closed);
//! - `base/<name>/availability`: retained `{"state":"online"|"offline"}` (older bridges
//!   publish the bare string).
//!
//! The broker here is the home's local one, not the hub's: this link is what a jammer
//! near the camera can no longer cut (the lock keeps its own local rules anyway).

use super::{BoltCommand, DriverEvent, DriverHandle, LockDriver};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, Incoming, MqttOptions};
use std::time::Duration;
use threshold_proto::body::{BoltState, DoorState};
use tokio::sync::mpsc;

#[derive(Clone, PartialEq, Eq)]
pub struct Z2mConfig {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    pub base_topic: String,
    /// Friendly name of the lock, if this agent drives one.
    pub lock: Option<String>,
    /// Friendly name of the door contact sensor, if any.
    pub contact: Option<String>,
}

impl std::fmt::Debug for Z2mConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Z2mConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("base_topic", &self.base_topic)
            .field("lock", &self.lock)
            .field("contact", &self.contact)
            .finish()
    }
}

impl Z2mConfig {
    pub fn new(host: &str, port: u16) -> Self {
        Z2mConfig {
            host: host.into(),
            port,
            username: None,
            password: None,
            base_topic: "zigbee2mqtt".into(),
            lock: None,
            contact: None,
        }
    }
}

/// Parse a lock's state report.
pub fn parse_lock(payload: &[u8]) -> Vec<DriverEvent> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(payload) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let bolt = match v.get("lock_state").and_then(|s| s.as_str()) {
        Some("locked") => Some(BoltState::Locked),
        Some("unlocked") => Some(BoltState::Unlocked),
        Some("not_fully_locked") => Some(BoltState::Jammed),
        _ => match v.get("state").and_then(|s| s.as_str()) {
            Some("LOCK") => Some(BoltState::Locked),
            Some("UNLOCK") => Some(BoltState::Unlocked),
            _ => None,
        },
    };
    if let Some(b) = bolt {
        out.push(DriverEvent::Bolt(b));
    }
    out.extend(battery(&v));
    if let Some(a) = v.get("action").and_then(|a| a.as_str()) {
        tracing::info!(action = a, "lock action reported");
    }
    out
}

/// Parse a contact sensor's report (`contact: true` means the magnet is near: closed).
pub fn parse_contact(payload: &[u8]) -> Vec<DriverEvent> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(payload) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(c) = v.get("contact").and_then(|c| c.as_bool()) {
        out.push(DriverEvent::Door(if c {
            DoorState::Closed
        } else {
            DoorState::Open
        }));
    }
    out.extend(battery(&v));
    out
}

fn battery(v: &serde_json::Value) -> Option<DriverEvent> {
    let b = v.get("battery")?.as_f64()?;
    (0.0..=100.0)
        .contains(&b)
        .then(|| DriverEvent::Battery(b.round() as u8))
}

/// Parse an availability message; `None` if unintelligible.
pub fn parse_availability(payload: &[u8]) -> Option<bool> {
    let text = std::str::from_utf8(payload).ok()?.trim();
    let state = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v) => v.get("state")?.as_str()?.to_string(),
        Err(_) => text.to_string(),
    };
    match state.as_str() {
        "online" => Some(true),
        "offline" => Some(false),
        _ => None,
    }
}

/// Options for a client of the home's local broker (where the hardware bridges
/// publish): a random client id under `prefix`, credentials if given, a short keep-alive.
pub fn local_broker_options(
    prefix: &str,
    host: &str,
    port: u16,
    username: Option<&str>,
    password: Option<&str>,
) -> MqttOptions {
    let mut id = [0u8; 6];
    let _ = getrandom::getrandom(&mut id);
    let mut opts = MqttOptions::new(format!("{prefix}-{}", hex::encode(id)), host, port);
    if let Some(u) = username {
        opts.set_credentials(u, password.unwrap_or_default());
    }
    opts.set_keep_alive(Duration::from_secs(5));
    opts.set_clean_start(true);
    // rumqttc's default in-flight limit (65 535) allocates ~13 MB at connect.
    opts.set_outgoing_inflight_upper_limit(64);
    opts
}

pub struct Z2mDriver {
    cfg: Z2mConfig,
}

impl Z2mDriver {
    pub fn new(cfg: Z2mConfig) -> Self {
        Z2mDriver { cfg }
    }
}

impl LockDriver for Z2mDriver {
    fn start(self: Box<Self>) -> DriverHandle {
        let (ev_tx, ev_rx) = mpsc::channel(256);
        let (cmd_tx, cmd_rx) = mpsc::channel(16);
        let task = tokio::spawn(run(self.cfg, ev_tx, cmd_rx));
        DriverHandle::new(ev_rx, cmd_tx, task)
    }
}

async fn run(
    cfg: Z2mConfig,
    ev_tx: mpsc::Sender<DriverEvent>,
    mut cmd_rx: mpsc::Receiver<BoltCommand>,
) {
    let opts = local_broker_options(
        "threshold-z2m",
        &cfg.host,
        cfg.port,
        cfg.username.as_deref(),
        cfg.password.as_deref(),
    );
    let (client, mut eventloop) = AsyncClient::new(opts, 64);
    let base = cfg.base_topic.trim_end_matches('/').to_string();
    let lock_t = cfg.lock.as_ref().map(|l| format!("{base}/{l}"));
    let contact_t = cfg.contact.as_ref().map(|c| format!("{base}/{c}"));
    let mut subs = Vec::new();
    for t in lock_t.iter().chain(contact_t.iter()) {
        subs.push(t.clone());
        subs.push(format!("{t}/availability"));
    }
    loop {
        tokio::select! {
            ev = eventloop.poll() => match ev {
                Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                    for s in &subs {
                        let _ = client.try_subscribe(s.clone(), QoS::AtLeastOnce);
                    }
                    if let Some(l) = &lock_t {
                        let _ = client.try_publish(format!("{l}/get"), QoS::AtLeastOnce, false, br#"{"state":""}"#.to_vec());
                    }
                }
                Ok(Event::Incoming(Incoming::Publish(p))) => {
                    let topic = String::from_utf8_lossy(&p.topic).to_string();
                    let events: Vec<DriverEvent> = if Some(&topic) == lock_t.as_ref() {
                        parse_lock(&p.payload)
                    } else if Some(&topic) == contact_t.as_ref() {
                        parse_contact(&p.payload)
                    } else if topic.ends_with("/availability") {
                        parse_availability(&p.payload).map(DriverEvent::Available).into_iter().collect()
                    } else {
                        Vec::new()
                    };
                    for e in events {
                        if ev_tx.send(e).await.is_err() {
                            return;
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "zigbee2mqtt broker connection failed; retrying");
                    if ev_tx.send(DriverEvent::Available(false)).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            },
            c = cmd_rx.recv() => match (c, &lock_t) {
                (Some(c), Some(l)) => {
                    let body = match c {
                        BoltCommand::Lock => br#"{"state":"LOCK"}"#.to_vec(),
                        BoltCommand::Unlock => br#"{"state":"UNLOCK"}"#.to_vec(),
                    };
                    if let Err(e) = client.try_publish(format!("{l}/set"), QoS::AtLeastOnce, false, body) {
                        tracing::warn!(error = %e, "could not queue zigbee2mqtt lock command");
                    }
                }
                (Some(_), None) => {}
                (None, _) => return,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{mosquitto_available, unique_root};

    #[test]
    fn payload_parsing() {
        assert_eq!(
            parse_lock(br#"{"battery":87,"linkquality":120,"lock_state":"locked","state":"LOCK"}"#),
            vec![
                DriverEvent::Bolt(BoltState::Locked),
                DriverEvent::Battery(87)
            ]
        );
        assert_eq!(
            parse_lock(br#"{"state":"UNLOCK"}"#),
            vec![DriverEvent::Bolt(BoltState::Unlocked)]
        );
        assert_eq!(
            parse_lock(br#"{"lock_state":"not_fully_locked"}"#),
            vec![DriverEvent::Bolt(BoltState::Jammed)]
        );
        assert_eq!(parse_lock(br#"{"action":"manual_unlock"}"#), vec![]);
        assert_eq!(parse_lock(b"not json"), vec![]);
        assert_eq!(
            parse_contact(br#"{"contact":false,"battery":300}"#),
            vec![DriverEvent::Door(DoorState::Open)]
        );
        assert_eq!(parse_availability(br#"{"state":"online"}"#), Some(true));
        assert_eq!(parse_availability(b"offline"), Some(false));
        assert_eq!(parse_availability(b"\xff"), None);
    }

    /// A peer that behaves like Zigbee2MQTT for one lock and one contact sensor;
    /// returned once it is subscribed, so that the driver's first state request (sent
    /// on connect) is not published to nobody.
    async fn fake_z2m(root: String) -> (AsyncClient, tokio::task::JoinHandle<()>) {
        let mut opts = MqttOptions::new(format!("{root}-peer"), "127.0.0.1", 1883);
        opts.set_keep_alive(Duration::from_secs(5));
        let (client, mut el) = AsyncClient::new(opts, 64);
        let c = client.clone();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let mut ready_tx = Some(ready_tx);
        let task = tokio::spawn(async move {
            let mut subacks = 0;
            let mut lock_state = "locked";
            let publish_state = |c: &AsyncClient, s: &str| {
                let (ls, st) = if s == "locked" {
                    ("locked", "LOCK")
                } else {
                    ("unlocked", "UNLOCK")
                };
                let body = format!(
                    r#"{{"battery":87,"linkquality":120,"lock_state":"{ls}","state":"{st}"}}"#
                );
                let _ = c.try_publish(
                    format!("{root}/frontdoor"),
                    QoS::AtLeastOnce,
                    false,
                    body.into_bytes(),
                );
            };
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                        let _ = c.try_subscribe(format!("{root}/frontdoor/set"), QoS::AtLeastOnce);
                        let _ = c.try_subscribe(format!("{root}/frontdoor/get"), QoS::AtLeastOnce);
                        let _ = c.try_publish(
                            format!("{root}/frontdoor/availability"),
                            QoS::AtLeastOnce,
                            true,
                            br#"{"state":"online"}"#.to_vec(),
                        );
                    }
                    Ok(Event::Incoming(Incoming::SubAck(_))) => {
                        subacks += 1;
                        if subacks == 2 {
                            if let Some(t) = ready_tx.take() {
                                let _ = t.send(());
                            }
                        }
                    }
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        let v: serde_json::Value =
                            serde_json::from_slice(&p.payload).unwrap_or_default();
                        if p.topic.ends_with(b"/set") {
                            lock_state = match v["state"].as_str() {
                                Some("LOCK") => "locked",
                                Some("UNLOCK") => "unlocked",
                                _ => lock_state,
                            };
                        }
                        publish_state(&c, lock_state);
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), ready_rx)
            .await
            .expect("the fake Zigbee2MQTT subscribed")
            .expect("the fake Zigbee2MQTT is running");
        (client, task)
    }

    async fn expect(rx: &mut mpsc::Receiver<DriverEvent>, want: DriverEvent) {
        let r = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match rx.recv().await {
                    Some(e) if e == want => return true,
                    Some(_) => continue,
                    None => return false,
                }
            }
        })
        .await;
        assert_eq!(r, Ok(true), "did not see {want:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn drives_a_zigbee2mqtt_lock_and_contact_over_mosquitto() {
        if !mosquitto_available("zigbee2mqtt driver") {
            return;
        }
        let root = unique_root("z2m");
        let (peer, peer_task) = fake_z2m(root.clone()).await;
        let mut cfg = Z2mConfig::new("127.0.0.1", 1883);
        cfg.base_topic = root.clone();
        cfg.lock = Some("frontdoor".into());
        cfg.contact = Some("doorsensor".into());
        let mut d = Box::new(Z2mDriver::new(cfg)).start();
        // The driver asks for the state on connect; the peer answers.
        expect(&mut d.events, DriverEvent::Bolt(BoltState::Locked)).await;
        d.commands.send(BoltCommand::Unlock).await.unwrap();
        expect(&mut d.events, DriverEvent::Bolt(BoltState::Unlocked)).await;
        peer.publish(
            format!("{root}/doorsensor"),
            QoS::AtLeastOnce,
            false,
            br#"{"battery":100,"contact":false,"linkquality":99}"#.to_vec(),
        )
        .await
        .unwrap();
        expect(&mut d.events, DriverEvent::Door(DoorState::Open)).await;
        d.commands.send(BoltCommand::Lock).await.unwrap();
        expect(&mut d.events, DriverEvent::Bolt(BoltState::Locked)).await;
        peer.publish(
            format!("{root}/frontdoor/availability"),
            QoS::AtLeastOnce,
            true,
            br#"{"state":"offline"}"#.to_vec(),
        )
        .await
        .unwrap();
        expect(&mut d.events, DriverEvent::Available(false)).await;
        // Clear the retained message.
        peer.publish(
            format!("{root}/frontdoor/availability"),
            QoS::AtLeastOnce,
            true,
            Vec::new(),
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        peer_task.abort();
    }
}
