//! The benchmarks behind `threshold bench`, kept out of the product libraries:
//!
//! - [`unlock`]: entry decisions per second and their latency through the real HTTP
//!   API, and unlock-to-bolt latency through the real broker, with simulated locks
//!   that check the camera statement as a real lock does.
//! - [`liveness`]: camera liveness at scale; the simulated cameras run in a second
//!   process ([`liveness::run_devices`]).
//! - [`overload`]: the liveness bench with a flood of extra cameras for part of the
//!   run: what the hub says and holds while offered more than it can take.
//! - [`fleet`]: the same against several hub nodes sharing PostgreSQL and a broker,
//!   with one node killed mid-run (failover time, duplicates).
//! - [`wids`]: the Wi-Fi detector's throughput on a capture file.
//!
//! What each measures, and the current figures: docs/performance.md.

pub mod fleet;
pub mod liveness;
pub mod overload;
pub mod progress;
pub mod unlock;
pub mod wids;
