//! Timeline entries written at one instant come in the order they happened: an entry's
//! decision, then the capability sent for it; oldest first for a delivery, newest first
//! for a home, on both backends, whatever their random ids.

use threshold_store::{testing, NewTimelineRow, Role, Store};

async fn story(s: &Store) {
    let owner = s.create_user(Role::Owner, "o", "O", "x", 0).await.unwrap();
    let home = testing::home(s, &owner.id).await.unwrap();
    let row = |kind: &str, t: i64| NewTimelineRow {
        home_id: home.id.clone(),
        device_id: None,
        delivery_id: Some("d1".into()),
        time_ms: t,
        kind: kind.into(),
        detail: "{}".into(),
    };
    // Many pairs, written in the wrong order, so random ids cannot give the right one
    // by chance.
    for t in 0..20 {
        s.add_timeline_rows(&[row("unlock_sent", 100 + t), row("decision", 100 + t)])
            .await
            .unwrap();
    }
    let kinds: Vec<String> = s
        .delivery_timeline("d1")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.kind)
        .collect();
    for pair in kinds.chunks(2) {
        assert_eq!(pair, ["decision", "unlock_sent"], "{kinds:?}");
    }
    let newest_first: Vec<String> = s
        .timeline(&owner.id, &home.id, 0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.kind)
        .collect();
    for pair in newest_first.chunks(2) {
        assert_eq!(pair, ["unlock_sent", "decision"], "{newest_first:?}");
    }
}

#[tokio::test]
async fn entries_of_one_instant_keep_their_order_on_sqlite() {
    let (s, _dir) = testing::sqlite().await.unwrap();
    story(&s).await;
}

#[tokio::test]
async fn entries_of_one_instant_keep_their_order_on_postgres() {
    if let Some(s) = testing::postgres().await.unwrap() {
        story(&s).await;
    }
}
