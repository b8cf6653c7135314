//! What Home Assistant is told, as pure functions of what the hub knows. The rule is
//! the apps' rule (law 1): "locked" only while a fresh signed report says so, "live"
//! only while the hub holds a fresh verified frame, and Home Assistant's unknown
//! (`None`) whenever the hub does not know.

use serde_json::{json, Value};
use threshold_core::alert::AlertKind;
use threshold_core::delivery::{self, DeliveryState};
use threshold_core::liveness::Blind;

pub const ONLINE: &str = "online";
pub const OFFLINE: &str = "offline";
/// Home Assistant's "unknown" for locks, binary sensors and sensors.
pub const NONE: &str = "None";
pub const ON: &str = "ON";
pub const OFF: &str = "OFF";
pub const LOCK: &str = "LOCK";
pub const UNLOCK: &str = "UNLOCK";
pub const LOCKED: &str = "LOCKED";
pub const UNLOCKED: &str = "UNLOCKED";
pub const JAMMED: &str = "JAMMED";
pub const LOCKING: &str = "LOCKING";
pub const UNLOCKING: &str = "UNLOCKING";
pub const CLOSE: &str = "CLOSE";
pub const OPEN: &str = "open";
pub const OPENING: &str = "opening";
pub const CLOSED: &str = "closed";
pub const CLOSING: &str = "closing";
pub const STOPPED: &str = "stopped";
/// The delivery sensor's state when the home has had no delivery.
pub const NO_DELIVERY: &str = "none";
/// The event type of an alert whose kind this hub's list does not name.
pub const OTHER_ALERT: &str = "other";

/// A lock's state from its door's `access::doors::lock_view` (the very view the apps
/// show): the bolt as reported only while the report is fresh; `None` otherwise, and
/// while the bolt is moving (which way is not reported).
pub fn lock(view: &Value) -> &'static str {
    if view["fresh"] != json!(true) {
        return NONE;
    }
    match view["bolt"].as_str() {
        Some("locked") => LOCKED,
        Some("unlocked") => UNLOCKED,
        Some("jammed") => JAMMED,
        _ => NONE,
    }
}

/// The lock's attributes: what the apps show next to it ("unknown since ..."). Only
/// what changes with the lock's state: the time of each report (several a second)
/// would make every report a new attribute set in Home Assistant's history.
pub fn lock_attributes(view: &Value) -> Value {
    json!({
        "bolt": view["bolt"],
        "door": view["door"],
        "fresh": view["fresh"],
        "unknown_since_ms": view["unknown_since_ms"],
        "lock_device_id": view["device_id"],
    })
}

/// A garage door's state from its door's `access::doors::lock_view` (a garage-door
/// opener reports the door and its motion, no bolt): moving, stopped part-way, open
/// or closed only while the opener's report is fresh; `None` otherwise.
pub fn garage(view: &Value) -> &'static str {
    if view["fresh"] != json!(true) {
        return NONE;
    }
    match (view["motion"].as_str(), view["door"].as_str()) {
        (Some("opening"), _) => OPENING,
        (Some("closing"), _) => CLOSING,
        (Some("stopped"), _) => STOPPED,
        (_, Some("closed")) => CLOSED,
        (_, Some("open")) => OPEN,
        _ => NONE,
    }
}

/// A garage door's attributes (the owner's app's view, without report times).
pub fn garage_attributes(view: &Value) -> Value {
    json!({
        "door": view["door"],
        "motion": view["motion"],
        "obstructed": view["obstructed"],
        "fresh": view["fresh"],
        "unknown_since_ms": view["unknown_since_ms"],
        "opener_device_id": view["device_id"],
    })
}

/// A camera's live state: ON while it watches; OFF when it does not and the hub may
/// say so; unknown while the hub cannot yet tell a camera that is not live from one it
/// has not heard since it (re)connected (law 10: its own restart or outage is never a
/// camera's fault).
pub fn camera_live(verdict: Result<(), Blind>, may_blame: bool) -> &'static str {
    match verdict {
        Ok(()) => ON,
        Err(_) if may_blame => OFF,
        Err(_) => NONE,
    }
}

