//! A delivery's life, including the incident when its door's camera goes blind, as a
//! state machine without I/O: the hub feeds it what happened and carries out the
//! effects it returns (law 4; law 10: every incident ends).
//!
//! ```text
//!  scheduled ──entry granted──▶ inside ──courier done / window over──▶ delivered
//!      │                          │                                      │
//!      │ window over              │ camera blind                         │ camera blind
//!      ▼                          ▼                                      ▼
//!   expired                  camera_lost ◀───────────────────────────────┘
//!                              │     │ no fresh "closed and locked" within the
//!               fresh "closed  │     │ incident limit: alert, relock again
//!               and locked"    ▼     ▼
//!              ended_after_camera_loss   ended_unverified ◀── delivered past the
//!                                                             secure limit
//!   delivered ──fresh "closed and locked"──▶ completed
//! ```
//!
//! A garage door is its own barrier: "closed and locked" is a fresh "closed", the hub
//! commands it closed as soon as the courier is done (and on a camera loss), and not
//! closed within the garage limit is `garage_left_open` with a second close command.
//!
//! Every state but `scheduled`, `inside`, `delivered` and `camera_lost` is terminal;
//! the access session of a delivery is open exactly while it is in one of those three
//! after `scheduled`. Each transition happens once (the hub applies it with a
//! conditional update), so each effect happens once.

use crate::liveness::Blind;
use crate::Millis;
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting for the courier.
    Scheduled,
    /// Entry granted: the access session is open, the courier may open the door.
    Inside,
    /// The courier says the parcel is in and they are out; waiting for a fresh signed
    /// "closed and locked".
    Delivered,
    /// The door's camera went blind while the session was open: the incident. The
    /// courier is told to leave; the hub relocks as soon as the door is closed.
    CameraLost,
    /// Secured by a fresh signed "closed and locked" after delivery.
    Completed,
    /// Secured by a fresh signed "closed and locked" after the camera was lost.
    EndedAfterCameraLoss,
    /// Not confirmed closed and locked within the limit; escalated to the owner.
    EndedUnverified,
    /// The window passed without an entry.
    Expired,
}

impl DeliveryState {
    pub const ALL: [DeliveryState; 8] = [
        DeliveryState::Scheduled,
        DeliveryState::Inside,
        DeliveryState::Delivered,
        DeliveryState::CameraLost,
        DeliveryState::Completed,
        DeliveryState::EndedAfterCameraLoss,
        DeliveryState::EndedUnverified,
        DeliveryState::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Scheduled => "scheduled",
            DeliveryState::Inside => "inside",
            DeliveryState::Delivered => "delivered",
            DeliveryState::CameraLost => "camera_lost",
            DeliveryState::Completed => "completed",
            DeliveryState::EndedAfterCameraLoss => "ended_after_camera_loss",
            DeliveryState::EndedUnverified => "ended_unverified",
            DeliveryState::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryState> {
        Self::ALL.into_iter().find(|d| d.as_str() == s)
    }

    /// Whether the delivery's access session is open (entry granted, not ended).
    pub fn session_open(self) -> bool {
        matches!(
            self,
            DeliveryState::Inside | DeliveryState::Delivered | DeliveryState::CameraLost
        )
    }

    pub fn is_terminal(self) -> bool {
        !self.session_open() && self != DeliveryState::Scheduled
    }

    /// The stored names of the states with an open session, for queries.
    pub fn session_open_names() -> Vec<&'static str> {
        Self::names_where(Self::session_open)
    }

    /// The stored names of the states that are not final, for queries.
    pub fn unfinished_names() -> Vec<&'static str> {
        Self::names_where(|s| !s.is_terminal())
    }

    fn names_where(keep: impl Fn(DeliveryState) -> bool) -> Vec<&'static str> {
        Self::ALL
            .into_iter()
            .filter(|s| keep(*s))
            .map(Self::as_str)
            .collect()
    }

    /// The states the machine may move to from this one.
    pub fn successors(self) -> &'static [DeliveryState] {
        use DeliveryState::*;
        match self {
            Scheduled => &[Inside, Expired],
            Inside => &[Delivered, CameraLost],
            Delivered => &[Completed, CameraLost, EndedUnverified],
            CameraLost => &[EndedAfterCameraLoss, EndedUnverified],
            Completed | EndedAfterCameraLoss | EndedUnverified | Expired => &[],
        }
    }
}

/// What secures the delivery's door.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Barrier {
    /// A lock's bolt: the lock relocks on its own once the door closes.
    #[default]
    Bolt,
    /// A garage door: the door itself; only the hub's command closes it.
    GarageDoor,
}

