//! Home Assistant's MQTT discovery schema for the platforms the hub publishes (lock,
//! binary_sensor, image, sensor, event), as a checker: required keys, allowed keys,
//! value types, allowed values and the cross-field rules. Stricter than Home Assistant
//! where Home Assistant is lenient: its discovery schemas silently drop unknown keys
//! (`extra=vol.REMOVE_EXTRA`), so a typo would be lost without a word there; here it
//! fails. Full key names only (the hub publishes no abbreviations).
//!
//! Derived by reading (not copying) Home Assistant core's voluptuous schemas:
//! - `homeassistant/components/mqtt/config.py` (home-assistant/core @ 459c79f2):
//!   `SCHEMA_BASE` (qos, encoding, group), `MQTT_RO_SCHEMA` (state_topic required,
//!   value_template), `MQTT_RW_SCHEMA` (command_topic required, optimistic, retain,
//!   state_topic).
//! - `homeassistant/components/mqtt/schemas.py`: `MQTT_ENTITY_COMMON_SCHEMA`, device,
//!   origin and availability schemas, in the 2025 form vendored by openHAB
//!   (openhab/openhab-addons, `bundles/org.openhab.binding.homeassistant/src/main/
//!   python/homeassistant/components/mqtt/schemas.py` @ 0a0672af); plus
//!   `default_entity_id` (HA 2025.10 and later) and without `object_id`, deprecated in
//!   2025.10 and gone from HA's `mqtt/const.py` (dev, 2026) after 2026.4.
//! - `mqtt/cover.py` and `cover/__init__.py` `CoverDeviceClass` (same openHAB copy
//!   @ 0a0672af, 54f22918: `validate_options`, `payload_open`/`payload_stop` may be
//!   null to offer no such action).
//! - `mqtt/lock.py` (2025 form, same openHAB copy @ 32d1b911: `payload_reset`,
//!   `state_open`, `state_opening`), `mqtt/binary_sensor.py` (@ 920aa86f),
//!   `mqtt/sensor.py` and `validate_sensor_state_and_device_class_config` (@ 0a0672af),
//!   `mqtt/image.py` (home-assistant/core @ 02e61246: `image_encoding` only `b64`),
//!   `mqtt/event.py` (home-assistant/core @ 03ffd74c).
//! - Device classes: `binary_sensor/__init__.py` `BinarySensorDeviceClass`,
//!   `sensor/const.py` `SensorDeviceClass` and `SensorStateClass`,
//!   `event/__init__.py` `EventDeviceClass` (openHAB copies @ 7340da3d, 1570e83c).
//! - Topics: `mqtt/util.py` `valid_topic`, `valid_subscribe_topic`,
//!   `valid_publish_topic` (home-assistant/core @ 00e441b1); discovery topics:
//!   `mqtt/discovery.py` `TOPIC_MATCHER`.
//! - States: `mqtt/const.py` `PAYLOAD_NONE = "None"` (which the lock, cover, binary
//!   sensor and sensor platforms take as unknown) and the lock/cover/binary sensor/sensor
//!   defaults (HA dev, 2026).
#![allow(dead_code)]

use serde_json::{Map, Value};

const BINARY_SENSOR_CLASSES: &[&str] = &[
    "battery",
    "battery_charging",
    "carbon_monoxide",
    "cold",
    "connectivity",
    "door",
    "garage_door",
    "gas",
    "heat",
    "light",
    "lock",
    "moisture",
    "motion",
    "moving",
    "occupancy",
    "opening",
    "plug",
    "power",
    "presence",
    "problem",
    "running",
    "safety",
    "smoke",
    "sound",
    "tamper",
    "update",
    "vibration",
    "window",
];

