//! A hub in simulated time, for story tests: the real state, store (SQLite in a
//! temporary folder, or PostgreSQL), HTTP router (called in-process, no port), device
//! ingest and access rules, on a manual clock. Nothing runs in the background: a test
//! moves the clock and calls [`Sim::tick`], which does exactly what the hub's periodic
//! tasks do once (the liveness pass, its effects, the access pass). Devices are
//! simulators that sign real protocol messages and hand them to the ingest path;
//! downlinks are captured instead of published.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::sync::Arc;
use threshold_hub::clock::ManualClock;
use threshold_hub::gateway::downlink::Captured;
use threshold_hub::gateway::transition::Transition;
use threshold_hub::{AppState, HubConfig};
use threshold_proto::body::{BoltState, DoorState, FrameSummary, Heartbeat, State};
use threshold_proto::{DeviceId, DeviceKey, Kind, SignedMessage, UnverifiedMessage};
use tokio::sync::mpsc;
use tower::ServiceExt;

/// 2026-12-03 10:00:00 UTC.
pub const T0: i64 = 1_796_292_000_000;
pub const PASSWORD: &str = "a-long-password";
pub const LAT: f64 = 52.3731;
pub const LON: f64 = 4.8922;

pub struct Sim {
    pub state: AppState,
    pub clock: Arc<ManualClock>,
    effects: mpsc::UnboundedReceiver<Transition>,
    router: axum::Router,
    /// What the hub sent to devices (its device link in these tests).
    sent: Arc<Captured>,
    /// The hub's event bus, as the recorder's task hears it.
    bus: tokio::sync::broadcast::Receiver<threshold_hub::events::HubEvent>,
    /// When the recorder last ticked (simulated time).
    recorder_ticked: i64,
    _dir: Arc<tempfile::TempDir>,
}

impl Sim {
    /// A hub on SQLite in a fresh folder.
    pub async fn new() -> Sim {
        Self::with(|_| {}).await
    }