/// What the machine needs to know about one delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub state: DeliveryState,
    pub barrier: Barrier,
    pub window_end: Millis,
    /// When the courier said delivered (or the window ended with the courier inside).
    pub delivered_at: Option<Millis>,
    /// When the door's camera was found blind during the session.
    pub camera_lost_at: Option<Millis>,
}

/// Something that happened to a delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// The entry rule allowed the courier in (the hub's claim won).
    EntryGranted,
    /// The courier pressed "Delivered".
    CourierDone,
    /// The door is not watched by any of its cameras now.
    CameraBlind(Blind),
    /// The door reports closed (fresh), bolt not confirmed locked.
    DoorClosed,
    /// A fresh signed report says the door is closed and locked.
    Secured,
    /// Time passed: deadlines.
    Tick,
}

/// What the hub must do for a transition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    Alert(Alert),
    /// Tell the courier's app to leave now and close the door.
    LeaveNow,
    /// Send the door's lock the `lock` command (throw the bolt; close a garage door).
    Relock,
    /// Close the access session: later door openings are not this delivery's.
    CloseSession,
}

/// The alerts a delivery can raise; each at most once per delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Alert {
    /// The door's camera went blind while the session was open.
    CameraLostDuringDelivery,
    /// After the camera was lost, the door was not confirmed closed and locked within
    /// the incident limit.
    DoorMayBeUnlocked,
    /// After "delivered", the door was not confirmed closed and locked within the limit.
    SessionNotSecured,
    /// A garage door was not confirmed closed within the garage limit after the
    /// courier was done or the camera was lost.
    GarageLeftOpen,
}

impl Alert {
    pub fn code(self) -> &'static str {
        match self {
            Alert::CameraLostDuringDelivery => "camera_lost_during_delivery",
            Alert::DoorMayBeUnlocked => "door_may_be_unlocked",
            Alert::SessionNotSecured => "session_not_secured",
            Alert::GarageLeftOpen => "garage_left_open",
        }
    }
}

/// The time limits of the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// After "delivered": how long a fresh "closed and locked" may take.
    pub secure_ms: Millis,
    /// After the camera was lost: how long a fresh "closed and locked" may take.
    pub incident_ms: Millis,
    /// After the hub commanded a garage door closed (courier done): how long a fresh
    /// "closed" may take.
    pub garage_close_ms: Millis,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            secure_ms: 120_000,
            incident_ms: 60_000,
            garage_close_ms: 60_000,
        }
    }
}

/// A transition and what it requires of the hub.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub from: DeliveryState,
    pub to: DeliveryState,
    pub effects: Vec<Effect>,
}

/// Why an input cannot apply (for inputs a person sends, such as "Delivered").
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("the delivery is {0:?}, not inside")]
    NotInside(DeliveryState),
    #[error("the delivery was stopped after its camera was lost")]
    CameraLost,
}

