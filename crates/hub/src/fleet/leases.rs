//! The lease loop: every third of a lease, renew the partitions this node holds, take
//! a fair share of the free ones and give up what is above it. Leases are timed by the
//! database's clock (`threshold_store::fleet`); if renewals fail for most of a lease,
//! the node stops acting for every home before its leases can run out, so two nodes
//! never act for one home (fail secure: a node cut off from the database does nothing
//! it cannot record anyway).

use crate::state::AppState;
use std::collections::HashSet;
use std::time::Duration;

/// What to do after a renewal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Claim(i64),
    Release(usize),
    Hold,
}

/// A fair share: `parts` spread over `live_nodes`, rounded up so that together the
/// nodes always want every partition.
pub fn share(parts: u32, live_nodes: i64, held: usize) -> Step {
    let nodes = live_nodes.max(1) as u64;
    let fair = (u64::from(parts)).div_ceil(nodes) as usize;
    match held.cmp(&fair) {
        std::cmp::Ordering::Less => Step::Claim((fair - held) as i64),
        std::cmp::Ordering::Greater => Step::Release(held - fair),
        std::cmp::Ordering::Equal => Step::Hold,
    }
}

/// Run the loop until the hub stops; then leave the fleet (partitions freed at once).
pub fn spawn(state: AppState) {
    let Some(node) = state.fleet.node_id().map(str::to_owned) else {
        return;
    };
    let lease_ms = state.config.fleet_lease_ms;
    tokio::spawn(async move {
        let every = Duration::from_millis((lease_ms / 3) as u64);
        let mut stop = state.shutdown.subscribe();
        // Until this local time, the leases from the last good renewal still hold
        // (a sixth of a lease short of their end on the database's clock).
        let mut valid_until = i64::MIN;
        let mut turns: u64 = 0;
        // Since when the database does not answer (reported once it does again).
        let mut db_lost_since: Option<i64> = None;
        loop {
            let asked = state.clock.now_ms();
            // Bounded: a database that does not answer must not hold the check below.
            let failed = match tokio::time::timeout(every * 3 / 2, turn(&state, &node, asked)).await
            {
                Ok(Ok(())) => {
                    valid_until = asked + lease_ms - lease_ms / 6;
                    None
                }
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some("timed out".to_owned()),
            };
            match (failed, db_lost_since) {
                (Some(e), None) => {
                    tracing::error!(error = %e, "fleet: could not renew partition leases");
                    db_lost_since = Some(asked);
                }
                (Some(_), Some(_)) => {}
                (None, Some(since)) => {
                    db_lost_since = None;
                    report_database_outage(&state, since, asked).await;
                }
                (None, None) => {}
            }
            if state.clock.now_ms() >= valid_until && !state.fleet.held().is_empty() {
                tracing::error!(
                    "fleet: leases not renewed in time; acting for no home until they are"
                );
                for p in state.fleet.held() {
                    state.fleet.drop_part(p);
                }
                state.metrics.fleet_partitions.set(0);
            }
            turns += 1;
            if turns.is_multiple_of(600) {
                let before = state.clock.now_ms() - crate::fleet::EVENTS_KEPT_MS;
                if let Err(e) = state.store.fleet_prune_events(before).await {
                    tracing::warn!(error = %e, "fleet: could not prune shared live events");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => {
                    for p in state.fleet.held() {
                        state.fleet.drop_part(p);
                    }
                    if let Err(e) = state.store.fleet_leave(&node).await {
                        tracing::warn!(error = %e, "fleet: could not give partitions up; they pass on when the leases run out");
                    }
                    return;
                }
            }
        }
    });
}

/// The database answers again after not answering since `since`: one system alert
/// for the episode, raised and resolved (it could not be stored while it lasted).
async fn report_database_outage(state: &AppState, since: i64, back: i64) {
    tracing::warn!(down_ms = back - since, "fleet: the database answers again");
    let message = format!(
        "This node could not reach the database for {:.1} s: it acted for no home meanwhile (its leases lapsed to the other nodes, or waited).",
        (back - since) as f64 / 1000.0
    );
    crate::alerts::system::raise(
        state,
        "database_unreachable",
        &message,
        serde_json::json!({"down_ms": back - since}),
        since,
    )
    .await;
    crate::alerts::system::resolve(state, "database_unreachable", since, back).await;
}

async fn turn(state: &AppState, node: &str, now: i64) -> Result<(), threshold_store::StoreError> {
    let lease_ms = state.config.fleet_lease_ms;
    let parts = state.fleet.partitions();
    let renewal = state.store.fleet_renew(node, lease_ms).await?;
    let mut held: HashSet<u32> = renewal.held.iter().map(|l| l.part as u32).collect();
    for p in state.fleet.held() {
        if !held.contains(&p) {
            tracing::warn!(partition = p, "fleet: partition lost to another node");
            state.fleet.drop_part(p);
        }
    }
    match share(parts, renewal.live_nodes, held.len()) {
        Step::Claim(n) => {
            for l in state
                .store
                .fleet_claim(node, parts as i32, n, lease_ms)
                .await?
            {
                tracing::info!(
                    partition = l.part,
                    epoch = l.epoch,
                    "fleet: partition taken over"
                );
                state.metrics.fleet_takeovers.inc();
                held.insert(l.part as u32);
            }
        }
        Step::Release(n) => {
            let mut mine: Vec<u32> = held.iter().copied().collect();
            mine.sort_unstable();
            for p in mine.into_iter().rev().take(n) {
                // Stop acting first, then let it go.
                state.fleet.drop_part(p);
                held.remove(&p);
                state.store.fleet_release(node, p as i32).await?;
                tracing::info!(
                    partition = p,
                    "fleet: partition handed on (more than a fair share)"
                );
            }
        }
        Step::Hold => {}
    }
    // Act for newly held homes only once their devices' records are as stored; if
    // that fails, the next turn tries again (the leases are held meanwhile).
    let new: Vec<u32> = held
        .iter()
        .copied()
        .filter(|&p| !state.fleet.holds(p))
        .collect();
    if !new.is_empty() {
        crate::fleet::changes::take_over_records(state, &new).await?;
        for &p in &new {
            state.fleet.hold(p, now);
        }
        // Their open recordings, whose cameras this node now keeps streaming.
        state.recorder.reload_soon();
        // What other nodes left for these homes' devices meanwhile.
        crate::fleet::downlinks::send_waiting(state).await;
        // A lock's hello or a binding change that came while nobody acted for its home
        // went unanswered: each lock of these homes learns its cameras again.
        let doors: Vec<_> = state
            .access
            .doors
            .all()
            .into_iter()
            .filter(|d| new.contains(&state.fleet.partition_of(&d.home_id)))
            .collect();
        crate::access::unlock::send_cameras_to_locks(state, &doors).await;
    }
    state
        .metrics
        .fleet_partitions
        .set(state.fleet.held().len() as i64);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_share_the_partitions_fairly_and_together_want_them_all() {
        assert_eq!(share(64, 1, 0), Step::Claim(64));
        assert_eq!(share(64, 3, 0), Step::Claim(22));
        assert_eq!(share(64, 3, 22), Step::Hold);
        assert_eq!(share(64, 2, 64), Step::Release(32));
        assert_eq!(share(64, 0, 10), Step::Claim(54), "no count yet: want all");
        for nodes in 1..10 {
            if let Step::Claim(n) = share(64, nodes, 0) {
                assert!(n * nodes >= 64);
            }
        }
    }
}
