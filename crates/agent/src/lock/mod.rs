//! The lock and door-contact side: drivers for the hardware, the pure decision logic,
//! and the store of used unlock nonces.

pub mod cameras;
pub mod logic;
pub mod nonces;
pub mod simulator;
pub mod zigbee;

use threshold_proto::body::{BoltState, DoorState};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// What a driver observed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DriverEvent {
    Bolt(BoltState),
    Door(DoorState),
    Battery(u8),
    /// Whether the hardware is reachable (Zigbee2MQTT availability). While it is not,
    /// the agent reports bolt and door as unknown rather than repeating stale values.
    Available(bool),
}

/// What the agent asks of the lock hardware.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoltCommand {
    /// Throw the bolt.
    Lock,
    /// Retract the bolt.
    Unlock,
}

/// A running driver: events out, commands in. Dropping it stops the driver. (Garage
/// openers use it with their own event and command types.)
pub struct DriverHandle<E = DriverEvent, C = BoltCommand> {
    pub events: mpsc::Receiver<E>,
    pub commands: mpsc::Sender<C>,
    task: JoinHandle<()>,
}

impl<E, C> DriverHandle<E, C> {
    pub fn new(events: mpsc::Receiver<E>, commands: mpsc::Sender<C>, task: JoinHandle<()>) -> Self {
        DriverHandle {
            events,
            commands,
            task,
        }
    }
}

impl<E, C> Drop for DriverHandle<E, C> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Lock (or contact sensor) hardware behind one interface.
pub trait LockDriver: Send {
    /// Start the driver (spawns its tasks on the current runtime). The first events
    /// report the current state as soon as it is known.
    fn start(self: Box<Self>) -> DriverHandle;
}
