//! What the nodes of a fleet share through PostgreSQL: partitions leased to one node at
//! a time (timed by the database's clock), live events and notifications, and one
//! downlink counter per device (which works on SQLite too).

use threshold_store::fleet::{Channel, HeldLease};
use threshold_store::{testing, Role, Store};

fn parts(held: &[HeldLease]) -> Vec<i32> {
    let mut p: Vec<i32> = held.iter().map(|h| h.part).collect();
    p.sort();
    p
}

#[tokio::test]
async fn partitions_have_one_owner_at_a_time_and_pass_on_when_a_lease_runs_out() {
    let Some(s) = testing::postgres().await.unwrap() else {
        return;
    };
    // Two nodes want all 8 partitions at once: each partition goes to one of them.
    let (a, b) = tokio::join!(
        s.fleet_claim("a", 8, 8, 60_000),
        s.fleet_claim("b", 8, 8, 60_000)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let mut all = parts(&a);
    all.extend(parts(&b));
    all.sort();
    assert_eq!(all, (0..8).collect::<Vec<_>>(), "{a:?} {b:?}");

    // Renewing extends what a node holds, and both count as live.
    let ra = s.fleet_renew("a", 60_000).await.unwrap();
    s.fleet_renew("b", 60_000).await.unwrap();
    assert_eq!(parts(&ra.held), parts(&a));
    assert_eq!(s.fleet_renew("a", 60_000).await.unwrap().live_nodes, 2);

    // Nothing is free while the leases last.
    assert!(s.fleet_claim("c", 8, 8, 60_000).await.unwrap().is_empty());

    // A released partition is free at once, and its next owner has a larger epoch.
    // (Which node won how many of the racing claims is up to the database: one of
    // them may hold all 8.)
    let ((giver, given_from), (leaver, left)) = if a.is_empty() {
        (("b", &b), ("a", &a))
    } else {
        (("a", &a), ("b", &b))
    };
    let given = given_from[0];
    s.fleet_release(giver, given.part).await.unwrap();
    let taken = s.fleet_claim("c", 8, 8, 60_000).await.unwrap();
    assert_eq!(parts(&taken), vec![given.part]);
    assert!(taken[0].epoch > given.epoch);
    assert!(
        !parts(&s.fleet_renew(giver, 60_000).await.unwrap().held).contains(&given.part),
        "the old owner no longer holds it"
    );

    // A node that stops renewing loses everything once its lease runs out (a short
    // lease here, on the database's own clock).
    let short = s.fleet_claim("d", 9, 1, 1).await.unwrap();
    assert_eq!(parts(&short), vec![8]);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert!(s.fleet_renew("d", 60_000).await.unwrap().held.is_empty());
    assert_eq!(
        parts(&s.fleet_claim("e", 9, 9, 60_000).await.unwrap()),
        vec![8]
    );

    // Leaving gives everything up (the other node's, whatever it held).
    s.fleet_leave(leaver).await.unwrap();
    let after = s.fleet_claim("c", 9, 9, 60_000).await.unwrap();
    assert_eq!(parts(&after), parts(left));
    let leases = s.fleet_leases().await.unwrap();
    assert_eq!(leases.len(), 9);
    assert!(leases.iter().all(|l| l.node_id != leaver));
}

#[tokio::test]
async fn live_events_and_changes_reach_every_listener() {
    let Some(s) = testing::postgres().await.unwrap() else {
        return;
    };
    let mut listener = s.fleet_listen().await.unwrap();
    let head = s.fleet_events_head().await.unwrap();
    let first = s.fleet_publish_event("a", r#"{"n":1}"#, 10).await.unwrap();
    s.fleet_notify(Channel::Changes, "device:abc")
        .await
        .unwrap();
    let second = s.fleet_publish_event("b", r#"{"n":2}"#, 20).await.unwrap();

    let mut heard = Vec::new();
    while heard.len() < 3 {
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), listener.recv())
            .await
            .expect("a notification within 10 s")
            .unwrap()
            .expect("connection kept");
        heard.push((n.channel, n.payload));
    }
    assert_eq!(
        heard,
        vec![
            (Channel::Events, format!("{first} a")),
            (Channel::Changes, "device:abc".to_owned()),
            (Channel::Events, format!("{second} b")),
        ]
    );
    // Catching up skips one's own events.
    let missed = s.fleet_events_after("a", head, 100).await.unwrap();
    assert_eq!(missed.len(), 1);
    assert_eq!(
        (missed[0].id, missed[0].body.as_str()),
        (second, r#"{"n":2}"#)
    );
    assert_eq!(
        s.fleet_event(first).await.unwrap().map(|e| e.origin),
        Some("a".into())
    );
    assert_eq!(s.fleet_prune_events(15).await.unwrap(), 1);

    // A downlink left for the acting node: announced with its home, taken once.
    let q = s
        .fleet_queue_downlink("dev1", "home1", 67, r#"{"reason":"r"}"#, 30)
        .await
        .unwrap();
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), listener.recv())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        (n.channel, n.payload),
        (Channel::Downlinks, format!("{q} home1"))
    );
    assert_eq!(s.fleet_waiting_downlinks(10).await.unwrap().len(), 1);
    let (t1, t2) = tokio::join!(s.fleet_take_downlink(q), s.fleet_take_downlink(q));
    let taken: Vec<_> = [t1.unwrap(), t2.unwrap()].into_iter().flatten().collect();
    assert_eq!(taken.len(), 1, "taken by one node");
    assert_eq!(
        (
            taken[0].device_id.as_str(),
            taken[0].kind,
            taken[0].body.as_str()
        ),
        ("dev1", 67, r#"{"reason":"r"}"#)
    );
    assert!(s.fleet_waiting_downlinks(10).await.unwrap().is_empty());
    assert!(s.fleet_event(first).await.unwrap().is_none());
}

async fn downlink_numbers(s: &Store) {
    let owner = s.create_user(Role::Owner, "o", "O", "x", 0).await.unwrap();
    let home = testing::home(s, &owner.id).await.unwrap();
    s.enrol_device("lock1", &home.id, "lock", "Lock", "k", "h", 1)
        .await
        .unwrap();
    // Numbers start at the floor (the wall clock), then always go up, whoever asks.
    assert_eq!(s.next_downlink_seq("lock1", 5_000).await.unwrap(), 5_000);
    assert_eq!(s.next_downlink_seq("lock1", 4_000).await.unwrap(), 5_001);
    let many = futures_join(s).await;
    let mut sorted = many.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), many.len(), "no number handed out twice");
    assert!(sorted.iter().all(|&n| n > 5_001));
    assert_eq!(s.next_downlink_seq("lock1", 9_000).await.unwrap(), 9_000);
    assert!(s.next_downlink_seq("nobody", 1).await.is_err());
}

