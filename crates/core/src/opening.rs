//! Law 5 and law 10's "one door opening is one event": which session a door opening
//! belongs to, and whether two reports (the lock's and the contact sensor's) are the
//! same physical opening.
//!
//! Openings are judged by when they happened (the device's signed time on the hub's
//! clock), not when the hub learned of them, so a log uploaded after an outage is
//! judged as of then.

use crate::Millis;
use serde::Serialize;

/// What kind of access a session is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionKind {
    Delivery,
    Owner,
    Guest,
}

/// One access session of the door, as attribution needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    pub kind: SessionKind,
    pub opened_ms: Millis,
    /// When the courier said delivered (deliveries only).
    pub delivered_ms: Option<Millis>,
    /// When the door's camera was lost during it (deliveries only).
    pub camera_lost_ms: Option<Millis>,
    /// Its scheduled end (owner and guest sessions).
    pub ends_ms: Option<Millis>,
    pub closed_ms: Option<Millis>,
}

impl Span {
    /// Until when it authorises openings: "delivered", the camera lost, its end or
    /// its close, whichever came first; open-ended if none yet.
    fn authorised_until(&self) -> Option<Millis> {
        [
            self.delivered_ms,
            self.camera_lost_ms,
            self.ends_ms,
            self.closed_ms,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn started_by(&self, t: Millis, slack: Millis) -> bool {
        self.opened_ms <= t.saturating_add(slack)
    }

    /// Still open at `t` (closed at most `slack` earlier).
    fn open_at(&self, t: Millis, slack: Millis) -> bool {
        self.closed_ms.is_none_or(|c| t <= c.saturating_add(slack))
    }
}

/// How an opening at `t` relates to the door's sessions, from the most to the least
/// benign. The index is into the slice given to [`attribute`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attribution {
    /// Inside a session that authorised it.
    Authorised(usize),
    /// Inside a delivery session after its camera was lost: nobody was watching.
    Unwatched(usize),
    /// After the courier said delivered, before the door was confirmed secure.
    AfterDelivery(usize),
    /// No session covers it.
    Unauthorised,
}

/// Attribute an opening at `t` (hub clock) with a tolerance of `slack` for clocks and
/// reporting delays. A session that authorises the opening always wins over one that
/// would make it an incident: an owner coming home after a compromised delivery is the
/// owner, not the incident; a second courier's delivery is that courier's.
pub fn attribute(sessions: &[Span], t: Millis, slack: Millis) -> Attribution {
    let started: Vec<(usize, &Span)> = sessions
        .iter()
        .enumerate()
        .filter(|(_, s)| s.started_by(t, slack))
        .collect();
    let authorising = started.iter().find(|(_, s)| match s.authorised_until() {
        None => true,
        // The camera loss cuts the session at once: no slack after it.
        Some(u) if Some(u) == s.camera_lost_ms => t <= u,
        Some(u) => t <= u.saturating_add(slack),
    });
    if let Some((i, _)) = authorising {
        return Attribution::Authorised(*i);
    }
    let latest = |pred: &dyn Fn(&Span) -> bool| {
        started
            .iter()
            .filter(|(_, s)| s.kind == SessionKind::Delivery && s.open_at(t, slack) && pred(s))
            .max_by_key(|(_, s)| s.opened_ms)
            .map(|(i, _)| *i)
    };
    if let Some(i) = latest(&|s| s.camera_lost_ms.is_some_and(|c| t > c)) {
        return Attribution::Unwatched(i);
    }
    if let Some(i) = latest(&|s| s.delivered_ms.is_some_and(|d| t > d)) {
        return Attribution::AfterDelivery(i);
    }
    Attribution::Unauthorised
}

/// An opening of one door already on record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded<'a> {
    pub at_ms: Millis,
    /// The devices that reported it.
    pub reported_by: &'a [String],
}

