//! End-to-end: a real hub (HTTP + gateway), a real transport (the hub's own MQTT endpoint, or this
//! machine's Mosquitto), a real database (SQLite, or this machine's PostgreSQL), and a
//! test device that speaks the wire protocol from `threshold-proto` over MQTT 5.
//!
//! Without PostgreSQL or Mosquitto the external half is skipped with a note, unless
//! THRESHOLD_REQUIRE_SERVICES=1, under which it fails.

mod support;
use support::*;

use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use serde_json::{json, Value};
use std::time::Duration;
use threshold_hub::HubConfig;
use threshold_proto::body::{
    Ack, BoltState, DeviceKind, DoorState, Event as DevEvent, FrameSummary, Heartbeat, State,
};
use threshold_proto::{DeviceKey, Kind, SignedMessage, UnverifiedMessage};
use threshold_store::testing;

async fn raw_post(url: String, body: &'static str) -> (u16, Value) {
    tokio::task::spawn_blocking(move || {
        let r = ureq::post(&url)
            .set("Content-Type", "application/json")
            .send_string(body);
        let resp = match r {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{e}"),
        };
        let s = resp.status();
        (
            s,
            serde_json::from_str(&resp.into_string().unwrap_or_default()).unwrap_or(Value::Null),
        )
    })
    .await
    .unwrap()
}

async fn metrics(base: &str) -> String {
    let url = format!("{base}/metrics");
    tokio::task::spawn_blocking(move || ureq::get(&url).call().unwrap().into_string().unwrap())
        .await
        .unwrap()
}

fn counter(metrics: &str, name: &str, label: &str) -> u64 {
    metrics
        .lines()
        .find(|l| l.starts_with(name) && l.contains(label))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v as u64)
        .unwrap_or(0)
}

/// A device speaking the protocol, for tests.
struct TestDevice {
    key: DeviceKey,
    client: AsyncClient,
    prefix: String,
    seq: u64,
    frame_seq: u64,
    downlink: tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
}

impl TestDevice {
    async fn connect(
        key: DeviceKey,
        host: &str,
        port: u16,
        user: &str,
        pass: &str,
        prefix: &str,
    ) -> TestDevice {
        let id = key.device_id().to_hex();
        let mut o = MqttOptions::new(id.clone(), host, port);
        o.set_credentials(user, pass);
        o.set_keep_alive(Duration::from_secs(5));
        let (client, mut el) = AsyncClient::new(o, 100);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let mut ready_tx = Some(ready_tx);
        let c2 = client.clone();
        let down = threshold_proto::topic::downlink(prefix, &key.device_id());
        tokio::spawn(async move {
            // Until the connection is gone (the test drops the device or stops the hub
            // and its broker).
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = c2.subscribe(down.clone(), QoS::AtLeastOnce).await;
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(t) = ready_tx.take() {
                            let _ = t.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let _ = tx.send(p.payload.to_vec());
                    }
                    Ok(_) => {}
                    Err(e) => {
                        eprintln!("test device connection ended: {e}");
                        break;
                    }
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), ready_rx)
            .await
            .expect("device connected")
            .ok();
        TestDevice {
            key,
            client,
            prefix: prefix.to_owned(),
            seq: 0,
            frame_seq: 0,
            downlink: rx,
        }
    }

    fn sign(&mut self, kind: Kind, seq: u64, body: Vec<u8>) -> SignedMessage {
        SignedMessage::sign(&self.key, kind, self.key.device_id(), seq, now_ms(), body)
    }

    async fn publish_raw(&self, topic_device: &threshold_proto::DeviceId, bytes: Vec<u8>) {
        let topic = threshold_proto::topic::uplink(&self.prefix, topic_device);
        self.client
            .publish(topic, QoS::AtLeastOnce, false, bytes)
            .await
            .unwrap();
    }

