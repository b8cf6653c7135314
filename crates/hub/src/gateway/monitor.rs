//! Time-driven gateway work: liveness transitions (LIVE -> STALE -> OFFLINE and back),
//! "possibly frozen" flags, the offline notice after a grace period, device gauges, and
//! persisting replay high-water marks.
//!
//! Transitions are detected under the registry lock and applied (database, event bus,
//! alerts) by effects tasks, each for its share of the devices, so a slow database
//! never delays detection and one slow reaction does not hold up every other.

use crate::metrics::LivenessLabel;
use crate::state::AppState;
use std::time::Duration;
use threshold_core::liveness::Liveness;
use threshold_proto::body::DeviceKind;
use threshold_proto::DeviceId;
use tokio::sync::mpsc;

pub use crate::gateway::transition::{Change, Transition};

fn emit(state: &AppState, t: Transition) {
    if let Some(tx) = state.effects_tx() {
        if tx.send(t).is_ok() {
            state.metrics.effects_pending.inc();
        }
    }
}

impl AppState {
    fn effects_tx(&self) -> Option<&mpsc::UnboundedSender<Transition>> {
        self.effects.get()
    }
}

/// Check one device now (after a fresh message), so LIVE is reported without waiting
/// for the next tick.
pub fn on_fresh(state: &AppState, id: &DeviceId) {
    let now = state.clock.now_ms();
    let cfg = state.config.liveness();
    let blame = Blame::at(state, now);
    let mut out = Vec::new();
    state.registry.with(id, |e| {
        check(e, now, &cfg, state.config.offline_grace_ms, blame, &mut out)
    });
    for t in out {
        emit(state, t);
    }
}

/// When a device may be reported less live than before (`gateway::load`).
#[derive(Clone, Copy, Debug)]
struct Blame<'a> {
    /// The hub is behind with its devices' messages, or has just caught up
    /// (`Load::holds_blame`): what a device looks like then says more about the hub
    /// than about the device. Reported once the hold ends, if still true.
    hold: bool,
    /// Judge getting worse at this time, not at `now` (`Load::blame_horizon`).
    horizon: i64,
    /// Holds one device whose own connection still drains the hub's backlog
    /// (`Load::excuses`).
    load: &'a crate::gateway::lag::Load,
}

impl<'a> Blame<'a> {
    fn at(state: &'a AppState, now: i64) -> Self {
        Blame {
            hold: state.load.holds_blame(now),
            horizon: state.load.blame_horizon(now),
            load: &state.load,
        }
    }

    /// Whether `e` may not be reported less live now.
    fn holds(&self, e: &crate::gateway::registry::DeviceEntry, now: i64) -> bool {
        self.hold || self.load.excuses(now, e)
    }
}

/// A device is reported more live as soon as it is, and less live only when it is so
/// at the blame horizon too, and never under a hold (`Blame`).
fn check(
    e: &mut crate::gateway::registry::DeviceEntry,
    now: i64,
    cfg: &threshold_core::liveness::LivenessConfig,
    grace_ms: i64,
    blame: Blame,
    out: &mut Vec<Transition>,
) {
    if e.revoked {
        return;
    }
    let hold = blame.holds(e, now);
    let mut st = e.liveness.state(now, cfg);
    if worse(st, e.reported) {
        let then = e.liveness.state(blame.horizon, cfg);
        st = if worse(then, e.reported) {
            then
        } else {
            e.reported
        };
    }
    let mk = |e: &crate::gateway::registry::DeviceEntry, change| Transition {
        device: e.id,
        home_id: e.home_id.clone(),
        owner_id: e.owner_id.clone(),
        kind: e.kind,
        name: e.name.clone(),
        change,
        at_ms: now,
        last_fresh_ms: e.liveness.fresh_at(),
    };
    if st != e.reported && !(hold && worse(st, e.reported)) {
        out.push(mk(
            e,
            Change::Liveness {
                from: e.reported,
                to: st,
            },
        ));
        e.reported = st;
        if st == Liveness::Offline {
            e.offline_since = Some(now);
            e.offline_notice_sent = false;
        } else {
            e.offline_since = None;
        }
    }
    if e.kind == DeviceKind::Camera {
        let frozen = e.liveness.possibly_frozen(now, cfg);
        if frozen != e.reported_frozen {
            e.reported_frozen = frozen;
            out.push(mk(e, Change::Frozen(frozen)));
        }
    }
    if let Some(since) = e.offline_since {
        // Only devices that were ever seen get a notice: a device that never came up
        // since the hub started is not news every restart.
        if !hold
            && !e.offline_notice_sent
            && now - since >= grace_ms
            && e.liveness.last_seen_at().is_some()
        {
            e.offline_notice_sent = true;
            out.push(mk(e, Change::OfflineNotice));
        }
    }
}

