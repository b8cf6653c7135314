//! A camera's liveness statement, as an unlock token carries it (docs/protocol.md,
//! `unlock`): the bytes of a `heartbeat` envelope exactly as the camera signed it,
//! base64-encoded. A lock checks it with the keys of the cameras bound to its door
//! and against its own clock, so a hub cannot open a door whose camera is dark.

use crate::body::Heartbeat;
use crate::{DeviceId, Kind, PublicKey, UnverifiedMessage};
use base64::Engine;

/// Largest statement accepted, in bytes after base64 decoding.
pub const MAX_STATEMENT_BYTES: usize = 2048;

/// What a verified statement says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CameraStatement {
    pub camera: DeviceId,
    pub frame_seq: u64,
    /// Capture time of the announced frame, camera clock.
    pub capture_ms: i64,
    /// SHA-256 of the frame, hex.
    pub sha256: String,
}

/// Why a statement was refused; [`StatementRefusal::reason`] is the code a lock
/// reports in its `token_refused` event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StatementRefusal {
    #[error("not a camera heartbeat envelope in base64")]
    Malformed,
    #[error("signed by a camera that does not watch this door")]
    NotBound,
    #[error("the camera's signature does not verify")]
    BadSignature,
    #[error("the heartbeat announces no frame")]
    NoFrame,
    #[error("the frame was captured too long ago")]
    Stale,
    #[error("the frame's capture time is in the future")]
    FromFuture,
}

impl StatementRefusal {
    pub fn reason(self) -> &'static str {
        match self {
            StatementRefusal::Malformed => "camera_statement_malformed",
            StatementRefusal::NotBound => "camera_not_bound",
            StatementRefusal::BadSignature => "camera_statement_bad_signature",
            StatementRefusal::NoFrame => "camera_statement_no_frame",
            StatementRefusal::Stale => "camera_statement_stale",
            StatementRefusal::FromFuture => "camera_statement_from_future",
        }
    }
}

/// Encode a heartbeat envelope's bytes as a statement.
pub fn encode_statement(heartbeat_envelope: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(heartbeat_envelope)
}

/// Check a statement at `now_ms` (the checker's clock) against the cameras bound to
/// the door, in the order the protocol gives: form, binding, signature, frame, age.
pub fn check_camera_statement(
    b64: &str,
    bound: &[PublicKey],
    now_ms: i64,
    max_age_ms: i64,
    max_future_ms: i64,
) -> Result<CameraStatement, StatementRefusal> {
    if b64.len() > MAX_STATEMENT_BYTES.div_ceil(3) * 4 {
        return Err(StatementRefusal::Malformed);
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| StatementRefusal::Malformed)?;
    if bytes.len() > MAX_STATEMENT_BYTES {
        return Err(StatementRefusal::Malformed);
    }
    let m = UnverifiedMessage::decode(&bytes).map_err(|_| StatementRefusal::Malformed)?;
    if m.kind != Kind::Heartbeat {
        return Err(StatementRefusal::Malformed);
    }
    let key = bound
        .iter()
        .find(|k| k.device_id() == m.device)
        .ok_or(StatementRefusal::NotBound)?;
    let m = m.verify(key).map_err(|_| StatementRefusal::BadSignature)?;
    let frame = m
        .json::<Heartbeat>()
        .ok()
        .and_then(|h| h.frame)
        .ok_or(StatementRefusal::NoFrame)?;
    if now_ms.saturating_sub(frame.time_ms) > max_age_ms {
        return Err(StatementRefusal::Stale);
    }
    if frame.time_ms.saturating_sub(now_ms) > max_future_ms {
        return Err(StatementRefusal::FromFuture);
    }
    Ok(CameraStatement {
        camera: m.device,
        frame_seq: frame.seq,
        capture_ms: frame.time_ms,
        sha256: frame.sha256,
    })
}

/// What a lock requires of a token's camera evidence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CameraRules {
    pub max_age_ms: i64,
    pub max_future_ms: i64,
    /// Whether the owner's waiver may stand in for a statement.
    pub allow_waiver: bool,
}

impl Default for CameraRules {
    fn default() -> Self {
        CameraRules {
            max_age_ms: 3_000,
            max_future_ms: 2_000,
            allow_waiver: true,
        }
    }
}

/// The waivers a token may carry instead of a camera statement.
pub const WAIVERS: [&str; 2] = ["owner_override", "guest_grant"];

