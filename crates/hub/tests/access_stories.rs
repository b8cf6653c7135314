//! Access stories in simulated time (no sleeps, no broker): a flat with one door, its
//! lock and its camera, whose links a jammer cuts, whose lock keeps its log while cut
//! and uploads it late, and whose hub restarts mid-delivery. Each story runs the real
//! hub state, store, API and ingest path on a manual clock; the devices are simulators
//! signing real protocol messages (`support::house`). The real agents over a real
//! broker are proved to work together in `access_real_agents.rs`.

mod support;

use serde_json::{json, Value};
use support::house::{
    bolt_retracts, bolt_throws, door_closes, door_opens, evidence, home_devices, Flat,
};
use support::sim::{lock_command_for, unlock_for, Sim};

/// Let simulated time pass (the flat's devices reporting as usual) until `cond` holds;
/// fail if it does not within `max_ms` of simulated time. Yields how long it took.
macro_rules! run_until {
    ($sim:expr, $flat:expr, $max_ms:expr, $what:expr, $cond:expr) => {{
        let mut waited: i64 = 0;
        loop {
            let done: bool = $cond;
            if done {
                break waited;
            }
            assert!(
                waited < $max_ms,
                "{} not within {} ms (simulated)",
                $what,
                $max_ms
            );
            $flat.run(&mut $sim, 50).await;
            waited += 50;
        }
    }};
}

