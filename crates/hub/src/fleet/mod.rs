//! Several hub nodes on one PostgreSQL and one broker (docs/architecture.md "Fleet").
//!
//! - [`ownership`]: which homes this node acts for (a single hub: all of them);
//! - [`leases`]: holding partitions of homes, one node each, taken over when a node dies;
//! - [`changes`]: what every node caches, reloaded when another node changes it;
//! - [`downlinks`]: every message to a device sent by the node acting for its home;
//! - [`peers`]: live events raised on one node, seen on every node's sockets.

pub mod changes;
pub mod downlinks;
pub mod leases;
pub mod ownership;
pub mod peers;

use crate::state::AppState;

/// Live events are kept this long for nodes catching up after a lost connection.
pub const EVENTS_KEPT_MS: i64 = 10 * 60 * 1000;

/// Start this node's part in the fleet (nothing for a single hub): the lease loop,
/// the listener for changes and events, and the forwarder of its own events.
pub fn spawn(state: &AppState) {
    if state.fleet.node_id().is_none() {
        return;
    }
    leases::spawn(state.clone());
    peers::spawn(state.clone());
}
