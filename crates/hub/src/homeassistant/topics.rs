//! Every topic the hub uses on Home Assistant's broker, built in one place.
//!
//! Discovery: `<discovery_prefix>/<component>/<node>/<object_id>/config`, where
//! `<node>` is the hub's topic prefix made safe (so two Threshold deployments on one
//! Home Assistant never collide) and `<object_id>` is built from the hub's own ids.
//! Home Assistant accepts only `[a-zA-Z0-9_-]` in those two levels.
//!
//! States, availability and commands live under `<topic_prefix>/`:
//!
//! | topic | what | retained |
//! | --- | --- | --- |
//! | `<p>/hub/status` (`<p>/hub/<node>/status` in a fleet) | `online` / `offline` (the hub's last will) | yes |
//! | `<p>/home/<home>/availability` | `online` while the hub can vouch for the home's devices | yes |
//! | `<p>/home/<home>/delivery/state`, `.../attributes` | the home's current delivery | yes |
//! | `<p>/home/<home>/alert` | one JSON event per alert | no |
//! | `<p>/door/<door>/lock/state`, `.../attributes` | the door's lock, truthful | yes |
//! | `<p>/door/<door>/lock/set` | commands from Home Assistant (only `LOCK` is obeyed) | (HA's) |
//! | `<p>/door/<door>/garage/state`, `.../attributes` | a garage door, truthful | yes |
//! | `<p>/door/<door>/garage/set` | commands from Home Assistant (only `CLOSE` is obeyed) | (HA's) |
//! | `<p>/camera/<device>/live/state`, `.../attributes` | the hub's live verdict | yes |
//! | `<p>/camera/<device>/picture` | JPEG bytes of a fresh frame, rate-bounded | no |
//! | `<p>/camera/<device>/picture/availability` | `online` while that picture is fresh | yes |

/// Only what Home Assistant accepts in a discovery topic's node and object levels
/// (`[a-zA-Z0-9_-]`), at most 64 characters; anything else becomes `_`.
pub fn safe_id(s: &str) -> String {
    s.chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The topics of one hub (or fleet node) on Home Assistant's broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topics {
    discovery: String,
    base: String,
    node: String,
    status: String,
}

impl Topics {
    /// `discovery_prefix` and `topic_prefix` as configured (validated: no wildcards);
    /// `fleet_node`: this node's name in a fleet.
    pub fn new(discovery_prefix: &str, topic_prefix: &str, fleet_node: Option<&str>) -> Topics {
        let status = match fleet_node {
            Some(n) => format!("{topic_prefix}/hub/{}/status", safe_id(n)),
            None => format!("{topic_prefix}/hub/status"),
        };
        Topics {
            discovery: discovery_prefix.to_owned(),
            base: topic_prefix.to_owned(),
            node: safe_id(topic_prefix),
            status,
        }
    }

    /// The discovery config topic of one entity.
    pub fn config(&self, component: &str, object_id: &str) -> String {
        format!(
            "{}/{component}/{}/{}/config",
            self.discovery,
            self.node,
            safe_id(object_id)
        )
    }

    /// Every config topic this hub publishes (to find its own retained configs).
    pub fn config_filter(&self) -> String {
        format!("{}/+/{}/+/config", self.discovery, self.node)
    }

    /// This hub's (node's) own availability: its last will.
    pub fn status(&self) -> &str {
        &self.status
    }

    pub fn home_availability(&self, home: &str) -> String {
        format!("{}/home/{}/availability", self.base, safe_id(home))
    }

    pub fn delivery_state(&self, home: &str) -> String {
        format!("{}/home/{}/delivery/state", self.base, safe_id(home))
    }

    pub fn delivery_attributes(&self, home: &str) -> String {
        format!("{}/home/{}/delivery/attributes", self.base, safe_id(home))
    }

    pub fn alert(&self, home: &str) -> String {
        format!("{}/home/{}/alert", self.base, safe_id(home))
    }

