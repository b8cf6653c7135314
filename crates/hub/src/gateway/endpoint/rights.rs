//! Who may connect to the hub's device endpoint, and what a connected device may do:
//! the broker rights of protocol §2.2 as pure functions, so the rules read in one
//! place and are tested without a socket.
//!
//! A device connects as itself (client id = user name = its lowercase hex id, password
//! from enrolment), publishes only on its own `up` topic and subscribes only to its
//! own `down` topic. Nothing else exists on the endpoint: no wildcard, no other
//! device's topics, no anonymous client, no hub "super user".

use threshold_proto::DeviceId;

/// Why a CONNECT was refused. Each maps to one MQTT 5 CONNACK reason code and one
/// metric label; none carries the password.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No user name or password, a user name that is not a device id in canonical
    /// form, an unknown device, or a wrong password (not told apart, on purpose).
    BadCredentials,
    /// The client id is not exactly the user name.
    ClientIdMismatch,
    /// Right credentials of a device the owner revoked.
    Revoked,
}

impl Refusal {
    pub fn label(self) -> &'static str {
        match self {
            Refusal::BadCredentials => "bad_credentials",
            Refusal::ClientIdMismatch => "client_id_mismatch",
            Refusal::Revoked => "revoked",
        }
    }
}

/// What the hub knows of a device when it tries to connect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Known {
    Unknown,
    /// Enrolled; whether the presented password is its password, and whether it is
    /// revoked.
    Enrolled {
        password_ok: bool,
        revoked: bool,
    },
}

/// Decide a CONNECT. `lookup` is asked about the device the user name names, with
/// the presented password; it compares in constant time.
pub fn admit(
    client_id: &str,
    login: Option<(&str, &str)>,
    lookup: impl FnOnce(&DeviceId, &str) -> Known,
) -> Result<DeviceId, Refusal> {
    let Some((user, password)) = login else {
        return Err(Refusal::BadCredentials);
    };
    let Ok(id) = user.parse::<DeviceId>() else {
        return Err(Refusal::BadCredentials);
    };
    // One spelling per device: an upper-cased id would otherwise be a second client
    // id, and so a second session, for the same device.
    if id.to_hex() != user {
        return Err(Refusal::BadCredentials);
    }
    if client_id != user {
        return Err(Refusal::ClientIdMismatch);
    }
    match lookup(&id, password) {
        Known::Unknown
        | Known::Enrolled {
            password_ok: false, ..
        } => Err(Refusal::BadCredentials),
        Known::Enrolled { revoked: true, .. } => Err(Refusal::Revoked),
        Known::Enrolled { .. } => Ok(id),
    }
}

/// A connected device's two topics.
#[derive(Clone, Debug)]
pub struct Rights {
    up: String,
    down: String,
}

impl Rights {
    pub fn of(prefix: &str, device: &DeviceId) -> Rights {
        Rights {
            up: threshold_proto::topic::uplink(prefix, device),
            down: threshold_proto::topic::downlink(prefix, device),
        }
    }

    /// A PUBLISH is allowed on the device's own uplink topic only.
    pub fn may_publish(&self, topic: &[u8]) -> bool {
        topic == self.up.as_bytes()
    }

    /// A SUBSCRIBE is allowed for the device's own downlink topic only, written out:
    /// a wildcard that would also match it (`#`, `+/...`) is refused like any other.
    pub fn may_subscribe(&self, filter: &str) -> bool {
        filter == self.down
    }

    pub fn uplink(&self) -> &str {
        &self.up
    }

    pub fn downlink(&self) -> &str {
        &self.down
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: DeviceId = DeviceId([0xab; 16]);

    fn enrolled(pw: &'static str, revoked: bool) -> impl FnOnce(&DeviceId, &str) -> Known {
        move |id, presented| {
            if *id != ID {
                return Known::Unknown;
            }
            Known::Enrolled {
                password_ok: presented == pw,
                revoked,
            }
        }
    }

    #[test]
    fn a_device_connects_as_itself_with_its_password() {
        let hex = ID.to_hex();
        assert_eq!(
            admit(&hex, Some((&hex, "pw")), enrolled("pw", false)),
            Ok(ID)
        );
    }

    #[test]
    fn anonymous_unknown_and_wrong_passwords_look_the_same() {
        let hex = ID.to_hex();
        let other = DeviceId([1; 16]).to_hex();
        for (client, login) in [
            (hex.as_str(), None),
            (hex.as_str(), Some((hex.as_str(), "wrong"))),
            (other.as_str(), Some((other.as_str(), "pw"))),
            ("threshold-hub", Some(("threshold-hub", "pw"))),
            ("", Some(("", ""))),
        ] {
            assert_eq!(
                admit(client, login, enrolled("pw", false)),
                Err(Refusal::BadCredentials),
                "{client:?}"
            );
        }
    }

    #[test]
    fn an_upper_cased_id_is_not_a_second_identity() {
        let upper = ID.to_hex().to_uppercase();
        assert_eq!(
            admit(&upper, Some((&upper, "pw")), enrolled("pw", false)),
            Err(Refusal::BadCredentials)
        );
    }

    #[test]
    fn client_id_must_be_the_user_name() {
        let hex = ID.to_hex();
        assert_eq!(
            admit("someone-else", Some((&hex, "pw")), enrolled("pw", false)),
            Err(Refusal::ClientIdMismatch)
        );
    }

    #[test]
    fn revoked_is_told_only_to_the_right_password() {
        let hex = ID.to_hex();
        assert_eq!(
            admit(&hex, Some((&hex, "pw")), enrolled("pw", true)),
            Err(Refusal::Revoked)
        );
        assert_eq!(
            admit(&hex, Some((&hex, "guess")), enrolled("pw", true)),
            Err(Refusal::BadCredentials)
        );
    }

    #[test]
    fn a_device_has_its_own_two_topics_and_nothing_else() {
        let r = Rights::of("threshold", &ID);
        let other = Rights::of("threshold", &DeviceId([1; 16]));
        assert!(r.may_publish(r.uplink().as_bytes()));
        assert!(!r.may_publish(r.downlink().as_bytes()), "own downlink");
        assert!(
            !r.may_publish(other.uplink().as_bytes()),
            "another's uplink"
        );
        assert!(
            !r.may_publish(other.downlink().as_bytes()),
            "another's downlink"
        );
        assert!(r.may_subscribe(r.downlink()));
        for f in [
            "#",
            "threshold/#",
            "threshold/v1/dev/+/down",
            "threshold/v1/dev/+/up",
            r.uplink(),
            other.downlink(),
            "$share/g/threshold/v1/dev/+/up",
        ] {
            assert!(!r.may_subscribe(f), "{f}");
        }
    }
}
