//! A device's last hours as bands of one state each, for the owner's 24-hour strip:
//! from the liveness changes the hub recorded, what the device was at each moment of a
//! window. Before the device was enrolled, the hub knows nothing: `unknown`.

use crate::liveness::Liveness;
use crate::Millis;

/// What a band says about a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BandState {
    Known(Liveness),
    Unknown,
}

impl BandState {
    pub fn as_str(self) -> &'static str {
        match self {
            BandState::Known(l) => l.as_str(),
            BandState::Unknown => "unknown",
        }
    }
}

/// One stretch of time `[from_ms, to_ms)` in one state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Band {
    pub from_ms: Millis,
    pub to_ms: Millis,
    pub state: BandState,
}

/// One recorded change: at `at_ms`, from one state to another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    pub at_ms: Millis,
    pub from: Liveness,
    pub to: Liveness,
}

/// The bands of the window `[from_ms, to_ms)` for a device enrolled at `enrolled_ms`,
/// given its recorded `changes` (any order; those outside the window are used only
/// to know the state at its start) and its state `now` (what holds after the last
/// change, or all along when nothing changed). Adjacent bands of one state are merged.
pub fn bands(
    changes: &[Change],
    from_ms: Millis,
    to_ms: Millis,
    enrolled_ms: Millis,
    now: Liveness,
) -> Vec<Band> {
    let mut sorted: Vec<Change> = changes.to_vec();
    sorted.sort_by_key(|c| c.at_ms);
    // The state at `t`: after the last change at or before `t`, else before the first.
    let state_at = |t: Millis| -> BandState {
        if t < enrolled_ms {
            return BandState::Unknown;
        }
        match sorted.iter().rev().find(|c| c.at_ms <= t) {
            Some(c) => BandState::Known(c.to),
            None => BandState::Known(sorted.first().map_or(now, |c| c.from)),
        }
    };
    let mut cuts: Vec<Millis> = vec![from_ms];
    if enrolled_ms > from_ms && enrolled_ms < to_ms {
        cuts.push(enrolled_ms);
    }
    cuts.extend(
        sorted
            .iter()
            .map(|c| c.at_ms)
            .filter(|&t| t > from_ms && t < to_ms),
    );
    cuts.sort_unstable();
    cuts.dedup();
    let mut out: Vec<Band> = Vec::new();
    for (i, &start) in cuts.iter().enumerate() {
        let end = cuts.get(i + 1).copied().unwrap_or(to_ms);
        if end <= start {
            continue;
        }
        let state = state_at(start);
        match out.last_mut() {
            Some(last) if last.state == state => last.to_ms = end,
            _ => out.push(Band {
                from_ms: start,
                to_ms: end,
                state,
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use Liveness::*;

    fn c(at_ms: Millis, from: Liveness, to: Liveness) -> Change {
        Change { at_ms, from, to }
    }

    fn states(b: &[Band]) -> Vec<(Millis, Millis, &'static str)> {
        b.iter()
            .map(|b| (b.from_ms, b.to_ms, b.state.as_str()))
            .collect()
    }

    #[test]
    fn nothing_changed_means_the_present_state_all_along() {
        assert_eq!(
            states(&bands(&[], 0, 100, -5, Live)),
            vec![(0, 100, "live")]
        );
    }

    #[test]
    fn changes_cut_the_window_and_the_start_is_what_came_before_the_first() {
        let ch = [
            c(70, Stale, Offline),
            c(40, Live, Stale),
            c(90, Offline, Live),
        ];
        assert_eq!(
            states(&bands(&ch, 0, 100, -5, Live)),
            vec![
                (0, 40, "live"),
                (40, 70, "stale"),
                (70, 90, "offline"),
                (90, 100, "live")
            ]
        );
    }

    #[test]
    fn a_change_before_the_window_sets_its_start() {
        let ch = [c(-10, Live, Offline), c(50, Offline, Live)];
        assert_eq!(
            states(&bands(&ch, 0, 100, -50, Live)),
            vec![(0, 50, "offline"), (50, 100, "live")]
        );
    }

    #[test]
    fn before_enrolment_nothing_is_known() {
        let ch = [c(60, Offline, Live)];
        assert_eq!(
            states(&bands(&ch, 0, 100, 30, Live)),
            vec![(0, 30, "unknown"), (30, 60, "offline"), (60, 100, "live")]
        );
    }

    #[test]
    fn equal_neighbours_merge() {
        let ch = [c(20, Live, Stale), c(30, Stale, Live), c(30, Stale, Live)];
        let b = bands(&ch, 0, 100, 0, Live);
        assert_eq!(
            states(&b),
            vec![(0, 20, "live"), (20, 30, "stale"), (30, 100, "live")]
        );
    }
}