/// Why a token's camera evidence counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CameraProof {
    Statement(CameraStatement),
    Waived(String),
}

/// The lock's camera check of a token (docs/protocol.md §10.3, check 9), in the
/// protocol's order: both `camera` and `camera_waived` → `malformed`; a waiver on a lock
/// that refuses waivers → `camera_waiver_refused` (whatever its value); a statement →
/// [`check_camera_statement`] and its reason; a known waiver → accepted; nothing, or a
/// waiver the lock does not know → `camera_statement_missing`. The error is the
/// `token_refused` reason.
pub fn check_token_camera(
    camera: Option<&str>,
    waived: Option<&str>,
    bound: &[PublicKey],
    now_ms: i64,
    rules: &CameraRules,
) -> Result<CameraProof, &'static str> {
    match (camera, waived) {
        (Some(_), Some(_)) => Err("malformed"),
        (None, Some(_)) if !rules.allow_waiver => Err("camera_waiver_refused"),
        (Some(s), None) => {
            check_camera_statement(s, bound, now_ms, rules.max_age_ms, rules.max_future_ms)
                .map(CameraProof::Statement)
                .map_err(StatementRefusal::reason)
        }
        (None, Some(w)) if WAIVERS.contains(&w) => Ok(CameraProof::Waived(w.to_owned())),
        (None, _) => Err("camera_statement_missing"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::FrameSummary;
    use crate::{DeviceKey, SignedMessage};

    fn cam(seed: u8) -> DeviceKey {
        DeviceKey::from_seed(&[seed; 32])
    }

    fn heartbeat(k: &DeviceKey, t: i64, frame: Option<i64>) -> Vec<u8> {
        let hb = Heartbeat {
            frame: frame.map(|c| FrameSummary {
                seq: 9,
                time_ms: c,
                sha256: "ab".repeat(32),
                thumb: "00".repeat(64),
            }),
            ..Default::default()
        };
        SignedMessage::sign(
            k,
            Kind::Heartbeat,
            k.device_id(),
            3,
            t,
            serde_json::to_vec(&hb).unwrap(),
        )
        .into_bytes()
    }

    const NOW: i64 = 1_800_000_000_000;

    fn check(s: &str, bound: &[PublicKey]) -> Result<CameraStatement, StatementRefusal> {
        check_camera_statement(s, bound, NOW, 3000, 2000)
    }

    #[test]
    fn a_fresh_statement_of_a_bound_camera_is_accepted() {
        let k = cam(1);
        let s = encode_statement(&heartbeat(&k, NOW - 100, Some(NOW - 150)));
        let ok = check(&s, &[cam(2).public(), k.public()]).unwrap();
        assert_eq!(
            (ok.camera, ok.frame_seq, ok.capture_ms),
            (k.device_id(), 9, NOW - 150)
        );
    }

    #[test]
    fn each_defect_has_its_reason() {
        let k = cam(1);
        let bound = [k.public()];
        let good = heartbeat(&k, NOW, Some(NOW - 100));
        // Another door's camera.
        let other = encode_statement(&heartbeat(&cam(7), NOW, Some(NOW)));
        assert_eq!(check(&other, &bound), Err(StatementRefusal::NotBound));
        // Altered after signing.
        let mut altered = good.clone();
        let n = altered.len();
        altered[n - 70] ^= 1;
        assert_eq!(
            check(&encode_statement(&altered), &bound),
            Err(StatementRefusal::BadSignature)
        );
        let none = encode_statement(&heartbeat(&k, NOW, None));
        assert_eq!(check(&none, &bound), Err(StatementRefusal::NoFrame));
        let stale = encode_statement(&heartbeat(&k, NOW, Some(NOW - 3001)));
        assert_eq!(check(&stale, &bound), Err(StatementRefusal::Stale));
        let edge = encode_statement(&heartbeat(&k, NOW, Some(NOW - 3000)));
        assert!(check(&edge, &bound).is_ok());
        let future = encode_statement(&heartbeat(&k, NOW, Some(NOW + 2001)));
        assert_eq!(check(&future, &bound), Err(StatementRefusal::FromFuture));
        // Not a heartbeat: a state report signed by the same key.
        let state = SignedMessage::sign(&k, Kind::State, k.device_id(), 1, NOW, b"{}".to_vec())
            .into_bytes();
        assert_eq!(
            check(&encode_statement(&state), &bound),
            Err(StatementRefusal::Malformed)
        );
        assert_eq!(
            check("not base64!", &bound),
            Err(StatementRefusal::Malformed)
        );
        assert_eq!(
            check(&"A".repeat(4000), &bound),
            Err(StatementRefusal::Malformed)
        );
        assert_eq!(
            check(&encode_statement(&good), &[]),
            Err(StatementRefusal::NotBound)
        );
    }

    #[test]
    fn a_token_carries_exactly_one_camera_proof_checked_in_the_protocol_s_order() {
        let k = cam(1);
        let bound = [k.public()];
        let fresh = encode_statement(&heartbeat(&k, NOW, Some(NOW - 100)));
        let stale = encode_statement(&heartbeat(&k, NOW, Some(NOW - 5000)));
        let lenient = CameraRules::default();
        let strict = CameraRules {
            allow_waiver: false,
            ..CameraRules::default()
        };
        let run = |c: Option<&str>, w: Option<&str>, r: &CameraRules| {
            check_token_camera(c, w, &bound, NOW, r)
        };
        assert!(matches!(
            run(Some(&fresh), None, &lenient),
            Ok(CameraProof::Statement(s)) if s.camera == k.device_id() && s.capture_ms == NOW - 100
        ));
        assert_eq!(
            run(Some(&stale), None, &lenient),
            Err("camera_statement_stale")
        );
        for w in WAIVERS {
            assert_eq!(
                run(None, Some(w), &lenient),
                Ok(CameraProof::Waived(w.to_owned()))
            );
            assert_eq!(run(None, Some(w), &strict), Err("camera_waiver_refused"));
        }
        // A waiver this lock does not know is no evidence at all.
        assert_eq!(
            run(None, Some("because"), &lenient),
            Err("camera_statement_missing")
        );
        assert_eq!(
            run(None, Some("because"), &strict),
            Err("camera_waiver_refused")
        );
        assert_eq!(run(None, None, &lenient), Err("camera_statement_missing"));
        assert_eq!(run(None, None, &strict), Err("camera_statement_missing"));
        // Both at once is a malformed token, before anything else is looked at.
        for r in [&lenient, &strict] {
            assert_eq!(
                run(Some(&fresh), Some("owner_override"), r),
                Err("malformed")
            );
            assert_eq!(run(Some("%%"), Some("because"), r), Err("malformed"));
        }
        // No bound camera: every statement is refused as unbound.
        assert_eq!(
            check_token_camera(Some(&fresh), None, &[], NOW, &lenient),
            Err("camera_not_bound")
        );
    }

    #[test]
    fn a_statement_of_2048_bytes_is_read_and_one_of_2049_is_not() {
        let k = cam(1);
        // A heartbeat padded with JSON whitespace to an exact envelope size.
        let sized = |total: usize| {
            let hb = Heartbeat {
                frame: Some(FrameSummary {
                    seq: 9,
                    time_ms: NOW,
                    sha256: "ab".repeat(32),
                    thumb: "00".repeat(64),
                }),
                ..Default::default()
            };
            let mut body = serde_json::to_vec(&hb).unwrap();
            let overhead = crate::HEADER_LEN + crate::SIGNATURE_LEN;
            body.resize(total - overhead, b' ');
            let m = SignedMessage::sign(&k, Kind::Heartbeat, k.device_id(), 3, NOW, body);
            assert_eq!(m.as_bytes().len(), total);
            encode_statement(m.as_bytes())
        };
        assert!(check(&sized(MAX_STATEMENT_BYTES), &[k.public()]).is_ok());
        assert_eq!(
            check(&sized(MAX_STATEMENT_BYTES + 1), &[k.public()]),
            Err(StatementRefusal::Malformed)
        );
    }

    #[test]
    fn every_truncation_is_refused_without_panic() {
        let k = cam(1);
        let bytes = heartbeat(&k, NOW, Some(NOW));
        for n in 0..bytes.len() {
            assert!(
                check(&encode_statement(&bytes[..n]), &[k.public()]).is_err(),
                "{n}"
            );
        }
        let s = encode_statement(&bytes);
        for n in 0..s.len() {
            assert!(check(&s[..n], &[k.public()]).is_err(), "{n}");
        }
    }
}
