//! Home Assistant MQTT discovery (docs/home-assistant.md): on the broker Home Assistant
//! uses, the hub announces each home's doors (a lock entity), cameras (a "live"
//! binary sensor with the hub's verdict, an image entity with the newest fresh
//! picture), deliveries (an enum sensor) and alerts (an event entity), and keeps their
//! states true: Home Assistant sees "unknown" when Threshold does, never a stale
//! "locked". Off unless `ha_mqtt_url` is set.
//!
//! - [`topics`]: every topic, and ids safe for discovery topics.
//! - [`discovery`]: the discovery configs, pure.
//! - [`states`]: what each entity's state is, pure (the apps' rules).
//! - [`view`]: everything retained the hub wants on the broker now, read from its
//!   state.
//! - [`bridge`]: the connection, its last will, publication, pictures, commands.
//!
//! In a fleet every node connects; each publishes only the homes it acts for
//! (`fleet::ownership`), alerts raised on it, and obeys commands for those homes.
//! Its entities' availability names its own status topic, so a node that dies takes
//! its homes' entities offline until the node taking over publishes them again.

pub mod bridge;
pub mod discovery;
pub mod states;
pub mod topics;
pub mod view;

pub use bridge::{spawn, Bridge};
