//! The deliveries whose session is open (inside, delivered, camera lost), kept in
//! memory so that the access pass, four times a second, does not read them all from
//! the database (at 10 000 homes that read competed with every entry decision for the
//! database: `threshold bench unlock`, docs/performance.md), nor a camera's or a
//! door's reaction those of its door (`of_door`). The index follows every
//! transition this process makes and is reconciled with the database every
//! `RECONCILE_EVERY` passes, for transitions made elsewhere (another hub process, an
//! operator); the read runs beside the passes, and what moved meanwhile is kept. A
//! stale row is harmless: transitions are conditional on the state they start from, so
//! acting on one changes nothing and refreshes it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use threshold_core::delivery::DeliveryState;
use threshold_store::DeliveryRow;

/// Passes between two reads of the open deliveries from the database (30 s at 250 ms).
/// At 10 000 homes on a busy 2-core machine the read took up to 4.6 s
/// (`threshold bench liveness`), holding one of SQLite's four reading connections.
pub const RECONCILE_EVERY: u64 = 120;

/// Most open deliveries one read from the database brings into the index.
pub const READ_LIMIT: i64 = 10_000;

#[derive(Debug, Default)]
pub struct OpenDeliveries {
    index: Mutex<Index>,
    passes: AtomicU64,
    reconciling: std::sync::atomic::AtomicBool,
}

/// Whether a pass reads the open deliveries from the database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reconcile {
    /// The first pass after a start: the index is empty until it has read them.
    Now,
    /// A later one: beside the pass, which goes on with the index meanwhile.
    Beside,
    No,
}

fn is_open(row: &DeliveryRow) -> bool {
    DeliveryState::parse(&row.state).is_some_and(DeliveryState::session_open)
}

/// The open deliveries by id, and by door for a reaction that concerns one door.
#[derive(Debug, Default)]
struct Index {
    /// Shared with the passes' snapshots: a pass over thousands of open deliveries
    /// copies pointers, not rows.
    rows: HashMap<String, Arc<DeliveryRow>>,
    by_door: HashMap<String, HashSet<String>>,
}

impl Index {
    fn of_rows(rows: HashMap<String, Arc<DeliveryRow>>) -> Index {
        let mut by_door: HashMap<String, HashSet<String>> = HashMap::new();
        for r in rows.values() {
            if let Some(door) = &r.door_id {
                by_door
                    .entry(door.clone())
                    .or_default()
                    .insert(r.id.clone());
            }
        }
        Index { rows, by_door }
    }

    fn remove(&mut self, id: &str) {
        let Some(old) = self.rows.remove(id) else {
            return;
        };
        if let Some(door) = &old.door_id {
            if let Some(ids) = self.by_door.get_mut(door) {
                ids.remove(id);
                if ids.is_empty() {
                    self.by_door.remove(door);
                }
            }
        }
    }

    fn insert(&mut self, row: Arc<DeliveryRow>) {
        self.remove(&row.id);
        if let Some(door) = &row.door_id {
            self.by_door
                .entry(door.clone())
                .or_default()
                .insert(row.id.clone());
        }
        self.rows.insert(row.id.clone(), row);
    }
}

impl OpenDeliveries {
    /// Whether this pass should read the database instead of the index (the first
    /// pass after a start does, then every `RECONCILE_EVERY`-th).
    pub fn reconcile_due(&self) -> Reconcile {
        match self.passes.fetch_add(1, Ordering::Relaxed) {
            0 => Reconcile::Now,
            n if n.is_multiple_of(RECONCILE_EVERY) => Reconcile::Beside,
            _ => Reconcile::No,
        }
    }

    /// Claim the one reconciliation that may run beside the passes; false if one runs.
    pub fn begin_reconcile(&self) -> bool {
        !self.reconciling.swap(true, Ordering::SeqCst)
    }

    pub fn end_reconcile(&self) {
        self.reconciling.store(false, Ordering::SeqCst);
    }

