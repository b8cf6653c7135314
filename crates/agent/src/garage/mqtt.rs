//! Garage-door openers reached over the home's local MQTT broker, in the three dialects
//! people have:
//!
//! | dialect | state in | commands to |
//! | --- | --- | --- |
//! | Zigbee2MQTT cover (`base/<name>`) | JSON: `garage_door_contact` (true = closed), else `position` (0 = closed), else `state` `OPEN`/`CLOSE`/`STOP`; `moving` `UP`/`DOWN`; availability `base/<name>/availability` | `base/<name>/set` `{"state":"OPEN"\|"CLOSE"}` |
//! | ratgdo MQTT firmware (`<prefix>`, e.g. `ratgdo/garage`) | `<prefix>/status/door` `open`/`closed`/`opening`/`closing`/`stopped`; `<prefix>/status/obstruction` `obstructed`/`clear`; `<prefix>/status/availability` `online`/`offline` | `<prefix>/command/door` `open`/`close` |
//! | ESPHome cover over MQTT (`<node>` topic prefix, cover object id) | `<node>/cover/<id>/state` `open`/`closed`/`opening`/`closing`/`unknown`; optional obstruction binary sensor `<node>/binary_sensor/<id>/state` `ON`/`OFF`; availability `<node>/status` | `<node>/cover/<id>/command` `OPEN`/`CLOSE` |
//!
//! A payload that fits none of these is [`OpenerEvent::Unintelligible`] with the
//! reason: never a guess, never a "closed" without the opener saying so.

use super::{OpenerCommand, OpenerDriver, OpenerEvent, OpenerHandle, Position};
use crate::lock::zigbee::{local_broker_options, parse_availability};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, Incoming};
use std::time::Duration;
use tokio::sync::mpsc;

/// Which firmware speaks for the opener, and its names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dialect {
    Zigbee2Mqtt {
        base: String,
        name: String,
    },
    Ratgdo {
        prefix: String,
    },
    Esphome {
        node: String,
        cover: String,
        obstruction: Option<String>,
    },
}

#[derive(Clone, PartialEq, Eq)]
pub struct OpenerMqttConfig {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    pub dialect: Dialect,
}

impl std::fmt::Debug for OpenerMqttConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenerMqttConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("dialect", &self.dialect)
            .finish()
    }
}

/// What a subscribed topic carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    State,
    Availability,
    Obstruction,
}

impl Dialect {
    fn subscriptions(&self) -> Vec<(String, Role)> {
        match self {
            Dialect::Zigbee2Mqtt { base, name } => {
                let t = format!("{}/{name}", base.trim_end_matches('/'));
                vec![
                    (format!("{t}/availability"), Role::Availability),
                    (t, Role::State),
                ]
            }
            Dialect::Ratgdo { prefix } => {
                let p = prefix.trim_end_matches('/');
                vec![
                    (format!("{p}/status/door"), Role::State),
                    (format!("{p}/status/obstruction"), Role::Obstruction),
                    (format!("{p}/status/availability"), Role::Availability),
                ]
            }
            Dialect::Esphome {
                node,
                cover,
                obstruction,
            } => {
                let n = node.trim_end_matches('/');
                let mut v = vec![
                    (format!("{n}/cover/{cover}/state"), Role::State),
                    (format!("{n}/status"), Role::Availability),
                ];
                if let Some(o) = obstruction {
                    v.push((format!("{n}/binary_sensor/{o}/state"), Role::Obstruction));
                }
                v
            }
        }
    }

    /// Where a command goes and what it says.
    fn command(&self, c: OpenerCommand) -> (String, Vec<u8>) {
        let open = c == OpenerCommand::Open;
        match self {
            Dialect::Zigbee2Mqtt { base, name } => (
                format!("{}/{name}/set", base.trim_end_matches('/')),
                if open {
                    br#"{"state":"OPEN"}"#.to_vec()
                } else {
                    br#"{"state":"CLOSE"}"#.to_vec()
                },
            ),
            Dialect::Ratgdo { prefix } => (
                format!("{}/command/door", prefix.trim_end_matches('/')),
                if open {
                    b"open".to_vec()
                } else {
                    b"close".to_vec()
                },
            ),
            Dialect::Esphome { node, cover, .. } => (
                format!("{}/cover/{cover}/command", node.trim_end_matches('/')),
                if open {
                    b"OPEN".to_vec()
                } else {
                    b"CLOSE".to_vec()
                },
            ),
        }
    }