async fn futures_join(s: &Store) -> Vec<i64> {
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.next_downlink_seq("lock1", 0).await.unwrap()
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test]
async fn downlink_numbers_are_shared_on_both_backends() {
    let (lite, _dir) = testing::sqlite().await.unwrap();
    downlink_numbers(&lite).await;
    if let Some(pg) = testing::postgres().await.unwrap() {
        downlink_numbers(&pg).await;
    }
}

#[tokio::test]
async fn sqlite_refuses_fleet_operations() {
    let (lite, _dir) = testing::sqlite().await.unwrap();
    assert!(lite.fleet_claim("a", 4, 4, 1000).await.is_err());
    assert!(lite.fleet_listen().await.is_err());
}

async fn webhook_claims(s: &Store) {
    let owner = s.create_user(Role::Owner, "w", "W", "x", 0).await.unwrap();
    let ep = s
        .create_webhook_endpoint(&owner.id, "http://x/h", "whsec_AA==", "", "", 1)
        .await
        .unwrap();
    for i in 0..30 {
        s.enqueue_webhook(&ep.id, &format!("msg_{i}"), "alert.raised", "{}", 10)
            .await
            .unwrap();
    }
    // Three senders (three nodes) claim at once: every delivery goes to exactly one.
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.claim_due_webhooks(20, 30_020, 50).await.unwrap()
        }));
    }
    let mut claimed = Vec::new();
    for t in tasks {
        claimed.extend(t.await.unwrap().into_iter().map(|d| d.message_id));
    }
    claimed.sort();
    let before = claimed.len();
    claimed.dedup();
    assert_eq!((before, claimed.len()), (30, 30), "each claimed once");
    // Claimed: not due again until the claim runs out.
    assert!(s
        .claim_due_webhooks(21, 30_021, 50)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        s.claim_due_webhooks(30_020, 60_000, 50)
            .await
            .unwrap()
            .len(),
        30
    );
}

#[tokio::test]
async fn a_due_webhook_is_claimed_by_one_sender_on_both_backends() {
    let (lite, _dir) = testing::sqlite().await.unwrap();
    webhook_claims(&lite).await;
    if let Some(pg) = testing::postgres().await.unwrap() {
        webhook_claims(&pg).await;
    }
}
