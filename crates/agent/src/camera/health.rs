//! The health of a camera's picture source, as the owner sees it: a `source_problem`
//! event when frames stop coming for a reason (the stream stalled, the camera refused
//! the password, the stream has no capture times, ...), another when the reason
//! changes, and `source_recovered` when frames flow again. Pure: the capture loop
//! feeds it what each attempt gave and the time.
//!
//! Never one event per frame or per attempt: a problem is reported once it has lasted
//! [`PROBLEM_AFTER_MS`] with no frame in between (a single failed fetch is not news),
//! and two reports are at least [`MIN_GAP_MS`] apart (a source that flaps is reported
//! as it stands at most every few seconds; the final state always gets through, as
//! every capture tick re-evaluates it).

/// How long a problem must last (no frame meanwhile) before it is reported.
pub const PROBLEM_AFTER_MS: i64 = 1_000;
/// Least time between two reports.
pub const MIN_GAP_MS: i64 = 2_000;
/// Longest reason carried in an event.
pub const MAX_REASON_CHARS: usize = 300;

/// What the owner should be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthEvent {
    /// `source_problem {code, reason}`.
    Problem { code: String, reason: String },
    /// `source_recovered {code}`: the problem `code` has ended; frames flow.
    Recovered { code: String },
}

impl HealthEvent {
    /// The event record's type and detail.
    pub fn to_event(&self) -> threshold_proto::body::Event {
        let (event_type, detail) = match self {
            HealthEvent::Problem { code, reason } => (
                "source_problem",
                serde_json::json!({ "code": code, "reason": reason }),
            ),
            HealthEvent::Recovered { code } => {
                ("source_recovered", serde_json::json!({ "code": code }))
            }
        };
        threshold_proto::body::Event {
            event_type: event_type.into(),
            detail,
        }
    }
}

#[derive(Debug, Default)]
pub struct SourceHealth {
    /// The problem now (code, reason, since), if the last attempt failed.
    current: Option<(String, String, i64)>,
    /// The problem last reported (None: healthy, or nothing reported yet).
    reported: Option<String>,
    last_report_ms: Option<i64>,
}

impl SourceHealth {
    pub fn new() -> Self {
        Self::default()
    }

    /// A frame was captured at `now`.
    pub fn on_frame(&mut self, now: i64) -> Option<HealthEvent> {
        self.current = None;
        self.evaluate(now)
    }

    /// An attempt failed with `code` and `reason` at `now`.
    pub fn on_problem(&mut self, code: &str, reason: &str, now: i64) -> Option<HealthEvent> {
        let reason: String = reason.chars().take(MAX_REASON_CHARS).collect();
        match &mut self.current {
            Some((c, r, _)) if c == code => *r = reason,
            _ => self.current = Some((code.to_owned(), reason, now)),
        }
        self.evaluate(now)
    }

    /// Nothing new, nothing wrong (a source that had no newer frame yet).
    pub fn on_idle(&mut self, now: i64) -> Option<HealthEvent> {
        self.evaluate(now)
    }

    /// The problem reported last and not yet recovered, if any.
    pub fn reported(&self) -> Option<&str> {
        self.reported.as_deref()
    }

