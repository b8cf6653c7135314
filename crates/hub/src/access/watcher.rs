//! The access pass, every 250 ms (and on demand in tests, on their own clock), over the
//! open deliveries held in memory (`access::open`):
//! - every open delivery whose door is no longer watched becomes an incident, however
//!   the hub came to know (a transition seen live, or a camera that never came back
//!   after a hub restart), unless the hub may not blame it yet
//!   (`AccessState::may_blame`);
//! - every open delivery whose door is confirmed closed and locked is secured;
//! - deadlines: windows that passed, limits that ran out (escalation);
//! - owner and guest sessions past their end are closed;
//! - gaps in a lock's or sensor's event log still open after their grace are alerted
//!   (`alerts::gaps`).

use crate::access::doors;
use crate::access::incident::apply;
use crate::access::open::Reconcile;
use crate::state::AppState;
use std::collections::HashSet;
use threshold_core::delivery::{DeliveryState, Input};

/// How many deliveries one pass looks at, at most, in each list.
const BATCH: i64 = 10_000;

async fn reconcile(state: &AppState) {
    if let Err(e) = crate::fleet::changes::read_open_deliveries(state).await {
        tracing::warn!(error = %e, "access pass could not read open deliveries");
    }
}

pub async fn pass(state: &AppState) {
    let now = state.clock.now_ms();
    match state.access.open.reconcile_due() {
        Reconcile::Now => reconcile(state).await,
        Reconcile::Beside if state.access.open.begin_reconcile() => {
            let st = state.clone();
            tokio::spawn(async move {
                reconcile(&st).await;
                st.access.open.end_reconcile();
            });
        }
        Reconcile::Beside | Reconcile::No => {}
    }
    // In a fleet, each home's node moves its deliveries (the others keep the list to
    // answer entry requests, and would take over).
    let active: Vec<_> = state
        .access
        .open
        .snapshot()
        .into_iter()
        .filter(|d| state.fleet.owns_home(&d.home_id))
        .collect();
    let mut awaiting = HashSet::new();
    for d in active {
        let Some(s) = DeliveryState::parse(&d.state) else {
            continue;
        };
        let door = d
            .door_id
            .as_deref()
            .and_then(|id| state.access.doors.get(id));
        if let Some(door) = &door {
            if matches!(s, DeliveryState::Delivered | DeliveryState::CameraLost) {
                awaiting.insert(door.id.clone());
            }
            if matches!(s, DeliveryState::Inside | DeliveryState::Delivered)
                && doors::may_blame(state, door, now)
            {
                if let Err(blind) = doors::blind_to_blame(state, door, now) {
                    let _ = apply(state, &d, Input::CameraBlind(blind)).await;
                    continue;
                }
            }
            let sec = doors::secured(state, door, now);
            if sec.closed && sec.locked && s != DeliveryState::Inside {
                let _ = apply(state, &d, Input::Secured).await;
                continue;
            }
        }
        let _ = apply(state, &d, Input::Tick).await;
    }
    state.access.set_awaiting(awaiting);
    if let Ok(expired) = state.store.scheduled_past_window(now, BATCH).await {
        for d in expired.iter().filter(|d| state.fleet.owns_home(&d.home_id)) {
            let _ = apply(state, d, Input::Tick).await;
        }
    }
    if let Ok(open) = state.store.sessions_to_watch(now, BATCH).await {
        for s in open.iter().filter(|s| s.delivery_id.is_none()) {
            if s.ends_ms.is_some_and(|e| e < now) {
                let _ = state.store.close_session(&s.id, now).await;
            }
        }
    }
    crate::alerts::raise_due_gaps(state).await;
}

/// Run [`pass`] every 250 ms until the hub stops.
pub fn spawn(state: AppState) {
    let tasks = state.tasks.clone();
    tasks.spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if state.stopped() {
                return;
            }
            pass(&state).await;
        }
    });
}
