//! The camera attack of DESIGN.md in simulated time (no sleeps, no broker): what the
//! real-agent attack in `camera_real_agents.rs` can only bound on a busy machine, told
//! here to the millisecond on a manual clock, and the recording of a delivery whose
//! camera loses its link. The AVI export, the live viewer and the webhook stay with the
//! real agents: the viewer's status cadence runs on a tokio timer, not on the hub's
//! clock.

mod support;

use serde_json::json;
use support::house::{bolt_retracts, bolt_throws, door_closes, door_opens, evidence, Flat};
use support::sim::{lock_command_for, unlock_for, Sim};

async fn camera_liveness(sim: &Sim, f: &Flat) -> String {
    let (s, d) = sim
        .http(
            "GET",
            &format!("/api/v1/devices/{}", f.door.camera.hex()),
            Some(&f.owner),
            None,
        )
        .await;
    assert_eq!(s, 200, "{d}");
    d["liveness"].as_str().unwrap_or("").to_owned()
}

/// The camera's link is cut while the courier is inside: the owner is alerted within
/// 1.5 s of the camera's last fresh frame, the API never says live again until the
/// camera is back, the delivery is refused from then on, the hub has the lock relock
/// at once (the door was closed), two openings while jammed are both on the timeline,
/// and the courier cannot mark the delivery delivered; the incident ends with the
/// lock's fresh "closed and locked".
#[tokio::test]
async fn camera_jammed_mid_delivery() {
    let mut sim = Sim::new().await;
    let mut f = Flat::new(&sim).await;
    f.run(&mut sim, 2_000).await;
    let id = f.delivery(&sim, "PARCEL-CAM").await;
    let decision = f.enter(&sim, &id, "PARCEL-CAM").await;
    assert_eq!(decision["allowed"], true, "{decision}");
    assert!(unlock_for(&sim.downlinks(), &f.door.lock.sim.id).is_some());
    bolt_retracts(&sim, &mut f.door).await;
    f.run(&mut sim, 1_000).await;
    assert_eq!(camera_liveness(&sim, &f).await, "live");

    // The attack: the camera's link is cut. The API is sampled every 50 ms.
    let cut_at = sim.now();
    f.door.camera.cut();
    let mut api_seen: Vec<(String, i64)> = Vec::new();
    let alert = loop {
        if let Some(a) = f
            .alerts(&sim)
            .await
            .into_iter()
            .find(|a| a["kind"] == "camera_lost_during_delivery")
        {
            break a;
        }
        assert!(sim.now() - cut_at < 5_000, "no camera_lost alert");
        api_seen.push((camera_liveness(&sim, &f).await, sim.now()));
        f.run(&mut sim, 50).await;
    };
    assert_eq!(alert["severity"], "critical", "{alert}");
    assert_eq!(alert["delivery_id"], id.as_str(), "{alert}");
    let ev = evidence(&alert);
    let detected = ev["detected_ms"].as_i64().unwrap();
    let since_fresh = ev["since_last_fresh_ms"].as_i64().unwrap();
    assert!(
        since_fresh <= 1_500,
        "alert {since_fresh} ms after last fresh evidence: {ev}"
    );
    // The last heartbeat went out at most one period (250 ms) before the cut.
    assert!(
        detected - cut_at <= 1_500,
        "alert {} ms after the cut",
        detected - cut_at
    );

    // Entry for this delivery is refused now.
    let again = f.enter(&sim, &id, "PARCEL-CAM").await;
    assert_eq!(again["allowed"], false, "{again}");
    assert!(
        again["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["code"] == "delivery_compromised"),
        "{again}"
    );
    let sent = sim.downlinks();
    assert!(unlock_for(&sent, &f.door.lock.sim.id).is_none());
    // The door was still closed when the camera went: the hub has the lock relock at
    // once (its link is up; the camera's is cut).
    assert!(
        lock_command_for(&sent, &f.door.lock.sim.id),
        "relocked on the hub's command"
    );
    bolt_throws(&sim, &mut f.door).await;
    // The courier's second entry: the door forced open and closed twice while the
    // camera is jammed, 400 ms apart.
    for _ in 0..2 {
        door_opens(&sim, &mut f.door).await;
        f.run(&mut sim, 400).await;
        door_closes(&sim, &mut f.door).await;
        f.run(&mut sim, 400).await;
    }
    // The outage lasts 6 s; the API keeps being sampled.
    while sim.now() - cut_at < 6_000 {
        api_seen.push((camera_liveness(&sim, &f).await, sim.now()));
        f.run(&mut sim, 50).await;
    }
    let restored_at = sim.now();
    f.door.camera.restore(&sim).await;
    f.run(&mut sim, 500).await;
    assert_eq!(
        camera_liveness(&sim, &f).await,
        "live",
        "back once it sends"
    );

    // No API response during the outage said live once the hub could know.
    for (l, t) in &api_seen {
        if *t >= detected && *t < restored_at {
            assert_ne!(l, "live", "API said live at {t} during the outage");
        }
    }
    assert!(api_seen.iter().any(|(l, _)| l != "live"));
    // Both openings are on the timeline.
    let openings = f
        .timeline(&sim)
        .await
        .iter()
        .filter(|t| t["kind"] == "device.door_opened" && t["time_ms"].as_i64().unwrap() >= cut_at)
        .count();
    assert_eq!(openings, 2);
    // The courier cannot mark a compromised delivery delivered; the incident ended
    // with the lock's fresh "closed and locked".
    let (s, b) = f.delivered(&sim, &id).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (409, Some("delivery_compromised")),
        "{b}"
    );
    assert_eq!(f.delivery_state(&sim, &id).await, "ended_after_camera_loss");
}

