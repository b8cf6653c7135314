//! The journal's common case on SQLite in one round trip. A batch is written as one
//! script, its own transaction (`BEGIN IMMEDIATE` ... `COMMIT`), on the assumption
//! that every claim holds, every event record is new and no other writer moved the
//! audit chain since this process last appended. Each statement that must change a
//! known number of rows is followed by a check that stops the script, before its
//! `COMMIT`, if it did not; the caller then rolls back and writes the batch statement
//! by statement, deciding as it goes (`Store::write_journal_unsynced`). Either way the
//! same rows are written. The rows each statement changed are checked again after the
//! commit, as a guard against a check that let through what it should have stopped.
//!
//! Why: on SQLite each statement is a hand-off to the connection's thread, and a
//! courier's "yes" was seven of them (BEGIN, claim, session, recording, audit,
//! timeline, COMMIT) before the disk; now it is one.

use crate::audit::{audit_insert, chain_onto, claim_statements, Head, JobOutcome, JournalJob};
use crate::events::{device_event_insert, event_hwm_raise, timeline_insert};
use crate::script::{Script, Statement};

/// Values in one script, under SQLite's limit of 32 766.
const MAX_PARAMS: usize = 32_000;

/// What a statement must change for the plan to hold.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    Rows(u64),
    Any,
}

pub(crate) struct Plan {
    /// The whole transaction: `BEGIN IMMEDIATE`, the statements each followed by its
    /// check, `COMMIT`.
    pub script: Script,
    /// Each batch statement's position in the script and what it must change.
    expect: Vec<(usize, Expect)>,
    /// Each job's outcome if the plan holds.
    pub outcomes: Vec<JobOutcome>,
    /// The audit chain's head after the batch.
    pub head: Head,
}

impl Plan {
    /// The batch as one script on top of `head`; `None` when it needs the careful path
    /// (an event that rewrites the device's gaps, or too many values).
    pub fn new(jobs: &[JournalJob], mut head: Head) -> Option<Plan> {
        // Claims first, then events, then the records: claims and events touch
        // different tables, and a batch's script then depends on how many of each
        // it holds, not on their order, so SQLite's prepared scripts are reused.
        let mut claims = Vec::new();
        let mut events = Vec::new();
        let mut outcomes = Vec::with_capacity(jobs.len());
        let mut entries = Vec::new();
        let mut timeline = Vec::new();
        for job in jobs {
            if let Some(c) = &job.claim {
                let [update, session, recording] = claim_statements(c);
                claims.extend([
                    (update, Expect::Rows(1)),
                    (session, Expect::Rows(1)),
                    (recording, Expect::Any),
                ]);
            }
            if let Some(ev) = &job.event {
                if ev.gaps.is_some() {
                    return None;
                }
                events.extend([
                    (device_event_insert(&ev.row), Expect::Rows(1)),
                    (event_hwm_raise(&ev.row), Expect::Any),
                ]);
            }
            let written = chain_onto(&mut head, &job.audit);
            entries.extend(written.iter().cloned());
            timeline.extend(job.timeline.iter());
            outcomes.push(JobOutcome::Written(written));
        }
        let mut records = Vec::new();
        if !entries.is_empty() {
            let n = entries.len() as u64;
            records.push((audit_insert(&entries), Expect::Rows(n)));
        }
        if !timeline.is_empty() {
            records.push((timeline_insert(&timeline).0, Expect::Any));
        }
        let mut script = Script::default();
        script.push(Statement::new("BEGIN IMMEDIATE", Vec::new()));
        let mut expect = Vec::new();
        for (st, e) in claims.into_iter().chain(events).chain(records) {
            expect.push((script.push(st), e));
            if let Expect::Rows(n) = e {
                script.push_check(n);
            }
        }
        script.push(Statement::new("COMMIT", Vec::new()));
        if expect.is_empty() || script.params() > MAX_PARAMS {
            return None;
        }
        Some(Plan {
            script,
            expect,
            outcomes,
            head,
        })
    }

    /// What the script would report if the batch's statements changed `rows` (in
    /// order) and the rest (`BEGIN`, checks, `COMMIT`) nothing.
    #[cfg(test)]
    fn reported(&self, rows: &[u64]) -> Vec<u64> {
        let mut out = vec![0; self.script.statements()];
        for ((i, _), r) in self.expect.iter().zip(rows) {
            out[*i] = *r;
        }
        if rows.len() < self.expect.len() {
            out.truncate(self.expect.get(rows.len()).map_or(0, |(i, _)| *i));
        }
        out
    }

