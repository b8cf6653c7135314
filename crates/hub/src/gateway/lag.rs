//! What the hub knows of its own ingest lag (`threshold_core::ingest`): recorded by
//! ingest on every live message, read by the monitor and the access rules, judged by
//! `gateway::load` each liveness pass.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Mutex;
use threshold_core::ingest::{still_draining, LagHistogram, LoadChange, LoadJudge, LoadLimits};
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
    /// `LoadJudge::backlog_until`, `i64::MIN` before the first episode.
    backlog_until: AtomicI64,
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
            backlog_until: AtomicI64::new(i64::MIN),
            allowance_ms: AtomicI64::new(0),
            live_window_ms,
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A live message handled at `now`, `lag_ms` after it was signed (hub clock);
    /// `judged` if it is its device's first in its slot (`LoadJudge::record`).
    pub fn record(&self, now: Millis, lag_ms: Millis, judged: bool) {
        let mut i = self.inner();
        if judged {
            i.judge.record(now, lag_ms);
        }
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
    /// is judged at `now`): `now` less the lag 99 in 100 of the newest messages stay
    /// under (`LoadJudge::blame_allowance`), as of the last judgement.
    pub fn blame_horizon(&self, now: Millis) -> Millis {
        now.saturating_sub(self.allowance_ms.load(Ordering::Relaxed))
    }

    /// Whether a device may not be blamed yet because its own connection is still
    /// draining the backlog of the hub's last episode behind: judged on its newest
    /// handled message's lag and when it was heard
    /// (`threshold_core::ingest::still_draining`).
    pub fn excuses(&self, now: Millis, e: &crate::gateway::registry::DeviceEntry) -> bool {
        let until = self.backlog_until.load(Ordering::Relaxed);
        still_draining(
            now,
            (until != i64::MIN).then_some(until),
            self.allowance_ms.load(Ordering::Relaxed),
            e.last_lag_ms,
            e.liveness.last_seen_at(),
        )
    }

    /// Every lag recorded since the hub started or since the last call (a benchmark
    /// takes them once after its warm-up and once at its end).
    pub fn take_lags(&self) -> LagHistogram {
        std::mem::take(&mut self.inner().total)
    }

    /// (median lag of the newest messages if known, behind since).
    pub fn now(&self, now: Millis) -> (Option<Millis>, Option<Millis>) {
        let i = self.inner();
        (i.judge.median_lag(now), i.judge.behind_since())
    }

    /// Judge at `now` (see `gateway::load::judge`, which acts on the answer).
    pub fn judge(&self, now: Millis, timer_late_ms: Millis) -> Option<LoadChange> {
        let mut i = self.inner();
        let slot = i.next_timer;
        if let Some(t) = i.timer_late.get_mut(slot) {
            *t = timer_late_ms.max(0);
        }
        i.next_timer = (slot + 1) % TIMER_PASSES;
        i.judge.pass_late(now, timer_late_ms);
        let late = i.timer_late.iter().copied().min().unwrap_or(0);
        let change = i.judge.judge(now, late);
        self.behind
            .store(i.judge.behind_since().is_some(), Ordering::Relaxed);
        if let Some(at) = i.judge.caught_up_at() {
            self.caught_up_at.store(at, Ordering::Relaxed);
        }
        if let Some(until) = i.judge.backlog_until() {
            self.backlog_until.store(until, Ordering::Relaxed);
        }
        self.allowance_ms
            .store(i.judge.blame_allowance(now), Ordering::Relaxed);
        change
    }
}
