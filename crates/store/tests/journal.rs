//! The journal: audit entries, timeline rows and entry claims written in one commit,
//! on both backends (PostgreSQL when available; required under
//! THRESHOLD_REQUIRE_SERVICES=1).

use threshold_core::audit::ChainVerifier;
use threshold_store::{
    testing, AuditDraft, DeviceEventRow, EntryClaim, GapRow, JobOutcome, JournalJob,
    NewDeviceEvent, NewTimelineRow, Role, SeqSpaceName, Store,
};

fn draft(kind: &str, t: i64) -> AuditDraft {
    AuditDraft {
        time_ms: t,
        kind: kind.into(),
        actor: "courier:c".into(),
        subject: "delivery:d".into(),
        detail: "{}".into(),
        home: None,
    }
}

fn row(home: &str, kind: &str) -> NewTimelineRow {
    NewTimelineRow {
        home_id: home.into(),
        device_id: None,
        delivery_id: None,
        time_ms: 5,
        kind: kind.into(),
        detail: "{}".into(),
    }
}

async fn exercise(s: &Store) {
    let owner = s.create_user(Role::Owner, "o", "O", "x", 0).await.unwrap();
    let courier = s
        .create_user(Role::Courier, "c", "C", "x", 0)
        .await
        .unwrap();
    let home = testing::home(s, &owner.id).await.unwrap();
    // A new delivery at the home and a claim on it at `now_ms`.
    let delivery_and_claim = |parcel: &'static str, now_ms: i64| {
        let (home, courier, owner) = (&home, &courier, &owner);
        async move {
            let d = s
                .create_delivery(
                    &home.id,
                    &courier.id,
                    &owner.id,
                    0,
                    10,
                    parcel,
                    "in_home",
                    "door-1",
                    0,
                )
                .await
                .unwrap();
            let claim = EntryClaim {
                from_state: "scheduled",
                to_state: "inside",
                delivery_id: d.id.clone(),
                home_id: home.id.clone(),
                door_id: "door-1".into(),
                grant_ref: format!("delivery:{}", d.id),
                now_ms,
            };
            (d, claim)
        }
    };
    let (d, claim) = delivery_and_claim("P", 3).await;
    let job = |audit: Vec<AuditDraft>, kind: &str| JournalJob {
        claim: Some(claim.clone()),
        event: None,
        audit,
        timeline: vec![row(&home.id, kind)],
    };
    // Two requests for the same delivery in one batch: the first claim wins and is
    // written with its records; the second writes nothing; a plain job after them is
    // chained straight onto the winner's entries.
    let out = s
        .write_journal(&[
            job(
                vec![draft("decision", 1), draft("token.issued", 1)],
                "first",
            ),
            job(
                vec![draft("decision", 1), draft("token.issued", 1)],
                "second",
            ),
            JournalJob {
                claim: None,
                event: None,
                audit: vec![draft("other", 2)],
                timeline: vec![],
            },
        ])
        .await
        .unwrap();
    let seqs = |o: &JobOutcome| match o {
        JobOutcome::Written(e) => e.iter().map(|e| e.seq).collect::<Vec<_>>(),
        JobOutcome::ClaimLost | JobOutcome::EventKnown => vec![],
    };
    assert_eq!(seqs(&out[0]), vec![1, 2]);
    assert_eq!(out[1], JobOutcome::ClaimLost);
    assert_eq!(seqs(&out[2]), vec![3]);
    assert_eq!(s.delivery_any(&d.id).await.unwrap().state, "inside");
    let session = s.session_of_delivery(&d.id).await.unwrap();
    assert_eq!(
        (session.grant_ref.as_str(), session.opened_ms),
        (claim.grant_ref.as_str(), 3)
    );
    let rec = s.recording(&owner.id, &d.id).await.unwrap();
    assert_eq!(
        (rec.started_ms, rec.ends_ms),
        (3, None),
        "recording opened with the entry"
    );
    let kinds: Vec<String> = s
        .timeline(&owner.id, &home.id, 0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.kind)
        .collect();
    assert_eq!(
        kinds,
        vec!["first".to_owned()],
        "the loser's row is not written"
    );

    // A claim on a delivery already inside, on its own, is lost too.
    let again = s
        .write_journal(&[job(vec![draft("decision", 4)], "late")])
        .await
        .unwrap();
    assert_eq!(again, vec![JobOutcome::ClaimLost]);

    // A device event is stored with the log marks it implies, in one commit.
    s.enrol_device("lock1", &home.id, "lock", "Lock", "k", "h", 0)
        .await
        .unwrap();
    let ev = |seq: i64| DeviceEventRow {
        device_id: "lock1".into(),
        seq,
        device_time_ms: 10,
        received_ms: 11,
        event_type: "door_opened".into(),
        detail: "{}".into(),
        raw: vec![1, 2, 3],
    };
    let gap = |a: i64, b: i64| GapRow {
        from_seq: a,
        to_seq: b,
        opened_ms: 11,
    };
    let marks = || async {
        let d = s.device(&owner.id, "lock1").await.unwrap();
        let g = s.gaps("lock1", SeqSpaceName::Events).await.unwrap();
        (
            d.event_hwm,
            g.iter().map(|g| (g.from_seq, g.to_seq)).collect::<Vec<_>>(),
        )
    };
    assert!(s
        .store_device_event(&ev(3), Some(&[gap(1, 2)]))
        .await
        .unwrap());
    assert_eq!(marks().await, (3, vec![(1, 2)]));
    assert!(s
        .store_device_event(&ev(1), Some(&[gap(2, 2)]))
        .await
        .unwrap());
    assert_eq!(
        marks().await,
        (3, vec![(2, 2)]),
        "a late record never lowers the mark"
    );
    assert!(
        !s.store_device_event(&ev(3), None).await.unwrap(),
        "already stored"
    );
    assert!(s.store_device_event(&ev(4), None).await.unwrap());
    assert_eq!(marks().await, (4, vec![(2, 2)]), "in order: gaps untouched");

    // An event with the records it causes: all of them or, for a record already
    // stored, none.
    let event_job = |seq: i64| JournalJob {
        claim: None,
        event: Some(NewDeviceEvent {
            row: ev(seq),
            gaps: None,
        }),
        audit: vec![draft("door_event", 12)],
        timeline: vec![row(&home.id, "device.door_opened")],
    };
    let timeline_len = || async {
        s.timeline(&owner.id, &home.id, 0, 1000)
            .await
            .unwrap()
            .len()
    };
    let before = timeline_len().await;
    let out = s
        .write_journal(&[event_job(5), event_job(4)])
        .await
        .unwrap();
    assert!(matches!(&out[0], JobOutcome::Written(e) if e.len() == 1));
    assert_eq!(out[1], JobOutcome::EventKnown, "seq 4 was stored above");
    assert_eq!(
        timeline_len().await,
        before + 1,
        "the known event added nothing"
    );
    assert_eq!(marks().await.0, 5);

    // A claim and an event in one batch once the store knows the chain's head (on
    // SQLite the one-trip path): every record lands as on the careful path.
    let (d2, claim2) = delivery_and_claim("P2", 13).await;
    let before = timeline_len().await;
    let out = s
        .write_journal(&[
            JournalJob {
                claim: Some(claim2.clone()),
                event: None,
                audit: vec![draft("decision", 13), draft("token.issued", 13)],
                timeline: vec![row(&home.id, "decision"), row(&home.id, "unlock_sent")],
            },
            event_job(6),
        ])
        .await
        .unwrap();
    assert!(matches!(&out[0], JobOutcome::Written(e) if e.len() == 2));
    assert!(matches!(&out[1], JobOutcome::Written(e) if e.len() == 1));
    assert_eq!(s.delivery_any(&d2.id).await.unwrap().state, "inside");
    let session = s.session_of_delivery(&d2.id).await.unwrap();
    assert_eq!(
        (
            session.grant_ref.as_str(),
            session.opened_ms,
            session.home_id.as_str()
        ),
        (claim2.grant_ref.as_str(), 13, home.id.as_str())
    );
    let rec = s.recording(&owner.id, &d2.id).await.unwrap();
    assert_eq!((rec.started_ms, rec.ends_ms), (13, None));
    assert_eq!(timeline_len().await, before + 3);
    assert_eq!(marks().await, (6, vec![(2, 2)]));

    // The single-entry and batch paths extend one unbroken chain.
    s.append_audit(6, "k", "a", "s", "{}").await.unwrap();
    s.append_journal(&[draft("x", 7), draft("y", 7)], &[row(&home.id, "z")])
        .await
        .unwrap();
    let mut v = ChainVerifier::new();
    for e in s.audit_page(0, 100).await.unwrap() {
        v.push(&e).unwrap();
    }
    assert_eq!(v.head().0, 10);
}

