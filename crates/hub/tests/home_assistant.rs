//! Home Assistant MQTT discovery, checked as Home Assistant would see it: a client
//! subscribed to the discovery prefix and the hub's Home Assistant topics on a real
//! Mosquitto of the test's own. Every discovery config is checked against Home
//! Assistant's MQTT platform schemas (`support/ha_schema.rs`), every state against
//! the entity's config, and the states must follow the hub: a camera live then not
//! when it goes dark, a lock LOCKED only while a fresh signed report says so and
//! unknown (`None`) when it goes quiet (with no event at all: the clock alone), the
//! delivery sensor through a delivery, an alert as an event, availability online, then
//! offline by the last will (a crash) and by a clean stop.
//!
//! The first test runs the hub in simulated time (`support::sim`, its devices
//! simulated, its clock manual) with the real bridge on a real broker; the second a
//! real hub with the real lock and camera agents.

#[path = "support/ha_schema.rs"]
mod ha_schema;
mod support;

use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::house::{
    bolt_retracts, bolt_throws, door_closes, door_opens, garage_moves, garage_rests, GarageHome,
    House,
};
use support::mosquitto;
use support::sim::{lock_command_for, unlock_for, Sim};
use threshold_proto::body::{DoorMotion, DoorState};

/// What the Home Assistant side heard: each topic's last payload, and everything in
/// order.
#[derive(Default)]
struct Heard {
    subscribed: bool,
    last: HashMap<String, Vec<u8>>,
    log: Vec<(String, Vec<u8>, bool)>,
}

impl Heard {
    fn text(&self, topic: &str) -> Option<String> {
        self.last
            .get(topic)
            .map(|p| String::from_utf8_lossy(p).into_owned())
    }

    /// The discovery configs present (non-empty, retained) under `prefix`:
    /// (component, topic, config).
    fn configs(&self, prefix: &str) -> Vec<(String, String, Value)> {
        let mut v: Vec<(String, String, Value)> = self
            .last
            .iter()
            .filter(|(t, p)| t.starts_with(&format!("{prefix}/")) && !p.is_empty())
            .map(|(t, p)| {
                let component = ha_schema::discovery_component(prefix, t)
                    .unwrap_or_else(|e| panic!("{e}"))
                    .to_owned();
                let config: Value = serde_json::from_slice(p)
                    .unwrap_or_else(|e| panic!("{t}: config is not JSON: {e}"));
                (component, t.clone(), config)
            })
            .collect();
        v.sort_by(|a, b| a.1.cmp(&b.1));
        v
    }

    /// The messages on `topic` since position `from` of the log.
    fn since(&self, from: usize, topic: &str) -> Vec<Vec<u8>> {
        self.log[from.min(self.log.len())..]
            .iter()
            .filter(|(t, _, _)| t == topic)
            .map(|(_, p, _)| p.clone())
            .collect()
    }
}

