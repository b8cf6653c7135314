//! The opener's decisions, as a pure state machine (time passed in), like the lock's
//! (`crate::lock::logic`), whose token judgement and camera set it shares:
//! - a token is honoured only under the lock's rules (fresh statement from a camera
//!   bound to this door, or the owner's recorded waiver; never a nonce twice), and
//!   then the door opens ([`Action::Retract`] means "open" here);
//! - the hub's `lock` command closes it ([`Action::Throw`] means "close"); a door
//!   already reported closed is not commanded again;
//! - a door opened for a token that is still not closed after `garage_auto_close_ms`
//!   is closed by the opener's own rule, and again every period (no jammer can block
//!   it);
//! - every opening and closing, obstruction and command is an event (law 5).

use super::Position;
use crate::lock::logic::{accepted, Action, Rules, Vouchers};
use serde_json::json;
use threshold_proto::body::{Event, State, Unlock};
use threshold_proto::PublicKey;

fn ev(t: &str, detail: serde_json::Value) -> Action {
    Action::Event(Event {
        event_type: t.to_string(),
        detail,
    })
}

#[derive(Clone, Debug)]
pub struct GarageLogic {
    rules: Rules,
    vouchers: Vouchers,
    position: Option<Position>,
    obstructed: Option<bool>,
    /// When the door was opened for a token, or last closed by the auto-close rule,
    /// while it is not closed.
    auto_close_from_ms: Option<i64>,
}

impl GarageLogic {
    pub fn new(rules: Rules) -> Self {
        GarageLogic {
            rules,
            vouchers: Vouchers::default(),
            position: None,
            obstructed: None,
            auto_close_from_ms: None,
        }
    }

    pub fn set_cameras(&mut self, door_id: &str, cameras: Vec<PublicKey>) -> Vec<Action> {
        self.vouchers.set(door_id, cameras)
    }

    pub fn cameras(&self) -> &[PublicKey] {
        self.vouchers.cameras()
    }

    /// The `state` report: closed only when fully closed; moving or stopped part-way
    /// as `motion`; nothing the agent does not know.
    pub fn state(&self) -> State {
        State {
            door: self.position.map(Position::door),
            motion: self.position.and_then(Position::motion),
            obstructed: self.obstructed,
            ..Default::default()
        }
    }

    /// The opener became unreachable: what it said may change unseen.
    pub fn on_unavailable(&mut self) {
        self.position = None;
        self.obstructed = None;
    }

    pub fn on_position(&mut self, p: Position) -> Vec<Action> {
        let prev = self.position.replace(p);
        if prev == Some(p) {
            return Vec::new();
        }
        let mut out = Vec::new();
        let was_closed = prev.map(|x| x == Position::Closed);
        match (was_closed, p == Position::Closed) {
            (Some(true), false) => out.push(ev("door_opened", json!({}))),
            (Some(false), true) => out.push(ev("door_closed", json!({}))),
            _ => {}
        }
        if p == Position::Stopped {
            out.push(ev("door_stopped", json!({})));
        }
        if p == Position::Closed {
            self.auto_close_from_ms = None;
        }
        out
    }

    pub fn on_obstructed(&mut self, obstructed: bool) -> Vec<Action> {
        let prev = self.obstructed.replace(obstructed);
        match (prev, obstructed) {
            (Some(a), b) if a == b => Vec::new(),
            // The first report of a clear sensor is not news.
            (None, false) => Vec::new(),
            (_, true) => vec![ev("obstruction_detected", json!({}))],
            (_, false) => vec![ev("obstruction_cleared", json!({}))],
        }
    }

    /// An unlock token whose envelope verified: judged as a lock judges it; a door
    /// opened for it is closed by the auto-close rule if nobody closes it.
    pub fn on_token(
        &mut self,
        token: &Unlock,
        issued_ms: i64,
        now_ms: i64,
        nonce_seen: bool,
    ) -> Vec<Action> {
        match self
            .vouchers
            .judge(&self.rules, token, issued_ms, now_ms, nonce_seen)
        {
            Ok(detail) => {
                self.auto_close_from_ms = Some(now_ms);
                accepted(token, detail, Action::Retract)
            }
            Err(refusal) => vec![refusal],
        }
    }

    /// The hub's `lock` command: close.
    pub fn on_close_command(&mut self) -> Vec<Action> {
        self.close("command")
    }

    /// Time passes: the auto-close rule.
    pub fn tick(&mut self, now_ms: i64) -> Vec<Action> {
        let Some(from) = self.auto_close_from_ms else {
            return Vec::new();
        };
        if self.position == Some(Position::Closed)
            || now_ms.saturating_sub(from) < self.rules.garage_auto_close_ms
        {
            return Vec::new();
        }
        self.auto_close_from_ms = Some(now_ms);
        self.close("auto_close")
    }

