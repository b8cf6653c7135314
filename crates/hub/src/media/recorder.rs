//! The recordings a frame may belong to, cached by home, and the cameras' own
//! account of their link outages.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Mutex;
use threshold_store::RecordingRow;

/// The recordings a frame may belong to, cached by home; and cameras' own account of
/// link outages (their signed `link_lost` events), for the recovered flag.
#[derive(Debug)]
pub struct Recorder {
    pub(crate) by_home: Mutex<HashMap<String, Vec<RecordingRow>>>,
    /// Camera (hex id) -> its recent outages in device time, `(lost, restored)`; the
    /// newest may still be open. Kept after restoring, because backlog uploads may be
    /// filed after the `link_restored` event is processed.
    pub(crate) outages: Mutex<HashMap<String, Vec<(i64, Option<i64>)>>>,
    /// Outages whose frames are marked recovered once more when due (hub time): a
    /// frame filed while the `link_restored` event was processed may have missed the
    /// first marking. `(camera hex id, lost, restored, due)`.
    pub(crate) remark: Mutex<Vec<(String, i64, i64, i64)>>,
    /// When the list was last read from the database (hub time).
    reloaded_ms: AtomicI64,
    /// Asked to read it again at the next tick: another node granted an entry, or
    /// this node took homes over.
    reload_asked: AtomicBool,
}

/// How often the list of recordings is read from the database when nothing asks
/// sooner. This process adds and ends its own recordings in memory as it goes; the read
/// is for what other processes did. Read every renewal period (2 s), it was the
/// largest query of a busy hub: at 500 entries a second, tens of thousands of rows
/// (`threshold bench unlock`, docs/performance.md).
pub const RELOAD_EVERY_MS: i64 = 30_000;

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            by_home: Mutex::default(),
            outages: Mutex::default(),
            remark: Mutex::default(),
            reloaded_ms: AtomicI64::new(i64::MIN),
            reload_asked: AtomicBool::new(false),
        }
    }
}

impl Recorder {
    /// Mark `camera`'s frames of the outage `from..=to` recovered again at `due`.
    pub(crate) fn remark_later(&self, camera: &str, from: i64, to: i64, due: i64) {
        let mut g = self.remark.lock().unwrap_or_else(|p| p.into_inner());
        // One per outage is enough; a camera reports few outages (MAX_OUTAGES).
        g.retain(|(c, f, t, _)| !(c == camera && *f == from && *t == to));
        g.push((camera.to_owned(), from, to, due));
    }

