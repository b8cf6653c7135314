//! Alerts about the hub itself, on SQLite and on PostgreSQL: one row per cause however
//! often it is raised, resolved once, newest first.

use threshold_store::{testing, NewSystemAlert, Store};

fn behind(cause: &str) -> NewSystemAlert<'_> {
    NewSystemAlert {
        kind: "hub_behind",
        severity: "critical",
        message: "The hub is behind with its devices' messages",
        evidence: r#"{"median_lag_ms":1200}"#,
        cause_key: cause,
    }
}

async fn story(s: &Store) {
    let first = s
        .raise_system_alert(behind("hub_behind:1000"), 1_000)
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(first.resolved_ms, None);
    // The same cause again (a second pass, a second node): not stored twice.
    assert!(s
        .raise_system_alert(behind("hub_behind:1000"), 1_250)
        .await
        .unwrap()
        .is_none());
    assert!(s
        .resolve_system_alert("hub_behind:1000", 5_000)
        .await
        .unwrap());
    assert!(
        !s.resolve_system_alert("hub_behind:1000", 6_000)
            .await
            .unwrap(),
        "resolved once"
    );
    assert!(!s.resolve_system_alert("hub_behind:9", 6_000).await.unwrap());
    s.raise_system_alert(behind("hub_behind:7000"), 7_000)
        .await
        .unwrap()
        .expect("a new episode is a new alert");
    let all = s.system_alerts(10).await.unwrap();
    let seen: Vec<(&str, Option<i64>)> = all
        .iter()
        .map(|a| (a.cause_key.as_str(), a.resolved_ms))
        .collect();
    assert_eq!(
        seen,
        vec![("hub_behind:7000", None), ("hub_behind:1000", Some(5_000))]
    );
    assert_eq!(all[1].id, first.id);
    assert_eq!(all[1].evidence, r#"{"median_lag_ms":1200}"#);
}

#[tokio::test]
async fn system_alerts_on_sqlite() {
    let (s, _dir) = testing::sqlite().await.unwrap();
    story(&s).await;
}

#[tokio::test]
async fn system_alerts_on_postgres() {
    if let Some(s) = testing::postgres().await.unwrap() {
        story(&s).await;
    }
}