/// The verdict word the live view shows, for the attributes.
pub fn camera_verdict(verdict: Result<(), Blind>, may_blame: bool) -> &'static str {
    match verdict {
        Ok(()) => "live",
        Err(_) if !may_blame => "unknown",
        Err(b) => b.verdict(),
    }
}

/// What the bridge remembers of one delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliverySeen {
    pub id: String,
    pub home_id: String,
    pub state: String,
    pub door_id: Option<String>,
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    pub parcel_ref: String,
    pub updated_ms: i64,
}

impl From<&threshold_store::DeliveryRow> for DeliverySeen {
    fn from(d: &threshold_store::DeliveryRow) -> Self {
        DeliverySeen {
            id: d.id.clone(),
            home_id: d.home_id.clone(),
            state: d.state.clone(),
            door_id: d.door_id.clone(),
            window_start_ms: d.window_start_ms,
            window_end_ms: d.window_end_ms,
            parcel_ref: d.parcel_ref.clone(),
            updated_ms: d.updated_ms,
        }
    }
}

fn parsed(d: &DeliverySeen) -> Option<DeliveryState> {
    DeliveryState::parse(&d.state)
}

/// A finished delivery stays on the sensor this long (hub time) before the next
/// scheduled one replaces it, so that its outcome is seen.
pub const FINISHED_SHOWN_MS: i64 = 10 * 60 * 1000;

/// The delivery a home's sensor shows at hub time `now`: one whose session is open
/// (the most recently changed), else one that finished within `FINISHED_SHOWN_MS`,
/// else the next scheduled one (earliest window), else the most recently finished.
pub fn current_delivery(seen: &[DeliverySeen], now: i64) -> Option<&DeliverySeen> {
    let open = seen
        .iter()
        .filter(|d| parsed(d).is_some_and(DeliveryState::session_open))
        .max_by_key(|d| (d.updated_ms, d.id.as_str()));
    let just_finished = || {
        seen.iter()
            .filter(|d| parsed(d).is_none_or(DeliveryState::is_terminal))
            .filter(|d| now.saturating_sub(d.updated_ms) < FINISHED_SHOWN_MS)
            .max_by_key(|d| (d.updated_ms, d.id.as_str()))
    };
    let scheduled = || {
        seen.iter()
            .filter(|d| parsed(d) == Some(DeliveryState::Scheduled))
            .min_by_key(|d| (d.window_start_ms, d.id.as_str()))
    };
    let finished = || {
        seen.iter()
            .filter(|d| parsed(d).is_none_or(DeliveryState::is_terminal))
            .max_by_key(|d| (d.updated_ms, d.id.as_str()))
    };
    open.or_else(just_finished)
        .or_else(scheduled)
        .or_else(finished)
}

/// The options of the delivery sensor: `none`, then every delivery state.
pub fn delivery_options() -> Vec<&'static str> {
    std::iter::once(NO_DELIVERY)
        .chain(DeliveryState::ALL.iter().map(|s| s.as_str()))
        .collect()
}

/// The delivery sensor's state: the delivery's state, `none` without one, unknown
/// for a state this hub does not know (never a value outside the options).
pub fn delivery(current: Option<&DeliverySeen>) -> &'static str {
    match current {
        None => NO_DELIVERY,
        Some(d) => parsed(d).map(DeliveryState::as_str).unwrap_or(NONE),
    }
}

pub fn delivery_attributes(current: Option<&DeliverySeen>) -> Value {
    match current {
        None => json!({}),
        Some(d) => json!({
            "delivery_id": d.id,
            "door_id": d.door_id,
            "window_start_ms": d.window_start_ms,
            "window_end_ms": d.window_end_ms,
            "parcel_ref": d.parcel_ref,
            "updated_ms": d.updated_ms,
        }),
    }
}

