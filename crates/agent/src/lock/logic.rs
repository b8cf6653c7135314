//! The lock's decisions, as a pure state machine: observations and tokens in, actions
//! and event-log entries out, time passed in.
//!
//! The rules that matter most live here so they can be proven by tests without
//! hardware, a broker or a clock:
//! - an unlock token is honoured only if well-formed, not expired (allowing a bounded
//!   clock skew), not issued in the future, carrying a fresh liveness statement signed
//!   by a camera bound to this lock's door (or the owner's explicit, recorded waiver)
//!   and never used before (law 3); the envelope (hub signature, recipient) was checked
//!   by the link already. The statement is checked against this lock's own clock and
//!   camera keys, so a hub cannot open a door whose camera is dark;
//! - the lock relocks on its own, needing no command that a jammer could block (law 4):
//!   when the door closes while the bolt is not thrown; after N seconds unlocked with
//!   the door never opened; at agent start if the door is closed;
//! - every bolt and door change and every token decision becomes an event (law 5).

use serde_json::json;
use threshold_proto::body::{BoltState, DoorState, Event, Unlock};
use threshold_proto::statement::{check_token_camera, CameraProof, CameraRules};
use threshold_proto::PublicKey;

/// Tunables of the local rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rules {
    /// Clock skew tolerated on token expiry and issue time.
    pub token_skew_ms: i64,
    /// Relock after this long unlocked if the door was never opened.
    pub unlock_timeout_ms: i64,
    /// Report `battery_low` below this.
    pub battery_low_pct: u8,
    /// A camera statement whose frame was captured longer ago than this (by this
    /// lock's clock) is stale: the door's camera may be dark.
    pub camera_statement_max_age_ms: i64,
    /// How far in the future a statement's capture time may be (clock differences).
    pub camera_statement_max_future_ms: i64,
    /// Whether a token may carry the owner's waiver instead of a camera statement.
    pub allow_camera_waiver: bool,
    /// Garage-door openers: close a door opened for a token that is still not closed
    /// after this long, and again every this long (the local rule no jammer can block).
    pub garage_auto_close_ms: i64,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            token_skew_ms: 5_000,
            unlock_timeout_ms: 10_000,
            battery_low_pct: 20,
            camera_statement_max_age_ms: 3_000,
            camera_statement_max_future_ms: 2_000,
            allow_camera_waiver: true,
            garage_auto_close_ms: 300_000,
        }
    }
}

/// What the agent must do, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Record the nonce as used (durably) before acting on the token. If this fails the
    /// agent must not retract the bolt.
    PersistNonce {
        nonce: String,
        expires_at_ms: i64,
    },
    /// Append to the event log.
    Event(Event),
    Retract,
    Throw,
}

fn ev(t: &str, detail: serde_json::Value) -> Action {
    Action::Event(Event {
        event_type: t.to_string(),
        detail,
    })
}

/// A `token_refused` event with its reason (docs/protocol.md, lock obligations).
pub fn refused(reason: &str, token: Option<&Unlock>) -> Action {
    let mut d = json!({ "reason": reason });
    if let Some(t) = token {
        d["grant"] = json!(t.grant);
        d["nonce"] = json!(t.nonce);
    }
    ev("token_refused", d)
}

/// Who may vouch for the door: the door this device is fitted to and the public keys
/// of its cameras (from pairing, then the hub's signed `cameras` messages), and the
/// judgement of an unlock token against them. Shared by locks and garage-door openers.
#[derive(Clone, Debug, Default)]
pub struct Vouchers {
    door_id: Option<String>,
    cameras: Vec<PublicKey>,
}