/// A client subscribed as Home Assistant is: to the discovery prefix and to the
/// hub's topics.
struct Ha {
    client: rumqttc::AsyncClient,
    heard: Arc<Mutex<Heard>>,
    changed: tokio::sync::watch::Receiver<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Ha {
    async fn connect(port: u16, filters: &[&str]) -> Ha {
        use rumqttc::{Event, MqttOptions, Packet, QoS};
        let mut opts = MqttOptions::new(
            format!("ha-{}", threshold_store::new_id()),
            "127.0.0.1",
            port,
        );
        opts.set_max_packet_size(8 * 1024 * 1024, 64 * 1024);
        let (client, mut eventloop) = rumqttc::AsyncClient::new(opts, 100);
        for f in filters {
            client.subscribe(*f, QoS::AtLeastOnce).await.unwrap();
        }
        let heard = Arc::new(Mutex::new(Heard::default()));
        let (tx, changed) = tokio::sync::watch::channel(0u64);
        let (h, subs) = (heard.clone(), filters.len());
        let task = tokio::spawn(async move {
            let mut acked = 0;
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        acked += 1;
                        if acked == subs {
                            h.lock().unwrap().subscribed = true;
                            tx.send_modify(|n| *n += 1);
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        {
                            let mut g = h.lock().unwrap();
                            g.last.insert(p.topic.clone(), p.payload.to_vec());
                            g.log.push((p.topic.clone(), p.payload.to_vec(), p.retain));
                        }
                        tx.send_modify(|n| *n += 1);
                    }
                    Ok(_) => {}
                    Err(e) => panic!("the Home Assistant side lost the broker: {e}"),
                }
            }
        });
        let ha = Ha {
            client,
            heard,
            changed,
            task,
        };
        // Subscribed before anything is published.
        ha.until(10, "subscriptions acknowledged", |h| h.subscribed)
            .await;
        ha
    }

    /// Wait until `f` yields, woken by each message (no polling); fail after `secs`.
    async fn eventually<T>(
        &self,
        secs: u64,
        what: &str,
        mut f: impl FnMut(&Heard) -> Option<T>,
    ) -> T {
        let mut rx = self.changed.clone();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(v) = f(&self.heard.lock().unwrap()) {
                return v;
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                let g = self.heard.lock().unwrap();
                let mut topics: Vec<String> = g
                    .last
                    .iter()
                    .filter(|(t, _)| !t.contains("/config"))
                    .map(|(t, p)| format!("{t} = {}", String::from_utf8_lossy(p)))
                    .collect();
                topics.sort();
                panic!(
                    "timed out waiting for: {what}\nlast states:\n{}",
                    topics.join("\n")
                );
            }
        }
    }

    async fn until(&self, secs: u64, what: &str, mut f: impl FnMut(&Heard) -> bool) {
        self.eventually(secs, what, |h| f(h).then_some(())).await
    }

    /// Wait until `topic`'s last payload is `want`.
    async fn wait_for(&self, secs: u64, topic: &str, want: &str) {
        self.until(secs, &format!("{topic} = {want}"), |h| {
            h.text(topic).as_deref() == Some(want)
        })
        .await
    }

    fn log_len(&self) -> usize {
        self.heard.lock().unwrap().log.len()
    }

    fn text(&self, topic: &str) -> Option<String> {
        self.heard.lock().unwrap().text(topic)
    }

    async fn publish(&self, topic: &str, payload: &str) {
        self.client
            .publish(
                topic,
                rumqttc::QoS::AtLeastOnce,
                false,
                payload.as_bytes().to_vec(),
            )
            .await
            .unwrap();
    }
}

impl Drop for Ha {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const DISCOVERY: &str = "homeassistant";

/// Every config valid against Home Assistant's schema, with unique ids that differ,
/// the hub's availability, and a device; returns them by unique id.
fn check_configs(
    configs: &[(String, String, Value)],
    status: &str,
) -> HashMap<String, (String, Value)> {
    let mut by_id = HashMap::new();
    for (component, topic, c) in configs {
        if let Err(errors) = ha_schema::check(component, c) {
            panic!(
                "{topic} is not valid for Home Assistant:\n{}\n{c:#}",
                errors.join("\n")
            );
        }
        let id = c["unique_id"].as_str().expect("a unique id").to_owned();
        assert!(
            c["availability"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x["topic"] == status)),
            "{topic}: available only while the hub is: {c}"
        );
        assert_eq!(c["availability_mode"], "all", "{topic}");
        assert!(c["device"]["identifiers"][0].is_string(), "{topic}");
        assert_eq!(c["origin"]["name"], "Threshold", "{topic}");
        assert!(
            by_id
                .insert(id.clone(), (component.clone(), c.clone()))
                .is_none(),
            "unique id {id} used twice"
        );
    }
    by_id
}

/// The config of the entity of `component` whose state topic (or image topic) is
/// about `thing` (a door id, a device id, a home id).
fn entity<'a>(
    by_id: &'a HashMap<String, (String, Value)>,
    component: &str,
    thing: &str,
) -> &'a Value {
    let topic_key = if component == "image" {
        "image_topic"
    } else {
        "state_topic"
    };
    by_id
        .values()
        .find(|(c, v)| c == component && v[topic_key].as_str().is_some_and(|t| t.contains(thing)))
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no {component} entity for {thing}"))
}

/// The entity's last attributes (JSON), or null.
fn json_at(h: &Heard, config: &Value) -> Value {
    config["json_attributes_topic"]
        .as_str()
        .and_then(|t| h.text(t))
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null)
}

fn state_topic(config: &Value) -> String {
    config["state_topic"].as_str().unwrap().to_owned()
}

