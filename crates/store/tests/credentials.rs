//! A device's credential-renewal challenges are single-use and expire, on both
//! backends; its broker password hash is replaced only while it is not revoked.

use threshold_store::{testing, ChallengeUse, Role, Store};

async fn story(s: &Store) {
    let owner = s.create_user(Role::Owner, "o", "O", "x", 0).await.unwrap();
    let home = testing::home(s, &owner.id).await.unwrap();
    let dev = "65b60673d6ed884bf01c2c222d82ada0";
    let other = "c945cbf2a5602002141e2fb9d17054d6";
    for id in [dev, other] {
        s.enrol_device(id, &home.id, "camera", "c", &"ab".repeat(32), "old-hash", 0)
            .await
            .unwrap();
    }
    s.create_credential_challenge("n1", dev, 1_000, 61_000)
        .await
        .unwrap();
    s.create_credential_challenge("n2", dev, 1_000, 61_000)
        .await
        .unwrap();
    assert!(
        s.create_credential_challenge("n1", other, 1_000, 61_000)
            .await
            .is_err(),
        "a nonce is issued once"
    );
    // Another device cannot use it, nor can a nonce never issued be used.
    assert_eq!(
        s.take_credential_challenge("n1", other, 2_000)
            .await
            .unwrap(),
        ChallengeUse::Unknown
    );
    assert_eq!(
        s.take_credential_challenge("nx", dev, 2_000).await.unwrap(),
        ChallengeUse::Unknown
    );
    // Once, then used.
    assert_eq!(
        s.take_credential_challenge("n1", dev, 2_000).await.unwrap(),
        ChallengeUse::Taken
    );
    assert_eq!(
        s.take_credential_challenge("n1", dev, 2_001).await.unwrap(),
        ChallengeUse::Used
    );
    // Expired at its expiry time exactly.
    assert_eq!(
        s.take_credential_challenge("n2", dev, 61_000)
            .await
            .unwrap(),
        ChallengeUse::Expired
    );
    // An hour after expiry they are swept by the next issue: unknown from then on.
    s.create_credential_challenge("n3", dev, 61_000 + 3_600_001, 61_000 + 3_660_001)
        .await
        .unwrap();
    assert_eq!(
        s.take_credential_challenge("n1", dev, 61_000 + 3_600_002)
            .await
            .unwrap(),
        ChallengeUse::Unknown
    );

    s.set_device_mqtt_password_hash(dev, "new-hash")
        .await
        .unwrap();
    assert_eq!(
        s.device_any(dev).await.unwrap().mqtt_password_hash,
        "new-hash"
    );
    assert_eq!(
        s.device_any(other).await.unwrap().mqtt_password_hash,
        "old-hash"
    );
    s.revoke_device(&owner.id, other, 5).await.unwrap();
    assert!(s.set_device_mqtt_password_hash(other, "x").await.is_err());
    assert!(s
        .set_device_mqtt_password_hash("00000000000000000000000000000000", "x")
        .await
        .is_err());
}

#[tokio::test]
async fn challenges_on_sqlite() {
    let (s, _dir) = testing::sqlite().await.unwrap();
    story(&s).await;
}

#[tokio::test]
async fn challenges_on_postgres() {
    if let Some(s) = testing::postgres().await.unwrap() {
        story(&s).await;
    }
}
