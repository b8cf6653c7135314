//! Home Assistant MQTT discovery configs, one per entity, as pure functions of the
//! hub's ids and names. Only keys of Home Assistant's own MQTT platform schemas are
//! used, written out in full (no abbreviations); `crates/hub/tests/support/ha_schema.rs`
//! checks every published config against those schemas.
//!
//! Choices (docs/home-assistant.md says why in full):
//! - Per-entity discovery (`<prefix>/<component>/.../config`), which every Home
//!   Assistant with MQTT discovery understands, rather than the newer device-based
//!   payload.
//! - Entities are grouped into Home Assistant devices: one per home (deliveries,
//!   alerts), one per door (its lock), one per camera (live verdict, picture); doors
//!   and cameras name their home as `via_device`.
//! - Every entity is available only while the hub is (`<p>/hub/status`, its last
//!   will) AND the hub can vouch for the home (`<p>/home/<id>/availability`):
//!   `availability_mode: all`. The picture is also unavailable while it is not fresh.
//! - No `object_id` / `default_entity_id`: Home Assistant names entities after the
//!   device and entity names; `object_id` is deprecated (Home Assistant 2025.10, gone
//!   in 2026.4) and `default_entity_id` is unknown to releases before 2025.10.

use super::states;
use super::topics::Topics;
use serde_json::{json, Value};

/// What Home Assistant calls the software behind the entities.
pub fn origin() -> Value {
    json!({"name": "Threshold", "sw_version": env!("CARGO_PKG_VERSION")})
}

/// A home, as its devices and entities need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HomeInfo {
    pub id: String,
    pub name: String,
}

/// A door with a lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DoorInfo {
    pub id: String,
    pub name: String,
    pub home_id: String,
}

/// A camera (a device of kind camera), by its device id in hex.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CameraInfo {
    pub id: String,
    pub name: String,
    pub home_id: String,
}

/// Stable identifiers: the hub's own ids, which never change for a thing.
pub fn home_identifier(home: &str) -> String {
    format!("threshold_home_{home}")
}

fn door_identifier(door: &str) -> String {
    format!("threshold_door_{door}")
}

fn device_identifier(device: &str) -> String {
    format!("threshold_device_{device}")
}

/// An entity's unique id: `threshold_<thing id>_<role>`.
pub fn unique_id(thing: &str, role: &str) -> String {
    format!("threshold_{thing}_{role}")
}

/// The object id (discovery topic level) of an entity; the same text as its unique
/// id, made topic-safe by `Topics::config`.
pub fn object_id(thing: &str, role: &str) -> String {
    unique_id(thing, role)
}

/// A device name Home Assistant can show (it refuses nothing, but an empty name helps
/// nobody).
fn shown(name: &str, fallback: &str) -> String {
    let n = name.trim();
    if n.is_empty() {
        fallback.to_owned()
    } else {
        n.chars().take(100).collect()
    }
}

fn home_device(h: &HomeInfo) -> Value {
    json!({
        "identifiers": [home_identifier(&h.id)],
        "name": shown(&h.name, "Home"),
        "manufacturer": "Threshold",
        "model": "Home",
    })
}

fn door_device(d: &DoorInfo) -> Value {
    json!({
        "identifiers": [door_identifier(&d.id)],
        "name": shown(&d.name, "Door"),
        "manufacturer": "Threshold",
        "model": "Door",
        "via_device": home_identifier(&d.home_id),
    })
}

fn camera_device(c: &CameraInfo) -> Value {
    json!({
        "identifiers": [device_identifier(&c.id)],
        "name": shown(&c.name, "Camera"),
        "manufacturer": "Threshold",
        "model": "Camera",
        "via_device": home_identifier(&c.home_id),
    })
}

/// The availability every entity of `home` shares, plus `extra` topics.
fn availability(t: &Topics, home: &str, extra: &[String]) -> Value {
    let mut topics = vec![t.status().to_owned(), t.home_availability(home)];
    topics.extend(extra.iter().cloned());
    Value::Array(
        topics
            .into_iter()
            .map(|topic| {
                json!({"topic": topic, "payload_available": states::ONLINE,
                    "payload_not_available": states::OFFLINE})
            })
            .collect(),
    )
}

/// What every config carries.
fn common(t: &Topics, home: &str, extra_availability: &[String], device: Value) -> Value {
    json!({
        "availability": availability(t, home, extra_availability),
        "availability_mode": "all",
        "device": device,
        "origin": origin(),
        "qos": 1,
    })
}

fn merge(mut base: Value, more: Value) -> Value {
    if let (Some(b), Value::Object(m)) = (base.as_object_mut(), more) {
        b.extend(m);
    }
    base
}

