//! Access end to end with the real pieces working together: a real hub, a real broker
//! (embedded), SQLite, and the real device agents (`run_lock` over a `SimulatedHome`,
//! `run_camera` with the synthetic source) enrolled through the API with pairing codes.
//! Only what needs them all is here: the courier's happy path through the real lock,
//! and forged or replayed tokens refused by the real lock. Every wait is on something
//! the system announces (the hub's event bus, the simulated home's bolt), with a
//! deadline; stories that depend on time passing (links cut, logs arriving late, a hub
//! restart) run in simulated time in `access_stories.rs`.

mod support;
use support::{call, eventually_on, now_ms, until, until_on};

use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;
use threshold_agent::SimulatedHome;
use threshold_hub::HubConfig;
use threshold_proto::body::{BoltState, Unlock};
use threshold_proto::{DeviceId, Kind};
use threshold_store::testing;
use tokio::sync::watch;

async fn raw(url: String, token: String, body: String) -> (u16, Value) {
    tokio::task::spawn_blocking(move || {
        let r = ureq::post(&url)
            .set("Content-Type", "application/json")
            .set("Authorization", &format!("Bearer {token}"))
            .send_string(&body);
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

fn config(dir: &Path) -> HubConfig {
    HubConfig {
        data_dir: dir.to_owned(),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        embedded_mqtt_addr: "127.0.0.1:0".parse().unwrap(),
        mqtt_topic_prefix: format!("thr-acc-{}", threshold_store::new_id()),
        ..Default::default()
    }
}

/// One home with a real lock agent and a real camera agent.
struct World {
    hub: Option<threshold_hub::Hub>,
    base: String,
    owner: String,
    courier: String,
    courier2: String,
    dispatcher: String,
    home_id: String,
    sim: SimulatedHome,
    lock_id: DeviceId,
    stops: Vec<watch::Sender<bool>>,
    _dirs: Vec<testing::TempDir>,
}

const LAT: f64 = 52.37;
const LON: f64 = 4.89;

impl World {
    async fn start(cfg: HubConfig, hub_dir: testing::TempDir) -> World {
        let hub = threshold_hub::start(cfg.clone()).await.unwrap();
        if hub.tls_fingerprint.is_some() {
            support::trust_ca(&cfg.data_dir.join("tls").join("ca.pem"));
        }
        let base = hub.base_url();
        let admin = support::admin(&hub).await;
        let [owner, courier, courier2, dispatcher]: [String; 4] = support::accounts(
            &base,
            &admin,
            &[
                ("owner", "olivia"),
                ("courier", "carl"),
                ("courier", "cora"),
                ("dispatcher", "dora"),
            ],
        )
        .await
        .try_into()
        .unwrap();
        let home_id = support::home(&base, &owner, "Flat 3", LAT, LON).await;
        support::trust(&base, &owner, &home_id, &dispatcher).await;
        let devices = support::agents::start(&base, &owner, &home_id).await;
        let mut dirs = vec![hub_dir];
        dirs.extend(devices.dirs);
        let mut w = World {
            hub: Some(hub),
            base,
            owner,
            courier,
            courier2,
            dispatcher,
            home_id,
            sim: devices.sim,
            lock_id: DeviceId([0; 16]),
            stops: devices.stops,
            _dirs: dirs,
        };
        w.wait_ready().await;
        let lock = w.lock().await;
        w.lock_id = lock["device_id"].as_str().unwrap().parse().unwrap();
        w
    }

    fn hub(&self) -> &threshold_hub::Hub {
        self.hub.as_ref().unwrap()
    }

    async fn lock(&self) -> Value {
        call(
            "GET",
            format!("{}/api/v1/homes/{}/lock", self.base, self.home_id),
            Some(&self.owner),
            None,
        )
        .await
        .1
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

    async fn wait_ready(&self) {
        until_on(&self.hub().state, 30, "lock and camera live", || async {
            let d = self.devices().await;
            d.as_array()
                .is_some_and(|a| a.len() == 2 && a.iter().all(|x| x["liveness"] == "live"))
        })
        .await;
        // A lock's state report changes its bolt without any announcement (only its
        // liveness and its event records are announced): re-checked on an interval.
        until(10, "lock locked", || async {
            self.lock().await["bolt"] == "locked"
        })
        .await;
    }

    async fn delivery(&self, parcel: &str, start: i64, end: i64) -> String {
        let courier_id = self.user_id(&self.courier).await;
        let (s, d) = call(
            "POST",
            format!("{}/api/v1/deliveries", self.base),
            Some(&self.dispatcher),
            Some(
                json!({"home_id": self.home_id, "courier_id": courier_id, "window_start_ms": start,
                "window_end_ms": end, "parcel_ref": parcel}),
            ),
        )
        .await;
        assert_eq!(s, 201, "{d}");
        d["id"].as_str().unwrap().to_owned()
    }

    async fn user_id(&self, token: &str) -> String {
        call("GET", format!("{}/api/v1/me", self.base), Some(token), None)
            .await
            .1["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn entry_as(&self, token: &str, id: &str, lat: f64, lon: f64, parcel: &str) -> Value {
        let (s, b) = call(
            "POST",
            format!("{}/api/v1/deliveries/{id}/entry", self.base),
            Some(token),
            Some(json!({"lat": lat, "lon": lon, "accuracy_m": 5.0, "parcel_ref": parcel})),
        )
        .await;
        assert_eq!(s, 200, "{b}");
        b
    }

    async fn entry(&self, id: &str, parcel: &str) -> Value {
        self.entry_as(&self.courier, id, LAT, LON, parcel).await
    }

    async fn get_delivery(&self, token: &str, id: &str) -> (u16, Value) {
        call(
            "GET",
            format!("{}/api/v1/deliveries/{id}", self.base),
            Some(token),
            None,
        )
        .await
    }

    async fn delivered(&self, id: &str) -> (u16, Value) {
        call(
            "POST",
            format!("{}/api/v1/deliveries/{id}/delivered", self.base),
            Some(&self.courier),
            None,
        )
        .await
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

    async fn alert_kinds(&self) -> Vec<String> {
        self.alerts()
            .await
            .iter()
            .filter_map(|a| a["kind"].as_str().map(str::to_owned))
            .collect()
    }

    async fn wait_alert(&self, kind: &str, secs: u64) -> Value {
        eventually_on(
            &self.hub().state,
            secs,
            &format!("alert {kind}"),
            || async { self.alerts().await.into_iter().find(|a| a["kind"] == kind) },
        )
        .await
    }

    /// Whether the hub has stored the lock's event record of `event_type`.
    async fn lock_logged(&self, event_type: &str) -> usize {
        let owner_id = self.user_id(&self.owner).await;
        self.hub()
            .state
            .store
            .device_events(&owner_id, &self.lock_id.to_hex(), 1000)
            .await
            .unwrap()
            .iter()
            .filter(|e| e.event_type == event_type)
            .count()
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

    async fn settings(&self, v: Value) {
        let (s, b) = call(
            "PUT",
            format!("{}/api/v1/homes/{}/settings", self.base, self.home_id),
            Some(&self.owner),
            Some(v),
        )
        .await;
        assert_eq!(s, 200, "{b}");
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

/// An alert's evidence as JSON (the API returns it parsed; accept a string too).
fn evidence(a: &Value) -> Value {
    match &a["evidence"] {
        Value::String(t) => serde_json::from_str(t).unwrap_or(Value::Null),
        v => v.clone(),
    }
}

async fn world() -> World {
    let dir = testing::TempDir::new("acc-hub").unwrap();
    World::start(config(dir.path()), dir).await
}

/// Dispatcher validation, owner preferences, every refusal reason, a courier on
/// another courier's delivery, bad positions, concurrent entry (exactly one token),
/// then the happy path to "completed" with the owner's summary.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delivery_flow_refusals_and_happy_path() {
    let w = world().await;
    let base = w.base.clone();
    let now = now_ms();
    let courier_id = w.user_id(&w.courier).await;

    // Dispatcher input.
    let bad = [
        (
            json!({"home_id": w.home_id, "courier_id": courier_id, "window_start_ms": now, "window_end_ms": now - 1, "parcel_ref": "P"}),
            400,
            "invalid_window",
        ),
        (
            json!({"home_id": "no-such-home", "courier_id": courier_id, "window_start_ms": now, "window_end_ms": now + 1000, "parcel_ref": "P"}),
            404,
            "not_found",
        ),
        (
            json!({"home_id": w.home_id, "courier_id": "nobody", "window_start_ms": now, "window_end_ms": now + 1000, "parcel_ref": "P"}),
            404,
            "not_found",
        ),
        (
            json!({"home_id": w.home_id, "courier_id": courier_id, "window_start_ms": now, "window_end_ms": now + 1000, "parcel_ref": "P\u{0}\u{7}<script>"}),
            400,
            "invalid_field",
        ),
        (
            json!({"home_id": w.home_id, "courier_id": courier_id, "window_start_ms": "soon", "window_end_ms": now + 1000, "parcel_ref": "P"}),
            400,
            "",
        ),
    ];
    for (body, status, code) in bad {
        let (s, b) = call(
            "POST",
            format!("{base}/api/v1/deliveries"),
            Some(&w.dispatcher),
            Some(body.clone()),
        )
        .await;
        assert_eq!(s, status, "{body} -> {b}");
        assert!(b["error"]["code"].is_string(), "{b}");
        if !code.is_empty() {
            assert_eq!(b["error"]["code"], code, "{body} -> {b}");
        }
    }
    // Only dispatchers create deliveries.
    let (s, _) = call(
        "POST",
        format!("{base}/api/v1/deliveries"),
        Some(&w.courier),
        Some(json!({"home_id": w.home_id, "courier_id": courier_id, "window_start_ms": now, "window_end_ms": now + 1000, "parcel_ref": "P"})),
    )
    .await;
    assert_eq!(s, 403);

    let id = w.delivery("PARCEL-1", now - 60_000, now + 3_600_000).await;
    let later = w
        .delivery("PARCEL-2", now + 3_600_000, now + 7_200_000)
        .await;

    // Another courier: 404 on reads and writes, not_assigned (and nothing else) on entry.
    assert_eq!(w.get_delivery(&w.courier2, &id).await.0, 404);
    let d = w.entry_as(&w.courier2, &id, LAT, LON, "PARCEL-1").await;
    assert_eq!(
        (d["allowed"].clone(), support::reasons(&d)),
        (json!(false), vec!["not_assigned".to_owned()])
    );
    let (s, _) = call(
        "POST",
        format!("{base}/api/v1/deliveries/{id}/delivered"),
        Some(&w.courier2),
        None,
    )
    .await;
    assert_eq!(s, 404);
    let list = call(
        "GET",
        format!("{base}/api/v1/deliveries"),
        Some(&w.courier2),
        None,
    )
    .await
    .1;
    assert_eq!(list, json!([]), "a courier sees only assigned deliveries");

    // Refusal reasons.
    let d = w.entry(&later, "PARCEL-2").await;
    assert_eq!(support::reasons(&d), vec!["outside_window"]);
    let d = w
        .entry_as(&w.courier, &id, LAT + 0.01, LON, "PARCEL-1")
        .await;
    assert_eq!(support::reasons(&d), vec!["outside_geofence"]);
    let d = w.entry(&id, "PARCEL-9").await;
    assert_eq!(support::reasons(&d), vec!["parcel_mismatch"]);
    let d = w.entry_as(&w.courier, &id, 91.0, LON, "PARCEL-1").await;
    assert_eq!(support::reasons(&d), vec!["bad_position"]);
    // Positions that JSON cannot carry as numbers: a clear 400, never a panic.
    for body in [
        r#"{"lat":"NaN","lon":4.89,"accuracy_m":5,"parcel_ref":"PARCEL-1"}"#,
        r#"{"lat":1e400,"lon":4.89,"accuracy_m":5,"parcel_ref":"PARCEL-1"}"#,
        r#"{"lat":NaN,"lon":4.89,"accuracy_m":5,"parcel_ref":"PARCEL-1"}"#,
        r#"{"lat":52.37,"lon":4.89}"#,
    ] {
        let (s, b) = raw(
            format!("{base}/api/v1/deliveries/{id}/entry"),
            w.courier.clone(),
            body.to_owned(),
        )
        .await;
        assert_eq!(s, 400, "{body} -> {b}");
        assert!(b["error"]["code"].is_string(), "{b}");
    }
    w.settings(json!({"in_home_enabled": false, "approval_required": false}))
        .await;
    let d = w.entry(&id, "PARCEL-1").await;
    assert_eq!(support::reasons(&d), vec!["owner_disabled"]);
    // Allowed hours that exclude now.
    let minute = (now / 60_000).rem_euclid(1440);
    let (s, e) = if minute < 720 {
        (minute + 60, minute + 120)
    } else {
        (minute - 120, minute - 60)
    };
    w.settings(json!({"in_home_enabled": true, "approval_required": true,
        "allowed_hours": {"start_minute": s, "end_minute": e}}))
        .await;
    let d = w.entry(&id, "PARCEL-1").await;
    assert_eq!(
        support::reasons(&d),
        vec!["outside_owner_hours", "awaiting_owner_approval"]
    );
    w.settings(json!({"in_home_enabled": true, "approval_required": true}))
        .await;
    // Only the owner approves; a courier cannot.
    let (s, _) = call(
        "POST",
        format!("{base}/api/v1/deliveries/{id}/approve"),
        Some(&w.courier),
        None,
    )
    .await;
    assert_eq!(s, 403);
    let (s, b) = call(
        "POST",
        format!("{base}/api/v1/deliveries/{id}/approve"),
        Some(&w.owner),
        None,
    )
    .await;
    assert_eq!(s, 200, "{b}");

    // The same entry request five times at once: exactly one token.
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let (base, tok, id) = (base.clone(), w.courier.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            call(
                "POST",
                format!("{base}/api/v1/deliveries/{id}/entry"),
                Some(&tok),
                Some(json!({"lat": LAT, "lon": LON, "accuracy_m": 5.0, "parcel_ref": "PARCEL-1"})),
            )
            .await
        }));
    }
    let mut allowed = 0;
    for t in tasks {
        let (s, d) = t.await.unwrap();
        assert_eq!(s, 200, "{d}");
        if d["allowed"] == true {
            allowed += 1;
            assert!(d["token_expires_at_ms"].is_i64());
        } else {
            if support::reasons(&d) != vec!["already_used"] {
                for t in w.timeline().await {
                    eprintln!("TL {t}");
                }
            }
            assert_eq!(support::reasons(&d), vec!["already_used"], "{d}");
        }
    }
    assert_eq!(allowed, 1, "exactly one concurrent request wins");
    let issued = {
        let st = &w.hub().state;
        let page = st.store.audit_page(0, 10_000).await.unwrap();
        page.iter().filter(|e| e.kind == "token.issued").count()
    };
    assert_eq!(issued, 1, "exactly one token was issued");

    // The real lock retracts its bolt; the courier opens, places, closes; the lock
    // relocks by its own rule; "delivered" completes on a fresh closed+locked report.
    assert!(
        w.sim
            .wait_bolt(BoltState::Unlocked, Duration::from_secs(5))
            .await,
        "bolt retracted"
    );
    let (_, dv) = w.get_delivery(&w.courier, &id).await;
    assert_eq!(dv["state"], "inside");
    assert!(dv["lock"].is_object(), "courier sees the lock state: {dv}");
    let opened = w.lock_logged("door_opened").await;
    assert!(w.sim.open_door());
    // The courier places the parcel while the hub hears of the opening.
    until_on(
        &w.hub().state,
        10,
        "the hub heard the door open",
        || async { w.lock_logged("door_opened").await > opened },
    )
    .await;
    w.sim.close_door();
    assert!(
        w.sim
            .wait_bolt(BoltState::Locked, Duration::from_secs(5))
            .await,
        "relocked by the local rule"
    );
    let (s, b) = w.delivered(&id).await;
    assert_eq!(s, 200, "{b}");
    until_on(&w.hub().state, 10, "completed", || async {
        w.get_delivery(&w.owner, &id).await.1["state"] == "completed"
    })
    .await;
    let (_, dv) = w.get_delivery(&w.owner, &id).await;
    let tl: Vec<&str> = dv["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["kind"].as_str())
        .collect();
    for k in [
        "decision",
        "unlock_sent",
        "delivery.delivered",
        "delivery.completed",
    ] {
        assert!(tl.contains(&k), "{k} missing from {tl:?}");
    }
    let summary = dv["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["kind"] == "delivery.completed")
        .unwrap()["detail"]["summary"]
        .clone();
    assert_eq!(summary["bolt"], "locked", "{summary}");
    assert!(summary["entry_granted_ms"].is_i64(), "{summary}");
    // Used: no second entry.
    let d = w.entry(&id, "PARCEL-1").await;
    assert!(
        support::reasons(&d).contains(&"already_used".to_owned()),
        "{d}"
    );
    // An authorised entry raises no entry alert.
    let kinds = w.alert_kinds().await;
    assert!(
        !kinds.iter().any(|k| k == "unauthorized_entry"
            || k == "door_opened_after_delivery"
            || k == "session_not_secured"),
        "{kinds:?}"
    );
    // The audit log holds decisions, the token and door events, and verifies.
    let (s, v) = call(
        "GET",
        format!("{base}/api/v1/audit/verify"),
        Some(&w.owner),
        None,
    )
    .await;
    let page = w.hub().state.store.audit_page(0, 10_000).await.unwrap();
    for k in [
        "decision",
        "token.issued",
        "door_event",
        "delivery.completed",
    ] {
        assert!(page.iter().any(|e| e.kind == k), "audit lacks {k}");
    }
    let _ = (s, v);
    w.stop().await;
}

/// Tokens the lock must refuse, each reported and alerted: replayed, altered,
/// expired, issued for another lock, and issued beyond the lock's clock-skew bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forged_and_replayed_tokens_are_refused_and_alerted() {
    let w = world().await;
    let st = w.hub().state.clone();
    // Raw bytes on the lock's connection to the hub's endpoint: a captured token
    // replayed, or one altered in transit, as a compromised link would deliver them.
    // (No MQTT client but the lock itself may publish on its downlink topic: the
    // endpoint's rights are tested in broker_rights.rs.)
    let endpoint = w
        .hub()
        .endpoint
        .clone()
        .expect("the world runs the hub's own endpoint");
    let wire = |bytes: Vec<u8>| {
        assert!(
            endpoint
                .sessions
                .deliver(w.lock_id, bytes::Bytes::from(bytes)),
            "the lock is connected"
        );
    };
    // Signed by the hub key (as if the hub were compromised or its token captured),
    // carrying the door camera's real statement so that only the envelope and nonce
    // rules are at stake here.
    let door = st.access.doors.of_device(&w.lock_id).remove(0);
    let token = |expires: i64| Unlock {
        grant: "delivery:forged".into(),
        nonce: hex::encode(threshold_store::new_id().as_bytes())[..32].to_owned(),
        expires_at_ms: expires,
        camera: threshold_hub::access::doors::statement(&st, &door, st.clock.now_ms())
            .map(|(_, s)| s),
        camera_waived: None,
    };
    let refused_count = || async {
        w.alerts()
            .await
            .iter()
            .filter(|a| a["kind"] == "token_refused")
            .count()
    };

    // 1. A real token, captured on the wire: works once, then is a replay.
    let m = st
        .downlink
        .sign(
            &st.hub_key,
            w.lock_id,
            Kind::Unlock,
            &token(now_ms() + 30_000),
            now_ms(),
        )
        .await
        .expect("numbered");
    let bytes = m.as_bytes().to_vec();
    wire(bytes.clone());
    assert!(
        w.sim
            .wait_bolt(BoltState::Unlocked, Duration::from_secs(5))
            .await
    );
    // Nobody opens; relock by command.
    threshold_hub::access::unlock::send_lock(&st, w.lock_id, "test", "test").await;
    assert!(
        w.sim
            .wait_bolt(BoltState::Locked, Duration::from_secs(5))
            .await
    );
    wire(bytes.clone());
    until_on(&st, 10, "replay alerted", || async {
        refused_count().await >= 1
    })
    .await;
    assert_eq!(w.sim.bolt(), BoltState::Locked);

    // 2. Altered: one byte of the body flipped.
    let m = st
        .downlink
        .sign(
            &st.hub_key,
            w.lock_id,
            Kind::Unlock,
            &token(now_ms() + 30_000),
            now_ms(),
        )
        .await
        .expect("numbered");
    let mut altered = m.as_bytes().to_vec();
    let i = altered.len() - 70;
    altered[i] ^= 0x01;
    wire(altered);
    until_on(&st, 10, "altered alerted", || async {
        refused_count().await >= 2
    })
    .await;

    // 3. Expired.
    let m = st
        .downlink
        .sign(
            &st.hub_key,
            w.lock_id,
            Kind::Unlock,
            &token(now_ms() - 60_000),
            now_ms(),
        )
        .await
        .expect("numbered");
    st.downlink.publish(w.lock_id, m).await;
    until_on(&st, 10, "expired alerted", || async {
        refused_count().await >= 3
    })
    .await;

    // 4. For another lock, delivered on this lock's topic.
    let other = DeviceId([7; 16]);
    let m = st
        .downlink
        .sign(
            &st.hub_key,
            other,
            Kind::Unlock,
            &token(now_ms() + 30_000),
            now_ms(),
        )
        .await
        .expect("numbered");
    wire(m.as_bytes().to_vec());
    until_on(&st, 10, "foreign alerted", || async {
        refused_count().await >= 4
    })
    .await;

    // 5. Issued by a clock 20 s ahead of the lock's (beyond its 5 s token skew).
    let m = st
        .downlink
        .sign(
            &st.hub_key,
            w.lock_id,
            Kind::Unlock,
            &token(now_ms() + 50_000),
            now_ms() + 20_000,
        )
        .await
        .expect("numbered");
    st.downlink.publish(w.lock_id, m).await;
    until_on(&st, 10, "skewed alerted", || async {
        refused_count().await >= 5
    })
    .await;

    assert_eq!(w.sim.bolt(), BoltState::Locked, "no forged token opened it");
    let reasons: Vec<String> = w
        .alerts()
        .await
        .iter()
        .filter(|a| a["kind"] == "token_refused")
        .filter_map(|a| evidence(a)["reason"].as_str().map(str::to_owned))
        .collect();
    for r in [
        "nonce_reused",
        "bad_signature",
        "expired",
        "wrong_lock",
        "not_yet_valid",
    ] {
        assert!(reasons.iter().any(|x| x == r), "{r} not in {reasons:?}");
    }
    // A door opening with no session at all is unauthorised entry.
    w.sim.force_door_open();
    w.wait_alert("unauthorized_entry", 10).await;
    w.sim.close_door();
    w.stop().await;
}

/// A guest whose grant waives the camera rule opens the real lock while the camera is
/// gone: the hub's token carries the owner's waiver instead of a camera statement, and
/// the lock, which knows its door's camera, accepts it as a waiver and records it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_guest_whose_grant_waives_the_camera_opens_the_real_lock_without_it() {
    let w = world().await;
    // The camera agent stops: the hub says so once it is no longer live.
    let _ = w.stops[1].send(true);
    until_on(&w.hub().state, 30, "camera not live", || async {
        w.devices().await.as_array().is_some_and(|a| {
            a.iter()
                .any(|x| x["kind"] == "camera" && x["liveness"] != "live")
        })
    })
    .await;
    let now = now_ms();
    let (s, g) = call(
        "POST",
        format!("{}/api/v1/homes/{}/guests", w.base, w.home_id),
        Some(&w.owner),
        Some(json!({"name": "Cleaner", "valid_from_ms": now - 1000,
            "valid_until_ms": now + 3_600_000, "camera_required": false})),
    )
    .await;
    assert_eq!(s, 201, "{g}");
    let (s, d) = call(
        "POST",
        format!("{}/api/v1/guest/unlock", w.base),
        None,
        Some(json!({"secret": g["secret"]})),
    )
    .await;
    assert_eq!((s, d["allowed"].clone()), (200, json!(true)), "{d}");
    assert!(
        w.sim
            .wait_bolt(BoltState::Unlocked, Duration::from_secs(5))
            .await,
        "the real lock opened for the waived token"
    );
    // The lock's own signed record says it accepted a waiver, not a camera statement.
    let accepted = eventually_on(&w.hub().state, 10, "token_accepted logged", || async {
        w.timeline()
            .await
            .into_iter()
            .find(|t| t["kind"] == "device.token_accepted")
    })
    .await;
    assert!(
        accepted["detail"]["detail"]["camera_waived"].is_string(),
        "{accepted}"
    );
    w.stop().await;
}

/// The courier flow with everything on TLS: the API over HTTPS (the hub's own CA,
/// trusted by the test and by the real agents), the agents enrolled over HTTPS and
/// connected to the hub's endpoint with MQTT over TLS; the real lock opens.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn courier_flow_over_https_and_mqtts() {
    let dir = testing::TempDir::new("acc-tls").unwrap();
    let mut cfg = config(dir.path());
    cfg.tls = true;
    cfg.mqtt_tls_addr = Some("127.0.0.1:0".parse().unwrap());
    let w = World::start(cfg, dir).await;
    assert!(w.base.starts_with("https://"), "{}", w.base);
    // Both agents were told the TLS port at enrolment, so their links use TLS.
    for d in w._dirs.iter().skip(1) {
        let e = threshold_agent::identity::load_enrolment(d.path())
            .unwrap()
            .expect("enrolled");
        assert_eq!(
            e.mqtt.tls_port,
            w.hub()
                .endpoint
                .as_ref()
                .and_then(|x| x.tls_addr)
                .map(|a| a.port())
        );
    }
    let now = now_ms();
    let id = w
        .delivery("PARCEL-TLS", now - 60_000, now + 3_600_000)
        .await;
    let d = w.entry(&id, "PARCEL-TLS").await;
    assert_eq!(d["allowed"], true, "{d}");
    assert!(
        w.sim
            .wait_bolt(BoltState::Unlocked, Duration::from_secs(10))
            .await,
        "the real lock opened on a token that came over MQTT with TLS"
    );
    w.stop().await;
}
