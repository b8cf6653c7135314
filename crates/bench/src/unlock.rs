//! `threshold bench unlock`: entry decisions per second and latency through the real
//! HTTP API, and unlock-to-bolt latency through the real broker.
//!
//! What runs, in one process:
//! - a hub (SQLite in a temporary folder and its embedded broker by default; or the
//!   given database and external broker), with `homes` homes, each with one lock and
//!   one camera enrolled in the database;
//! - simulated devices, each on its own MQTT connection to the hub's endpoint (which
//!   lets a device use its own topics only), or multiplexed over a few connections to
//!   an external broker that allows it (the protocol binds a device to its signed
//!   envelope and topic, not to the MQTT client id), so 10 000 homes need 20 000
//!   devices but only a handful of sockets. Cameras send signed
//!   heartbeats announcing new frames, locks signed state reports; each simulated lock
//!   verifies the hub's signature on its unlock, checks recipient, expiry and nonce,
//!   "retracts" its bolt (no motor delay) and uploads a signed `token_accepted`
//!   event, as the real agent does;
//! - `concurrency` dispatcher threads working ahead of the couriers: each creates a
//!   delivery for the next home and has that door's camera send a frame, and queues
//!   the door once the hub holds the frame (a short queue, so they stay just ahead);
//! - `concurrency` courier clients, each in a loop: take the next ready door, ask to
//!   enter over HTTP (timed: decision latency). For an accepted request,
//!   unlock-to-bolt runs from sending the request to the simulated lock retracting
//!   its bolt. A door that waited in the queue longer than 1.5 s has its camera send
//!   a new frame first (not timed; counted as `doors_refreshed`).
//!
//! One deliberate difference from production settings: the live window is widened
//! (30 s, heartbeats every 10 s) so that 20 000 simulated devices do not spend both
//! cores on heartbeat signatures; liveness at scale is measured by the camera
//! benchmark. Every decision still requires a live camera and lock.

use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use threshold_hub::HubConfig;
use threshold_proto::body::{BoltState, DoorState, FrameSummary, Heartbeat, State, Unlock};
use threshold_proto::{DeviceId, DeviceKey, Kind, SignedMessage, UnverifiedMessage};

/// The MQTT password every simulated device is enrolled with.
const DEVICE_PASSWORD: &str = "bench-device-password";

/// See [`run`]: 4 sockets a home on the hub's own endpoint.
const MAX_HOMES_ON_OWN_ENDPOINT: usize = 4000;

#[derive(Clone, Debug)]
pub struct BenchArgs {
    pub homes: usize,
    pub concurrency: usize,
    pub duration: Duration,
    /// Default: SQLite in a temporary folder.
    pub database_url: Option<String>,
    /// Default: the hub's embedded broker.
    pub mqtt_url: Option<String>,
    /// MQTT connections the simulated devices share on an external broker (on the
    /// hub's own endpoint each device has its own).
    pub device_connections: usize,
    /// Open loop: requests start on a fixed schedule of this many per second (the
    /// clients are then the most requests in flight), and each latency runs from
    /// its scheduled start, so a stalled hub is charged for every request it delayed.
    /// `None`: closed loop, each client asks again as soon as it is answered.
    pub rate: Option<f64>,
}

impl Default for BenchArgs {
    fn default() -> Self {
        BenchArgs {
            homes: 1000,
            concurrency: 16,
            duration: Duration::from_secs(10),
            database_url: None,
            mqtt_url: None,
            device_connections: 4,
            rate: None,
        }
    }
}

const LAT: f64 = 52.37;
const LON: f64 = 4.89;
const HEARTBEAT: Duration = Duration::from_secs(10);

struct SimDevice {
    key: DeviceKey,
    id: DeviceId,
    camera: bool,
}

