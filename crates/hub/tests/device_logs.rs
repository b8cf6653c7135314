//! A device's event log, told in simulated time: a gap in a lock's log is on the
//! owner's timeline at once and becomes an alert only if it is still open after the
//! grace period (records arrive out of order around a reconnect).

mod support;

use support::house::House;
use support::sim::Sim;

async fn ready() -> (Sim, House) {
    let mut sim = Sim::new().await;
    let mut h = House::new(&sim).await;
    h.run(&mut sim, 2_000).await;
    (sim, h)
}

fn gap_alerts(alerts: &[serde_json::Value]) -> Vec<&serde_json::Value> {
    alerts
        .iter()
        .filter(|a| a["kind"] == "sequence_gap")
        .collect()
}

async fn timeline_kinds(sim: &Sim, h: &House) -> Vec<String> {
    h.timeline(sim)
        .await
        .iter()
        .filter_map(|t| t["kind"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn a_gap_still_open_after_the_grace_period_is_alerted_once() {
    let (mut sim, mut h) = ready().await;
    let grace = sim.state.config.gap_alert_grace_ms;
    h.front.lock.cut();
    h.front.lock.event(&sim, "door_opened").await;
    h.front.lock.event(&sim, "door_closed").await;
    // The newer record arrives first: its predecessor is missing.
    h.front.lock.upload_newest(&sim).await;
    assert!(
        timeline_kinds(&sim, &h)
            .await
            .contains(&"sequence_gap".to_owned()),
        "the gap is on the timeline at once"
    );
    h.run(&mut sim, grace - 200).await;
    assert!(
        gap_alerts(&h.alerts(&sim).await).is_empty(),
        "no alert within the grace period"
    );
    h.run(&mut sim, 500).await;
    let alerts = h.alerts(&sim).await;
    let gaps = gap_alerts(&alerts);
    assert_eq!(gaps.len(), 1, "{alerts:?}");
    assert_eq!(gaps[0]["device_id"], h.front.lock.hex());
    assert_eq!(gaps[0]["severity"], "warning");
    let ev = &gaps[0]["evidence"];
    assert_eq!(ev["from"], ev["to"], "one record missing: {ev}");
    assert_eq!(ev["still_missing"][0][0], ev["from"], "{ev}");
    h.run(&mut sim, grace * 2).await;
    assert_eq!(gap_alerts(&h.alerts(&sim).await).len(), 1, "alerted once");
}

#[tokio::test]
async fn a_gap_filled_within_the_grace_period_raises_nothing() {
    let (mut sim, mut h) = ready().await;
    let grace = sim.state.config.gap_alert_grace_ms;
    h.front.lock.cut();
    h.front.lock.event(&sim, "door_opened").await;
    h.front.lock.event(&sim, "door_closed").await;
    h.front.lock.upload_newest(&sim).await;
    h.run(&mut sim, grace / 2).await;
    // The missing record arrives late (the rest of the log, as on reconnect).
    h.front.lock.restore(&sim).await;
    h.run(&mut sim, grace * 2).await;
    let alerts = h.alerts(&sim).await;
    assert!(gap_alerts(&alerts).is_empty(), "{alerts:?}");
}