/// The state on `config`'s topic is `want`, and valid for that entity.
async fn wait_state(ha: &Ha, component: &str, config: &Value, want: &str) {
    ha_schema::check_state(component, config, want).unwrap();
    ha.wait_for(15, &state_topic(config), want).await;
}

#[test]
fn the_schema_checker_refuses_what_home_assistant_would_refuse_or_drop() {
    ha_schema::self_test();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_assistant_sees_what_the_hub_knows_and_unknown_when_it_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let Some(broker) = mosquitto::start_anonymous(dir.path()) else {
        return;
    };
    let url = format!("mqtt://127.0.0.1:{}", broker.port);
    let mut sim = Sim::with(|c| c.ha_mqtt_url = Some(url.clone())).await;
    let mut house = House::new(&sim).await;
    let ha = Ha::connect(broker.port, &["homeassistant/#", "threshold/#"]).await;
    let bridge = threshold_hub::homeassistant::spawn(&sim.state)
        .unwrap()
        .expect("configured");
    let status = bridge.status_topic().to_owned();
    assert_eq!(status, "threshold/hub/status");

    // Discovery: two locks, three cameras (live + picture), deliveries, alerts.
    let configs = ha
        .eventually(20, "10 discovery configs", |h| {
            let c = h.configs(DISCOVERY);
            (c.len() == 10).then_some(c)
        })
        .await;
    let by_id = check_configs(&configs, &status);
    let count = |component: &str| by_id.values().filter(|(c, _)| c == component).count();
    assert_eq!(
        (
            count("lock"),
            count("binary_sensor"),
            count("image"),
            count("sensor"),
            count("event")
        ),
        (2, 3, 3, 1, 1)
    );
    let home_ident = format!("threshold_home_{}", house.home);
    for (c, v) in by_id.values() {
        if c == "sensor" || c == "event" {
            assert_eq!(v["device"]["identifiers"][0], home_ident.as_str());
        } else {
            assert_eq!(v["device"]["via_device"], home_ident.as_str(), "{v}");
        }
    }
    let front_lock = entity(&by_id, "lock", &house.front.id).clone();
    let back_lock = entity(&by_id, "lock", &house.back.id).clone();
    let hall = entity(&by_id, "binary_sensor", &house.front.camera.hex()).clone();
    let back_cam = entity(&by_id, "binary_sensor", &house.back.camera.hex()).clone();
    let garden = entity(&by_id, "binary_sensor", &house.garden.hex()).clone();
    let garden_picture = entity(&by_id, "image", &house.garden.hex()).clone();
    let delivery = entity(&by_id, "sensor", &house.home).clone();
    let alerts = entity(&by_id, "event", &house.home).clone();
    assert_eq!(front_lock["device"]["name"], "Front door");
    assert_eq!(garden["device"]["name"], "Garden camera");
    assert_eq!(hall["device_class"], "running");

    // Online; nothing reported yet: locks unknown, cameras not live.
    ha.wait_for(10, &status, "online").await;
    let home_availability = format!("threshold/home/{}/availability", house.home);
    ha.wait_for(10, &home_availability, "online").await;
    wait_state(&ha, "lock", &front_lock, "None").await;
    wait_state(&ha, "binary_sensor", &hall, "OFF").await;
    wait_state(&ha, "sensor", &delivery, "none").await;

    // The devices report: locked, live.
    house.run(&mut sim, 1_500).await;
    for l in [&front_lock, &back_lock] {
        wait_state(&ha, "lock", l, "LOCKED").await;
    }
    for c in [&hall, &back_cam, &garden] {
        wait_state(&ha, "binary_sensor", c, "ON").await;
    }
    ha.until(10, "the lock's attributes say fresh", |h| {
        json_at(h, &front_lock)["fresh"] == true
    })
    .await;

    // The front lock goes quiet (jammed, unplugged): unknown, never a stale "locked";
    // the back lock, still reporting, stays locked.
    house.front.lock.dark = true;
    house.run(&mut sim, 1_500).await;
    wait_state(&ha, "lock", &front_lock, "None").await;
    assert_eq!(ha.text(&state_topic(&back_lock)).as_deref(), Some("LOCKED"));
    ha.until(
        10,
        "the lock's attributes say since when it is unknown",
        |h| json_at(h, &front_lock)["unknown_since_ms"].is_i64(),
    )
    .await;
    house.front.lock.dark = false;

    // The back camera goes dark: not live; the others stay live.
    house.back.camera.dark = true;
    house.run(&mut sim, 1_500).await;
    wait_state(&ha, "binary_sensor", &back_cam, "OFF").await;
    assert_eq!(ha.text(&state_topic(&hall)).as_deref(), Some("ON"));
    ha.until(10, "the camera's attributes give the verdict", |h| {
        ["stale", "offline"].contains(&json_at(h, &back_cam)["verdict"].as_str().unwrap_or(""))
    })
    .await;
    house.back.camera.dark = false;
    house.run(&mut sim, 1_500).await;
    for l in [&front_lock, &back_lock] {
        wait_state(&ha, "lock", l, "LOCKED").await;
    }
    wait_state(&ha, "binary_sensor", &back_cam, "ON").await;

    // Time alone: the hub's clock moves on with no message, no pass, no event. The
    // bridge's own periodic judgement turns every lock unknown and every camera off.
    sim.clock.advance(3_000);
    for l in [&front_lock, &back_lock] {
        wait_state(&ha, "lock", l, "None").await;
    }
    for c in [&hall, &back_cam, &garden] {
        wait_state(&ha, "binary_sensor", c, "OFF").await;
    }
    house.run(&mut sim, 1_500).await;
    wait_state(&ha, "lock", &front_lock, "LOCKED").await;
    wait_state(&ha, "binary_sensor", &hall, "ON").await;

    // Pictures: a streaming camera's frames reach Home Assistant, at most one per
    // ha_picture_interval_ms (2 s of hub time), and only while fresh.
    let picture_topic = garden_picture["image_topic"].as_str().unwrap().to_owned();
    let picture_availability = format!(
        "threshold/camera/{}/picture/availability",
        house.garden.hex()
    );
    assert!(garden_picture["availability"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["topic"] == picture_availability.as_str()));
    let from = ha.log_len();
    house.garden.streaming = true;
    house.run(&mut sim, 3_000).await;
    ha.wait_for(10, &picture_availability, "online").await;
    let pictures = ha
        .eventually(10, "a picture", |h| {
            let p = h.since(from, &picture_topic);
            (!p.is_empty()).then_some(p)
        })
        .await;
    assert!(
        pictures.len() <= 2,
        "3 s of frames every 250 ms, at most one per 2 s: {}",
        pictures.len()
    );
    assert_eq!(
        pictures[0],
        [0xFF, 0xD8, 0xFF, 0xD9],
        "the frame's JPEG bytes"
    );
    house.garden.dark = true;
    house.run(&mut sim, 1_500).await;
    ha.wait_for(10, &picture_availability, "offline").await;
    wait_state(&ha, "binary_sensor", &garden, "OFF").await;
    house.garden.dark = false;
    house.garden.streaming = false;
    house.run(&mut sim, 1_500).await;

    // A delivery, step by step.
    let id = house.delivery(&sim, None, "PARCEL-HA").await;
    wait_state(&ha, "sensor", &delivery, "scheduled").await;
    ha.until(10, "the delivery's attributes name it", |h| {
        json_at(h, &delivery)["delivery_id"] == id.as_str()
    })
    .await;
    let d = house.enter(&sim, &id, "PARCEL-HA").await;
    assert_eq!(d["allowed"], true, "{d}");
    wait_state(&ha, "sensor", &delivery, "inside").await;
    // The courier goes in; the door is still open when they say delivered.
    bolt_retracts(&sim, &mut house.front).await;
    door_opens(&sim, &mut house.front).await;
    house.run(&mut sim, 300).await;
    wait_state(&ha, "lock", &front_lock, "UNLOCKED").await;
    let (s, b) = sim
        .http(
            "POST",
            &format!("/api/v1/deliveries/{id}/delivered"),
            Some(&house.courier),
            None,
        )
        .await;
    assert_eq!(s, 200, "{b}");
    wait_state(&ha, "sensor", &delivery, "delivered").await;
    house.run(&mut sim, 600).await;
    assert_eq!(
        ha.text(&state_topic(&delivery)).as_deref(),
        Some("delivered")
    );
    door_closes(&sim, &mut house.front).await;
    bolt_throws(&sim, &mut house.front).await;
    house.run(&mut sim, 500).await;
    wait_state(&ha, "sensor", &delivery, "completed").await;
    wait_state(&ha, "lock", &front_lock, "LOCKED").await;

    // An alert: the back door opens with no session. One event, of its kind.
    let alert_topic = state_topic(&alerts);
    let from = ha.log_len();
    house.run(&mut sim, 2_500).await;
    door_opens(&sim, &mut house.back).await;
    house.run(&mut sim, 500).await;
    door_closes(&sim, &mut house.back).await;
    let events = ha
        .eventually(15, "an unauthorized_entry event", |h| {
            let e = h.since(from, &alert_topic);
            (!e.is_empty()).then_some(e)
        })
        .await;
    let event = String::from_utf8(events[0].clone()).unwrap();
    ha_schema::check_state("event", &alerts, &event).unwrap();
    let event: Value = serde_json::from_str(&event).unwrap();
    assert_eq!(event["event_type"], "unauthorized_entry", "{event}");
    assert_eq!(event["severity"], "critical", "{event}");
    assert!(
        !ha.heard.lock().unwrap().log[from..]
            .iter()
            .any(|(t, _, retain)| t == &alert_topic && *retain),
        "events are never retained (a replay would fire them again)"
    );

    // Commands: UNLOCK is refused and recorded, nothing reaches the lock; LOCK is
    // obeyed.
    house.run(&mut sim, 2_500).await;
    sim.downlinks();
    let command = front_lock["command_topic"].as_str().unwrap().to_owned();
    ha.publish(&command, "UNLOCK").await;
    support::until(10, "the refusal in the audit log", || async {
        sim.state
            .store
            .audit_page(0, 100_000)
            .await
            .unwrap()
            .iter()
            .any(|e| e.kind == "home_assistant.command_refused" && e.detail.contains("UNLOCK"))
    })
    .await;
    let sent = sim.downlinks();
    assert!(
        unlock_for(&sent, &house.front.lock.sim.id).is_none(),
        "{sent:?}"
    );
    assert!(
        !lock_command_for(&sent, &house.front.lock.sim.id),
        "{sent:?}"
    );
    house.run(&mut sim, 2_500).await;
    sim.downlinks();
    ha.publish(&command, "LOCK").await;
    let mut seen = Vec::new();
    support::until(10, "a lock command for the front lock", || {
        seen.extend(sim.downlinks());
        let found = lock_command_for(&seen, &house.front.lock.sim.id);
        async move { found }
    })
    .await;
    assert!(unlock_for(&seen, &house.front.lock.sim.id).is_none());

    // The hub cannot vouch (its device broker is gone): the home's entities turn
    // unavailable instead of showing what the hub last knew.
    sim.state.access.set_vouching(false, sim.now());
    ha.wait_for(10, &home_availability, "offline").await;
    sim.state.access.set_vouching(true, sim.now());
    ha.wait_for(10, &home_availability, "online").await;

    // A camera revoked: its entities are removed (empty retained configs).
    let garden_configs: Vec<String> = configs
        .iter()
        .filter(|(_, t, _)| t.contains(&house.garden.hex()))
        .map(|(_, t, _)| t.clone())
        .collect();
    assert_eq!(garden_configs.len(), 2);
    let (s, b) = sim
        .http(
            "DELETE",
            &format!("/api/v1/devices/{}", house.garden.hex()),
            Some(&house.owner),
            None,
        )
        .await;
    assert!(s == 204 || s == 200, "{s} {b}");
    ha.until(15, "the revoked camera's entities removed", |h| {
        garden_configs
            .iter()
            .all(|t| h.last.get(t).is_some_and(Vec::is_empty))
    })
    .await;

    // A crash: no goodbye; the broker publishes the last will.
    bridge.abort();
    ha.wait_for(15, &status, "offline").await;
    // Back, then a clean stop: online, then offline.
    let from = ha.log_len();
    let bridge = threshold_hub::homeassistant::spawn(&sim.state)
        .unwrap()
        .unwrap();
    ha.wait_for(15, &status, "online").await;
    wait_state(&ha, "lock", &front_lock, "LOCKED").await;
    bridge.stop().await;
    ha.wait_for(15, &status, "offline").await;
    let mut said: Vec<Vec<u8>> = ha.heard.lock().unwrap().since(from, &status);
    said.dedup();
    assert_eq!(said, [b"online".to_vec(), b"offline".to_vec()]);
    drop(broker);
}