async fn recording(sim: &Sim, f: &Flat, id: &str) -> serde_json::Value {
    let (s, r) = sim
        .http(
            "GET",
            &format!("/api/v1/deliveries/{id}/recording"),
            Some(&f.owner),
            None,
        )
        .await;
    assert_eq!(s, 200, "{r}");
    r
}

/// A delivery is recorded from the granted entry on: the door camera's frames are filed
/// into the delivery's recording as they arrive; when its link is cut the camera keeps
/// capturing, and after the link returns those frames reach the recording marked
/// recovered (by age, or as inside the outage the camera's signed link events bound),
/// with no hole over the outage and no missing sequence number.
#[tokio::test]
async fn the_recording_keeps_what_the_camera_captured_while_its_link_was_cut() {
    let mut sim = Sim::new().await;
    let mut f = Flat::new(&sim).await;
    f.door.camera.streaming = true;
    f.run(&mut sim, 2_000).await;
    let id = f.delivery(&sim, "PARCEL-REC").await;
    assert_eq!(f.enter(&sim, &id, "PARCEL-REC").await["allowed"], true);
    bolt_retracts(&sim, &mut f.door).await;
    f.run(&mut sim, 2_000).await;
    let rec = recording(&sim, &f, &id).await;
    let live = rec["frames"].as_array().unwrap().len();
    assert!(live >= 6, "frames filed as they arrive: {rec}");
    assert!(
        rec["frames"]
            .as_array()
            .unwrap()
            .iter()
            .all(|fr| fr["recovered"] == false),
        "{rec}"
    );

    // As the camera agent does, it logs the outage in its signed event log: lost
    // (kept while the link is down) and restored (once it is back).
    let cut_at = sim.now();
    f.door.camera.cut();
    f.door
        .camera
        .event_with(&sim, "link_lost", json!({ "from_ms": cut_at }))
        .await;
    f.run(&mut sim, 3_000).await;
    let restored_at = sim.now();
    f.door.camera.restore(&sim).await;
    f.door
        .camera
        .event_with(&sim, "link_restored", json!({ "at_ms": restored_at }))
        .await;
    f.run(&mut sim, 1_000).await;

    let rec = recording(&sim, &f, &id).await;
    let frames = rec["frames"].as_array().unwrap();
    let outage: Vec<&serde_json::Value> = frames
        .iter()
        .filter(|fr| {
            let c = fr["capture_ms"].as_i64().unwrap();
            c > cut_at && c < restored_at
        })
        .collect();
    // Four frames a second for three seconds.
    assert!(outage.len() >= 11, "{} outage frames", outage.len());
    assert!(
        outage.iter().all(|fr| fr["recovered"] == true),
        "backlog frames are marked recovered: {outage:?}"
    );
    let mut times: Vec<i64> = frames
        .iter()
        .map(|fr| fr["capture_ms"].as_i64().unwrap())
        .collect();
    times.sort();
    assert!(
        times.windows(2).all(|w| w[1] - w[0] <= 250),
        "no hole in the recording: {times:?}"
    );
    let cam = &rec["cameras"][0];
    assert_eq!(cam["gaps"].as_array().map(Vec::len), Some(0), "{cam}");
    assert!(
        cam["segments"]
            .as_array()
            .unwrap()
            .iter()
            .any(|seg| seg["recovered"] == true),
        "{cam}"
    );
}

/// While a delivery is recorded, the door camera's stream request is renewed as it nears
/// its end rather than at every pass (with ten thousand recordings open, a renewal each
/// pass was thousands of signed downlinks a second), never lapsing; and at once when the
/// camera reconnects, since it may have lost the request while it was away.
#[tokio::test]
async fn a_recorded_camera_s_stream_is_renewed_near_its_end_and_at_once_after_a_reconnect() {
    let mut sim = Sim::new().await;
    let mut f = Flat::new(&sim).await;
    f.door.camera.streaming = true;
    f.run(&mut sim, 2_000).await;
    let id = f.delivery(&sim, "PARCEL-LEASE").await;
    assert_eq!(f.enter(&sim, &id, "PARCEL-LEASE").await["allowed"], true);
    bolt_retracts(&sim, &mut f.door).await;
    let cam = f.door.camera.hex();
    let stream_asks = |sim: &Sim| -> Vec<i64> {
        sim.downlinks()
            .into_iter()
            .filter(|(d, k, _)| d.to_hex() == cam && *k == threshold_proto::Kind::Stream)
            .map(|(_, _, b)| b["until_ms"].as_i64().expect("until_ms"))
            .collect()
    };
    // Whatever went out with the entry itself.
    let mut covered_until = stream_asks(&sim).into_iter().max().expect("asked at entry");
    let mut renewals = 0;
    for _ in 0..60 {
        f.run(&mut sim, 500).await;
        for until in stream_asks(&sim) {
            renewals += 1;
            covered_until = covered_until.max(until);
        }
        assert!(
            covered_until - sim.now() >= 8_000,
            "the camera's request never runs low: {} ms left",
            covered_until - sim.now()
        );
    }
    assert!(
        (3..=4).contains(&renewals),
        "30 s of recording, renewed every 8 to 10 s: {renewals} renewals"
    );

    // The camera reconnects: it says hello, and is asked again at once.
    let hello = f.door.camera.sim.hello(sim.now(), "camera");
    sim.deliver(&hello).await.expect("hello accepted");
    assert_eq!(
        stream_asks(&sim),
        vec![sim.now() + 20_000],
        "asked at its hello"
    );
}
