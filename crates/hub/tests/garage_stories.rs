//! Deliveries into the garage, told as stories in simulated time (no sleeps, no
//! broker): a garage-door opener is the door's actuator and the door is its own
//! barrier. The entry rule is the front door's (the garage's own camera must watch);
//! the hub closes the door when the courier is done; only a fresh signed "closed"
//! completes the delivery; a door left open escalates with its last frame and a second
//! close command; an obstruction is reported as such.

mod support;

use support::house::{evidence, garage_moves, garage_rests, GarageHome};
use support::sim::{lock_command_for, unlock_for, Sim};
use threshold_proto::body::{DoorMotion, DoorState};
use threshold_proto::Kind;

fn codes(decision: &serde_json::Value) -> Vec<String> {
    support::reasons(decision)
}

async fn ready() -> (Sim, GarageHome) {
    let mut sim = Sim::new().await;
    let mut h = GarageHome::new(&sim).await;
    h.run(&mut sim, 2_000).await;
    sim.downlinks();
    (sim, h)
}

/// The courier is let in: the opener gets the capability and opens the door.
async fn courier_inside(sim: &mut Sim, h: &mut GarageHome, parcel: &str) -> String {
    let d = h.delivery(sim, &h.garage.id.clone(), parcel).await;
    let decision = h.enter(sim, &d, parcel).await;
    assert_eq!(decision["allowed"], true, "{decision}");
    let sent = sim.downlinks();
    assert!(
        unlock_for(&sent, &h.garage.lock.sim.id).is_some(),
        "the garage opener got the capability: {sent:?}"
    );
    assert!(
        unlock_for(&sent, &h.front.lock.sim.id).is_none(),
        "never the front door's lock"
    );
    // The recording asks the garage's camera to stream, as a real one does.
    h.garage.camera.streaming = true;
    h.garage.lock.event(sim, "token_accepted").await;
    garage_moves(sim, &mut h.garage.lock, DoorMotion::Opening).await;
    h.run(sim, 1_000).await;
    garage_rests(sim, &mut h.garage.lock, DoorState::Open).await;
    h.run(sim, 1_000).await;
    d
}

fn close_commands(
    sent: &[(threshold_proto::DeviceId, Kind, serde_json::Value)],
    h: &GarageHome,
) -> usize {
    sent.iter()
        .filter(|(d, k, _)| *d == h.garage.lock.sim.id && *k == Kind::Lock)
        .count()
}

#[tokio::test]
async fn a_garage_delivery_completes_only_after_a_fresh_closed() {
    let (mut sim, mut h) = ready().await;
    let view = h.garage_view(&sim).await;
    assert_eq!(view["actuator"], "garage_opener", "{view}");
    assert_eq!(view["door"], "closed", "{view}");
    assert!(
        view.get("bolt").is_none_or(|b| b.is_null()),
        "a garage has no bolt: {view}"
    );

    let d = courier_inside(&mut sim, &mut h, "G-1").await;
    assert_eq!(h.delivery_state(&sim, &d).await, "inside");
    let (s, b) = h.delivered(&sim, &d).await;
    assert_eq!(s, 200, "{b}");
    // The hub closes the garage at once when the courier is done.
    let sent = sim.downlinks();
    assert_eq!(close_commands(&sent, &h), 1, "one close command: {sent:?}");
    assert!(lock_command_for(&sent, &h.garage.lock.sim.id));
    assert!(!lock_command_for(&sent, &h.front.lock.sim.id));

    // Closing is not closed: the delivery waits, and the owner sees it moving.
    garage_moves(&sim, &mut h.garage.lock, DoorMotion::Closing).await;
    h.run(&mut sim, 10_000).await;
    assert_eq!(h.delivery_state(&sim, &d).await, "delivered");
    let view = h.garage_view(&sim).await;
    assert_eq!(
        (view["door"].as_str(), view["motion"].as_str()),
        (Some("open"), Some("closing")),
        "{view}"
    );

    // A "closed" from an opener that has gone quiet is not fresh: still not secured.
    h.garage.lock.dark = true;
    h.garage.lock.door = Some(DoorState::Closed);
    h.garage.lock.motion = None;
    h.run(&mut sim, 6_000).await;
    assert_eq!(h.delivery_state(&sim, &d).await, "delivered");
    assert_eq!(h.garage_view(&sim).await["door"], "unknown");

    // A fresh signed "closed" completes it.
    h.garage.lock.dark = false;
    garage_rests(&sim, &mut h.garage.lock, DoorState::Closed).await;
    h.run(&mut sim, 500).await;
    assert_eq!(h.delivery_state(&sim, &d).await, "completed");
    assert_eq!(h.garage_view(&sim).await["door"], "closed");
    let kinds = h.alert_kinds(&sim).await;
    assert!(
        kinds.is_empty(),
        "no alert for a garage that closed: {kinds:?}"
    );
}

