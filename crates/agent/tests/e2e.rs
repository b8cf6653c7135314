//! End-to-end over the real Mosquitto, without the hub: a test "hub" subscribes to the
//! uplink topic, verifies every envelope with the device key, and answers with signed
//! `ack`/`stream`/`unlock` downlinks, exactly as the contract says the hub does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, Incoming, MqttOptions};
use std::path::Path;
use std::time::{Duration, Instant};
use threshold_agent::identity::{load_or_create_key, save_enrolment, Enrolment, MqttSettings};
use threshold_agent::{
    run_camera, run_lock, CameraConfig, LinkControl, LockConfig, LockDriverConfig, SimulatedHome,
    SourceConfig,
};
use threshold_proto::body::{BoltState, Event as DevEvent, FrameHeader, Heartbeat, State};
use threshold_proto::{
    topic, DeviceId, DeviceKey, Kind, PublicKey, SignedMessage, UnverifiedMessage,
};
use tokio::sync::{mpsc, watch};

fn mosquitto(test: &str) -> bool {
    let ok = std::net::TcpStream::connect_timeout(
        &"127.0.0.1:1883".parse().unwrap(),
        Duration::from_millis(500),
    )
    .is_ok();
    if !ok {
        if std::env::var("THRESHOLD_REQUIRE_SERVICES").as_deref() == Ok("1") {
            panic!("{test}: Mosquitto required but unreachable on 127.0.0.1:1883");
        }
        eprintln!("{test}: SKIPPED (no Mosquitto on 127.0.0.1:1883)");
    }
    ok
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn unique(name: &str) -> String {
    let mut b = [0u8; 6];
    getrandom::getrandom(&mut b).unwrap();
    format!("e2e-{name}-{}", hex::encode(b))
}

/// Enrol a device "offline": write the key and an enrolment pointing at Mosquitto.
/// The camera that watches the test lock's door, and one that does not.
fn front_camera() -> DeviceKey {
    DeviceKey::from_seed(&[0x5c; 32])
}
fn garden_camera() -> DeviceKey {
    DeviceKey::from_seed(&[0x5d; 32])
}

/// A camera's signed heartbeat announcing a frame captured at `captured`, as the
/// statement an unlock token carries.
fn statement(cam: &DeviceKey, captured: i64) -> String {
    let hb = serde_json::json!({"frame": {"seq": 7, "time_ms": captured, "sha256": "ab".repeat(32), "thumb": "00".repeat(64)}});
    let m = SignedMessage::sign(
        cam,
        Kind::Heartbeat,
        cam.device_id(),
        3,
        captured + 10,
        hb.to_string().into_bytes(),
    );
    threshold_proto::statement::encode_statement(m.as_bytes())
}

/// The same statement with one byte of its body changed after the camera signed it.
fn altered(statement: &str) -> String {
    use base64::Engine;
    let mut b = base64::engine::general_purpose::STANDARD
        .decode(statement)
        .unwrap();
    let n = b.len();
    b[n - 70] ^= 1; // inside the thumbnail hex: still a heartbeat, no longer signed
    threshold_proto::statement::encode_statement(&b)
}

fn enrol(dir: &Path, hub: &DeviceKey, prefix: &str) -> (DeviceId, PublicKey) {
    let key = load_or_create_key(dir).unwrap();
    let id = key.device_id();
    save_enrolment(
        dir,
        &Enrolment {
            device_id: id.to_hex(),
            home_id: "home-1".into(),
            hub_public_key: hub.public().to_hex(),
            mqtt: MqttSettings {
                host: "127.0.0.1".into(),
                port: 1883,
                tls_port: None,
                username: id.to_hex(),
                password: "unused-by-anonymous-mosquitto".into(),
                topic_prefix: prefix.into(),
            },
            heartbeat_ms: 100,
            door_id: Some("front".into()),
            door_cameras: vec![front_camera().public().to_hex()],
            hub_url: None,
        },
    )
    .unwrap();
    (id, key.public())
}

struct TestHub {
    client: AsyncClient,
    rx: mpsc::UnboundedReceiver<SignedMessage>,
    key: DeviceKey,
    device: DeviceId,
    prefix: String,
    seq: u64,
    /// Event seqs already seen: re-sent records are de-duplicated, as the hub does.
    seen_events: std::collections::HashSet<u64>,
    /// The type of every event seen, by seq.
    event_types: std::collections::BTreeMap<u64, String>,
}

impl TestHub {
    async fn start(prefix: &str, device: DeviceId, device_key: PublicKey) -> Self {
        let mut opts = MqttOptions::new(unique("hub"), "127.0.0.1", 1883);
        opts.set_keep_alive(Duration::from_secs(5));
        opts.set_max_packet_size(Some(8 << 20));
        let (client, mut el) = AsyncClient::new(opts, 256);
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, mut ready_rx) = mpsc::channel(1);
        let filter = topic::uplink_filter(prefix);
        let c = client.clone();
        let prefix2 = prefix.to_string();
        tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                        c.subscribe(filter.clone(), QoS::AtLeastOnce).await.unwrap();
                    }
                    Ok(Event::Incoming(Incoming::SubAck(_))) => {
                        let _ = ready_tx.try_send(());
                    }
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        let t = String::from_utf8_lossy(&p.topic).to_string();
                        assert_eq!(
                            topic::parse_uplink(&prefix2, &t),
                            Some(device),
                            "uplink topic"
                        );
                        let m = UnverifiedMessage::decode(&p.payload)
                            .expect("decodes")
                            .verify(&device_key)
                            .expect("device signature verifies");
                        assert_eq!(m.device, device);
                        if tx.send(m).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => panic!("test hub lost broker: {e}"),
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(5), ready_rx.recv())
            .await
            .unwrap();
        TestHub {
            client,
            rx,
            key: DeviceKey::from_seed(&[0x4b; 32]),
            device,
            prefix: prefix.into(),
            seq: 0,
            seen_events: Default::default(),
            event_types: Default::default(),
        }
    }

    async fn send(&mut self, kind: Kind, to: DeviceId, body: serde_json::Value) {
        self.send_signed(&self.key.clone(), kind, to, body).await;
    }

    async fn send_signed(
        &mut self,
        key: &DeviceKey,
        kind: Kind,
        to: DeviceId,
        body: serde_json::Value,
    ) {
        self.seq += 1;
        let m = SignedMessage::sign(
            key,
            kind,
            to,
            self.seq,
            now_ms(),
            serde_json::to_vec(&body).unwrap(),
        );
        self.client
            .publish(
                topic::downlink(&self.prefix, &self.device),
                QoS::AtLeastOnce,
                false,
                m.into_bytes(),
            )
            .await
            .unwrap();
    }

    async fn next(&mut self) -> SignedMessage {
        tokio::time::timeout(Duration::from_secs(10), self.rx.recv())
            .await
            .expect("uplink within 10 s")
            .expect("hub alive")
    }

    /// Next message of `kind`, acking every event/frame seen on the way.
    async fn next_of(&mut self, kind: Kind) -> SignedMessage {
        loop {
            let m = self.next().await;
            self.ack_if_record(&m).await;
            if m.kind == kind {
                return m;
            }
            if m.kind == Kind::Event {
                // Passed over, but part of the log the test checks for gaps.
                self.seen_events.insert(m.seq);
                self.note_type(&m);
            }
        }
    }

    async fn ack_if_record(&mut self, m: &SignedMessage) {
        let body = match m.kind {
            Kind::Event => serde_json::json!({ "events": [[m.seq, m.seq]] }),
            Kind::Frame => serde_json::json!({ "frames": [[m.seq, m.seq]] }),
            _ => return,
        };
        self.send(Kind::Ack, self.device, body).await;
    }

    fn note_type(&mut self, m: &SignedMessage) {
        let e: DevEvent = m.json().unwrap();
        self.event_types.insert(m.seq, e.event_type);
    }

    /// How many events of type `t` the test has seen.
    fn count(&self, t: &str) -> usize {
        self.event_types.values().filter(|v| *v == t).count()
    }

    /// Wait for an event of type `t` (events of other types are collected and returned).
    async fn event(&mut self, t: &str) -> (DevEvent, Vec<u64>) {
        let mut seqs = Vec::new();
        loop {
            let m = self.next_of(Kind::Event).await;
            if !self.seen_events.insert(m.seq) {
                continue;
            }
            seqs.push(m.seq);
            self.note_type(&m);
            let e: DevEvent = m.json().unwrap();
            if e.event_type == t {
                return (e, seqs);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_heartbeats_streams_and_recovers_backlog_after_jamming() {
    if !mosquitto("camera e2e") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique("cam");
    let hub_key = DeviceKey::from_seed(&[0x4b; 32]);
    let (id, dev_pub) = enrol(dir.path(), &hub_key, &prefix);
    let mut hub = TestHub::start(&prefix, id, dev_pub).await;
    let mut cfg = CameraConfig::new(dir.path());
    cfg.source = SourceConfig::Synthetic {
        width: 160,
        height: 120,
    };
    cfg.capture_fps = 10;
    let control = LinkControl::new();
    cfg.common.link_control = control.clone();
    let (stop_tx, stop_rx) = watch::channel(false);
    let agent = tokio::spawn(run_camera(cfg, stop_rx));

    // Hello, then heartbeats several times a second with increasing frame seq; no
    // frames while nobody asked for them.
    hub.next_of(Kind::Hello).await;
    let t0 = Instant::now();
    let mut hb_seqs = Vec::new();
    while t0.elapsed() < Duration::from_millis(1000) {
        let m = hub.next().await;
        assert_ne!(m.kind, Kind::Frame, "frames uploaded although nobody asked");
        if m.kind == Kind::Heartbeat {
            let hb: Heartbeat = m.json().unwrap();
            if let Some(f) = hb.frame {
                assert!((now_ms() - f.time_ms).abs() < 2000);
                hb_seqs.push(f.seq);
            }
        }
    }
    assert!(hb_seqs.len() >= 5, "heartbeats in 1 s: {}", hb_seqs.len());
    assert!(
        hb_seqs.windows(2).all(|w| w[1] >= w[0]) && hb_seqs.last() > hb_seqs.first(),
        "{hb_seqs:?}"
    );

    // Stream request: frames arrive live, verified, with a decodable header.
    hub.send(
        Kind::Stream,
        id,
        serde_json::json!({ "until_ms": now_ms() + 60_000, "fps": 10 }),
    )
    .await;
    let mut last_frame = 0;
    for _ in 0..5 {
        let f = hub.next_of(Kind::Frame).await;
        let (h, jpeg): (FrameHeader, &[u8]) =
            threshold_proto::body::decode_frame_body(&f.body).unwrap();
        assert_eq!((h.width, h.height), (160, 120));
        assert!(jpeg.starts_with(&[0xFF, 0xD8]));
        assert!(f.seq > last_frame);
        last_frame = f.seq;
    }

    // Jam the link for 2 s while the camera keeps capturing.
    control.set_blocked(true);
    // Drain what was in flight; remember the newest frame the hub got before the cut.
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(300), hub.rx.recv()).await {
        if m.kind == Kind::Frame {
            last_frame = last_frame.max(m.seq);
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await; // the outage itself
    control.set_blocked(false);

    // After reconnect: hello, live heartbeats promptly, and every frame captured during
    // the outage, without gaps.
    let hello_at = {
        hub.next_of(Kind::Hello).await;
        Instant::now()
    };
    let mut got = std::collections::BTreeSet::new();
    let mut first_hb: Option<Duration> = None;
    let mut newest_announced = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let m = hub.next().await;
        hub.ack_if_record(&m).await;
        match m.kind {
            Kind::Frame => {
                got.insert(m.seq);
            }
            Kind::Heartbeat => {
                first_hb.get_or_insert(hello_at.elapsed());
                let hb: Heartbeat = m.json().unwrap();
                newest_announced = hb.frame.map(|f| f.seq).unwrap_or(0);
            }
            _ => {}
        }
        let outage: Vec<u64> = (last_frame + 1..newest_announced).collect();
        if !outage.is_empty() && outage.iter().all(|s| got.contains(s)) && outage.len() >= 15 {
            break;
        }
    }
    let missing: Vec<u64> = (last_frame + 1..newest_announced)
        .filter(|s| !got.contains(s))
        .collect();
    assert!(missing.is_empty(), "frames lost in the outage: {missing:?} (last before cut {last_frame}, newest {newest_announced})");
    assert!(
        newest_announced - last_frame >= 15,
        "the camera kept capturing during the outage"
    );
    let first_hb = first_hb.expect("heartbeats resumed");
    assert!(
        first_hb < Duration::from_millis(500),
        "first heartbeat {first_hb:?} after hello: live must not wait for the backlog"
    );

    // Acks drain the outbox: a heartbeat eventually reports (almost) nothing pending.
    let mut drained = false;
    for _ in 0..60 {
        let m = hub.next().await;
        hub.ack_if_record(&m).await;
        if m.kind == Kind::Heartbeat {
            let hb: Heartbeat = m.json().unwrap();
            if hb.outbox.records <= 3 {
                drained = true;
                break;
            }
        }
    }
    assert!(drained, "acks remove records from the outbox");
    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), agent)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

fn nonce() -> String {
    let mut b = [0u8; 16];
    getrandom::getrandom(&mut b).unwrap();
    hex::encode(b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_opens_only_for_valid_tokens_relocks_locally_and_remembers_nonces() {
    if !mosquitto("lock e2e") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique("lock");
    let hub_key = DeviceKey::from_seed(&[0x4b; 32]);
    let (id, dev_pub) = enrol(dir.path(), &hub_key, &prefix);
    let mut hub = TestHub::start(&prefix, id, dev_pub).await;
    let home = SimulatedHome::new();
    home.set_motor_delay(Duration::from_millis(50));
    let start = |home: &SimulatedHome| {
        let cfg = LockConfig::new(dir.path(), LockDriverConfig::Simulator(home.clone()));
        let (tx, rx) = watch::channel(false);
        (tx, tokio::spawn(run_lock(cfg, rx)))
    };
    let (stop, agent) = start(&home);
    hub.next_of(Kind::Hello).await;
    loop {
        let s: State = hub.next_of(Kind::State).await.json().unwrap();
        if s.bolt == Some(BoltState::Locked) {
            break;
        }
    }

    // The lock knows its door's camera from pairing (its `cameras_changed` record may
    // have gone by while the test waited for the hello).
    // The door's camera is dark, foreign or forged: the lock refuses, whatever the hub
    // signed, and the refusals do not use up the nonce.
    let n1 = nonce();
    for (camera, reason) in [
        (None, "camera_statement_missing"),
        (
            Some(statement(&front_camera(), now_ms() - 10_000)),
            "camera_statement_stale",
        ),
        (
            Some(statement(&garden_camera(), now_ms())),
            "camera_not_bound",
        ),
        (
            Some(altered(&statement(&front_camera(), now_ms()))),
            "camera_statement_bad_signature",
        ),
    ] {
        let t = serde_json::json!({ "grant": "delivery:d0", "nonce": n1, "expires_at_ms": now_ms() + 30_000, "camera": camera });
        hub.send(Kind::Unlock, id, t).await;
        let (r, _) = hub.event("token_refused").await;
        assert_eq!(r.detail["reason"], reason);
        assert_eq!(r.detail["nonce"], n1.as_str());
    }
    assert_eq!(home.bolt(), BoltState::Locked);

    // A valid token, with the door camera's fresh statement, retracts the bolt (with
    // the nonce of the refused ones: a refusal never records its nonce).
    let token = serde_json::json!({ "grant": "delivery:d1", "nonce": n1, "expires_at_ms": now_ms() + 30_000,
        "camera": statement(&front_camera(), now_ms() - 100) });
    hub.send(Kind::Unlock, id, token.clone()).await;
    let (accepted, _) = hub.event("token_accepted").await;
    assert_eq!(accepted.detail["nonce"], n1.as_str());
    assert_eq!(
        accepted.detail["camera"],
        front_camera().device_id().to_hex()
    );
    assert!(
        home.wait_bolt(BoltState::Unlocked, Duration::from_secs(5))
            .await
    );

    // Courier opens and closes the door: the lock relocks by itself.
    assert!(home.open_door());
    home.close_door();
    let (relocked, _) = hub.event("relocked").await;
    assert_eq!(relocked.detail["rule"], "door_closed");
    assert!(
        home.wait_bolt(BoltState::Locked, Duration::from_secs(5))
            .await
    );

    // Replayed, foreign-signed, misaddressed and expired tokens are refused and reported.
    hub.send(Kind::Unlock, id, token.clone()).await;
    let (r, _) = hub.event("token_refused").await;
    assert_eq!(r.detail["reason"], "nonce_reused");
    let forger = DeviceKey::from_seed(&[0x66; 32]);
    let t2 = serde_json::json!({ "grant": "delivery:d1", "nonce": nonce(), "expires_at_ms": now_ms() + 30_000,
        "camera": statement(&front_camera(), now_ms()) });
    hub.send_signed(&forger, Kind::Unlock, id, t2.clone()).await;
    let (r, _) = hub.event("token_refused").await;
    assert_eq!(r.detail["reason"], "bad_signature");
    let other_lock = DeviceKey::from_seed(&[0x77; 32]).device_id();
    hub.send(Kind::Unlock, other_lock, t2).await;
    let (r, _) = hub.event("token_refused").await;
    assert_eq!(r.detail["reason"], "wrong_lock");
    let t3 = serde_json::json!({ "grant": "delivery:d1", "nonce": nonce(), "expires_at_ms": now_ms() - 10_000,
        "camera": statement(&front_camera(), now_ms()) });
    hub.send(Kind::Unlock, id, t3).await;
    let (r, _) = hub.event("token_refused").await;
    assert_eq!(r.detail["reason"], "expired");
    assert_eq!(home.bolt(), BoltState::Locked);

    // The owner binds the garden camera instead: the hub's signed `cameras` message.
    hub.send(
        Kind::Cameras,
        id,
        serde_json::json!({"door_id": "front", "cameras": [garden_camera().public().to_hex()]}),
    )
    .await;
    let (changed, _) = hub.event("cameras_changed").await;
    assert_eq!(
        changed.detail["cameras"],
        serde_json::json!([garden_camera().device_id().to_hex()])
    );

    // Restart the agent: the used nonce is still refused, and the new binding holds.
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), agent)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let (stop, agent) = start(&home);
    hub.next_of(Kind::Hello).await;
    // The used nonce, with a statement the lock would now accept otherwise.
    let reused = serde_json::json!({ "grant": "delivery:d1", "nonce": n1, "expires_at_ms": now_ms() + 30_000,
        "camera": statement(&garden_camera(), now_ms()) });
    let _ = token;
    hub.send(Kind::Unlock, id, reused).await;
    let (r, _) = hub.event("token_refused").await;
    assert_eq!(r.detail["reason"], "nonce_reused");
    assert_eq!(home.bolt(), BoltState::Locked);
    let front_again = serde_json::json!({ "grant": "delivery:d2", "nonce": nonce(), "expires_at_ms": now_ms() + 30_000,
        "camera": statement(&front_camera(), now_ms()) });
    hub.send(Kind::Unlock, id, front_again).await;
    let (r, _) = hub.event("token_refused").await;
    assert_eq!(
        r.detail["reason"], "camera_not_bound",
        "the stored binding survived the restart"
    );
    let garden = serde_json::json!({ "grant": "delivery:d2", "nonce": nonce(), "expires_at_ms": now_ms() + 30_000,
        "camera": statement(&garden_camera(), now_ms()) });
    hub.send(Kind::Unlock, id, garden).await;
    let (accepted, _) = hub.event("token_accepted").await;
    assert_eq!(
        accepted.detail["camera"],
        garden_camera().device_id().to_hex()
    );
    // The binding was logged at pairing and when the owner changed it, not again when
    // the agent restarted with its stored set.
    assert_eq!(hub.count("cameras_changed"), 2, "{:?}", hub.event_types);
    // The event log is numbered 1, 2, 3... with no gaps, across the restart.
    let mut seqs: Vec<u64> = hub.seen_events.iter().copied().collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), agent)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