    async fn send(&mut self, kind: Kind, body: Vec<u8>) -> SignedMessage {
        self.seq += 1;
        let m = self.sign(kind, self.seq, body);
        self.publish_raw(&self.key.device_id(), m.as_bytes().to_vec())
            .await;
        m
    }

    async fn heartbeat(&mut self) -> SignedMessage {
        self.frame_seq += 1;
        let hb = Heartbeat {
            frame: Some(FrameSummary {
                seq: self.frame_seq,
                time_ms: now_ms(),
                sha256: "00".repeat(32),
                thumb: format!("{:02x}", self.frame_seq % 256).repeat(64),
            }),
            ..Default::default()
        };
        self.send(Kind::Heartbeat, serde_json::to_vec(&hb).unwrap())
            .await
    }
}

struct Env {
    base: String,
    admin: String,
}

async fn start_env(cfg: HubConfig) -> (threshold_hub::Hub, Env) {
    let hub = threshold_hub::start(cfg).await.unwrap();
    let base = format!("http://{}", hub.http_addr);
    let hash = threshold_hub::auth::hash_password("admin-password").unwrap();
    if hub
        .state
        .store
        .user_by_name("admin")
        .await
        .unwrap()
        .is_none()
    {
        hub.state
            .store
            .create_user(threshold_store::Role::Admin, "admin", "Admin", &hash, 0)
            .await
            .unwrap();
    }
    let admin = login(&base, "admin", "admin-password").await;
    (hub, Env { base, admin })
}

fn config(dir: &std::path::Path, db: Option<String>, external_mqtt: bool) -> HubConfig {
    HubConfig {
        data_dir: dir.to_owned(),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        database_url: db,
        mqtt_url: external_mqtt.then(|| "mqtt://127.0.0.1:1883".to_owned()),
        embedded_mqtt_addr: "127.0.0.1:0".parse().unwrap(),
        mqtt_topic_prefix: format!("thr-test-{}", threshold_store::new_id()),
        ..Default::default()
    }
}

