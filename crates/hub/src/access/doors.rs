//! The doors of every home, kept in memory for decisions (a decision must not wait on
//! the database to learn which lock and cameras a door has), and what a door looks
//! like now: its cameras' verdicts, its lock's state, its liveness statement.

use crate::state::AppState;
use base64::Engine;
use serde_json::json;
use std::collections::HashMap;
use std::sync::RwLock;
use threshold_core::entry::DoorFacts;
use threshold_core::liveness::{Blind, Liveness};
use threshold_proto::body::{BoltState, DeviceKind, DoorState};
use threshold_proto::DeviceId;
use threshold_store::DoorRow;

/// One door and its devices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Door {
    pub id: String,
    pub home_id: String,
    pub name: String,
    pub lock: Option<DeviceId>,
    pub contact: Option<DeviceId>,
    pub cameras: Vec<DeviceId>,
    pub accepts_deliveries: bool,
}

impl Door {
    fn from_row(r: &DoorRow) -> Door {
        let id = |s: &Option<String>| s.as_deref().and_then(|x| x.parse().ok());
        Door {
            id: r.id.clone(),
            home_id: r.home_id.clone(),
            name: r.name.clone(),
            lock: id(&r.lock_id),
            contact: id(&r.contact_id),
            cameras: r.camera_ids.iter().filter_map(|c| c.parse().ok()).collect(),
            accepts_deliveries: r.accepts_deliveries,
        }
    }
}

#[derive(Debug, Default)]
struct Index {
    by_id: HashMap<String, Door>,
    by_home: HashMap<String, Vec<String>>,
    /// Lock and contact sensor -> its door; camera -> the doors it watches.
    by_device: HashMap<DeviceId, Vec<String>>,
}

impl Index {
    fn remove_home(&mut self, home_id: &str) {
        for id in self.by_home.remove(home_id).unwrap_or_default() {
            self.by_id.remove(&id);
        }
        for doors in self.by_device.values_mut() {
            doors.retain(|d| self.by_id.contains_key(d));
        }
        self.by_device.retain(|_, v| !v.is_empty());
    }

    fn add(&mut self, d: Door) {
        let devices = d
            .lock
            .iter()
            .chain(d.contact.iter())
            .chain(d.cameras.iter());
        for dev in devices {
            let v = self.by_device.entry(*dev).or_default();
            if !v.contains(&d.id) {
                v.push(d.id.clone());
            }
        }
        self.by_home
            .entry(d.home_id.clone())
            .or_default()
            .push(d.id.clone());
        self.by_id.insert(d.id.clone(), d);
    }
}

/// The door directory.
#[derive(Debug, Default)]
pub struct Doors {
    index: RwLock<Index>,
    /// Held from reading doors in the database to setting them here, so that two
    /// concurrent reloads cannot leave the older read in place (a camera bound while
    /// its lock enrolled would vanish from this node's view until the next change).
    reloading: tokio::sync::Mutex<()>,
}

impl Doors {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Hold this across a database read of doors and the `set_home`/`set_all` that
    /// applies it: the last one applied is then the newest read.
    pub async fn reloading(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.reloading.lock().await
    }

    /// Replace one home's doors with `rows` (all of them, as stored).
    pub fn set_home(&self, home_id: &str, rows: &[DoorRow]) {
        let mut ix = self.write();
        ix.remove_home(home_id);
        for r in rows.iter().filter(|r| r.home_id == home_id) {
            ix.add(Door::from_row(r));
        }
    }

    /// Replace every door.
    pub fn set_all(&self, rows: &[DoorRow]) {
        let mut ix = Index::default();
        for r in rows {
            ix.add(Door::from_row(r));
        }
        *self.write() = ix;
    }

    pub fn get(&self, id: &str) -> Option<Door> {
        self.read().by_id.get(id).cloned()
    }