/// A garage door (a garage-door opener is its actuator) is a Home Assistant cover of
/// class garage, truthful like a lock: closed, opening, open, closing only on the
/// opener's fresh reports, unknown when it goes quiet; Home Assistant may close it,
/// never open it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garage_door_is_a_cover_that_home_assistant_may_only_close() {
    let dir = tempfile::tempdir().unwrap();
    let Some(broker) = mosquitto::start_anonymous(dir.path()) else {
        return;
    };
    let mut sim =
        Sim::with(|c| c.ha_mqtt_url = Some(format!("mqtt://127.0.0.1:{}", broker.port))).await;
    let mut h = GarageHome::new(&sim).await;
    let ha = Ha::connect(broker.port, &["homeassistant/#", "threshold/#"]).await;
    let bridge = threshold_hub::homeassistant::spawn(&sim.state)
        .unwrap()
        .unwrap();
    // The garage (cover), the front door (lock), two cameras (live + picture),
    // deliveries, alerts.
    let configs = ha
        .eventually(20, "8 discovery configs", |heard| {
            let c = heard.configs(DISCOVERY);
            (c.len() == 8).then_some(c)
        })
        .await;
    let by_id = check_configs(&configs, bridge.status_topic());
    let garage = entity(&by_id, "cover", &h.garage.id).clone();
    let front = entity(&by_id, "lock", &h.front.id).clone();
    assert_eq!(garage["device_class"], "garage");
    assert_eq!(garage["device"]["name"], "Garage");
    assert!(
        !by_id
            .values()
            .any(|(c, v)| c == "lock" && v["state_topic"].as_str().unwrap().contains(&h.garage.id)),
        "a garage door is not a lock"
    );
    wait_state(&ha, "cover", &garage, "None").await;

    h.run(&mut sim, 1_500).await;
    wait_state(&ha, "cover", &garage, "closed").await;
    wait_state(&ha, "lock", &front, "LOCKED").await;
    garage_moves(&sim, &mut h.garage.lock, DoorMotion::Opening).await;
    h.run(&mut sim, 500).await;
    wait_state(&ha, "cover", &garage, "opening").await;
    garage_rests(&sim, &mut h.garage.lock, DoorState::Open).await;
    h.run(&mut sim, 500).await;
    wait_state(&ha, "cover", &garage, "open").await;
    ha.until(10, "the garage's attributes", |heard| {
        json_at(heard, &garage)["door"] == "open"
    })
    .await;

    // The opener goes quiet: unknown, not "open" (nor "closed").
    h.garage.lock.dark = true;
    h.run(&mut sim, 1_500).await;
    wait_state(&ha, "cover", &garage, "None").await;
    h.garage.lock.dark = false;
    h.run(&mut sim, 1_500).await;
    wait_state(&ha, "cover", &garage, "open").await;

    // Home Assistant may close it, never open it; a lock's command on a garage door is
    // refused too.
    sim.downlinks();
    let command = garage["command_topic"].as_str().unwrap().to_owned();
    ha.publish(&command, "OPEN").await;
    support::until(10, "the refusal in the audit log", || async {
        sim.state
            .store
            .audit_page(0, 100_000)
            .await
            .unwrap()
            .iter()
            .any(|e| e.kind == "home_assistant.command_refused" && e.detail.contains("OPEN"))
    })
    .await;
    let sent = sim.downlinks();
    assert!(
        unlock_for(&sent, &h.garage.lock.sim.id).is_none(),
        "{sent:?}"
    );
    assert!(!lock_command_for(&sent, &h.garage.lock.sim.id), "{sent:?}");
    h.run(&mut sim, 2_500).await;
    sim.downlinks();
    ha.publish(&command, "CLOSE").await;
    let mut seen = Vec::new();
    support::until(10, "a close command for the garage opener", || {
        seen.extend(sim.downlinks());
        let found = lock_command_for(&seen, &h.garage.lock.sim.id);
        async move { found }
    })
    .await;
    garage_moves(&sim, &mut h.garage.lock, DoorMotion::Closing).await;
    h.run(&mut sim, 500).await;
    wait_state(&ha, "cover", &garage, "closing").await;
    garage_rests(&sim, &mut h.garage.lock, DoorState::Closed).await;
    h.run(&mut sim, 500).await;
    wait_state(&ha, "cover", &garage, "closed").await;
    bridge.stop().await;
    drop(broker);
}

