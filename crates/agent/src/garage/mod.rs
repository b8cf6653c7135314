//! The garage-door opener side: the door itself is the barrier. An opener takes unlock
//! tokens like a lock (checked by the same rules: the door's own camera must vouch)
//! and opens the door; the hub's `lock` command closes it. Drivers speak to the
//! opener hardware through MQTT (Zigbee2MQTT covers, ratgdo, ESPHome covers) or
//! simulate one.

pub mod logic;
pub mod mqtt;
pub mod simulator;

use crate::lock::DriverHandle;
use threshold_proto::body::{DoorMotion, DoorState};

/// Where a garage door is, as its opener reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Position {
    Open,
    Closed,
    Opening,
    Closing,
    /// Stopped part-way.
    Stopped,
}

impl Position {
    /// A garage door is closed only when fully closed.
    pub fn door(self) -> DoorState {
        match self {
            Position::Closed => DoorState::Closed,
            _ => DoorState::Open,
        }
    }

    pub fn motion(self) -> Option<DoorMotion> {
        match self {
            Position::Opening => Some(DoorMotion::Opening),
            Position::Closing => Some(DoorMotion::Closing),
            Position::Stopped => Some(DoorMotion::Stopped),
            Position::Open | Position::Closed => None,
        }
    }
}

/// What an opener driver observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpenerEvent {
    Position(Position),
    /// The opener itself says it does not know where the door is.
    PositionUnknown,
    /// The safety sensor (photo-eye) sees something in the door's way, or no longer.
    Obstructed(bool),
    /// Whether the opener is reachable; while it is not, its state is unknown.
    Available(bool),
    /// A message from the opener that could not be understood, with the reason: logged
    /// and counted, never guessed at.
    Unintelligible {
        topic: String,
        reason: String,
    },
}

/// What the agent asks of the opener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenerCommand {
    Open,
    Close,
}

pub type OpenerHandle = DriverHandle<OpenerEvent, OpenerCommand>;

/// Opener hardware behind one interface.
pub trait OpenerDriver: Send {
    /// Start the driver (spawns its tasks on the current runtime). The first events
    /// report the current state as soon as it is known.
    fn start(self: Box<Self>) -> OpenerHandle;
}