impl SimDevice {
    /// The device's next live message, signed now: a camera's heartbeat announcing a
    /// new frame captured now (its liveness statement), a lock's "locked, closed".
    /// Answers the message and the frame's number (0 for a lock).
    fn live_message(
        &self,
        transport_seq: &AtomicU64,
        frame_seq: &AtomicU64,
    ) -> (SignedMessage, u64) {
        let seq = transport_seq.fetch_add(1, Ordering::Relaxed) + 1;
        let now = now_ms();
        let mut frame = 0;
        let (kind, body) = if self.camera {
            let f = frame_seq.fetch_add(1, Ordering::Relaxed) + 1;
            frame = f;
            let hb = Heartbeat {
                frame: Some(FrameSummary {
                    seq: f,
                    time_ms: now,
                    sha256: "00".repeat(32),
                    thumb: format!("{:02x}", f % 256).repeat(64),
                }),
                ..Default::default()
            };
            (Kind::Heartbeat, serde_json::to_vec(&hb).unwrap_or_default())
        } else {
            let s = State {
                bolt: Some(BoltState::Locked),
                door: Some(DoorState::Closed),
                battery_pct: Some(90),
                ..Default::default()
            };
            (Kind::State, serde_json::to_vec(&s).unwrap_or_default())
        };
        (
            SignedMessage::sign(&self.key, kind, self.id, seq, now, body),
            frame,
        )
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    let v = sorted[i.min(sorted.len() - 1)];
    (v * 1000.0).round() / 1000.0
}

/// What one small durable write costs on the disk the database is on (4 KiB written
/// and fsynced, 50 times): decisions wait for an fsync, so this puts figures taken on
/// different machines or days in context.
fn fsync_probe(dir: &std::path::Path) -> anyhow::Result<(f64, f64)> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let path = dir.join("fsync-probe");
    let mut f = std::fs::File::create(&path)?;
    let block = [0u8; 4096];
    let mut ms = Vec::with_capacity(50);
    for _ in 0..50 {
        let t = Instant::now();
        f.write_all(&block)?;
        f.sync_data()?;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    drop(f);
    let _ = std::fs::remove_file(&path);
    ms.sort_by(|a, b| a.total_cmp(b));
    Ok((pct(&ms, 0.50), pct(&ms, 0.99)))
}

/// Run the benchmark; returns the JSON line to print.
pub async fn run(args: BenchArgs) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(args.homes > 0, "--homes must be at least 1");
    // Two devices a home, each a socket on both sides of the hub's endpoint, in one
    // process limited to 20 000 open files.
    anyhow::ensure!(
        args.mqtt_url.is_some() || args.homes <= MAX_HOMES_ON_OWN_ENDPOINT,
        "--homes above {MAX_HOMES_ON_OWN_ENDPOINT} needs an external broker (--mqtt-url): on the hub's own endpoint every simulated device holds two sockets in this process"
    );
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    if let Some(r) = args.rate {
        anyhow::ensure!(
            r.is_finite() && r > 0.0,
            "--rate must be a positive number of requests per second"
        );
    }
    let tmp = std::env::temp_dir().join(format!(
        "threshold-bench-unlock-{}",
        threshold_store::new_id()
    ));
    let cfg = HubConfig {
        data_dir: tmp.clone(),
        http_addr: "127.0.0.1:0".parse()?,
        database_url: args.database_url.clone(),
        mqtt_url: args.mqtt_url.clone(),
        embedded_mqtt_addr: "127.0.0.1:0".parse()?,
        mqtt_topic_prefix: format!("thr-bench-{}", threshold_store::new_id()),
        live_window_ms: 30_000,
        offline_after_ms: 60_000,
        heartbeat_ms: HEARTBEAT.as_millis() as i64,
        frozen_after_ms: 24 * 3600 * 1000,
        offline_grace_ms: 24 * 3600 * 1000,
        ..Default::default()
    };
    let fsync = fsync_probe(&tmp)?;
    let hub = threshold_hub::start(cfg.clone()).await?;
    let result = bench(&hub, &cfg, &args).await.map(|mut v| {
        v["disk_fsync_ms"] = json!({"p50": fsync.0, "p99": fsync.1});
        v
    });
    hub.stop().await;
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

/// What a courier thread needs to make the door camera of a home stream a frame.
#[derive(Clone)]
struct AtDoor {
    st: threshold_hub::AppState,
    devices: Arc<Vec<SimDevice>>,
    transport_seq: Arc<Vec<AtomicU64>>,
    frame_seq: Arc<AtomicU64>,
    clients: Vec<AsyncClient>,
    prefix: String,
    handle: tokio::runtime::Handle,
}

/// Home `i`'s camera (enrolled right after its lock) sends a frame captured now.
/// Answers the frame's number, or `None` if it could not be sent.
fn camera_sends_frame(at: &AtDoor, home: usize) -> Option<u64> {
    let cam = 2 * home + 1;
    let (d, ts, client) = (
        at.devices.get(cam)?,
        at.transport_seq.get(cam)?,
        at.clients.get(cam % at.clients.len().max(1))?,
    );
    let (m, frame) = d.live_message(ts, &at.frame_seq);
    let topic = threshold_proto::topic::uplink(&at.prefix, &d.id);
    at.handle
        .block_on(client.publish(topic, QoS::AtMostOnce, false, m.into_bytes()))
        .ok()?;
    Some(frame)
}

/// Whether the hub holds frame `frame` of home `i`'s camera (or a newer one) as the
/// camera's newest, waiting for it up to 2 s. It looks again after 1 ms, then twice as
/// long each time up to 16 ms: the dispatchers work ahead of the couriers, so a few
/// milliseconds more cost no decision anything, while every dispatcher looking every
/// millisecond was tens of thousands of thread wake-ups a second taken from the hub
/// on the same two cores (`perf`: ~9 % of the process's samples, and most of the
/// kernel's scheduling time).
fn hub_holds_frame(at: &AtDoor, home: usize, frame: u64) -> bool {
    let Some(d) = at.devices.get(2 * home + 1) else {
        return false;
    };
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut pause = Duration::from_millis(1);
    loop {
        // Frame numbers come from one counter, so a later periodic heartbeat of this
        // camera carries a higher number and counts too.
        let held = at.st.registry.with(&d.id, |e| {
            e.statement.is_some()
                && e.liveness
                    .newest_frame()
                    .is_some_and(|(seq, _)| seq >= frame)
        });
        if held == Some(true) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(16));
    }
}