    /// A payload on one of its topics, understood or refused with a reason.
    fn parse(&self, role: Role, payload: &[u8]) -> Result<Vec<OpenerEvent>, String> {
        match (self, role) {
            (_, Role::Availability) => parse_availability(payload)
                .map(|a| vec![OpenerEvent::Available(a)])
                .ok_or_else(|| {
                    format!(
                        "availability is neither online nor offline: {}",
                        shown(payload)
                    )
                }),
            (Dialect::Zigbee2Mqtt { .. }, Role::State) => parse_z2m_cover(payload),
            (Dialect::Ratgdo { .. }, Role::State) => parse_word_position(payload, false),
            (Dialect::Esphome { .. }, Role::State) => parse_word_position(payload, true),
            (Dialect::Ratgdo { .. }, Role::Obstruction) => match word(payload)?.as_str() {
                "obstructed" => Ok(vec![OpenerEvent::Obstructed(true)]),
                "clear" => Ok(vec![OpenerEvent::Obstructed(false)]),
                other => Err(format!(
                    "obstruction is neither obstructed nor clear: {other:?}"
                )),
            },
            (_, Role::Obstruction) => match word(payload)?.as_str() {
                "ON" | "on" => Ok(vec![OpenerEvent::Obstructed(true)]),
                "OFF" | "off" => Ok(vec![OpenerEvent::Obstructed(false)]),
                other => Err(format!(
                    "obstruction sensor is neither ON nor OFF: {other:?}"
                )),
            },
        }
    }
}

/// At most 60 characters of a payload, for a reason.
fn shown(payload: &[u8]) -> String {
    let text = String::from_utf8_lossy(payload);
    let t: String = text.chars().take(60).collect();
    format!("{t:?}")
}

/// A payload that must be one plain word.
fn word(payload: &[u8]) -> Result<String, String> {
    let text = std::str::from_utf8(payload).map_err(|_| "payload is not UTF-8".to_owned())?;
    let t = text.trim();
    if t.is_empty() || t.len() > 32 || !t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(format!("expected one word, got {}", shown(payload)));
    }
    Ok(t.to_owned())
}

/// ratgdo's and ESPHome's door state: a plain word. ESPHome may say `unknown`.
fn parse_word_position(payload: &[u8], esphome: bool) -> Result<Vec<OpenerEvent>, String> {
    let w = word(payload)?;
    let p = match w.to_ascii_lowercase().as_str() {
        "open" => Position::Open,
        "closed" => Position::Closed,
        "opening" => Position::Opening,
        "closing" => Position::Closing,
        "stopped" if !esphome => Position::Stopped,
        "unknown" if esphome => return Ok(vec![OpenerEvent::PositionUnknown]),
        _ => return Err(format!("unknown door state {w:?}")),
    };
    Ok(vec![OpenerEvent::Position(p)])
}

/// A Zigbee2MQTT cover's (or garage opener's) JSON report.
fn parse_z2m_cover(payload: &[u8]) -> Result<Vec<OpenerEvent>, String> {
    let v: serde_json::Value =
        serde_json::from_slice(payload).map_err(|_| format!("not JSON: {}", shown(payload)))?;
    let obj = v.as_object().ok_or("not a JSON object")?;
    let moving = match obj.get("moving").and_then(|m| m.as_str()) {
        Some("UP") => Some(Position::Opening),
        Some("DOWN") => Some(Position::Closing),
        _ => None,
    };
    let at_rest = if let Some(c) = obj.get("garage_door_contact") {
        let closed = c
            .as_bool()
            .ok_or("garage_door_contact is not true or false")?;
        Some(if closed {
            Position::Closed
        } else {
            Position::Open
        })
    } else if let Some(p) = obj.get("position") {
        let p = p
            .as_f64()
            .filter(|p| (0.0..=100.0).contains(p))
            .ok_or("position is not a number from 0 to 100")?;
        Some(if p == 0.0 {
            Position::Closed
        } else if p == 100.0 {
            Position::Open
        } else {
            Position::Stopped
        })
    } else if let Some(s) = obj.get("state") {
        match s.as_str() {
            Some("OPEN") => Some(Position::Open),
            Some("CLOSE") => Some(Position::Closed),
            Some("STOP") => Some(Position::Stopped),
            _ => return Err(format!("state is not OPEN, CLOSE or STOP: {s}")),
        }
    } else {
        None
    };
    match moving.or(at_rest) {
        Some(p) => Ok(vec![OpenerEvent::Position(p)]),
        None => {
            let mut keys: Vec<&str> = obj.keys().map(String::as_str).take(8).collect();
            keys.sort_unstable();
            Err(format!(
                "no door position in the report (fields: {})",
                keys.join(", ")
            ))
        }
    }
}