/// One entity's discovery message: its config topic and payload.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub component: &'static str,
    pub topic: String,
    pub payload: Value,
}

/// A door's lock. Its state is truthful (`states::lock`), `None` (unknown) unless a
/// fresh signed report says otherwise. Home Assistant's MQTT lock needs a command
/// topic: the hub obeys `LOCK` and refuses `UNLOCK` (docs/home-assistant.md), and
/// no `payload_open` is offered.
pub fn lock(t: &Topics, d: &DoorInfo) -> Config {
    let payload = merge(
        common(t, &d.home_id, &[], door_device(d)),
        json!({
            "name": "Lock",
            "unique_id": unique_id(&d.id, "lock"),
            "icon": "mdi:lock",
            "state_topic": t.lock_state(&d.id),
            "json_attributes_topic": t.lock_attributes(&d.id),
            "command_topic": t.lock_command(&d.id),
            "payload_lock": states::LOCK,
            "payload_unlock": states::UNLOCK,
            "payload_reset": states::NONE,
            "state_locked": states::LOCKED,
            "state_unlocked": states::UNLOCKED,
            "state_jammed": states::JAMMED,
            "state_locking": states::LOCKING,
            "state_unlocking": states::UNLOCKING,
            "optimistic": false,
            "retain": false,
        }),
    );
    Config {
        component: "lock",
        topic: t.config("lock", &object_id(&d.id, "lock")),
        payload,
    }
}

/// A garage door (a door whose actuator is a garage-door opener): a `cover` of device
/// class `garage`, truthful like a lock (`states::garage`). Only closing is offered
/// (`payload_open` and `payload_stop` null: Home Assistant shows no open or stop
/// action), and only `CLOSE` is obeyed.
pub fn garage(t: &Topics, d: &DoorInfo) -> Config {
    let payload = merge(
        common(t, &d.home_id, &[], door_device(d)),
        json!({
            "name": "Garage door",
            "unique_id": unique_id(&d.id, "garage"),
            "device_class": "garage",
            "state_topic": t.garage_state(&d.id),
            "json_attributes_topic": t.garage_attributes(&d.id),
            "command_topic": t.garage_command(&d.id),
            "payload_close": states::CLOSE,
            "payload_open": null,
            "payload_stop": null,
            "state_open": states::OPEN,
            "state_opening": states::OPENING,
            "state_closed": states::CLOSED,
            "state_closing": states::CLOSING,
            "state_stopped": states::STOPPED,
            "optimistic": false,
            "retain": false,
        }),
    );
    Config {
        component: "cover",
        topic: t.config("cover", &object_id(&d.id, "garage")),
        payload,
    }
}

/// How long Home Assistant keeps a camera's live verdict without hearing it again
/// (the hub repeats it every `LIVE_REPEAT_MS`): Home Assistant's own watchdog, so a
/// hub that hangs with its connection open cannot leave "live" showing.
pub const LIVE_EXPIRE_S: u64 = 10;

/// The hub's live verdict for a camera: ON while the hub holds a verified frame
/// captured within the live window (not frozen, clock in step), OFF when it does not
/// (and may say so), unknown right after the hub (re)connects.
///
/// Device class `running` ("running / not running"), not `connectivity`: the verdict
/// is about the picture, not the network; a camera that is connected but frozen or
/// whose clock is off is not live, and "disconnected" would be false.
pub fn camera_live(t: &Topics, c: &CameraInfo) -> Config {
    let payload = merge(
        common(t, &c.home_id, &[], camera_device(c)),
        json!({
            "name": "Live",
            "unique_id": unique_id(&c.id, "live"),
            "device_class": "running",
            "state_topic": t.camera_live_state(&c.id),
            "json_attributes_topic": t.camera_live_attributes(&c.id),
            "payload_on": states::ON,
            "payload_off": states::OFF,
            "expire_after": LIVE_EXPIRE_S,
        }),
    );
    Config {
        component: "binary_sensor",
        topic: t.config("binary_sensor", &object_id(&c.id, "live")),
        payload,
    }
}

/// A camera's newest picture: JPEG bytes on an image topic (not a URL: the hub's
/// frame URL needs the owner's session, which Home Assistant does not have, and a URL
/// without one would hand footage to anyone). Available only while that picture is
/// fresh, so Home Assistant never shows an old frame as the current one.
pub fn camera_picture(t: &Topics, c: &CameraInfo) -> Config {
    let payload = merge(
        common(
            t,
            &c.home_id,
            &[t.camera_picture_availability(&c.id)],
            camera_device(c),
        ),
        json!({
            "name": "Picture",
            "unique_id": unique_id(&c.id, "picture"),
            "image_topic": t.camera_picture(&c.id),
            "content_type": "image/jpeg",
        }),
    );
    Config {
        component: "image",
        topic: t.config("image", &object_id(&c.id, "picture")),
        payload,
    }
}