/// Whether `to` is less live than `from`.
fn worse(to: Liveness, from: Liveness) -> bool {
    let rank = |l: Liveness| match l {
        Liveness::Live => 0,
        Liveness::Stale => 1,
        Liveness::Offline => 2,
    };
    rank(to) > rank(from)
}

/// A camera that stopped being live: the transition that may be an incident.
fn critical(t: &Transition) -> bool {
    t.kind == DeviceKind::Camera
        && matches!(
            t.change,
            Change::Liveness {
                from: Liveness::Live,
                ..
            }
        )
}

/// The most transitions applied together: their timeline rows are one commit.
const BATCH: usize = 512;

/// One effects task: batches of its devices' transitions, each applied before the next.
async fn apply_in_order<F, Fut>(
    st: AppState,
    mut rx: mpsc::UnboundedReceiver<Transition>,
    apply: std::sync::Arc<F>,
) where
    F: Fn(AppState, Vec<Transition>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut pending: std::collections::VecDeque<Transition> = Default::default();
    loop {
        if pending.is_empty() {
            match rx.recv().await {
                Some(t) => pending.push_back(t),
                None => return,
            }
        }
        while let Ok(t) = rx.try_recv() {
            pending.push_back(t);
        }
        let batch = take_batch(&mut pending, BATCH);
        let n = batch.len() as i64;
        apply(st.clone(), batch).await;
        st.metrics.effects_pending.dec_by(n);
    }
}

/// What an effects task applies next, in order: every transition of a device with a
/// critical one pending, up to and including its last critical one (so each device's
/// changes stay in order), then the oldest others, up to `max` in all. After a mass
/// reconnect (thousands of devices coming live at once) a camera lost mid-delivery is
/// not queued behind them.
fn take_batch(pending: &mut std::collections::VecDeque<Transition>, max: usize) -> Vec<Transition> {
    let mut last_critical: std::collections::HashMap<DeviceId, usize> = Default::default();
    for (i, t) in pending.iter().enumerate() {
        if critical(t) {
            last_critical.insert(t.device, i);
        }
    }
    let mut out = Vec::new();
    let mut rest = std::collections::VecDeque::with_capacity(pending.len());
    for (i, t) in pending.drain(..).enumerate() {
        if last_critical.get(&t.device).is_some_and(|&c| i <= c) {
            out.push(t);
        } else {
            rest.push_back(t);
        }
    }
    while out.len() < max {
        match rest.pop_front() {
            Some(t) => out.push(t),
            None => break,
        }
    }
    *pending = rest;
    out
}

/// Effects tasks, each applying the transitions of its share of the devices in order.
/// One task for all made a camera lost mid-delivery wait for every reaction before it
/// (`threshold bench liveness` at 10 000 cameras: `reaction_wait_ms` p99 ~1 s of a
/// 2.5 s alert p99); a slow reaction now holds up only its own share.
const EFFECT_SHARDS: usize = 8;

/// Which effects task applies `device`'s transitions (always the same one, so each
/// device's changes stay in order).
fn effect_shard(device: &DeviceId, n: usize) -> usize {
    let b = device.0;
    (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize) % n
}