impl Vouchers {
    /// A new camera set. A change is logged as `cameras_changed` in the device's own
    /// signed event log, so the owner's record shows every change of who vouches.
    pub fn set(&mut self, door_id: &str, cameras: Vec<PublicKey>) -> Vec<Action> {
        let mut ids: Vec<String> = cameras.iter().map(|k| k.device_id().to_hex()).collect();
        ids.sort();
        let mut old: Vec<String> = self
            .cameras
            .iter()
            .map(|k| k.device_id().to_hex())
            .collect();
        old.sort();
        if self.door_id.as_deref() == Some(door_id) && ids == old {
            return Vec::new();
        }
        self.door_id = Some(door_id.to_owned());
        self.cameras = cameras;
        vec![ev(
            "cameras_changed",
            json!({ "door_id": door_id, "cameras": ids }),
        )]
    }

    /// Judge an unlock token whose envelope verified (`issued_ms` is the envelope
    /// time; `nonce_seen` whether the nonce store already holds the nonce): the detail
    /// of its `token_accepted` event, or the `token_refused` event to log instead.
    pub fn judge(
        &self,
        rules: &Rules,
        token: &Unlock,
        issued_ms: i64,
        now_ms: i64,
        nonce_seen: bool,
    ) -> Result<serde_json::Value, Action> {
        let skew = rules.token_skew_ms;
        if token.grant.is_empty() || token.grant.len() > 256 || !valid_nonce(&token.nonce) {
            return Err(refused("malformed", Some(token)));
        }
        if issued_ms > now_ms.saturating_add(skew) {
            return Err(refused("not_yet_valid", Some(token)));
        }
        if now_ms > token.expires_at_ms.saturating_add(skew) {
            return Err(refused("expired", Some(token)));
        }
        // The door's camera, by the device's own judgement (law 3).
        let camera_rules = CameraRules {
            max_age_ms: rules.camera_statement_max_age_ms,
            max_future_ms: rules.camera_statement_max_future_ms,
            allow_waiver: rules.allow_camera_waiver,
        };
        let camera = match check_token_camera(
            token.camera.as_deref(),
            token.camera_waived.as_deref(),
            &self.cameras,
            now_ms,
            &camera_rules,
        ) {
            Ok(CameraProof::Statement(st)) => {
                json!({ "camera": st.camera.to_hex(), "frame_seq": st.frame_seq, "capture_ms": st.capture_ms })
            }
            Ok(CameraProof::Waived(w)) => json!({ "camera_waived": w }),
            Err(reason) => return Err(refused(reason, Some(token))),
        };
        if nonce_seen {
            return Err(refused("nonce_reused", Some(token)));
        }
        let mut detail = json!({ "grant": token.grant, "nonce": token.nonce });
        if let (Some(d), Some(c)) = (detail.as_object_mut(), camera.as_object()) {
            d.extend(c.clone());
        }
        Ok(detail)
    }

    pub fn cameras(&self) -> &[PublicKey] {
        &self.cameras
    }

    pub fn door_id(&self) -> Option<&str> {
        self.door_id.as_deref()
    }
}

/// What a device does with an accepted token, after logging it: the nonce is made
/// durable first (see [`Action::PersistNonce`]), then the event, then `act`.
pub fn accepted(token: &Unlock, detail: serde_json::Value, act: Action) -> Vec<Action> {
    vec![
        Action::PersistNonce {
            nonce: token.nonce.clone(),
            expires_at_ms: token.expires_at_ms,
        },
        Action::Event(Event {
            event_type: "token_accepted".into(),
            detail,
        }),
        act,
    ]
}

#[derive(Clone, Debug)]
pub struct LockLogic {
    rules: Rules,
    bolt: Option<BoltState>,
    door: Option<DoorState>,
    battery: Option<u8>,
    battery_low_reported: bool,
    /// When the bolt was last retracted for a token (None once it is thrown again).
    unlocked_at_ms: Option<i64>,
    opened_since_unlock: bool,
    startup_pending: bool,
    vouchers: Vouchers,
}

fn valid_nonce(n: &str) -> bool {
    n.len() == 32 && n.bytes().all(|b| b.is_ascii_hexdigit())
}

