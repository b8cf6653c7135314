//! Whether the hub keeps up with its devices' messages (`threshold_core::ingest`), and
//! what follows when it does not: the hub's overload is its own fault, never a camera's.
//!
//! Ingest records the lag of every verified live message; the liveness ticker judges
//! every pass, with how late its own timer fired. While the hub is behind:
//! - ingest treats a message signed long ago as late, not as a device clock out of
//!   skew, and learns no clock offsets from queue-delayed arrivals;
//! - the monitor reports no device as less live than before (no `device.liveness`
//!   lost, no offline notice), for as long as it is behind and one live window after;
//! - the access layer blames no camera (no incident) and refuses entries with
//!   `hub_degraded` (`AccessState::set_keeping_up`);
//! - one system alert is raised (`hub_behind`, resolved when it catches up), `/healthz`
//!   says degraded and `threshold_hub_behind` is 1.

use crate::state::AppState;
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Mutex;
use threshold_core::ingest::{LagHistogram, LoadChange, LoadJudge, LoadLimits};
use threshold_core::Millis;

/// Timer lateness is judged on the smallest of this many recent passes: one hiccup is
/// not overload, every pass late is.
const TIMER_PASSES: usize = 4;

#[derive(Debug)]
pub struct Load {
    inner: Mutex<Inner>,
    /// What every message and every device check reads, set by each judgement.
    behind: AtomicBool,
    caught_up_at: AtomicI64,
    allowance_ms: AtomicI64,
    live_window_ms: Millis,
}

#[derive(Debug)]
struct Inner {
    judge: LoadJudge,
    /// Every lag since the hub started (the benchmark's and /healthz's quantiles).
    total: LagHistogram,
    timer_late: [Millis; TIMER_PASSES],
    next_timer: usize,
}

impl Load {
    pub fn new(live_window_ms: Millis) -> Self {
        Load {
            inner: Mutex::new(Inner {
                judge: LoadJudge::new(LoadLimits::for_live_window(live_window_ms)),
                total: LagHistogram::default(),
                timer_late: [0; TIMER_PASSES],
                next_timer: 0,
            }),
            behind: AtomicBool::new(false),
            caught_up_at: AtomicI64::new(i64::MIN),
            allowance_ms: AtomicI64::new(0),
            live_window_ms,
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A live message handled at `now`, `lag_ms` after it was signed (hub clock).
    pub fn record(&self, now: Millis, lag_ms: Millis) {
        let mut i = self.inner();
        i.judge.record(now, lag_ms);
        i.total.record(lag_ms);
    }

    /// Whether the hub is behind now (cheap: read on every message).
    pub fn behind(&self) -> bool {
        self.behind.load(Ordering::Relaxed)
    }

    /// Whether a device may be reported less live than before: not while the hub is
    /// behind, nor within one live window of catching up (every device has had the
    /// chance to prove itself on a hub that keeps up only after that).
    pub fn holds_blame(&self, now: Millis) -> bool {
        self.behind()
            || now.saturating_sub(self.caught_up_at.load(Ordering::Relaxed)) <= self.live_window_ms
    }

    /// The time at which a device's evidence is judged for blame (not for entry, which
    /// is judged at `now`): `now` less the lag nine in ten of the newest messages stay
    /// under (`LoadJudge::blame_allowance`), as of the last judgement.
    pub fn blame_horizon(&self, now: Millis) -> Millis {
        now.saturating_sub(self.allowance_ms.load(Ordering::Relaxed))
    }

    /// Every lag recorded since the hub started or since the last call (a benchmark
    /// takes them once after its warm-up and once at its end).
    pub fn take_lags(&self) -> LagHistogram {
        std::mem::take(&mut self.inner().total)
    }

    /// (median lag of the last two seconds if known, behind since).
    pub fn now(&self, now: Millis) -> (Option<Millis>, Option<Millis>) {
        let i = self.inner();
        (i.judge.median_lag(now), i.judge.behind_since())
    }

    fn judge(&self, now: Millis, timer_late_ms: Millis) -> Option<LoadChange> {
        let mut i = self.inner();
        let slot = i.next_timer;
        if let Some(t) = i.timer_late.get_mut(slot) {
            *t = timer_late_ms.max(0);
        }
        i.next_timer = (slot + 1) % TIMER_PASSES;
        let late = i.timer_late.iter().copied().min().unwrap_or(0);
        let change = i.judge.judge(now, late);
        self.behind
            .store(i.judge.behind_since().is_some(), Ordering::Relaxed);
        if let Some(at) = i.judge.caught_up_at() {
            self.caught_up_at.store(at, Ordering::Relaxed);
        }
        self.allowance_ms
            .store(i.judge.blame_allowance(now), Ordering::Relaxed);
        change
    }
}

/// Judge the hub's load now (each liveness pass), given how late that pass's timer
/// fired, and switch what depends on it at once; the system alert is left to
/// [`apply`], which writes to the database.
pub fn judge(state: &AppState, timer_late_ms: Millis) -> Option<LoadChange> {
    let now = state.clock.now_ms();
    let change = state.load.judge(now, timer_late_ms)?;
    match change {
        LoadChange::FellBehind { at, lag_ms } => {
            state.access.set_keeping_up(false, at);
            state.metrics.hub_behind.set(1);
            tracing::error!(
                lag_ms,
                "hub is behind with its devices' messages: liveness cannot be vouched for; no device is blamed and entries are refused until it catches up"
            );
        }
        LoadChange::CaughtUp { at, since } => {
            state.access.set_keeping_up(true, at);
            state.metrics.hub_behind.set(0);
            tracing::warn!(
                behind_ms = at - since,
                "hub keeps up with its devices' messages again"
            );
        }
    }
    Some(change)
}

/// The cause key of one episode of being behind: its start.
fn cause(since: Millis) -> String {
    format!("hub_behind:{since}")
}

/// Raise the episode's system alert when the hub falls behind; resolve it when the
/// hub catches up. Changes are applied in the order they happened.
pub async fn apply(state: &AppState, change: LoadChange) {
    match change {
        LoadChange::FellBehind { at, lag_ms } => {
            let message = format!(
                "The hub is behind with its devices' messages (they reach it {:.1} s after they were signed; the live window is {:.1} s). It cannot vouch for any camera: entries are refused and no camera is called lost until it catches up.",
                lag_ms as f64 / 1000.0,
                state.config.live_window_ms as f64 / 1000.0
            );
            let evidence = json!({
                "lag_ms": lag_ms,
                "live_window_ms": state.config.live_window_ms,
                "devices": state.registry.len(),
            })
            .to_string();
            let key = cause(at);
            let raised = state
                .store
                .raise_system_alert(
                    threshold_store::NewSystemAlert {
                        kind: "hub_behind",
                        severity: "critical",
                        message: &message,
                        evidence: &evidence,
                        cause_key: &key,
                    },
                    at,
                )
                .await;
            match raised {
                Ok(Some(row)) => {
                    state
                        .metrics
                        .alerts
                        .get_or_create(&crate::metrics::KindLabel {
                            kind: row.kind.clone(),
                        })
                        .inc();
                    crate::audit::record(
                        state,
                        "system_alert",
                        "hub",
                        "hub",
                        json!({"alert_id": row.id, "kind": row.kind, "lag_ms": lag_ms}),
                    )
                    .await;
                }
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "could not store the hub_behind alert"),
            }
        }
        LoadChange::CaughtUp { at, since } => {
            if let Err(e) = state.store.resolve_system_alert(&cause(since), at).await {
                tracing::error!(error = %e, "could not resolve the hub_behind alert");
            }
        }
    }
}