    /// The database's answer, read from `read_began_ms` on, replaces the index; a
    /// delivery this process moved since then keeps its newer row.
    pub fn replace_all(&self, rows: Vec<DeliveryRow>, read_began_ms: i64) {
        let mut fresh: HashMap<String, Arc<DeliveryRow>> = rows
            .into_iter()
            .filter(is_open)
            .map(|r| (r.id.clone(), Arc::new(r)))
            .collect();
        let mut current = self.lock();
        for (id, row) in current.rows.iter() {
            let newer = row.updated_ms >= read_began_ms
                || fresh.get(id).is_some_and(|f| f.updated_ms < row.updated_ms);
            if newer {
                fresh.insert(id.clone(), row.clone());
            }
        }
        *current = Index::of_rows(fresh);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A delivery as it now is: kept while its session is open, dropped otherwise.
    pub fn update(&self, row: DeliveryRow) {
        let mut index = self.lock();
        if is_open(&row) {
            index.insert(Arc::new(row));
        } else {
            index.remove(&row.id);
        }
    }

    /// The open deliveries, oldest first (a stable order for the pass).
    pub fn snapshot(&self) -> Vec<Arc<DeliveryRow>> {
        let mut v: Vec<Arc<DeliveryRow>> = self.lock().rows.values().cloned().collect();
        v.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        v
    }

    /// The open deliveries through one door, least recently moved first: what a
    /// camera's or a door's report concerns, found without reading the database (a
    /// camera lost mid-delivery waited seconds for that read behind the hub's other
    /// statements at 10 000 cameras). What the index has not seen yet, the next pass
    /// finds once it has.
    pub fn of_door(&self, door_id: &str) -> Vec<Arc<DeliveryRow>> {
        let index = self.lock();
        let mut v: Vec<Arc<DeliveryRow>> = index
            .by_door
            .get(door_id)
            .into_iter()
            .flatten()
            .filter_map(|id| index.rows.get(id).cloned())
            .collect();
        drop(index);
        v.sort_by(|a, b| (a.updated_ms, &a.id).cmp(&(b.updated_ms, &b.id)));
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
        open.replace_all(
            vec![
                row("b", "inside", 2),
                row("x", "scheduled", 1),
                row("a", "camera_lost", 1),
            ],
            0,
        );
        let ids = |o: &OpenDeliveries| {
            o.snapshot()
                .into_iter()
                .map(|r| r.id.clone())
                .collect::<Vec<_>>()
        };
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
    fn finds_a_door_s_open_deliveries_as_they_move() {
        let open = OpenDeliveries::default();
        let at = |id: &str, state: &str, door: &str, updated_ms: i64| DeliveryRow {
            door_id: Some(door.into()),
            updated_ms,
            ..row(id, state, 1)
        };
        let ids = |o: &OpenDeliveries, door: &str| {
            o.of_door(door)
                .into_iter()
                .map(|r| r.id.clone())
                .collect::<Vec<_>>()
        };
        open.replace_all(
            vec![
                at("a", "inside", "front", 20),
                at("b", "delivered", "front", 10),
                at("c", "inside", "back", 5),
                at("x", "scheduled", "front", 1),
            ],
            0,
        );
        assert_eq!(
            ids(&open, "front"),
            ["b", "a"],
            "least recently moved first"
        );
        assert_eq!(ids(&open, "back"), ["c"]);
        assert!(ids(&open, "garage").is_empty());
        // Ended: gone from its door; moved to another door: found there only.
        open.update(at("b", "completed", "front", 30));
        open.update(at("c", "inside", "front", 40));
        assert_eq!(ids(&open, "front"), ["a", "c"]);
        assert!(ids(&open, "back").is_empty());
        // The database's answer replaces the door index with the rows.
        open.replace_all(vec![at("d", "camera_lost", "back", 50)], 100);
        assert!(ids(&open, "front").is_empty());
        assert_eq!(ids(&open, "back"), ["d"]);
    }

    #[test]
    fn reconciles_on_the_first_pass_and_then_beside_every_so_often() {
        let open = OpenDeliveries::default();
        let n = 2 * RECONCILE_EVERY as usize + 1;
        let due: Vec<Reconcile> = (0..n).map(|_| open.reconcile_due()).collect();
        let at: Vec<(usize, Reconcile)> = due
            .into_iter()
            .enumerate()
            .filter(|(_, d)| *d != Reconcile::No)
            .collect();
        let every = RECONCILE_EVERY as usize;
        assert_eq!(
            at,
            [
                (0, Reconcile::Now),
                (every, Reconcile::Beside),
                (2 * every, Reconcile::Beside)
            ]
        );
        assert!(open.begin_reconcile());
        assert!(!open.begin_reconcile(), "one at a time");
        open.end_reconcile();
        assert!(open.begin_reconcile());
    }

    #[test]
    fn a_slow_read_does_not_undo_what_moved_while_it_ran() {
        let open = OpenDeliveries::default();
        let at = |id: &str, state: &str, updated_ms: i64| DeliveryRow {
            updated_ms,
            ..row(id, state, 1)
        };
        open.replace_all(vec![at("a", "inside", 10), at("b", "inside", 10)], 0);
        // The read begins at 100; meanwhile "a" is lost (at 150) and "c" starts (160).
        open.update(at("a", "camera_lost", 150));
        open.update(at("c", "inside", 160));
        // The read's answer: "a" and "b" as they were before it began.
        open.replace_all(vec![at("a", "inside", 10), at("b", "inside", 10)], 100);
        let by_id: HashMap<String, String> = open
            .snapshot()
            .into_iter()
            .map(|r| (r.id.clone(), r.state.clone()))
            .collect();
        assert_eq!(by_id["a"], "camera_lost", "the newer row is kept");
        assert_eq!(by_id["b"], "inside");
        assert_eq!(by_id["c"], "inside", "started during the read: kept");
        // A row the database has newer than ours wins.
        open.replace_all(vec![at("b", "delivered", 300)], 200);
        let states: Vec<String> = open
            .snapshot()
            .into_iter()
            .map(|r| r.state.clone())
            .collect();
        assert!(states.contains(&"delivered".to_owned()));
    }
}
