//! Who may open which door, and what follows (laws 2 to 5). The rules themselves are
//! in `threshold_core` (`entry`, `delivery`, `opening`, `liveness`); this module
//! gathers the facts they need, persists what they decide and carries out the effects.
//!
//! - [`doors`]: the door directory and a door's state now (cameras, lock, statement).
//! - [`unlock`]: capabilities for a door's lock, carrying its camera's statement.
//! - [`entry`]: the courier's, the guest's and the owner's requests, one rule.
//! - [`incident`]: a delivery's state machine applied, with its effects.
//! - [`open`]: the deliveries whose session is open, in memory for the pass.
//! - [`owners`]: whose each home is, remembered (it never changes).
//! - [`openings`]: door openings merged and attributed; unauthorised entry.
//! - [`watcher`]: the periodic pass (deadlines, blind doors, secured doors).

pub mod doors;
pub mod entry;
pub mod guests;
pub mod hours;
pub mod incident;
pub mod obstruction;
pub mod open;
pub mod openings;
pub mod owners;
pub mod refused;
pub mod unlock;
pub mod watcher;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

/// Why an access operation failed (not a refusal: refusals are decisions).
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("storage: {0}")]
    Store(#[from] threshold_store::StoreError),
    #[error("random source: {0}")]
    Random(String),
    /// The decision could not be written to the audit log: no record, no entry.
    #[error("could not record the decision: {0}")]
    NotRecorded(String),
}

/// What the access layer keeps in memory.
#[derive(Debug)]
pub struct AccessState {
    pub doors: doors::Doors,
    /// The deliveries whose session is open, for the access pass.
    pub open: open::OpenDeliveries,
    pub owners: owners::HomeOwners,
    /// Doors with a delivery waiting for a fresh "closed and locked" (delivered or
    /// camera lost), so a lock's report completes it at once without a query per
    /// report. Rebuilt by every watcher pass.
    awaiting_secure: Mutex<HashSet<String>>,
    /// One opening of one door is judged at a time (the lock's and the contact's
    /// reports of it arrive together).
    opening_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Since when the hub can vouch for liveness (connected to its broker); before
    /// that plus one live window, a device that is not live may simply not have been
    /// heard yet, and the hub says so instead of blaming it (law 10).
    vouching_since: AtomicI64,
    vouching: AtomicBool,
    /// Whether the hub keeps up with its devices' messages, and since when
    /// (`gateway::load`): while it does not, it can vouch for nothing either.
    keeping_up: AtomicBool,
    keeping_up_since: AtomicI64,
    live_window_ms: i64,
    /// When each delivery's lock was last commanded to relock by the hub.
    relocked: Mutex<HashMap<String, i64>>,
}

/// After the hub (re)connects to its broker, a device none of whose home has been
/// heard from yet is given this long to reconnect before its silence is blamed on it.
pub const RECONNECT_GRACE_MS: i64 = 10_000;

/// The hub commands a delivery's lock to relock at most this often: the lock's own
/// reports of its bolt moving must not turn into a stream of commands.
pub const RELOCK_EVERY_MS: i64 = 3_000;

impl AccessState {
    pub fn new(live_window_ms: i64) -> Self {
        AccessState {
            doors: doors::Doors::default(),
            open: open::OpenDeliveries::default(),
            owners: owners::HomeOwners::default(),
            awaiting_secure: Mutex::new(HashSet::new()),
            opening_locks: Mutex::new(HashMap::new()),
            vouching_since: AtomicI64::new(i64::MAX),
            vouching: AtomicBool::new(false),
            keeping_up: AtomicBool::new(true),
            keeping_up_since: AtomicI64::new(i64::MIN),
            live_window_ms,
            relocked: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the hub may command this delivery's lock to relock now (and note it).
    pub fn relock_due(&self, delivery_id: &str, now: i64) -> bool {
        let mut m = self.relocked.lock().unwrap_or_else(|p| p.into_inner());
        m.retain(|_, at| now.saturating_sub(*at) < 10 * RELOCK_EVERY_MS);
        match m.get(delivery_id) {
            Some(at) if now.saturating_sub(*at) < RELOCK_EVERY_MS => false,
            _ => {
                m.insert(delivery_id.to_owned(), now);
                true
            }
        }
    }

    /// The hub's broker connection came up (`true`) or went down at `now`.
    pub fn set_vouching(&self, up: bool, now: i64) {
        let was = self.vouching.swap(up, Ordering::SeqCst);
        if up && !was {
            self.vouching_since.store(now, Ordering::SeqCst);
        }
        if up != was {
            tracing::info!(vouching = up, "hub's ability to vouch for liveness changed");
        }
    }

    /// The hub fell behind with its devices' messages (`false`) or caught up at `now`.
    pub fn set_keeping_up(&self, up: bool, now: i64) {
        if up {
            self.keeping_up_since.store(now, Ordering::SeqCst);
        }
        self.keeping_up.store(up, Ordering::SeqCst);
    }

    /// Whether the hub cannot vouch for liveness now (no broker connection, or behind
    /// with its devices' messages): the entry rule then refuses with `hub_degraded`
    /// instead of trusting what it last saw.
    pub fn degraded(&self, _now: i64) -> bool {
        !self.vouching.load(Ordering::SeqCst) || !self.keeping_up.load(Ordering::SeqCst)
    }

    /// Whether the hub may blame a device that is not live, given what it has heard
    /// since it (re)connected to its broker (law 10: the hub's own outage or restart is
    /// never a camera lost). Never while disconnected, nor within one live window of
    /// connecting (every working device has had a chance to prove itself only after
    /// that). Then at once if the hub has heard from that device or from another device
    /// of the same home since it connected (the home's path to the hub works, so the
    /// silence is the device's); otherwise only after `RECONNECT_GRACE_MS`, because a
    /// whole home (or thousands of devices at once) may still be reconnecting.
    ///
    /// The same holds for the hub's own overload: never while it is behind with its
    /// devices' messages, and counted from when it caught up as from a reconnect.
    pub fn may_blame(&self, now: i64, heard_from_home: bool) -> bool {
        if !self.vouching.load(Ordering::SeqCst) || !self.keeping_up.load(Ordering::SeqCst) {
            return false;
        }
        let since = self
            .vouching_since
            .load(Ordering::SeqCst)
            .max(self.keeping_up_since.load(Ordering::SeqCst));
        let connected_for = now.saturating_sub(since);
        connected_for > self.live_window_ms
            && (heard_from_home || connected_for > RECONNECT_GRACE_MS)
    }

    pub fn awaits_secure(&self, door_id: &str) -> bool {
        self.awaiting_secure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(door_id)
    }

    fn set_awaiting(&self, doors: HashSet<String>) {
        *self
            .awaiting_secure
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = doors;
    }

    pub fn await_secure(&self, door_id: &str) {
        self.awaiting_secure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(door_id.to_owned());
    }

    fn opening_lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.opening_locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.to_owned())
            .or_default()
            .clone()
    }
}
