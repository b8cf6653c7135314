//! One story, run on SQLite and on PostgreSQL: the same calls must behave the same.

use threshold_store::{
    testing, DoorChange, GapRow, NewAlert, NewHome, NewPairing, OpeningRow, Role, SeqSpaceName,
    Store, StoreError,
};

async fn story(s: &Store) {
    let owner = s
        .create_user(Role::Owner, "olivia", "Olivia", "hash-o", 1)
        .await
        .unwrap();
    let other = s
        .create_user(Role::Owner, "mallory", "Mallory", "hash-m", 1)
        .await
        .unwrap();
    assert!(matches!(
        s.create_user(Role::Owner, "olivia", "dup", "h", 1).await,
        Err(StoreError::Conflict(_))
    ));
    let courier = s
        .create_user(Role::Courier, "carl", "Carl", "hash-c", 1)
        .await
        .unwrap();
    let disp = s
        .create_user(Role::Dispatcher, "dora", "Dora", "hash-d", 1)
        .await
        .unwrap();

    // Sessions expire.
    s.create_session("tok-hash", &owner.id, 10, 100)
        .await
        .unwrap();
    assert_eq!(
        s.session_user("tok-hash", 50)
            .await
            .unwrap()
            .map(|(_, u)| u.id),
        Some(owner.id.clone())
    );
    assert!(s.session_user("tok-hash", 100).await.unwrap().is_none());

    // Homes are scoped to their owner.
    let home = s
        .create_home(
            NewHome {
                owner_id: &owner.id,
                name: "Flat",
                lat: 52.0,
                lon: 4.0,
                geofence_m: 60.0,
                time_zone: None,
            },
            5,
        )
        .await
        .unwrap();
    assert!(home.in_home_enabled);
    assert!(matches!(
        s.home(&other.id, &home.id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(s.homes(&other.id).await.unwrap().len(), 0);
    assert!(matches!(
        s.update_home_settings(&other.id, &home.id, false, false, "{}", None)
            .await,
        Err(StoreError::NotFound)
    ));

    // Pairing codes work once, and not after expiry.
    let pairing = |hash: &'static str, kind: &'static str, expires_ms: i64| NewPairing {
        code_hash: hash,
        home_id: &home.id,
        kind,
        name: "Dev",
        door_id: None,
        now: 10,
        expires_ms,
    };
    s.create_pairing_code(pairing("code-1", "camera", 1000))
        .await
        .unwrap();
    s.create_pairing_code(pairing("code-2", "lock", 20))
        .await
        .unwrap();
    assert!(matches!(
        s.take_pairing_code("code-2", 30).await,
        Err(StoreError::NotFound)
    ));
    let p = s.take_pairing_code("code-1", 30).await.unwrap();
    assert_eq!(
        (p.owner_id.as_str(), p.kind.as_str()),
        (owner.id.as_str(), "camera")
    );
    assert!(matches!(
        s.take_pairing_code("code-1", 31).await,
        Err(StoreError::NotFound)
    ));

    // Devices, high-water marks that never go down, gaps.
    let dev = s
        .enrol_device("d1", &home.id, "camera", "Hall cam", "pk", "mh", 40)
        .await
        .unwrap();
    assert_eq!(dev.owner_id, owner.id);
    s.raise_transport_hwm("d1", 10, 50).await.unwrap();
    s.raise_transport_hwm("d1", 5, 60).await.unwrap();
    assert_eq!(s.device_any("d1").await.unwrap().transport_hwm, 10);
    s.set_gaps(
        "d1",
        SeqSpaceName::Events,
        &[GapRow {
            from_seq: 3,
            to_seq: 4,
            opened_ms: 9,
        }],
    )
    .await
    .unwrap();
    assert_eq!(s.gaps("d1", SeqSpaceName::Events).await.unwrap().len(), 1);
    assert!(s.gaps("d1", SeqSpaceName::Frames).await.unwrap().is_empty());
    assert!(matches!(
        s.device(&other.id, "d1").await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.revoke_device(&other.id, "d1", 70).await,
        Err(StoreError::NotFound)
    ));
    s.revoke_device(&owner.id, "d1", 70).await.unwrap();
    assert_eq!(s.device_any("d1").await.unwrap().revoked_ms, Some(70));

    // Device events are idempotent.
    let ev = threshold_store::DeviceEventRow {
        device_id: "d1".into(),
        seq: 1,
        device_time_ms: 1,
        received_ms: 2,
        event_type: "door_opened".into(),
        detail: "{}".into(),
        raw: vec![0, 1, 2, 255],
    };
    assert!(s.store_device_event(&ev, None).await.unwrap());
    assert!(!s.store_device_event(&ev, None).await.unwrap());
    let evs = s.device_events(&owner.id, "d1", 10).await.unwrap();
    assert_eq!(evs, vec![ev]);
    assert!(s
        .device_events(&other.id, "d1", 10)
        .await
        .unwrap()
        .is_empty());

    // Alerts are scoped.
    let a = s
        .create_alert(
            NewAlert {
                home_id: &home.id,
                device_id: Some("d1"),
                delivery_id: None,
                severity: "critical",
                kind: "camera_lost",
                message: "m",
                evidence: "{}",
                cause_key: Some("camera_lost:d1"),
            },
            80,
        )
        .await
        .unwrap()
        .unwrap();
    // One cause, one alert: the same cause key stores nothing the second time.
    let again = NewAlert {
        home_id: &home.id,
        device_id: Some("d1"),
        delivery_id: None,
        severity: "critical",
        kind: "camera_lost",
        message: "m",
        evidence: "{}",
        cause_key: Some("camera_lost:d1"),
    };
    assert!(s.create_alert(again, 81).await.unwrap().is_none());
    assert!(matches!(
        s.ack_alert(&other.id, &a.id, 90).await,
        Err(StoreError::NotFound)
    ));
    s.ack_alert(&owner.id, &a.id, 90).await.unwrap();
    assert_eq!(s.alerts(&owner.id, 10).await.unwrap()[0].acked_ms, Some(90));
    assert!(s.alerts(&other.id, 10).await.unwrap().is_empty());

    // Doors: a lock is on one door only; cameras are bound per door.
    let front = s.create_door(&home.id, "Front", true, 5).await.unwrap();
    let back = s.create_door(&home.id, "Back", false, 5).await.unwrap();
    for (id, kind) in [("lock-1", "lock"), ("cam-1", "camera"), ("cam-2", "camera")] {
        s.enrol_device(id, &home.id, kind, id, "k", "h", 5)
            .await
            .unwrap();
    }
    s.update_door(
        &front.id,
        &DoorChange {
            lock_id: Some(Some("lock-1".into())),
            camera_ids: Some(vec!["cam-2".into(), "cam-1".into()]),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(matches!(
        s.update_door(
            &back.id,
            &DoorChange {
                lock_id: Some(Some("lock-1".into())),
                ..Default::default()
            }
        )
        .await,
        Err(StoreError::Conflict(_))
    ));
    let f = s.door(&owner.id, &front.id).await.unwrap();
    assert_eq!(
        (f.lock_id.as_deref(), f.camera_ids.clone()),
        (
            Some("lock-1"),
            vec!["cam-1".to_string(), "cam-2".to_string()]
        )
    );
    assert!(matches!(
        s.door(&other.id, &front.id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(s.all_doors().await.unwrap().len(), 2);
    s.delete_door(&back.id).await.unwrap();
    assert_eq!(s.doors_of_home(&home.id).await.unwrap().len(), 1);

    // Merchants the owner trusts, revocably.
    assert!(!s.merchant_trusted(&home.id, &disp.id).await.unwrap());
    s.trust_merchant(&home.id, &disp.id, 6).await.unwrap();
    s.trust_merchant(&home.id, &disp.id, 7).await.unwrap();
    assert!(s.merchant_trusted(&home.id, &disp.id).await.unwrap());
    assert_eq!(s.merchants(&home.id).await.unwrap().len(), 1);
    assert!(s.distrust_merchant(&home.id, &disp.id).await.unwrap());
    assert!(!s.distrust_merchant(&home.id, &disp.id).await.unwrap());

    // Deliveries: one transition wins, and it stamps its time and the session.
    let d = s
        .create_delivery(
            &home.id,
            &courier.id,
            &disp.id,
            0,
            1000,
            "P-1",
            "in_home",
            &front.id,
            5,
        )
        .await
        .unwrap();
    assert_eq!(d.door_id.as_deref(), Some(front.id.as_str()));
    let inside = s
        .transition_delivery(&d.id, "scheduled", "inside", 6)
        .await
        .unwrap()
        .expect("moved");
    assert_eq!((inside.state.as_str(), inside.updated_ms), ("inside", 6));
    assert!(s
        .transition_delivery(&d.id, "scheduled", "inside", 6)
        .await
        .unwrap()
        .is_none());
    let sid = s
        .open_session(
            &home.id,
            &front.id,
            &format!("delivery:{}", d.id),
            Some(&d.id),
            6,
            None,
        )
        .await
        .unwrap();
    let lost = s
        .transition_delivery(&d.id, "inside", "camera_lost", 7)
        .await
        .unwrap()
        .expect("moved");
    assert_eq!((lost.camera_lost_ms, lost.compromised), (Some(7), true));
    assert!(s
        .transition_delivery(&d.id, "camera_lost", "ended_after_camera_loss", 9)
        .await
        .unwrap()
        .is_some());
    let d = s.delivery_any(&d.id).await.unwrap();
    assert_eq!(
        (
            d.state.as_str(),
            d.compromised,
            d.camera_lost_ms,
            d.ended_ms
        ),
        ("ended_after_camera_loss", true, Some(7), Some(9))
    );
    let sess = s.session_of_delivery(&d.id).await.unwrap();
    assert_eq!(
        (sess.id.as_str(), sess.compromised_ms, sess.closed_ms),
        (sid.as_str(), Some(7), Some(9))
    );
    assert!(s
        .active_deliveries_of_door(&front.id)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        s.sessions_near(&home.id, Some(&front.id), 8, 1)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(s
        .sessions_near(&home.id, Some("other-door"), 8, 1)
        .await
        .unwrap()
        .is_empty());

    // Door openings: recorded once, merged by the second reporter.
    let o = OpeningRow {
        id: "o1".into(),
        home_id: home.id.clone(),
        door_id: Some(front.id.clone()),
        at_ms: 100,
        reported_by: "lock-1".into(),
        attribution: "unauthorised".into(),
        session_id: None,
        delivery_id: None,
    };
    s.insert_opening(&o, 101).await.unwrap();
    s.set_opening_reporters("o1", "lock-1,contact-1")
        .await
        .unwrap();
    let found = s
        .openings_between(&home.id, Some(&front.id), 90, 110)
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].reported_by, "lock-1,contact-1");
    assert!(s
        .openings_between(&home.id, None, 0, 1000)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        s.courier_deliveries(&courier.id, 0, 2000)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(s.owner_deliveries(&other.id, 10).await.unwrap().len(), 0);

    // The audit chain.
    for i in 0..5 {
        s.append_audit(100 + i, "login", "owner:1", "session", "{}")
            .await
            .unwrap();
    }
    let page = s.audit_page(0, 100).await.unwrap();
    let mut v = threshold_core::audit::ChainVerifier::new();
    for e in &page {
        v.push(e).unwrap();
    }
    assert_eq!(v.head().0, 5);
    s.tamper_audit_detail_for_tests(3, "{\"evil\":1}")
        .await
        .unwrap();
    let page = s.audit_page(0, 100).await.unwrap();
    let mut v = threshold_core::audit::ChainVerifier::new();
    let broke = page.iter().find_map(|e| v.push(e).err());
    assert_eq!(
        broke,
        Some(threshold_core::audit::ChainBreak::AlteredEntry { seq: 3 })
    );

    // Settings.
    assert_eq!(s.setting_init("k", "v1").await.unwrap(), "v1");
    assert_eq!(s.setting_init("k", "v2").await.unwrap(), "v1");
}

#[tokio::test]
async fn story_on_sqlite() {
    let (s, _dir) = testing::sqlite().await.unwrap();
    story(&s).await;
}

#[tokio::test]
async fn story_on_postgres() {
    if let Some(s) = testing::postgres().await.unwrap() {
        story(&s).await;
    }
}

#[tokio::test]
async fn concurrent_audit_appends_keep_one_chain() {
    let (s, _dir) = testing::sqlite().await.unwrap();
    let pg = testing::postgres().await.unwrap();
    for store in std::iter::once(s).chain(pg) {
        let mut tasks = Vec::new();
        for i in 0..20 {
            let st = store.clone();
            tasks.push(tokio::spawn(async move {
                st.append_audit(i, "k", "a", "s", "{}").await.unwrap()
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let page = store.audit_page(0, 100).await.unwrap();
        assert_eq!(page.len(), 20);
        let mut v = threshold_core::audit::ChainVerifier::new();
        for e in &page {
            v.push(e).unwrap();
        }
    }
}