impl LockLogic {
    pub fn new(rules: Rules) -> Self {
        LockLogic {
            rules,
            bolt: None,
            door: None,
            battery: None,
            battery_low_reported: false,
            unlocked_at_ms: None,
            opened_since_unlock: false,
            startup_pending: true,
            vouchers: Vouchers::default(),
        }
    }

    /// The cameras that watch this lock's door (see [`Vouchers::set`]).
    pub fn set_cameras(&mut self, door_id: &str, cameras: Vec<PublicKey>) -> Vec<Action> {
        self.vouchers.set(door_id, cameras)
    }

    pub fn cameras(&self) -> &[PublicKey] {
        self.vouchers.cameras()
    }

    pub fn door_id(&self) -> Option<&str> {
        self.vouchers.door_id()
    }

    pub fn bolt(&self) -> Option<BoltState> {
        self.bolt
    }
    pub fn door(&self) -> Option<DoorState> {
        self.door
    }
    pub fn battery(&self) -> Option<u8> {
        self.battery
    }

    /// The hardware became unreachable: forget what we knew (it may change unseen).
    pub fn on_unavailable(&mut self) {
        self.bolt = None;
        self.door = None;
    }

    pub fn on_door(&mut self, door: DoorState, now_ms: i64) -> Vec<Action> {
        let prev = self.door.replace(door);
        let mut out = Vec::new();
        if prev == Some(door) {
            return out;
        }
        if prev.is_some() {
            out.push(ev(
                if door == DoorState::Open {
                    "door_opened"
                } else {
                    "door_closed"
                },
                json!({}),
            ));
        }
        match door {
            DoorState::Open => {
                self.opened_since_unlock = true;
                self.startup_pending = false;
            }
            DoorState::Closed => {
                if self.startup_pending {
                    self.startup_pending = false;
                    if self.bolt != Some(BoltState::Locked) {
                        out.extend(self.relock("startup", now_ms));
                    }
                } else if prev == Some(DoorState::Open) && self.bolt != Some(BoltState::Locked) {
                    out.extend(self.relock("door_closed", now_ms));
                }
            }
        }
        out
    }

    pub fn on_bolt(&mut self, bolt: BoltState, now_ms: i64) -> Vec<Action> {
        let prev = self.bolt.replace(bolt);
        let mut out = Vec::new();
        if prev == Some(bolt) {
            return out;
        }
        if prev.is_some() {
            match bolt {
                BoltState::Locked => out.push(ev("bolt_locked", json!({}))),
                BoltState::Unlocked => out.push(ev("bolt_unlocked", json!({}))),
                BoltState::Jammed => out.push(ev("bolt_jammed", json!({}))),
                BoltState::Moving => {}
            }
        }
        match bolt {
            BoltState::Locked => {
                self.unlocked_at_ms = None;
                self.opened_since_unlock = false;
            }
            BoltState::Unlocked => {
                // Unlocked without a token we know of (manual key, thumb turn, or a
                // restart mid-unlock): the timeout rule still applies.
                if self.unlocked_at_ms.is_none() {
                    self.unlocked_at_ms = Some(now_ms);
                }
            }
            BoltState::Moving | BoltState::Jammed => {}
        }
        out
    }

    pub fn on_battery(&mut self, pct: u8) -> Vec<Action> {
        self.battery = Some(pct);
        if pct < self.rules.battery_low_pct && !self.battery_low_reported {
            self.battery_low_reported = true;
            return vec![ev("battery_low", json!({ "pct": pct }))];
        }
        if pct >= self.rules.battery_low_pct.saturating_add(5) {
            self.battery_low_reported = false;
        }
        Vec::new()
    }

