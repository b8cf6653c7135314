//! Is the hub keeping up with its devices? Law 10 carried to load: the hub's own
//! overload is never a camera lost.
//!
//! Every verified live message says when it was signed, on the device's clock, which
//! the hub maps onto its own with that device's estimated offset
//! ([`crate::clock_offset`]). How long after that the hub got round to the message is
//! its *ingest lag*: the device's link, the broker's queue and the hub's own queue
//! together. One camera with a bad link delays only its own messages; a hub (or
//! broker) that has fallen behind delays everybody's. So the hub judges itself on the
//! **median** lag of the newest messages ([`LagWindow`]): one slow camera cannot move it,
//! a hub that is behind moves it at once.
//!
//! [`LoadJudge`] turns that median (and how late the hub's own timers fire, which
//! catches a hub too busy to verify anything) into one verdict with hysteresis:
//! *behind* when either exceeds half the live window, *keeping up* again once both have
//! been under a quarter of it for a full second (longer after a long episode, whose
//! backlog drains in waves: [`LoadLimits::calm_after`]). While behind, the hub blames no
//! device, refuses entries with `hub_degraded` and raises one system alert.

use crate::Millis;

/// Lag buckets: exact below 8 ms, then eight per doubling (12.5 % wide), up to about
/// 2^24 ms (4.7 hours); anything longer counts in the last one.
const BUCKETS: usize = 8 + 21 * 8;

fn bucket_of(lag_ms: Millis) -> usize {
    let v = lag_ms.max(0) as u64;
    if v < 8 {
        return v as usize;
    }
    let e = 63 - v.leading_zeros() as usize; // floor(log2 v), at least 3
    let sub = ((v >> (e - 3)) - 8) as usize; // 0..8
    (8 + (e - 3) * 8 + sub).min(BUCKETS - 1)
}

/// The smallest lag that falls into bucket `b`.
fn bucket_floor(b: usize) -> Millis {
    if b < 8 {
        return b as Millis;
    }
    let e = (b - 8) / 8 + 3;
    let sub = (b - 8) % 8;
    ((8 + sub) as Millis) << (e - 3)
}

/// Counts of lags in logarithmic buckets (12.5 % resolution), for quantiles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LagHistogram {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
}

impl Default for LagHistogram {
    fn default() -> Self {
        LagHistogram {
            counts: Box::new([0; BUCKETS]),
            total: 0,
        }
    }
}

impl LagHistogram {
    pub fn record(&mut self, lag_ms: Millis) {
        if let Some(c) = self.counts.get_mut(bucket_of(lag_ms)) {
            *c += 1;
            self.total += 1;
        }
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// The `q` quantile (0..=1), as the lower bound of its bucket; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<Millis> {
        if self.total == 0 {
            return None;
        }
        // The rank of the quantile, 1-based: the median of 3 is the 2nd.
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (b, n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(bucket_floor(b));
            }
        }
        Some(bucket_floor(BUCKETS - 1))
    }

    fn merge(&mut self, other: &LagHistogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.total += other.total;
    }

    fn clear(&mut self) {
        self.counts.fill(0);
        self.total = 0;
    }
}

/// Slots of the sliding window: eight of 250 ms make the last two seconds (enough
/// messages even from a small house whose devices report every half second).
const SLOT_MS: Millis = 250;
const SLOTS: usize = 8;

/// The slot of the lag window that hub time `now` falls in: a device's messages count
/// once per slot in the hub's judgement of itself ([`LoadJudge::record`]).
pub fn slot_of(now: Millis) -> Millis {
    now.div_euclid(SLOT_MS)
}

/// The lags of the last two seconds, in eight slots of 250 ms that age out one by one.
#[derive(Clone, Debug, Default)]
pub struct LagWindow {
    /// (slot number = hub time / 250 ms, its lags).
    slots: [(Millis, LagHistogram); SLOTS],
}

impl LagWindow {
    /// A message handled at hub time `now`, `lag_ms` after it was signed.
    pub fn record(&mut self, now: Millis, lag_ms: Millis) {
        let n = slot_of(now);
        let i = n.rem_euclid(SLOTS as Millis) as usize;
        if let Some((slot, h)) = self.slots.get_mut(i) {
            if *slot != n {
                *slot = n;
                h.clear();
            }
            h.record(lag_ms);
        }
    }

    /// All lags recorded within the last two seconds before `now`.
    pub fn recent(&self, now: Millis) -> LagHistogram {
        self.newest(now, u64::MAX)
    }