/// Start the ticker, the effects tasks (which hand each batch of transitions to
/// `apply`, the domain's reaction, so the gateway does not call the domain) and the
/// high-water-mark flusher.
pub fn spawn<F, Fut>(state: AppState, tick: Duration, apply: F)
where
    F: Fn(AppState, Vec<Transition>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, mut rx) = mpsc::unbounded_channel::<Transition>();
    let _ = state.effects.set(tx);
    let apply = std::sync::Arc::new(apply);
    let shards: Vec<mpsc::UnboundedSender<Transition>> = (0..EFFECT_SHARDS)
        .map(|_| {
            let (tx, rx) = mpsc::unbounded_channel::<Transition>();
            state
                .tasks
                .spawn(apply_in_order(state.clone(), rx, apply.clone()));
            tx
        })
        .collect();
    // Routes each change to its device's effects task. When the hub stops it routes
    // what is queued and ends, which closes the shards: each applies what it holds,
    // then ends too, before the store closes (`Hub::stop`).
    let mut stop = state.shutdown.subscribe();
    state.tasks.spawn(async move {
        let route = |t: Transition| {
            let i = effect_shard(&t.device, shards.len());
            if let Some(shard) = shards.get(i) {
                let _ = shard.send(t);
            }
        };
        loop {
            tokio::select! {
                t = rx.recv() => match t {
                    Some(t) => route(t),
                    None => return,
                },
                _ = stop.wait_for(|stopped| *stopped) => {
                    while let Ok(t) = rx.try_recv() {
                        route(t);
                    }
                    return;
                }
            }
        }
    });
    // The hub's verdict on its own load, judged each pass; its system alert is written
    // by a task of its own, in order, so a slow database never delays the pass.
    let (load_tx, mut load_rx) = mpsc::unbounded_channel();
    let st = state.clone();
    state.tasks.spawn(async move {
        while let Some(change) = load_rx.recv().await {
            crate::gateway::load::apply(&st, change).await;
        }
    });
    let st = state.clone();
    tokio::spawn(async move {
        let mut iv = tokio::time::interval(tick);
        iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            let due = iv.tick().await;
            if st.stopped() {
                return;
            }
            let late_ms = due.elapsed().as_millis().min(i64::MAX as u128) as i64;
            if let Some(change) = crate::gateway::load::judge(&st, late_ms) {
                let _ = load_tx.send(change);
            }
            // A pass visits every device (tens of thousands): on a blocking thread it
            // is preempted like any thread instead of holding an async worker, so
            // requests on the workers do not queue behind it.
            let pass = st.clone();
            if tokio::task::spawn_blocking(move || tick_once(&pass))
                .await
                .is_err()
            {
                tracing::error!("liveness pass failed");
            }
        }
    });
    let st = state.clone();
    tokio::spawn(async move {
        let mut iv = tokio::time::interval(Duration::from_secs(1));
        iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            iv.tick().await;
            if st.stopped() {
                return;
            }
            if let Err(e) = st.store.wal_checkpoint().await {
                tracing::warn!(error = %e, "database checkpoint failed");
            }
        }
    });
    tokio::spawn(async move {
        let mut iv = tokio::time::interval(HWM_FLUSH_EVERY);
        // A slow flush is followed by a full pause, never by an immediate next one.
        iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            iv.tick().await;
            // A last flush on the way out keeps the replay marks current.
            flush_hwm(&state).await;
            if state.stopped() {
                return;
            }
        }
    });
}

const KINDS: [DeviceKind; 5] = DeviceKind::ALL;
const STATES: [Liveness; 3] = [Liveness::Live, Liveness::Stale, Liveness::Offline];

/// One pass over every device. It visits tens of thousands of devices twenty times a
/// second, so the gauges are counted in an array, not a hash map.
pub fn tick_once(state: &AppState) {
    let now = state.clock.now_ms();
    let cfg = state.config.liveness();
    let blame = Blame::at(state, now);
    let mut out = Vec::new();
    let mut counts = [[0i64; STATES.len()]; KINDS.len()];
    state.registry.for_each(|e| {
        check(e, now, &cfg, state.config.offline_grace_ms, blame, &mut out);
        if !e.revoked {
            let k = KINDS.iter().position(|k| *k == e.kind);
            let l = STATES.iter().position(|l| *l == e.reported);
            if let (Some(k), Some(l)) = (k, l) {
                counts[k][l] += 1;
            }
        }
    });
    for (kind, row) in KINDS.iter().zip(counts) {
        for (l, n) in STATES.iter().zip(row) {
            state
                .metrics
                .devices
                .get_or_create(&LivenessLabel {
                    kind: kind.as_str().into(),
                    state: l.as_str().into(),
                })
                .set(n);
        }
    }
    for t in out {
        emit(state, t);
    }
}

/// How often replay high-water marks are saved. What a crash leaves unsaved is covered
/// by the restart fence, whatever this is; saving costs one row per device that spoke
/// (at 10 000 cameras every 500 ms the marks alone kept SQLite's one writer busy more
/// than half the time, and alerts waited behind them).
pub const HWM_FLUSH_EVERY: Duration = Duration::from_secs(5);

