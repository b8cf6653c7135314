//! The garage-door opener agent loop: feed the driver's observations, verified
//! downlinks and time into [`GarageLogic`], carry out its actions, report `state`
//! every heartbeat period.

use super::lock::{carry_out, record_cameras, rejection_reason};
use super::{Device, GarageConfig, GarageDriverConfig};
use crate::clock::now_ms;
use crate::garage::logic::GarageLogic;
use crate::garage::mqtt::MqttOpener;
use crate::garage::{OpenerCommand, OpenerDriver, OpenerEvent};
use crate::link::{shutdown_signalled, Downlink, LinkEvent};
use crate::lock::cameras;
use crate::lock::logic::{refused, Action};
use crate::lock::nonces::NonceStore;
use std::time::Duration;
use threshold_proto::body::{DeviceKind, Event};
use threshold_proto::Kind;
use tokio::sync::watch;

const OPEN_CLOSE: (OpenerCommand, OpenerCommand) = (OpenerCommand::Open, OpenerCommand::Close);

/// Run a garage-door opener agent until `shutdown` becomes true.
pub async fn run_garage(
    cfg: GarageConfig,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut dev = Device::start(&cfg.common, DeviceKind::GarageOpener, shutdown.clone()).await?;
    let mut nonces = NonceStore::open(&cfg.common.data_dir.join("nonces"), now_ms())?;
    let driver: Box<dyn OpenerDriver> = match &cfg.driver {
        GarageDriverConfig::Simulator(g) => Box::new(g.driver()),
        GarageDriverConfig::Mqtt(m) => Box::new(MqttOpener::new(m.clone())),
    };
    let mut driver = driver.start();
    let mut logic = GarageLogic::new(cfg.rules.clone());
    if let Some((set, origin)) = cameras::initial(&cfg.common.data_dir, &dev.enrolment) {
        let actions = logic.set_cameras(&set.door_id, set.keys());
        if origin == cameras::Origin::Enrolment {
            record_cameras(&dev, &cfg.common.data_dir, &set, actions);
        }
    }
    let mut available = false;
    // The last reason a message from the opener was not understood: logged in the
    // signed event log once per new reason, not once per message.
    let mut last_refusal: Option<String> = None;
    let mut report = tokio::time::interval(dev.heartbeat);
    report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = shutdown_signalled(&mut shutdown) => break,
            Some(e) = driver.events.recv() => {
                let actions = match e {
                    OpenerEvent::Position(p) => {
                        last_refusal = None;
                        logic.on_position(p)
                    }
                    OpenerEvent::PositionUnknown => {
                        logic.on_unavailable();
                        Vec::new()
                    }
                    OpenerEvent::Obstructed(o) => logic.on_obstructed(o),
                    OpenerEvent::Available(a) => {
                        available = a;
                        if !a {
                            logic.on_unavailable();
                        }
                        Vec::new()
                    }
                    OpenerEvent::Unintelligible { topic, reason } => {
                        if last_refusal.as_deref() == Some(reason.as_str()) {
                            Vec::new()
                        } else {
                            last_refusal = Some(reason.clone());
                            vec![Action::Event(Event {
                                event_type: "opener_message_refused".into(),
                                detail: serde_json::json!({ "topic": topic, "reason": reason }),
                            })]
                        }
                    }
                };
                carry_out(&dev, &driver.commands, &mut nonces, actions, OPEN_CLOSE);
            }
            Some(ev) = dev.link_events.recv() => {
                let now = now_ms();
                let actions = match &ev {
                    LinkEvent::Downlink(Downlink::Unlock { token, issued_ms }) => {
                        let seen = nonces.contains(&token.nonce);
                        logic.on_token(token, *issued_ms, now, seen)
                    }
                    LinkEvent::Downlink(Downlink::Lock(_)) => logic.on_close_command(),
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
                carry_out(&dev, &driver.commands, &mut nonces, actions, OPEN_CLOSE);
            }
            _ = tick.tick() => {
                let actions = logic.tick(now_ms());
                carry_out(&dev, &driver.commands, &mut nonces, actions, OPEN_CLOSE);
            }
            _ = report.tick() => {
                let mut state = if available { logic.state() } else { Default::default() };
                state.outbox = dev.with_outbox(|o| o.stats());
                dev.send_live(Kind::State, serde_json::to_vec(&state).unwrap_or_default());
            }
        }
    }
    dev.stop().await;
    Ok(())
}
