//! The lock and contact-sensor agent loops: feed driver observations, verified
//! downlinks and time into [`LockLogic`], carry out its actions, report `state` every
//! heartbeat period.

use super::{ContactConfig, ContactDriverConfig, Device, LockConfig, LockDriverConfig};
use crate::clock::now_ms;
use crate::link::{shutdown_signalled, Downlink, LinkEvent};
use crate::lock::cameras;
use crate::lock::logic::{refused, Action, LockLogic};
use crate::lock::nonces::NonceStore;
use crate::lock::zigbee::Z2mDriver;
use crate::lock::{BoltCommand, DriverEvent, DriverHandle, LockDriver};
use std::time::Duration;
use threshold_proto::body::{DeviceKind, DoorState, Event, State};
use threshold_proto::Kind;
use tokio::sync::watch;

/// Map a link rejection of an unlock message to a `token_refused` reason.
pub(super) fn rejection_reason(link_reason: &str) -> &'static str {
    match link_reason {
        "bad_signature" => "bad_signature",
        "wrong_recipient" => "wrong_lock",
        "replayed" => "nonce_reused",
        "clock_skew_future" => "not_yet_valid",
        "clock_skew_past" => "expired",
        _ => "malformed",
    }
}

fn execute(dev: &Device, driver: &DriverHandle, nonces: &mut NonceStore, actions: Vec<Action>) {
    carry_out(
        dev,
        &driver.commands,
        nonces,
        actions,
        (BoltCommand::Unlock, BoltCommand::Lock),
    );
}

/// Carry out a device's decisions in order: `(retract, throw)` are what its hardware
/// is told for [`Action::Retract`] and [`Action::Throw`] (a lock's bolt; a garage
/// door's open and close). A nonce that cannot be made durable stops everything after
/// it (fail secure).
pub(super) fn carry_out<C: Copy>(
    dev: &Device,
    commands: &tokio::sync::mpsc::Sender<C>,
    nonces: &mut NonceStore,
    actions: Vec<Action>,
    (retract, throw): (C, C),
) {
    for a in actions {
        match a {
            Action::PersistNonce {
                nonce,
                expires_at_ms,
            } => {
                if let Err(e) = nonces.record(&nonce, expires_at_ms) {
                    // Fail secure: without a durable record of the nonce the token could
                    // be replayed after a restart, so the bolt stays where it is.
                    tracing::error!(error = %e, "could not persist nonce; refusing token");
                    if let Action::Event(ev) = refused("storage_error", None) {
                        dev.record_event(&ev);
                    }
                    return;
                }
            }
            Action::Event(e) => dev.record_event(&e),
            Action::Retract => {
                if commands.try_send(retract).is_err() {
                    tracing::error!("driver not accepting commands");
                }
            }
            Action::Throw => {
                if commands.try_send(throw).is_err() {
                    tracing::error!("driver not accepting commands");
                }
            }
        }
    }
}

/// A new camera set: its `cameras_changed` event goes into the event log first, then
/// the set is stored. A crash in between leaves the old file, so the next start (and
/// the hub's `cameras` message after `hello`) records the change again rather than
/// holding a set the log never mentioned. Shared by locks and garage-door openers
/// (the actions of [`crate::lock::logic::Vouchers::set`] are events only).
pub(super) fn record_cameras(
    dev: &Device,
    data_dir: &std::path::Path,
    set: &cameras::DoorCameraSet,
    actions: Vec<Action>,
) {
    if actions.is_empty() {
        return;
    }
    for a in actions {
        if let Action::Event(e) = a {
            dev.record_event(&e);
        }
    }
    if let Err(e) = cameras::save(data_dir, set) {
        tracing::error!(error = %e, "could not store the door's cameras");
    }
}