    /// Whether the rows each statement changed are what the plan assumed.
    pub fn held(&self, changed: &[u64]) -> bool {
        changed.len() == self.script.statements()
            && self.expect.iter().all(|(i, e)| match e {
                Expect::Rows(n) => changed.get(*i) == Some(n),
                Expect::Any => true,
            })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::audit::{AuditDraft, EntryClaim, NewDeviceEvent};
    use crate::events::NewTimelineRow;
    use crate::DeviceEventRow;

    fn claim_job() -> JournalJob {
        JournalJob {
            claim: Some(EntryClaim {
                door_id: "door".into(),
                delivery_id: "d".into(),
                home_id: "h".into(),
                grant_ref: "delivery:d".into(),
                now_ms: 1,
            }),
            event: None,
            audit: vec![AuditDraft {
                time_ms: 1,
                kind: "decision".into(),
                actor: "courier:c".into(),
                subject: "delivery:d".into(),
                detail: "{}".into(),
            }],
            timeline: vec![NewTimelineRow {
                home_id: "h".into(),
                device_id: None,
                delivery_id: Some("d".into()),
                time_ms: 1,
                kind: "decision".into(),
                detail: "{}".into(),
            }],
        }
    }

    fn event(gaps: Option<Vec<crate::GapRow>>) -> NewDeviceEvent {
        NewDeviceEvent {
            row: DeviceEventRow {
                device_id: "lock".into(),
                seq: 4,
                device_time_ms: 1,
                received_ms: 2,
                event_type: "token_accepted".into(),
                detail: "{}".into(),
                raw: vec![1, 2],
            },
            gaps,
        }
    }

    #[test]
    fn a_claim_holds_only_if_its_update_and_session_change_one_row_each() {
        let plan = Plan::new(&[claim_job()], None).expect("plan");
        // update, session, recording, audit, timeline
        assert!(plan.held(&plan.reported(&[1, 1, 1, 1, 1])));
        assert!(
            plan.held(&plan.reported(&[1, 1, 0, 1, 1])),
            "a recording may already exist"
        );
        assert!(
            !plan.held(&plan.reported(&[0, 1, 1, 1, 1])),
            "the claim was lost"
        );
        assert!(
            !plan.held(&plan.reported(&[1, 1, 1, 0, 1])),
            "the chain moved"
        );
        assert!(
            !plan.held(&plan.reported(&[1, 1, 1, 1])),
            "a statement is missing"
        );
        // In SQL: a transaction, each statement that must change a number of rows
        // followed by its check.
        let sql = plan.script.sql();
        assert!(sql.starts_with("BEGIN IMMEDIATE;"), "{sql}");
        assert!(sql.ends_with("COMMIT"), "{sql}");
        assert_eq!(sql.matches("changes() = 1 ").count(), 3, "{sql}");
        match &plan.outcomes[..] {
            [JobOutcome::Written(e)] => assert_eq!(e[0].seq, 1),
            other => panic!("unexpected outcomes {other:?}"),
        }
        assert_eq!(plan.head.map(|h| h.0), Some(1));
    }

    #[test]
    fn an_event_holds_only_if_its_record_is_new_and_gaps_take_the_careful_path() {
        let mut job = claim_job();
        job.claim = None;
        job.event = Some(event(None));
        let plan = Plan::new(std::slice::from_ref(&job), None).expect("plan");
        // event, high-water mark, audit, timeline
        assert!(plan.held(&plan.reported(&[1, 0, 1, 1])));
        assert!(
            !plan.held(&plan.reported(&[0, 0, 1, 1])),
            "the record was already stored"
        );
        job.event = Some(event(Some(vec![])));
        assert!(Plan::new(&[job], None).is_none());
    }

    #[test]
    fn claims_come_before_events_whatever_the_job_order() {
        let mut ev_job = claim_job();
        ev_job.claim = None;
        ev_job.event = Some(event(None));
        let plan = Plan::new(&[ev_job, claim_job()], None).expect("plan");
        // update, session, recording, event, high-water mark, audit (2), timeline
        assert!(plan.held(&plan.reported(&[1, 1, 0, 1, 0, 2, 2])));
        assert!(
            !plan.held(&plan.reported(&[1, 0, 1, 1, 0, 2, 2])),
            "no session opened"
        );
        assert!(plan.script.sql().contains("changes() = 2 "), "audit (2)");
        // The outcomes stay in job order: the event's entry first.
        match &plan.outcomes[..] {
            [JobOutcome::Written(a), JobOutcome::Written(b)] => {
                assert_eq!((a[0].seq, b[0].seq), (1, 2))
            }
            other => panic!("unexpected outcomes {other:?}"),
        }
    }

    #[test]
    fn entries_chain_on_the_given_head_across_jobs() {
        let head = Some((41, [7u8; 32]));
        let plan = Plan::new(&[claim_job(), claim_job()], head).expect("plan");
        let seqs: Vec<u64> = plan
            .outcomes
            .iter()
            .flat_map(|o| match o {
                JobOutcome::Written(e) => e.iter().map(|e| e.seq).collect(),
                _ => vec![],
            })
            .collect();
        assert_eq!(seqs, vec![42, 43]);
        assert_eq!(plan.head.map(|h| h.0), Some(43));
        assert!(Plan::new(&[], head).is_none(), "nothing to write");
    }
}
