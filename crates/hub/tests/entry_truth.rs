//! Entry truth, told as stories in simulated time (no sleeps, no broker): the door's
//! own camera decides, from capture to bolt, through the whole incident, and every
//! incident ends. Each story runs the real hub state, store, API and ingest path.

mod support;

use base64::Engine;
use serde_json::json;
use support::house::{bolt_retracts, bolt_throws, door_closes, door_opens, House};
use support::sim::{lock_command_for, unlock_for, Sim, LAT, LON};
use threshold_proto::body::BoltState;
use threshold_proto::{Kind, UnverifiedMessage};

fn codes(decision: &serde_json::Value) -> Vec<String> {
    decision["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap().to_owned())
        .collect()
}

async fn ready() -> (Sim, House) {
    let mut sim = Sim::new().await;
    let mut h = House::new(&sim).await;
    h.run(&mut sim, 2_000).await;
    sim.downlinks();
    (sim, h)
}

#[tokio::test]
async fn a_courier_entry_opens_only_the_delivery_s_door_with_its_camera_s_statement() {
    let (mut sim, h) = ready().await;
    let d = h.delivery(&sim, None, "P-1").await;
    let decision = h.enter(&sim, &d, "P-1").await;
    assert_eq!(decision["allowed"], true, "{decision}");
    let sent = sim.downlinks();
    let token = unlock_for(&sent, &h.front.lock.sim.id).expect("front lock got a capability");
    assert!(
        unlock_for(&sent, &h.back.lock.sim.id).is_none(),
        "the back door must stay shut"
    );
    assert_eq!(
        sent.iter().filter(|(_, k, _)| *k == Kind::Unlock).count(),
        1
    );
    // The token carries the front camera's own signed heartbeat, verifiable with its key.
    let statement = base64::engine::general_purpose::STANDARD
        .decode(token["camera"].as_str().expect("statement"))
        .unwrap();
    let m = UnverifiedMessage::decode(&statement).unwrap();
    assert_eq!(m.kind, Kind::Heartbeat);
    assert_eq!(m.device, h.front.camera.sim.id);
    m.verify(&h.front.camera.sim.key.public())
        .expect("signed by the front camera");
    assert!(token.get("camera_waived").is_none());
    // A delivery through the back door opens the back door only.
    let d2 = h.delivery(&sim, Some(&h.back.id), "P-2").await;
    assert_eq!(h.enter(&sim, &d2, "P-2").await["allowed"], true);
    let sent = sim.downlinks();
    assert!(unlock_for(&sent, &h.back.lock.sim.id).is_some());
    assert!(unlock_for(&sent, &h.front.lock.sim.id).is_none());
    sim.tick().await;
}

#[tokio::test]
async fn a_garden_camera_cannot_authorise_the_front_door() {
    let (mut sim, mut h) = ready().await;
    h.front.camera.dark = true;
    h.run(&mut sim, 6_000).await;
    let d = h.delivery(&sim, None, "P-1").await;
    let decision = h.enter(&sim, &d, "P-1").await;
    assert_eq!(decision["allowed"], false);
    assert_eq!(
        codes(&decision),
        ["camera_offline"],
        "the live garden camera counts for nothing"
    );
    assert!(unlock_for(&sim.downlinks(), &h.front.lock.sim.id).is_none());
    // A door with no camera bound cannot be opened for a courier at all.
    let (s, _) = sim
        .http(
            "PATCH",
            &format!("/api/v1/homes/{}/doors/{}", h.home, h.front.id),
            Some(&h.owner),
            Some(json!({"camera_ids": []})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(codes(&h.enter(&sim, &d, "P-1").await), ["no_camera_bound"]);
    // Binding the garden camera to the front door is the owner's explicit choice.
    let (s, _) = sim
        .http(
            "PATCH",
            &format!("/api/v1/homes/{}/doors/{}", h.home, h.front.id),
            Some(&h.owner),
            Some(json!({"camera_ids": [h.garden.hex()]})),
        )
        .await;
    assert_eq!(s, 200);
    let sent = sim.downlinks();
    let cams = sent
        .iter()
        .rev()
        .find(|(dev, k, _)| *dev == h.front.lock.sim.id && *k == Kind::Cameras)
        .expect("the front lock learns its new camera at once");
    assert_eq!(
        cams.2["cameras"],
        json!([h.garden.sim.key.public().to_hex()])
    );
    assert_eq!(h.enter(&sim, &d, "P-1").await["allowed"], true);
}

#[tokio::test]
async fn a_revoked_camera_is_struck_off_its_lock_s_list_at_once() {
    let (sim, h) = ready().await;
    let (s, b) = sim
        .http(
            "DELETE",
            &format!("/api/v1/devices/{}", h.front.camera.hex()),
            Some(&h.owner),
            None,
        )
        .await;
    assert_eq!(s, 204, "{b}");
    let sent = sim.downlinks();
    let cams = sent
        .iter()
        .rev()
        .find(|(dev, k, _)| *dev == h.front.lock.sim.id && *k == Kind::Cameras)
        .expect("the front lock is told at once, not at its next reconnect");
    assert_eq!(cams.2["cameras"], json!([]), "{}", cams.2);
    assert!(
        !sent
            .iter()
            .any(|(dev, k, _)| *dev == h.back.lock.sim.id && *k == Kind::Cameras),
        "the back door's camera set did not change"
    );
}

#[tokio::test]
async fn a_frozen_a_late_and_a_skewed_camera_each_refuse_with_their_own_reason() {
    let (mut sim, mut h) = ready().await;
    let d = h.delivery(&sim, None, "P-1").await;

    h.front.camera.frozen = true;
    h.run(&mut sim, 11_000).await;
    assert_eq!(codes(&h.enter(&sim, &d, "P-1").await), ["camera_frozen"]);
    h.front.camera.frozen = false;
    h.run(&mut sim, 1_000).await;
    // Every frame now announced was captured 2 s before: the live window is 1 s.
    h.front.camera.frame_age_ms = 2_000;
    h.run(&mut sim, 1_500).await;
    assert_eq!(codes(&h.enter(&sim, &d, "P-1").await), ["camera_stale"]);
    h.front.camera.frame_age_ms = 60;
    // The camera's clock jumps 3 s ahead (beyond the 2 s allowed skew).
    h.front.camera.skew_ms = 3_000;
    h.run(&mut sim, 1_000).await;
    assert_eq!(
        codes(&h.enter(&sim, &d, "P-1").await),
        ["camera_clock_skew"]
    );
    // The API and the LIVE badge say the same.
    let cam = h.device_view(&sim, &h.front.camera).await;
    assert_eq!(cam["state"]["watching"], "camera_clock_skew", "{cam}");
    assert_ne!(cam["liveness"], "live");
}

#[tokio::test]
async fn the_owner_s_remote_unlock_follows_the_rule_and_its_override_is_recorded() {
    let (mut sim, mut h) = ready().await;
    h.front.camera.dark = true;
    h.run(&mut sim, 6_000).await;
    let path = format!("/api/v1/doors/{}/unlock", h.front.id);
    let (s, b) = sim.http("POST", &path, Some(&h.owner), None).await;
    assert_eq!(s, 409, "{b}");
    assert_eq!(b["error"]["code"], "entry_refused");
    assert!(unlock_for(&sim.downlinks(), &h.front.lock.sim.id).is_none());
    let (s, b) = sim
        .http(
            "POST",
            &path,
            Some(&h.owner),
            Some(json!({"without_camera": true})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["camera_override"], true);
    let token = unlock_for(&sim.downlinks(), &h.front.lock.sim.id).expect("sent");
    assert_eq!(token["camera_waived"], "owner_override");
    assert!(token.get("camera").is_none());
    // On the timeline and in the audit chain, as an override.
    let unlocks: Vec<_> = h
        .timeline(&sim)
        .await
        .iter()
        .filter(|e| e["kind"] == "owner.unlock")
        .map(|e| {
            (
                e["detail"]["allowed"].clone(),
                e["detail"]["camera_override"].clone(),
            )
        })
        .collect();
    assert!(
        unlocks.contains(&(json!(false), json!(false))),
        "{unlocks:?}"
    );
    assert!(unlocks.contains(&(json!(true), json!(true))), "{unlocks:?}");
    let audit = sim.state.store.audit_page(0, 1000).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.kind == "decision" && a.detail.contains("\"camera_override\":true")),
        "override in the audit chain"
    );
}

#[tokio::test]
async fn a_camera_lost_delivery_ends_and_later_entries_raise_no_alert() {
    let (mut sim, mut h) = ready().await;
    let d = h.delivery(&sim, None, "P-1").await;
    assert_eq!(h.enter(&sim, &d, "P-1").await["allowed"], true);
    bolt_retracts(&sim, &mut h.front).await;
    door_opens(&sim, &mut h.front).await;
    h.run(&mut sim, 1_000).await;
    // The jammer: the front camera goes dark while the courier is inside.
    h.front.camera.dark = true;
    h.run(&mut sim, 1_500).await;
    assert_eq!(h.delivery_state(&sim, &d).await, "camera_lost");
    assert_eq!(h.alert_kinds(&sim).await, ["camera_lost_during_delivery"]);
    // The courier leaves through the door: one unwatched opening, once.
    door_closes(&sim, &mut h.front).await;
    assert!(
        lock_command_for(&sim.downlinks(), &h.front.lock.sim.id),
        "relock commanded when the door closed"
    );
    door_opens(&sim, &mut h.front).await;
    door_closes(&sim, &mut h.front).await;
    door_opens(&sim, &mut h.front).await;
    door_closes(&sim, &mut h.front).await;
    assert_eq!(
        h.alert_kinds(&sim).await,
        ["camera_lost_during_delivery", "door_opened_unwatched"],
        "one incident, not a stream"
    );
    // The courier cannot complete it.
    let (s, b) = sim
        .http(
            "POST",
            &format!("/api/v1/deliveries/{d}/delivered"),
            Some(&h.courier),
            None,
        )
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (409, Some("delivery_compromised"))
    );
    // The lock relocks: a fresh signed "closed and locked" ends the incident.
    bolt_throws(&sim, &mut h.front).await;
    h.run(&mut sim, 500).await;
    assert_eq!(h.delivery_state(&sim, &d).await, "ended_after_camera_loss");
    let before = h.alert_kinds(&sim).await.len();

    // The camera comes back. The owner comes home, a guest comes, a second courier
    // delivers: none of these is an alert.
    h.front.camera.dark = false;
    h.run(&mut sim, 2_000).await;
    let (s, b) = sim
        .http(
            "POST",
            &format!("/api/v1/doors/{}/unlock", h.front.id),
            Some(&h.owner),
            None,
        )
        .await;
    assert_eq!(s, 200, "{b}");
    bolt_retracts(&sim, &mut h.front).await;
    door_opens(&sim, &mut h.front).await;
    door_closes(&sim, &mut h.front).await;
    bolt_throws(&sim, &mut h.front).await;
    h.run(&mut sim, 3_000).await;

    let now = sim.now();
    let (s, g) = sim
        .http(
            "POST",
            &format!("/api/v1/homes/{}/guests", h.home),
            Some(&h.owner),
            Some(json!({"name": "Cleaner", "valid_from_ms": now - 1000, "valid_until_ms": now + 3_600_000, "door_id": h.front.id})),
        )
        .await;
    assert_eq!(s, 201, "{g}");
    let (s, u) = sim
        .http(
            "POST",
            "/api/v1/guest/unlock",
            None,
            Some(json!({"secret": g["secret"]})),
        )
        .await;
    assert_eq!((s, u["allowed"].clone()), (200, json!(true)), "{u}");
    bolt_retracts(&sim, &mut h.front).await;
    door_opens(&sim, &mut h.front).await;
    door_closes(&sim, &mut h.front).await;
    bolt_throws(&sim, &mut h.front).await;
    h.run(&mut sim, 3_000).await;

    let d2 = h.delivery(&sim, None, "P-2").await;
    assert_eq!(h.enter(&sim, &d2, "P-2").await["allowed"], true);
    bolt_retracts(&sim, &mut h.front).await;
    door_opens(&sim, &mut h.front).await;
    door_closes(&sim, &mut h.front).await;
    bolt_throws(&sim, &mut h.front).await;
    let (s, _) = sim
        .http(
            "POST",
            &format!("/api/v1/deliveries/{d2}/delivered"),
            Some(&h.courier),
            None,
        )
        .await;
    assert_eq!(s, 200);
    h.run(&mut sim, 1_000).await;
    assert_eq!(h.delivery_state(&sim, &d2).await, "completed");
    assert_eq!(
        h.alert_kinds(&sim).await.len(),
        before,
        "{:?}",
        h.alert_kinds(&sim).await
    );
    // Each physical opening was recorded once although two devices reported it.
    let openings = sim
        .state
        .store
        .openings_between(&h.home, Some(&h.front.id), 0, i64::MAX)
        .await
        .unwrap();
    assert_eq!(openings.len(), 6, "{openings:?}");
    assert!(
        openings.iter().all(|o| o.reported_by.contains(',')),
        "lock and contact merged"
    );
}

#[tokio::test]
async fn an_unlocked_door_after_camera_loss_is_relocked_and_escalated() {
    let (mut sim, mut h) = ready().await;
    let d = h.delivery(&sim, None, "P-1").await;
    assert_eq!(h.enter(&sim, &d, "P-1").await["allowed"], true);
    bolt_retracts(&sim, &mut h.front).await;
    h.run(&mut sim, 500).await;
    h.front.camera.dark = true;
    h.run(&mut sim, 1_500).await;
    assert_eq!(h.delivery_state(&sim, &d).await, "camera_lost");
    // The door was closed (never opened) and the bolt is back: relock now.
    assert!(lock_command_for(&sim.downlinks(), &h.front.lock.sim.id));
    // The bolt moves and jams; its reports are not a reason to command it again and
    // again (each command would make it report moving once more).
    for bolt in [
        BoltState::Moving,
        BoltState::Jammed,
        BoltState::Moving,
        BoltState::Jammed,
    ] {
        h.front.lock.bolt = Some(bolt);
        h.front.lock.report(&sim).await;
        h.front.lock.event(&sim, "relocked").await;
    }
    assert!(
        !lock_command_for(&sim.downlinks(), &h.front.lock.sim.id),
        "no command storm"
    );
    // The lock never confirms (its bolt is stuck): after the incident limit, one
    // more critical alert, and the lock is commanded again.
    h.run(&mut sim, 59_000).await;
    assert_eq!(h.delivery_state(&sim, &d).await, "camera_lost");
    h.run(&mut sim, 2_000).await;
    assert_eq!(h.delivery_state(&sim, &d).await, "ended_unverified");
    assert_eq!(
        h.alert_kinds(&sim).await,
        ["camera_lost_during_delivery", "door_may_be_unlocked"]
    );
    assert!(lock_command_for(&sim.downlinks(), &h.front.lock.sim.id));
    h.run(&mut sim, 5_000).await;
    let kinds = h.alert_kinds(&sim).await;
    assert_eq!(
        kinds
            .iter()
            .filter(|k| *k == "door_may_be_unlocked")
            .count(),
        1,
        "escalated once: {kinds:?}"
    );
    // Outside the delivery now, the dark camera is reported once its grace is over.
    assert_eq!(kinds.last().map(String::as_str), Some("device_offline"));
}

#[tokio::test]
async fn any_dispatcher_cannot_send_any_courier_into_any_home() {
    let (mut sim, h) = ready().await;
    let (other_id, other) = sim
        .user(threshold_store::Role::Dispatcher, "other-shop")
        .await;
    let now = sim.now();
    let (s, d) = sim
        .http(
            "POST",
            "/api/v1/deliveries",
            Some(&other),
            Some(
                json!({"home_id": h.home, "courier_id": h.courier_id, "window_start_ms": now - 1000,
                "window_end_ms": now + 3_600_000, "parcel_ref": "X-1"}),
            ),
        )
        .await;
    assert_eq!(s, 400, "the home has two doors: {d}");
    let (s, d) = sim
        .http(
            "POST",
            "/api/v1/deliveries",
            Some(&other),
            Some(
                json!({"home_id": h.home, "courier_id": h.courier_id, "window_start_ms": now - 1000,
                "window_end_ms": now + 3_600_000, "parcel_ref": "X-1", "door_id": h.front.id}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{d}");
    let id = d["id"].as_str().unwrap();
    assert_eq!(
        codes(&h.enter(&sim, id, "X-1").await),
        ["awaiting_owner_approval"]
    );
    // The owner trusts the merchant: allowed. Revoked: refused again.
    let m = format!("/api/v1/homes/{}/merchants/{other_id}", h.home);
    assert_eq!(sim.http("PUT", &m, Some(&h.owner), None).await.0, 200);
    let (_, merchants) = sim
        .http(
            "GET",
            &format!("/api/v1/homes/{}/merchants", h.home),
            Some(&h.owner),
            None,
        )
        .await;
    assert_eq!(merchants.as_array().unwrap().len(), 2);
    assert_eq!(sim.http("DELETE", &m, Some(&h.owner), None).await.0, 204);
    assert_eq!(
        codes(&h.enter(&sim, id, "X-1").await),
        ["awaiting_owner_approval"]
    );
    // One explicit approval of this delivery is enough.
    let (s, _) = sim
        .http(
            "POST",
            &format!("/api/v1/deliveries/{id}/approve"),
            Some(&h.owner),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(h.enter(&sim, id, "X-1").await["allowed"], true);
    sim.tick().await;
}

#[tokio::test]
async fn a_delivery_window_must_be_real() {
    let (sim, h) = ready().await;
    let now = sim.now();
    for (start, end) in [
        (-1, i64::MAX),
        (i64::MIN, 0),
        (-(1i64 << 62), 1i64 << 62),
        (now, now),
        (now, now + 24 * 3_600_000 + 1),
        (now - 2 * 24 * 3_600_000, now - 24 * 3_600_000 - 1),
    ] {
        let (s, b) = sim
            .http(
                "POST",
                "/api/v1/deliveries",
                Some(&h.dispatcher),
                Some(
                    json!({"home_id": h.home, "courier_id": h.courier_id, "window_start_ms": start,
                    "window_end_ms": end, "parcel_ref": "W", "door_id": h.front.id}),
                ),
            )
            .await;
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (400, Some("invalid_window")),
            "[{start}, {end}]"
        );
    }
}

#[tokio::test]
async fn the_geofence_is_the_radius_the_docs_state() {
    let (sim, h) = ready().await;
    let d = h.delivery(&sim, None, "P-1").await;
    // 0.0006 degrees of latitude is about 67 m from the home: inside the 75 m fence,
    // but not with a 20 m accuracy circle.
    let (s, b) = sim
        .http(
            "POST",
            &format!("/api/v1/deliveries/{d}/entry"),
            Some(&h.courier),
            Some(json!({"lat": LAT + 0.0006, "lon": LON, "accuracy_m": 20.0, "parcel_ref": "P-1"})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(codes(&b), ["outside_geofence"]);
}

#[tokio::test]
async fn a_camera_dark_across_a_hub_restart_is_an_incident_within_one_live_window() {
    let (mut sim, mut h) = ready().await;
    let d = h.delivery(&sim, None, "P-1").await;
    assert_eq!(h.enter(&sim, &d, "P-1").await["allowed"], true);
    bolt_retracts(&sim, &mut h.front).await;
    door_opens(&sim, &mut h.front).await;
    h.run(&mut sim, 500).await;
    // The hub stops; while it is down the camera goes dark and stays dark.
    h.front.camera.dark = true;
    let mut sim = sim.restart(10_000).await;
    // Other devices prove themselves again; the front camera never does.
    h.run(&mut sim, 1_000).await;
    assert_eq!(
        h.delivery_state(&sim, &d).await,
        "inside",
        "the hub first gives devices one live window"
    );
    h.run(&mut sim, 500).await;
    assert_eq!(h.delivery_state(&sim, &d).await, "camera_lost");
    assert_eq!(h.alert_kinds(&sim).await, ["camera_lost_during_delivery"]);
    // And a door opened while blind is an incident, not an authorised entry.
    door_closes(&sim, &mut h.front).await;
    door_opens(&sim, &mut h.front).await;
    assert_eq!(
        h.alert_kinds(&sim).await,
        ["camera_lost_during_delivery", "door_opened_unwatched"]
    );
}

#[tokio::test]
async fn a_lock_hello_the_restarting_hub_refused_is_answered_at_its_next_message() {
    let (sim, mut h) = ready().await;
    // While the hub is down the lock reconnects and says hello; the broker holds the
    // message and hands it over when the hub is back. Signed before the restart, it is
    // refused as a possible replay, and the lock hears no cameras from it.
    let hello_at = sim.now() + 9_000;
    let mut sim = sim.restart(10_000).await;
    let hello = h.front.lock.sim.hello(hello_at, "lock");
    assert_eq!(sim.deliver(&hello).await, Err("before_restart"));
    let lock = h.front.lock.sim.id;
    let front_cameras = |sent: &[(threshold_proto::DeviceId, Kind, serde_json::Value)]| {
        sent.iter()
            .filter(|(dev, k, _)| *dev == lock && *k == Kind::Cameras)
            .map(|(_, _, body)| body["cameras"].clone())
            .collect::<Vec<_>>()
    };
    assert!(front_cameras(&sim.downlinks()).is_empty());
    // Its next message the hub takes is answered as the hello would have been, once.
    h.run(&mut sim, 1_000).await;
    assert_eq!(
        front_cameras(&sim.downlinks()),
        [json!([h.front.camera.sim.key.public().to_hex()])],
        "the lock learns its door's camera after all"
    );
    h.run(&mut sim, 1_000).await;
    assert!(front_cameras(&sim.downlinks()).is_empty(), "owed once");
}

/// A hub process that first hears of a device from one of its messages (it was
/// enrolled through another process on the same data) fences it as a restart does:
/// the other process may have accepted messages whose replay marks it had not saved
/// yet, and a message signed before this process knew the device could be one.
#[tokio::test]
async fn a_device_first_heard_through_another_hub_process_is_fenced_like_a_restart() {
    let a = Sim::new().await;
    let (_, owner) = a.user(threshold_store::Role::Owner, "owner").await;
    let home = a.home(&owner, "Home").await;
    let mut b = a.beside().await;
    let mut cam = a.pair(&owner, &home, "camera", "Porch", None).await;
    let t = a.now();
    let signed_before = cam.heartbeat(t, t, 1);
    assert_eq!(b.deliver(&signed_before).await, Err("before_restart"));
    // Past the fence (no clock offset saved yet: the largest skew the hub allows).
    let past = b.state.config.max_clock_skew_ms + 1;
    b.advance(past).await;
    let signed_after = cam.heartbeat(t + past, t + past, 2);
    assert_eq!(b.deliver(&signed_after).await, Ok(()));
}

#[tokio::test]
async fn a_door_opened_with_no_session_is_one_unauthorised_entry() {
    let (mut sim, mut h) = ready().await;
    door_opens(&sim, &mut h.front).await;
    door_closes(&sim, &mut h.front).await;
    h.run(&mut sim, 500).await;
    let alerts = h.alerts(&sim).await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["kind"], "unauthorized_entry");
    assert_eq!(
        alerts[0]["evidence"]["door_id"], h.front.id,
        "{}",
        alerts[0]
    );
    assert_eq!(alerts[0]["evidence"]["reported_by"], h.front.lock.hex());
}

#[tokio::test]
async fn statements_the_lock_refused_are_counted_and_reported() {
    let (sim, mut h) = ready().await;
    for reason in [
        "camera_statement_stale",
        "camera_not_bound",
        "camera_statement_bad_signature",
    ] {
        let t = sim.now();
        let m = h.front.lock.sim.event(
            t,
            "token_refused",
            json!({"reason": reason, "grant": "delivery:x", "nonce": "00112233445566778899aabbccddeeff"}),
        );
        sim.deliver(&m).await.unwrap();
    }
    let text = sim
        .state
        .metrics
        .render(threshold_hub::metrics_text::Format::OpenMetrics);
    for reason in [
        "camera_statement_stale",
        "camera_not_bound",
        "camera_statement_bad_signature",
    ] {
        assert!(
            text.contains(&format!(
                "threshold_tokens_refused_total{{reason=\"{reason}\"}} 1"
            )),
            "{reason} counted:\n{text}"
        );
    }
    let kinds = h.alert_kinds(&sim).await;
    assert_eq!(kinds, ["token_refused", "token_refused", "token_refused"]);
}

#[tokio::test]
async fn the_owner_s_hours_are_local_time_in_the_home_s_zone() {
    let (sim, h) = ready().await;
    // Now is 10:00 UTC, 11:00 in Amsterdam (winter, UTC+1).
    let settings = |hours: serde_json::Value, zone: &str| json!({"in_home_enabled": true, "approval_required": false, "allowed_hours": hours, "time_zone": zone});
    let path = format!("/api/v1/homes/{}/settings", h.home);
    let (s, b) = sim
        .http(
            "PUT",
            &path,
            Some(&h.owner),
            Some(settings(
                json!({"start_minute": 630, "end_minute": 690}),
                "Europe/Amsterdam",
            )),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["time_zone"], "Europe/Amsterdam");
    let d = h.delivery(&sim, None, "P-1").await;
    assert_eq!(
        h.enter(&sim, &d, "P-1").await["allowed"],
        true,
        "10:30-11:30 local holds at 11:00"
    );
    let d2 = h.delivery(&sim, None, "P-2").await;
    let (s, _) = sim
        .http(
            "PUT",
            &path,
            Some(&h.owner),
            Some(settings(
                json!({"start_minute": 570, "end_minute": 630}),
                "Europe/Amsterdam",
            )),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        codes(&h.enter(&sim, &d2, "P-2").await),
        ["outside_owner_hours"],
        "09:30-10:30 local"
    );
    let (s, b) = sim
        .http(
            "PUT",
            &path,
            Some(&h.owner),
            Some(settings(json!({}), "Mars/Olympus_Mons")),
        )
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (400, Some("invalid_time_zone"))
    );
}

#[tokio::test]
async fn after_a_restart_a_home_not_heard_from_yet_is_given_time_to_reconnect() {
    let (mut sim, mut h) = ready().await;
    let d = h.delivery(&sim, None, "P-1").await;
    assert_eq!(h.enter(&sim, &d, "P-1").await["allowed"], true);
    h.run(&mut sim, 500).await;
    // The hub restarts; none of the home's devices has reconnected yet (thousands of
    // devices reconnecting at once take seconds): that is not the camera's fault.
    for dev in [
        &mut h.front.lock,
        &mut h.front.camera,
        &mut h.back.lock,
        &mut h.back.camera,
        &mut h.garden,
    ] {
        dev.dark = true;
    }
    if let Some(c) = h.front.contact.as_mut() {
        c.dark = true;
    }
    let mut sim = sim.restart(10_000).await;
    h.run(&mut sim, 9_500).await;
    assert_eq!(h.delivery_state(&sim, &d).await, "inside");
    assert!(h.alert_kinds(&sim).await.is_empty());
    // Still nothing from the whole home after the reconnect grace: now it is news.
    h.run(&mut sim, 1_000).await;
    assert_eq!(h.delivery_state(&sim, &d).await, "camera_lost");
    assert_eq!(h.alert_kinds(&sim).await, ["camera_lost_during_delivery"]);
}

#[tokio::test]
async fn a_streaming_camera_s_token_carries_its_newest_statement() {
    let (mut sim, mut h) = ready().await;
    // The camera streams for 5 s: each frame record arrives before the heartbeat that
    // announces it, so no heartbeat is news any more, yet each is the newest statement.
    h.front.camera.dark = true;
    for i in 0..20u8 {
        let now = sim.now();
        let (record, beat) = h
            .front
            .camera
            .sim
            .streamed(now, now - 40, i.wrapping_mul(9));
        sim.deliver(&record).await.expect("frame record accepted");
        sim.deliver(&beat).await.expect("heartbeat accepted");
        h.run(&mut sim, 250).await;
    }
    let d = h.delivery(&sim, None, "P-1").await;
    assert_eq!(h.enter(&sim, &d, "P-1").await["allowed"], true);
    let token = unlock_for(&sim.downlinks(), &h.front.lock.sim.id).expect("sent");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token["camera"].as_str().unwrap())
        .unwrap();
    let m = UnverifiedMessage::decode(&bytes).unwrap();
    let hb: threshold_proto::body::Heartbeat = serde_json::from_slice(&m.body).unwrap();
    let captured = hb.frame.unwrap().time_ms;
    assert!(
        sim.now() - captured <= 1_000,
        "the statement is {} ms old: a lock would refuse it",
        sim.now() - captured
    );
}

#[tokio::test]
async fn frame_records_without_a_fresh_heartbeat_do_not_open_the_door() {
    let (mut sim, mut h) = ready().await;
    // An outage: the camera is dark for 5 s (the lock keeps reporting).
    h.front.camera.dark = true;
    h.run(&mut sim, 5_000).await;
    // Back, streaming: frame records of new frames arrive first; the heartbeat that
    // would announce them has not come yet. The hub sees fresh pictures, but the only
    // statement it could carry to the lock is from before the outage, which the lock
    // would refuse as stale: the hub refuses first, and says why.
    for i in 0..3u8 {
        let now = sim.now();
        let (record, _beat) = h.front.camera.sim.streamed(now, now - 40, 50 + i);
        sim.deliver(&record).await.expect("frame record accepted");
        sim.advance(100).await;
    }
    let d = h.delivery(&sim, None, "P-1").await;
    let refused = h.enter(&sim, &d, "P-1").await;
    assert_eq!(refused["allowed"], false, "{refused}");
    assert_eq!(codes(&refused), ["camera_stale"]);
    assert!(unlock_for(&sim.downlinks(), &h.front.lock.sim.id).is_none());
    // The next heartbeat is the camera's statement again: the entry goes through, and
    // the token carries that heartbeat, captured within the window.
    let now = sim.now();
    let (record, beat) = h.front.camera.sim.streamed(now, now - 40, 99);
    sim.deliver(&record).await.expect("frame record accepted");
    sim.deliver(&beat).await.expect("heartbeat accepted");
    assert_eq!(h.enter(&sim, &d, "P-1").await["allowed"], true);
    let token = unlock_for(&sim.downlinks(), &h.front.lock.sim.id).expect("sent");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token["camera"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        bytes,
        beat.as_bytes(),
        "the newest heartbeat is the statement"
    );
}

/// The owner reads a delivery's story in one place: the hub's entries and the door's
/// own signed account of the same minutes (closed, locked), each saying who, in
/// order. Door events of other times or other doors stay out.
#[tokio::test]
async fn the_delivery_timeline_tells_who_did_what_at_the_door() {
    let (mut sim, mut h) = ready().await;
    // Before the delivery: the back door closes; not this delivery's story.
    h.back.lock.event(&sim, "door_closed").await;
    h.run(&mut sim, 500).await;
    let d = h.delivery(&sim, None, "P-T").await;
    assert_eq!(h.enter(&sim, &d, "P-T").await["allowed"], true);
    bolt_retracts(&sim, &mut h.front).await;
    h.run(&mut sim, 500).await;
    door_opens(&sim, &mut h.front).await;
    h.run(&mut sim, 1_000).await;
    door_closes(&sim, &mut h.front).await;
    h.run(&mut sim, 500).await;
    let (s, b) = sim
        .http(
            "POST",
            &format!("/api/v1/deliveries/{d}/delivered"),
            Some(&h.courier),
            None,
        )
        .await;
    assert_eq!(s, 200, "{b}");
    h.run(&mut sim, 500).await;
    bolt_throws(&sim, &mut h.front).await;
    h.run(&mut sim, 500).await;
    assert_eq!(h.delivery_state(&sim, &d).await, "completed");

    let (s, v) = sim
        .http(
            "GET",
            &format!("/api/v1/deliveries/{d}"),
            Some(&h.owner),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let tl = v["timeline"].as_array().unwrap();
    let kinds: Vec<&str> = tl.iter().map(|t| t["kind"].as_str().unwrap()).collect();
    let at = |k: &str| {
        kinds
            .iter()
            .position(|x| *x == k)
            .unwrap_or_else(|| panic!("{k} in {kinds:?}"))
    };
    assert!(at("decision") < at("door.opened"), "{kinds:?}");
    assert!(at("door.opened") < at("device.door_closed"), "{kinds:?}");
    assert!(
        at("device.door_closed") < at("device.bolt_locked"),
        "{kinds:?}"
    );
    assert!(
        at("delivery.delivered") < at("device.bolt_locked"),
        "{kinds:?}"
    );
    assert!(
        at("device.bolt_locked") < at("delivery.completed"),
        "{kinds:?}"
    );
    assert!(at("delivery.scheduled") < at("decision"), "{kinds:?}");
    let times: Vec<i64> = tl.iter().map(|t| t["time_ms"].as_i64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "in time order");
    let who = |k: &str| {
        tl.iter()
            .find(|t| t["kind"] == k)
            .map(|t| t["who"].clone())
            .unwrap()
    };
    assert_eq!(who("decision"), "courier courier");
    assert_eq!(who("device.bolt_locked"), "Front lock");
    assert_eq!(who("delivery.completed"), "hub");
    // Only the front door's devices, and only from the entry on.
    let back = h.back.lock.hex();
    assert!(
        tl.iter().all(|t| t["device_id"] != back.as_str()),
        "the back door's events are not this delivery's"
    );
}

/// A lock and several cameras paired at once to one door: every camera is bound (none
/// lost to another's enrolment), the hub's view of the door has them all, and the last
/// camera set the lock was sent names them all (a stale view of the door must never be
/// the last word, or the lock refuses the courier's token as `camera_not_bound`).
async fn devices_paired_at_once_all_reach_the_door(sim: Sim) {
    let (_, owner) = sim.user(threshold_store::Role::Owner, "olga").await;
    let home = sim.home(&owner, "Flat 9").await;
    let door = sim.door(&owner, &home, "Front door").await;
    let lock = sim.pair(&owner, &home, "lock", "lock", Some(&door));
    let names: Vec<String> = (0..6).map(|i| format!("camera {i}")).collect();
    let cameras = futures_util::future::join_all(
        names
            .iter()
            .map(|n| sim.pair(&owner, &home, "camera", n, Some(&door))),
    );
    let (lock, cameras) = tokio::join!(lock, cameras);
    let mut want: Vec<String> = cameras.iter().map(|c| c.hex()).collect();
    want.sort();
    let (s, doors) = sim
        .http(
            "GET",
            &format!("/api/v1/homes/{home}/doors"),
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(s, 200, "{doors}");
    let front = doors
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == door.as_str())
        .expect("the door");
    let mut bound: Vec<String> = front["camera_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    bound.sort();
    assert_eq!(bound, want, "every camera paired to the door watches it");
    let mut keys: Vec<String> = cameras.iter().map(|c| c.key.public().to_hex()).collect();
    keys.sort();
    let last = sim
        .downlinks()
        .into_iter()
        .rev()
        .find(|(dev, k, _)| *dev == lock.id && *k == Kind::Cameras)
        .map(|(_, _, body)| body);
    let mut sent: Vec<String> = last
        .as_ref()
        .and_then(|b| b["cameras"].as_array())
        .map(|a| {
            a.iter()
                .filter_map(|c| c.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    sent.sort();
    let mut known: Vec<String> = lock.enrolment["door_cameras"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    known.sort();
    assert!(
        sent == keys || (last.is_none() && known == keys),
        "the lock's last word on its cameras names them all: sent {sent:?}, enrolled with {known:?}"
    );
}

#[tokio::test]
async fn devices_paired_at_once_all_reach_the_door_sqlite() {
    devices_paired_at_once_all_reach_the_door(Sim::new().await).await;
}

#[tokio::test]
async fn devices_paired_at_once_all_reach_the_door_postgres() {
    let Some(url) = threshold_store::testing::postgres_url().await.unwrap() else {
        return;
    };
    devices_paired_at_once_all_reach_the_door(Sim::with(|c| c.database_url = Some(url)).await)
        .await;
}