/// A real hub with the real lock and camera agents, Home Assistant on a real broker:
/// the lock is LOCKED, the camera live, its pictures arrive as JPEG while it streams;
/// the camera's link is cut and it is not live; the hub stops and Home Assistant is
/// told offline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_hub_with_real_agents_on_home_assistant() {
    let broker_dir = tempfile::tempdir().unwrap();
    let Some(broker) = mosquitto::start_anonymous(broker_dir.path()) else {
        return;
    };
    let hub_dir = threshold_store::testing::TempDir::new("ha-real").unwrap();
    let cfg = threshold_hub::HubConfig {
        ha_mqtt_url: Some(format!("mqtt://127.0.0.1:{}", broker.port)),
        ha_discovery_prefix: "ha-test/discovery".into(),
        ha_topic_prefix: "ha-test/threshold".into(),
        ha_picture_interval_ms: 500,
        mqtt_topic_prefix: format!("thr-ha-{}", threshold_store::new_id()),
        ..support::local_config(hub_dir.path())
    };
    let ha = Ha::connect(broker.port, &["ha-test/#"]).await;
    let hub = threshold_hub::start(cfg).await.unwrap();
    let base = hub.base_url();
    let admin = support::admin(&hub).await;
    let [owner]: [String; 1] = support::accounts(&base, &admin, &[("owner", "olivia")])
        .await
        .try_into()
        .unwrap();
    let home = support::home(&base, &owner, "Flat 3", 52.37, 4.89).await;
    let door = support::only_door(&base, &owner, &home).await.unwrap();
    let devices = support::agents::start(&base, &owner, &home).await;
    let status = "ha-test/threshold/hub/status";
    ha.wait_for(20, status, "online").await;

    let configs = ha
        .eventually(30, "5 discovery configs", |h| {
            let c = h.configs("ha-test/discovery");
            (c.len() == 5).then_some(c)
        })
        .await;
    for (_, t, _) in &configs {
        assert!(t.starts_with("ha-test/discovery/"), "{t}");
        assert!(
            t.contains("/ha-test_threshold/"),
            "the node level names this deployment: {t}"
        );
    }
    let by_id = check_configs(&configs, status);
    let lock = entity(&by_id, "lock", &door).clone();
    wait_state(&ha, "lock", &lock, "LOCKED").await;
    // ha-test/threshold/camera/<device id>/live/state
    let camera_id = by_id
        .values()
        .find(|(c, _)| c == "binary_sensor")
        .and_then(|(_, v)| {
            v["state_topic"]
                .as_str()?
                .split('/')
                .nth(3)
                .map(str::to_owned)
        })
        .unwrap();
    let live = entity(&by_id, "binary_sensor", &camera_id).clone();
    let picture = entity(&by_id, "image", &camera_id).clone();
    wait_state(&ha, "binary_sensor", &live, "ON").await;

    // The camera streams (as for a recording or a live view): pictures arrive.
    let cam: threshold_proto::DeviceId = camera_id.parse().unwrap();
    threshold_hub::access::unlock::request_streams(&hub.state, &[cam], support::now_ms() + 20_000)
        .await;
    let picture_topic = picture["image_topic"].as_str().unwrap().to_owned();
    let jpeg = ha
        .eventually(20, "a picture", |h| h.last.get(&picture_topic).cloned())
        .await;
    assert!(
        jpeg.starts_with(&[0xFF, 0xD8, 0xFF]) && jpeg.ends_with(&[0xFF, 0xD9]),
        "a JPEG"
    );
    ha.wait_for(
        10,
        &format!("ha-test/threshold/camera/{camera_id}/picture/availability"),
        "online",
    )
    .await;

    // The camera's link is cut (a jammer): not live, its picture no longer current.
    devices.cam_link.set_blocked(true);
    wait_state(&ha, "binary_sensor", &live, "OFF").await;
    ha.wait_for(
        10,
        &format!("ha-test/threshold/camera/{camera_id}/picture/availability"),
        "offline",
    )
    .await;
    wait_state(&ha, "lock", &lock, "LOCKED").await;

    // The hub stops: Home Assistant hears it.
    for s in &devices.stops {
        let _ = s.send(true);
    }
    hub.stop().await;
    ha.wait_for(10, status, "offline").await;
    drop(broker);
}
