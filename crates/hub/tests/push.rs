//! Web Push end to end: an owner subscribes through the API; a critical alert makes the
//! hub POST to a local push endpoint that checks the VAPID token (RFC 8292, ES256, for
//! its own origin) and decrypts the `aes128gcm` payload (RFC 8291) with the
//! subscription's private key, as a browser's push service and browser would. A 410
//! answer removes the subscription. Warnings are not pushed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
use support::*;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes128Gcm, Nonce};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hkdf::Hkdf;
use p256::ecdsa::signature::Verifier;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{PublicKey, SecretKey};
use serde_json::{json, Value};
use sha2::Sha256;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;
use threshold_core::alert::AlertKind;
use threshold_core::delivery::Alert;
use threshold_hub::HubConfig;
use threshold_store::testing;
use tokio::sync::mpsc;

type Received = (HeaderMap, Vec<u8>);

#[derive(Clone)]
struct Endpoint {
    tx: mpsc::UnboundedSender<Received>,
    status: Arc<AtomicU16>,
}

async fn receive(
    State(e): State<Endpoint>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let _ = e.tx.send((headers, body.to_vec()));
    StatusCode::from_u16(e.status.load(Ordering::SeqCst)).unwrap()
}

/// What a push service checks: the VAPID token is ES256 over header.claims with the key
/// in `k`, for this origin, not expired, with a contact.
fn check_vapid(headers: &HeaderMap, origin: &str, hub_key: &str) {
    let authz = headers["authorization"].to_str().unwrap();
    let (t, k) = authz
        .strip_prefix("vapid t=")
        .and_then(|r| r.split_once(", k="))
        .unwrap_or_else(|| panic!("not a vapid header: {authz}"));
    assert_eq!(k, hub_key, "k is the hub's VAPID public key");
    let parts: Vec<&str> = t.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: Value = serde_json::from_slice(&B64.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header, json!({"typ": "JWT", "alg": "ES256"}));
    let claims: Value = serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(claims["aud"], origin);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let exp = claims["exp"].as_i64().unwrap();
    assert!(
        exp > now && exp <= now + 24 * 3600,
        "exp within 24 h: {claims}"
    );
    assert!(claims["sub"].as_str().unwrap().starts_with("mailto:"));
    let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&B64.decode(k).unwrap()).unwrap();
    let sig = p256::ecdsa::Signature::from_slice(&B64.decode(parts[2]).unwrap()).unwrap();
    vk.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
        .expect("VAPID signature verifies");
    assert_eq!(headers["content-encoding"], "aes128gcm");
    assert!(headers.contains_key("ttl"));
}

