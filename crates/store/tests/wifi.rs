//! Wi-Fi attack evidence and the queries that tie it to outages, on SQLite and on
//! PostgreSQL: the same calls must behave the same.

use threshold_store::{testing, NewAlert, NewHome, Role, Store, StoreError, WifiAttackRow};

fn attack(id: &str, home: &str, device: &str, seq: i64, ongoing: bool) -> WifiAttackRow {
    WifiAttackRow {
        id: id.to_owned(),
        home_id: home.to_owned(),
        device_id: device.to_owned(),
        seq,
        source: "link".into(),
        kind: "deauth_attack".into(),
        start_ms: 10_000,
        end_ms: 12_000,
        ongoing,
        detail: r#"{"kind":"deauth_attack"}"#.into(),
        camera_id: None,
        outage_from_ms: None,
        outage_to_ms: None,
        delivery_id: None,
        alert_id: None,
        timeline_id: None,
        explained_alert_ids: "[]".into(),
        created_ms: 13_000,
        updated_ms: 13_000,
    }
}

async fn story(s: &Store) {
    let owner = s
        .create_user(Role::Owner, "olivia", "Olivia", "h", 1)
        .await
        .unwrap();
    let other = s
        .create_user(Role::Owner, "mallory", "Mallory", "h", 1)
        .await
        .unwrap();
    let home = s
        .create_home(
            NewHome {
                owner_id: &owner.id,
                name: "Flat 3",
                lat: 52.0,
                lon: 4.0,
                geofence_m: 50.0,
                time_zone: None,
            },
            1,
        )
        .await
        .unwrap();
    let cam = "00112233445566778899aabbccddeeff";

    // Liveness history and the outage's alerts.
    for (t, d) in [
        (5_000, r#"{"from":"offline","to":"live"}"#),
        (
            9_500,
            r#"{"from":"live","to":"stale","last_fresh_ms":8000}"#,
        ),
        (20_000, r#"{"from":"stale","to":"live"}"#),
    ] {
        s.add_timeline(&home.id, Some(cam), None, t, "liveness", d)
            .await
            .unwrap();
    }
    s.add_timeline(&home.id, Some(cam), None, 9_000, "device.link_lost", "{}")
        .await
        .unwrap();
    let h = s
        .device_timeline_between(&home.id, cam, "liveness", 6_000, 30_000)
        .await
        .unwrap();
    assert_eq!(
        h.iter().map(|r| r.time_ms).collect::<Vec<_>>(),
        [9_500, 20_000]
    );
    let lost = s
        .create_alert(
            NewAlert {
                home_id: &home.id,
                device_id: Some(cam),
                delivery_id: None,
                severity: "critical",
                kind: "camera_lost_during_delivery",
                message: "Camera Hall went stale",
                evidence: "{}",
                cause_key: None,
            },
            9_600,
        )
        .await
        .unwrap()
        .unwrap();
    let found = s
        .home_alerts_between(&home.id, 9_000, 10_000)
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0], lost);
    assert!(s
        .home_alerts_between(&home.id, 10_000, 11_000)
        .await
        .unwrap()
        .is_empty());
    s.amend_alert(&lost.id, "explained", r#"{"explanation":{}}"#)
        .await
        .unwrap();
    let a = s.alert_any(&lost.id).await.unwrap();
    assert_eq!(
        (a.message.as_str(), a.evidence.as_str()),
        ("explained", r#"{"explanation":{}}"#)
    );
    assert!(matches!(
        s.amend_alert("nope", "m", "{}").await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.alert_any("nope").await,
        Err(StoreError::NotFound)
    ));

    // One row per (device, kind, start); updates keep the identity.
    let mut row = attack("a1", &home.id, cam, 3, true);
    assert!(s.insert_wifi_attack(&row).await.unwrap());
    assert!(!s
        .insert_wifi_attack(&attack("a2", &home.id, cam, 4, false))
        .await
        .unwrap());
    row.seq = 4;
    row.ongoing = false;
    row.end_ms = 12_500;
    row.camera_id = Some(cam.into());
    row.outage_from_ms = Some(8_000);
    row.alert_id = Some("alert-1".into());
    row.explained_alert_ids = format!(r#"["{}"]"#, lost.id);
    row.updated_ms = 14_000;
    s.update_wifi_attack(&row).await.unwrap();
    let got = s
        .wifi_attack_by_key(cam, "deauth_attack", 10_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, row);
    assert!(s
        .wifi_attack_by_key(cam, "deauth", 10_000)
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        s.wifi_attacks(&owner.id, &home.id, 10).await.unwrap(),
        [row.clone()]
    );
    assert!(s
        .wifi_attacks(&other.id, &home.id, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        s.home_wifi_attacks_since(&home.id, 10_000).await.unwrap(),
        [row.clone()]
    );
    assert!(s
        .home_wifi_attacks_since(&home.id, 10_001)
        .await
        .unwrap()
        .is_empty());
    assert!(matches!(
        s.update_wifi_attack(&attack("missing", &home.id, cam, 1, false))
            .await,
        Err(StoreError::NotFound)
    ));

    let tl = s
        .add_timeline(&home.id, Some(cam), None, 10_000, "wifi_attack", "{}")
        .await
        .unwrap();
    s.set_timeline_detail(&tl, r#"{"x":1}"#).await.unwrap();
    let t = s
        .device_timeline_between(&home.id, cam, "wifi_attack", 0, 99_999)
        .await
        .unwrap();
    assert_eq!(t[0].detail, r#"{"x":1}"#);
    assert!(matches!(
        s.set_timeline_detail("nope", "{}").await,
        Err(StoreError::NotFound)
    ));
}

#[tokio::test]
async fn wifi_on_sqlite() {
    let (s, _dir) = testing::sqlite().await.unwrap();
    story(&s).await;
}

#[tokio::test]
async fn wifi_on_postgres() {
    if let Some(s) = testing::postgres().await.unwrap() {
        story(&s).await;
    }
}
