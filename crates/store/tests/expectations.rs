//! An owner's expected delivery is matched to the delivery that arrives for it: from
//! the merchant named (or any), its window overlapping, once; owner-scoped.

use threshold_store::{testing, Role, Store};

async fn story(s: &Store) {
    let owner = s.create_user(Role::Owner, "o", "O", "x", 0).await.unwrap();
    let other = s.create_user(Role::Owner, "p", "P", "x", 0).await.unwrap();
    let home = testing::home(s, &owner.id).await.unwrap();
    assert!(s
        .create_expectation(&other.id, &home.id, None, "not mine", (0, 10), 1)
        .await
        .is_err());
    let acme = s
        .create_expectation(&owner.id, &home.id, Some("acme"), "shoes", (100, 200), 1)
        .await
        .unwrap();
    let any = s
        .create_expectation(&owner.id, &home.id, None, "anything", (100, 200), 1)
        .await
        .unwrap();
    // Outside the window: nothing.
    assert_eq!(
        s.match_expectation(&home.id, "acme", (300, 400), "d0", 5)
            .await
            .unwrap(),
        None
    );
    // Another merchant: the open expectation, not Acme's.
    assert_eq!(
        s.match_expectation(&home.id, "zed", (150, 160), "d1", 5)
            .await
            .unwrap(),
        Some(any.id.clone())
    );
    // Acme's delivery: Acme's; a second one finds nothing left.
    assert_eq!(
        s.match_expectation(&home.id, "acme", (190, 250), "d2", 6)
            .await
            .unwrap(),
        Some(acme.id.clone())
    );
    assert_eq!(
        s.match_expectation(&home.id, "acme", (190, 250), "d3", 7)
            .await
            .unwrap(),
        None
    );
    let list = s.expectations(&owner.id, &home.id, 0).await.unwrap();
    let mut linked: Vec<(String, Option<String>)> = list
        .iter()
        .map(|e| (e.note.clone(), e.delivery_id.clone()))
        .collect();
    linked.sort();
    assert_eq!(
        linked,
        vec![
            ("anything".to_owned(), Some("d1".to_owned())),
            ("shoes".to_owned(), Some("d2".to_owned()))
        ]
    );
    assert!(s
        .expectations(&other.id, &home.id, 0)
        .await
        .unwrap()
        .is_empty());
    assert!(s.delete_expectation(&other.id, &acme.id).await.is_err());
    s.delete_expectation(&owner.id, &acme.id).await.unwrap();
    assert_eq!(
        s.expectations(&owner.id, &home.id, 0).await.unwrap().len(),
        1
    );
}

#[tokio::test]
async fn expectations_on_sqlite() {
    let (s, _dir) = testing::sqlite().await.unwrap();
    story(&s).await;
}

#[tokio::test]
async fn expectations_on_postgres() {
    if let Some(s) = testing::postgres().await.unwrap() {
        story(&s).await;
    }
}