    /// The lags of the newest slots of the last two seconds, newest first, until they
    /// hold at least `enough` (or the window ends): what the lag is *now*, from as
    /// few of the most recent messages as can tell.
    pub fn newest(&self, now: Millis, enough: u64) -> LagHistogram {
        let n = now.div_euclid(SLOT_MS);
        let mut out = LagHistogram::default();
        for back in 0..SLOTS as Millis {
            let want = n - back;
            if let Some((_, h)) = self.slots.iter().find(|(slot, _)| *slot == want) {
                out.merge(h);
            }
            if out.count() >= enough {
                break;
            }
        }
        out
    }
}

/// What the hub concludes about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadChange {
    /// It fell behind at `at`: median lag (or timer lateness) `lag_ms`.
    FellBehind { at: Millis, lag_ms: Millis },
    /// It keeps up again since `at`, after being behind since `since`.
    CaughtUp { at: Millis, since: Millis },
}

/// Thresholds of [`LoadJudge`], all derived from the live window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadLimits {
    /// Behind when the median lag or the timer lateness exceeds this.
    pub behind_ms: Millis,
    /// Keeping up again once both have stayed under this for `calm_ms`, or a quarter of
    /// the episode so far if longer, up to `calm_max_ms` ([`LoadLimits::calm_after`]).
    pub calm_below_ms: Millis,
    pub calm_ms: Millis,
    pub calm_max_ms: Millis,
    /// Fewer messages than this in the window say nothing about the median.
    pub min_samples: u64,
}

impl LoadLimits {
    /// Half the live window to fall behind (a frame that spent half its freshness in
    /// queues leaves too little to judge), a quarter of it for one second to recover.
    pub fn for_live_window(live_window_ms: Millis) -> Self {
        LoadLimits {
            behind_ms: (live_window_ms / 2).max(1),
            calm_below_ms: (live_window_ms / 4).max(1),
            calm_ms: 1_000,
            calm_max_ms: 10_000,
            min_samples: 8,
        }
    }

    /// How long the lag must stay calm to end an episode that has lasted `episode_ms`:
    /// a second, or a quarter of the episode, up to ten seconds. A long backlog drains
    /// unevenly, its lag dipping and rising again for a while (the overload benchmark
    /// at 317e0b8, 15:16 UTC on 2026-12-05: after a 40-s flood the hub kept up for 3 to
    /// 8 s at a time between five episodes behind, each a new alert to the operator
    /// and a window in which cameras could be blamed for the hub's queue).
    pub fn calm_after(&self, episode_ms: Millis) -> Millis {
        (episode_ms / 4).clamp(self.calm_ms, self.calm_max_ms.max(self.calm_ms))
    }
}

/// The hub's verdict on its own load, from message lags and timer lateness.
#[derive(Clone, Debug)]
pub struct LoadJudge {
    limits: LoadLimits,
    window: LagWindow,
    behind_since: Option<Millis>,
    calm_since: Option<Millis>,
    caught_up_at: Option<Millis>,
    /// The hub's own pauses still allowed for: (until, how long), from liveness passes
    /// that fired late ([`LoadJudge::pass_late`]); the longest first, each later one
    /// shorter and lasting longer (a monotonic queue: its front is the allowance).
    stalls: std::collections::VecDeque<(Millis, Millis)>,
    /// Until when a backlog of the last episode behind may still be draining
    /// ([`LoadJudge::backlog_until`]).
    backlog_until: Option<Millis>,
}

impl LoadJudge {
    pub fn new(limits: LoadLimits) -> Self {
        LoadJudge {
            limits,
            window: LagWindow::default(),
            behind_since: None,
            calm_since: None,
            caught_up_at: None,
            stalls: Default::default(),
            backlog_until: None,
        }
    }

    /// A device's message handled at `now`, `lag_ms` late: the first of that device
    /// in its slot ([`slot_of`]). The median is over devices, not messages: one
    /// connection handing over a backlog of a dozen messages at once (a camera whose
    /// link stalled for 3 s, or whose queue in the hub drains last) would otherwise
    /// fill a slot of a small house and call the hub behind.
    pub fn record(&mut self, now: Millis, lag_ms: Millis) {
        self.window.record(now, lag_ms);
    }

    /// The median lag of the newest messages (the newest 250 ms slots holding at least
    /// `min_samples` of them), if the last two seconds hold enough to tell. A hub that
    /// falls behind is seen within a slot or two, not after a window of older lags.
    pub fn median_lag(&self, now: Millis) -> Option<Millis> {
        let h = self.window.newest(now, self.limits.min_samples);
        (h.count() >= self.limits.min_samples)
            .then(|| h.quantile(0.5))
            .flatten()
    }