const SENSOR_CLASSES: &[&str] = &[
    "date",
    "enum",
    "timestamp",
    "absolute_humidity",
    "apparent_power",
    "aqi",
    "area",
    "atmospheric_pressure",
    "battery",
    "blood_glucose_concentration",
    "carbon_monoxide",
    "carbon_dioxide",
    "conductivity",
    "current",
    "data_rate",
    "data_size",
    "distance",
    "duration",
    "energy",
    "energy_distance",
    "energy_storage",
    "frequency",
    "gas",
    "humidity",
    "illuminance",
    "irradiance",
    "moisture",
    "monetary",
    "nitrogen_dioxide",
    "nitrogen_monoxide",
    "nitrous_oxide",
    "ozone",
    "ph",
    "pm1",
    "pm10",
    "pm25",
    "pm4",
    "power_factor",
    "power",
    "precipitation",
    "precipitation_intensity",
    "pressure",
    "reactive_energy",
    "reactive_power",
    "signal_strength",
    "sound_pressure",
    "speed",
    "sulphur_dioxide",
    "temperature",
    "temperature_delta",
    "volatile_organic_compounds",
    "volatile_organic_compounds_parts",
    "voltage",
    "volume",
    "volume_storage",
    "volume_flow_rate",
    "water",
    "weight",
    "wind_direction",
    "wind_speed",
];

const SENSOR_STATE_CLASSES: &[&str] = &[
    "measurement",
    "measurement_angle",
    "total",
    "total_increasing",
];
const EVENT_CLASSES: &[&str] = &["doorbell", "button", "motion"];
const COVER_CLASSES: &[&str] = &[
    "awning", "blind", "curtain", "damper", "door", "garage", "gate", "shade", "shutter", "window",
];
const ENTITY_CATEGORIES: &[&str] = &["config", "diagnostic"];
const AVAILABILITY_MODES: &[&str] = &["all", "any", "latest"];
/// Home Assistant's "unknown" payload (`PAYLOAD_NONE`).
pub const PAYLOAD_NONE: &str = "None";

#[derive(Clone, Copy)]
enum Ty {
    Str,
    StrOrNull,
    Bool,
    /// `cv.positive_int`: an integer >= 0.
    PosInt,
    Int,
    Qos,
    SubTopic,
    PubTopic,
    /// A Jinja template: a string to Home Assistant's schema.
    Template,
    Url,
    Icon,
    /// `vol.All(cv.ensure_list, [cv.string])`: a string or a list of strings.
    StrList,
    OneOf(&'static [&'static str]),
    OneOfOrNull(&'static [&'static str]),
    Device,
    Origin,
    AvailabilityList,
}

fn base_keys() -> Vec<(&'static str, Ty)> {
    vec![
        ("qos", Ty::Qos),
        ("encoding", Ty::Str),
        ("group", Ty::StrList),
    ]
}

fn common_keys() -> Vec<(&'static str, Ty)> {
    vec![
        // availability (single and list forms; exclusive, checked below)
        ("availability_topic", Ty::SubTopic),
        ("availability_template", Ty::Template),
        ("payload_available", Ty::Str),
        ("payload_not_available", Ty::Str),
        ("availability_mode", Ty::OneOf(AVAILABILITY_MODES)),
        ("availability", Ty::AvailabilityList),
        // MQTT_ENTITY_COMMON_SCHEMA
        ("device", Ty::Device),
        ("entity_picture", Ty::Url),
        ("origin", Ty::Origin),
        ("enabled_by_default", Ty::Bool),
        ("entity_category", Ty::OneOf(ENTITY_CATEGORIES)),
        ("icon", Ty::Icon),
        ("json_attributes_topic", Ty::SubTopic),
        ("json_attributes_template", Ty::Template),
        ("unique_id", Ty::Str),
        ("default_entity_id", Ty::Str),
    ]
}

fn ro_keys() -> Vec<(&'static str, Ty)> {
    vec![
        ("state_topic", Ty::SubTopic),
        ("value_template", Ty::Template),
    ]
}

fn rw_keys() -> Vec<(&'static str, Ty)> {
    vec![
        ("command_topic", Ty::PubTopic),
        ("optimistic", Ty::Bool),
        ("retain", Ty::Bool),
        ("state_topic", Ty::SubTopic),
    ]
}