    pub fn of_home(&self, home_id: &str) -> Vec<Door> {
        let ix = self.read();
        ix.by_home
            .get(home_id)
            .map(|ids| {
                ids.iter()
                    .filter_map(|i| ix.by_id.get(i).cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every door.
    pub fn all(&self) -> Vec<Door> {
        self.read().by_id.values().cloned().collect()
    }

    /// The doors a device is part of: its door for a lock or contact sensor, the
    /// doors it watches for a camera.
    pub fn of_device(&self, device: &DeviceId) -> Vec<Door> {
        let ix = self.read();
        ix.by_device
            .get(device)
            .map(|ids| {
                ids.iter()
                    .filter_map(|i| ix.by_id.get(i).cloned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Reload one home's doors from the database into the directory.
pub async fn reload_home(
    state: &AppState,
    home_id: &str,
) -> Result<Vec<DoorRow>, threshold_store::StoreError> {
    let _newest_wins = state.access.doors.reloading().await;
    let rows = state.store.doors_of_home(home_id).await?;
    state.access.doors.set_home(home_id, &rows);
    Ok(rows)
}

/// One camera's verdict now (a revoked or unknown camera is offline).
pub fn camera_watch(state: &AppState, camera: &DeviceId, now: i64) -> Result<(), Blind> {
    let cfg = state.config.liveness();
    state
        .registry
        .with(camera, |e| {
            if e.revoked || e.kind != DeviceKind::Camera {
                Err(Blind::Offline)
            } else {
                e.liveness.watch(now, &cfg)
            }
        })
        .unwrap_or(Err(Blind::Offline))
}

/// A device's freshness now (a revoked or unknown device is offline).
pub fn device_liveness(state: &AppState, device: &DeviceId, now: i64) -> Liveness {
    let cfg = state.config.liveness();
    state
        .registry
        .with(device, |e| {
            if e.revoked {
                Liveness::Offline
            } else {
                e.liveness.state(now, &cfg)
            }
        })
        .unwrap_or(Liveness::Offline)
}

/// Whether a camera's late pictures are the hub's backlog still draining through its
/// connection, not the camera's fault (`Load::excuses`).
fn draining(state: &AppState, camera: &DeviceId, now: i64) -> bool {
    state
        .registry
        .with(camera, |e| !e.revoked && state.load.excuses(now, e))
        .unwrap_or(false)
}

/// What the entry rule needs to know about a door now.
pub fn facts(state: &AppState, door: Option<&Door>, now: i64) -> DoorFacts {
    let Some(door) = door else {
        return DoorFacts {
            cameras: Vec::new(),
            recording: false,
            lock: None,
            hub_degraded: state.access.degraded(now),
        };
    };
    let cameras: Vec<Result<(), Blind>> = door
        .cameras
        .iter()
        .map(|c| camera_watch(state, c, now))
        .collect();
    DoorFacts {
        // A delivery's recording opens in the same commit as its entry and files every
        // verified frame of the home's cameras: a watching camera is being recorded.
        recording: cameras.iter().any(|c| c.is_ok()),
        cameras,
        lock: door.lock.map(|l| device_liveness(state, &l, now)),
        hub_degraded: state.access.degraded(now),
    }
}

/// Whether the hub has heard from any device of the door's home since it connected to
/// its broker (liveness is not kept across restarts, so anything seen is recent).
pub fn home_heard(state: &AppState, home_id: &str) -> bool {
    let mut heard = false;
    state.registry.for_home(home_id, |e| {
        heard |= !e.revoked && e.liveness.last_seen_at().is_some();
    });
    heard
}

/// Whether a door that is not watched may be blamed on its cameras now
/// (`AccessState::may_blame`).
/// In a fleet, also only by the node acting for the home, once it has held the home
/// for a live window (`fleet::ownership::Ownership::may_blame`).
pub fn may_blame(state: &AppState, door: &Door, now: i64) -> bool {
    state
        .access
        .may_blame(now, home_heard(state, &door.home_id))
        && state
            .fleet
            .may_blame(&door.home_id, now, state.config.live_window_ms)
}

/// Whether the door is watched by at least one of its cameras now.
pub fn watched(state: &AppState, door: &Door, now: i64) -> Result<(), Blind> {
    let mut best = Err(Blind::Offline);
    for c in &door.cameras {
        match camera_watch(state, c, now) {
            Ok(()) => return Ok(()),
            Err(b) => {
                if best == Err(Blind::Offline) {
                    best = Err(b);
                }
            }
        }
    }
    best
}

/// Whether the door's cameras are to blame for it not being watched: [`watched`] at
/// the hub's blame horizon (`Load::blame_horizon`), so that a camera whose pictures are
/// no later than everybody's is not blamed for the hub's queue. Entry is judged by
/// [`watched`] at `now`.
///
/// A camera whose pictures are fresh but whose last signed statement is not (its
/// frame records ran ahead of its heartbeats) cannot vouch for an entry, but it is not
/// lost either: the owner's device list says live, and so does this. Nor is a door
/// blamed while one of its cameras' connections still drains the hub's backlog
/// (`Load::excuses`).
pub fn blind_to_blame(state: &AppState, door: &Door, now: i64) -> Result<(), Blind> {
    let at = state.load.blame_horizon(now);
    match watched(state, door, at) {
        Err(Blind::Stale)
            if door
                .cameras
                .iter()
                .any(|c| device_liveness(state, c, at) == Liveness::Live) =>
        {
            Ok(())
        }
        Err(_) if door.cameras.iter().any(|c| draining(state, c, now)) => Ok(()),
        verdict => verdict,
    }
}

/// A watching camera's liveness statement for this door: the newest of its watching
/// cameras' recent statements, as (camera, base64 of the signed heartbeat).
pub fn statement(state: &AppState, door: &Door, now: i64) -> Option<(DeviceId, String)> {
    let cfg = state.config.liveness();
    door.cameras
        .iter()
        .filter_map(|c| {
            state
                .registry
                .with(c, |e| {
                    if e.revoked || e.liveness.watch(now, &cfg).is_err() {
                        return None;
                    }
                    // Watching implies a recent statement; the lock judges it by the
                    // capture time it announces, so never carry an older one.
                    let s = e.statement.clone()?;
                    e.liveness
                        .captured_recently(s.capture_ms, now, &cfg)
                        .then(|| (e.liveness.to_hub_time(s.capture_ms, now), *c, s.bytes))
                })
                .flatten()
        })
        .max_by_key(|(captured, _, _)| *captured)
        .map(|(_, c, s)| (c, base64::engine::general_purpose::STANDARD.encode(&s)))
}

/// Whether the door's actuator is a garage-door opener (the door is its own barrier)
/// rather than a lock.
pub fn is_garage(state: &AppState, door: &Door) -> bool {
    door.lock
        .is_some_and(|l| state.registry.with(&l, |e| e.kind) == Some(DeviceKind::GarageOpener))
}

/// What secures the door, for the delivery machine.
pub fn barrier(state: &AppState, door: Option<&Door>) -> threshold_core::delivery::Barrier {
    match door {
        Some(d) if is_garage(state, d) => threshold_core::delivery::Barrier::GarageDoor,
        _ => threshold_core::delivery::Barrier::Bolt,
    }
}

/// The door's lock as the apps must show it (law 1): "locked"/"closed" only while a
/// fresh signed report says so, otherwise "unknown" with the time it became unknown.
/// The contact sensor's fresh report speaks for the door when the lock's does not.
pub fn lock_view(state: &AppState, door: &Door) -> serde_json::Value {
    let now = state.clock.now_ms();
    let cfg = state.config.liveness();
    let mut out = json!({"door_id": door.id, "door_name": door.name, "bolt": "unknown", "door": "unknown", "fresh": false, "present": false});
    let Some(lock) = door.lock else {
        return out;
    };
    state.registry.with(&lock, |e| {
        if e.revoked {
            return;
        }
        let fresh = e.liveness.state(now, &cfg) == Liveness::Live;
        let s = e.last_state.clone().unwrap_or_default();
        let shown = |v: Option<String>| match (fresh, v) {
            (true, Some(v)) => v,
            _ => "unknown".into(),
        };
        let garage = e.kind == DeviceKind::GarageOpener;
        out = json!({
            "door_id": door.id,
            "door_name": door.name,
            "present": true,
            "device_id": e.id.to_hex(),
            "actuator": e.kind.as_str(),
            "bolt": if garage { None } else { Some(shown(s.bolt.map(|b| format!("{b:?}").to_lowercase()))) },
            "door": shown(s.door.map(|d| format!("{d:?}").to_lowercase())),
            "fresh": fresh,
            "reported_at_ms": e.last_state_at,
            "unknown_since_ms": if fresh { None } else { e.liveness.fresh_at().map(|f| f + cfg.live_window_ms) },
        });
        if garage {
            // A garage door moving or stopped part-way, and an obstruction, only while
            // the report is fresh: a stale "obstructed" is as unknown as a stale "closed".
            out["motion"] = json!(fresh.then_some(s.motion).flatten());
            out["obstructed"] = json!(fresh.then_some(s.obstructed).flatten());
        }
    });
    out
}

/// What the door's devices say now, counting only fresh signed reports: whether it is
/// closed, whether the bolt is thrown, and whether it is plainly retracted (not moving,
/// not jammed: a bolt on its way is not a reason to command it again).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Secured {
    pub closed: bool,
    pub locked: bool,
    pub retracted: bool,
}

pub fn secured(state: &AppState, door: &Door, now: i64) -> Secured {
    let garage = is_garage(state, door);
    let cfg = state.config.liveness();
    let fresh_state = |d: &DeviceId| {
        state
            .registry
            .with(d, |e| {
                (!e.revoked && e.liveness.state(now, &cfg) == Liveness::Live)
                    .then(|| e.last_state.clone())
                    .flatten()
            })
            .flatten()
    };
    let lock = door.lock.as_ref().and_then(fresh_state);
    let contact = door.contact.as_ref().and_then(fresh_state);
    // A garage door has no bolt: fully closed is as locked as it gets.
    let locked = lock.as_ref().is_some_and(|s| {
        if garage {
            s.door == Some(DoorState::Closed)
        } else {
            s.bolt == Some(BoltState::Locked)
        }
    });
    let retracted = !garage
        && lock
            .as_ref()
            .is_some_and(|s| s.bolt == Some(BoltState::Unlocked));
    let lock_closed = lock.as_ref().and_then(|s| s.door);
    let contact_closed = contact.as_ref().and_then(|s| s.door);
    // Both reports must agree when both are fresh: an open contact is an open door.
    let closed = match (lock_closed, contact_closed) {
        (_, Some(DoorState::Open)) | (Some(DoorState::Open), _) => false,
        (Some(DoorState::Closed), _) | (_, Some(DoorState::Closed)) => true,
        _ => false,
    };
    Secured {
        closed,
        locked,
        retracted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, home: &str, lock: u8, cams: &[u8]) -> DoorRow {
        DoorRow {
            id: id.into(),
            home_id: home.into(),
            name: id.into(),
            lock_id: Some(DeviceId([lock; 16]).to_hex()),
            contact_id: None,
            camera_ids: cams.iter().map(|c| DeviceId([*c; 16]).to_hex()).collect(),
            accepts_deliveries: true,
            created_ms: 0,
        }
    }

    #[test]
    fn the_directory_knows_each_device_s_doors_and_follows_changes() {
        let d = Doors::default();
        d.set_all(&[
            row("front", "h", 1, &[9]),
            row("back", "h", 2, &[9, 8]),
            row("x", "g", 3, &[]),
        ]);
        let names = |dev: u8| {
            let mut v: Vec<String> = d
                .of_device(&DeviceId([dev; 16]))
                .into_iter()
                .map(|x| x.id)
                .collect();
            v.sort();
            v
        };
        assert_eq!(names(1), ["front"]);
        assert_eq!(names(9), ["back", "front"]);
        assert_eq!(names(8), ["back"]);
        assert_eq!(d.of_home("h").len(), 2);
        // The garden camera (8) is unbound from the back door.
        d.set_home(
            "h",
            &[row("front", "h", 1, &[9]), row("back", "h", 2, &[9])],
        );
        assert!(names(8).is_empty());
        assert_eq!(names(3), ["x"], "another home is untouched");
        d.set_home("h", &[]);
        assert!(d.of_home("h").is_empty());
        assert!(names(9).is_empty());
    }
}
