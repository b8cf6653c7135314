//! Recordings, media frames and webhooks on both backends (PostgreSQL when available;
//! required under THRESHOLD_REQUIRE_SERVICES=1).

use threshold_store::{testing, MediaFrameRow, Role, Store};

async fn exercise(s: &Store) {
    let owner = s.create_user(Role::Owner, "o", "O", "x", 0).await.unwrap();
    let other = s.create_user(Role::Owner, "p", "P", "x", 0).await.unwrap();
    let home = testing::home(s, &owner.id).await.unwrap();
    s.start_recording("d1", &home.id, 1000).await.unwrap();
    s.start_recording("d1", &home.id, 5000).await.unwrap(); // idempotent
    let r = s.recording(&owner.id, "d1").await.unwrap();
    assert_eq!((r.started_ms, r.ends_ms), (1000, None));
    assert!(s.recording(&other.id, "d1").await.is_err(), "owner-scoped");
    assert_eq!(s.recent_recordings(0).await.unwrap().len(), 1);
    let f = |seq: i64, recovered: bool| MediaFrameRow {
        device_id: "cam".into(),
        seq,
        home_id: home.id.clone(),
        delivery_id: "d1".into(),
        capture_ms: 1000 + seq * 200,
        received_ms: 2000 + seq,
        recovered,
        path: format!("cam/{seq}.jpg"),
        sha256: "00".into(),
        bytes: 100,
    };
    for seq in 1..=5 {
        assert!(s.insert_media_frame(&f(seq, seq == 3)).await.unwrap());
    }
    assert!(
        !s.insert_media_frame(&f(2, true)).await.unwrap(),
        "idempotent"
    );
    let v = s
        .media_frames_between(&owner.id, &home.id, 0, i64::MAX, 100)
        .await
        .unwrap();
    assert_eq!(
        v.iter().map(|x| x.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    assert!(!v[1].recovered && v[2].recovered);
    assert!(s
        .media_frames_between(&other.id, &home.id, 0, i64::MAX, 100)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(s.mark_media_recovered("cam", 1400, 1800).await.unwrap(), 2);
    assert!(
        s.media_frame(&owner.id, &home.id, "cam", 4)
            .await
            .unwrap()
            .recovered
    );
    assert!(s.media_frame(&other.id, &home.id, "cam", 4).await.is_err());
    assert_eq!(s.media_total_bytes().await.unwrap(), 500);
    assert_eq!(s.oldest_media_frames(2).await.unwrap()[0].seq, 1);
    s.delete_media_frame("cam", 1).await.unwrap();
    assert_eq!(s.media_total_bytes().await.unwrap(), 400);
    s.end_recording("d1", 9000).await.unwrap();
    s.end_recording("d1", 99_000).await.unwrap(); // only the first end counts
    assert_eq!(
        s.recording(&owner.id, "d1").await.unwrap().ends_ms,
        Some(9000)
    );
    assert!(s.recent_recordings(9000).await.unwrap().is_empty());

    let ep = s
        .create_webhook_endpoint(&owner.id, "http://x/h", "whsec_AA==", "", "", 1)
        .await
        .unwrap();
    assert!(s.webhook_endpoint(&other.id, &ep.id).await.is_err());
    let id = s
        .enqueue_webhook(&ep.id, "msg_1", "alert.raised", "{}", 10)
        .await
        .unwrap();
    assert_eq!(s.due_webhooks(9, 10).await.unwrap().len(), 0);
    assert_eq!(s.due_webhooks(10, 10).await.unwrap()[0].id, id);
    s.record_webhook_attempt(&id, "pending", 1, 2000, Some(500), Some("HTTP 500"), 11)
        .await
        .unwrap();
    let log = s.webhook_deliveries(&owner.id, &ep.id, 10).await.unwrap();
    assert_eq!((log[0].attempts, log[0].last_status), (1, Some(500)));
    assert!(s.webhook_deliveries(&other.id, &ep.id, 10).await.is_err());
    assert!(s.delete_webhook_endpoint(&other.id, &ep.id).await.is_err());
    s.delete_webhook_endpoint(&owner.id, &ep.id).await.unwrap();
    assert!(s.webhook_endpoints(&owner.id).await.unwrap().is_empty());
    s.raise_transport_hwms(&[], 0).await.unwrap();
    // Replay marks: more devices than one statement holds, and a mark only rises.
    let ids: Vec<String> = (0..250).map(|i| format!("dev{i:03}")).collect();
    for id in &ids {
        s.enrol_device(id, &home.id, "camera", id, "k", "h", 0)
            .await
            .unwrap();
    }
    let marks: Vec<(String, i64, Option<i64>)> =
        ids.iter().map(|id| (id.clone(), 10, Some(-40))).collect();
    s.raise_transport_hwms(&marks, 7).await.unwrap();
    let lower: Vec<(String, i64, Option<i64>)> =
        vec![(ids[0].clone(), 5, Some(9)), (ids[249].clone(), 11, None)];
    s.raise_transport_hwms(&lower, 8).await.unwrap();
    let hwm = |id: &str| {
        let id = id.to_owned();
        let owner = owner.id.clone();
        async move { s.device(&owner, &id).await.unwrap() }
    };
    let first = hwm(&ids[0]).await;
    assert_eq!(
        (first.transport_hwm, first.last_seen_ms),
        (10, Some(7)),
        "never lowered"
    );
    assert_eq!(
        hwm(&ids[150]).await.transport_hwm,
        10,
        "second statement applied"
    );
    let last = hwm(&ids[249]).await;
    assert_eq!((last.transport_hwm, last.last_seen_ms), (11, Some(8)));
    // The clock offset is saved with a rising mark; no estimate keeps the saved one.
    assert_eq!(last.clock_offset_ms, Some(-40));
    assert_eq!(
        first.clock_offset_ms,
        Some(-40),
        "not with a mark that did not rise"
    );
}

#[tokio::test]
async fn media_on_sqlite() {
    let (s, _dir) = testing::sqlite().await.unwrap();
    exercise(&s).await;
}

#[tokio::test]
async fn media_on_postgres() {
    match testing::postgres().await.unwrap() {
        Some(s) => exercise(&s).await,
        None => eprintln!("PostgreSQL not reachable; skipped"),
    }
}
