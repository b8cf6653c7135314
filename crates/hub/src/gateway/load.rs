//! Whether the hub keeps up with its devices' messages (`threshold_core::ingest`), and
//! what follows when it does not: the hub's overload is its own fault, never a camera's.
//!
//! Ingest records the lag of every verified live message; the liveness ticker judges
//! every pass, with how late its own timer fired. While the hub is behind:
//! - ingest treats a message signed long ago as late, not as a device clock out of
//!   skew, and learns no clock offsets from queue-delayed arrivals;
//! - the monitor reports no device as less live than before (no `device.liveness`
//!   lost, no offline notice), for as long as it is behind and one live window after;
//! - the access layer blames no camera (no incident) and refuses entries with
//!   `hub_degraded` (`AccessState::set_keeping_up`);
//! - one system alert is raised (`hub_behind`, resolved when it catches up), `/healthz`
//!   says degraded and `threshold_hub_behind` is 1.

use crate::state::AppState;
use serde_json::json;
use threshold_core::ingest::LoadChange;
use threshold_core::Millis;

/// Judge the hub's load now (each liveness pass), given how late that pass's timer
/// fired, and switch what depends on it at once; the system alert is left to
/// [`apply`], which writes to the database.
pub fn judge(state: &AppState, timer_late_ms: Millis) -> Option<LoadChange> {
    let now = state.clock.now_ms();
    let change = state.load.judge(now, timer_late_ms)?;
    match change {
        LoadChange::FellBehind { at, lag_ms } => {
            state.access.set_keeping_up(false, at);
            state.metrics.hub_behind.set(1);
            tracing::error!(
                lag_ms,
                "hub is behind with its devices' messages: liveness cannot be vouched for; no device is blamed and entries are refused until it catches up"
            );
        }
        LoadChange::CaughtUp { at, since } => {
            state.access.set_keeping_up(true, at);
            state.metrics.hub_behind.set(0);
            tracing::warn!(
                behind_ms = at - since,
                "hub keeps up with its devices' messages again"
            );
        }
    }
    Some(change)
}

/// The system alert's kind.
const KIND: &str = "hub_behind";

/// Raise the episode's system alert when the hub falls behind; resolve it when the
/// hub catches up. Changes are applied in the order they happened.
pub async fn apply(state: &AppState, change: LoadChange) {
    match change {
        LoadChange::FellBehind { at, lag_ms } => {
            let message = format!(
                "The hub is behind with its devices' messages (they reach it {:.1} s after they were signed; the live window is {:.1} s). It cannot vouch for any camera: entries are refused and no camera is called lost until it catches up.",
                lag_ms as f64 / 1000.0,
                state.config.live_window_ms as f64 / 1000.0
            );
            let evidence = json!({
                "lag_ms": lag_ms,
                "live_window_ms": state.config.live_window_ms,
                "devices": state.registry.len(),
            });
            crate::alerts::system::raise(state, KIND, &message, evidence, at).await;
        }
        LoadChange::CaughtUp { at, since } => {
            crate::alerts::system::resolve(state, KIND, since, at).await;
        }
    }
}