/// Every alert kind, so that the event entity's `event_types` list them all. The
/// match is exhaustive on purpose: a new kind of alert does not compile until it is
/// listed here.
fn all_alert_kinds() -> Vec<AlertKind> {
    let listed = |k: AlertKind| match k {
        AlertKind::Delivery(
            delivery::Alert::CameraLostDuringDelivery
            | delivery::Alert::DoorMayBeUnlocked
            | delivery::Alert::SessionNotSecured
            | delivery::Alert::GarageLeftOpen,
        )
        | AlertKind::UnauthorizedEntry
        | AlertKind::DoorOpenedUnwatched
        | AlertKind::DoorOpenedAfterDelivery
        | AlertKind::TokenRefused
        | AlertKind::DeviceOffline
        | AlertKind::CameraPossiblyFrozen
        | AlertKind::SequenceGap
        | AlertKind::WifiAttack { .. }
        | AlertKind::GarageObstructed => k,
    };
    [
        AlertKind::Delivery(delivery::Alert::CameraLostDuringDelivery),
        AlertKind::Delivery(delivery::Alert::DoorMayBeUnlocked),
        AlertKind::Delivery(delivery::Alert::SessionNotSecured),
        AlertKind::Delivery(delivery::Alert::GarageLeftOpen),
        AlertKind::UnauthorizedEntry,
        AlertKind::DoorOpenedUnwatched,
        AlertKind::DoorOpenedAfterDelivery,
        AlertKind::TokenRefused,
        AlertKind::DeviceOffline,
        AlertKind::CameraPossiblyFrozen,
        AlertKind::SequenceGap,
        AlertKind::WifiAttack {
            during_delivery: false,
        },
        AlertKind::GarageObstructed,
    ]
    .into_iter()
    .map(listed)
    .collect()
}

/// The alert event entity's `event_types`: every alert kind's code, and `other`.
pub fn alert_event_types() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = all_alert_kinds().into_iter().map(AlertKind::code).collect();
    v.push(OTHER_ALERT);
    v.dedup();
    v
}

