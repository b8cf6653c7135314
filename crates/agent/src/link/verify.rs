//! Checking downlink messages before the device acts on them (pure; time passed in).
//!
//! The broker and the network are not trusted (threat model), so a downlink counts only
//! if it is signed by the hub key received at enrolment, addressed to this device,
//! numbered above the last accepted one (no replay within this agent's life) and
//! timestamped within 30 s of the device clock. The lock re-checks unlock tokens with a
//! tighter bound of its own.

use threshold_proto::body::{Ack, DoorCameras, LockCommand, Stream, Unlock};
use threshold_proto::{DeviceId, Kind, PublicKey, UnverifiedMessage};

/// Default bound on |downlink time - device time|.
pub const MAX_DOWNLINK_SKEW_MS: i64 = 30_000;

/// A verified, typed downlink command.
#[derive(Clone, Debug, PartialEq)]
pub enum Downlink {
    Ack(Ack),
    Stream(Stream),
    /// `issued_ms` is the envelope time (hub clock).
    Unlock {
        token: Unlock,
        issued_ms: i64,
    },
    Lock(LockCommand),
    /// Which cameras watch the lock's door.
    Cameras(DoorCameras),
}

/// Why a downlink was refused. `kind` is known when the envelope could be parsed, so the
/// lock can report a refused unlock token as such.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    pub kind: Option<Kind>,
    pub reason: &'static str,
}

#[derive(Debug)]
pub struct DownlinkVerifier {
    hub: PublicKey,
    me: DeviceId,
    last_seq: Option<u64>,
    max_skew_ms: i64,
}

impl DownlinkVerifier {
    pub fn new(hub: PublicKey, me: DeviceId) -> Self {
        DownlinkVerifier {
            hub,
            me,
            last_seq: None,
            max_skew_ms: MAX_DOWNLINK_SKEW_MS,
        }
    }