/// Allowed keys with their types.
type Keys = Vec<(&'static str, Ty)>;

/// (required keys, allowed keys with their types) of a platform.
fn platform(component: &str) -> Option<(Vec<&'static str>, Keys)> {
    let mut keys = base_keys();
    keys.extend(common_keys());
    let required = match component {
        "lock" => {
            keys.extend(rw_keys());
            keys.extend([
                ("code_format", Ty::Str),
                ("command_template", Ty::Template),
                ("name", Ty::StrOrNull),
                ("payload_lock", Ty::Str),
                ("payload_unlock", Ty::Str),
                ("payload_open", Ty::Str),
                ("payload_reset", Ty::Str),
                ("state_jammed", Ty::Str),
                ("state_locked", Ty::Str),
                ("state_locking", Ty::Str),
                ("state_open", Ty::Str),
                ("state_opening", Ty::Str),
                ("state_unlocked", Ty::Str),
                ("state_unlocking", Ty::Str),
                ("value_template", Ty::Template),
            ]);
            vec!["command_topic"]
        }
        "binary_sensor" => {
            keys.extend(ro_keys());
            keys.extend([
                ("device_class", Ty::OneOfOrNull(BINARY_SENSOR_CLASSES)),
                ("expire_after", Ty::PosInt),
                ("force_update", Ty::Bool),
                ("name", Ty::StrOrNull),
                ("off_delay", Ty::PosInt),
                ("payload_off", Ty::Str),
                ("payload_on", Ty::Str),
            ]);
            vec!["state_topic"]
        }
        "cover" => {
            keys.extend([
                ("command_topic", Ty::PubTopic),
                ("device_class", Ty::OneOfOrNull(COVER_CLASSES)),
                ("position_topic", Ty::SubTopic),
                ("name", Ty::StrOrNull),
                ("optimistic", Ty::Bool),
                ("payload_close", Ty::StrOrNull),
                ("payload_open", Ty::StrOrNull),
                ("payload_stop", Ty::StrOrNull),
                ("position_closed", Ty::Int),
                ("position_open", Ty::Int),
                ("retain", Ty::Bool),
                ("set_position_template", Ty::Template),
                ("set_position_topic", Ty::PubTopic),
                ("state_closed", Ty::Str),
                ("state_closing", Ty::Str),
                ("state_open", Ty::Str),
                ("state_opening", Ty::Str),
                ("state_stopped", Ty::Str),
                ("state_topic", Ty::SubTopic),
                ("tilt_closed_value", Ty::Int),
                ("tilt_command_topic", Ty::PubTopic),
                ("tilt_max", Ty::Int),
                ("tilt_min", Ty::Int),
                ("tilt_opened_value", Ty::Int),
                ("tilt_optimistic", Ty::Bool),
                ("tilt_status_topic", Ty::SubTopic),
                ("tilt_status_template", Ty::Template),
                ("value_template", Ty::Template),
                ("position_template", Ty::Template),
                ("tilt_command_template", Ty::Template),
                ("payload_stop_tilt", Ty::StrOrNull),
            ]);
            vec![]
        }
        "image" => {
            keys.extend([
                ("content_type", Ty::Str),
                ("name", Ty::StrOrNull),
                ("url_topic", Ty::SubTopic),
                ("image_topic", Ty::SubTopic),
                ("image_encoding", Ty::OneOf(&["b64"])),
                ("url_template", Ty::Template),
            ]);
            vec![]
        }
        "sensor" => {
            keys.extend(ro_keys());
            keys.extend([
                ("device_class", Ty::OneOfOrNull(SENSOR_CLASSES)),
                ("expire_after", Ty::PosInt),
                ("force_update", Ty::Bool),
                ("last_reset_value_template", Ty::Template),
                ("name", Ty::StrOrNull),
                ("options", Ty::StrList),
                ("suggested_display_precision", Ty::PosInt),
                ("state_class", Ty::OneOfOrNull(SENSOR_STATE_CLASSES)),
                ("unit_of_measurement", Ty::StrOrNull),
            ]);
            vec!["state_topic"]
        }
        "event" => {
            keys.extend(ro_keys());
            keys.extend([
                ("device_class", Ty::OneOf(EVENT_CLASSES)),
                ("name", Ty::StrOrNull),
                ("event_types", Ty::StrList),
            ]);
            vec!["state_topic", "event_types"]
        }
        _ => return None,
    };
    Some((required, keys))
}

/// `mqtt/util.py` `valid_topic`: UTF-8, not empty, at most 65535 bytes, no NUL, no
/// control characters, no non-characters.
fn topic_ok(t: &str) -> Result<(), String> {
    if t.is_empty() || t.len() > 65535 {
        return Err("topic empty or too long".into());
    }
    for c in t.chars() {
        let u = c as u32;
        if c <= '\u{1f}' || ('\u{7f}'..='\u{9f}').contains(&c) {
            return Err(format!("control character in topic {t:?}"));
        }
        if (0xfdd0..=0xfdef).contains(&u) || matches!(u & 0xffff, 0xfffe | 0xffff) {
            return Err(format!("non-character in topic {t:?}"));
        }
    }
    Ok(())
}

fn subscribe_topic_ok(t: &str) -> Result<(), String> {
    topic_ok(t)?;
    let levels: Vec<&str> = t.split('/').collect();
    for (i, l) in levels.iter().enumerate() {
        if l.contains('+') && *l != "+" {
            return Err(format!("'+' must fill a whole level: {t}"));
        }
        if l.contains('#') && (*l != "#" || i != levels.len() - 1) {
            return Err(format!("'#' must be the whole last level: {t}"));
        }
    }
    Ok(())
}

fn publish_topic_ok(t: &str) -> Result<(), String> {
    topic_ok(t)?;
    if t.contains('+') || t.contains('#') {
        return Err(format!("wildcards in a topic name: {t}"));
    }
    Ok(())
}

fn url_ok(u: &str) -> bool {
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"));
    rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/'))
}

fn str_list(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(a) => a.iter().map(|x| x.as_str().map(str::to_owned)).collect(),
        _ => None,
    }
}