/// Which recorded opening a new report from `device` at `t` is the same physical
/// opening as: one within `merge_ms` that this device has not reported yet (a device
/// reporting twice means the door opened twice). The nearest in time wins.
pub fn same_opening(
    recorded: &[Recorded<'_>],
    device: &str,
    t: Millis,
    merge_ms: Millis,
) -> Option<usize> {
    recorded
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            t.saturating_sub(r.at_ms).saturating_abs() <= merge_ms
                && !r.reported_by.iter().any(|d| d == device)
        })
        .min_by_key(|(_, r)| t.saturating_sub(r.at_ms).saturating_abs())
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(opened: Millis) -> Span {
        Span {
            kind: SessionKind::Delivery,
            opened_ms: opened,
            delivered_ms: None,
            camera_lost_ms: None,
            ends_ms: None,
            closed_ms: None,
        }
    }

    fn owner(opened: Millis, ends: Millis) -> Span {
        Span {
            kind: SessionKind::Owner,
            opened_ms: opened,
            delivered_ms: None,
            camera_lost_ms: None,
            ends_ms: Some(ends),
            closed_ms: None,
        }
    }

    #[test]
    fn openings_are_judged_by_when_they_happened() {
        let open = [delivery(1_000)];
        assert_eq!(attribute(&open, 1_500, 100), Attribution::Authorised(0));
        assert_eq!(attribute(&open, 500, 100), Attribution::Unauthorised);
        let delivered = [Span {
            delivered_ms: Some(5_000),
            ..delivery(1_000)
        }];
        assert_eq!(
            attribute(&delivered, 4_000, 100),
            Attribution::Authorised(0)
        );
        assert_eq!(
            attribute(&delivered, 9_000, 100),
            Attribution::AfterDelivery(0)
        );
        let completed = [Span {
            delivered_ms: Some(5_000),
            closed_ms: Some(6_000),
            ..delivery(1_000)
        }];
        assert_eq!(
            attribute(&completed, 20_000, 100),
            Attribution::Unauthorised
        );
        assert_eq!(attribute(&[], 4_000, 100), Attribution::Unauthorised);
    }

    #[test]
    fn an_opening_after_the_camera_was_lost_is_unwatched_without_slack() {
        let lost = [Span {
            camera_lost_ms: Some(3_000),
            ..delivery(1_000)
        }];
        assert_eq!(attribute(&lost, 2_999, 2_000), Attribution::Authorised(0));
        assert_eq!(attribute(&lost, 3_001, 2_000), Attribution::Unwatched(0));
    }

    #[test]
    fn an_ended_incident_does_not_claim_later_openings() {
        let ended = [Span {
            camera_lost_ms: Some(3_000),
            closed_ms: Some(10_000),
            ..delivery(1_000)
        }];
        assert_eq!(attribute(&ended, 11_000, 2_000), Attribution::Unwatched(0));
        assert_eq!(attribute(&ended, 12_001, 2_000), Attribution::Unauthorised);
    }

    #[test]
    fn an_authorising_session_wins_over_a_compromised_one() {
        // Delivery A lost its camera and is still open; the owner comes home.
        let s = [
            Span {
                camera_lost_ms: Some(3_000),
                ..delivery(1_000)
            },
            owner(20_000, 620_000),
        ];
        assert_eq!(attribute(&s, 21_000, 2_000), Attribution::Authorised(1));
        // Delivery A ended 1 s ago (inside A's slack); courier B's entry is B's.
        let s = [
            Span {
                camera_lost_ms: Some(3_000),
                closed_ms: Some(40_000),
                ..delivery(1_000)
            },
            delivery(40_500),
        ];
        assert_eq!(attribute(&s, 41_000, 2_000), Attribution::Authorised(1));
    }

    #[test]
    fn owner_and_guest_sessions_end() {
        let s = [owner(1_000, 5_000)];
        assert_eq!(attribute(&s, 6_000, 2_000), Attribution::Authorised(0));
        assert_eq!(attribute(&s, 7_001, 2_000), Attribution::Unauthorised);
    }

    #[test]
    fn lock_and_contact_reports_of_one_opening_merge() {
        let lock = vec!["lock".to_string()];
        let both = vec!["lock".to_string(), "contact".to_string()];
        let rec = [Recorded {
            at_ms: 10_000,
            reported_by: &lock,
        }];
        assert_eq!(same_opening(&rec, "contact", 10_400, 2_000), Some(0));
        assert_eq!(same_opening(&rec, "contact", 7_000, 2_000), None);
        // The lock reporting again is a second opening.
        assert_eq!(same_opening(&rec, "lock", 10_400, 2_000), None);
        let rec = [
            Recorded {
                at_ms: 10_000,
                reported_by: &both,
            },
            Recorded {
                at_ms: 11_000,
                reported_by: &lock,
            },
        ];
        assert_eq!(same_opening(&rec, "contact", 10_900, 2_000), Some(1));
    }
}