    fn evaluate(&mut self, now: i64) -> Option<HealthEvent> {
        if self
            .last_report_ms
            .is_some_and(|t| now.saturating_sub(t) < MIN_GAP_MS)
        {
            return None;
        }
        let ev = match (&self.current, &self.reported) {
            (Some((code, reason, since)), reported)
                if reported.as_deref() != Some(code.as_str())
                    && now.saturating_sub(*since) >= PROBLEM_AFTER_MS =>
            {
                self.reported = Some(code.clone());
                HealthEvent::Problem {
                    code: code.clone(),
                    reason: reason.clone(),
                }
            }
            (None, Some(code)) => {
                let code = code.clone();
                self.reported = None;
                HealthEvent::Recovered { code }
            }
            _ => return None,
        };
        self.last_report_ms = Some(now);
        Some(ev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(code: &str) -> Option<HealthEvent> {
        Some(HealthEvent::Problem {
            code: code.into(),
            reason: format!("{code} words"),
        })
    }

    #[test]
    fn a_lasting_problem_is_reported_once_and_its_end_once() {
        let mut h = SourceHealth::new();
        assert_eq!(
            h.on_frame(0),
            None,
            "healthy from the start: nothing to say"
        );
        assert_eq!(h.on_problem("stalled", "stalled words", 200), None);
        assert_eq!(h.on_idle(700), None);
        assert_eq!(
            h.on_problem("stalled", "stalled words", 1_200),
            problem("stalled")
        );
        for t in (1_400..20_000).step_by(200) {
            assert_eq!(h.on_problem("stalled", "stalled words", t), None, "at {t}");
        }
        assert_eq!(h.reported(), Some("stalled"));
        assert_eq!(
            h.on_frame(20_000),
            Some(HealthEvent::Recovered {
                code: "stalled".into()
            })
        );
        assert_eq!(h.on_frame(20_200), None);
        assert_eq!(h.reported(), None);
    }

    #[test]
    fn a_single_failed_attempt_is_not_news() {
        let mut h = SourceHealth::new();
        assert_eq!(h.on_problem("source_io", "timeout", 0), None);
        assert_eq!(h.on_frame(200), None);
        assert_eq!(h.on_problem("source_io", "timeout", 5_000), None);
        assert_eq!(h.on_frame(5_900), None);
    }

    #[test]
    fn changes_are_reported_at_most_every_few_seconds_and_the_last_state_gets_through() {
        let mut h = SourceHealth::new();
        h.on_problem("connect_failed", "connect_failed words", 0);
        assert_eq!(
            h.on_problem("connect_failed", "connect_failed words", 1_000),
            problem("connect_failed")
        );
        // The reason changes soon after: held back until the gap has passed, although
        // it has lasted long enough.
        assert_eq!(
            h.on_problem("auth_failed", "auth_failed words", 1_100),
            None
        );
        assert_eq!(
            h.on_problem("auth_failed", "auth_failed words", 1_000 + MIN_GAP_MS - 1),
            None
        );
        assert_eq!(
            h.on_problem("auth_failed", "auth_failed words", 1_000 + MIN_GAP_MS),
            problem("auth_failed")
        );
        // A frame, then a problem again, flapping every 300 ms for 30 s: at most one
        // report per gap.
        let mut events = Vec::new();
        for i in 0..100 {
            let t = 10_000 + i * 300;
            let e = if i % 2 == 0 {
                h.on_frame(t)
            } else {
                h.on_problem("stalled", "stalled words", t)
            };
            events.extend(e);
        }
        assert!(events.len() as i64 <= 30_000 / MIN_GAP_MS + 1, "{events:?}");
        // Flapping faster than PROBLEM_AFTER_MS: the problem is never reported.
        assert!(
            events
                .iter()
                .all(|e| matches!(e, HealthEvent::Recovered { .. })),
            "{events:?}"
        );
        // Long reasons are cut.
        let mut h = SourceHealth::new();
        h.on_problem("x", &"y".repeat(1000), 0);
        match h.on_idle(1_000) {
            Some(HealthEvent::Problem { reason, .. }) => assert_eq!(reason.len(), MAX_REASON_CHARS),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn events_have_the_documented_shape() {
        let e = HealthEvent::Problem {
            code: "no_sender_report".into(),
            reason: "r".into(),
        }
        .to_event();
        assert_eq!(e.event_type, "source_problem");
        assert_eq!(
            e.detail,
            serde_json::json!({"code": "no_sender_report", "reason": "r"})
        );
        let e = HealthEvent::Recovered {
            code: "stalled".into(),
        }
        .to_event();
        assert_eq!(e.event_type, "source_recovered");
        assert_eq!(e.detail, serde_json::json!({"code": "stalled"}));
    }
}