fn check_object(
    what: &str,
    v: &Value,
    keys: &[(&str, Ty)],
    errors: &mut Vec<String>,
) -> Option<Map<String, Value>> {
    let Some(m) = v.as_object() else {
        errors.push(format!("{what}: not an object"));
        return None;
    };
    for (k, val) in m {
        match keys.iter().find(|(name, _)| name == k) {
            None => errors.push(format!(
                "{what}: key {k:?} is not in Home Assistant's schema"
            )),
            Some((_, ty)) => check_value(&format!("{what}.{k}"), val, *ty, errors),
        }
    }
    Some(m.clone())
}

fn check_value(what: &str, v: &Value, ty: Ty, errors: &mut Vec<String>) {
    let mut bad = |why: &str| errors.push(format!("{what}: {why} (got {v})"));
    match ty {
        Ty::Str | Ty::Template => {
            if !v.is_string() {
                bad("expected a string")
            }
        }
        Ty::StrOrNull => {
            if !(v.is_string() || v.is_null()) {
                bad("expected a string or null")
            }
        }
        Ty::Bool => {
            if !v.is_boolean() {
                bad("expected a boolean")
            }
        }
        Ty::PosInt => {
            if v.as_u64().is_none() {
                bad("expected an integer >= 0")
            }
        }
        Ty::Int => {
            if !(v.is_i64() || v.is_u64()) {
                bad("expected an integer")
            }
        }
        Ty::Qos => {
            if !matches!(v.as_u64(), Some(0..=2)) {
                bad("expected 0, 1 or 2")
            }
        }
        Ty::SubTopic => match v.as_str().map(subscribe_topic_ok) {
            Some(Ok(())) => {}
            Some(Err(e)) => bad(&e),
            None => bad("expected a topic"),
        },
        Ty::PubTopic => match v.as_str().map(publish_topic_ok) {
            Some(Ok(())) => {}
            Some(Err(e)) => bad(&e),
            None => bad("expected a topic"),
        },
        Ty::Url => {
            if !v.as_str().is_some_and(url_ok) {
                bad("expected an http(s) URL")
            }
        }
        Ty::Icon => {
            if !v.as_str().is_some_and(|s| s.contains(':')) {
                bad("expected an icon as prefix:name")
            }
        }
        Ty::StrList => {
            if str_list(v).is_none() {
                bad("expected a string or a list of strings")
            }
        }
        Ty::OneOf(allowed) => {
            if !v.as_str().is_some_and(|s| allowed.contains(&s)) {
                bad(&format!("expected one of {allowed:?}"))
            }
        }
        Ty::OneOfOrNull(allowed) => {
            if !(v.is_null() || v.as_str().is_some_and(|s| allowed.contains(&s))) {
                bad(&format!("expected null or one of {allowed:?}"))
            }
        }
        Ty::Device => check_device(what, v, errors),
        Ty::Origin => {
            let keys = [
                ("name", Ty::Str),
                ("sw_version", Ty::Str),
                ("support_url", Ty::Url),
            ];
            if let Some(m) = check_object(what, v, &keys, errors) {
                if !m.contains_key("name") {
                    errors.push(format!("{what}: origin needs a name"));
                }
            }
        }
        Ty::AvailabilityList => {
            let Some(items) = v.as_array() else {
                // cv.ensure_list accepts one item too
                check_availability_item(what, v, errors);
                return;
            };
            for (i, item) in items.iter().enumerate() {
                check_availability_item(&format!("{what}[{i}]"), item, errors);
            }
        }
    }
}