/// Home `i`'s camera sends a frame captured now; returns once the hub holds it (false
/// after 2 s).
fn door_camera_streams(at: &AtDoor, home: usize) -> bool {
    camera_sends_frame(at, home).is_some_and(|f| hub_holds_frame(at, home, f))
}

/// A door made ready for a courier ahead of the request, as in life: the dispatcher
/// created the delivery earlier, and the door's camera is streaming.
struct ReadyDoor {
    home: usize,
    delivery_id: String,
    /// When the hub was seen holding the camera's frame of this door.
    camera_at: Instant,
}

/// A courier takes a door that was made ready more than this long ago only after its
/// camera has sent a new frame: the lock accepts a camera statement at most 3 s old.
const READY_FRESH: Duration = Duration::from_millis(1500);

async fn bench(
    hub: &threshold_hub::Hub,
    cfg: &HubConfig,
    args: &BenchArgs,
) -> anyhow::Result<serde_json::Value> {
    let st = hub.state.clone();
    let store = st.store.clone();
    let t0 = now_ms();
    let pw = threshold_hub::auth::hash_password("bench-password-long")?;
    let owner = store
        .create_user(
            threshold_store::Role::Owner,
            "bench-owner",
            "Owner",
            &pw,
            t0,
        )
        .await?;
    let courier = store
        .create_user(
            threshold_store::Role::Courier,
            "bench-courier",
            "Courier",
            &pw,
            t0,
        )
        .await?;
    let dispatcher = store
        .create_user(
            threshold_store::Role::Dispatcher,
            "bench-dispatcher",
            "Dispatcher",
            &pw,
            t0,
        )
        .await?;

    // Homes and devices, enrolled straight into the database and the gateway.
    let mut homes = Vec::with_capacity(args.homes);
    let mut devices = Vec::with_capacity(args.homes * 2);
    let enrolling = crate::progress::count(args.homes as u64, "homes enrolled");
    for i in 0..args.homes {
        enrolling.set_position(i as u64);
        let h = store
            .create_home(
                threshold_store::NewHome {
                    owner_id: &owner.id,
                    name: &format!("Home {i}"),
                    lat: LAT,
                    lon: LON,
                    geofence_m: 75.0,
                    time_zone: None,
                },
                t0,
            )
            .await?;
        let door = store.create_door(&h.id, "Front door", true, t0).await?;
        let mut change = threshold_store::DoorChange::default();
        for camera in [false, true] {
            let key = DeviceKey::generate().map_err(|e| anyhow::anyhow!("random: {e}"))?;
            let id = key.device_id();
            let row = store
                .enrol_device(
                    &id.to_hex(),
                    &h.id,
                    if camera { "camera" } else { "lock" },
                    if camera { "Camera" } else { "Lock" },
                    &key.public().to_hex(),
                    &threshold_hub::auth::sha256_hex(DEVICE_PASSWORD),
                    t0,
                )
                .await?;
            let entry = threshold_hub::gateway::registry::DeviceEntry::from_row(&row, &[], &[])
                .ok_or_else(|| anyhow::anyhow!("enrolled device unreadable"))?;
            st.registry.insert(entry);
            devices.push(SimDevice { key, id, camera });
            if camera {
                change.camera_ids = Some(vec![id.to_hex()]);
            } else {
                change.lock_id = Some(Some(id.to_hex()));
            }
        }
        store.update_door(&door.id, &change).await?;
        store.trust_merchant(&h.id, &dispatcher.id, t0).await?;
        homes.push((h.id, door.id));
    }
    enrolling.finish_and_clear();
    st.access.doors.set_all(&store.all_doors().await?);
    let devices = Arc::new(devices);
    let index: Arc<HashMap<DeviceId, usize>> =
        Arc::new(devices.iter().enumerate().map(|(i, d)| (d.id, i)).collect());

    // Simulated devices over a few connections.
    let (host, port) = (hub.mqtt_host.clone(), hub.mqtt_port);
    let prefix = cfg.mqtt_topic_prefix.clone();
    let mut clients = Vec::new();
    let unlock_ms: Arc<Mutex<Vec<f64>>> = Arc::default();
    let transit: Arc<Mutex<Vec<f64>>> = Arc::default();
    let pending: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    // Signalled each time a simulated bolt retracts (a pending unlock is measured).
    let retracted_signal = Arc::new(tokio::sync::Notify::new());
    // Tokens the simulated locks refused for their camera statement (none expected).
    let lock_refusals = Arc::new(AtomicU64::new(0));
    // The hub's own endpoint gives each device its own connection and topics only
    // (protocol §2.2), so there every simulated device connects as itself; an
    // external broker may let a few connections carry them all.
    let own_connections = cfg.mqtt_url.is_none();
    let conns = if own_connections {
        devices.len()
    } else {
        args.device_connections.max(1)
    };
    for c in 0..conns {
        let own = own_connections.then(|| devices.get(c)).flatten();
        let client_id = match own {
            Some(d) => d.id.to_hex(),
            None => format!("bench-devices-{c}"),
        };
        let mut o = MqttOptions::new(client_id.clone(), host.clone(), port);
        if own.is_some() {
            o.set_credentials(client_id.clone(), DEVICE_PASSWORD);
            // As the real agent: rumqttc's default in-flight limit (65 535) would
            // allocate ~13 MB per device connection.
            o.set_outgoing_inflight_upper_limit(16);
        } else if let (Some(u), Some(p)) = (&cfg.mqtt_username, &cfg.mqtt_password) {
            o.set_credentials(u.clone(), p.clone());
        }
        o.set_keep_alive(Duration::from_secs(30));
        o.set_max_packet_size(Some(1 << 20));
        let mut net = rumqttc::NetworkOptions::new();
        net.set_tcp_nodelay(true);
        o.set_network_options(net);
        let (client, mut el) = AsyncClient::new(o, if own.is_some() { 64 } else { 10_000 });
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let mut ready_tx = Some(ready_tx);
        let subscriber = own.is_some() || c == 0;
        let c2 = client.clone();
        let filter = match own {
            Some(d) => threshold_proto::topic::downlink(&prefix, &d.id),
            None => format!("{prefix}/v1/dev/+/down"),
        };
        let transit_ms = transit.clone();
        let (devices, index, unlock_ms, pending, hub_pub, retracted_signal, lock_refusals) = (
            devices.clone(),
            index.clone(),
            unlock_ms.clone(),
            pending.clone(),
            st.hub_key.public(),
            retracted_signal.clone(),
            lock_refusals.clone(),
        );
        let prefix2 = prefix.clone();
        tokio::spawn(async move {
            let mut used: HashSet<String> = HashSet::new();
            let mut event_seq: HashMap<DeviceId, u64> = HashMap::new();
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        if subscriber {
                            let _ = c2.subscribe(filter.clone(), QoS::AtMostOnce).await;
                        } else if let Some(t) = ready_tx.take() {
                            let _ = t.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(t) = ready_tx.take() {
                            let _ = t.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        // The simulated lock, like the real one: envelope, signature,
                        // recipient, expiry, its door camera's statement (checked with
                        // the camera's key against this clock), nonce; then the bolt;
                        // then its signed event.
                        let Ok(m) = UnverifiedMessage::decode(&p.payload) else {
                            continue;
                        };
                        if m.kind != Kind::Unlock {
                            continue;
                        }
                        let Ok(m) = m.verify(&hub_pub) else { continue };
                        let Some(&i) = index.get(&m.device) else {
                            continue;
                        };
                        let Some(dev) = devices.get(i).filter(|d| !d.camera) else {
                            continue;
                        };
                        let Ok(tok) = m.json::<Unlock>() else {
                            continue;
                        };
                        if tok.expires_at_ms < now_ms() {
                            continue;
                        }
                        // Each home's devices are enrolled lock first, then its camera.
                        let cam = devices.get(i + 1).filter(|d| d.camera);
                        let bound: Vec<_> = cam.map(|c| c.key.public()).into_iter().collect();
                        let proof = threshold_proto::statement::check_token_camera(
                            tok.camera.as_deref(),
                            tok.camera_waived.as_deref(),
                            &bound,
                            now_ms(),
                            &threshold_proto::statement::CameraRules::default(),
                        );
                        if proof.is_err() {
                            lock_refusals.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        if !used.insert(tok.nonce.clone()) {
                            continue;
                        }
                        let retracted = Instant::now();
                        if let Ok(mut v) = transit_ms.lock() {
                            v.push((now_ms() - m.time_ms) as f64);
                        }
                        if let Some(id) = tok.grant.strip_prefix("delivery:") {
                            let start = pending.lock().ok().and_then(|mut m| m.remove(id));
                            if let (Some(s), Ok(mut v)) = (start, unlock_ms.lock()) {
                                v.push(retracted.duration_since(s).as_secs_f64() * 1000.0);
                            }
                            retracted_signal.notify_waiters();
                        }
                        let seq = event_seq.entry(dev.id).or_insert(0);
                        *seq += 1;
                        let body = serde_json::to_vec(&threshold_proto::body::Event {
                            event_type: "token_accepted".into(),
                            detail: json!({"grant": tok.grant, "nonce": tok.nonce}),
                        })
                        .unwrap_or_default();
                        let ev = SignedMessage::sign(
                            &dev.key,
                            Kind::Event,
                            dev.id,
                            *seq,
                            now_ms(),
                            body,
                        );
                        let _ = c2.try_publish(
                            threshold_proto::topic::uplink(&prefix2, &dev.id),
                            QoS::AtLeastOnce,
                            false,
                            ev.as_bytes().to_vec(),
                        );
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "bench device connection error");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), ready_rx)
            .await
            .map_err(|_| anyhow::anyhow!("bench device connection {c} not ready"))?
            .ok();
        clients.push(client);
    }

    // Heartbeats/state reports, spread over the period, one task per connection.
    let transport_seq: Arc<Vec<AtomicU64>> =
        Arc::new((0..devices.len()).map(|_| AtomicU64::new(0)).collect());
    let frame_seq = Arc::new(AtomicU64::new(0));
    for (c, client) in clients.iter().enumerate() {
        let (client, devices, transport_seq, frame_seq, prefix) = (
            client.clone(),
            devices.clone(),
            transport_seq.clone(),
            frame_seq.clone(),
            prefix.clone(),
        );
        tokio::spawn(async move {
            let mine: Vec<usize> = (c..devices.len()).step_by(conns).collect();
            // Real devices keep independent clocks, so their messages arrive spread
            // out: 1 000 slots over the period (20 devices a slot at 20 000), not
            // bursts of hundreds. The task wakes only for the slots its devices use
            // (one, on a connection of its own).
            let slots = 1000usize;
            let step = HEARTBEAT / slots as u32;
            let mut used: Vec<usize> = mine.iter().map(|i| i % slots).collect();
            used.sort_unstable();
            used.dedup();
            let start = tokio::time::Instant::now();
            for round in 0u32.. {
                for &k in &used {
                    tokio::time::sleep_until(start + HEARTBEAT * round + step * k as u32).await;
                    for &i in mine.iter().filter(|&&i| i % slots == k) {
                        let Some(d) = devices.get(i) else { continue };
                        let Some(ts) = transport_seq.get(i) else {
                            continue;
                        };
                        let (m, _) = d.live_message(ts, &frame_seq);
                        let _ = client
                            .publish(
                                threshold_proto::topic::uplink(&prefix, &d.id),
                                QoS::AtMostOnce,
                                false,
                                m.as_bytes().to_vec(),
                            )
                            .await;
                    }
                }
            }
        });
    }

    // Everything live before timing starts.
    let live_cfg = st.config.liveness();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let now = st.clock.now_ms();
        let mut live = 0usize;
        st.registry.for_each(|e| {
            if e.liveness.state(now, &live_cfg) == threshold_core::liveness::Liveness::Live {
                live += 1;
            }
        });
        // ... and their LIVE transitions applied (a timeline row each), so the run
        // measures decisions, not the warm-up's backlog.
        if live >= devices.len() && st.metrics.effects_pending.get() == 0 {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {live} of {} simulated devices became live",
            devices.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Courier session over HTTP.
    let base = format!("http://{}", hub.http_addr);
    let token = {
        let base = base.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
            let r: serde_json::Value = ureq::post(&format!("{base}/api/v1/auth/login"))
                .set("Content-Type", "application/json")
                .send_string(
                    &json!({"username": "bench-courier", "password": "bench-password-long"})
                        .to_string(),
                )
                .map_err(|e| anyhow::anyhow!("login: {e}"))?
                .into_string()
                .map_err(|e| anyhow::anyhow!("login: {e}"))
                .and_then(|t| serde_json::from_str(&t).map_err(anyhow::Error::from))?;
            r["token"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| anyhow::anyhow!("login: no token"))
        })
        .await??
    };

    let homes = Arc::new(homes);
    let next = Arc::new(AtomicUsize::new(0));
    let allowed = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let latencies: Arc<Mutex<Vec<f64>>> = Arc::default();
    let handle = tokio::runtime::Handle::current();
    // Open loop: the k-th request is due at `started + k / rate`.
    let schedule = args.rate.map(|r| {
        (
            Duration::from_secs_f64(1.0 / r),
            Arc::new(AtomicU64::new(0)),
        )
    });
    let at_door = AtDoor {
        st: st.clone(),
        devices: devices.clone(),
        transport_seq: transport_seq.clone(),
        frame_seq: frame_seq.clone(),
        clients: clients.clone(),
        prefix: prefix.clone(),
        handle: handle.clone(),
    };
    // Dispatchers and door cameras work ahead of the couriers on threads of their own
    // (as many as there are couriers), each creating a delivery and having its door's
    // camera stream a frame; a bounded queue keeps them just ahead. So a courier asks
    // again as soon as answered, and what is timed is the decision alone.
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<ReadyDoor>(args.concurrency * 2);
    let ready_rx = Arc::new(Mutex::new(ready_rx));
    let refreshed = Arc::new(AtomicU64::new(0));
    let mut preparers = Vec::new();
    for _ in 0..args.concurrency {
        let (homes, next, store, handle, at_door, errors, ready_tx) = (
            homes.clone(),
            next.clone(),
            store.clone(),
            handle.clone(),
            at_door.clone(),
            errors.clone(),
            ready_tx.clone(),
        );
        let (courier_id, dispatcher_id) = (courier.id.clone(), dispatcher.id.clone());
        preparers.push(std::thread::spawn(move || loop {
            let i = next.fetch_add(1, Ordering::Relaxed) % homes.len().max(1);
            let Some((home, door)) = homes.get(i) else {
                return;
            };
            // The camera's frame travels while the delivery is written.
            let frame = camera_sends_frame(&at_door, i);
            let now = now_ms();
            let d = handle.block_on(store.create_delivery(
                home,
                &courier_id,
                &dispatcher_id,
                now - 60_000,
                now + 3_600_000,
                "PARCEL",
                "in_home",
                door,
                now,
            ));
            let ready = match (d, frame) {
                (Ok(d), Some(f)) if hub_holds_frame(&at_door, i, f) => ReadyDoor {
                    home: i,
                    delivery_id: d.id,
                    camera_at: Instant::now(),
                },
                _ => {
                    errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            };
            // Ends once the couriers are done (the queue's receiver is dropped).
            if ready_tx.send(ready).is_err() {
                return;
            }
        }));
    }
    drop(ready_tx);
    let started = Instant::now();
    let end = started + args.duration;
    let running = crate::progress::timed(args.duration, "deciding");
    let mut threads = Vec::new();
    for _ in 0..args.concurrency {
        let at_door = at_door.clone();
        let (allowed, refused, errors, latencies, pending, ready_rx, refreshed) = (
            allowed.clone(),
            refused.clone(),
            errors.clone(),
            latencies.clone(),
            pending.clone(),
            ready_rx.clone(),
            refreshed.clone(),
        );
        let (base, token, schedule) = (base.clone(), token.clone(), schedule.clone());
        threads.push(std::thread::spawn(move || {
            let agent = ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(30))
                .build();
            let mut mine = Vec::new();
            while Instant::now() < end {
                let next_door = ready_rx.lock().ok().and_then(|rx| {
                    rx.recv_timeout(end.saturating_duration_since(Instant::now()))
                        .ok()
                });
                let Some(door) = next_door else { break };
                // A door that waited in the queue has its camera stream again (not
                // timed), so the token's statement is fresh at the lock.
                if door.camera_at.elapsed() > READY_FRESH {
                    refreshed.fetch_add(1, Ordering::Relaxed);
                    if !door_camera_streams(&at_door, door.home) {
                        errors.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                }
                let body =
                    json!({"lat": LAT, "lon": LON, "accuracy_m": 5.0, "parcel_ref": "PARCEL"})
                        .to_string();
                // Closed loop: now. Open loop: the request's slot on the schedule,
                // waited for if still ahead.
                let t = match &schedule {
                    Some((every, slots)) => {
                        let k = slots.fetch_add(1, Ordering::Relaxed);
                        let due = started + every.mul_f64(k as f64);
                        if due >= end {
                            break;
                        }
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                        due
                    }
                    None => Instant::now(),
                };
                let id = door.delivery_id;
                if let Ok(mut p) = pending.lock() {
                    p.insert(id.clone(), t);
                }
                let r = agent
                    .post(&format!("{base}/api/v1/deliveries/{id}/entry"))
                    .set("Authorization", &format!("Bearer {token}"))
                    .set("Content-Type", "application/json")
                    .send_string(&body);
                let ms = t.elapsed().as_secs_f64() * 1000.0;
                match r.ok().and_then(|r| r.into_string().ok()) {
                    Some(text) if text.contains("\"allowed\":true") => {
                        allowed.fetch_add(1, Ordering::Relaxed);
                        mine.push(ms);
                    }
                    Some(_) => {
                        refused.fetch_add(1, Ordering::Relaxed);
                        mine.push(ms);
                        if let Ok(mut p) = pending.lock() {
                            p.remove(&id);
                        }
                    }
                    None => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut p) = pending.lock() {
                            p.remove(&id);
                        }
                    }
                }
            }
            if let Ok(mut l) = latencies.lock() {
                l.extend(mine);
            }
        }));
    }
    let _ = tokio::task::spawn_blocking(move || {
        for t in threads {
            let _ = t.join();
        }
        // The couriers are done: the queue's end goes, and the dispatchers stop.
        drop(ready_rx);
        for p in preparers {
            let _ = p.join();
        }
    })
    .await;
    running.finish_and_clear();
    let elapsed = started.elapsed().as_secs_f64();
    // Let the last accepted unlocks reach their locks (bounded: a lost one is reported
    // as `unlocks_measured` short of `allowed`).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let retracted = retracted_signal.notified();
        tokio::pin!(retracted);
        retracted.as_mut().enable();
        if pending.lock().map(|p| p.is_empty()).unwrap_or(true) {
            break;
        }
        if tokio::time::timeout_at(deadline, retracted).await.is_err() {
            break;
        }
    }
    let mut lat = latencies.lock().map(|v| v.clone()).unwrap_or_default();
    lat.sort_by(|a, b| a.total_cmp(b));
    let mut ub = unlock_ms.lock().map(|v| v.clone()).unwrap_or_default();
    ub.sort_by(|a, b| a.total_cmp(b));
    let mut tr = transit.lock().map(|v| v.clone()).unwrap_or_default();
    tr.sort_by(|a, b| a.total_cmp(b));
    let decisions = lat.len() as f64;
    for c in clients {
        let _ = c.disconnect().await;
    }
    Ok(json!({
        "homes": args.homes,
        "decisions_per_s": ((decisions / elapsed.max(1e-9)) * 10.0).round() / 10.0,
        "decision_latency_ms": {"p50": pct(&lat, 0.50), "p99": pct(&lat, 0.99)},
        "unlock_to_bolt_ms": {"p50": pct(&ub, 0.50), "p99": pct(&ub, 0.99)},
        "concurrency": args.concurrency,
        "rate_per_s": args.rate,
        "duration_s": (elapsed * 10.0).round() / 10.0,
        "allowed": allowed.load(Ordering::Relaxed),
        "refused": refused.load(Ordering::Relaxed),
        "errors": errors.load(Ordering::Relaxed),
        "lock_refusals": lock_refusals.load(Ordering::Relaxed),
        "doors_refreshed": refreshed.load(Ordering::Relaxed),
        "unlocks_measured": ub.len(),
        "signed_to_bolt_ms": {"p50": pct(&tr, 0.50), "p99": pct(&tr, 0.99)},
        "database": if args.database_url.is_some() { "external" } else { "sqlite" },
        "broker": if args.mqtt_url.is_some() { "external" } else { "embedded" },
    }))
}