#[tokio::test]
async fn a_garage_left_open_escalates_with_its_last_frame_and_is_told_to_close_again() {
    let (mut sim, mut h) = ready().await;
    let d = courier_inside(&mut sim, &mut h, "G-2").await;
    let (s, b) = h.delivered(&sim, &d).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(close_commands(&sim.downlinks(), &h), 1);

    // The door does not move: nothing for the garage limit (60 s by default)...
    h.run(&mut sim, 59_000).await;
    assert_eq!(h.delivery_state(&sim, &d).await, "delivered");
    assert!(h.alert_kinds(&sim).await.is_empty());
    // ...then one critical alert with the last frame, and a second close command.
    h.run(&mut sim, 2_000).await;
    assert_eq!(h.delivery_state(&sim, &d).await, "ended_unverified");
    let alerts = h.alerts(&sim).await;
    let left_open: Vec<_> = alerts
        .iter()
        .filter(|a| a["kind"] == "garage_left_open")
        .collect();
    assert_eq!(left_open.len(), 1, "{alerts:?}");
    let a = left_open[0];
    assert_eq!(a["severity"], "critical", "{a}");
    assert!(
        !alerts.iter().any(|a| a["kind"] == "session_not_secured"),
        "the garage's alert, not the lock's"
    );
    let ev = evidence(a);
    let frame = &ev["last_frame"];
    assert_eq!(
        frame["camera"],
        h.garage.camera.hex(),
        "the garage's own camera: {ev}"
    );
    let url = frame["url"].as_str().expect("a frame link");
    let (s, _) = sim.http("GET", url, Some(&h.owner), None).await;
    assert_eq!(s, 200, "the last frame is there to look at: {url}");
    assert_eq!(
        close_commands(&sim.downlinks(), &h),
        1,
        "a second close command"
    );
    // One alert, not one per pass.
    h.run(&mut sim, 10_000).await;
    let n = h
        .alerts(&sim)
        .await
        .iter()
        .filter(|a| a["kind"] == "garage_left_open")
        .count();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn an_obstruction_is_reported_as_such() {
    let (mut sim, mut h) = ready().await;
    let d = courier_inside(&mut sim, &mut h, "G-3").await;
    h.delivered(&sim, &d).await;
    sim.downlinks();
    // The door starts down, the photo-eye trips, the opener reverses and stops open.
    garage_moves(&sim, &mut h.garage.lock, DoorMotion::Closing).await;
    h.garage.lock.obstructed = Some(true);
    h.garage.lock.event(&sim, "obstruction_detected").await;
    garage_rests(&sim, &mut h.garage.lock, DoorState::Open).await;
    h.run(&mut sim, 1_000).await;

    let view = h.garage_view(&sim).await;
    assert_eq!(view["obstructed"], true, "{view}");
    let alerts = h.alerts(&sim).await;
    let obstructed: Vec<_> = alerts
        .iter()
        .filter(|a| a["kind"] == "garage_obstructed")
        .collect();
    assert_eq!(obstructed.len(), 1, "{alerts:?}");
    assert_eq!(
        obstructed[0]["delivery_id"],
        d.as_str(),
        "tied to the delivery under way"
    );
    let timeline = h.timeline(&sim).await;
    assert!(
        timeline
            .iter()
            .any(|t| t["kind"] == "device.obstruction_detected"),
        "on the timeline"
    );
    // Left open because of it: the escalation says why.
    h.run(&mut sim, 61_000).await;
    let alerts = h.alerts(&sim).await;
    let left = alerts
        .iter()
        .find(|a| a["kind"] == "garage_left_open")
        .expect("left open");
    let msg = left["message"].as_str().unwrap_or_default();
    assert!(msg.contains("obstruction"), "{msg}");
    assert_eq!(evidence(left)["lock"]["obstructed"], true);
}

#[tokio::test]
async fn the_garage_camera_rule_is_enforced_like_the_front_door_s() {
    let (mut sim, mut h) = ready().await;
    // The garage's camera goes dark; the porch camera keeps watching the front door.
    h.garage.camera.dark = true;
    h.run(&mut sim, 2_000).await;
    let d = h.delivery(&sim, &h.garage.id.clone(), "G-4").await;
    let decision = h.enter(&sim, &d, "G-4").await;
    assert_eq!(decision["allowed"], false, "{decision}");
    let c = codes(&decision);
    assert!(c.iter().any(|c| c.starts_with("camera_")), "{c:?}");
    assert!(
        unlock_for(&sim.downlinks(), &h.garage.lock.sim.id).is_none(),
        "nothing sent"
    );

    // Its camera back, the opener gone quiet: the opener rule holds too.
    h.garage.camera.dark = false;
    h.garage.lock.dark = true;
    h.run(&mut sim, 6_000).await;
    let decision = h.enter(&sim, &d, "G-4").await;
    assert_eq!(decision["allowed"], false, "{decision}");
    assert!(
        codes(&decision).contains(&"lock_offline".to_owned()),
        "{decision}"
    );

    // Both watching and heard: in.
    h.garage.lock.dark = false;
    h.run(&mut sim, 1_000).await;
    let decision = h.enter(&sim, &d, "G-4").await;
    assert_eq!(decision["allowed"], true, "{decision}");
    assert!(unlock_for(&sim.downlinks(), &h.garage.lock.sim.id).is_some());
}

#[tokio::test]
async fn a_garage_whose_camera_is_lost_mid_delivery_is_closed_at_once() {
    let (mut sim, mut h) = ready().await;
    let d = courier_inside(&mut sim, &mut h, "G-5").await;
    h.garage.camera.dark = true;
    h.run(&mut sim, 2_000).await;
    assert_eq!(h.delivery_state(&sim, &d).await, "camera_lost");
    assert_eq!(
        close_commands(&sim.downlinks(), &h),
        1,
        "closed at once, not on the next closing"
    );
    garage_moves(&sim, &mut h.garage.lock, DoorMotion::Closing).await;
    garage_rests(&sim, &mut h.garage.lock, DoorState::Closed).await;
    h.run(&mut sim, 500).await;
    assert_eq!(h.delivery_state(&sim, &d).await, "ended_after_camera_loss");
}