fn check_availability_item(what: &str, v: &Value, errors: &mut Vec<String>) {
    let keys = [
        ("topic", Ty::SubTopic),
        ("payload_available", Ty::Str),
        ("payload_not_available", Ty::Str),
        ("value_template", Ty::Template),
    ];
    if let Some(m) = check_object(what, v, &keys, errors) {
        if !m.contains_key("topic") {
            errors.push(format!("{what}: availability needs a topic"));
        }
    }
}

fn check_device(what: &str, v: &Value, errors: &mut Vec<String>) {
    let keys = [
        ("identifiers", Ty::StrList),
        ("connections", Ty::Str), // checked below
        ("manufacturer", Ty::Str),
        ("model", Ty::Str),
        ("model_id", Ty::Str),
        ("name", Ty::Str),
        ("hw_version", Ty::Str),
        ("serial_number", Ty::Str),
        ("sw_version", Ty::Str),
        ("via_device", Ty::Str),
        ("suggested_area", Ty::Str),
        ("configuration_url", Ty::Url),
    ];
    let Some(m) = v.as_object() else {
        errors.push(format!("{what}: not an object"));
        return;
    };
    let mut plain = m.clone();
    let connections = plain.remove("connections");
    check_object(what, &Value::Object(plain), &keys, errors);
    let conn_ok = match &connections {
        None => true,
        Some(Value::Array(a)) => a.iter().all(|c| {
            c.as_array()
                .is_some_and(|p| p.len() == 2 && p.iter().all(Value::is_string))
        }),
        Some(_) => false,
    };
    if !conn_ok {
        errors.push(format!(
            "{what}.connections: expected a list of [type, id] pairs"
        ));
    }
    let has_ids = m
        .get("identifiers")
        .and_then(str_list)
        .is_some_and(|l| !l.is_empty());
    let has_conns = connections
        .as_ref()
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if !has_ids && !has_conns {
        errors.push(format!(
            "{what}: a device needs at least one identifier or connection"
        ));
    }
}

/// The discovery topic's form (`discovery.py` `TOPIC_MATCHER`): returns the component.
pub fn discovery_component<'a>(prefix: &str, topic: &'a str) -> Result<&'a str, String> {
    let rest = topic
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or_else(|| format!("{topic}: not under the discovery prefix {prefix}"))?;
    let levels: Vec<&str> = rest.split('/').collect();
    let ok_id = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    let ok_component =
        |s: &str| !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || c == '_');
    match levels.as_slice() {
        [component, node, object, "config"] if ok_component(component) && ok_id(node) && ok_id(object) => {
            Ok(component)
        }
        [component, object, "config"] if ok_component(component) && ok_id(object) => Ok(component),
        _ => Err(format!(
            "{topic}: not <prefix>/<component>/[<node_id>/]<object_id>/config with ids of [a-zA-Z0-9_-]"
        )),
    }
}