/// The home's current delivery (`states::current_delivery`): an enum sensor whose
/// options are every delivery state and `none`.
pub fn delivery(t: &Topics, h: &HomeInfo) -> Config {
    let payload = merge(
        common(t, &h.id, &[], home_device(h)),
        json!({
            "name": "Delivery",
            "unique_id": unique_id(&h.id, "delivery"),
            "icon": "mdi:package-variant-closed",
            "device_class": "enum",
            "options": states::delivery_options(),
            "state_topic": t.delivery_state(&h.id),
            "json_attributes_topic": t.delivery_attributes(&h.id),
        }),
    );
    Config {
        component: "sensor",
        topic: t.config("sensor", &object_id(&h.id, "delivery")),
        payload,
    }
}

/// The home's alerts, one Home Assistant event per alert raised; `event_type` is the
/// alert's kind.
pub fn alerts(t: &Topics, h: &HomeInfo) -> Config {
    let payload = merge(
        common(t, &h.id, &[], home_device(h)),
        json!({
            "name": "Alert",
            "unique_id": unique_id(&h.id, "alert"),
            "icon": "mdi:shield-alert",
            "state_topic": t.alert(&h.id),
            "event_types": states::alert_event_types(),
        }),
    );
    Config {
        component: "event",
        topic: t.config("event", &object_id(&h.id, "alert")),
        payload,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics() -> Topics {
        Topics::new("homeassistant", "threshold", None)
    }

    #[test]
    fn a_lock_obeys_only_what_the_hub_allows_and_resets_to_unknown() {
        let c = lock(
            &topics(),
            &DoorInfo {
                id: "d1".into(),
                name: "Front door".into(),
                home_id: "h1".into(),
            },
        );
        assert_eq!(
            c.topic,
            "homeassistant/lock/threshold/threshold_d1_lock/config"
        );
        let p = &c.payload;
        assert_eq!(p["payload_reset"], "None");
        assert_eq!(p["optimistic"], false);
        assert_eq!(
            p["retain"], false,
            "Home Assistant must not retain commands"
        );
        assert!(p.get("payload_open").is_none(), "no open action offered");
        assert_eq!(p["command_topic"], "threshold/door/d1/lock/set");
        assert_eq!(p["device"]["via_device"], "threshold_home_h1");
        assert_eq!(p["availability_mode"], "all");
        assert_eq!(
            p["availability"][0]["topic"], "threshold/hub/status",
            "tied to the hub's own liveness"
        );
        assert_eq!(
            p["availability"][1]["topic"],
            "threshold/home/h1/availability"
        );
    }

    #[test]
    fn a_garage_door_offers_only_close() {
        let c = garage(
            &topics(),
            &DoorInfo {
                id: "g1".into(),
                name: "Garage".into(),
                home_id: "h1".into(),
            },
        );
        assert_eq!(c.component, "cover");
        assert_eq!(c.payload["device_class"], "garage");
        assert_eq!(c.payload["payload_close"], "CLOSE");
        assert!(c.payload["payload_open"].is_null() && c.payload["payload_stop"].is_null());
        assert_eq!(c.payload["command_topic"], "threshold/door/g1/garage/set");
    }

    #[test]
    fn unique_ids_come_from_the_hub_s_ids_only() {
        let cam = CameraInfo {
            id: "ab".repeat(16),
            name: "Hall camera".into(),
            home_id: "h1".into(),
        };
        let renamed = CameraInfo {
            name: "Renamed".into(),
            ..cam.clone()
        };
        for f in [camera_live, camera_picture] {
            let (a, b) = (f(&topics(), &cam), f(&topics(), &renamed));
            assert_eq!(a.payload["unique_id"], b.payload["unique_id"]);
            assert_eq!(a.topic, b.topic);
            assert_ne!(a.payload["device"]["name"], b.payload["device"]["name"]);
        }
        let p = camera_picture(&topics(), &cam).payload;
        assert_eq!(p["availability"].as_array().map(Vec::len), Some(3));
        assert!(p.get("url_topic").is_none());
    }

    #[test]
    fn empty_names_are_replaced() {
        let h = HomeInfo {
            id: "h".into(),
            name: "  ".into(),
        };
        assert_eq!(delivery(&topics(), &h).payload["device"]["name"], "Home");
        assert_eq!(alerts(&topics(), &h).payload["device"]["name"], "Home");
    }
}
