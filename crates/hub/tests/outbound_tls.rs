//! Webhooks over HTTPS: the hub's TLS client reaches a receiver whose certificate
//! comes from a private CA the operator named (`outbound_ca_file`), and only then.

mod support;
use support::*;

use serde_json::json;
use std::time::Duration;
use threshold_core::alert::AlertKind;
use threshold_core::delivery::Alert;
use threshold_hub::HubConfig;
use threshold_store::testing;
use tokio::sync::mpsc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_reach_an_https_receiver_trusted_through_the_operators_ca() {
    let dir = testing::TempDir::new("outbound-tls").unwrap();
    // The receiver: HTTPS with a CA of its own (made the way the hub makes its own).
    let recv_tls =
        threshold_hub::tls::local_ca(&dir.path().join("receiver"), &["127.0.0.1".to_owned()])
            .unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel::<(String, String)>();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let tx = tx.clone();
            async move {
                let id = headers
                    .get("webhook-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let _ = tx.send((id, body));
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://127.0.0.1:{}/hook", l.local_addr().unwrap().port());
    let listener = threshold_hub::tls::TlsListener::new(l, recv_tls.config.clone()).unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let hub = threshold_hub::start(HubConfig {
        outbound_ca_file: Some(dir.path().join("receiver").join("ca.pem")),
        ..local_config(&dir.path().join("hub"))
    })
    .await
    .unwrap();
    let base = format!("http://{}", hub.http_addr);
    let adm = admin(&hub).await;
    let owner = accounts(&base, &adm, &[("owner", "olga")]).await.remove(0);
    let home_id = home(&base, &owner, "Home", 1.0, 1.0).await;
    // A plain-HTTP receiver on the LAN is refused; the HTTPS one is taken.
    let (s, b) = call(
        "POST",
        format!("{base}/api/v1/webhooks"),
        Some(&owner),
        Some(json!({"url": "http://192.168.1.20/hook"})),
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (400, Some("insecure_url")),
        "{b}"
    );
    let (s, b) = call(
        "POST",
        format!("{base}/api/v1/webhooks"),
        Some(&owner),
        Some(json!({"url": url})),
    )
    .await;
    assert_eq!(s, 201, "{b}");

    let owner_id = hub
        .state
        .store
        .user_by_name("olga")
        .await
        .unwrap()
        .unwrap()
        .id;
    threshold_hub::alerts::raise(
        &hub.state,
        &owner_id,
        threshold_hub::alerts::Alert {
            kind: AlertKind::Delivery(Alert::CameraLostDuringDelivery),
            home_id: &home_id,
            device_id: None,
            delivery_id: None,
            message: "camera lost",
            evidence: "{}",
            cause_key: None,
        },
    )
    .await;
    let (id, body) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the receiver got the webhook over TLS")
        .unwrap();
    assert!(!id.is_empty(), "the webhook carries its id");
    assert!(body.contains("camera_lost_during_delivery"), "{body}");
    hub.stop().await;
}
