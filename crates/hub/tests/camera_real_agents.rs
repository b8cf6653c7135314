//! The attack of DESIGN.md, end to end, through the real pieces: a real hub (HTTP +
//! gateway + recorder + webhooks), a real transport (the hub's own MQTT endpoint; Mosquitto with
//! and through Mosquitto), SQLite, the real camera agent (`run_camera`,
//! synthetic source) and the real lock agent (`run_lock` over a `SimulatedHome`), both
//! enrolled through the API with pairing codes. An owner's live-view WebSocket and an
//! owner's webhook receiver (a real HTTP server verifying Standard Webhooks
//! signatures) watch the whole time.
//!
//! Every wait is on something the system announces (the hub's event bus and live
//! frames, the viewer's messages, the simulated home's bolt), with a deadline; nothing
//! sleeps.
//!
//! Timing: the hub runs with `live_window_ms = 1000` (the default). The alert must come
//! within 1.5 s of the last frame the hub received; detection happens when the live
//! window runs out after the last frame's capture, plus one monitor tick (50 ms) and
//! the alert path.
//!
//! Outage length: the issue says 20 s; this test cuts the camera for 6 s, measured on
//! the hub's own clock as stamped on its messages to the owner's viewer (a status at
//! least every 500 ms wakes the test; no test timer). What is being
//! proved (alert latency, no LIVE during the outage, refusal, two door openings while
//! jammed, backlog recovered without gaps) does not depend on the length beyond the
//! few seconds the door sequence takes, and the suite shares two cores with other
//! builders. Set THRESHOLD_CAMERA_OUTAGE_S=20 to run the full length.

mod support;
use support::{call, call_raw, eventually_on, now_ms, until_on};

use futures_util::StreamExt;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use threshold_agent::{LinkControl, SimulatedHome};
use threshold_hub::HubConfig;
use threshold_proto::body::BoltState;
use threshold_store::testing;
use tokio::sync::watch;

fn config(dir: &Path, external_mqtt: bool) -> HubConfig {
    HubConfig {
        data_dir: dir.to_owned(),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        mqtt_url: external_mqtt.then(|| "mqtt://127.0.0.1:1883".to_owned()),
        embedded_mqtt_addr: "127.0.0.1:0".parse().unwrap(),
        mqtt_topic_prefix: format!("thr-cam-{}", threshold_store::new_id()),
        live_window_ms: 1000,
        recording_tail_ms: 2000,
        ..Default::default()
    }
}

/// What the webhook receiver got: (webhook-id, timestamp, signature, body).
type Received = Arc<Mutex<Vec<(String, String, String, String)>>>;

/// A real HTTP server on a thread. It answers 500 to the first request (to exercise
/// retries) and 204 afterwards.
fn webhook_receiver() -> (String, Received) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks/threshold", l.local_addr().unwrap());
    let got: Received = Arc::default();
    let g = got.clone();
    std::thread::spawn(move || {
        let mut n = 0;
        for conn in l.incoming() {
            let Ok(mut s) = conn else { continue };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            let _ = r.read_line(&mut line);
            let (mut id, mut ts, mut sig, mut len) =
                (String::new(), String::new(), String::new(), 0);
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                    break;
                }
                let (k, v) = h.split_once(':').unwrap_or(("", ""));
                let v = v.trim().to_owned();
                match k.to_ascii_lowercase().as_str() {
                    "webhook-id" => id = v,
                    "webhook-timestamp" => ts = v,
                    "webhook-signature" => sig = v,
                    "content-length" => len = v.parse().unwrap_or(0),
                    _ => {}
                }
            }
            let mut body = vec![0u8; len];
            let _ = r.read_exact(&mut body);
            n += 1;
            let status = if n == 1 {
                "500 Internal Server Error"
            } else {
                "204 No Content"
            };
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            g.lock()
                .unwrap()
                .push((id, ts, sig, String::from_utf8_lossy(&body).into_owned()));
        }
    });
    (url, got)
}

