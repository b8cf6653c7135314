//! The deliveries whose session is open (inside, delivered, camera lost), kept in
//! memory so that the access pass, four times a second, does not read them all from
//! the database: at 10 000 homes that read competed with every entry decision for the
//! database (`threshold bench unlock`, docs/performance.md). The index follows every
//! transition this process makes and is reconciled with the database every
//! `RECONCILE_EVERY` passes, for transitions made elsewhere (another hub process, an
//! operator). A stale row is harmless: transitions are conditional on the state they
//! start from, so acting on one changes nothing and refreshes it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use threshold_core::delivery::DeliveryState;
use threshold_store::DeliveryRow;

/// Passes between two reads of the open deliveries from the database (5 s at 250 ms).
pub const RECONCILE_EVERY: u64 = 20;

#[derive(Debug, Default)]
pub struct OpenDeliveries {
    rows: Mutex<HashMap<String, DeliveryRow>>,
    passes: AtomicU64,
}

fn is_open(row: &DeliveryRow) -> bool {
    DeliveryState::parse(&row.state).is_some_and(DeliveryState::session_open)
}

impl OpenDeliveries {
    /// Whether this pass should read the database instead of the index (the first
    /// pass after a start does, then every `RECONCILE_EVERY`-th).
    pub fn reconcile_due(&self) -> bool {
        self.passes
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(RECONCILE_EVERY)
    }

    /// The database's answer replaces the index.
    pub fn replace_all(&self, rows: Vec<DeliveryRow>) {
        let fresh = rows
            .into_iter()
            .filter(is_open)
            .map(|r| (r.id.clone(), r))
            .collect();
        *self.rows.lock().unwrap_or_else(|p| p.into_inner()) = fresh;
    }

    /// A delivery as it now is: kept while its session is open, dropped otherwise.
    pub fn update(&self, row: DeliveryRow) {
        let mut rows = self.rows.lock().unwrap_or_else(|p| p.into_inner());
        if is_open(&row) {
            rows.insert(row.id.clone(), row);
        } else {
            rows.remove(&row.id);
        }
    }

    /// The open deliveries, oldest first (a stable order for the pass).
    pub fn snapshot(&self) -> Vec<DeliveryRow> {
        let mut v: Vec<DeliveryRow> = self
            .rows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        v.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, state: &str, created_ms: i64) -> DeliveryRow {
        DeliveryRow {
            id: id.into(),
            state: state.into(),
            created_ms,
            ..Default::default()
        }
    }

    #[test]
    fn follows_transitions_and_keeps_only_open_sessions() {
        let open = OpenDeliveries::default();
        open.replace_all(vec![
            row("b", "inside", 2),
            row("x", "scheduled", 1),
            row("a", "camera_lost", 1),
        ]);
        let ids = |o: &OpenDeliveries| o.snapshot().into_iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(
            ids(&open),
            ["a", "b"],
            "scheduled is not open; oldest first"
        );
        open.update(row("b", "delivered", 2));
        assert_eq!(open.snapshot()[1].state, "delivered");
        open.update(row("a", "ended_after_camera_loss", 1));
        open.update(row("c", "inside", 3));
        assert_eq!(ids(&open), ["b", "c"]);
    }

    #[test]
    fn reconciles_on_the_first_pass_and_then_every_twentieth() {
        let open = OpenDeliveries::default();
        let due: Vec<bool> = (0..41).map(|_| open.reconcile_due()).collect();
        let at: Vec<usize> = due
            .iter()
            .enumerate()
            .filter(|(_, d)| **d)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(at, [0, 20, 40]);
    }
}