/// What the browser does with the body (RFC 8291, written here independently).
fn decrypt(ua: &SecretKey, auth: &[u8], body: &[u8]) -> Vec<u8> {
    let salt = &body[..16];
    let rs = u32::from_be_bytes(body[16..20].try_into().unwrap());
    assert!(rs >= 18);
    let idlen = body[20] as usize;
    assert_eq!(idlen, 65);
    let as_public = &body[21..21 + idlen];
    let sealed = &body[21 + idlen..];
    assert!(sealed.len() <= rs as usize, "one record");
    let sender = PublicKey::from_sec1_bytes(as_public).unwrap();
    let shared = p256::ecdh::diffie_hellman(ua.to_nonzero_scalar(), sender.as_affine());
    let ua_public = ua.public_key().to_encoded_point(false);
    let mut info = b"WebPush: info\0".to_vec();
    info.extend_from_slice(ua_public.as_bytes());
    info.extend_from_slice(as_public);
    let mut ikm = [0u8; 32];
    Hkdf::<Sha256>::new(Some(auth), shared.raw_secret_bytes())
        .expand(&info, &mut ikm)
        .unwrap();
    let prk = Hkdf::<Sha256>::new(Some(salt), &ikm);
    let mut cek = [0u8; 16];
    prk.expand(b"Content-Encoding: aes128gcm\0", &mut cek)
        .unwrap();
    let mut nonce = [0u8; 12];
    prk.expand(b"Content-Encoding: nonce\0", &mut nonce)
        .unwrap();
    let mut plain = Aes128Gcm::new_from_slice(&cek)
        .unwrap()
        .decrypt(Nonce::from_slice(&nonce), sealed)
        .expect("payload decrypts");
    while plain.last() == Some(&0) {
        plain.pop();
    }
    assert_eq!(plain.pop(), Some(2), "last-record delimiter");
    plain
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn critical_alerts_are_pushed_encrypted_with_vapid() {
    let dir = testing::TempDir::new("push").unwrap();
    let cfg = HubConfig {
        data_dir: dir.path().to_owned(),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        embedded_mqtt_addr: "127.0.0.1:0".parse().unwrap(),
        mqtt_topic_prefix: format!("thr-push-{}", threshold_store::new_id()),
        ..Default::default()
    };
    let hub = threshold_hub::start(cfg).await.unwrap();
    let base = format!("http://{}", hub.http_addr);
    let hash = threshold_hub::auth::hash_password("a-long-password").unwrap();
    let owner_row = hub
        .state
        .store
        .create_user(threshold_store::Role::Owner, "olivia", "Olivia", &hash, 0)
        .await
        .unwrap();
    let (_, login) = call(
        "POST",
        format!("{base}/api/v1/auth/login"),
        None,
        Some(json!({"username": "olivia", "password": "a-long-password"})),
    )
    .await;
    let owner = login["token"].as_str().unwrap().to_owned();
    let (s, home) = call(
        "POST",
        format!("{base}/api/v1/homes"),
        Some(&owner),
        Some(json!({"name": "H", "lat": 1.0, "lon": 1.0})),
    )
    .await;
    assert_eq!(s, 201);
    let home_id = home["id"].as_str().unwrap().to_owned();

    // The local push service.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let status = Arc::new(AtomicU16::new(201));
    let ep = Endpoint {
        tx,
        status: status.clone(),
    };
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", l.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/push/{id}", axum::routing::post(receive))
        .with_state(ep);
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });

    // The browser's side of a subscription.
    let ua = SecretKey::from_slice(&[7u8; 32]).unwrap();
    let auth = [9u8; 16];
    let endpoint = format!("{origin}/push/sub-1");
    let (s, k) = call("GET", format!("{base}/api/v1/push/key"), Some(&owner), None).await;
    assert_eq!(s, 200, "{k}");
    let hub_key = k["public_key"].as_str().unwrap().to_owned();
    assert_eq!(B64.decode(&hub_key).unwrap().len(), 65);

    // Bad subscriptions are refused with reasons.
    let good_keys = json!({"p256dh": B64.encode(ua.public_key().to_encoded_point(false).as_bytes()), "auth": B64.encode(auth)});
    for (body, code) in [
        (
            json!({"endpoint": "http://push.example/x", "keys": good_keys}),
            "invalid_endpoint",
        ),
        (
            json!({"endpoint": endpoint, "keys": {"p256dh": B64.encode([4u8; 65]), "auth": B64.encode(auth)}}),
            "invalid_key",
        ),
        (
            json!({"endpoint": endpoint, "keys": {"p256dh": good_keys["p256dh"], "auth": "AAAA"}}),
            "invalid_key",
        ),
    ] {
        let (s, b) = call(
            "POST",
            format!("{base}/api/v1/push/subscriptions"),
            Some(&owner),
            Some(body),
        )
        .await;
        assert_eq!((s, b["error"]["code"].as_str()), (400, Some(code)), "{b}");
    }
    let (s, b) = call(
        "POST",
        format!("{base}/api/v1/push/subscriptions"),
        None,
        Some(json!({"endpoint": endpoint, "keys": good_keys})),
    )
    .await;
    assert_eq!(s, 401, "{b}");
    let (s, b) = call(
        "POST",
        format!("{base}/api/v1/push/subscriptions"),
        Some(&owner),
        Some(json!({"endpoint": endpoint, "keys": good_keys, "expirationTime": null})),
    )
    .await;
    assert_eq!(s, 201, "{b}");

    // Another owner who learnt the endpoint cannot take it over (nor remove it).
    let hash = threshold_hub::auth::hash_password("another-long-password").unwrap();
    hub.state
        .store
        .create_user(threshold_store::Role::Owner, "mallory", "M", &hash, 0)
        .await
        .unwrap();
    let (_, login) = call(
        "POST",
        format!("{base}/api/v1/auth/login"),
        None,
        Some(json!({"username": "mallory", "password": "another-long-password"})),
    )
    .await;
    let mallory = login["token"].as_str().unwrap().to_owned();
    let her_ua = SecretKey::from_slice(&[8u8; 32]).unwrap();
    let her_keys = json!({"p256dh": B64.encode(her_ua.public_key().to_encoded_point(false).as_bytes()), "auth": B64.encode([1u8; 16])});
    let (s, b) = call(
        "POST",
        format!("{base}/api/v1/push/subscriptions"),
        Some(&mallory),
        Some(json!({"endpoint": endpoint, "keys": her_keys})),
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (409, Some("endpoint_in_use")),
        "{b}"
    );
    let (s, _) = call(
        "DELETE",
        format!("{base}/api/v1/push/subscriptions"),
        Some(&mallory),
        Some(json!({"endpoint": endpoint})),
    )
    .await;
    assert_eq!(s, 404);
    let (_, mine) = call(
        "GET",
        format!("{base}/api/v1/push/subscriptions"),
        Some(&owner),
        None,
    )
    .await;
    assert_eq!(mine.as_array().map(Vec::len), Some(1), "{mine}");

    let alert = |kind: AlertKind, message: &'static str| {
        let st = hub.state.clone();
        let (owner_id, home_id) = (owner_row.id.clone(), home_id.clone());
        async move {
            threshold_hub::alerts::raise(
                &st,
                &owner_id,
                threshold_hub::alerts::Alert {
                    kind,
                    home_id: &home_id,
                    device_id: None,
                    delivery_id: None,
                    message,
                    evidence: "{}",
                    cause_key: None,
                },
            )
            .await;
        }
    };

    // A warning is not pushed; a critical alert is, within a second or so.
    alert(AlertKind::SequenceGap, "just a warning").await;
    alert(
        AlertKind::Delivery(Alert::CameraLostDuringDelivery),
        "Camera <Hall> went offline during a delivery",
    )
    .await;
    let (headers, body) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("push arrived")
        .unwrap();
    check_vapid(&headers, &origin, &hub_key);
    let payload: Value = serde_json::from_slice(&decrypt(&ua, &auth, &body)).unwrap();
    assert_eq!(
        payload["body"], "Camera <Hall> went offline during a delivery",
        "{payload}"
    );
    assert_eq!(payload["kind"], "camera_lost_during_delivery");
    assert_eq!(payload["url"], "/#/alerts");
    assert!(
        tokio::time::timeout(Duration::from_millis(500), rx.recv())
            .await
            .is_err(),
        "the warning was not pushed"
    );

    // A subscription the push service says is gone is removed.
    status.store(410, Ordering::SeqCst);
    alert(
        AlertKind::Delivery(Alert::CameraLostDuringDelivery),
        "second",
    )
    .await;
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("second push")
        .unwrap();
    until(5, "subscription removed", || async {
        let (_, subs) = call(
            "GET",
            format!("{base}/api/v1/push/subscriptions"),
            Some(&owner),
            None,
        )
        .await;
        subs.as_array().is_some_and(|a| a.is_empty())
    })
    .await;
    status.store(201, Ordering::SeqCst);
    alert(
        AlertKind::Delivery(Alert::CameraLostDuringDelivery),
        "third",
    )
    .await;
    assert!(
        tokio::time::timeout(Duration::from_millis(700), rx.recv())
            .await
            .is_err(),
        "no push after removal"
    );
    hub.stop().await;
}
