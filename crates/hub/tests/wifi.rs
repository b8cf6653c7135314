//! Law 7 end to end: a real hub (embedded broker, SQLite), a real lock agent over a
//! simulated home and a real camera agent (synthetic source) enrolled through the API,
//! the camera with a Wi-Fi sensor on a wpa_supplicant control socket served by a test
//! peer (a Unix datagram socket speaking the control-interface protocol).
//!
//! The story: a courier is inside; the camera's link is cut (the jammer) and the hub
//! raises `camera_lost_during_delivery`; meanwhile the camera's wpa_supplicant reports
//! repeated `CTRL-EVENT-DISCONNECTED ... reason=7`; the camera records the attack in its
//! outbox; when the link is back the evidence is uploaded, and the owner's alerts and
//! timeline name the attack and tie it to the outage.

mod support;
use support::*;

use serde_json::{json, Value};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;
use threshold_agent::wifi::LinkDetectorConfig;
use threshold_agent::{
    run_camera, run_lock, run_wifi_sensor, CameraConfig, LinkControl, LockConfig, LockDriverConfig,
    SimulatedHome, SourceConfig, WifiSensorAgentConfig, WifiSensorConfig,
};
use threshold_hub::HubConfig;
use threshold_proto::body::BoltState;
use threshold_store::testing;
use tokio::sync::watch;

const BSSID: &str = "02:00:00:00:01:00";