/// Check one discovery config of `component` against Home Assistant's schema.
pub fn check(component: &str, config: &Value) -> Result<(), Vec<String>> {
    let mut errors = Vec::new();
    let Some((required, keys)) = platform(component) else {
        return Err(vec![format!("platform {component} is not checked here")]);
    };
    let Some(m) = check_object(component, config, &keys, &mut errors) else {
        return Err(errors);
    };
    for r in required {
        if !m.contains_key(r) {
            errors.push(format!("{component}: required key {r:?} missing"));
        }
    }
    if m.contains_key("availability_topic") && m.contains_key("availability") {
        errors.push(format!(
            "{component}: availability_topic and availability are exclusive"
        ));
    }
    match component {
        "image" => {
            match (m.contains_key("image_topic"), m.contains_key("url_topic")) {
                (true, true) => {
                    errors.push("image: image_topic and url_topic are exclusive".into())
                }
                (false, false) => {
                    errors.push("image: one of image_topic, url_topic is required".into())
                }
                _ => {}
            }
            if m.contains_key("content_type") && m.contains_key("url_topic") {
                errors.push("image: content_type cannot go with url_topic".into());
            }
        }
        "cover" => {
            // validate_options: each template or setter needs its topic.
            for (key, needs) in [
                ("set_position_topic", "position_topic"),
                ("value_template", "state_topic"),
                ("position_template", "position_topic"),
                ("set_position_template", "set_position_topic"),
                ("tilt_command_template", "tilt_command_topic"),
                ("tilt_status_template", "tilt_status_topic"),
            ] {
                if m.contains_key(key) && !m.contains_key(needs) {
                    errors.push(format!("cover: {key} needs {needs}"));
                }
            }
        }
        "sensor" => {
            if m.contains_key("last_reset_value_template")
                && m.get("state_class").and_then(Value::as_str) != Some("total")
            {
                errors.push("sensor: last_reset_value_template needs state_class total".into());
            }
            if let Some(options) = m.get("options") {
                if str_list(options).is_none_or(|l| l.is_empty()) {
                    errors.push("sensor: an empty options list is not allowed".into());
                }
                let truthy = |k: &str| m.get(k).is_some_and(|v| !v.is_null() && v != "");
                if truthy("state_class") || truthy("unit_of_measurement") {
                    errors.push(
                        "sensor: options cannot go with state_class or unit_of_measurement".into(),
                    );
                }
                if m.get("device_class").and_then(Value::as_str) != Some("enum") {
                    errors.push("sensor: options need device_class enum".into());
                }
            }
        }
        _ => {}
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn s<'a>(config: &'a Value, key: &str, default: &'a str) -> &'a str {
    config[key].as_str().unwrap_or(default)
}

/// Whether `payload` on the entity's state topic is one Home Assistant accepts as a
/// state of that entity (not ignored as an unknown value).
pub fn check_state(component: &str, config: &Value, payload: &str) -> Result<(), String> {
    let ok = match component {
        "lock" => [
            s(config, "state_jammed", "JAMMED"),
            s(config, "state_locked", "LOCKED"),
            s(config, "state_locking", "LOCKING"),
            s(config, "state_open", "OPEN"),
            s(config, "state_opening", "OPENING"),
            s(config, "state_unlocked", "UNLOCKED"),
            s(config, "state_unlocking", "UNLOCKING"),
            s(config, "payload_reset", PAYLOAD_NONE),
        ]
        .contains(&payload),
        "cover" => [
            s(config, "state_open", "open"),
            s(config, "state_opening", "opening"),
            s(config, "state_closed", "closed"),
            s(config, "state_closing", "closing"),
            s(config, "state_stopped", "stopped"),
            PAYLOAD_NONE,
        ]
        .contains(&payload),
        "binary_sensor" => [
            s(config, "payload_on", "ON"),
            s(config, "payload_off", "OFF"),
            PAYLOAD_NONE,
        ]
        .contains(&payload),
        "sensor" => {
            payload == PAYLOAD_NONE
                || config["options"]
                    .as_array()
                    .is_some_and(|o| o.iter().any(|x| x == payload))
        }
        "event" => serde_json::from_str::<Value>(payload).is_ok_and(|e| {
            e["event_type"].as_str().is_some_and(|t| {
                str_list(&config["event_types"]).is_some_and(|l| l.iter().any(|x| x == t))
            })
        }),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{component}: {payload:?} is not a state of {config}"
        ))
    }
}