async fn liveness(sim: &Sim, f: &Flat, kind: &str) -> String {
    let d = home_devices(sim, &f.owner, &f.home).await;
    d.iter()
        .find(|x| x["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {d:?}"))["liveness"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

async fn ready(f: &Flat, sim: &Sim) -> bool {
    liveness(sim, f, "lock").await == "live"
        && liveness(sim, f, "camera").await == "live"
        && f.lock(sim).await["bolt"] == "locked"
}

async fn guest_unlock(sim: &Sim, secret: Value) -> (u16, Value) {
    sim.http(
        "POST",
        "/api/v1/guest/unlock",
        None,
        Some(json!({ "secret": secret })),
    )
    .await
}

async fn flat_with(adjust: impl FnOnce(&mut threshold_hub::HubConfig)) -> (Sim, Flat) {
    let mut sim = Sim::with(adjust).await;
    let mut f = Flat::new(&sim).await;
    f.run(&mut sim, 2_000).await;
    assert!(ready(&f, &sim).await, "lock and camera live, lock locked");
    sim.downlinks();
    (sim, f)
}

async fn flat() -> (Sim, Flat) {
    flat_with(|_| {}).await
}

/// From the real-agent delivery flow: a camera whose link is cut is not live and the
/// entry is refused for it; a lock whose link is cut is offline, the entry is refused
/// for that alone, and the lock shows "unknown", not "locked", once its reports stop
/// (law 1). Both come back once their links do.
#[tokio::test]
async fn a_cut_link_refuses_entry_and_the_lock_shows_unknown() {
    let (mut sim, mut f) = flat().await;
    let id = f.delivery(&sim, "PARCEL-1").await;

    f.door.camera.cut();
    run_until!(sim, f, 10_000, "camera not live", {
        liveness(&sim, &f, "camera").await != "live"
    });
    let d = f.enter(&sim, &id, "PARCEL-1").await;
    assert_eq!(d["allowed"], false, "{d}");
    assert!(
        support::reasons(&d)
            .iter()
            .any(|r| r == "camera_stale" || r == "camera_offline"),
        "{d}"
    );
    assert!(unlock_for(&sim.downlinks(), &f.door.lock.sim.id).is_none());
    f.door.camera.restore(&sim).await;
    run_until!(sim, f, 30_000, "ready again", ready(&f, &sim).await);

    f.door.lock.cut();
    run_until!(sim, f, 10_000, "lock not live", {
        liveness(&sim, &f, "lock").await != "live"
    });
    let d = f.enter(&sim, &id, "PARCEL-1").await;
    assert_eq!(support::reasons(&d), vec!["lock_offline"], "{d}");
    let l = f.lock(&sim).await;
    assert_eq!(l["bolt"], "unknown", "{l}");
    assert!(l["unknown_since_ms"].is_i64(), "{l}");
    f.door.lock.restore(&sim).await;
    run_until!(sim, f, 30_000, "ready again", ready(&f, &sim).await);
    // And the same request now goes through.
    assert_eq!(f.enter(&sim, &id, "PARCEL-1").await["allowed"], true);
    assert!(unlock_for(&sim.downlinks(), &f.door.lock.sim.id).is_some());
}

/// The researchers' sequence, with the lock jammed too: the courier is inside, marks
/// delivered, the camera and the lock lose their links, the door is opened again,
/// then the links come back. The lock's log arrives late; the second opening is
/// judged by its device time and raised; both openings are on the timeline. The
/// session ends only once a fresh report says closed and locked; after that (and
/// beyond the clock-skew slack) any opening is unauthorised entry, whenever learned.
#[tokio::test]
async fn researchers_sequence_with_late_lock_log() {
    let (mut sim, mut f) = flat().await;
    let id = f.delivery(&sim, "PARCEL-R").await;
    let d = f.enter(&sim, &id, "PARCEL-R").await;
    assert_eq!(d["allowed"], true, "{d}");
    assert!(unlock_for(&sim.downlinks(), &f.door.lock.sim.id).is_some());
    bolt_retracts(&sim, &mut f.door).await;
    door_opens(&sim, &mut f.door).await;
    f.run(&mut sim, 300).await;
    let (s, b) = f.delivered(&sim, &id).await;
    assert_eq!(s, 200, "{b}");
    // Door still open: not complete.
    f.run(&mut sim, 600).await;
    assert_eq!(f.delivery_state(&sim, &id).await, "delivered");
    // The attack: the camera (and with it the lock's link) jammed.
    f.door.camera.cut();
    f.door.lock.cut();
    run_until!(sim, f, 10_000, "camera_lost_during_delivery", {
        f.alert_kinds(&sim)
            .await
            .contains(&"camera_lost_during_delivery".to_owned())
    });
    // The lock, on its own: the door closes, it relocks; then the door is forced open
    // and closed again. None of it reaches the hub yet.
    door_closes(&sim, &mut f.door).await;
    bolt_throws(&sim, &mut f.door).await;
    // (More than the 2 s clock-skew slack after "delivered": an opening within it
    // could still be the courier's own, and counts as authorised.)
    f.run(&mut sim, 1_000).await;
    door_opens(&sim, &mut f.door).await;
    f.run(&mut sim, 500).await;
    door_closes(&sim, &mut f.door).await;
    assert!(f.door.lock.backlog_len() >= 5, "the lock kept its log");
    // While jammed the app cannot claim anything about the lock.
    assert_eq!(f.lock(&sim).await["bolt"], "unknown");
    assert_eq!(
        f.delivery_state(&sim, &id).await,
        "camera_lost",
        "no end of the incident without a fresh report"
    );
    f.run(&mut sim, 1_000).await;
    f.door.camera.restore(&sim).await;
    f.door.lock.restore(&sim).await;
    // The second opening happened while the camera was lost: unwatched.
    run_until!(sim, f, 20_000, "door_opened_unwatched", {
        f.alert_kinds(&sim)
            .await
            .contains(&"door_opened_unwatched".to_owned())
    });
    let a = f
        .alerts(&sim)
        .await
        .into_iter()
        .find(|a| a["kind"] == "door_opened_unwatched")
        .unwrap();
    let ev = evidence(&a);
    assert!(
        ev["learned_late_ms"].as_i64().unwrap_or(0) > 500,
        "judged by device time, learned late: {a}"
    );
    run_until!(sim, f, 10_000, "both openings on the timeline", {
        f.count_timeline(&sim, "device.door_opened").await >= 2
    });
    run_until!(
        sim,
        f,
        15_000,
        "ended after a fresh closed+locked report",
        { f.delivery_state(&sim, &id).await == "ended_after_camera_loss" }
    );
    // After completion (and beyond the clock-skew slack) any opening is unauthorised
    // entry, whenever it is learned.
    f.run(&mut sim, 2_500).await;
    f.door.lock.cut();
    f.run(&mut sim, 300).await;
    door_opens(&sim, &mut f.door).await;
    f.run(&mut sim, 300).await;
    door_closes(&sim, &mut f.door).await;
    f.run(&mut sim, 500).await;
    f.door.lock.restore(&sim).await;
    run_until!(sim, f, 20_000, "unauthorized_entry", {
        f.alert_kinds(&sim)
            .await
            .contains(&"unauthorized_entry".to_owned())
    });
    assert!(f.count_timeline(&sim, "device.door_opened").await >= 3);
}

/// The lock's link is cut while it shows locked: the API turns to "unknown", the
/// session does not close as locked, and the owner is alerted at the limit.
#[tokio::test]
async fn link_cut_while_locked_is_unknown_and_alerts() {
    let (mut sim, mut f) = flat_with(|c| c.session_secure_limit_ms = 4_000).await;
    let id = f.delivery(&sim, "PARCEL-L").await;
    assert_eq!(f.enter(&sim, &id, "PARCEL-L").await["allowed"], true);
    assert!(unlock_for(&sim.downlinks(), &f.door.lock.sim.id).is_some());
    bolt_retracts(&sim, &mut f.door).await;
    door_opens(&sim, &mut f.door).await;
    f.run(&mut sim, 300).await;
    // The link goes before the door closes: the hub never hears closed+locked.
    f.door.lock.cut();
    door_closes(&sim, &mut f.door).await;
    bolt_throws(&sim, &mut f.door).await;
    run_until!(sim, f, 5_000, "lock unknown", {
        f.lock(&sim).await["bolt"] == "unknown"
    });
    let (_, dv) = f.get_delivery(&sim, &f.courier, &id).await;
    assert_eq!(dv["lock"]["bolt"], "unknown", "{dv}");
    let (s, _) = f.delivered(&sim, &id).await;
    assert_eq!(s, 200);
    run_until!(sim, f, 15_000, "session_not_secured", {
        f.alert_kinds(&sim)
            .await
            .contains(&"session_not_secured".to_owned())
    });
    let a = f
        .alerts(&sim)
        .await
        .into_iter()
        .find(|a| a["kind"] == "session_not_secured")
        .unwrap();
    // The delivery ends there, unverified: every incident ends.
    assert_eq!(f.delivery_state(&sim, &id).await, "ended_unverified", "{a}");
    let ev = evidence(&a);
    assert_eq!(ev["lock"]["fresh"], false, "{a}");
    // The link returns: the lock is shown locked again, from a fresh report.
    assert_ne!(f.lock(&sim).await["bolt"], "locked");
    f.door.lock.restore(&sim).await;
    run_until!(sim, f, 15_000, "locked after link restored", {
        f.lock(&sim).await["bolt"] == "locked"
    });
}

/// The owner unlocks and locks remotely with the same tokens; a guest grant with
/// weekly windows unlocks with its secret (this one even with the camera down), and
/// stops working when revoked; ten attempts per grant, then 429.
#[tokio::test]
async fn owner_remote_and_guest_access() {
    let (mut sim, mut f) = flat().await;
    let lock = f.door.lock.sim.id;
    let unlock_path = format!("/api/v1/homes/{}/lock/unlock", f.home);
    let lock_path = format!("/api/v1/homes/{}/lock/lock", f.home);
    let (s, b) = sim.http("POST", &unlock_path, Some(&f.owner), None).await;
    assert_eq!(s, 200, "{b}");
    let token = unlock_for(&sim.downlinks(), &lock).expect("the owner's token sent");
    assert!(token["grant"].is_string(), "{token}");
    bolt_retracts(&sim, &mut f.door).await;
    door_opens(&sim, &mut f.door).await;
    f.run(&mut sim, 300).await;
    door_closes(&sim, &mut f.door).await;
    bolt_throws(&sim, &mut f.door).await;
    run_until!(sim, f, 5_000, "locked", {
        f.lock(&sim).await["bolt"] == "locked"
    });
    // Remote unlock then remote lock with the door never opened.
    let (s, _) = sim.http("POST", &unlock_path, Some(&f.owner), None).await;
    assert_eq!(s, 200);
    assert!(unlock_for(&sim.downlinks(), &lock).is_some());
    bolt_retracts(&sim, &mut f.door).await;
    run_until!(sim, f, 5_000, "unlocked", {
        f.lock(&sim).await["bolt"] == "unlocked"
    });
    let (s, b) = sim.http("POST", &lock_path, Some(&f.owner), None).await;
    assert_eq!(s, 200, "{b}");
    assert!(
        lock_command_for(&sim.downlinks(), &lock),
        "the lock commanded"
    );
    bolt_throws(&sim, &mut f.door).await;
    run_until!(sim, f, 5_000, "locked", {
        f.lock(&sim).await["bolt"] == "locked"
    });
    // Couriers cannot use owner endpoints.
    let (s, _) = sim.http("POST", &unlock_path, Some(&f.courier), None).await;
    assert_eq!(s, 403);
    assert!(unlock_for(&sim.downlinks(), &lock).is_none());

    // Guest: bad windows refused.
    let guests = format!("/api/v1/homes/{}/guests", f.home);
    let now = sim.now();
    let (s, b) = sim
        .http(
            "POST",
            &guests,
            Some(&f.owner),
            Some(json!({"name": "Cleaner", "valid_from_ms": now, "valid_until_ms": now - 1})),
        )
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (400, Some("invalid_window"))
    );
    let (s, b) = sim
        .http(
            "POST",
            &guests,
            Some(&f.owner),
            Some(
                json!({"name": "Cleaner", "valid_from_ms": now, "valid_until_ms": now + 1000,
                "weekly": [{"day": 8, "start_minute": 0, "end_minute": 10}]}),
            ),
        )
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (400, Some("invalid_window"))
    );
    // A weekly window covering all of today (UTC), camera rule off for this guest.
    let day = ((now / 86_400_000) + 3).rem_euclid(7) + 1;
    let (s, g) = sim
        .http(
            "POST",
            &guests,
            Some(&f.owner),
            Some(json!({"name": "Cleaner", "valid_from_ms": now - 1000, "valid_until_ms": now + 3_600_000,
                "weekly": [{"day": day, "start_minute": 0, "end_minute": 1440}], "camera_required": false})),
        )
        .await;
    assert_eq!(s, 201, "{g}");
    let secret = g["secret"].as_str().unwrap().to_owned();
    let gid = g["id"].as_str().unwrap().to_owned();
    // Camera down: still allowed for this grant.
    f.door.camera.cut();
    f.run(&mut sim, 2_000).await;
    assert_ne!(liveness(&sim, &f, "camera").await, "live");
    let (s, d) = guest_unlock(&sim, json!(secret)).await;
    assert_eq!((s, d["allowed"].clone()), (200, json!(true)), "{d}");
    let token = unlock_for(&sim.downlinks(), &lock).expect("the guest's token sent");
    assert!(token["camera_waived"].is_string(), "{token}");
    bolt_retracts(&sim, &mut f.door).await;
    door_opens(&sim, &mut f.door).await;
    f.run(&mut sim, 300).await;
    door_closes(&sim, &mut f.door).await;
    bolt_throws(&sim, &mut f.door).await;
    run_until!(sim, f, 5_000, "locked", {
        f.lock(&sim).await["bolt"] == "locked"
    });
    f.door.camera.restore(&sim).await;
    // Wrong secret: 404. Revoked: refused with a reason.
    let (s, _) = guest_unlock(&sim, json!("00".repeat(32))).await;
    assert_eq!(s, 404);
    let (s, _) = sim
        .http("DELETE", &format!("{guests}/{gid}"), Some(&f.owner), None)
        .await;
    assert_eq!(s, 200);
    let (_, d) = guest_unlock(&sim, json!(secret)).await;
    assert_eq!(d["allowed"], false);
    assert!(d["reasons"].as_array().unwrap().contains(&json!("revoked")));
    // Ten attempts per grant in five minutes, whatever their outcome; then 429.
    for attempt in 3..=10 {
        let (s, _) = guest_unlock(&sim, json!(secret)).await;
        assert_eq!(s, 200, "attempt {attempt}");
    }
    let (s, b) = guest_unlock(&sim, json!(secret)).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (429, Some("too_many_attempts"))
    );
    assert!(unlock_for(&sim.downlinks(), &lock).is_none());
    // None of these authorised openings is an alert.
    f.run(&mut sim, 1_000).await;
    let kinds = f.alert_kinds(&sim).await;
    assert!(
        !kinds.iter().any(|k| k == "unauthorized_entry"),
        "{kinds:?}"
    );
}

