//! A device renews its broker credentials with its own key (docs/protocol.md §8.6,
//! issue 15): a single-use challenge signed with the device key gets a new broker
//! password, which the broker takes and the old one no more.
//!
//! On the hub's own endpoint, through the API with a clock the test moves: the new
//! password is admitted and the old one refused; unknown, revoked, wrongly signed,
//! reused, expired and unknown challenges are refused with their codes; requests are
//! limited per device; the renewal is audited without its password.
//!
//! On an external Mosquitto with dynamic security, with the real agent: a camera
//! enrolled while the hub did not provision the broker (so the broker does not know
//! it), the hub restarted with `mqtt_dynsec`: the agent is refused, renews, connects,
//! and its heartbeats make it live.

mod support;
use support::*;

use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, Packet};
use rumqttc::v5::{AsyncClient, ConnectionError, Event, MqttOptions};
use serde_json::{json, Value};
use std::time::Duration;
use threshold_hub::clock::ManualClock;
use threshold_hub::HubConfig;
use threshold_proto::{renewal, DeviceKey};
use threshold_store::testing;

/// Connect once as device `id` with `password`: `Ok` on a CONNACK that admits it,
/// else how it was refused.
async fn connect(port: u16, id: &str, password: &str) -> Result<(), String> {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_credentials(id, password);
    let (client, mut el) = AsyncClient::new(o, 4);
    let r = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                Ok(_) => continue,
                Err(ConnectionError::ConnectionRefused(code)) => return Err(format!("{code:?}")),
                Err(e) => return Err(format!("closed: {e}")),
            }
        }
    })
    .await
    .expect("the broker answered");
    if r.is_ok() {
        let _ = client.disconnect().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), el.poll()).await;
    }
    r
}

fn refused_code(code: ConnectReturnCode) -> Result<(), String> {
    Err(format!("{code:?}"))
}

async fn challenge(base: &str, id: &str) -> (u16, Value) {
    call(
        "POST",
        format!("{base}/api/v1/devices/{id}/credentials/challenge"),
        None,
        None,
    )
    .await
}

