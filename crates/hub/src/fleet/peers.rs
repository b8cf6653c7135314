//! Live events across the fleet. This node's events are stored in `fleet_events` and
//! announced (`threshold_store::fleet`); every other node reads each announced event
//! and hands it to its own sockets, in the order they were stored. The same
//! connection carries change announcements (`changes`). After a lost connection a
//! node catches up from the tables.

use crate::events::{HubEvent, WireEvent};
use crate::fleet::changes::{self, Change};
use crate::state::AppState;
use std::time::Duration;
use threshold_store::fleet::{Channel, Notice};

/// Start the forwarder of this node's events and the listener.
pub fn spawn(state: AppState) {
    let Some(node) = state.fleet.node_id().map(str::to_owned) else {
        return;
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<HubEvent>();
    state.bus.forward_to_peers(tx);
    let st = state.clone();
    let me = node.clone();
    tokio::spawn(async move {
        // One at a time, in the order raised: the ids keep this node's order.
        while let Some(e) = rx.recv().await {
            let body = match serde_json::to_string(&WireEvent::from(&e)) {
                Ok(b) => b,
                Err(_) => continue,
            };
            if let Err(err) = st
                .store
                .fleet_publish_event(&me, &body, st.clock.now_ms())
                .await
            {
                tracing::error!(error = %err, event = %e.event_type, "fleet: could not share a live event with the other nodes");
            }
        }
    });
    tokio::spawn(listen(state, node));
}

async fn listen(state: AppState, me: String) {
    let mut last = match state.store.fleet_events_head().await {
        Ok(id) => id,
        Err(e) => {
            tracing::error!(error = %e, "fleet: could not read the shared events' head");
            0
        }
    };
    let mut stop = state.shutdown.subscribe();
    loop {
        let mut listener = match state.store.fleet_listen().await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "fleet: cannot listen for changes; retrying in 1 s");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = stop.changed() => return,
                }
            }
        };
        // Whatever was announced before this connection listened is read from the tables.
        changes::catch_up(&state).await;
        last = catch_up_events(&state, &me, last).await;
        crate::fleet::downlinks::send_waiting(&state).await;
        loop {
            let received = tokio::select! {
                r = listener.recv() => r,
                _ = stop.changed() => return,
            };
            match received {
                Ok(Some(n)) => last = on_notice(&state, &me, n, last).await,
                Ok(None) => {
                    tracing::warn!("fleet: listening connection re-established; catching up");
                    changes::catch_up(&state).await;
                    state.recorder.reload_soon();
                    last = catch_up_events(&state, &me, last).await;
                    crate::fleet::downlinks::send_waiting(&state).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, "fleet: listening connection failed; reconnecting");
                    break;
                }
            }
        }
    }
}

async fn on_notice(state: &AppState, me: &str, n: Notice, last: i64) -> i64 {
    match n.channel {
        Channel::Changes => {
            match Change::parse(&n.payload) {
                Some(c) => {
                    changes::apply(state, &c).await;
                    // An entry granted on another node is recorded by the node acting
                    // for the home: it reads the recordings at its next tick.
                    if matches!(c, Change::Delivery(_)) {
                        state.recorder.reload_soon();
                    }
                }
                None => {
                    tracing::warn!(payload = %crate::text::bounded(&n.payload, 80).escape_debug(), "fleet: unreadable change announcement")
                }
            }
            last
        }
        Channel::Downlinks => {
            if let Some((id, home)) = n
                .payload
                .split_once(' ')
                .and_then(|(id, h)| Some((id.parse::<i64>().ok()?, h)))
            {
                crate::fleet::downlinks::on_announced(state, id, home).await;
            }
            last
        }
        Channel::Events => {
            let Some((id, origin)) = n
                .payload
                .split_once(' ')
                .and_then(|(id, o)| Some((id.parse::<i64>().ok()?, o)))
            else {
                return last;
            };
            if origin != me {
                match state.store.fleet_event(id).await {
                    Ok(Some(row)) => deliver(state, &row.body),
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "fleet: could not read a shared event"),
                }
            }
            last.max(id)
        }
    }
}

/// Hand on the events other nodes stored after `last`; returns the new mark.
async fn catch_up_events(state: &AppState, me: &str, mut last: i64) -> i64 {
    loop {
        match state.store.fleet_events_after(me, last, 500).await {
            Ok(rows) if rows.is_empty() => return last,
            Ok(rows) => {
                for r in rows {
                    deliver(state, &r.body);
                    last = last.max(r.id);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "fleet: could not catch up with shared events");
                return last;
            }
        }
    }
}

fn deliver(state: &AppState, body: &str) {
    match serde_json::from_str::<WireEvent>(body) {
        Ok(w) => state.bus.publish_from_peer(w.into()),
        Err(e) => tracing::warn!(error = %e, "fleet: unreadable shared event"),
    }
}