    /// An unlock token whose envelope verified. `issued_ms` is the envelope time;
    /// `nonce_seen` whether the nonce store already holds the nonce.
    pub fn on_token(
        &mut self,
        token: &Unlock,
        issued_ms: i64,
        now_ms: i64,
        nonce_seen: bool,
    ) -> Vec<Action> {
        let detail = match self
            .vouchers
            .judge(&self.rules, token, issued_ms, now_ms, nonce_seen)
        {
            Ok(d) => d,
            Err(refusal) => return vec![refusal],
        };
        self.unlocked_at_ms = Some(now_ms);
        self.opened_since_unlock = false;
        self.startup_pending = false;
        accepted(token, detail, Action::Retract)
    }

    /// The owner's remote `lock` command.
    pub fn on_lock_command(&mut self, now_ms: i64) -> Vec<Action> {
        self.relock("command", now_ms)
    }

    /// Time passes: the unlock-timeout rule.
    pub fn tick(&mut self, now_ms: i64) -> Vec<Action> {
        let Some(at) = self.unlocked_at_ms else {
            return Vec::new();
        };
        if self.opened_since_unlock
            || self.door == Some(DoorState::Open)
            || self.bolt == Some(BoltState::Locked)
        {
            return Vec::new();
        }
        if now_ms.saturating_sub(at) >= self.rules.unlock_timeout_ms {
            return self.relock("unlock_timeout", now_ms);
        }
        Vec::new()
    }