async fn answer(base: &str, id: &str, nonce: &str, signature: &str) -> (u16, Value) {
    call(
        "POST",
        format!("{base}/api/v1/devices/{id}/credentials"),
        None,
        Some(json!({"nonce": nonce, "signature": signature})),
    )
    .await
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

/// A fresh challenge for `key`'s device.
async fn nonce(base: &str, key: &DeviceKey) -> String {
    let (s, c) = challenge(base, &key.device_id().to_hex()).await;
    assert_eq!(s, 201, "{c}");
    let n = c["nonce"].as_str().unwrap().to_owned();
    assert!(renewal::valid_nonce(&n), "{n}");
    n
}

/// A camera paired through the API; its key and broker password.
async fn pair(base: &str, owner: &str, home: &str) -> (DeviceKey, String) {
    let key = DeviceKey::generate().unwrap();
    let code = pairing_code(base, owner, home, "camera", "Camera").await;
    let (s, e) = call(
        "POST",
        format!("{base}/api/v1/enrol"),
        None,
        Some(support::sim::enrol_request(&key, &code, "camera")),
    )
    .await;
    assert_eq!(s, 201, "{e}");
    let pw = e["mqtt"]["password"].as_str().unwrap().to_owned();
    (key, pw)
}

async fn audit_kinds(hub: &threshold_hub::Hub, kind: &str) -> Vec<(String, String, String)> {
    hub.state
        .store
        .audit_page(0, 100_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == kind)
        .map(|e| (e.actor, e.subject, e.detail))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hubs_endpoint_takes_the_renewed_password_and_refusals_have_codes() {
    let dir = testing::TempDir::new("renew-endpoint").unwrap();
    let clock = ManualClock::new(now_ms());
    let hub = threshold_hub::start_with_clock(local_config(dir.path()), clock.clone())
        .await
        .unwrap();
    let base = format!("http://{}", hub.http_addr);
    let port = hub.mqtt_port;
    let adm = admin(&hub).await;
    let owner = accounts(&base, &adm, &[("owner", "ann")]).await.remove(0);
    let home_id = home(&base, &owner, "Ann's", 52.37, 4.89).await;
    let (a, old_pw) = pair(&base, &owner, &home_id).await;
    let (b, _) = pair(&base, &owner, &home_id).await;
    let (c, _) = pair(&base, &owner, &home_id).await;
    let id = a.device_id().to_hex();
    assert_eq!(connect(port, &id, &old_pw).await, Ok(()));

    // Not a device id; a device nobody enrolled.
    let (s, e) = challenge(&base, &id.to_uppercase()).await;
    assert_eq!((s, code(&e)), (400, "invalid_device_id"), "{e}");
    let stranger = DeviceKey::generate().unwrap();
    let sid = stranger.device_id().to_hex();
    let (s, e) = challenge(&base, &sid).await;
    assert_eq!((s, code(&e)), (404, "unknown_device"), "{e}");
    let n = "ab".repeat(32);
    let (s, e) = answer(&base, &sid, &n, &renewal::sign(&stranger, &n)).await;
    assert_eq!((s, code(&e)), (404, "unknown_device"), "{e}");

    // Signed by another key (another device's, for this device's challenge), or not a
    // signature at all: refused, and the challenge is not used up by it.
    let n1 = nonce(&base, &a).await;
    let (s, e) = answer(&base, &id, &n1, &renewal::sign(&b, &n1)).await;
    assert_eq!((s, code(&e)), (400, "bad_signature"), "{e}");
    let (s, e) = answer(&base, &id, &n1, "zz").await;
    assert_eq!((s, code(&e)), (400, "bad_signature"), "{e}");
    // A nonce the hub never issued, properly signed.
    let forged = "cd".repeat(32);
    let (s, e) = answer(&base, &id, &forged, &renewal::sign(&a, &forged)).await;
    assert_eq!((s, code(&e)), (400, "challenge_unknown"), "{e}");
    // Another device's challenge, signed by this one.
    let nb = nonce(&base, &b).await;
    let (s, e) = answer(&base, &id, &nb, &renewal::sign(&a, &nb)).await;
    assert_eq!((s, code(&e)), (400, "challenge_unknown"), "{e}");

    // The right proof: a new password, in the enrolment answer's shape.
    let proof = renewal::sign(&a, &n1);
    let (s, r) = answer(&base, &id, &n1, &proof).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["device_id"], id.as_str());
    assert_eq!(r["mqtt"]["username"], id.as_str());
    assert_eq!(r["mqtt"]["port"], port);
    assert_eq!(r["mqtt"]["topic_prefix"], "threshold");
    let new_pw = r["mqtt"]["password"].as_str().unwrap().to_owned();
    assert_eq!(new_pw.len(), 48);
    assert_ne!(new_pw, old_pw);

    // The endpoint admits the new password and refuses the old one.
    assert_eq!(connect(port, &id, &new_pw).await, Ok(()));
    assert_eq!(
        connect(port, &id, &old_pw).await,
        refused_code(ConnectReturnCode::BadUserNamePassword)
    );

    // The same answer again: the challenge is used.
    let (s, e) = answer(&base, &id, &n1, &proof).await;
    assert_eq!((s, code(&e)), (400, "challenge_used"), "{e}");
    // A challenge answered after its 60 s: expired (simulated time).
    let n2 = nonce(&base, &a).await;
    clock.advance(60_000);
    let (s, e) = answer(&base, &id, &n2, &renewal::sign(&a, &n2)).await;
    assert_eq!((s, code(&e)), (400, "challenge_expired"), "{e}");
    // ... one answered just in time is taken (after the five minutes in which the
    // device has had its ten requests).
    clock.advance(5 * 60 * 1000);
    let n3 = nonce(&base, &a).await;
    clock.advance(59_999);
    let (s, r) = answer(&base, &id, &n3, &renewal::sign(&a, &n3)).await;
    assert_eq!(s, 200, "{r}");
    let newest = r["mqtt"]["password"].as_str().unwrap().to_owned();
    assert_eq!(connect(port, &id, &newest).await, Ok(()));
    assert_eq!(
        connect(port, &id, &new_pw).await,
        refused_code(ConnectReturnCode::BadUserNamePassword)
    );

    // A revoked device: no challenge, and a challenge it got before is not answered.
    let bid = b.device_id().to_hex();
    let nb2 = nonce(&base, &b).await;
    let (s, _) = call(
        "DELETE",
        format!("{base}/api/v1/devices/{bid}"),
        Some(&owner),
        None,
    )
    .await;
    assert_eq!(s, 204);
    let (s, e) = challenge(&base, &bid).await;
    assert_eq!((s, code(&e)), (403, "device_revoked"), "{e}");
    let (s, e) = answer(&base, &bid, &nb2, &renewal::sign(&b, &nb2)).await;
    assert_eq!((s, code(&e)), (403, "device_revoked"), "{e}");

    // Ten requests per device in five minutes, then none until the window passes.
    let cid = c.device_id().to_hex();
    for i in 0..10 {
        let (s, e) = challenge(&base, &cid).await;
        assert_eq!(s, 201, "request {i}: {e}");
    }
    let (s, e) = challenge(&base, &cid).await;
    assert_eq!((s, code(&e)), (429, "too_many_attempts"), "{e}");
    let n = "ef".repeat(32);
    let (s, e) = answer(&base, &cid, &n, &renewal::sign(&c, &n)).await;
    assert_eq!((s, code(&e)), (429, "too_many_attempts"), "{e}");
    clock.advance(5 * 60 * 1000);
    nonce(&base, &c).await;

    // Audited twice, by the device, in its home, without the password.
    let entries = audit_kinds(&hub, "device.credentials_renewed").await;
    assert_eq!(entries.len(), 2, "{entries:?}");
    for (actor, subject, detail) in &entries {
        assert_eq!(actor, &format!("device:{id}"));
        assert_eq!(subject, &format!("device:{id}"));
        assert!(
            !detail.contains(&new_pw) && !detail.contains(&newest),
            "{detail}"
        );
    }
    let (s, v) = call(
        "GET",
        format!("{base}/api/v1/audit/verify"),
        Some(&adm),
        None,
    )
    .await;
    assert_eq!((s, &v["ok"]), (200, &json!(true)), "{v}");
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_enrolled_before_dynamic_security_renews_and_goes_live() {
    let dir = testing::TempDir::new("renew-dynsec").unwrap();
    let Some(broker) = support::mosquitto::start(dir.path()) else {
        return;
    };
    let prefix = format!("thr-renew-{}", threshold_store::new_id());
    let config = |dynsec: bool, http_addr: std::net::SocketAddr| HubConfig {
        data_dir: dir.path().join("hub"),
        http_addr,
        mqtt_url: Some(format!(
            "mqtt://{}@127.0.0.1:{}",
            support::mosquitto::ADMIN,
            broker.port
        )),
        mqtt_password: Some(broker.admin_password.clone()),
        mqtt_dynsec: dynsec,
        mqtt_topic_prefix: prefix.clone(),
        ..Default::default()
    };

    // A hub that does not provision the broker: the camera enrols (the agent's own
    // enrolment, which remembers the hub's URL), but the broker does not know it.
    let hub = threshold_hub::start(config(false, "127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let addr = hub.http_addr;
    let base = format!("http://{addr}");
    let adm = admin(&hub).await;
    let owner = accounts(&base, &adm, &[("owner", "ann")]).await.remove(0);
    let home_id = home(&base, &owner, "Ann's", 52.37, 4.89).await;
    let code = pairing_code(&base, &owner, &home_id, "camera", "Hall").await;
    let cam_dir = testing::TempDir::new("renew-cam").unwrap();
    let (d, u) = (cam_dir.path().to_owned(), base.clone());
    let (key, enrolled) = tokio::task::spawn_blocking(move || {
        threshold_agent::identity::ensure_enrolled(
            &d,
            Some(&u),
            Some(&code),
            threshold_proto::body::DeviceKind::Camera,
            &threshold_agent::tls::client_config(None).unwrap(),
        )
    })
    .await
    .unwrap()
    .unwrap();
    let id = key.device_id().to_hex();
    let old_pw = enrolled.mqtt.password.clone();
    assert_eq!(enrolled.hub_url.as_deref(), Some(base.as_str()));
    assert!(
        connect(broker.port, &id, &old_pw).await.is_err(),
        "the broker does not know the device"
    );
    hub.stop().await;

    // The same hub, at the same address, now provisioning through dynamic security.
    let hub = threshold_hub::start(config(true, addr)).await.unwrap();
    let owner = login(&base, "ann", PASSWORD).await;
    // The agent, started with nothing but its data folder: refused, it renews with the
    // hub it enrolled with, and connects.
    let mut cfg = threshold_agent::CameraConfig::new(cam_dir.path());
    cfg.source = threshold_agent::SourceConfig::Synthetic {
        width: 160,
        height: 120,
    };
    let (stop, rx) = tokio::sync::watch::channel(false);
    let agent = tokio::spawn(threshold_agent::run_camera(cfg, rx));
    until(60, "the camera is live through the external broker", || {
        let (base, owner, id) = (base.clone(), owner.clone(), id.clone());
        async move {
            let (s, d) = call(
                "GET",
                format!("{base}/api/v1/devices/{id}"),
                Some(&owner),
                None,
            )
            .await;
            s == 200 && d["liveness"] == "live"
        }
    })
    .await;

    // Renewed once, provisioned on the broker, stored by the agent privately; the
    // broker refuses the old password.
    let entries = audit_kinds(&hub, "device.credentials_renewed").await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(
        entries[0].2.contains("\"broker_provisioned\":true"),
        "{entries:?}"
    );
    let stored = threshold_agent::identity::load_enrolment(cam_dir.path())
        .unwrap()
        .unwrap();
    assert_ne!(stored.mqtt.password, old_pw);
    assert_eq!(stored.hub_url.as_deref(), Some(base.as_str()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(cam_dir.path().join("enrolment.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(connect(broker.port, &id, &old_pw).await.is_err());
    let log = std::fs::read_to_string(&broker.log).unwrap_or_default();
    assert!(
        !log.contains(&stored.mqtt.password),
        "no password in the broker's log"
    );

    // A client the broker knows already gets its password replaced: a renewal by
    // hand (as a second agent with the key would) takes effect on the broker, the
    // agent's password no more. Cut off, the agent renews again by itself.
    let n = nonce(&base, &key).await;
    let (s, r) = answer(&base, &id, &n, &renewal::sign(&key, &n)).await;
    assert_eq!(s, 200, "{r}");
    let by_hand = r["mqtt"]["password"].as_str().unwrap().to_owned();
    assert!(connect(broker.port, &id, &stored.mqtt.password)
        .await
        .is_err());
    assert_eq!(connect(broker.port, &id, &by_hand).await, Ok(()));
    until(60, "the agent renewed again after being cut off", || {
        let (hub, dir) = (&hub, cam_dir.path().to_owned());
        let (by_hand, before) = (by_hand.clone(), stored.mqtt.password.clone());
        async move {
            let pw = threshold_agent::identity::load_enrolment(&dir)
                .ok()
                .flatten()
                .map(|e| e.mqtt.password);
            audit_kinds(hub, "device.credentials_renewed").await.len() == 3
                && pw.is_some_and(|p| p != by_hand && p != before)
        }
    })
    .await;
    let agent_pw = threshold_agent::identity::load_enrolment(cam_dir.path())
        .unwrap()
        .unwrap()
        .mqtt
        .password;
    assert!(connect(broker.port, &id, &by_hand).await.is_err());
    let log = std::fs::read_to_string(&broker.log).unwrap_or_default();
    assert!(!log.contains(&by_hand) && !log.contains(&agent_pw));

    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), agent).await;
    hub.stop().await;
}
