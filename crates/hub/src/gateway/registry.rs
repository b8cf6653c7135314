//! The gateway's in-memory view of every enrolled device: key, owner, replay window,
//! record logs and liveness. Sharded by device id so thousands of devices can be
//! updated from several workers without one global lock.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use threshold_core::liveness::{DeviceLiveness, Liveness};
use threshold_core::ranges::RangeSet;
use threshold_core::record_log::RecordLog;
use threshold_core::replay::ReplayWindow;
use threshold_proto::body::{DeviceKind, State};
use threshold_proto::{DeviceId, PublicKey};
use threshold_store::{DeviceRow, GapRow};

const SHARDS: usize = 32;

/// One device, as the gateway tracks it.
#[derive(Debug)]
pub struct DeviceEntry {
    pub id: DeviceId,
    pub home_id: String,
    pub owner_id: String,
    pub name: String,
    pub kind: DeviceKind,
    pub key: PublicKey,
    pub revoked: bool,
    /// SHA-256 hex of the device's broker password.
    pub mqtt_password_hash: String,
    pub replay: ReplayWindow,
    /// Highest transport seq persisted to the database.
    pub persisted_hwm: u64,
    pub liveness: DeviceLiveness,
    /// Last state reported to the rest of the hub (for transition detection).
    pub reported: Liveness,
    pub reported_frozen: bool,
    pub events: RecordLog,
    pub frames: RecordLog,
    pub last_state: Option<State>,
    pub last_state_at: Option<i64>,
    pub last_state_device_ms: Option<i64>,
    /// When it went offline (hub time), for the grace-period notice.
    pub offline_since: Option<i64>,
    pub offline_notice_sent: bool,
    /// A camera's newest liveness statement: the last heartbeat that announced a
    /// recent frame, exactly as signed. Unlock tokens carry it to the lock.
    pub statement: Option<Statement>,
    /// After a restart: live messages signed at or before this device time may have
    /// been accepted before the crash without their number being saved, so they are
    /// refused as possible replays (see `DeviceEntry::restart_fence`).
    pub fence_device_ms: Option<i64>,
    /// A `hello` of the device was refused here (the fence above, its clock): what a
    /// hello asks for (a lock's cameras) is still owed, and given at the next live
    /// message taken from the device. A replayed hello only repeats that answer.
    pub greeting_owed: bool,
    /// The ingest lag of its newest live message handled (hub clock), when its clock
    /// is placed: whether its own connection still drains a backlog
    /// (`Load::excuses`).
    pub last_lag_ms: Option<i64>,
    /// The lag-window slot its last message counted in for the hub's judgement of
    /// itself (`threshold_core::ingest::slot_of`): one per device per slot.
    pub lag_slot: i64,
}

/// A camera's signed heartbeat, kept to be carried in unlock tokens, with the capture
/// time (camera clock) of the frame it announces: the lock judges it by that time.
#[derive(Clone, Debug)]
pub struct Statement {
    pub bytes: std::sync::Arc<[u8]>,
    pub capture_ms: i64,
}

impl DeviceEntry {
    pub fn from_row(
        row: &DeviceRow,
        event_gaps: &[GapRow],
        frame_gaps: &[GapRow],
    ) -> Option<DeviceEntry> {
        let id: DeviceId = row.id.parse().ok()?;
        let key: PublicKey = row.public_key.parse().ok()?;
        let kind = DeviceKind::parse(&row.kind)?;
        let ranges = |g: &[GapRow]| {
            RangeSet::from_ranges(g.iter().map(|g| (g.from_seq as u64, g.to_seq as u64)))
        };
        Some(DeviceEntry {
            id,
            home_id: row.home_id.clone(),
            owner_id: row.owner_id.clone(),
            name: row.name.clone(),
            kind,
            key,
            revoked: row.revoked_ms.is_some(),
            mqtt_password_hash: row.mqtt_password_hash.clone(),
            replay: if row.transport_hwm > 0 {
                ReplayWindow::restored(row.transport_hwm as u64)
            } else {
                ReplayWindow::new()
            },
            persisted_hwm: row.transport_hwm as u64,
            liveness: DeviceLiveness::new(),
            reported: Liveness::Offline,
            reported_frozen: false,
            events: RecordLog::restored(row.event_hwm as u64, ranges(event_gaps)),
            frames: RecordLog::restored(row.frame_hwm as u64, ranges(frame_gaps)),
            last_state: row
                .last_state
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok()),
            last_state_at: None,
            last_state_device_ms: None,
            offline_since: None,
            offline_notice_sent: false,
            statement: None,
            fence_device_ms: None,
            greeting_owed: false,
            last_lag_ms: None,
            lag_slot: i64::MIN,
        })
    }

    /// Fence off what a crash may have left unsaved. Live messages accepted since the
    /// last saved replay mark had device times of at most (crash time + the device's
    /// clock offset); a message signed after the restart at `started_ms` has a device
    /// time of at least (`started_ms` + offset). The saved offset is the estimate of
    /// [`threshold_core::clock_offset`], an underestimate by at most the fastest
    /// one-way delay, far smaller than any restart takes; a device without a saved
    /// offset is fenced by the largest offset the hub accepts (`max_skew_ms`).
    pub fn restart_fence(
        &mut self,
        started_ms: i64,
        saved_offset_ms: Option<i64>,
        max_skew_ms: i64,
    ) {
        self.fence_device_ms =
            Some(started_ms.saturating_add(saved_offset_ms.unwrap_or(max_skew_ms)));
    }
}