pub struct MqttOpener {
    cfg: OpenerMqttConfig,
}

impl MqttOpener {
    pub fn new(cfg: OpenerMqttConfig) -> Self {
        MqttOpener { cfg }
    }
}

impl OpenerDriver for MqttOpener {
    fn start(self: Box<Self>) -> OpenerHandle {
        let (ev_tx, ev_rx) = mpsc::channel(256);
        let (cmd_tx, cmd_rx) = mpsc::channel(16);
        let task = tokio::spawn(run(self.cfg, ev_tx, cmd_rx));
        OpenerHandle::new(ev_rx, cmd_tx, task)
    }
}

async fn run(
    cfg: OpenerMqttConfig,
    ev_tx: mpsc::Sender<OpenerEvent>,
    mut cmd_rx: mpsc::Receiver<OpenerCommand>,
) {
    let opts = local_broker_options(
        "threshold-garage",
        &cfg.host,
        cfg.port,
        cfg.username.as_deref(),
        cfg.password.as_deref(),
    );
    let (client, mut eventloop) = AsyncClient::new(opts, 64);
    let subs = cfg.dialect.subscriptions();
    loop {
        tokio::select! {
            ev = eventloop.poll() => match ev {
                Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                    for (t, _) in &subs {
                        let _ = client.try_subscribe(t.clone(), QoS::AtLeastOnce);
                    }
                    if let Dialect::Zigbee2Mqtt { base, name } = &cfg.dialect {
                        let _ = client.try_publish(format!("{}/{name}/get", base.trim_end_matches('/')), QoS::AtLeastOnce, false, br#"{"state":""}"#.to_vec());
                    }
                }
                Ok(Event::Incoming(Incoming::Publish(p))) => {
                    let topic = String::from_utf8_lossy(&p.topic).to_string();
                    let Some((_, role)) = subs.iter().find(|(t, _)| *t == topic) else {
                        continue;
                    };
                    let events = match cfg.dialect.parse(*role, &p.payload) {
                        Ok(events) => events,
                        Err(reason) => {
                            tracing::warn!(topic, reason, "garage opener message not understood");
                            vec![OpenerEvent::Unintelligible { topic, reason }]
                        }
                    };
                    for e in events {
                        if ev_tx.send(e).await.is_err() {
                            return;
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "garage opener broker connection failed; retrying");
                    if ev_tx.send(OpenerEvent::Available(false)).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            },
            c = cmd_rx.recv() => match c {
                Some(c) => {
                    let (topic, body) = cfg.dialect.command(c);
                    if let Err(e) = client.try_publish(topic, QoS::AtLeastOnce, false, body) {
                        tracing::warn!(error = %e, "could not queue the garage opener command");
                    }
                }
                None => return,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{mosquitto_available, unique_root};

    fn z2m() -> Dialect {
        Dialect::Zigbee2Mqtt {
            base: "z2m".into(),
            name: "garage".into(),
        }
    }
    fn ratgdo() -> Dialect {
        Dialect::Ratgdo {
            prefix: "ratgdo/garage".into(),
        }
    }
    fn esphome() -> Dialect {
        Dialect::Esphome {
            node: "gdo".into(),
            cover: "garage_door".into(),
            obstruction: Some("obstruction".into()),
        }
    }
    fn pos(p: Position) -> Result<Vec<OpenerEvent>, String> {
        Ok(vec![OpenerEvent::Position(p)])
    }

    #[test]
    fn zigbee2mqtt_cover_reports() {
        let d = z2m();
        let p = |s: &str| d.parse(Role::State, s.as_bytes());
        assert_eq!(
            p(r#"{"garage_door_contact":true,"trigger":false,"linkquality":80}"#),
            pos(Position::Closed)
        );
        assert_eq!(p(r#"{"garage_door_contact":false}"#), pos(Position::Open));
        assert_eq!(
            p(r#"{"position":0,"state":"CLOSE"}"#),
            pos(Position::Closed)
        );
        assert_eq!(p(r#"{"position":100}"#), pos(Position::Open));
        assert_eq!(p(r#"{"position":40}"#), pos(Position::Stopped));
        assert_eq!(
            p(r#"{"position":40,"moving":"DOWN"}"#),
            pos(Position::Closing)
        );
        assert_eq!(p(r#"{"state":"OPEN"}"#), pos(Position::Open));
        // Refused with a reason, never guessed.
        assert_eq!(
            p(r#"{"linkquality":80,"battery":90}"#),
            Err("no door position in the report (fields: battery, linkquality)".into())
        );
        assert!(p(r#"{"position":"closed"}"#)
            .unwrap_err()
            .contains("position"));
        assert!(p(r#"{"garage_door_contact":"yes"}"#).is_err());
        assert!(p(r#"{"state":"HALF"}"#)
            .unwrap_err()
            .contains("OPEN, CLOSE or STOP"));
        assert!(p("[1,2]").is_err());
        assert!(p("\u{0}\u{1}").unwrap_err().starts_with("not JSON"));
        assert_eq!(
            d.command(OpenerCommand::Close),
            ("z2m/garage/set".into(), br#"{"state":"CLOSE"}"#.to_vec())
        );
    }

    #[test]
    fn ratgdo_reports() {
        let d = ratgdo();
        for (w, p) in [
            ("open", Position::Open),
            ("closed", Position::Closed),
            ("opening", Position::Opening),
            ("closing", Position::Closing),
            ("stopped", Position::Stopped),
        ] {
            assert_eq!(d.parse(Role::State, w.as_bytes()), pos(p));
        }
        assert_eq!(
            d.parse(Role::Obstruction, b"obstructed"),
            Ok(vec![OpenerEvent::Obstructed(true)])
        );
        assert_eq!(
            d.parse(Role::Obstruction, b"clear"),
            Ok(vec![OpenerEvent::Obstructed(false)])
        );
        assert_eq!(
            d.parse(Role::Availability, b"offline"),
            Ok(vec![OpenerEvent::Available(false)])
        );
        // Unexpected fields or values: a reason.
        assert!(d
            .parse(Role::State, br#"{"door":"closed","extra":1}"#)
            .unwrap_err()
            .starts_with("expected one word"));
        assert_eq!(
            d.parse(Role::State, b"ajar"),
            Err(r#"unknown door state "ajar""#.into())
        );
        assert!(d.parse(Role::Obstruction, b"maybe").is_err());
        assert!(d.parse(Role::Availability, b"sleepy").is_err());
        assert_eq!(
            d.command(OpenerCommand::Open),
            ("ratgdo/garage/command/door".into(), b"open".to_vec())
        );
        assert_eq!(
            d.subscriptions()
                .iter()
                .map(|(t, _)| t.as_str())
                .collect::<Vec<_>>(),
            [
                "ratgdo/garage/status/door",
                "ratgdo/garage/status/obstruction",
                "ratgdo/garage/status/availability"
            ]
        );
    }

    #[test]
    fn esphome_cover_reports() {
        let d = esphome();
        assert_eq!(d.parse(Role::State, b"closed"), pos(Position::Closed));
        assert_eq!(d.parse(Role::State, b"opening"), pos(Position::Opening));
        assert_eq!(
            d.parse(Role::State, b"unknown"),
            Ok(vec![OpenerEvent::PositionUnknown])
        );
        assert!(
            d.parse(Role::State, b"stopped").is_err(),
            "not an ESPHome state"
        );
        assert_eq!(
            d.parse(Role::Obstruction, b"ON"),
            Ok(vec![OpenerEvent::Obstructed(true)])
        );
        assert_eq!(
            d.command(OpenerCommand::Close),
            ("gdo/cover/garage_door/command".into(), b"CLOSE".to_vec())
        );
    }

    async fn next(h: &mut OpenerHandle) -> OpenerEvent {
        tokio::time::timeout(Duration::from_secs(5), h.events.recv())
            .await
            .expect("an event in time")
            .expect("driver running")
    }

    /// The driver against a peer that plays ratgdo on the machine's Mosquitto: it
    /// answers commands by publishing the door's movement, as the firmware does.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn drives_a_ratgdo_opener_over_mosquitto() {
        if !mosquitto_available("garage opener driver") {
            return;
        }
        let root = unique_root("ratgdo");
        let prefix = format!("{root}/garage");
        let peer_opts = local_broker_options("ratgdo-peer", "127.0.0.1", 1883, None, None);
        let (peer, mut peer_loop) = AsyncClient::new(peer_opts, 64);
        peer.subscribe(format!("{prefix}/command/door"), QoS::AtLeastOnce)
            .await
            .unwrap();
        let p2 = prefix.clone();
        let pc = peer.clone();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let mut ready_tx = Some(ready_tx);
        let peer_task = tokio::spawn(async move {
            loop {
                match peer_loop.poll().await {
                    Ok(Event::Incoming(Incoming::SubAck(_))) => {
                        if let Some(t) = ready_tx.take() {
                            let _ = t.send(());
                        }
                    }
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        let (moving, rest) = if &p.payload[..] == b"open" {
                            ("opening", "open")
                        } else {
                            ("closing", "closed")
                        };
                        for w in [moving, rest] {
                            let _ = pc
                                .publish(
                                    format!("{p2}/status/door"),
                                    QoS::AtLeastOnce,
                                    false,
                                    w.as_bytes().to_vec(),
                                )
                                .await;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), ready_rx)
            .await
            .unwrap()
            .unwrap();
        let cfg = OpenerMqttConfig {
            host: "127.0.0.1".into(),
            port: 1883,
            username: None,
            password: None,
            dialect: Dialect::Ratgdo {
                prefix: prefix.clone(),
            },
        };
        let mut h = Box::new(MqttOpener::new(cfg)).start();
        // Retained state as the firmware leaves it; the driver sees it on subscribing.
        for (t, w) in [
            ("availability", "online"),
            ("door", "closed"),
            ("obstruction", "clear"),
        ] {
            peer.publish(
                format!("{prefix}/status/{t}"),
                QoS::AtLeastOnce,
                true,
                w.as_bytes().to_vec(),
            )
            .await
            .unwrap();
        }
        let mut seen = Vec::new();
        while seen.len() < 3 {
            seen.push(next(&mut h).await);
        }
        assert!(
            seen.contains(&OpenerEvent::Position(Position::Closed)),
            "{seen:?}"
        );
        assert!(seen.contains(&OpenerEvent::Available(true)), "{seen:?}");
        h.commands.send(OpenerCommand::Open).await.unwrap();
        assert_eq!(next(&mut h).await, OpenerEvent::Position(Position::Opening));
        assert_eq!(next(&mut h).await, OpenerEvent::Position(Position::Open));
        // A message with unexpected content is refused with its reason.
        peer.publish(
            format!("{prefix}/status/door"),
            QoS::AtLeastOnce,
            false,
            br#"{"state":"open"}"#.to_vec(),
        )
        .await
        .unwrap();
        match next(&mut h).await {
            OpenerEvent::Unintelligible { topic, reason } => {
                assert!(topic.ends_with("/status/door"));
                assert!(reason.starts_with("expected one word"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        // Clear the retained messages.
        for t in ["availability", "door", "obstruction"] {
            peer.publish(
                format!("{prefix}/status/{t}"),
                QoS::AtLeastOnce,
                true,
                Vec::new(),
            )
            .await
            .unwrap();
        }
        peer_task.abort();
    }
}