    /// How much older than the live window a device's newest evidence may be before it
    /// is blamed: the lag 99 messages in 100 of the newest stay under, up to the point
    /// where the hub counts itself behind (and then blames no one at all). A camera
    /// whose pictures are no later than the hub's own queue makes nearly every message
    /// is not at fault; one later than that is. (Not the median, nor the ninth decile:
    /// on a busy hub some messages wait far longer than most in its run queue, and the
    /// cameras they belong to are not to blame for it. At 10 000 cameras with a
    /// median lag of 28 ms and a 99th percentile of 768 ms, the ninth decile blamed one
    /// camera whose messages sat in that tail.) A camera with a bad link is still
    /// blamed: the allowance never exceeds half the live window.
    ///
    /// After the hub's own pause ([`LoadJudge::pass_late`]) the allowance is at least
    /// the pause, for as long again.
    pub fn blame_allowance(&self, now: Millis) -> Millis {
        let h = self.window.newest(now, self.limits.min_samples);
        let queue = if h.count() < self.limits.min_samples {
            0
        } else {
            h.quantile(0.99)
                .unwrap_or(0)
                .clamp(0, self.limits.behind_ms)
        };
        let pause = self
            .stalls
            .iter()
            .find(|(until, _)| now <= *until)
            .map_or(0, |(_, ms)| *ms);
        queue.max(pause)
    }

    /// A liveness pass fired `late_ms` late at `now`: the hub itself did not run for
    /// that long (a virtual machine paused, a process swapped out), so nothing was heard
    /// from any device meanwhile and every device's newest evidence is that much older
    /// through no fault of its own. One such pause does not make the hub *behind* (the
    /// judgement takes the smallest of several passes' lateness), but until as long
    /// again has passed (its backlog being worked off) it is allowed for in blame.
    pub fn pass_late(&mut self, now: Millis, late_ms: Millis) {
        while self.stalls.front().is_some_and(|(until, _)| *until < now) {
            self.stalls.pop_front();
        }
        if late_ms <= 0 {
            return;
        }
        // A pause no longer than this one ends no later: this one covers it. Passes
        // late again and again on a saturated runtime do not keep the longest pause's
        // allowance alive (it held camera-lost alerts 23-31 s past an overload).
        while self.stalls.back().is_some_and(|(_, ms)| *ms <= late_ms) {
            self.stalls.pop_back();
        }
        self.stalls
            .push_back((now.saturating_add(late_ms), late_ms));
    }

    /// Judge at `now`, given how late the hub's own timers fire (`timer_late_ms`).
    pub fn judge(&mut self, now: Millis, timer_late_ms: Millis) -> Option<LoadChange> {
        let lag = self.median_lag(now).unwrap_or(0).max(timer_late_ms);
        match self.behind_since {
            None if lag > self.limits.behind_ms => {
                self.behind_since = Some(now);
                self.calm_since = None;
                Some(LoadChange::FellBehind {
                    at: now,
                    lag_ms: lag,
                })
            }
            None => None,
            Some(since) => {
                if lag >= self.limits.calm_below_ms {
                    self.calm_since = None;
                    return None;
                }
                let calm = *self.calm_since.get_or_insert(now);
                if now.saturating_sub(calm) < self.limits.calm_after(calm.saturating_sub(since)) {
                    return None;
                }
                self.behind_since = None;
                self.calm_since = None;
                self.caught_up_at = Some(now);
                let drained_by = now.saturating_add(now.saturating_sub(since));
                self.backlog_until =
                    Some(self.backlog_until.map_or(drained_by, |u| u.max(drained_by)));
                Some(LoadChange::CaughtUp { at: now, since })
            }
        }
    }

    /// Since when the hub has been behind, if it is.
    pub fn behind_since(&self) -> Option<Millis> {
        self.behind_since
    }

    /// When the hub last caught up after being behind.
    pub fn caught_up_at(&self) -> Option<Millis> {
        self.caught_up_at
    }

    /// Until when the backlog of the hub's last episode behind may still be draining
    /// through some of its devices' connections: as long again as the episode lasted,
    /// from when the hub caught up (and never shortened by a later, shorter episode).
    /// See [`still_draining`].
    pub fn backlog_until(&self) -> Option<Millis> {
        self.backlog_until
    }
}