struct World {
    hub: Option<threshold_hub::Hub>,
    base: String,
    owner: String,
    other_owner: String,
    courier: String,
    dispatcher: String,
    home_id: String,
    camera_id: String,
    sim: SimulatedHome,
    cam_link: LinkControl,
    stops: Vec<watch::Sender<bool>>,
    _dirs: Vec<testing::TempDir>,
}

const LAT: f64 = 48.85;
const LON: f64 = 2.35;

impl World {
    async fn start(cfg: HubConfig, hub_dir: testing::TempDir) -> World {
        let hub = threshold_hub::start(cfg).await.unwrap();
        let base = format!("http://{}", hub.http_addr);
        let admin = support::admin(&hub).await;
        let [owner, other_owner, courier, dispatcher]: [String; 4] = support::accounts(
            &base,
            &admin,
            &[
                ("owner", "olivia"),
                ("owner", "oscar"),
                ("courier", "carl"),
                ("dispatcher", "dora"),
            ],
        )
        .await
        .try_into()
        .unwrap();
        let home_id = support::home(&base, &owner, "House 9", LAT, LON).await;
        support::trust(&base, &owner, &home_id, &dispatcher).await;
        let devices = support::agents::start(&base, &owner, &home_id).await;
        let mut dirs = vec![hub_dir];
        dirs.extend(devices.dirs);
        let mut w = World {
            hub: Some(hub),
            base,
            owner,
            other_owner,
            courier,
            dispatcher,
            home_id,
            camera_id: String::new(),
            sim: devices.sim,
            cam_link: devices.cam_link,
            stops: devices.stops,
            _dirs: dirs,
        };
        until_on(&w.hub().state, 30, "lock and camera live", || async {
            let d = w.devices().await;
            d.as_array()
                .is_some_and(|a| a.len() == 2 && a.iter().all(|x| x["liveness"] == "live"))
        })
        .await;
        let d = w.devices().await;
        w.camera_id = d
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["kind"] == "camera")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        w
    }

    fn hub(&self) -> &threshold_hub::Hub {
        self.hub.as_ref().unwrap()
    }

    /// How many of the lock's `event_type` records the hub has stored.
    async fn lock_logged(&self, event_type: &str) -> usize {
        let lock = self
            .devices()
            .await
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["kind"] == "lock")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let owner_id = call(
            "GET",
            format!("{}/api/v1/me", self.base),
            Some(&self.owner),
            None,
        )
        .await
        .1["id"]
            .as_str()
            .unwrap()
            .to_owned();
        self.hub()
            .state
            .store
            .device_events(&owner_id, &lock, 1000)
            .await
            .unwrap()
            .iter()
            .filter(|e| e.event_type == event_type)
            .count()
    }

    async fn devices(&self) -> Value {
        call(
            "GET",
            format!("{}/api/v1/homes/{}/devices", self.base, self.home_id),
            Some(&self.owner),
            None,
        )
        .await
        .1
    }

    async fn entry(&self, id: &str) -> Value {
        let (s, b) = call(
            "POST",
            format!("{}/api/v1/deliveries/{id}/entry", self.base),
            Some(&self.courier),
            Some(json!({"lat": LAT, "lon": LON, "accuracy_m": 5.0, "parcel_ref": "PARCEL-CAM"})),
        )
        .await;
        assert_eq!(s, 200, "{b}");
        b
    }

    async fn alerts(&self) -> Vec<Value> {
        call(
            "GET",
            format!("{}/api/v1/alerts", self.base),
            Some(&self.owner),
            None,
        )
        .await
        .1
        .as_array()
        .cloned()
        .unwrap_or_default()
    }

    async fn recording(&self, id: &str) -> Value {
        let (s, r) = call(
            "GET",
            format!("{}/api/v1/deliveries/{id}/recording", self.base),
            Some(&self.owner),
            None,
        )
        .await;
        // Not there yet: the recorder files it a moment after entry is granted.
        if s == 404 {
            return json!({"frames": [], "cameras": []});
        }
        assert_eq!(s, 200, "{r}");
        r
    }

    async fn timeline(&self) -> Vec<Value> {
        call(
            "GET",
            format!(
                "{}/api/v1/homes/{}/timeline?limit=500",
                self.base, self.home_id
            ),
            Some(&self.owner),
            None,
        )
        .await
        .1
        .as_array()
        .cloned()
        .unwrap_or_default()
    }

    async fn stop(mut self) {
        for s in &self.stops {
            let _ = s.send(true);
        }
        if let Some(h) = self.hub.take() {
            h.stop().await;
        }
    }
}