/// The checker refuses what Home Assistant would refuse or silently drop.
pub fn self_test() {
    let lock = serde_json::json!({
        "command_topic": "t/door/1/lock/set", "state_topic": "t/door/1/lock/state",
        "unique_id": "u", "availability": [{"topic": "t/hub/status"}],
        "availability_mode": "all", "device": {"identifiers": ["x"]},
        "origin": {"name": "Threshold"}, "payload_reset": "None", "qos": 1
    });
    check("lock", &lock).unwrap();
    let with = |k: &str, v: Value| {
        let mut c = lock.clone();
        c[k] = v;
        c
    };
    for (bad, why) in [
        (with("state_lockd", "LOCKED".into()), "a typo"),
        (with("stat_t", "x".into()), "an abbreviation"),
        (with("object_id", "x".into()), "object_id (gone in 2026.4)"),
        (with("qos", 3.into()), "qos 3"),
        (
            with("command_topic", "t/+/set".into()),
            "a wildcard command topic",
        ),
        (with("optimistic", "false".into()), "a string for a boolean"),
        (
            with("device", serde_json::json!({"name": "x"})),
            "a device without identifiers",
        ),
        (
            with("origin", serde_json::json!({"sw_version": "1"})),
            "an origin without a name",
        ),
        (
            with("availability_topic", "t/x".into()),
            "both availability forms",
        ),
        (with("icon", "lock".into()), "an icon without prefix"),
    ] {
        assert!(check("lock", &bad).is_err(), "accepted {why}");
    }
    let mut no_cmd = lock.clone();
    no_cmd.as_object_mut().unwrap().remove("command_topic");
    assert!(
        check("lock", &no_cmd).is_err(),
        "a lock without command_topic"
    );
    let sensor =
        serde_json::json!({"state_topic": "t/s", "device_class": "enum", "options": ["a"]});
    check("sensor", &sensor).unwrap();
    let mut s2 = sensor.clone();
    s2["device_class"] = "enumm".into();
    assert!(check("sensor", &s2).is_err());
    let mut s3 = sensor.clone();
    s3["unit_of_measurement"] = "s".into();
    assert!(check("sensor", &s3).is_err());
    assert!(check("image", &serde_json::json!({"content_type": "image/jpeg"})).is_err());
    assert!(check(
        "image",
        &serde_json::json!({"url_topic": "a", "content_type": "image/jpeg"})
    )
    .is_err());
    assert!(check("event", &serde_json::json!({"state_topic": "a"})).is_err());
    assert!(check(
        "binary_sensor",
        &serde_json::json!({"state_topic": "a", "device_class": "live"})
    )
    .is_err());
    let cover = serde_json::json!({"command_topic": "t/g/set", "state_topic": "t/g", "device_class": "garage", "payload_open": null});
    check("cover", &cover).unwrap();
    let mut c2 = cover.clone();
    c2["device_class"] = "garage_door".into();
    assert!(
        check("cover", &c2).is_err(),
        "garage_door is a binary sensor class"
    );
    let mut c3 = cover.clone();
    c3["set_position_topic"] = "t/p/set".into();
    assert!(
        check("cover", &c3).is_err(),
        "set_position_topic without position_topic"
    );
    assert!(check_state("cover", &cover, "closed").is_ok());
    assert!(check_state("cover", &cover, "CLOSED").is_err());
    assert!(check_state("lock", &lock, "LOCKED").is_ok());
    assert!(check_state("lock", &lock, "locked").is_err());
    assert!(discovery_component("ha", "ha/lock/node/obj/config").is_ok());
    assert!(discovery_component("ha", "ha/lock/no de/obj/config").is_err());
}
