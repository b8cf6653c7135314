//! MQTT topic names. Both directions live under one prefix so several deployments can
//! share a broker.

use crate::DeviceId;

/// Topic a device publishes on.
pub fn uplink(prefix: &str, device: &DeviceId) -> String {
    format!("{prefix}/v1/dev/{device}/up")
}

/// Topic a device subscribes to.
pub fn downlink(prefix: &str, device: &DeviceId) -> String {
    format!("{prefix}/v1/dev/{device}/down")
}

/// Filter the hub subscribes to for every device's uplink.
pub fn uplink_filter(prefix: &str) -> String {
    format!("{prefix}/v1/dev/+/up")
}

/// The device id named by an uplink topic, if the topic is one.
pub fn parse_uplink(prefix: &str, topic: &str) -> Option<DeviceId> {
    let rest = topic.strip_prefix(prefix)?.strip_prefix("/v1/dev/")?;
    let id = rest.strip_suffix("/up")?;
    id.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uplink_topic_round_trips() {
        let id = DeviceId([0xab; 16]);
        let t = uplink("threshold", &id);
        assert_eq!(t, format!("threshold/v1/dev/{}/up", "ab".repeat(16)));
        assert_eq!(parse_uplink("threshold", &t), Some(id));
        assert_eq!(parse_uplink("other", &t), None);
        assert_eq!(parse_uplink("threshold", &downlink("threshold", &id)), None);
        assert_eq!(parse_uplink("threshold", "threshold/v1/dev/xyz/up"), None);
    }
}