    /// A hub with configuration changes (e.g. `database_url` for PostgreSQL).
    pub async fn with(adjust: impl FnOnce(&mut HubConfig)) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let mut config = HubConfig {
            data_dir: dir.path().to_owned(),
            ..Default::default()
        };
        adjust(&mut config);
        // As if the broker connection came up a while ago.
        Self::assemble(config, Arc::new(dir), T0, T0 - 60_000).await
    }

    async fn assemble(
        config: HubConfig,
        dir: Arc<tempfile::TempDir>,
        now: i64,
        vouching_since: i64,
    ) -> Sim {
        let clock = ManualClock::new(now);
        let assembled = threshold_hub::assemble(config, clock.clone())
            .await
            .expect("hub assembles");
        let state = assembled.state;
        let bus = state.bus.subscribe();
        let sent = Arc::new(Captured::default());
        state.downlink.connect(sent.clone());
        let (tx, rx) = mpsc::unbounded_channel();
        state.effects.set(tx).expect("effects channel unset");
        state.access.set_vouching(true, vouching_since);
        let router = threshold_hub::http::router(state.clone(), None);
        Sim {
            state,
            clock,
            effects: rx,
            router,
            sent,
            bus,
            recorder_ticked: now,
            _dir: dir,
        }
    }

    /// The hub process dies (nothing more is flushed) and a new one starts on the same
    /// data `down_ms` later; it connects to its broker at once.
    pub async fn restart(self, down_ms: i64) -> Sim {
        let now = self.now() + down_ms;
        let config = self.state.config.clone();
        let Sim {
            _dir: dir,
            state,
            router,
            ..
        } = self;
        drop(router);
        drop(state);
        Self::assemble(config, dir, now, now).await
    }

    /// A second hub process on the same data, started at this one's time (a fleet peer
    /// on one SQLite file): it learns of a device enrolled through `self` afterwards
    /// only when the device's messages reach it. Its clock is its own.
    pub async fn beside(&self) -> Sim {
        let now = self.now();
        Self::assemble(
            self.state.config.clone(),
            self._dir.clone(),
            now,
            now - 60_000,
        )
        .await
    }

    pub fn now(&self) -> i64 {
        threshold_hub::clock::Clock::now_ms(&*self.clock)
    }

    /// What the hub's periodic tasks do, once, at the current simulated time.
    pub async fn tick(&mut self) {
        self.tick_late(0).await;
    }

    /// The hub itself does not run for `ms` (a virtual machine paused): the clock moves
    /// on, nothing is heard or done, and its first pass after fires `ms` late.
    pub async fn pause(&mut self, ms: i64) {
        self.clock.advance(ms);
        self.tick_late(ms).await;
    }

    /// The periodic tasks, their timer having fired `late_ms` late.
    async fn tick_late(&mut self, late_ms: i64) {
        if let Some(change) = threshold_hub::gateway::load::judge(&self.state, late_ms) {
            threshold_hub::gateway::load::apply(&self.state, change).await;
        }
        threshold_hub::gateway::monitor::tick_once(&self.state);
        self.apply_effects().await;
        threshold_hub::access::watcher::pass(&self.state).await;
        self.apply_effects().await;
        threshold_hub::gateway::monitor::flush_hwm(&self.state).await;
        self.run_recorder().await;
    }

    /// The recorder's two tasks: what it hears on the bus (a granted entry starts a
    /// recording, a camera's link events bound an outage), and its tick every
    /// `STREAM_RENEW_MS`.
    async fn run_recorder(&mut self) {
        use threshold_hub::media::recording;
        while let Ok(e) = self.bus.try_recv() {
            recording::on_event(&self.state, &e).await;
        }
        let now = self.now();
        if now - self.recorder_ticked >= recording::STREAM_RENEW_MS as i64 {
            self.recorder_ticked = now;
            recording::tick(&self.state).await;
        }
    }

    async fn apply_effects(&mut self) {
        let mut batch = Vec::new();
        while let Ok(t) = self.effects.try_recv() {
            batch.push(t);
        }
        let n = batch.len() as i64;
        threshold_hub::reactions::on_transitions(&self.state, batch).await;
        self.state.metrics.effects_pending.dec_by(n);
    }

    /// Move the clock by `ms` in steps of at most 50 ms (the liveness pass's period),
    /// ticking after each, as the running hub would.
    pub async fn advance(&mut self, ms: i64) {
        let mut left = ms;
        while left > 0 {
            let step = left.min(50);
            self.clock.advance(step);
            left -= step;
            self.tick().await;
        }
    }

    /// An HTTP request through the hub's real router, in process.
    pub async fn http(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = axum::http::Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(axum::body::Body::from(b.to_string())),
            None => req.body(axum::body::Body::empty()),
        }
        .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Hand a device's message to the hub's ingest path, as the broker would.
    pub async fn deliver(&self, m: &SignedMessage) -> Result<(), &'static str> {
        let topic = threshold_proto::topic::uplink(&self.state.config.mqtt_topic_prefix, &m.device);
        threshold_hub::gateway::ingest::handle(&self.state, &topic, m.as_bytes())
            .await
            .map(|_| ())
            .map_err(|r| r.reason())
    }

    /// Hand messages to the hub's ingest path all at once, as a broker worker hands
    /// over what has arrived for it: (the device whose topic each is published on,
    /// its bytes). What became of each, in order.
    pub async fn deliver_together(
        &self,
        publishes: &[(DeviceId, Vec<u8>)],
    ) -> Vec<Result<(), &'static str>> {
        let prefix = &self.state.config.mqtt_topic_prefix;
        let publishes: Vec<(String, &[u8])> = publishes
            .iter()
            .map(|(d, b)| (threshold_proto::topic::uplink(prefix, d), b.as_slice()))
            .collect();
        threshold_hub::gateway::ingest::handle_all(&self.state, &publishes)
            .await
            .into_iter()
            .map(|r| r.map(|_| ()).map_err(|r| r.reason()))
            .collect()
    }

    /// Downlinks published since the last call: (device, kind, body as JSON).
    pub fn downlinks(&self) -> Vec<(DeviceId, Kind, Value)> {
        self.sent
            .take()
            .into_iter()
            .map(|(d, m)| {
                (
                    d,
                    m.kind,
                    serde_json::from_slice(&m.body).unwrap_or(Value::Null),
                )
            })
            .collect()
    }

    /// Downlinks since the last call, as the signed bytes a device receives.
    pub fn downlink_bytes(&self) -> Vec<(DeviceId, Vec<u8>)> {
        self.sent
            .take()
            .into_iter()
            .map(|(d, m)| (d, m.into_bytes()))
            .collect()
    }

    /// A user created in the store, signed in through the API; returns (id, token).
    pub async fn user(&self, role: threshold_store::Role, name: &str) -> (String, String) {
        let hash = threshold_hub::auth::hash_password(PASSWORD).unwrap();
        let u = self
            .state
            .store
            .create_user(role, name, name, &hash, self.now())
            .await
            .unwrap();
        let (s, b) = self
            .http(
                "POST",
                "/api/v1/auth/login",
                None,
                Some(json!({"username": name, "password": PASSWORD})),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        (u.id, b["token"].as_str().unwrap().to_owned())
    }

    /// An owner's home at the demo coordinates; returns its id.
    pub async fn home(&self, owner: &str, name: &str) -> String {
        let (s, b) = self
            .http(
                "POST",
                "/api/v1/homes",
                Some(owner),
                Some(json!({"name": name, "lat": LAT, "lon": LON})),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        b["id"].as_str().unwrap().to_owned()
    }

    /// A door of a home; returns its id.
    pub async fn door(&self, owner: &str, home: &str, name: &str) -> String {
        let (s, b) = self
            .http(
                "POST",
                &format!("/api/v1/homes/{home}/doors"),
                Some(owner),
                Some(json!({"name": name})),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        b["id"].as_str().unwrap().to_owned()
    }

    /// Pair a simulated device through the real pairing and enrolment API.
    pub async fn pair(
        &self,
        owner: &str,
        home: &str,
        kind: &str,
        name: &str,
        door: Option<&str>,
    ) -> SimDevice {
        let (s, pc) = self
            .http(
                "POST",
                &format!("/api/v1/homes/{home}/pairing-codes"),
                Some(owner),
                Some(json!({"kind": kind, "name": name, "door_id": door})),
            )
            .await;
        assert_eq!(s, 201, "{pc}");
        let code = pc["code"].as_str().unwrap();
        let key = DeviceKey::generate().unwrap();
        let (s, e) = self
            .http(
                "POST",
                "/api/v1/enrol",
                None,
                Some(enrol_request(&key, code, kind)),
            )
            .await;
        assert_eq!(s, 201, "{e}");
        SimDevice::enrolled(key, e)
    }
}

/// The body of `POST /api/v1/enrol` for `key` with a pairing code: the proof signs
/// the code and the public key (docs/protocol.md §8).
pub fn enrol_request(key: &DeviceKey, code: &str, kind: &str) -> Value {
    let public = key.public().to_hex();
    let proof = key.sign(format!("threshold-enrol-v1:{code}:{public}").as_bytes());
    json!({"pairing_code": code, "public_key": public, "kind": kind, "proof": hex::encode(proof)})
}

/// A simulated device: signs real protocol messages with its own key. Its clock is
/// the hub's plus `skew` (set per message by the caller).
pub struct SimDevice {
    pub key: DeviceKey,
    pub id: DeviceId,
    seq: u64,
    events: u64,
    frames: u64,
    pub enrolment: Value,
}

impl SimDevice {
    /// A device that enrolled with `key` and got the hub's answer `enrolment`.
    pub fn enrolled(key: DeviceKey, enrolment: Value) -> SimDevice {
        SimDevice {
            id: key.device_id(),
            key,
            seq: 0,
            events: 0,
            frames: 0,
            enrolment,
        }
    }

    pub fn hex(&self) -> String {
        self.id.to_hex()
    }

    fn sign(&mut self, kind: Kind, seq: u64, t: i64, body: Vec<u8>) -> SignedMessage {
        SignedMessage::sign(&self.key, kind, self.id, seq, t, body)
    }

    /// A camera heartbeat signed at `t` (device clock) announcing a new frame captured
    /// at `captured` with a picture of shade `shade` (a changing shade is a changing
    /// picture).
    pub fn heartbeat(&mut self, t: i64, captured: i64, shade: u8) -> SignedMessage {
        self.seq += 1;
        self.frames += 1;
        let hb = Heartbeat {
            frame: Some(FrameSummary {
                seq: self.frames,
                time_ms: captured,
                sha256: "00".repeat(32),
                thumb: format!("{shade:02x}").repeat(64),
            }),
            ..Default::default()
        };
        let seq = self.seq;
        self.sign(Kind::Heartbeat, seq, t, serde_json::to_vec(&hb).unwrap())
    }

    /// A camera streaming: the frame record of a new frame captured at `captured`
    /// (sent first, as an agent in stream mode does), then the heartbeat announcing
    /// that same frame, signed at `t`.
    pub fn streamed(&mut self, t: i64, captured: i64, shade: u8) -> (SignedMessage, SignedMessage) {
        self.frames += 1;
        let jpeg = [0xFFu8, 0xD8, 0xFF, 0xD9];
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(jpeg));
        let thumb = format!("{shade:02x}").repeat(64);
        let header = threshold_proto::body::FrameHeader {
            width: 2,
            height: 2,
            sha256: sha.clone(),
            thumb: thumb.clone(),
        };
        let frames = self.frames;
        let record = self.sign(
            Kind::Frame,
            frames,
            captured,
            threshold_proto::body::encode_frame_body(&header, &jpeg),
        );
        self.seq += 1;
        let hb = Heartbeat {
            frame: Some(FrameSummary {
                seq: frames,
                time_ms: captured,
                sha256: sha,
                thumb,
            }),
            ..Default::default()
        };
        let seq = self.seq;
        let beat = self.sign(Kind::Heartbeat, seq, t, serde_json::to_vec(&hb).unwrap());
        (record, beat)
    }

    /// A lock's or contact sensor's state report signed at `t`.
    pub fn state(
        &mut self,
        t: i64,
        bolt: Option<BoltState>,
        door: Option<DoorState>,
    ) -> SignedMessage {
        self.report(
            t,
            &State {
                bolt,
                door,
                battery_pct: Some(90),
                ..Default::default()
            },
        )
    }

    /// Any state report signed at `t` (a garage-door opener's motion and obstruction).
    pub fn report(&mut self, t: i64, s: &State) -> SignedMessage {
        self.seq += 1;
        let seq = self.seq;
        self.sign(Kind::State, seq, t, serde_json::to_vec(s).unwrap())
    }

    /// A record of the device's event log signed at `t`.
    pub fn event(&mut self, t: i64, event_type: &str, detail: Value) -> SignedMessage {
        self.events += 1;
        let body = json!({"type": event_type, "detail": detail});
        let seq = self.events;
        self.sign(Kind::Event, seq, t, body.to_string().into_bytes())
    }

    /// `hello` signed at `t`.
    pub fn hello(&mut self, t: i64, kind: &str) -> SignedMessage {
        self.seq += 1;
        let seq = self.seq;
        self.sign(
            Kind::Hello,
            seq,
            t,
            json!({"agent": "sim", "kind": kind, "boot_id": "b"})
                .to_string()
                .into_bytes(),
        )
    }
}

/// The body of an `unlock` downlink for `lock` in `downlinks`, if any.
pub fn unlock_for(downlinks: &[(DeviceId, Kind, Value)], lock: &DeviceId) -> Option<Value> {
    downlinks
        .iter()
        .find(|(d, k, _)| d == lock && *k == Kind::Unlock)
        .map(|(_, _, b)| b.clone())
}

/// Whether `downlinks` hold a `lock` command for `lock`.
pub fn lock_command_for(downlinks: &[(DeviceId, Kind, Value)], lock: &DeviceId) -> bool {
    downlinks
        .iter()
        .any(|(d, k, _)| d == lock && *k == Kind::Lock)
}

/// Decode captured bytes (for tests that check a downlink end to end).
pub fn decode(bytes: &[u8]) -> UnverifiedMessage {
    UnverifiedMessage::decode(bytes).unwrap()
}