/// Whether a device's own connection is still working off the hub's backlog at `now`,
/// so that its late messages are the hub's fault, not the device's: within
/// `backlog_until` ([`LoadJudge::backlog_until`]), its newest message handled (at
/// `heard_at`) was later than the blame allowance, and no longer ago than that
/// message's own lag (a connection whose messages wait `lag` for the hub delivers the
/// next within about as long).
///
/// The hub drains a backlog unevenly: the median of its messages is prompt again (it
/// keeps up) while some connections still hand it messages signed seconds ago, which
/// sat in the hub's own socket buffers (the overload benchmark at 317e0b8: 12 cameras
/// whose every heartbeat was sent on time were called lost 3 s after the hub caught
/// up). Outside that time a late device is blamed as ever: a bad link is its own, and
/// so is a camera that stops sending (it is no longer heard).
pub fn still_draining(
    now: Millis,
    backlog_until: Option<Millis>,
    allowance_ms: Millis,
    lag_ms: Option<Millis>,
    heard_at: Option<Millis>,
) -> bool {
    let (Some(until), Some(lag), Some(heard)) = (backlog_until, lag_ms, heard_at) else {
        return false;
    };
    now <= until && lag > allowance_ms && now.saturating_sub(heard) <= lag
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_within_an_eighth() {
        let mut prev = 0;
        for v in 0..200_000i64 {
            let b = bucket_of(v);
            assert!(b >= prev, "bucket of {v} went down");
            prev = b;
            let lo = bucket_floor(b);
            assert!(lo <= v, "{v} below its bucket floor {lo}");
            assert!(
                v - lo <= lo / 8 + 1,
                "{v} too far from its bucket floor {lo}"
            );
        }
        assert_eq!(bucket_of(-5), 0);
        assert_eq!(bucket_of(i64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_of_known_lags() {
        let mut h = LagHistogram::default();
        assert_eq!(h.quantile(0.5), None);
        for v in 1..=100 {
            h.record(v);
        }
        assert_eq!(h.quantile(0.5), Some(48)); // 50 is in [48, 52)
        assert_eq!(h.quantile(0.99), Some(96)); // 99 is in [96, 104)
        assert_eq!(h.quantile(0.0), Some(1));
        assert_eq!(h.count(), 100);
    }

    #[test]
    fn window_forgets_what_is_older_than_two_seconds() {
        let mut w = LagWindow::default();
        w.record(10_000, 900);
        w.record(10_300, 900);
        assert_eq!(w.recent(11_400).count(), 2);
        assert_eq!(w.recent(12_100).count(), 1, "the 10 000 slot aged out");
        assert_eq!(w.recent(12_400).count(), 0);
        // A slot reused two seconds later starts empty.
        w.record(12_300, 5);
        assert_eq!(w.recent(12_300).quantile(1.0), Some(5));
        assert_eq!(w.recent(12_300).count(), 1);
    }

    fn judge() -> LoadJudge {
        LoadJudge::new(LoadLimits::for_live_window(1_000))
    }

    /// 40 messages a second for `ms`, each `lag(i)` late.
    fn feed(j: &mut LoadJudge, from: Millis, ms: Millis, lag: impl Fn(i64) -> Millis) {
        let mut t = from;
        let mut i = 0;
        while t < from + ms {
            j.record(t, lag(i));
            t += 25;
            i += 1;
        }
    }

    #[test]
    fn one_slow_camera_is_not_the_hub() {
        let mut j = judge();
        // One message in four (one camera of four) arrives 3 s late.
        feed(&mut j, 0, 5_000, |i| if i % 4 == 0 { 3_000 } else { 20 });
        assert_eq!(j.judge(5_000, 0), None);
        assert_eq!(j.behind_since(), None);
    }

    #[test]
    fn everyone_late_is_the_hub_and_it_recovers_after_a_calm_second() {
        let mut j = judge();
        feed(&mut j, 0, 2_000, |_| 20);
        assert_eq!(j.judge(2_000, 0), None);
        feed(&mut j, 2_000, 1_000, |_| 800);
        assert_eq!(
            j.judge(3_000, 0),
            Some(LoadChange::FellBehind {
                at: 3_000,
                lag_ms: 768
            })
        );
        assert_eq!(j.judge(3_250, 0), None, "told once");
        // Lag drops below a quarter window: keeping up only after a full calm second.
        feed(&mut j, 3_000, 1_000, |_| 30);
        assert_eq!(j.judge(4_000, 0), None, "calm since 4 000");
        // A second of 400 ms lag in between restarts the calm second.
        feed(&mut j, 4_000, 1_000, |_| 400);
        assert_eq!(j.judge(5_000, 0), None);
        feed(&mut j, 5_000, 2_000, |_| 30);
        assert_eq!(j.judge(5_900, 0), None, "calm since 5 900");
        assert_eq!(j.judge(6_800, 0), None);
        assert_eq!(
            j.judge(6_900, 0),
            Some(LoadChange::CaughtUp {
                at: 6_900,
                since: 3_000
            })
        );
        assert_eq!(j.caught_up_at(), Some(6_900));
        assert_eq!(j.behind_since(), None);
    }

    #[test]
    fn the_newest_slots_say_what_the_lag_is_now() {
        let mut w = LagWindow::default();
        for t in (0..1_000).step_by(25) {
            w.record(t, 10);
        }
        for t in (1_000..1_250).step_by(25) {
            w.record(t, 700);
        }
        assert_eq!(
            w.newest(1_200, 8).quantile(0.5),
            Some(640),
            "700 is in [640, 704)"
        );
        assert_eq!(w.recent(1_200).quantile(0.5), Some(10));
        // Too few in the newest slot: older slots are added until there are enough.
        w.record(1_250, 5_000);
        assert_eq!(w.newest(1_250, 8).count(), 11);
    }

    #[test]
    fn blame_allowance_is_the_99th_percentile_up_to_behind() {
        let mut j = judge();
        assert_eq!(
            j.blame_allowance(1_000),
            0,
            "nothing known, nothing allowed"
        );
        feed(&mut j, 0, 1_000, |_| 300);
        // 300 is in [288, 320).
        assert_eq!(j.blame_allowance(1_000), 288);
        // A busy hub: a message every millisecond, 250 in the newest slot.
        let dense = |j: &mut LoadJudge, from: Millis, every: i64| {
            for t in from..from + 1_000 {
                j.record(t, if t % every == 0 { 400 } else { 20 });
            }
        };
        // One message in fifty 400 ms late: more than one in a hundred, so allowed.
        dense(&mut j, 1_000, 50);
        // 400 is in [384, 416).
        assert_eq!(j.blame_allowance(2_000), 384);
        // One in two hundred: that tail is beyond the allowance.
        dense(&mut j, 2_000, 200);
        assert_eq!(j.blame_allowance(3_000), 20);
        feed(&mut j, 3_000, 1_000, |_| 4_000);
        assert_eq!(
            j.blame_allowance(4_000),
            500,
            "capped at half the live window"
        );
    }

    #[test]
    fn a_pause_of_the_hub_is_allowed_for_in_blame_for_as_long_again() {
        let mut j = judge();
        feed(&mut j, 0, 1_000, |_| 20);
        assert_eq!(j.blame_allowance(1_000), 20);
        // The hub did not run from 1 000 to 3 000: its first pass after fires 2 s late.
        j.pass_late(3_000, 2_000);
        assert_eq!(j.blame_allowance(3_000), 2_000);
        assert_eq!(j.blame_allowance(5_000), 2_000);
        assert_eq!(
            j.blame_allowance(5_001),
            0,
            "over: the newest lags say again"
        );
        // A second pause within the first's shadow extends it.
        j.pass_late(6_000, 300);
        j.pass_late(6_200, 1_000);
        assert_eq!(j.blame_allowance(7_000), 1_000);
        assert_eq!(j.blame_allowance(7_201), 0);
        j.pass_late(8_000, 0);
        assert_eq!(j.blame_allowance(8_000), 0, "a pass on time is no pause");
    }

    #[test]
    fn a_long_pause_is_allowed_for_as_long_again_not_while_passes_stay_late() {
        let mut j = judge();
        j.pass_late(10_000, 8_000);
        // Every pass after it fires 300 ms late (a saturated runtime).
        for t in (10_250..=20_000).step_by(250) {
            j.pass_late(t, 300);
            let want = if t <= 18_000 { 8_000 } else { 300 };
            assert_eq!(j.blame_allowance(t), want, "at {t}");
        }
        // Passes on time again: the last late one's allowance runs out.
        j.pass_late(20_250, 0);
        assert_eq!(j.blame_allowance(20_300), 300);
        assert_eq!(j.blame_allowance(20_301), 0);
        assert!(j.stalls.len() <= 2, "{:?}", j.stalls);
    }

    #[test]
    fn late_timers_alone_mean_behind() {
        let mut j = judge();
        // Too busy to verify anything: no messages at all, but timers fire 2 s late.
        assert_eq!(
            j.judge(1_000, 2_000),
            Some(LoadChange::FellBehind {
                at: 1_000,
                lag_ms: 2_000
            })
        );
    }

    /// Messages with lag `lag` from `from` to `to`, judged every 250 ms as the
    /// liveness passes do; the changes seen.
    fn live(j: &mut LoadJudge, from: Millis, to: Millis, lag: Millis) -> Vec<LoadChange> {
        let mut changes = Vec::new();
        let mut t = from;
        while t < to {
            feed(j, t, 250, |_| lag);
            t += 250;
            changes.extend(j.judge(t, 0));
        }
        changes
    }

    #[test]
    fn a_long_episode_ends_only_after_a_longer_calm() {
        let mut j = judge();
        assert_eq!(
            live(&mut j, 0, 1_000, 800),
            vec![LoadChange::FellBehind {
                at: 250,
                lag_ms: 768
            }]
        );
        // 40 s behind, then the backlog drains in waves: 3 s prompt, 2 s behind again.
        assert_eq!(live(&mut j, 1_000, 41_000, 800), vec![]);
        assert_eq!(
            live(&mut j, 41_000, 44_000, 30),
            vec![],
            "not after 3 s calm"
        );
        assert_eq!(
            live(&mut j, 44_000, 46_000, 800),
            vec![],
            "the same episode"
        );
        // Calm from 46 250: a quarter of the 46-s episode, capped at 10 s.
        assert_eq!(live(&mut j, 46_000, 56_000, 30), vec![]);
        assert_eq!(
            live(&mut j, 56_000, 56_250, 30),
            vec![LoadChange::CaughtUp {
                at: 56_250,
                since: 250
            }]
        );
        let limits = LoadLimits::for_live_window(1_000);
        assert_eq!(limits.calm_after(2_000), 1_000);
        assert_eq!(limits.calm_after(8_000), 2_000);
        assert_eq!(limits.calm_after(600_000), 10_000);
    }

    #[test]
    fn a_backlog_may_drain_for_as_long_again_as_the_episode_and_never_less() {
        let mut j = judge();
        assert_eq!(j.backlog_until(), None, "never behind, nothing to drain");
        live(&mut j, 0, 10_000, 800);
        // Behind from 250; calm from 10 250 for a quarter of 10 s.
        assert_eq!(
            live(&mut j, 10_000, 13_000, 30),
            vec![LoadChange::CaughtUp {
                at: 12_750,
                since: 250
            }]
        );
        assert_eq!(
            j.backlog_until(),
            Some(25_250),
            "12.5 s behind, as long to drain"
        );
        // A short episode soon after does not shorten it.
        assert_eq!(live(&mut j, 13_000, 14_000, 800).len(), 1);
        assert_eq!(live(&mut j, 14_000, 16_000, 30).len(), 1);
        assert_eq!(j.backlog_until(), Some(25_250));
    }

    #[test]
    fn a_device_is_still_draining_only_while_it_is_heard_late_after_an_episode() {
        let until = Some(20_000);
        // Heard 1 s ago with a message 3 s late, allowance 500 ms: draining.
        assert!(still_draining(10_000, until, 500, Some(3_000), Some(9_000)));
        // No longer heard for as long as its lag: it stopped sending, not draining.
        assert!(still_draining(12_000, until, 500, Some(3_000), Some(9_000)));
        assert!(!still_draining(
            12_001,
            until,
            500,
            Some(3_000),
            Some(9_000)
        ));
        // Its newest message was no later than everybody's: nothing of its own drains.
        assert!(!still_draining(10_000, until, 500, Some(500), Some(9_900)));
        // After the backlog's time, late is the device's own.
        assert!(!still_draining(
            20_001,
            until,
            500,
            Some(3_000),
            Some(20_000)
        ));
        // Never behind, or the device's lag or hearing unknown: no excuse.
        assert!(!still_draining(10_000, None, 500, Some(3_000), Some(9_000)));
        assert!(!still_draining(10_000, until, 500, None, Some(9_000)));
        assert!(!still_draining(10_000, until, 500, Some(3_000), None));
    }

    #[test]
    fn too_few_messages_say_nothing() {
        let mut j = judge();
        for t in 0..3 {
            j.record(t * 100, 5_000);
        }
        assert_eq!(j.median_lag(500), None);
        assert_eq!(j.judge(500, 0), None);
    }
}