#[derive(Debug)]
pub struct Registry {
    shards: Vec<Mutex<HashMap<DeviceId, DeviceEntry>>>,
    /// Device ids by home, kept in step by `insert`, so per-home lookups (decisions,
    /// recording) cost O(devices of the home) instead of a scan of every device.
    by_home: Mutex<HashMap<String, Vec<DeviceId>>>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    pub fn new() -> Self {
        Registry {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            by_home: Mutex::new(HashMap::new()),
        }
    }

    fn shard(&self, id: &DeviceId) -> MutexGuard<'_, HashMap<DeviceId, DeviceEntry>> {
        let i = usize::from(id.0[0]) % SHARDS;
        // In range by construction. A poisoned shard means a panic while holding it;
        // the data is still usable.
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn insert(&self, e: DeviceEntry) {
        let (id, home) = (e.id, e.home_id.clone());
        // Replacing an entry (re-enrolment) may move it to another home.
        if let Some(old) = self.shard(&id).insert(id, e) {
            if old.home_id != home {
                if let Some(v) = self.homes().get_mut(&old.home_id) {
                    v.retain(|d| *d != id);
                }
            }
        }
        let mut homes = self.homes();
        let ids = homes.entry(home).or_default();
        if !ids.contains(&id) {
            ids.push(id);
        }
    }

    fn homes(&self) -> MutexGuard<'_, HashMap<String, Vec<DeviceId>>> {
        self.by_home.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Visit the devices of one home (revoked ones included; callers filter).
    pub fn for_home(&self, home_id: &str, mut f: impl FnMut(&mut DeviceEntry)) {
        let ids = self.homes().get(home_id).cloned().unwrap_or_default();
        for id in ids {
            self.with(&id, |e| {
                if e.home_id == home_id {
                    f(e)
                }
            });
        }
    }

    pub fn contains(&self, id: &DeviceId) -> bool {
        self.shard(id).contains_key(id)
    }

    /// Run `f` on a device while holding its shard.
    pub fn with<R>(&self, id: &DeviceId, f: impl FnOnce(&mut DeviceEntry) -> R) -> Option<R> {
        self.shard(id).get_mut(id).map(f)
    }

    /// Who a device belongs to and what it is: (home, owner, name, kind).
    pub fn identity(&self, id: &DeviceId) -> Option<(String, String, String, DeviceKind)> {
        self.with(id, |e| {
            (
                e.home_id.clone(),
                e.owner_id.clone(),
                e.name.clone(),
                e.kind,
            )
        })
    }

    /// Visit every device (one shard locked at a time).
    pub fn for_each(&self, mut f: impl FnMut(&mut DeviceEntry)) {
        for s in &self.shards {
            let mut g = s.lock().unwrap_or_else(|p| p.into_inner());
            for e in g.values_mut() {
                f(e);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: u8, home: &str) -> DeviceEntry {
        let key = threshold_proto::DeviceKey::from_seed(&[id; 32]);
        let row = DeviceRow {
            id: DeviceId([id; 16]).to_hex(),
            home_id: home.into(),
            owner_id: "o".into(),
            name: format!("d{id}"),
            kind: "camera".into(),
            public_key: key.public().to_hex(),
            mqtt_password_hash: String::new(),
            enrolled_ms: 0,
            revoked_ms: None,
            transport_hwm: 0,
            event_hwm: 0,
            frame_hwm: 0,
            last_state: None,
            last_seen_ms: None,
            clock_offset_ms: None,
        };
        DeviceEntry::from_row(&row, &[], &[]).unwrap()
    }

    fn ids_of(r: &Registry, home: &str) -> Vec<u8> {
        let mut v = Vec::new();
        r.for_home(home, |e| v.push(e.id.0[0]));
        v.sort();
        v
    }

    #[test]
    fn for_home_visits_exactly_that_homes_devices_and_follows_a_move() {
        let r = Registry::new();
        r.insert(entry(1, "a"));
        r.insert(entry(2, "b"));
        r.insert(entry(3, "a"));
        r.insert(entry(3, "a")); // re-insert: no duplicate visit
        assert_eq!(ids_of(&r, "a"), vec![1, 3]);
        assert_eq!(ids_of(&r, "b"), vec![2]);
        assert!(ids_of(&r, "c").is_empty());
        r.insert(entry(1, "b"));
        assert_eq!(ids_of(&r, "a"), vec![3]);
        assert_eq!(ids_of(&r, "b"), vec![1, 2]);
    }
}