    /// The re-markings due at `now`, removed from the list.
    pub(crate) fn take_due_remarks(&self, now: i64) -> Vec<(String, i64, i64)> {
        let mut g = self.remark.lock().unwrap_or_else(|p| p.into_inner());
        let (due, wait): (Vec<_>, Vec<_>) = g.drain(..).partition(|r| r.3 <= now);
        *g = wait;
        due.into_iter().map(|(c, f, t, _)| (c, f, t)).collect()
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<RecordingRow>>> {
        self.by_home.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ask for the list to be read from the database at the next tick.
    pub fn reload_soon(&self) {
        self.reload_asked.store(true, Ordering::Relaxed);
    }

    /// Whether the tick at `now` reads the list from the database: the first one, one
    /// asked for, or `RELOAD_EVERY_MS` after the last. Answering yes counts as reading.
    pub(crate) fn reload_due(&self, now: i64) -> bool {
        let asked = self.reload_asked.swap(false, Ordering::Relaxed);
        let last = self.reloaded_ms.load(Ordering::Relaxed);
        if asked || now.saturating_sub(last) >= RELOAD_EVERY_MS {
            self.reloaded_ms.store(now, Ordering::Relaxed);
            true
        } else {
            false
        }
    }

    /// Replace the cache with the database's view, keeping recordings started in the
    /// last few seconds that the database may not show yet (insert still in flight).
    pub(crate) fn replace(&self, rows: Vec<RecordingRow>, now: i64) {
        let mut m: HashMap<String, Vec<RecordingRow>> = HashMap::new();
        let stored: HashSet<&str> = rows.iter().map(|r| r.delivery_id.as_str()).collect();
        let mut g = self.lock();
        for r in g.values().flatten() {
            if now - r.started_ms < 10_000 && !stored.contains(r.delivery_id.as_str()) {
                m.entry(r.home_id.clone()).or_default().push(r.clone());
            }
        }
        for r in rows {
            m.entry(r.home_id.clone()).or_default().push(r);
        }
        *g = m;
    }

    pub(crate) fn add(&self, r: RecordingRow) {
        let mut g = self.lock();
        let v = g.entry(r.home_id.clone()).or_default();
        if !v.iter().any(|x| x.delivery_id == r.delivery_id) {
            v.push(r);
        }
    }

    /// The recording (delivery id) a frame of `home_id` captured at `capture_ms`
    /// belongs to: the earliest-started one covering that instant.
    pub(crate) fn find(&self, home_id: &str, capture_ms: i64) -> Option<String> {
        let g = self.lock();
        g.get(home_id)?
            .iter()
            .filter(|r| capture_ms >= r.started_ms && r.ends_ms.is_none_or(|e| capture_ms <= e))
            .min_by_key(|r| r.started_ms)
            .map(|r| r.delivery_id.clone())
    }

    /// Homes with a recording open at `now`.
    pub(crate) fn recording_homes(&self, now: i64) -> Vec<String> {
        self.lock()
            .iter()
            .filter(|(_, v)| v.iter().any(|r| r.ends_ms.is_none_or(|e| now <= e)))
            .map(|(h, _)| h.clone())
            .collect()
    }

    pub(crate) fn open(&self) -> Vec<RecordingRow> {
        self.lock()
            .values()
            .flatten()
            .filter(|r| r.ends_ms.is_none())
            .cloned()
            .collect()
    }
}

impl Recorder {
    /// Whether `capture_ms` falls in an outage the camera reported.
    pub(crate) fn in_outage(&self, device_hex: &str, capture_ms: i64) -> bool {
        self.outages
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(device_hex)
            .is_some_and(|v| {
                v.iter()
                    .any(|(f, t)| capture_ms >= *f && t.is_none_or(|t| capture_ms <= t))
            })
    }
}

impl Recorder {
    pub(crate) fn add_end(&self, delivery_id: &str, ends: i64) {
        for v in self.lock().values_mut() {
            for r in v.iter_mut().filter(|r| r.delivery_id == delivery_id) {
                r.ends_ms = Some(ends);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_read_at_the_first_tick_when_asked_and_every_thirty_seconds() {
        let r = Recorder::default();
        assert!(r.reload_due(1_000), "the first tick reads");
        assert!(!r.reload_due(3_000), "not at every tick");
        r.reload_soon();
        assert!(r.reload_due(5_000), "asked: the next tick reads");
        assert!(!r.reload_due(7_000), "once");
        assert!(!r.reload_due(5_000 + RELOAD_EVERY_MS - 1));
        assert!(r.reload_due(5_000 + RELOAD_EVERY_MS));
    }

    #[test]
    fn a_reload_keeps_only_recent_recordings_the_database_does_not_show_yet() {
        let r = Recorder::default();
        let rec = |id: &str, started_ms: i64| RecordingRow {
            delivery_id: id.into(),
            home_id: "h".into(),
            started_ms,
            ends_ms: None,
        };
        r.add(rec("old", 0));
        r.add(rec("new", 95_000));
        r.add(rec("stored", 96_000));
        r.replace(vec![rec("stored", 96_000), rec("other", 50_000)], 100_000);
        let mut ids: Vec<String> = r.open().into_iter().map(|x| x.delivery_id).collect();
        ids.sort();
        assert_eq!(ids, ["new", "other", "stored"]);
    }

    #[test]
    fn an_outage_is_remarked_once_when_due() {
        let r = Recorder::default();
        r.remark_later("cam", 10, 20, 3_000);
        r.remark_later("cam", 10, 20, 4_000);
        r.remark_later("cam", 30, 40, 5_000);
        assert!(r.take_due_remarks(2_999).is_empty());
        assert!(
            r.take_due_remarks(3_999).is_empty(),
            "moved to the later due time"
        );
        assert_eq!(r.take_due_remarks(4_000), vec![("cam".to_owned(), 10, 20)]);
        assert_eq!(r.take_due_remarks(9_000), vec![("cam".to_owned(), 30, 40)]);
        assert!(r.take_due_remarks(9_000).is_empty());
    }
}