/// Two processes appending to one log: each keeps the head it last wrote, which the
/// other's appends make stale; the chain stays unbroken all the same.
async fn two_writers(url: &str) {
    let a = Store::connect(url).await.unwrap();
    let b = Store::connect(url).await.unwrap();
    for round in 0..3 {
        a.append_audit(round, "a", "a", "s", "{}").await.unwrap();
        b.append_journal(&[draft("b1", round), draft("b2", round)], &[])
            .await
            .unwrap();
    }
    a.append_audit(9, "a", "a", "s", "{}").await.unwrap();
    let mut v = ChainVerifier::new();
    let entries = a.audit_page(0, 100).await.unwrap();
    for e in &entries {
        v.push(e).unwrap();
    }
    let kinds: Vec<&str> = entries.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["a", "b1", "b2", "a", "b1", "b2", "a", "b1", "b2", "a"]
    );
    assert_eq!(v.head().0, 10);
}

#[tokio::test]
async fn two_writers_on_sqlite() {
    let dir = testing::TempDir::new("db").unwrap();
    two_writers(&testing::sqlite_url(&dir)).await;
}

#[tokio::test]
async fn two_writers_on_postgres() {
    match testing::postgres_url().await.unwrap() {
        Some(url) => two_writers(&url).await,
        None => eprintln!("PostgreSQL not reachable; skipped"),
    }
}

#[tokio::test]
async fn journal_on_sqlite() {
    let (s, _dir) = testing::sqlite().await.unwrap();
    exercise(&s).await;
}

#[tokio::test]
async fn journal_on_postgres() {
    match testing::postgres().await.unwrap() {
        Some(s) => exercise(&s).await,
        None => eprintln!("PostgreSQL not reachable; skipped"),
    }
}