/// A wpa_supplicant control interface for tests: answers PING, ATTACH, DETACH and
/// SIGNAL_POLL; sends the scripts it is given to the attached client as unsolicited
/// events, `gap` apart.
struct SupplicantPeer {
    attached: Arc<AtomicBool>,
    script_tx: mpsc::Sender<Vec<String>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SupplicantPeer {
    fn start(path: &Path, gap: Duration) -> SupplicantPeer {
        let sock = UnixDatagram::bind(path).expect("bind peer socket");
        let attached = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (script_tx, script_rx) = mpsc::channel::<Vec<String>>();
        let (a, s) = (attached.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut client: Option<PathBuf> = None;
            let mut buf = [0u8; 4096];
            // Script events still to send, and when the next one is due: a real
            // supplicant reports them `gap` apart, so they are paced by the deadline
            // the socket's receive waits for (no sleep).
            let mut pending: std::collections::VecDeque<String> = Default::default();
            let mut due = std::time::Instant::now();
            while !s.load(Ordering::Relaxed) {
                let wait = if pending.is_empty() {
                    Duration::from_millis(50)
                } else {
                    due.saturating_duration_since(std::time::Instant::now())
                        .max(Duration::from_millis(1))
                };
                sock.set_read_timeout(Some(wait)).unwrap();
                if let Ok((n, from)) = sock.recv_from(&mut buf) {
                    let Some(from) = from.as_pathname().map(Path::to_path_buf) else {
                        continue;
                    };
                    let cmd = String::from_utf8_lossy(&buf[..n]).to_string();
                    let reply = match cmd.as_str() {
                        "PING" => "PONG\n",
                        "ATTACH" => {
                            client = Some(from.clone());
                            a.store(true, Ordering::Relaxed);
                            "OK\n"
                        }
                        "DETACH" => {
                            client = None;
                            "OK\n"
                        }
                        "SIGNAL_POLL" => "RSSI=-47\nLINKSPEED=144\nNOISE=9999\nFREQUENCY=2437\n",
                        _ => "UNKNOWN COMMAND\n",
                    };
                    let _ = sock.send_to(reply.as_bytes(), &from);
                }
                if let Ok(script) = script_rx.try_recv() {
                    if pending.is_empty() {
                        due = std::time::Instant::now();
                    }
                    pending.extend(script);
                }
                if !pending.is_empty() && std::time::Instant::now() >= due {
                    let ev = pending.pop_front().unwrap();
                    if let Some(c) = &client {
                        let _ = sock.send_to(ev.as_bytes(), c);
                    }
                    due += gap;
                }
            }
        });
        SupplicantPeer {
            attached,
            script_tx,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for SupplicantPeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A hub with an owner, a courier, a dispatcher and a home.
struct Env {
    hub: threshold_hub::Hub,
    base: String,
    owner: String,
    courier: String,
    dispatcher: String,
    home_id: String,
    _dir: testing::TempDir,
}

const LAT: f64 = 52.37;
const LON: f64 = 4.89;
/// Device kinds' outbox, detector and agents as in production; the detector's quiet
/// window is shortened so the final report comes 2 s after the last disconnect.
fn detector() -> LinkDetectorConfig {
    LinkDetectorConfig {
        window_s: 2.0,
        quick_reconnect_s: 2.0,
        ..LinkDetectorConfig::default()
    }
}

impl Env {
    async fn start(offline_grace_ms: i64) -> Env {
        let dir = testing::TempDir::new("wifi-hub").unwrap();
        let cfg = HubConfig {
            data_dir: dir.path().to_owned(),
            http_addr: "127.0.0.1:0".parse().unwrap(),
            embedded_mqtt_addr: "127.0.0.1:0".parse().unwrap(),
            mqtt_topic_prefix: format!("thr-wifi-{}", threshold_store::new_id()),
            offline_grace_ms,
            ..Default::default()
        };
        let hub = threshold_hub::start(cfg).await.unwrap();
        let base = format!("http://{}", hub.http_addr);
        let hash = threshold_hub::auth::hash_password("admin-password").unwrap();
        hub.state
            .store
            .create_user(threshold_store::Role::Admin, "admin", "Admin", &hash, 0)
            .await
            .unwrap();
        let admin = login(&base, "admin", "admin-password").await;
        for (role, name) in [
            ("owner", "olivia"),
            ("courier", "carl"),
            ("dispatcher", "dora"),
        ] {
            let (s, b) = call(
                "POST",
                format!("{base}/api/v1/admin/users"),
                Some(&admin),
                Some(json!({"role": role, "username": name, "password": "a-long-password"})),
            )
            .await;
            assert_eq!(s, 201, "{b}");
        }
        let owner = login(&base, "olivia", "a-long-password").await;
        let courier = login(&base, "carl", "a-long-password").await;
        let dispatcher = login(&base, "dora", "a-long-password").await;
        let home_id = support::home(&base, &owner, "Flat 3", LAT, LON).await;
        support::trust(&base, &owner, &home_id, &dispatcher).await;
        Env {
            hub,
            base,
            owner,
            courier,
            dispatcher,
            home_id,
            _dir: dir,
        }
    }

    async fn pairing(&self, kind: &str, name: &str) -> String {
        support::pairing_code(&self.base, &self.owner, &self.home_id, kind, name).await
    }

    async fn get(&self, path: &str) -> Value {
        call(
            "GET",
            format!("{}{path}", self.base),
            Some(&self.owner),
            None,
        )
        .await
        .1
    }

    async fn alerts(&self) -> Value {
        self.get("/api/v1/alerts").await
    }

    async fn timeline(&self) -> Value {
        self.get(&format!(
            "/api/v1/homes/{}/timeline?limit=1000",
            self.home_id
        ))
        .await
    }

    async fn devices(&self) -> Value {
        self.get(&format!("/api/v1/homes/{}/devices", self.home_id))
            .await
    }

    async fn device_id(&self, kind: &str) -> String {
        let d = self.devices().await;
        d.as_array()
            .and_then(|a| a.iter().find(|x| x["kind"] == kind))
            .and_then(|c| c["id"].as_str().map(str::to_owned))
            .unwrap()
    }
}

fn find(list: Value, kind: &str) -> Option<Value> {
    list.as_array()
        .and_then(|a| a.iter().find(|x| x["kind"] == kind).cloned())
}

fn count(list: &Value, kind: &str) -> usize {
    list.as_array()
        .map(|a| a.iter().filter(|x| x["kind"] == kind).count())
        .unwrap_or(0)
}

fn disconnect_script() -> Vec<String> {
    let mut script = Vec::new();
    for _ in 0..4 {
        script.push(format!("<3>CTRL-EVENT-DISCONNECTED bssid={BSSID} reason=7"));
        script.push(format!(
            "<3>CTRL-EVENT-CONNECTED - Connection to {BSSID} completed [id=0 id_str=]"
        ));
    }
    script
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deauth_attack_during_a_delivery_is_named_and_tied_to_the_camera_outage() {
    let env = Env::start(60_000).await;
    let (base, owner, courier, dispatcher, home_id) = (
        env.base.clone(),
        env.owner.clone(),
        env.courier.clone(),
        env.dispatcher.clone(),
        env.home_id.clone(),
    );
    let (lat, lon) = (LAT, LON);
    let hub = &env.hub;
    let pairing = |kind: &'static str, name: &'static str| env.pairing(kind, name);

    // The camera's wpa_supplicant.
    let wpa_dir = testing::TempDir::new("wifi-wpa").unwrap();
    let ctrl = wpa_dir.path().join("wlan0");
    let peer = SupplicantPeer::start(&ctrl, Duration::from_millis(100));

    // Agents.
    let sim = SimulatedHome::new();
    sim.set_motor_delay(Duration::from_millis(50));
    let lock_dir = testing::TempDir::new("wifi-lock").unwrap();
    let cam_dir = testing::TempDir::new("wifi-cam").unwrap();
    let mut lcfg = LockConfig::new(lock_dir.path(), LockDriverConfig::Simulator(sim.clone()));
    lcfg.common.hub_url = Some(base.clone());
    lcfg.common.pairing_code = Some(pairing("lock", "Front door").await);
    let mut ccfg = CameraConfig::new(cam_dir.path());
    ccfg.source = SourceConfig::Synthetic {
        width: 160,
        height: 120,
    };
    ccfg.common.hub_url = Some(base.clone());
    ccfg.common.pairing_code = Some(pairing("camera", "Hall").await);
    let mut wifi = WifiSensorConfig::supplicant(&ctrl);
    wifi.supplicant_local_dir = Some(wpa_dir.path().to_owned());
    wifi.link_detector = detector();
    let wifi_stats = wifi.stats.clone();
    ccfg.wifi = Some(wifi);
    let cam_link: LinkControl = ccfg.common.link_control.clone();
    let (lstop, lrx) = watch::channel(false);
    let (cstop, crx) = watch::channel(false);
    let lock_task = tokio::spawn(run_lock(lcfg, lrx));
    let cam_task = tokio::spawn(run_camera(ccfg, crx));

    let get = |path: String| {
        let (base, owner) = (base.clone(), owner.clone());
        async move {
            call("GET", format!("{base}{path}"), Some(&owner), None)
                .await
                .1
        }
    };
    let alerts = || get("/api/v1/alerts".to_owned());
    let timeline = || get(format!("/api/v1/homes/{home_id}/timeline?limit=1000"));

    eventually(30, "camera and lock live, sensor attached", || async {
        let d = get(format!("/api/v1/homes/{home_id}/devices")).await;
        let live = d
            .as_array()
            .is_some_and(|a| a.len() == 2 && a.iter().all(|x| x["liveness"] == "live"));
        (live && peer.attached.load(Ordering::Relaxed)).then_some(())
    })
    .await;
    let camera_id = eventually_on(&env.hub.state, 5, "camera id", || async {
        let d = get(format!("/api/v1/homes/{home_id}/devices")).await;
        d.as_array()
            .and_then(|a| a.iter().find(|x| x["kind"] == "camera"))
            .and_then(|c| c["id"].as_str().map(str::to_owned))
    })
    .await;

    // A courier is inside.
    let courier_id = call("GET", format!("{base}/api/v1/me"), Some(&courier), None)
        .await
        .1["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let now = now_ms();
    let (s, d) = call(
        "POST",
        format!("{base}/api/v1/deliveries"),
        Some(&dispatcher),
        Some(
            json!({"home_id": home_id, "courier_id": courier_id, "window_start_ms": now - 60_000,
            "window_end_ms": now + 3_600_000, "parcel_ref": "PARCEL-W"}),
        ),
    )
    .await;
    assert_eq!(s, 201, "{d}");
    let delivery_id = d["id"].as_str().unwrap().to_owned();
    let (s, e) = call(
        "POST",
        format!("{base}/api/v1/deliveries/{delivery_id}/entry"),
        Some(&courier),
        Some(json!({"lat": lat, "lon": lon, "accuracy_m": 5.0, "parcel_ref": "PARCEL-W"})),
    )
    .await;
    assert_eq!((s, e["allowed"].clone()), (200, json!(true)), "{e}");
    assert!(
        sim.wait_bolt(BoltState::Unlocked, Duration::from_secs(5))
            .await
    );

    // The attack: the camera's link goes (the jammer), and its Wi-Fi stack sees
    // deauthentications with reason 7, each followed by a quick reconnect.
    let attack_start = now_ms();
    cam_link.set_blocked(true);
    let lost = eventually_on(
        &env.hub.state,
        10,
        "camera_lost_during_delivery",
        || async { find(alerts().await, "camera_lost_during_delivery") },
    )
    .await;
    assert_eq!(lost["severity"], "critical");
    peer.script_tx.send(disconnect_script()).unwrap();
    // The detector reports while the attack goes on, and once more when it is over;
    // both reports wait in the camera's outbox, since the link is down.
    eventually(
        20,
        "both reports recorded in the camera's outbox",
        || async { (wifi_stats.recorded.load(Ordering::Relaxed) >= 2).then_some(()) },
    )
    .await;
    assert!(
        find(alerts().await, "wifi_attack").is_none(),
        "nothing can reach the hub while the link is cut"
    );
    let attack_end = now_ms();

    // The link is back: the evidence is uploaded with the rest of the backlog.
    cam_link.set_blocked(false);
    let wifi_alert = eventually_on(
        &env.hub.state,
        20,
        "the final wifi_attack report merged into one alert",
        || async {
            find(alerts().await, "wifi_attack").filter(|a| a["evidence"]["ongoing"] == false)
        },
    )
    .await;
    let msg = wifi_alert["message"].as_str().unwrap();
    assert!(
        msg.starts_with("Camera Hall offline: Wi-Fi deauthentication attack ("),
        "{msg}"
    );
    assert!(msg.contains(&format!("network {BSSID}")), "{msg}");
    assert!(msg.contains("reason 7"), "{msg}");
    assert!(msg.contains("4 forced disconnects"), "{msg}");
    assert!(msg.contains("UTC"), "{msg}");
    assert_eq!(wifi_alert["severity"], "critical", "during a delivery");
    assert_eq!(wifi_alert["delivery_id"], delivery_id.as_str());
    assert_eq!(wifi_alert["device_id"], camera_id.as_str());
    let ev = &wifi_alert["evidence"];
    assert_eq!(ev["source"], "link");
    assert_eq!(ev["kind"], "deauth_attack");
    assert_eq!(ev["report"]["reason_codes"]["7"], 4);
    assert_eq!(ev["outage"]["camera_id"], camera_id.as_str());
    assert_eq!(ev["explains_alert_ids"], json!([lost["id"]]));
    let (start_ms, end_ms) = (
        ev["start_ms"].as_i64().unwrap(),
        ev["end_ms"].as_i64().unwrap(),
    );
    assert!(
        attack_start <= start_ms && start_ms <= end_ms && end_ms <= attack_end,
        "{attack_start} <= {start_ms} <= {end_ms} <= {attack_end}"
    );
    assert!(ev["outage"]["from_ms"].as_i64().unwrap() <= start_ms);
    let one = alerts()
        .await
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "wifi_attack")
        .count();
    assert_eq!(one, 1, "the ongoing and the final report are one attack");

    // The earlier outage alert now says what happened.
    let lost = find(alerts().await, "camera_lost_during_delivery").unwrap();
    let lost_msg = lost["message"].as_str().unwrap();
    assert!(
        lost_msg.contains("Cause: Wi-Fi deauthentication attack (network"),
        "{lost_msg}"
    );
    let ex = &lost["evidence"]["explanation"];
    assert_eq!(ex["cause"], "Wi-Fi deauthentication attack");
    assert_eq!(ex["alert_id"], wifi_alert["id"]);
    assert_eq!(ex["start_ms"], start_ms);
    assert!(ex["original_message"]
        .as_str()
        .unwrap()
        .starts_with("Camera Hall stopped watching Front door"));

    // The timeline: the attack at its start, tied to the outage and the delivery.
    let tl = eventually_on(
        &env.hub.state,
        10,
        "wifi_attack on the timeline",
        || async {
            let t = timeline().await;
            find(t, "wifi_attack").filter(|t| t["detail"]["ongoing"] == false)
        },
    )
    .await;
    assert_eq!(tl["time_ms"], start_ms);
    assert_eq!(tl["device_id"], camera_id.as_str());
    assert_eq!(tl["delivery_id"], delivery_id.as_str());
    assert_eq!(tl["detail"]["message"], wifi_alert["message"]);
    assert_eq!(tl["detail"]["outage"]["camera_id"], camera_id.as_str());
    // The evidence comes with the reconnect, usually before the camera is LIVE again:
    // the outage is still open (`to_ms` null) or ended after the attack.
    let to = &tl["detail"]["outage"]["to_ms"];
    assert!(
        to.is_null() || to.as_i64().unwrap() >= end_ms,
        "outage end {to} vs attack end {end_ms}"
    );
    let tl_all = timeline().await;
    let n = tl_all
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["kind"] == "wifi_attack")
        .count();
    assert_eq!(n, 1);
    assert!(
        tl_all
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["kind"] == "liveness" && t["detail"]["from"] == "live"),
        "the outage itself is on the timeline"
    );

    // The evidence row.
    let owner_id = call("GET", format!("{base}/api/v1/me"), Some(&owner), None)
        .await
        .1["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The row is written after the alert and the timeline entry, and nothing announces
    // it: re-checked on an interval until it is closed (or the deadline).
    let rows = eventually(10, "the evidence row closed", || async {
        let rows = hub
            .state
            .store
            .wifi_attacks(&owner_id, &home_id, 10)
            .await
            .unwrap();
        rows.iter().all(|r| !r.ongoing).then_some(rows)
    })
    .await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let r = &rows[0];
    assert!(!r.ongoing);
    assert_eq!(r.camera_id.as_deref(), Some(camera_id.as_str()));
    assert_eq!(r.alert_id.as_deref(), wifi_alert["id"].as_str());
    assert_eq!(r.delivery_id.as_deref(), Some(delivery_id.as_str()));
    assert!(r.explained_alert_ids.contains(lost["id"].as_str().unwrap()));

    let _ = lstop.send(true);
    let _ = cstop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), lock_task).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), cam_task).await;
    drop(peer);
    env.hub.stop().await;
}