/// Run a lock agent until `shutdown` becomes true.
pub async fn run_lock(cfg: LockConfig, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let mut dev = Device::start(&cfg.common, DeviceKind::Lock, shutdown.clone()).await?;
    let mut nonces = NonceStore::open(&cfg.common.data_dir.join("nonces"), now_ms())?;
    let driver: Box<dyn LockDriver> = match &cfg.driver {
        LockDriverConfig::Simulator(home) => Box::new(home.lock_driver()),
        LockDriverConfig::Zigbee2Mqtt(z) => Box::new(Z2mDriver::new(z.clone())),
    };
    let mut driver = driver.start();
    let mut logic = LockLogic::new(cfg.rules.clone());
    // The cameras of the door: as last stored (already in the event log when it was
    // stored), else as the enrolment said (logged now, then stored).
    if let Some((set, origin)) = cameras::initial(&cfg.common.data_dir, &dev.enrolment) {
        let actions = logic.set_cameras(&set.door_id, set.keys());
        if origin == cameras::Origin::Enrolment {
            record_cameras(&dev, &cfg.common.data_dir, &set, actions);
        }
    }
    let mut available = false;
    let mut report = tokio::time::interval(dev.heartbeat);
    report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = shutdown_signalled(&mut shutdown) => break,
            Some(e) = driver.events.recv() => {
                let now = now_ms();
                let actions = match e {
                    DriverEvent::Bolt(b) => logic.on_bolt(b, now),
                    DriverEvent::Door(d) => logic.on_door(d, now),
                    DriverEvent::Battery(p) => logic.on_battery(p),
                    DriverEvent::Available(a) => {
                        available = a;
                        if !a {
                            logic.on_unavailable();
                        }
                        Vec::new()
                    }
                };
                execute(&dev, &driver, &mut nonces, actions);
            }
            Some(ev) = dev.link_events.recv() => {
                let now = now_ms();
                let actions = match &ev {
                    LinkEvent::Downlink(Downlink::Unlock { token, issued_ms }) => {
                        let seen = nonces.contains(&token.nonce);
                        logic.on_token(token, *issued_ms, now, seen)
                    }
                    LinkEvent::Downlink(Downlink::Lock(_)) => logic.on_lock_command(now),
                    LinkEvent::Downlink(Downlink::Cameras(c)) => {
                        let set = cameras::DoorCameraSet {
                            door_id: c.door_id.clone(),
                            cameras: c.cameras.clone(),
                        };
                        let actions = logic.set_cameras(&set.door_id, set.keys());
                        record_cameras(&dev, &cfg.common.data_dir, &set, actions);
                        Vec::new()
                    }
                    LinkEvent::Rejected(r) if r.kind == Some(Kind::Unlock) => {
                        vec![refused(rejection_reason(r.reason), None)]
                    }
                    _ => Vec::new(),
                };
                dev.on_link_transition(&ev);
                execute(&dev, &driver, &mut nonces, actions);
            }
            _ = tick.tick() => {
                let actions = logic.tick(now_ms());
                execute(&dev, &driver, &mut nonces, actions);
            }
            _ = report.tick() => {
                let state = State {
                    bolt: logic.bolt().filter(|_| available),
                    door: logic.door().filter(|_| available),
                    battery_pct: logic.battery(),
                    outbox: dev.with_outbox(|o| o.stats()),
                    ..Default::default()
                };
                dev.send_live(Kind::State, serde_json::to_vec(&state).unwrap_or_default());
            }
        }
    }
    dev.stop().await;
    Ok(())
}

/// Run a door-contact agent (door only) until `shutdown` becomes true.
pub async fn run_contact(
    cfg: ContactConfig,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut dev = Device::start(&cfg.common, DeviceKind::ContactSensor, shutdown.clone()).await?;
    let driver: Box<dyn LockDriver> = match &cfg.driver {
        ContactDriverConfig::Simulator(home) => Box::new(home.contact_driver()),
        ContactDriverConfig::Zigbee2Mqtt(z) => {
            let mut z = z.clone();
            z.lock = None;
            Box::new(Z2mDriver::new(z))
        }
    };
    let mut driver = driver.start();
    let mut door: Option<DoorState> = None;
    let mut battery: Option<u8> = None;
    let mut available = false;
    let mut report = tokio::time::interval(dev.heartbeat);
    report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown_signalled(&mut shutdown) => break,
            Some(e) = driver.events.recv() => match e {
                DriverEvent::Door(d) => {
                    let prev = door.replace(d);
                    if prev.is_some() && prev != Some(d) {
                        let t = if d == DoorState::Open { "door_opened" } else { "door_closed" };
                        dev.record_event(&Event { event_type: t.into(), detail: serde_json::json!({}) });
                    }
                }
                DriverEvent::Battery(p) => battery = Some(p),
                DriverEvent::Available(a) => {
                    available = a;
                    if !a {
                        door = None;
                    }
                }
                DriverEvent::Bolt(_) => {}
            },
            Some(ev) = dev.link_events.recv() => dev.on_link_transition(&ev),
            _ = report.tick() => {
                let state = State {
                    bolt: None,
                    door: door.filter(|_| available),
                    battery_pct: battery,
                    outbox: dev.with_outbox(|o| o.stats()),
                    ..Default::default()
                };
                dev.send_live(Kind::State, serde_json::to_vec(&state).unwrap_or_default());
            }
        }
    }
    dev.stop().await;
    Ok(())
}