/// The Home Assistant event for one alert as the hub's live feed carries it
/// (`alerts::alert_json`): `event_type` is its kind (`other` for a kind this list
/// does not name, which Home Assistant would otherwise drop).
pub fn alert_event(alert: &Value) -> Value {
    let kind = alert["kind"].as_str().unwrap_or("");
    let event_type = alert_event_types()
        .into_iter()
        .find(|t| *t == kind)
        .unwrap_or(OTHER_ALERT);
    json!({
        "event_type": event_type,
        "kind": kind,
        "severity": alert["severity"],
        "message": alert["message"],
        "alert_id": alert["id"],
        "device_id": alert["device_id"],
        "delivery_id": alert["delivery_id"],
        "created_ms": alert["created_ms"],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(fresh: bool, bolt: &str) -> Value {
        json!({"fresh": fresh, "bolt": bolt, "door": "closed"})
    }

    #[test]
    fn a_lock_is_locked_only_on_a_fresh_report() {
        assert_eq!(lock(&view(true, "locked")), LOCKED);
        assert_eq!(lock(&view(true, "unlocked")), UNLOCKED);
        assert_eq!(lock(&view(true, "jammed")), JAMMED);
        assert_eq!(lock(&view(true, "moving")), NONE);
        assert_eq!(lock(&view(true, "unknown")), NONE);
        // lock_view says "unknown" once stale; even a stale "locked" is unknown here.
        assert_eq!(lock(&view(false, "locked")), NONE);
        assert_eq!(lock(&json!({"present": false, "bolt": "unknown"})), NONE);
        let a = |at: i64| {
            lock_attributes(&json!({"fresh": true, "bolt": "locked", "reported_at_ms": at}))
        };
        assert_eq!(a(1), a(2), "a new report of the same state changes nothing");
    }

    #[test]
    fn a_garage_door_is_closed_only_on_a_fresh_report() {
        let g = |fresh: bool, door: &str, motion: Value| {
            garage(&json!({"fresh": fresh, "bolt": null, "door": door, "motion": motion}))
        };
        assert_eq!(g(true, "closed", Value::Null), CLOSED);
        assert_eq!(g(true, "open", Value::Null), OPEN);
        assert_eq!(g(true, "open", json!("closing")), CLOSING);
        assert_eq!(g(true, "closed", json!("opening")), OPENING);
        assert_eq!(g(true, "open", json!("stopped")), STOPPED);
        assert_eq!(g(true, "unknown", Value::Null), NONE);
        assert_eq!(g(false, "closed", Value::Null), NONE);
    }

    #[test]
    fn a_camera_is_on_only_while_live_and_off_only_when_the_hub_may_say_so() {
        assert_eq!(camera_live(Ok(()), false), ON);
        assert_eq!(camera_live(Ok(()), true), ON);
        for b in [
            Blind::Offline,
            Blind::Stale,
            Blind::Frozen,
            Blind::ClockSkew,
        ] {
            assert_eq!(camera_live(Err(b), true), OFF);
            assert_eq!(camera_live(Err(b), false), NONE);
            assert_eq!(camera_verdict(Err(b), false), "unknown");
            assert_eq!(camera_verdict(Err(b), true), b.verdict());
        }
    }

    fn seen(id: &str, state: &str, window_start_ms: i64, updated_ms: i64) -> DeliverySeen {
        DeliverySeen {
            id: id.into(),
            home_id: "h".into(),
            state: state.into(),
            door_id: None,
            window_start_ms,
            window_end_ms: window_start_ms + 10,
            parcel_ref: String::new(),
            updated_ms,
        }
    }

    #[test]
    fn the_sensor_shows_the_open_delivery_then_a_fresh_outcome_then_the_next_then_the_last() {
        let now = 1_000_000_000;
        assert_eq!(delivery(current_delivery(&[], now)), NO_DELIVERY);
        let done = seen("a", "completed", 0, now - 1_000);
        let later = seen("b", "scheduled", 300, 10);
        let sooner = seen("c", "scheduled", 200, 5);
        let inside = seen("d", "inside", 100, 20);
        let all = [done.clone(), later.clone(), sooner.clone(), inside.clone()];
        assert_eq!(current_delivery(&all, now), Some(&inside));
        let waiting = [done.clone(), later.clone(), sooner.clone()];
        assert_eq!(
            current_delivery(&waiting, now),
            Some(&done),
            "a delivery that just finished is shown before the next one"
        );
        assert_eq!(
            current_delivery(&waiting, now + FINISHED_SHOWN_MS),
            Some(&sooner),
            "then the next scheduled one"
        );
        let older_done = seen("e", "expired", 0, 40);
        assert_eq!(
            current_delivery(&[older_done, done.clone()], now + FINISHED_SHOWN_MS)
                .map(|d| d.id.as_str()),
            Some("a")
        );
        assert_eq!(delivery(Some(&done)), "completed");
        assert_eq!(
            delivery(Some(&seen("x", "not_a_state", 0, 0))),
            NONE,
            "never a value outside the options"
        );
        let opts = delivery_options();
        assert_eq!(opts[0], NO_DELIVERY);
        for s in DeliveryState::ALL {
            assert!(opts.contains(&s.as_str()));
        }
    }

    #[test]
    fn every_alert_kind_is_an_event_type_and_unknown_ones_are_other() {
        let types = alert_event_types();
        for k in all_alert_kinds() {
            assert!(types.contains(&k.code()));
        }
        assert!(types.contains(&"wifi_attack"));
        assert!(types.contains(&OTHER_ALERT));
        let e =
            alert_event(&json!({"id": "a1", "kind": "unauthorized_entry", "severity": "critical"}));
        assert_eq!(e["event_type"], "unauthorized_entry");
        assert_eq!(e["alert_id"], "a1");
        assert_eq!(
            alert_event(&json!({"kind": "garage_left_open"}))["event_type"],
            "garage_left_open"
        );
        assert_eq!(
            alert_event(&json!({"kind": "not_a_kind"}))["event_type"],
            OTHER_ALERT
        );
    }
}