/// A standalone Wi-Fi sensor reports the attack while the camera is cut off, before the
/// hub's `device_offline` notice: the notice is explained when it comes, and the end of
/// the outage is recorded when the camera is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wifi_sensor_evidence_explains_a_later_offline_notice() {
    let env = Env::start(2_000).await;
    let wpa_dir = testing::TempDir::new("wifi-wpa").unwrap();
    let ctrl = wpa_dir.path().join("wlan1");
    let peer = SupplicantPeer::start(&ctrl, Duration::from_millis(100));

    let cam_dir = testing::TempDir::new("wifi-cam").unwrap();
    let mut ccfg = CameraConfig::new(cam_dir.path());
    ccfg.source = SourceConfig::Synthetic {
        width: 160,
        height: 120,
    };
    ccfg.common.hub_url = Some(env.base.clone());
    ccfg.common.pairing_code = Some(env.pairing("camera", "Hall").await);
    let cam_link = ccfg.common.link_control.clone();
    let sensor_dir = testing::TempDir::new("wifi-sensor").unwrap();
    let mut wifi = WifiSensorConfig::supplicant(&ctrl);
    wifi.supplicant_local_dir = Some(wpa_dir.path().to_owned());
    wifi.link_detector = detector();
    let mut scfg = WifiSensorAgentConfig::new(sensor_dir.path(), wifi);
    scfg.common.hub_url = Some(env.base.clone());
    scfg.common.pairing_code = Some(env.pairing("wifi_sensor", "Hall sensor").await);
    let (cstop, crx) = watch::channel(false);
    let (sstop, srx) = watch::channel(false);
    let cam_task = tokio::spawn(run_camera(ccfg, crx));
    let sensor_task = tokio::spawn(run_wifi_sensor(scfg, srx));

    eventually(30, "camera and sensor live, sensor attached", || async {
        let d = env.devices().await;
        let live = d
            .as_array()
            .is_some_and(|a| a.len() == 2 && a.iter().all(|x| x["liveness"] == "live"));
        (live && peer.attached.load(Ordering::Relaxed)).then_some(())
    })
    .await;
    let camera_id = env.device_id("camera").await;
    let sensor_id = env.device_id("wifi_sensor").await;

    // The jammer cuts the camera off; the sensor's own link stays up.
    cam_link.set_blocked(true);
    eventually_on(
        &env.hub.state,
        10,
        "the camera's outage on the timeline",
        || async {
            let tl = env.timeline().await;
            tl.as_array()
                .and_then(|a| {
                    a.iter().find(|t| {
                        t["kind"] == "liveness"
                            && t["device_id"] == camera_id.as_str()
                            && t["detail"]["from"] == "live"
                    })
                })
                .map(|_| ())
        },
    )
    .await;
    peer.script_tx.send(disconnect_script()).unwrap();
    let first = eventually_on(
        &env.hub.state,
        10,
        "wifi_attack alert from the sensor",
        || async { find(env.alerts().await, "wifi_attack") },
    )
    .await;
    assert_eq!(first["severity"], "warning", "no delivery: {first}");
    assert_eq!(first["device_id"], camera_id.as_str());
    assert_eq!(
        first["evidence"]["reporter"]["device_id"],
        sensor_id.as_str()
    );
    assert_eq!(first["evidence"]["reporter"]["kind"], "wifi_sensor");
    let msg = first["message"].as_str().unwrap();
    assert!(
        msg.starts_with("Camera Hall offline: Wi-Fi deauthentication attack (network 02:00:00:00:01:00, reason 7"),
        "{msg}"
    );

    // The offline notice comes after the grace period, and is explained at once.
    let offline = eventually_on(&env.hub.state, 20, "device_offline explained", || async {
        find(env.alerts().await, "device_offline").filter(|a| {
            a["message"]
                .as_str()
                .is_some_and(|m| m.contains("Cause: Wi-Fi deauthentication attack ("))
        })
    })
    .await;
    assert!(
        offline["created_ms"].as_i64().unwrap() > first["created_ms"].as_i64().unwrap(),
        "the evidence came first"
    );
    assert_eq!(
        offline["evidence"]["explanation"]["alert_id"], first["id"],
        "{offline}"
    );
    assert_eq!(count(&env.alerts().await, "wifi_attack"), 1);

    // The camera comes back: the outage's end is recorded with the attack.
    cam_link.set_blocked(false);
    let tl = eventually_on(
        &env.hub.state,
        20,
        "outage end on the wifi_attack timeline entry",
        || async {
            find(env.timeline().await, "wifi_attack").filter(|t| {
                t["detail"]["outage"]["to_ms"].is_i64() && t["detail"]["ongoing"] == false
            })
        },
    )
    .await;
    assert_eq!(tl["device_id"], camera_id.as_str());
    let explains = tl["detail"]["explains_alert_ids"].as_array().unwrap();
    assert!(explains.contains(&offline["id"]), "{tl}");
    assert_eq!(count(&env.timeline().await, "wifi_attack"), 1);

    let _ = cstop.send(true);
    let _ = sstop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), cam_task).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), sensor_task).await;
    drop(peer);
    env.hub.stop().await;
}