    fn close(&mut self, reason: &str) -> Vec<Action> {
        if self.position == Some(Position::Closed) {
            return Vec::new();
        }
        let mut out = vec![ev("close_commanded", json!({ "reason": reason }))];
        if self.obstructed == Some(true) {
            // The opener will refuse or reverse; say so in the log next to the command.
            out.push(ev("close_while_obstructed", json!({ "reason": reason })));
        }
        out.push(Action::Throw);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use threshold_proto::body::{DoorMotion, DoorState};

    const N1: &str = "00112233445566778899aabbccddeeff";

    fn waived(nonce: &str, exp: i64) -> Unlock {
        Unlock {
            grant: "delivery:d1".into(),
            nonce: nonce.into(),
            expires_at_ms: exp,
            camera: None,
            camera_waived: Some("owner_override".into()),
        }
    }

    fn names(a: &[Action]) -> Vec<String> {
        a.iter()
            .map(|x| match x {
                Action::Event(e) => e.event_type.clone(),
                Action::PersistNonce { .. } => "persist".into(),
                Action::Retract => "OPEN".into(),
                Action::Throw => "CLOSE".into(),
            })
            .collect()
    }

    fn closed() -> GarageLogic {
        let mut g = GarageLogic::new(Rules::default());
        g.on_position(Position::Closed);
        g.on_obstructed(false);
        g
    }

    #[test]
    fn a_valid_token_opens_the_door_after_its_nonce_is_durable() {
        let mut g = closed();
        let a = g.on_token(&waived(N1, 30_000), 1_000, 1_000, false);
        assert_eq!(names(&a), ["persist", "token_accepted", "OPEN"]);
        // The same nonce again: refused, nothing moves.
        let a = g.on_token(&waived(N1, 30_000), 1_000, 1_100, true);
        assert_eq!(names(&a), ["token_refused"]);
    }

    #[test]
    fn a_token_without_the_door_s_camera_is_refused_like_a_lock_s() {
        let mut g = closed();
        let mut t = waived(N1, 30_000);
        t.camera_waived = None;
        let a = g.on_token(&t, 1_000, 1_000, false);
        assert_eq!(names(&a), ["token_refused"]);
        let Some(Action::Event(e)) = a.first() else {
            panic!("{a:?}")
        };
        assert!(
            e.detail["reason"]
                .as_str()
                .unwrap_or("")
                .starts_with("camera_"),
            "{e:?}"
        );
    }

    #[test]
    fn openings_closings_and_stops_are_logged_and_reported_truthfully() {
        let mut g = closed();
        assert_eq!(names(&g.on_position(Position::Opening)), ["door_opened"]);
        assert_eq!(
            (g.state().door, g.state().motion),
            (Some(DoorState::Open), Some(DoorMotion::Opening))
        );
        assert!(
            g.on_position(Position::Opening).is_empty(),
            "a repeat is not news"
        );
        assert!(names(&g.on_position(Position::Open)).is_empty());
        assert_eq!(names(&g.on_position(Position::Stopped)), ["door_stopped"]);
        assert_eq!(g.state().door, Some(DoorState::Open), "part-way is open");
        assert!(g.on_position(Position::Closing).is_empty());
        assert_eq!(names(&g.on_position(Position::Closed)), ["door_closed"]);
        assert_eq!(
            (g.state().door, g.state().motion),
            (Some(DoorState::Closed), None)
        );
        g.on_unavailable();
        assert_eq!(g.state(), State::default(), "unknown, not the last value");
    }

    #[test]
    fn obstructions_are_logged_when_they_start_and_end() {
        let mut g = GarageLogic::new(Rules::default());
        assert!(g.on_obstructed(false).is_empty());
        assert_eq!(names(&g.on_obstructed(true)), ["obstruction_detected"]);
        assert!(g.on_obstructed(true).is_empty());
        assert_eq!(g.state().obstructed, Some(true));
        g.on_position(Position::Open);
        assert_eq!(
            names(&g.on_close_command()),
            ["close_commanded", "close_while_obstructed", "CLOSE"]
        );
        assert_eq!(names(&g.on_obstructed(false)), ["obstruction_cleared"]);
    }

    #[test]
    fn the_close_command_closes_an_open_door_and_leaves_a_closed_one_alone() {
        let mut g = closed();
        assert!(g.on_close_command().is_empty());
        g.on_position(Position::Open);
        assert_eq!(names(&g.on_close_command()), ["close_commanded", "CLOSE"]);
        // Unknown position (opener unreachable): command anyway.
        g.on_unavailable();
        assert_eq!(names(&g.on_close_command()), ["close_commanded", "CLOSE"]);
    }

    #[test]
    fn a_door_opened_for_a_token_and_left_open_is_closed_by_the_opener_s_own_rule() {
        let mut g = closed();
        let period = Rules::default().garage_auto_close_ms;
        g.on_token(&waived(N1, 30_000), 0, 0, false);
        g.on_position(Position::Open);
        assert!(g.tick(period - 1).is_empty());
        assert_eq!(names(&g.tick(period)), ["close_commanded", "CLOSE"]);
        // Still open (obstructed, or the command lost): again one period later.
        assert!(g.tick(period + 1).is_empty());
        assert_eq!(names(&g.tick(2 * period)), ["close_commanded", "CLOSE"]);
        // Closed: the rule rests until the next token.
        g.on_position(Position::Closed);
        assert!(g.tick(10 * period).is_empty());
        // A door opened by hand (no token) is not the opener's to close.
        g.on_position(Position::Open);
        assert!(g.tick(20 * period).is_empty());
    }
}