/// The whole foundation story, on one database and one broker.
async fn story(cfg: HubConfig) {
    let (hub, env) = start_env(cfg.clone()).await;
    let base = env.base.clone();

    // Accounts through the API; an owner and a second owner who must see nothing.
    for (role, name) in [
        ("owner", "olivia"),
        ("owner", "mallory"),
        ("courier", "carl"),
        ("dispatcher", "dora"),
    ] {
        let (s, b) = call(
            "POST",
            format!("{base}/api/v1/admin/users"),
            Some(&env.admin),
            Some(json!({"role": role, "username": name, "password": "a-long-password"})),
        )
        .await;
        assert_eq!(s, 201, "{b}");
    }
    let owner = login(&base, "olivia", "a-long-password").await;
    let mallory = login(&base, "mallory", "a-long-password").await;
    let (s, b) = call(
        "POST",
        format!("{base}/api/v1/auth/login"),
        None,
        Some(json!({"username": "olivia", "password": "wrong-password"})),
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (401, Some("bad_credentials"))
    );
    // Online guessing: after ten failures even the right password is refused for a while.
    let bad = json!({"username": "mallory", "password": "guess-guess"});
    for _ in 0..10 {
        let (s, _) = call(
            "POST",
            format!("{base}/api/v1/auth/login"),
            None,
            Some(bad.clone()),
        )
        .await;
        assert_eq!(s, 401);
    }
    let (s, b) = call(
        "POST",
        format!("{base}/api/v1/auth/login"),
        None,
        Some(json!({"username": "mallory", "password": "a-long-password"})),
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (429, Some("too_many_attempts"))
    );

    let (s, home) = call(
        "POST",
        format!("{base}/api/v1/homes"),
        Some(&owner),
        Some(json!({"name": "Flat 3", "lat": 52.37, "lon": 4.89})),
    )
    .await;
    assert_eq!(s, 201, "{home}");
    let home_id = home["id"].as_str().unwrap().to_owned();

    // Bad input gets JSON errors with stable codes.
    let (s, b) = raw_post(format!("{base}/api/v1/homes"), "{not json").await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (401, Some("unauthenticated"))
    );
    let (s, b) = call(
        "POST",
        format!("{base}/api/v1/homes"),
        Some(&owner),
        Some(json!({"name": 5, "lat": "x"})),
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (400, Some("invalid_request")),
        "{b}"
    );
    let (s, b) = call(
        "POST",
        format!("{base}/api/v1/homes"),
        Some(&owner),
        Some(json!({"name": "x".repeat(5000), "lat": 1.0, "lon": 1.0})),
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (400, Some("invalid_field"))
    );
    let (s, b) = call(
        "POST",
        format!("{base}/api/v1/homes"),
        Some(&owner),
        Some(json!({"name": "y".repeat(70_000), "lat": 1.0, "lon": 1.0})),
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (413, Some("payload_too_large"))
    );
    let (s, b) = call(
        "POST",
        format!("{base}/api/v1/homes"),
        Some(&owner),
        Some(json!({"name": "n", "lat": 1000.0, "lon": 1.0})),
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (400, Some("invalid_position"))
    );

    // Another owner's ids are simply not found.
    let (s, _) = call(
        "GET",
        format!("{base}/api/v1/homes/{home_id}"),
        Some(&mallory),
        None,
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = call(
        "POST",
        format!("{base}/api/v1/homes/{home_id}/pairing-codes"),
        Some(&mallory),
        Some(json!({"kind": "camera", "name": "x"})),
    )
    .await;
    assert_eq!(s, 404);

    // Enrolment with a one-time pairing code.
    let (s, pc) = call(
        "POST",
        format!("{base}/api/v1/homes/{home_id}/pairing-codes"),
        Some(&owner),
        Some(json!({"kind": "camera", "name": "Hall <b>cam</b>"})),
    )
    .await;
    assert_eq!(s, 201, "{pc}");
    let code = pc["code"].as_str().unwrap().to_owned();
    let key = DeviceKey::generate().unwrap();
    let pk = key.public().to_hex();
    let proof = |k: &DeviceKey, code: &str| {
        hex::encode(k.sign(format!("threshold-enrol-v1:{code}:{}", k.public().to_hex()).as_bytes()))
    };
    let (s, b) = call("POST", format!("{base}/api/v1/enrol"), None, Some(json!({"pairing_code": code, "public_key": pk, "kind": "camera", "proof": "00".repeat(64)}))).await;
    assert_eq!((s, b["error"]["code"].as_str()), (400, Some("bad_proof")));
    let (s, b) = call("POST", format!("{base}/api/v1/enrol"), None, Some(json!({"pairing_code": "AAAA-BBBB-CCCC", "public_key": pk, "kind": "camera", "proof": proof(&key, "AAAA-BBBB-CCCC")}))).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (404, Some("invalid_pairing_code"))
    );
    let (s, en) = call("POST", format!("{base}/api/v1/enrol"), None, Some(json!({"pairing_code": code, "public_key": pk, "kind": "camera", "proof": proof(&key, &code)}))).await;
    assert_eq!(s, 201, "{en}");
    assert_eq!(en["device_id"].as_str().unwrap(), key.device_id().to_hex());
    let key2 = DeviceKey::generate().unwrap();
    let (s, _) = call("POST", format!("{base}/api/v1/enrol"), None, Some(json!({"pairing_code": code, "public_key": key2.public().to_hex(), "kind": "camera", "proof": proof(&key2, &code)}))).await;
    assert_eq!(s, 404, "a pairing code works once");
    let (s, b) = call("POST", format!("{base}/api/v1/enrol"), None, Some(json!({"pairing_code": "X", "public_key": pk, "kind": "camera", "proof": proof(&key, "X")}))).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (409, Some("already_enrolled")),
        "{b}"
    );
    // A code asked for the wrong kind is not used up by the mistake.
    let (_, pc2) = call(
        "POST",
        format!("{base}/api/v1/homes/{home_id}/pairing-codes"),
        Some(&owner),
        Some(json!({"kind": "lock", "name": "Door"})),
    )
    .await;
    let code2 = pc2["code"].as_str().unwrap().to_owned();
    let key3 = DeviceKey::generate().unwrap();
    let body3 = |kind: &str| json!({"pairing_code": code2, "public_key": key3.public().to_hex(), "kind": kind, "proof": proof(&key3, &code2), "future_member": 1});
    let (s, b) = call(
        "POST",
        format!("{base}/api/v1/enrol"),
        None,
        Some(body3("camera")),
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (400, Some("kind_mismatch")),
        "{b}"
    );
    let (s, b) = call(
        "POST",
        format!("{base}/api/v1/enrol"),
        None,
        Some(body3("lock")),
    )
    .await;
    assert_eq!(
        s, 201,
        "unknown members are ignored and the code still works: {b}"
    );
    let upper = key2.public().to_hex().to_uppercase();
    let (s, b) = call(
        "POST",
        format!("{base}/api/v1/enrol"),
        None,
        Some(json!({"pairing_code": "X", "public_key": upper, "kind": "camera", "proof": "00"})),
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (400, Some("invalid_public_key"))
    );

    let mq = &en["mqtt"];
    let (host, port) = (
        mq["host"].as_str().unwrap().to_owned(),
        mq["port"].as_u64().unwrap() as u16,
    );
    let (user, pass) = (
        mq["username"].as_str().unwrap().to_owned(),
        mq["password"].as_str().unwrap().to_owned(),
    );
    let hub_key: threshold_proto::PublicKey =
        en["hub_public_key"].as_str().unwrap().parse().unwrap();
    let dev_id = key.device_id();
    let mut dev = TestDevice::connect(
        key.clone(),
        &host,
        port,
        &user,
        &pass,
        &cfg.mqtt_topic_prefix,
    )
    .await;

    // Not live before it proves itself; live after fresh heartbeats.
    let dev_url = format!("{base}/api/v1/devices/{dev_id}");
    let (_, d) = call("GET", dev_url.clone(), Some(&owner), None).await;
    assert_eq!(d["liveness"], "offline");
    assert_eq!(
        d["name"], "Hall <b>cam</b>",
        "text is stored as given; escaping is the viewer's job"
    );
    let first = dev.heartbeat().await;
    until_on(&hub.state, 10, "camera live", || {
        let (u, o) = (dev_url.clone(), owner.clone());
        async move { call("GET", u, Some(&o), None).await.1["liveness"] == "live" }
    })
    .await;
    let (s, _) = call("GET", dev_url.clone(), Some(&mallory), None).await;
    assert_eq!(s, 404, "other owners cannot see the device");
    // The liveness pass counts it in the device gauges.
    until(10, "camera counted live", || {
        let b = base.clone();
        async move {
            let m = metrics(&b).await;
            counter(&m, "threshold_devices", "kind=\"camera\",state=\"live\"") == 1
                && counter(&m, "threshold_devices", "kind=\"camera\",state=\"offline\"") == 0
        }
    })
    .await;

    // Hostile messages: each rejected and counted by reason.
    let before = metrics(&base).await;
    // 1. a replay of an old heartbeat, outside the window
    for _ in 0..70 {
        dev.heartbeat().await;
    }
    dev.publish_raw(&dev_id, first.as_bytes().to_vec()).await;
    // 2. bad signature (body altered after signing)
    let mut forged = dev
        .sign(Kind::Heartbeat, 10_000, b"{}".to_vec())
        .into_bytes();
    let n = forged.len();
    forged[n - 10] ^= 1;
    dev.publish_raw(&dev_id, forged).await;
    // 3. published on another device's topic
    let other = DeviceKey::generate().unwrap();
    let m = dev.sign(Kind::Heartbeat, 10_001, b"{}".to_vec());
    dev.publish_raw(&other.device_id(), m.into_bytes()).await;
    // 4. unknown device
    let um = SignedMessage::sign(
        &other,
        Kind::Heartbeat,
        other.device_id(),
        1,
        now_ms(),
        b"{}".to_vec(),
    );
    dev.publish_raw(&other.device_id(), um.into_bytes()).await;
    // 5. garbage, and a downlink kind from a device
    dev.publish_raw(&dev_id, b"not a message at all".to_vec())
        .await;
    let wrong = dev.sign(Kind::Unlock, 10_002, b"{}".to_vec());
    dev.publish_raw(&dev_id, wrong.into_bytes()).await;
    // 6. device clock far in the future
    dev.seq += 1;
    let skew = SignedMessage::sign(
        &key,
        Kind::Heartbeat,
        dev_id,
        dev.seq,
        now_ms() + 3_600_000,
        b"{}".to_vec(),
    );
    dev.publish_raw(&dev_id, skew.into_bytes()).await;
    let b0 = before.clone();
    // On the hub's own endpoint a publish on another device's topic never reaches
    // verification: the endpoint refuses it (§2.2). Through an external broker the
    // hub's verification catches it.
    let own_endpoint = cfg.mqtt_url.is_none();
    until(10, "rejections counted", || {
        let (base, b0) = (base.clone(), b0.clone());
        async move {
            let m = metrics(&base).await;
            let mut expected = vec![
                ("threshold_messages_rejected_total", "too_old", 1),
                ("threshold_messages_rejected_total", "bad_signature", 1),
                ("threshold_messages_rejected_total", "truncated", 1),
                ("threshold_messages_rejected_total", "wrong_direction", 1),
                ("threshold_messages_rejected_total", "clock_skew", 1),
            ];
            if own_endpoint {
                expected.push(("threshold_broker_refused_total", "publish_not_allowed", 2));
            } else {
                expected.push(("threshold_messages_rejected_total", "topic_mismatch", 1));
                expected.push(("threshold_messages_rejected_total", "unknown_device", 1));
            }
            let missing: Vec<&str> = expected
                .into_iter()
                .filter(|(name, r, n)| {
                    let l = format!("reason=\"{r}\"");
                    counter(&m, name, &l) < counter(&b0, name, &l) + n
                })
                .map(|(_, r, _)| r)
                .collect();
            if !missing.is_empty() {
                eprintln!("not yet counted: {missing:?}");
            }
            missing.is_empty()
        }
    })
    .await;

    // Durable events: stored once, acknowledged (with a hub signature), gaps recorded.
    let ev = |t: &str| {
        serde_json::to_vec(&DevEvent {
            event_type: t.into(),
            detail: json!({}),
        })
        .unwrap()
    };
    let e1 = SignedMessage::sign(&key, Kind::Event, dev_id, 1, now_ms(), ev("door_opened"));
    let e3 = SignedMessage::sign(&key, Kind::Event, dev_id, 3, now_ms(), ev("door_closed"));
    let e4 = SignedMessage::sign(&key, Kind::Event, dev_id, 4, now_ms(), ev("Not A Type!"));
    dev.publish_raw(&dev_id, e1.as_bytes().to_vec()).await;
    dev.publish_raw(&dev_id, e1.as_bytes().to_vec()).await;
    dev.publish_raw(&dev_id, e3.as_bytes().to_vec()).await;
    dev.publish_raw(&dev_id, e4.as_bytes().to_vec()).await;
    let mut acked = std::collections::BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while acked.len() < 3 && tokio::time::Instant::now() < deadline {
        if let Ok(Some(raw)) =
            tokio::time::timeout(Duration::from_secs(1), dev.downlink.recv()).await
        {
            let m = UnverifiedMessage::decode(&raw)
                .unwrap()
                .verify(&hub_key)
                .expect("downlink signed by the hub");
            assert_eq!(m.device, dev_id);
            if m.kind == Kind::Ack {
                let a: Ack = m.json().unwrap();
                for (x, y) in a.events {
                    acked.extend(x..=y);
                }
            }
        }
    }
    assert_eq!(
        acked.into_iter().collect::<Vec<_>>(),
        vec![1, 3, 4],
        "a malformed record is kept and acknowledged too"
    );
    let tl_url = format!("{base}/api/v1/homes/{home_id}/timeline");
    until_on(&hub.state, 10, "gap on the timeline", || {
        let (u, o) = (tl_url.clone(), owner.clone());
        async move {
            call("GET", u, Some(&o), None)
                .await
                .1
                .as_array()
                .is_some_and(|a| a.iter().any(|t| t["kind"] == "sequence_gap"))
        }
    })
    .await;
    let (_, tl) = call("GET", tl_url.clone(), Some(&mallory), None).await;
    assert_eq!(
        tl.as_array().map(|a| a.len()),
        Some(0),
        "other owners see nothing: {tl}"
    );

    // Silence: live turns stale, then offline.
    until_on(&hub.state, 10, "camera offline after silence", || {
        let (u, o) = (dev_url.clone(), owner.clone());
        async move { call("GET", u, Some(&o), None).await.1["liveness"] == "offline" }
    })
    .await;

    // Revocation takes effect at once.
    let (s, _) = call("DELETE", dev_url.clone(), Some(&mallory), None).await;
    assert_eq!(s, 404);
    let (s, _) = call("DELETE", dev_url.clone(), Some(&owner), None).await;
    assert_eq!(s, 204);
    let m0 = metrics(&base).await;
    if own_endpoint {
        // The hub's endpoint cuts the revoked device off at once and refuses it back.
        let closed = tokio::time::timeout(Duration::from_secs(10), async {
            while dev.downlink.recv().await.is_some() {}
        })
        .await;
        assert!(closed.is_ok(), "the revoked device is still connected");
        let _again = TestDevice::connect(
            key.clone(),
            &host,
            port,
            &user,
            &pass,
            &cfg.mqtt_topic_prefix,
        )
        .await;
        let l = "reason=\"revoked\"";
        assert_eq!(
            counter(&metrics(&base).await, "threshold_broker_refused_total", l),
            counter(&m0, "threshold_broker_refused_total", l) + 1
        );
    } else {
        // Through an external broker the message arrives, and verification refuses it.
        dev.heartbeat().await;
        until(10, "revoked device refused", || {
            let (base, m0) = (base.clone(), m0.clone());
            async move {
                let l = "reason=\"revoked_device\"";
                counter(
                    &metrics(&base).await,
                    "threshold_messages_rejected_total",
                    l,
                ) > counter(&m0, "threshold_messages_rejected_total", l)
            }
        })
        .await;
    }

    // OpenAPI, health, audit.
    let (s, doc) = call("GET", format!("{base}/api/v1/openapi.json"), None, None).await;
    assert_eq!(s, 200);
    assert!(doc["paths"]["/api/v1/enrol"].is_object());
    let (s, h) = call("GET", format!("{base}/healthz"), None, None).await;
    assert_eq!((s, h["status"].as_str()), (200, Some("ok")));
    let (s, v) = call(
        "GET",
        format!("{base}/api/v1/audit/verify"),
        Some(&env.admin),
        None,
    )
    .await;
    assert_eq!((s, v["ok"].as_bool()), (200, Some(true)), "{v}");
    assert!(v["entries"].as_u64().unwrap() >= 8);
    let (s, _) = call(
        "GET",
        format!("{base}/api/v1/audit/verify"),
        Some(&owner),
        None,
    )
    .await;
    assert_eq!(s, 403);
    hub.stop().await;
}