    /// Verify `bytes` received at device time `now_ms`.
    pub fn check(&mut self, bytes: &[u8], now_ms: i64) -> Result<Downlink, Rejected> {
        let u = UnverifiedMessage::decode(bytes).map_err(|e| Rejected {
            kind: None,
            reason: e.reason(),
        })?;
        let kind = Some(u.kind);
        let rej = |reason| Rejected { kind, reason };
        if u.kind.is_uplink() {
            return Err(rej("not_downlink"));
        }
        let m = u.verify(&self.hub).map_err(|_| rej("bad_signature"))?;
        if m.device != self.me {
            return Err(rej("wrong_recipient"));
        }
        let skew = m.time_ms.saturating_sub(now_ms);
        if skew > self.max_skew_ms {
            return Err(rej("clock_skew_future"));
        }
        if skew < -self.max_skew_ms {
            return Err(rej("clock_skew_past"));
        }
        if self.last_seq.is_some_and(|last| m.seq <= last) {
            return Err(rej("replayed"));
        }
        self.last_seq = Some(m.seq);
        let bad = |_| rej("malformed");
        Ok(match m.kind {
            Kind::Ack => Downlink::Ack(m.json().map_err(bad)?),
            Kind::Stream => Downlink::Stream(m.json().map_err(bad)?),
            Kind::Unlock => Downlink::Unlock {
                token: m.json().map_err(bad)?,
                issued_ms: m.time_ms,
            },
            Kind::Lock => Downlink::Lock(m.json().map_err(bad)?),
            Kind::Cameras => {
                // A set is valid whole or not at all; an invalid one is dropped and the
                // lock keeps its previous set (§9.11).
                let c: threshold_proto::body::DoorCameras = m.json().map_err(bad)?;
                c.keys().map_err(|_| rej("malformed"))?;
                Downlink::Cameras(c)
            }
            _ => return Err(rej("not_downlink")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use threshold_proto::{DeviceKey, SignedMessage};

    fn hub() -> DeviceKey {
        DeviceKey::from_seed(&[42; 32])
    }
    fn me() -> DeviceId {
        DeviceKey::from_seed(&[1; 32]).device_id()
    }
    fn msg(key: &DeviceKey, kind: Kind, to: DeviceId, seq: u64, t: i64, body: &str) -> Vec<u8> {
        SignedMessage::sign(key, kind, to, seq, t, body.as_bytes().to_vec()).into_bytes()
    }

    #[test]
    fn accepts_good_and_refuses_each_defect() {
        let mut v = DownlinkVerifier::new(hub().public(), me());
        let now = 1_000_000;
        let ack = r#"{"events":[[1,2]],"frames":[]}"#;
        assert_eq!(
            v.check(&msg(&hub(), Kind::Ack, me(), 5, now, ack), now),
            Ok(Downlink::Ack(Ack {
                events: vec![(1, 2)],
                frames: vec![]
            }))
        );
        let reason =
            |v: &mut DownlinkVerifier, b: Vec<u8>| v.check(&b, now).err().map(|r| r.reason);
        assert_eq!(
            reason(&mut v, msg(&hub(), Kind::Ack, me(), 5, now, ack)),
            Some("replayed")
        );
        assert_eq!(
            reason(&mut v, msg(&hub(), Kind::Ack, me(), 4, now, ack)),
            Some("replayed")
        );
        let other = DeviceKey::from_seed(&[7; 32]);
        assert_eq!(
            reason(&mut v, msg(&other, Kind::Ack, me(), 6, now, ack)),
            Some("bad_signature")
        );
        assert_eq!(
            reason(
                &mut v,
                msg(&hub(), Kind::Ack, other.device_id(), 6, now, ack)
            ),
            Some("wrong_recipient")
        );
        assert_eq!(
            reason(&mut v, msg(&hub(), Kind::Ack, me(), 6, now + 30_001, ack)),
            Some("clock_skew_future")
        );
        assert_eq!(
            reason(&mut v, msg(&hub(), Kind::Ack, me(), 6, now - 30_001, ack)),
            Some("clock_skew_past")
        );
        assert_eq!(
            reason(&mut v, msg(&hub(), Kind::Heartbeat, me(), 6, now, "{}")),
            Some("not_downlink")
        );
        let r = v
            .check(&msg(&hub(), Kind::Unlock, me(), 7, now, "{}"), now)
            .unwrap_err();
        assert_eq!(
            r,
            Rejected {
                kind: Some(Kind::Unlock),
                reason: "malformed"
            }
        );
        assert_eq!(reason(&mut v, b"junk".to_vec()), Some("truncated"));
        let mut altered = msg(
            &hub(),
            Kind::Stream,
            me(),
            9,
            now,
            r#"{"until_ms":5,"fps":5}"#,
        );
        let n = altered.len();
        altered[n - 70] ^= 1;
        assert_eq!(reason(&mut v, altered), Some("bad_signature"));
        let ok = v.check(
            &msg(
                &hub(),
                Kind::Stream,
                me(),
                9,
                now,
                r#"{"until_ms":5,"fps":5}"#,
            ),
            now,
        );
        assert_eq!(
            ok,
            Ok(Downlink::Stream(Stream {
                until_ms: 5,
                fps: 5
            }))
        );
        let key = DeviceKey::from_seed(&[5; 32]).public().to_hex();
        let bad = format!(
            r#"{{"door_id":"d1","cameras":["{key}","{}"]}}"#,
            "zz".repeat(32)
        );
        assert_eq!(
            reason(&mut v, msg(&hub(), Kind::Cameras, me(), 20, now, &bad)),
            Some("malformed"),
            "one bad key refuses the whole set"
        );
        let cams = format!(r#"{{"door_id":"d1","cameras":["{key}"]}}"#);
        assert!(
            matches!(
                v.check(&msg(&hub(), Kind::Cameras, me(), 21, now, &cams), now),
                Ok(Downlink::Cameras(_))
            ),
            "the door's cameras are a downlink"
        );
    }

    #[test]
    fn truncations_never_panic() {
        let mut v = DownlinkVerifier::new(hub().public(), me());
        let b = msg(&hub(), Kind::Lock, me(), 1, 0, r#"{"reason":"x"}"#);
        for n in 0..b.len() {
            assert!(v.check(&b[..n], 0).is_err());
        }
    }
}
