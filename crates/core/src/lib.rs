//! Threshold's domain rules, free of I/O. Every function that depends on time takes
//! `now` (Unix milliseconds, hub clock) as a parameter, so tests drive simulated time.
#![forbid(unsafe_code)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![cfg_attr(test, allow(clippy::indexing_slicing, clippy::unwrap_used))]

pub mod alert;
pub mod audit;
pub mod clock_offset;
pub mod delivery;
pub mod entry;
pub mod history;
pub mod hours;
pub mod ingest;
pub mod liveness;
pub mod opening;
pub mod ranges;
pub mod record_log;
pub mod replay;

/// Unix time in milliseconds. The hub's clock unless a name says otherwise.
pub type Millis = i64;