/// After a restart no device is live until it proves itself, and replays of what it
/// sent before are refused.
async fn restart_story(cfg: HubConfig) {
    let (hub, env) = start_env(cfg.clone()).await;
    let base = env.base.clone();
    let (_, _) = call(
        "POST",
        format!("{base}/api/v1/admin/users"),
        Some(&env.admin),
        Some(json!({"role": "owner", "username": "rita", "password": "a-long-password"})),
    )
    .await;
    let owner = login(&base, "rita", "a-long-password").await;
    let (_, home) = call(
        "POST",
        format!("{base}/api/v1/homes"),
        Some(&owner),
        Some(json!({"name": "H", "lat": 1.0, "lon": 1.0})),
    )
    .await;
    let home_id = home["id"].as_str().unwrap().to_owned();
    let (_, pc) = call(
        "POST",
        format!("{base}/api/v1/homes/{home_id}/pairing-codes"),
        Some(&owner),
        Some(json!({"kind": "lock", "name": "Door"})),
    )
    .await;
    let code = pc["code"].as_str().unwrap();
    let key = DeviceKey::generate().unwrap();
    let proof = hex::encode(
        key.sign(format!("threshold-enrol-v1:{code}:{}", key.public().to_hex()).as_bytes()),
    );
    let (s, en) = call("POST", format!("{base}/api/v1/enrol"), None, Some(json!({"pairing_code": code, "public_key": key.public().to_hex(), "kind": "lock", "proof": proof}))).await;
    assert_eq!(s, 201);
    let mq = en["mqtt"].clone();
    let mut dev = TestDevice::connect(
        key.clone(),
        mq["host"].as_str().unwrap(),
        mq["port"].as_u64().unwrap() as u16,
        mq["username"].as_str().unwrap(),
        mq["password"].as_str().unwrap(),
        &cfg.mqtt_topic_prefix,
    )
    .await;
    let st = State {
        bolt: Some(BoltState::Locked),
        door: Some(DoorState::Closed),
        battery_pct: Some(90),
        ..Default::default()
    };
    let dev_url = format!("{base}/api/v1/devices/{}", key.device_id());
    let mut sent = Vec::new();
    for _ in 0..5 {
        sent.push(
            dev.send(Kind::State, serde_json::to_vec(&st).unwrap())
                .await,
        );
    }
    until_on(&hub.state, 10, "lock live and locked", || {
        let (u, o) = (dev_url.clone(), owner.clone());
        async move {
            let d = call("GET", u, Some(&o), None).await.1;
            d["liveness"] == "live" && d["state"]["bolt"] == "locked"
        }
    })
    .await;
    // Let the high-water mark reach the database, then restart the hub.
    until(10, "hwm persisted", || {
        let s = hub.state.store.clone();
        let id = key.device_id().to_hex();
        async move { s.device_any(&id).await.unwrap().transport_hwm == 5 }
    })
    .await;
    hub.stop().await;
    drop(dev);
    let mut cfg2 = cfg.clone();
    cfg2.embedded_mqtt_addr = "127.0.0.1:0".parse().unwrap();
    let (hub, env) = start_env(cfg2.clone()).await;
    let base = env.base.clone();
    let owner = login(&base, "rita", "a-long-password").await;
    let dev_url = format!("{base}/api/v1/devices/{}", key.device_id());
    let d = call("GET", dev_url.clone(), Some(&owner), None).await.1;
    assert_eq!(
        d["liveness"], "offline",
        "nobody is live after a restart: {d}"
    );
    assert_eq!(
        d["state"]["bolt"], "unknown",
        "a stale 'locked' is shown as unknown: {d}"
    );
    let port = hub.mqtt_port;
    let mut dev = TestDevice::connect(
        key.clone(),
        "127.0.0.1",
        port,
        mq["username"].as_str().unwrap(),
        mq["password"].as_str().unwrap(),
        &cfg.mqtt_topic_prefix,
    )
    .await;
    let m0 = metrics(&base).await;
    dev.publish_raw(&key.device_id(), sent[4].as_bytes().to_vec())
        .await;
    dev.publish_raw(&key.device_id(), sent[0].as_bytes().to_vec())
        .await;
    until(10, "replays after restart ignored", || {
        let (base, m0) = (base.clone(), m0.clone());
        async move {
            let m = metrics(&base).await;
            let refused = |m: &str| {
                counter(m, "threshold_messages_duplicate_total", "kind=\"state\"")
                    + counter(m, "threshold_messages_rejected_total", "reason=\"replay\"")
                    + counter(
                        m,
                        "threshold_messages_rejected_total",
                        "reason=\"before_restart\"",
                    )
            };
            refused(&m) >= refused(&m0) + 2
        }
    })
    .await;
    let d = call("GET", dev_url.clone(), Some(&owner), None).await.1;
    assert_eq!(
        d["liveness"], "offline",
        "replayed messages do not make a device live: {d}"
    );
    dev.seq = 5;
    dev.send(Kind::State, serde_json::to_vec(&st).unwrap())
        .await;
    until_on(&hub.state, 10, "live again after a fresh message", || {
        let (u, o) = (dev_url.clone(), owner.clone());
        async move { call("GET", u, Some(&o), None).await.1["liveness"] == "live" }
    })
    .await;
    let _ = DeviceKind::Lock;
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn foundation_on_sqlite_with_embedded_broker() {
    let dir = testing::TempDir::new("hub").unwrap();
    story(config(dir.path(), None, false)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn foundation_on_postgres_with_mosquitto() {
    if !mosquitto_up() {
        return;
    }
    let Some(url) = testing::postgres_url().await.unwrap() else {
        return;
    };
    let dir = testing::TempDir::new("hub").unwrap();
    story(config(dir.path(), Some(url), true)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restart_requires_fresh_proof_sqlite_embedded() {
    let dir = testing::TempDir::new("hub").unwrap();
    restart_story(config(dir.path(), None, false)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restart_requires_fresh_proof_postgres_mosquitto() {
    if !mosquitto_up() {
        return;
    }
    let Some(url) = testing::postgres_url().await.unwrap() else {
        return;
    };
    let dir = testing::TempDir::new("hub").unwrap();
    restart_story(config(dir.path(), Some(url), true)).await;
}

/// A hub that stops applies the liveness changes it decided before the stop (each
/// one's timeline row is in the database afterwards), and closes its store only then:
/// it closed the store under its effects tasks, which logged thousands of "closed
/// pool" errors at the end of every 10 000-camera benchmark and lost those rows.
#[tokio::test]
async fn a_stopping_hub_applies_the_changes_it_decided_before_closing_its_store() {
    use threshold_hub::gateway::transition::{Change, Transition};
    let dir = tempfile::tempdir().unwrap();
    let cfg = local_config(dir.path());
    let hub = threshold_hub::start(cfg.clone()).await.unwrap();
    let base = hub.base_url();
    let admin = admin(&hub).await;
    let owner = accounts(&base, &admin, &[("owner", "olive")])
        .await
        .remove(0);
    let home = home(&base, &owner, "Home", 52.37, 4.89).await;
    let owner_id = hub.state.store.home_any(&home).await.unwrap().owner_id;
    let camera = threshold_proto::DeviceId([7; 16]);
    let effects = hub.state.effects.get().cloned().expect("effects tasks run");
    let since = hub.state.clock.now_ms();
    const CHANGES: usize = 5_000;
    for i in 0..CHANGES {
        effects
            .send(Transition {
                device: camera,
                home_id: home.clone(),
                owner_id: owner_id.clone(),
                kind: threshold_proto::body::DeviceKind::Camera,
                name: "Hall camera".into(),
                change: Change::Frozen(i % 2 == 0),
                at_ms: since + i as i64,
                last_fresh_ms: None,
            })
            .unwrap();
    }
    hub.stop().await;

    let store = threshold_store::Store::connect(&cfg.database_url())
        .await
        .unwrap();
    let rows = store
        .timeline(&owner_id, &home, since, 2 * CHANGES as i64)
        .await
        .unwrap();
    let hex = camera.to_hex();
    let applied = rows
        .iter()
        .filter(|r| r.device_id.as_deref() == Some(hex.as_str()))
        .count();
    assert_eq!(applied, CHANGES, "every change decided before the stop");
}
