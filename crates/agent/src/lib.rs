//! Threshold device agents: the programs that run next to a camera, a lock or a door
//! contact and speak the device protocol (`threshold-proto`) to the hub over MQTT 5.
//!
//! The shape follows the laws in the design brief:
//! - every durable record (event, frame) is signed when it is created and written to an
//!   on-disk [`outbox`] before it is sent, and stays there until the hub acknowledges
//!   it, so a jammed link or a power cut loses nothing (laws 5, 6, 9);
//! - the lock decides on its own ([`lock::logic`]) when to relock, so a jammer cannot
//!   hold a door open by blocking a command (law 4);
//! - unlock tokens are checked by the lock itself: hub signature, recipient, expiry,
//!   single use (law 3).
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod agent;
pub mod camera;
pub mod clock;
pub mod crc32;
mod fsutil;
pub mod garage;
pub mod identity;
pub mod link;
pub mod lock;
pub mod outbox;
pub mod renew;
pub mod signer;
pub mod tls;
pub mod transport_seq;
pub mod wifi;

#[cfg(test)]
pub(crate) mod testutil;

pub use agent::{
    run_camera, run_contact, run_garage, run_lock, CameraConfig, CommonConfig, ContactConfig,
    ContactDriverConfig, GarageConfig, GarageDriverConfig, LockConfig, LockDriverConfig,
};
pub use camera::SourceConfig;
pub use garage::mqtt::{Dialect as OpenerDialect, OpenerMqttConfig};
pub use garage::simulator::SimulatedGarage;
pub use garage::Position as GaragePosition;
pub use link::LinkControl;
pub use lock::simulator::SimulatedHome;
pub use lock::zigbee::Z2mConfig;
pub use wifi::{run_wifi_sensor, WifiSensorAgentConfig, WifiSensorConfig};