/// Persist replay high-water marks that moved, with each device's clock offset.
/// Between flushes a crash could forget the last numbers accepted; after a restart
/// those messages are refused by the restart fence, which the saved offset places
/// (see `DeviceEntry::restart_fence`, docs/protocol.md §6.1).
pub async fn flush_hwm(state: &AppState) {
    let now = state.clock.now_ms();
    let mut dirty = Vec::new();
    state.registry.for_each(|e| {
        let h = e.replay.highest();
        // In a fleet, the node acting for the home saves its devices' marks.
        if h > e.persisted_hwm && state.fleet.owns_home(&e.home_id) {
            dirty.push((e.id, h, e.liveness.clock_offset(now)));
        }
    });
    // Never one commit per device (that would monopolise the database at thousands of
    // devices, see docs/performance.md, camera liveness), and never one long
    // transaction either: SQLite has a single writer, and an unlock decision waiting
    // behind a 1 000-row flush waited ~10 ms. Transactions of 100 rows (one statement,
    // about a millisecond) with a short pause between them let decisions, alerts and
    // events take the writer in between.
    for (i, chunk) in dirty.chunks(100).enumerate() {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let marks: Vec<(String, i64, Option<i64>)> = chunk
            .iter()
            .map(|(id, h, o)| (id.to_hex(), *h as i64, *o))
            .collect();
        match state.store.raise_transport_hwms(&marks, now).await {
            Ok(()) => {
                for (id, h, _) in chunk {
                    state
                        .registry
                        .with(id, |e| e.persisted_hwm = e.persisted_hwm.max(*h));
                }
            }
            Err(e) => tracing::error!(error = %e, "could not persist replay high-water marks"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(dev: u8, kind: DeviceKind, from: Liveness, to: Liveness) -> Transition {
        Transition {
            device: DeviceId([dev; 16]),
            home_id: String::new(),
            owner_id: String::new(),
            kind,
            name: String::new(),
            change: Change::Liveness { from, to },
            at_ms: 0,
            last_fresh_ms: None,
        }
    }

    #[test]
    fn a_device_always_goes_to_the_same_effects_task_and_devices_spread_over_all() {
        let mut seen = [0usize; EFFECT_SHARDS];
        for i in 0..4096u32 {
            let mut id = [0u8; 16];
            id[..4].copy_from_slice(&i.wrapping_mul(2_654_435_761).to_le_bytes());
            let d = DeviceId(id);
            let s = effect_shard(&d, EFFECT_SHARDS);
            assert_eq!(s, effect_shard(&d, EFFECT_SHARDS));
            seen[s] += 1;
        }
        assert!(
            seen.iter().all(|&n| n > 4096 / EFFECT_SHARDS / 2),
            "{seen:?}"
        );
    }

    #[test]
    fn critical_transitions_go_first_in_device_order() {
        use Liveness::*;
        let mut q: std::collections::VecDeque<Transition> = [
            t(1, DeviceKind::Camera, Offline, Live),
            t(2, DeviceKind::Camera, Offline, Live),
            t(3, DeviceKind::Lock, Live, Stale),
            t(2, DeviceKind::Camera, Live, Stale),
            t(4, DeviceKind::Camera, Offline, Live),
        ]
        .into_iter()
        .collect();
        let b = take_batch(&mut q, 1);
        let got: Vec<(u8, Liveness)> = b
            .iter()
            .map(|x| match x.change {
                Change::Liveness { to, .. } => (x.device.0[0], to),
                _ => (0, Offline),
            })
            .collect();
        assert_eq!(got, vec![(2, Live), (2, Stale)]);
        assert_eq!(q.len(), 3);
        assert_eq!(take_batch(&mut q, 1)[0].device.0[0], 1);
        assert_eq!(take_batch(&mut q, 1)[0].device.0[0], 3);
        assert_eq!(take_batch(&mut q, 1)[0].device.0[0], 4);
        assert!(take_batch(&mut q, 1).is_empty());
    }

    #[test]
    fn a_batch_puts_critical_devices_first_and_fills_up_in_order() {
        use Liveness::*;
        let mut q: std::collections::VecDeque<Transition> = [
            t(1, DeviceKind::Camera, Offline, Live),
            t(2, DeviceKind::Camera, Offline, Live),
            t(3, DeviceKind::Camera, Live, Stale),
            t(2, DeviceKind::Camera, Live, Offline),
            t(3, DeviceKind::Camera, Stale, Offline),
            t(4, DeviceKind::Camera, Offline, Live),
            t(5, DeviceKind::Camera, Offline, Live),
        ]
        .into_iter()
        .collect();
        let order = |b: &[Transition]| -> Vec<u8> { b.iter().map(|x| x.device.0[0]).collect() };
        // 3's later change (Stale -> Offline) is not critical and keeps its place
        // after its critical one, in the filled-up part.
        assert_eq!(order(&take_batch(&mut q, 5)), vec![2, 3, 2, 1, 3]);
        assert_eq!(order(&take_batch(&mut q, 5)), vec![4, 5]);
        assert!(q.is_empty());
    }
}
