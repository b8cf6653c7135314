//! The device gateway: MQTT in, verified and typed device messages out.
//!
//! Flow: devices connect to the hub's own MQTT endpoint ([`endpoint`]), or, with an
//! external broker, [`mqtt`] receives their publishes and hands them, sharded by
//! device so each device's messages stay in order, to workers; either way every
//! uplink goes through [`ingest::handle`]. Ingest
//! verifies (envelope, signature, replay window, clocks) and applies the message;
//! [`monitor`] turns the passage of time into liveness transitions and alerts;
//! [`downlink`] signs and publishes the hub's messages to devices. What a message
//! means is the domain's: the gateway hands it on through [`port`].

pub mod broker_log;
pub mod connected;
pub mod downlink;
pub mod dynsec;
pub mod endpoint;
pub mod ingest;
pub mod lag;
pub mod load;
pub mod loading;
pub mod monitor;
pub mod mqtt;
pub mod port;
pub mod registry;
pub mod transition;
pub mod verifier;