/// What `input` at `now` does to `d`: `Ok(None)` when it changes nothing (a repeated
/// report, a deadline not reached), an error only for a person's action that does not
/// fit the state.
pub fn step(
    d: &Delivery,
    input: Input,
    now: Millis,
    limits: &Limits,
) -> Result<Option<Step>, Invalid> {
    use DeliveryState::*;
    use Effect::{CloseSession, LeaveNow, Relock};
    let to = |to: DeliveryState, effects: Vec<Effect>| {
        Ok(Some(Step {
            from: d.state,
            to,
            effects,
        }))
    };
    let garage = d.barrier == Barrier::GarageDoor;
    // A garage door closes only when told: at once when the courier is done.
    let close_garage = || if garage { vec![Relock] } else { vec![] };
    let (secure_ms, not_secured, incident_alert) = if garage {
        (
            limits.garage_close_ms,
            Alert::GarageLeftOpen,
            Alert::GarageLeftOpen,
        )
    } else {
        (
            limits.secure_ms,
            Alert::SessionNotSecured,
            Alert::DoorMayBeUnlocked,
        )
    };
    match (d.state, input) {
        (Scheduled, Input::EntryGranted) => to(Inside, vec![]),
        (Scheduled, Input::Tick) if now > d.window_end => to(Expired, vec![]),
        (Inside, Input::CourierDone) => to(Delivered, close_garage()),
        (Inside, Input::Tick) if now > d.window_end => to(Delivered, close_garage()),
        (Inside | Delivered, Input::CameraBlind(_)) => {
            let mut effects = vec![Effect::Alert(Alert::CameraLostDuringDelivery), LeaveNow];
            effects.extend(close_garage());
            to(CameraLost, effects)
        }
        (Delivered, Input::Secured) => to(Completed, vec![CloseSession]),
        (Delivered, Input::Tick)
            if d.delivered_at
                .is_some_and(|t| now.saturating_sub(t) > secure_ms) =>
        {
            to(
                EndedUnverified,
                vec![Effect::Alert(not_secured), Relock, CloseSession],
            )
        }
        (CameraLost, Input::DoorClosed) => Ok(Some(Step {
            from: CameraLost,
            to: CameraLost,
            effects: vec![Relock],
        })),
        (CameraLost, Input::Secured) => to(EndedAfterCameraLoss, vec![CloseSession]),
        (CameraLost, Input::Tick)
            if d.camera_lost_at
                .is_some_and(|t| now.saturating_sub(t) > limits.incident_ms) =>
        {
            to(
                EndedUnverified,
                vec![Effect::Alert(incident_alert), Relock, CloseSession],
            )
        }
        (state, Input::CourierDone) => match state {
            Delivered => Ok(None),
            CameraLost | EndedAfterCameraLoss => Err(Invalid::CameraLost),
            other => Err(Invalid::NotInside(other)),
        },
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn query_names_follow_the_state_rules() {
        assert_eq!(
            DeliveryState::session_open_names(),
            ["inside", "delivered", "camera_lost"]
        );
        assert_eq!(
            DeliveryState::unfinished_names(),
            ["scheduled", "inside", "delivered", "camera_lost"]
        );
    }

    use super::*;
    use DeliveryState::*;

    const L: Limits = Limits {
        secure_ms: 120_000,
        incident_ms: 60_000,
        garage_close_ms: 45_000,
    };

    fn d(state: DeliveryState) -> Delivery {
        Delivery {
            state,
            barrier: Barrier::Bolt,
            window_end: 100_000,
            delivered_at: None,
            camera_lost_at: None,
        }
    }

    fn to(d: &Delivery, i: Input, now: Millis) -> Option<DeliveryState> {
        step(d, i, now, &L).unwrap().map(|s| s.to)
    }

    #[test]
    fn the_happy_path() {
        assert_eq!(to(&d(Scheduled), Input::EntryGranted, 1), Some(Inside));
        assert_eq!(to(&d(Inside), Input::CourierDone, 2), Some(Delivered));
        let s = step(&d(Delivered), Input::Secured, 3, &L).unwrap().unwrap();
        assert_eq!(s.to, Completed);
        assert_eq!(s.effects, vec![Effect::CloseSession]);
    }

    #[test]
    fn a_blind_camera_during_the_session_is_one_incident_that_ends() {
        for from in [Inside, Delivered] {
            let s = step(&d(from), Input::CameraBlind(Blind::Stale), 10, &L)
                .unwrap()
                .unwrap();
            assert_eq!(s.to, CameraLost);
            assert_eq!(
                s.effects,
                vec![
                    Effect::Alert(Alert::CameraLostDuringDelivery),
                    Effect::LeaveNow
                ]
            );
        }
        let mut lost = d(CameraLost);
        lost.camera_lost_at = Some(10);
        // Blind again: nothing new (one incident, not a stream).
        assert_eq!(to(&lost, Input::CameraBlind(Blind::Offline), 20), None);
        // The door closes: relock, and stay in the incident until it is confirmed.
        let s = step(&lost, Input::DoorClosed, 30, &L).unwrap().unwrap();
        assert_eq!((s.to, s.effects), (CameraLost, vec![Effect::Relock]));
        assert_eq!(to(&lost, Input::Secured, 40), Some(EndedAfterCameraLoss));
    }

    #[test]
    fn an_incident_not_secured_in_time_escalates_once_and_ends() {
        let mut lost = d(CameraLost);
        lost.camera_lost_at = Some(1_000);
        assert_eq!(to(&lost, Input::Tick, 61_000), None);
        let s = step(&lost, Input::Tick, 61_001, &L).unwrap().unwrap();
        assert_eq!(s.to, EndedUnverified);
        assert_eq!(
            s.effects,
            vec![
                Effect::Alert(Alert::DoorMayBeUnlocked),
                Effect::Relock,
                Effect::CloseSession
            ]
        );
        assert!(EndedUnverified.is_terminal());
    }

    #[test]
    fn delivered_but_never_secured_escalates() {
        let mut del = d(Delivered);
        del.delivered_at = Some(0);
        assert_eq!(to(&del, Input::Tick, 120_000), None);
        assert_eq!(to(&del, Input::Tick, 120_001), Some(EndedUnverified));
    }

    fn garage(state: DeliveryState) -> Delivery {
        Delivery {
            barrier: Barrier::GarageDoor,
            ..d(state)
        }
    }

    #[test]
    fn a_garage_is_closed_by_the_hub_when_the_courier_is_done_and_escalates_if_left_open() {
        // Done (or the window over with the courier inside): close the garage at once.
        for (input, now) in [(Input::CourierDone, 2), (Input::Tick, 100_001)] {
            let s = step(&garage(Inside), input, now, &L).unwrap().unwrap();
            assert_eq!((s.to, s.effects), (Delivered, vec![Effect::Relock]));
        }
        // A lock's door is not commanded: the lock relocks on its own when it closes.
        let s = step(&d(Inside), Input::CourierDone, 2, &L)
            .unwrap()
            .unwrap();
        assert!(s.effects.is_empty());
        // Only a fresh "closed" completes it.
        let mut del = garage(Delivered);
        del.delivered_at = Some(0);
        assert_eq!(to(&del, Input::Secured, 10), Some(Completed));
        // Not closed within the garage limit (not the lock's): left open, closed again.
        assert_eq!(to(&del, Input::Tick, 45_000), None);
        let s = step(&del, Input::Tick, 45_001, &L).unwrap().unwrap();
        assert_eq!(s.to, EndedUnverified);
        assert_eq!(
            s.effects,
            vec![
                Effect::Alert(Alert::GarageLeftOpen),
                Effect::Relock,
                Effect::CloseSession
            ]
        );
    }

    #[test]
    fn a_garage_whose_camera_is_lost_is_closed_at_once() {
        let s = step(&garage(Inside), Input::CameraBlind(Blind::Stale), 5, &L)
            .unwrap()
            .unwrap();
        assert_eq!(s.to, CameraLost);
        assert_eq!(
            s.effects,
            vec![
                Effect::Alert(Alert::CameraLostDuringDelivery),
                Effect::LeaveNow,
                Effect::Relock
            ]
        );
        let mut lost = garage(CameraLost);
        lost.camera_lost_at = Some(0);
        assert_eq!(to(&lost, Input::Secured, 9), Some(EndedAfterCameraLoss));
        let s = step(&lost, Input::Tick, 60_001, &L).unwrap().unwrap();
        assert_eq!(
            s.effects.first(),
            Some(&Effect::Alert(Alert::GarageLeftOpen))
        );
    }

    #[test]
    fn windows_end() {
        assert_eq!(to(&d(Scheduled), Input::Tick, 100_000), None);
        assert_eq!(to(&d(Scheduled), Input::Tick, 100_001), Some(Expired));
        // A courier inside past the window counts as done: the secure limit runs.
        assert_eq!(to(&d(Inside), Input::Tick, 100_001), Some(Delivered));
    }

    #[test]
    fn the_courier_cannot_finish_a_compromised_delivery() {
        assert_eq!(
            step(&d(CameraLost), Input::CourierDone, 1, &L),
            Err(Invalid::CameraLost)
        );
        assert_eq!(
            step(&d(Scheduled), Input::CourierDone, 1, &L),
            Err(Invalid::NotInside(Scheduled))
        );
        assert_eq!(step(&d(Delivered), Input::CourierDone, 1, &L), Ok(None));
    }

    #[test]
    fn terminal_states_ignore_everything() {
        for s in [Completed, EndedAfterCameraLoss, EndedUnverified, Expired] {
            for i in [
                Input::EntryGranted,
                Input::CameraBlind(Blind::Offline),
                Input::DoorClosed,
                Input::Secured,
                Input::Tick,
            ] {
                assert_eq!(to(&d(s), i, i64::MAX), None, "{s:?} {i:?}");
            }
            assert!(s.successors().is_empty());
        }
    }

    #[test]
    fn every_transition_is_a_declared_successor() {
        let inputs = [
            Input::EntryGranted,
            Input::CourierDone,
            Input::CameraBlind(Blind::Stale),
            Input::DoorClosed,
            Input::Secured,
            Input::Tick,
        ];
        for s in DeliveryState::ALL {
            let del = Delivery {
                state: s,
                barrier: Barrier::Bolt,
                window_end: 0,
                delivered_at: Some(0),
                camera_lost_at: Some(0),
            };
            for i in inputs {
                if let Ok(Some(st)) = step(&del, i, i64::MAX / 2, &L) {
                    assert!(
                        st.to == s || s.successors().contains(&st.to),
                        "{s:?} --{i:?}--> {:?}",
                        st.to
                    );
                }
            }
        }
    }

    #[test]
    fn states_round_trip_as_text() {
        for s in DeliveryState::ALL {
            assert_eq!(DeliveryState::parse(s.as_str()), Some(s));
        }
        assert_eq!(DeliveryState::parse("inside "), None);
    }
}