fn rd(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Viewer messages: (type, verdict, age_ms, time_ms).
type Seen = Arc<Mutex<Vec<(String, String, Option<i64>, i64)>>>;

/// The owner's live view of `camera`: what it was told, and a count of its messages
/// that changes with each one (so a test can wait for the next message).
async fn open_viewer(
    base: &str,
    token: &str,
    camera: &str,
) -> (Seen, tokio::sync::watch::Receiver<usize>) {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = format!(
        "{}/api/v1/devices/{camera}/live",
        base.replace("http://", "ws://")
    );
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("Authorization", format!("Bearer {token}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let (count_tx, count) = tokio::sync::watch::channel(0usize);
    tokio::spawn(async move {
        while let Some(Ok(m)) = ws.next().await {
            if let tokio_tungstenite::tungstenite::Message::Text(t) = m {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["type"] == "frame" {
                    // The JPEG is really there.
                    use base64::Engine;
                    let j = base64::engine::general_purpose::STANDARD
                        .decode(v["jpeg_base64"].as_str().unwrap())
                        .unwrap();
                    assert!(j.starts_with(&[0xFF, 0xD8]));
                }
                if v["type"] == "status" {
                    assert!(v["possibly_frozen"].is_boolean(), "{v}");
                }
                s.lock().unwrap().push((
                    v["type"].as_str().unwrap_or("").to_owned(),
                    v["verdict"].as_str().unwrap_or("").to_owned(),
                    v["age_ms"].as_i64(),
                    v["time_ms"].as_i64().unwrap_or(0),
                ));
                count_tx.send_modify(|n| *n += 1);
            }
        }
    });
    (seen, count)
}

async fn attack(w: World) {
    let outage_s: u64 = std::env::var("THRESHOLD_CAMERA_OUTAGE_S")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    // Webhook endpoint with a real receiver.
    let (hook_url, received) = webhook_receiver();
    let (s, hook) = call(
        "POST",
        format!("{}/api/v1/webhooks", w.base),
        Some(&w.owner),
        Some(
            json!({"url": hook_url, "description": "phone relay", "event_types": ["alert.raised"]}),
        ),
    )
    .await;
    assert_eq!(s, 201, "{hook}");
    let secret = hook["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let hook_id = hook["id"].as_str().unwrap().to_owned();

    // Live viewer from the start.
    let (seen, viewer_count) = open_viewer(&w.base, &w.owner, &w.camera_id).await;
    until_on(&w.hub().state, 10, "viewer sees live frames", || async {
        seen.lock()
            .unwrap()
            .iter()
            .any(|(t, v, _, _)| t == "frame" && v == "live")
    })
    .await;

    // Schedule, request entry at the door: allowed.
    let courier_id = call(
        "GET",
        format!("{}/api/v1/me", w.base),
        Some(&w.courier),
        None,
    )
    .await
    .1["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let now = now_ms();
    let (s, d) = call(
        "POST",
        format!("{}/api/v1/deliveries", w.base),
        Some(&w.dispatcher),
        Some(
            json!({"home_id": w.home_id, "courier_id": courier_id, "window_start_ms": now - 60_000,
            "window_end_ms": now + 3_600_000, "parcel_ref": "PARCEL-CAM"}),
        ),
    )
    .await;
    assert_eq!(s, 201, "{d}");
    let id = d["id"].as_str().unwrap().to_owned();
    let decision = w.entry(&id).await;
    assert_eq!(decision["allowed"], true, "{decision}");
    assert!(
        w.sim
            .wait_bolt(BoltState::Unlocked, Duration::from_secs(5))
            .await
    );
    // Recording is running with live frames.
    until_on(&w.hub().state, 10, "recording has live frames", || async {
        w.recording(&id).await["frames"]
            .as_array()
            .is_some_and(|f| f.len() >= 5)
    })
    .await;

    // The attack: the camera's link is cut; it keeps capturing.
    let cut_at = now_ms();
    w.cam_link.set_blocked(true);
    // API view during the outage, sampled by a background task each time the viewer
    // is told something (a status at least every 500 ms).
    let api_seen: Arc<Mutex<Vec<(String, i64)>>> = Arc::default();
    let (stop_poll, mut stop_rx) = tokio::sync::watch::channel(false);
    let poller = {
        let (base, owner, cam) = (w.base.clone(), w.owner.clone(), w.camera_id.clone());
        let api_seen = api_seen.clone();
        let mut told = viewer_count.clone();
        tokio::spawn(async move {
            loop {
                let (s, d) = call(
                    "GET",
                    format!("{base}/api/v1/devices/{cam}"),
                    Some(&owner),
                    None,
                )
                .await;
                assert_eq!(s, 200);
                api_seen
                    .lock()
                    .unwrap()
                    .push((d["liveness"].as_str().unwrap_or("").to_owned(), now_ms()));
                tokio::select! {
                    r = told.changed() => if r.is_err() { break },
                    _ = stop_rx.changed() => break,
                }
            }
        })
    };
    // The alert, within 1.5 s of the last frame the hub received.
    let alert = eventually_on(&w.hub().state, 5, "camera_lost alert", || async {
        w.alerts()
            .await
            .into_iter()
            .find(|a| a["kind"] == "camera_lost_during_delivery")
    })
    .await;
    assert_eq!(alert["severity"], "critical", "{alert}");
    assert_eq!(alert["delivery_id"], id.as_str(), "{alert}");
    let ev: Value = match &alert["evidence"] {
        Value::String(s) => serde_json::from_str(s).unwrap(),
        v => v.clone(),
    };
    let detected = ev["detected_ms"].as_i64().unwrap();
    let since_fresh = ev["since_last_fresh_ms"].as_i64().unwrap();
    assert!(
        since_fresh <= 1500,
        "alert {since_fresh} ms after last fresh evidence: {ev}"
    );

    // Entry for this delivery is refused now.
    let again = w.entry(&id).await;
    assert_eq!(again["allowed"], false, "{again}");
    assert!(
        again["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["code"] == "delivery_compromised"),
        "{again}"
    );

    // The door was still closed when the camera went: the hub has the lock relock at
    // once (its link is up; the camera's is cut).
    assert!(
        w.sim
            .wait_bolt(BoltState::Locked, Duration::from_secs(5))
            .await,
        "relocked on the hub's command"
    );
    // The courier's second entry: the door forced open and closed twice while the
    // camera is jammed; each move waits until the hub has heard of the one before.
    for _ in 0..2 {
        for (opening, event) in [(true, "door_opened"), (false, "door_closed")] {
            let before = w.lock_logged(event).await;
            if opening {
                w.sim.force_door_open();
            } else {
                w.sim.close_door();
            }
            until_on(
                &w.hub().state,
                10,
                &format!("the hub heard {event}"),
                || async { w.lock_logged(event).await > before },
            )
            .await;
        }
    }
    // The outage lasts `outage_s` from the cut, as the hub's own clock on its messages
    // to the viewer tells (it sends a status at least every 500 ms).
    let mut told = viewer_count.clone();
    let outage_over = || {
        seen.lock()
            .unwrap()
            .iter()
            .any(|(_, _, _, t)| *t >= cut_at + outage_s as i64 * 1000)
    };
    tokio::time::timeout(Duration::from_secs(outage_s * 2 + 10), async {
        while !outage_over() {
            told.changed().await.expect("the viewer is open");
        }
    })
    .await
    .expect("the viewer is told at least every 500 ms");
    let restored_at = now_ms();
    w.cam_link.set_blocked(false);

    // After reconnect: the outage frames are in the recording, recovered, no gaps.
    let rec = eventually_on(&w.hub().state, 30, "recording recovered", || async {
        let rec = w.recording(&id).await;
        let cam = &rec["cameras"][0];
        let frames = rec["frames"].as_array().cloned().unwrap_or_default();
        let covered = frames.iter().any(|f| {
            f["recovered"] == true && f["capture_ms"].as_i64().unwrap() >= restored_at - 1000
        });
        let gapless = cam["gaps"].as_array().is_some_and(|g| g.is_empty());
        (covered && gapless).then_some(rec)
    })
    .await;
    let frames = rec["frames"].as_array().unwrap().clone();
    let last_live_before = frames
        .iter()
        .filter(|f| f["recovered"] == false && f["received_ms"].as_i64().unwrap() <= detected)
        .map(|f| f["received_ms"].as_i64().unwrap())
        .max()
        .unwrap();
    assert!(
        detected - last_live_before <= 1500,
        "alert {} ms after the last frame received",
        detected - last_live_before
    );
    // Outage frames: recovered, every 200 ms of the outage has a frame.
    let recovered: Vec<i64> = frames
        .iter()
        .filter(|f| f["recovered"] == true)
        .map(|f| f["capture_ms"].as_i64().unwrap())
        .collect();
    assert!(
        recovered.len() as u64 >= outage_s * 5 * 8 / 10,
        "{} recovered frames for a {outage_s} s outage",
        recovered.len()
    );
    let segs = rec["cameras"][0]["segments"].as_array().unwrap();
    assert!(segs.iter().any(|s| s["recovered"] == true), "{segs:?}");
    let seqs: Vec<i64> = frames.iter().map(|f| f["seq"].as_i64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|p| p[1] == p[0] + 1),
        "gapless, in order"
    );

    // No API response and no viewer message during the outage said live once the hub
    // could know (after the alert) — and nothing ever said live about an old frame.
    let _ = stop_poll.send(true);
    poller.await.expect("the API sampler");
    for (l, t) in api_seen.lock().unwrap().iter() {
        if *t >= detected && *t < restored_at {
            assert_ne!(l, "live", "API said live at {t} during the outage");
        }
    }
    assert!(api_seen.lock().unwrap().iter().any(|(l, _)| l != "live"));
    {
        let v = seen.lock().unwrap();
        let during: Vec<_> = v
            .iter()
            .filter(|(_, _, _, t)| *t >= detected && *t < restored_at)
            .collect();
        assert!(
            during.len() >= 8,
            "status at least every 500 ms: {}",
            during.len()
        );
        for (ty, verdict, _, t) in &during {
            assert_ne!(
                verdict, "live",
                "viewer {ty} said live at {t} during the outage"
            );
        }
        for (ty, verdict, age, _) in v.iter() {
            if verdict == "live" {
                assert!(age.unwrap_or(0) <= 1000, "{ty} live with age {age:?}");
            }
        }
        // Gaps between viewer messages never exceed 500 ms.
        let times: Vec<i64> = v.iter().map(|x| x.3).collect();
        let worst = times.windows(2).map(|p| p[1] - p[0]).max().unwrap_or(0);
        assert!(worst <= 500, "viewer silent for {worst} ms");
    }

    // The timeline shows both door openings.
    until_on(
        &w.hub().state,
        10,
        "both door openings on the timeline",
        || async {
            w.timeline()
                .await
                .iter()
                .filter(|t| {
                    t["kind"] == "device.door_opened"
                        && t["time_ms"].as_i64().unwrap_or(0) >= cut_at
                })
                .count()
                >= 2
        },
    )
    .await;

    // The clip: one frame as JPEG, the whole as an AVI whose header we parse.
    let f0 = &frames[0];
    let (s, jpeg, ct) = call_raw(
        "GET",
        format!("{}{}", w.base, f0["url"].as_str().unwrap()),
        Some(&w.owner),
        None,
    )
    .await;
    assert_eq!((s, ct.as_str()), (200, "image/jpeg"));
    assert!(jpeg.starts_with(&[0xFF, 0xD8]) && jpeg.ends_with(&[0xFF, 0xD9]));
    let (s, avi, ct) = call_raw(
        "GET",
        format!("{}/api/v1/deliveries/{id}/recording.avi", w.base),
        Some(&w.owner),
        None,
    )
    .await;
    assert_eq!((s, ct.as_str()), (200, "video/x-msvideo"));
    assert_eq!(&avi[0..4], b"RIFF");
    assert_eq!(rd(&avi, 4) as usize, avi.len() - 8);
    assert_eq!(&avi[8..12], b"AVI ");
    assert_eq!(&avi[20..28], b"hdrlavih");
    let total = rd(&avi, 48) as usize;
    assert!(
        total >= frames.len(),
        "{total} frames in AVI, {} listed",
        frames.len()
    );
    assert_eq!(
        (rd(&avi, 64), rd(&avi, 68)),
        (160, 120),
        "size from the JPEG"
    );
    let movi = avi.windows(4).position(|x| x == b"movi").unwrap();
    assert_eq!(&avi[movi + 4..movi + 8], b"00dc");
    assert!(avi[movi + 12..].starts_with(&[0xFF, 0xD8]));
    let idx = avi.windows(4).rposition(|x| x == b"idx1").unwrap();
    assert_eq!(rd(&avi, idx + 4) as usize, total * 16);

    // Another owner sees none of it.
    for url in [
        format!("{}/api/v1/deliveries/{id}/recording", w.base),
        format!("{}/api/v1/deliveries/{id}/recording.avi", w.base),
        format!("{}{}", w.base, f0["url"].as_str().unwrap()),
        format!("{}/api/v1/webhooks/{hook_id}/deliveries", w.base),
    ] {
        let (s, b) = call("GET", url.clone(), Some(&w.other_owner), None).await;
        assert_eq!(s, 404, "{url}: {b}");
        assert_eq!(b["error"]["code"], "not_found", "{b}");
    }
    let (s, _) = call(
        "DELETE",
        format!("{}/api/v1/webhooks/{hook_id}", w.base),
        Some(&w.other_owner),
        None,
    )
    .await;
    assert_eq!(s, 404);

    // The courier cannot mark a compromised delivery delivered; the incident ended
    // with the lock's fresh "closed and locked", and the recording ends once the
    // camera is back (plus the 2 s tail configured here).
    let (s, b) = call(
        "POST",
        format!("{}/api/v1/deliveries/{id}/delivered", w.base),
        Some(&w.courier),
        None,
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (409, Some("delivery_compromised")),
        "{b}"
    );
    let (_, dv) = call(
        "GET",
        format!("{}/api/v1/deliveries/{id}", w.base),
        Some(&w.owner),
        None,
    )
    .await;
    assert_eq!(dv["state"], "ended_after_camera_loss", "{dv}");
    until_on(
        &w.hub().state,
        20,
        "recording closed after the session",
        || async { w.recording(&id).await["ends_ms"].as_i64().is_some() },
    )
    .await;

    // The webhook: retried after the receiver's 500, signed per Standard Webhooks.
    until_on(
        &w.hub().state,
        15,
        "camera_lost webhook delivered after a retry",
        || async {
            let (_, log) = call(
                "GET",
                format!("{}/api/v1/webhooks/{hook_id}/deliveries", w.base),
                Some(&w.owner),
                None,
            )
            .await;
            log.as_array().is_some_and(|l| {
                l.iter().any(|d| {
                    d["payload"]["data"]["kind"] == "camera_lost_during_delivery"
                        && d["state"] == "delivered"
                })
            })
        },
    )
    .await;
    let got = received.lock().unwrap().clone();
    assert!(got.len() >= 2, "first attempt failed, a retry followed");
    let mut verified = 0;
    for (mid, ts, sig, body) in &got {
        let t: i64 = ts.parse().unwrap();
        assert!((t - now_ms() / 1000).abs() < 120);
        assert!(
            threshold_hub::alerts::webhooks::verify(&secret, mid, t, body, sig),
            "signature verifies"
        );
        assert!(!threshold_hub::alerts::webhooks::verify(
            &secret,
            mid,
            t,
            &format!("{body} "),
            sig
        ));
        let b: Value = serde_json::from_str(body).unwrap();
        assert_eq!(b["type"], "alert.raised");
        verified += 1;
    }
    assert!(verified >= 2);
    let lost: Vec<_> = got
        .iter()
        .filter(|g| g.3.contains("camera_lost_during_delivery"))
        .collect();
    assert!(
        lost.len() >= 2 && lost[0].0 == lost[1].0,
        "same webhook-id on retry"
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn camera_jammed_mid_delivery_embedded_sqlite() {
    let dir = testing::TempDir::new("cam-hub").unwrap();
    let w = World::start(config(dir.path(), false), dir).await;
    attack(w).await;
}

/// The same attack through this machine's Mosquitto (skipped without it, unless
/// THRESHOLD_REQUIRE_SERVICES=1).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn camera_jammed_mid_delivery_mosquitto() {
    if !support::mosquitto_up() {
        return;
    }
    let dir = testing::TempDir::new("cam-hub-m").unwrap();
    let w = World::start(config(dir.path(), true), dir).await;
    attack(w).await;
}

/// Bad input on the new endpoints: JSON errors, never a panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn media_and_webhook_endpoints_refuse_bad_input() {
    let dir = testing::TempDir::new("cam-bad").unwrap();
    let w = World::start(config(dir.path(), false), dir).await;
    let b = &w.base;
    for (method, url, body, status, code) in [
        (
            "POST",
            format!("{b}/api/v1/webhooks"),
            json!({"url": "ftp://x"}),
            400,
            "invalid_url",
        ),
        (
            "POST",
            format!("{b}/api/v1/webhooks"),
            json!({"url": "http://x.example/h"}),
            400,
            "insecure_url",
        ),
        (
            "POST",
            format!("{b}/api/v1/webhooks"),
            json!({"url": "http:///nohost"}),
            400,
            "invalid_url",
        ),
        (
            "POST",
            format!("{b}/api/v1/webhooks"),
            json!({"url": "http://a@b/"}),
            400,
            "invalid_url",
        ),
        (
            "POST",
            format!("{b}/api/v1/webhooks"),
            json!({"url": 5}),
            400,
            "invalid_request",
        ),
        (
            "POST",
            format!("{b}/api/v1/webhooks"),
            json!({"url": "http://x/", "extra": 1}),
            400,
            "invalid_request",
        ),
        (
            "GET",
            format!("{b}/api/v1/deliveries/{}/recording", "0".repeat(32)),
            Value::Null,
            404,
            "not_found",
        ),
        (
            "GET",
            format!("{b}/api/v1/deliveries/../../etc/recording"),
            Value::Null,
            404,
            "not_found",
        ),
        (
            "GET",
            format!(
                "{b}/api/v1/deliveries/{}/recording/frames/{}/notanumber",
                "0".repeat(32),
                "0".repeat(32)
            ),
            Value::Null,
            404,
            "not_found",
        ),
        (
            "GET",
            format!(
                "{b}/api/v1/deliveries/{}/recording.avi?device=zz",
                "0".repeat(32)
            ),
            Value::Null,
            404,
            "not_found",
        ),
        (
            "GET",
            format!("{b}/api/v1/webhooks/{}/deliveries", "0".repeat(32)),
            Value::Null,
            404,
            "not_found",
        ),
        (
            "DELETE",
            format!("{b}/api/v1/webhooks/nothex"),
            Value::Null,
            404,
            "not_found",
        ),
    ] {
        let body = (!body.is_null()).then_some(body);
        let (s, r) = call(method, url.clone(), Some(&w.owner), body).await;
        assert_eq!(
            (s, r["error"]["code"].as_str().unwrap_or("")),
            (status, code),
            "{method} {url}: {r}"
        );
    }
    // Couriers may not use owner media endpoints.
    let (s, r) = call(
        "GET",
        format!("{b}/api/v1/webhooks"),
        Some(&w.courier),
        None,
    )
    .await;
    assert_eq!(s, 403, "{r}");
    // The live socket refuses non-cameras and strangers before upgrading.
    let lock_id = w
        .devices()
        .await
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["kind"] == "lock")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (who, dev) in [(&w.owner, &lock_id), (&w.other_owner, &w.camera_id)] {
        let (s, r) = call(
            "GET",
            format!("{b}/api/v1/devices/{dev}/live"),
            Some(who),
            None,
        )
        .await;
        assert_eq!(s, 404, "{r}");
    }
    // Documented in the OpenAPI.
    let (_, doc) = call("GET", format!("{b}/api/v1/openapi.json"), None, None).await;
    for p in [
        "/api/v1/deliveries/{id}/recording",
        "/api/v1/deliveries/{id}/recording.avi",
        "/api/v1/deliveries/{id}/recording/frames/{device_id}/{seq}",
        "/api/v1/devices/{id}/live",
        "/api/v1/webhooks",
        "/api/v1/webhooks/{id}/deliveries",
    ] {
        assert!(doc["paths"].get(p).is_some(), "{p} in OpenAPI");
    }
    w.stop().await;
}

/// Retention by size: the oldest stored frames go first, files and rows alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn media_retention_deletes_oldest_beyond_size() {
    let dir = testing::TempDir::new("cam-ret").unwrap();
    let mut cfg = config(dir.path(), false);
    cfg.media_max_bytes = 30_000;
    let w = World::start(cfg, dir).await;
    let courier_id = call(
        "GET",
        format!("{}/api/v1/me", w.base),
        Some(&w.courier),
        None,
    )
    .await
    .1["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let now = now_ms();
    let (s, d) = call(
        "POST",
        format!("{}/api/v1/deliveries", w.base),
        Some(&w.dispatcher),
        Some(
            json!({"home_id": w.home_id, "courier_id": courier_id, "window_start_ms": now - 60_000,
            "window_end_ms": now + 3_600_000, "parcel_ref": "PARCEL-CAM"}),
        ),
    )
    .await;
    assert_eq!(s, 201, "{d}");
    let id = d["id"].as_str().unwrap().to_owned();
    assert_eq!(w.entry(&id).await["allowed"], true);
    let total = |r: &Value| -> i64 {
        r["frames"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["bytes"].as_i64().unwrap())
            .sum()
    };
    let before = eventually_on(&w.hub().state, 20, "enough recorded", || async {
        let r = w.recording(&id).await;
        (total(&r) > 60_000).then_some(r)
    })
    .await;
    let state = &w.hub.as_ref().unwrap().state;
    let deleted = threshold_hub::media::recording::retention(state)
        .await
        .unwrap();
    assert!(deleted > 0);
    let after = w.recording(&id).await;
    let first_before = before["frames"][0]["seq"].as_i64().unwrap();
    let first_after = after["frames"][0]["seq"].as_i64().unwrap();
    assert!(first_after > first_before, "oldest went first");
    // New frames keep arriving; what was there at retention time fit the limit.
    let at_retention: i64 = after["frames"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            f["seq"].as_i64().unwrap()
                <= before["frames"].as_array().unwrap().last().unwrap()["seq"]
                    .as_i64()
                    .unwrap()
        })
        .map(|f| f["bytes"].as_i64().unwrap())
        .sum();
    assert!(at_retention <= 30_000, "{at_retention}");
    let (s, _) = call(
        "GET",
        format!("{}{}", w.base, before["frames"][0]["url"].as_str().unwrap()),
        Some(&w.owner),
        None,
    )
    .await;
    assert_eq!(s, 404, "deleted frame is gone");
    w.stop().await;
}