    fn relock(&mut self, rule: &str, now_ms: i64) -> Vec<Action> {
        // Retry after another timeout if the bolt does not report locked (jam).
        self.unlocked_at_ms = Some(now_ms);
        self.opened_since_unlock = false;
        vec![ev("relocked", json!({ "rule": rule })), Action::Throw]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A token the owner sent with the explicit camera waiver (the tests of the other
    /// rules do not depend on a camera).
    fn token(nonce: &str, exp: i64) -> Unlock {
        Unlock {
            grant: "delivery:d1".into(),
            nonce: nonce.into(),
            expires_at_ms: exp,
            camera: None,
            camera_waived: Some("owner_override".into()),
        }
    }

    fn camera(seed: u8) -> threshold_proto::DeviceKey {
        threshold_proto::DeviceKey::from_seed(&[seed; 32])
    }

    /// A camera's heartbeat announcing a frame captured at `captured`, as a statement.
    fn statement(k: &threshold_proto::DeviceKey, captured: i64) -> String {
        let hb = threshold_proto::body::Heartbeat {
            frame: Some(threshold_proto::body::FrameSummary {
                seq: 4,
                time_ms: captured,
                sha256: "cd".repeat(32),
                thumb: "00".repeat(64),
            }),
            ..Default::default()
        };
        let m = threshold_proto::SignedMessage::sign(
            k,
            threshold_proto::Kind::Heartbeat,
            k.device_id(),
            2,
            captured + 20,
            serde_json::to_vec(&hb).unwrap(),
        );
        threshold_proto::statement::encode_statement(m.as_bytes())
    }

    fn seen(nonce: &str, exp: i64, statement: String) -> Unlock {
        Unlock {
            camera: Some(statement),
            camera_waived: None,
            ..token(nonce, exp)
        }
    }
    const N1: &str = "00112233445566778899aabbccddeeff";

    fn types(a: &[Action]) -> Vec<String> {
        a.iter()
            .map(|x| match x {
                Action::Event(e) => {
                    let extra = e
                        .detail
                        .get("reason")
                        .or(e.detail.get("rule"))
                        .and_then(|v| v.as_str())
                        .unwrap_or("");
                    if extra.is_empty() {
                        e.event_type.clone()
                    } else {
                        format!("{}:{extra}", e.event_type)
                    }
                }
                Action::PersistNonce { .. } => "persist".into(),
                Action::Retract => "RETRACT".into(),
                Action::Throw => "THROW".into(),
            })
            .collect()
    }

    fn started() -> LockLogic {
        let mut l = LockLogic::new(Rules::default());
        l.on_bolt(BoltState::Locked, 0);
        l.on_door(DoorState::Closed, 0);
        l
    }

    #[test]
    fn valid_token_persists_nonce_then_retracts() {
        let mut l = started();
        let a = l.on_token(&token(N1, 30_000), 1_000, 1_000, false);
        assert_eq!(types(&a), ["persist", "token_accepted", "RETRACT"]);
    }

    #[test]
    fn bad_tokens_are_refused_with_reasons() {
        let mut l = started();
        assert_eq!(
            types(&l.on_token(&token(N1, 30_000), 0, 35_001, false)),
            ["token_refused:expired"]
        );
        assert_eq!(
            types(&l.on_token(&token(N1, 30_000), 0, 34_999, false)).len(),
            3,
            "within skew is fine"
        );
        assert_eq!(
            types(&l.on_token(&token(N1, 30_000), 10_000, 1_000, false)),
            ["token_refused:not_yet_valid"]
        );
        assert_eq!(
            types(&l.on_token(&token(N1, 30_000), 0, 1_000, true)),
            ["token_refused:nonce_reused"]
        );
        assert_eq!(
            types(&l.on_token(&token("xyz", 30_000), 0, 1_000, false)),
            ["token_refused:malformed"]
        );
        let mut t = token(N1, 30_000);
        t.grant.clear();
        assert_eq!(
            types(&l.on_token(&t, 0, 1_000, false)),
            ["token_refused:malformed"]
        );
    }

    #[test]
    fn a_token_opens_only_with_a_fresh_statement_of_the_door_s_own_camera() {
        let mut l = started();
        let (front, garden) = (camera(5), camera(6));
        assert_eq!(
            types(&l.set_cameras("front", vec![front.public()])),
            ["cameras_changed"]
        );
        assert!(
            l.set_cameras("front", vec![front.public()]).is_empty(),
            "no change"
        );
        let now = 100_000;
        let fresh = seen(N1, now + 30_000, statement(&front, now - 200));
        let a = l.on_token(&fresh, now, now, false);
        assert_eq!(types(&a), ["persist", "token_accepted", "RETRACT"]);
        let Action::Event(accepted) = &a[1] else {
            unreachable!()
        };
        assert_eq!(accepted.detail["camera"], front.device_id().to_hex());
        assert_eq!(accepted.detail["capture_ms"], now - 200);
        // Each defect refused with its own reason, before the nonce is used.
        let cases = [
            (
                seen(N1, now + 30_000, statement(&front, now - 3_001)),
                "camera_statement_stale",
            ),
            (
                seen(N1, now + 30_000, statement(&front, now + 2_001)),
                "camera_statement_from_future",
            ),
            (
                seen(N1, now + 30_000, statement(&garden, now)),
                "camera_not_bound",
            ),
            (
                Unlock {
                    camera_waived: None,
                    ..token(N1, now + 30_000)
                },
                "camera_statement_missing",
            ),
            (
                Unlock {
                    camera_waived: Some("because".into()),
                    ..token(N1, now + 30_000)
                },
                "camera_statement_missing",
            ),
            (
                Unlock {
                    camera: Some(statement(&front, now)),
                    ..token(N1, now + 30_000)
                },
                "malformed",
            ),
        ];
        for (t, reason) in cases {
            assert_eq!(
                types(&l.on_token(&t, now, now, false)),
                [format!("token_refused:{reason}")],
                "{reason}"
            );
        }
        // A statement altered after the camera signed it.
        let mut b = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            statement(&front, now),
        )
        .unwrap();
        let n = b.len();
        b[n - 70] ^= 1;
        let forged = seen(
            N1,
            now + 30_000,
            threshold_proto::statement::encode_statement(&b),
        );
        assert_eq!(
            types(&l.on_token(&forged, now, now, false)),
            ["token_refused:camera_statement_bad_signature"]
        );
        // None of those refusals used the nonce or moved the bolt: the same nonce with
        // a fresh statement still opens.
        assert_eq!(
            types(&l.on_token(&fresh, now, now + 1, false)),
            ["persist", "token_accepted", "RETRACT"]
        );
    }

    #[test]
    fn the_camera_check_comes_after_the_token_s_own_checks_and_before_the_nonce() {
        let mut l = started();
        let front = camera(5);
        l.set_cameras("front", vec![front.public()]);
        let now = 100_000;
        let stale = seen(N1, now + 30_000, statement(&front, now - 3_001));
        // An expired token is refused as expired, whatever its statement.
        assert_eq!(
            types(&l.on_token(&stale, now, now + 40_000, false)),
            ["token_refused:expired"]
        );
        // A used nonce with a dark camera is refused for the camera, not the nonce.
        assert_eq!(
            types(&l.on_token(&stale, now, now, true)),
            ["token_refused:camera_statement_stale"]
        );
        let fresh = seen(N1, now + 30_000, statement(&front, now - 10));
        assert_eq!(
            types(&l.on_token(&fresh, now, now, true)),
            ["token_refused:nonce_reused"]
        );
    }

    #[test]
    fn a_lock_that_knows_no_camera_opens_only_for_a_waiver() {
        let mut l = started();
        let now = 100_000;
        let t = seen(N1, now + 30_000, statement(&camera(5), now));
        assert_eq!(
            types(&l.on_token(&t, now, now, false)),
            ["token_refused:camera_not_bound"]
        );
        // Unbinding every camera has the same effect, and is logged.
        l.set_cameras("front", vec![camera(5).public()]);
        let a = l.set_cameras("front", Vec::new());
        let Some(Action::Event(e)) = a.first() else {
            panic!("expected cameras_changed, got {a:?}")
        };
        assert_eq!(e.event_type, "cameras_changed");
        assert_eq!(e.detail, json!({ "door_id": "front", "cameras": [] }));
        assert_eq!(
            types(&l.on_token(&t, now, now, false)),
            ["token_refused:camera_not_bound"]
        );
        assert_eq!(
            types(&l.on_token(&token(N1, now + 30_000), now, now, false)),
            ["persist", "token_accepted", "RETRACT"]
        );
    }

    #[test]
    fn cameras_changed_names_the_door_and_the_camera_ids_in_order() {
        let mut l = started();
        let (a, b) = (camera(5), camera(6));
        let ev = l.set_cameras("front", vec![b.public(), a.public()]);
        let mut ids = [a.device_id().to_hex(), b.device_id().to_hex()];
        ids.sort();
        let [Action::Event(e)] = ev.as_slice() else {
            panic!("{ev:?}")
        };
        assert_eq!(e.detail, json!({ "door_id": "front", "cameras": ids }));
        assert!(
            l.set_cameras("front", vec![a.public(), b.public()])
                .is_empty(),
            "the same set in another order is no change"
        );
        assert_eq!(
            types(&l.set_cameras("back", vec![a.public(), b.public()])),
            ["cameras_changed"],
            "another door is a change"
        );
        assert_eq!(l.door_id(), Some("back"));
    }

    #[test]
    fn the_waiver_is_recorded_and_can_be_refused() {
        let mut l = started();
        l.set_cameras("front", vec![camera(5).public()]);
        let a = l.on_token(&token(N1, 30_000), 0, 1_000, false);
        let Action::Event(accepted) = &a[1] else {
            unreachable!()
        };
        assert_eq!(accepted.detail["camera_waived"], "owner_override");
        let mut strict = LockLogic::new(Rules {
            allow_camera_waiver: false,
            ..Rules::default()
        });
        strict.on_bolt(BoltState::Locked, 0);
        assert_eq!(
            types(&strict.on_token(&token(N1, 30_000), 0, 1_000, false)),
            ["token_refused:camera_waiver_refused"]
        );
        let guest = Unlock {
            camera_waived: Some("guest_grant".into()),
            ..token(N1, 30_000)
        };
        assert_eq!(
            types(&strict.on_token(&guest, 0, 1_000, false)),
            ["token_refused:camera_waiver_refused"]
        );
        let Action::Event(accepted) = &l.on_token(&guest, 0, 1_000, false)[1] else {
            unreachable!()
        };
        assert_eq!(accepted.detail["camera_waived"], "guest_grant");
    }

    #[test]
    fn relocks_when_door_closes_after_opening() {
        let mut l = started();
        l.on_token(&token(N1, 30_000), 0, 0, false);
        assert!(l.on_bolt(BoltState::Moving, 100).is_empty());
        assert_eq!(
            types(&l.on_bolt(BoltState::Unlocked, 200)),
            ["bolt_unlocked"]
        );
        assert_eq!(types(&l.on_door(DoorState::Open, 1_000)), ["door_opened"]);
        // Door held open long past the timeout: no relock while open.
        assert!(l.tick(60_000).is_empty());
        assert_eq!(
            types(&l.on_door(DoorState::Closed, 61_000)),
            ["door_closed", "relocked:door_closed", "THROW"]
        );
        assert_eq!(
            types(&l.on_bolt(BoltState::Locked, 61_200)),
            ["bolt_locked"]
        );
        assert!(l.tick(200_000).is_empty());
    }

    #[test]
    fn relocks_after_timeout_if_door_never_opened_and_retries_on_jam() {
        let mut l = started();
        l.on_token(&token(N1, 30_000), 0, 0, false);
        l.on_bolt(BoltState::Unlocked, 100);
        assert!(l.tick(9_999).is_empty());
        assert_eq!(types(&l.tick(10_000)), ["relocked:unlock_timeout", "THROW"]);
        assert_eq!(
            types(&l.on_bolt(BoltState::Jammed, 10_500)),
            ["bolt_jammed"]
        );
        assert!(l.tick(15_000).is_empty());
        assert_eq!(
            types(&l.tick(20_000)),
            ["relocked:unlock_timeout", "THROW"],
            "retried"
        );
    }

    #[test]
    fn relocks_at_startup_if_door_closed() {
        let mut l = LockLogic::new(Rules::default());
        assert!(
            l.on_bolt(BoltState::Unlocked, 0).is_empty(),
            "first observation is not a change"
        );
        assert_eq!(
            types(&l.on_door(DoorState::Closed, 0)),
            ["relocked:startup", "THROW"]
        );
        // Startup with the door open: relock when it closes.
        let mut l = LockLogic::new(Rules::default());
        l.on_bolt(BoltState::Unlocked, 0);
        assert!(l.on_door(DoorState::Open, 0).is_empty());
        assert_eq!(
            types(&l.on_door(DoorState::Closed, 5)),
            ["door_closed", "relocked:door_closed", "THROW"]
        );
        // Startup locked and closed: nothing to do.
        let mut l = LockLogic::new(Rules::default());
        l.on_bolt(BoltState::Locked, 0);
        assert!(l.on_door(DoorState::Closed, 0).is_empty());
    }

    #[test]
    fn forced_door_is_logged_and_command_and_battery() {
        let mut l = started();
        assert_eq!(types(&l.on_door(DoorState::Open, 5)), ["door_opened"]);
        assert_eq!(
            types(&l.on_door(DoorState::Closed, 6)),
            ["door_closed"],
            "bolt still locked: nothing to throw"
        );
        assert_eq!(types(&l.on_lock_command(7)), ["relocked:command", "THROW"]);
        assert_eq!(types(&l.on_battery(15)), ["battery_low"]);
        assert!(l.on_battery(14).is_empty());
        assert!(l.on_battery(30).is_empty());
        assert_eq!(types(&l.on_battery(10)), ["battery_low"]);
    }
}