/// A hub restart mid-session: the door is closed and relocked by the lock's own rule
/// while the hub is down; after the restart the lock's log arrives, the lock proves
/// itself afresh, and the delivery completes with nothing lost.
#[tokio::test]
async fn hub_restart_mid_session_ends_locked() {
    let (mut sim, mut f) = flat().await;
    let id = f.delivery(&sim, "PARCEL-H").await;
    assert_eq!(f.enter(&sim, &id, "PARCEL-H").await["allowed"], true);
    assert!(unlock_for(&sim.downlinks(), &f.door.lock.sim.id).is_some());
    bolt_retracts(&sim, &mut f.door).await;
    door_opens(&sim, &mut f.door).await;
    f.run(&mut sim, 300).await;
    let lock_hex = f.door.lock.hex();
    let events_before = sim
        .state
        .store
        .device_events(&f.owner_id, &lock_hex, 1000)
        .await
        .unwrap()
        .len();
    // The hub goes down: nothing the devices send reaches it.
    f.door.lock.cut();
    f.door.camera.cut();
    // Hub down: the door closes, the lock relocks on its own.
    sim.clock.advance(200);
    door_closes(&sim, &mut f.door).await;
    bolt_throws(&sim, &mut f.door).await;
    sim.clock.advance(500);
    let mut sim = sim.restart(100).await;
    // The devices reconnect a moment after the hub is back.
    sim.advance(100).await;
    let (s, b) = sim
        .http(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "olivia", "password": support::sim::PASSWORD})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    f.owner = b["token"].as_str().unwrap().to_owned();
    // The devices reach the new hub: the lock uploads what it logged meanwhile.
    f.door.camera.restore(&sim).await;
    f.door.lock.restore(&sim).await;
    run_until!(sim, f, 20_000, "lock live again", {
        f.lock(&sim).await["bolt"] == "locked"
    });
    let events = sim
        .state
        .store
        .device_events(&f.owner_id, &lock_hex, 1000)
        .await
        .unwrap();
    assert!(
        events.iter().any(|e| e.event_type == "relocked"),
        "the lock's log uploaded after the restart"
    );
    let (s, b) = f.delivered(&sim, &id).await;
    assert_eq!(s, 200, "{b}");
    run_until!(sim, f, 15_000, "completed after restart", {
        f.delivery_state(&sim, &id).await == "completed"
    });
    let events_after = sim
        .state
        .store
        .device_events(&f.owner_id, &lock_hex, 1000)
        .await
        .unwrap();
    assert!(events_after.len() >= events_before + 2, "the log made it");
    assert!(events_after.iter().any(|e| e.event_type == "relocked"));
    assert_eq!(f.lock(&sim).await["bolt"], "locked");
    let kinds = f.alert_kinds(&sim).await;
    assert!(
        !kinds.iter().any(|k| k == "unauthorized_entry"),
        "{kinds:?}"
    );
}