    pub fn lock_state(&self, door: &str) -> String {
        format!("{}/door/{}/lock/state", self.base, safe_id(door))
    }

    pub fn lock_attributes(&self, door: &str) -> String {
        format!("{}/door/{}/lock/attributes", self.base, safe_id(door))
    }

    pub fn lock_command(&self, door: &str) -> String {
        format!("{}/door/{}/lock/set", self.base, safe_id(door))
    }

    pub fn garage_state(&self, door: &str) -> String {
        format!("{}/door/{}/garage/state", self.base, safe_id(door))
    }

    pub fn garage_attributes(&self, door: &str) -> String {
        format!("{}/door/{}/garage/attributes", self.base, safe_id(door))
    }

    pub fn garage_command(&self, door: &str) -> String {
        format!("{}/door/{}/garage/set", self.base, safe_id(door))
    }

    /// What the hub subscribes to for commands (locks' and garage doors').
    pub fn command_filters(&self) -> [String; 2] {
        [
            format!("{}/door/+/lock/set", self.base),
            format!("{}/door/+/garage/set", self.base),
        ]
    }

    /// The door a lock command topic names, if it is one.
    pub fn parse_lock_command<'a>(&self, topic: &'a str) -> Option<&'a str> {
        self.parse_command(topic, "/lock/set")
    }

    /// The door a garage door command topic names, if it is one.
    pub fn parse_garage_command<'a>(&self, topic: &'a str) -> Option<&'a str> {
        self.parse_command(topic, "/garage/set")
    }

    fn parse_command<'a>(&self, topic: &'a str, suffix: &str) -> Option<&'a str> {
        let rest = topic.strip_prefix(&self.base)?.strip_prefix("/door/")?;
        let door = rest.strip_suffix(suffix)?;
        (!door.is_empty() && safe_id(door) == door).then_some(door)
    }

    pub fn camera_live_state(&self, camera: &str) -> String {
        format!("{}/camera/{}/live/state", self.base, safe_id(camera))
    }

    pub fn camera_live_attributes(&self, camera: &str) -> String {
        format!("{}/camera/{}/live/attributes", self.base, safe_id(camera))
    }

    pub fn camera_picture(&self, camera: &str) -> String {
        format!("{}/camera/{}/picture", self.base, safe_id(camera))
    }

    pub fn camera_picture_availability(&self, camera: &str) -> String {
        format!(
            "{}/camera/{}/picture/availability",
            self.base,
            safe_id(camera)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_safe_for_discovery_topics() {
        assert_eq!(safe_id("4f1c0d2a"), "4f1c0d2a");
        assert_eq!(safe_id("a/b+c#d e"), "a_b_c_d_e");
        assert_eq!(safe_id(&"x".repeat(100)).len(), 64);
        let t = Topics::new("homeassistant", "site-a/threshold", None);
        assert_eq!(
            t.config("lock", "door_ab/c"),
            "homeassistant/lock/site-a_threshold/door_ab_c/config"
        );
        assert_eq!(t.status(), "site-a/threshold/hub/status");
        assert_eq!(
            Topics::new("ha", "thr", Some("node-1")).status(),
            "thr/hub/node-1/status"
        );
    }

    #[test]
    fn lock_commands_are_recognised_only_on_their_own_topics() {
        let t = Topics::new("homeassistant", "threshold", None);
        let topic = t.lock_command("abc123");
        assert_eq!(t.parse_lock_command(&topic), Some("abc123"));
        assert_eq!(t.parse_garage_command(&topic), None);
        assert_eq!(
            t.parse_garage_command(&t.garage_command("abc123")),
            Some("abc123")
        );
        for bad in [
            "threshold/door//lock/set",
            "threshold/door/a/b/lock/set",
            "other/door/abc/lock/set",
            "threshold/door/abc/lock/state",
            "threshold/door/a+b/lock/set",
        ] {
            assert_eq!(t.parse_lock_command(bad), None, "{bad}");
        }
    }
}
