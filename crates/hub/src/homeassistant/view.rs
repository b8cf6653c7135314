//! Everything the hub wants retained on Home Assistant's broker now, read from the
//! hub's state (no I/O): each home's configs, states, attributes and availability.
//! The bridge publishes the difference from what it last published.

use super::discovery::{self, CameraInfo, Config, DoorInfo, HomeInfo};
use super::states::{self, DeliverySeen};
use super::topics::Topics;
use crate::access::doors;
use crate::state::AppState;
use serde_json::json;
use std::collections::HashMap;
use threshold_proto::body::DeviceKind;
use threshold_proto::DeviceId;

/// In which order a (re)connect publishes: configs first (Home Assistant then
/// subscribes to the states), then states, then availability (an entity turns
/// available only once its state is there).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rank {
    Config,
    State,
    Availability,
}

/// One retained message, and the home it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retained {
    pub rank: Rank,
    pub home: String,
    pub topic: String,
    pub payload: Vec<u8>,
    /// Sent again every `LIVE_REPEAT_MS` even when unchanged (Home Assistant's
    /// `expire_after` watchdog waits for it).
    pub repeat: bool,
}

/// What the bridge knows besides the hub's state.
#[derive(Debug, Default)]
pub struct Known {
    pub homes: Vec<HomeInfo>,
    /// Per home: the deliveries the sensor chooses from.
    pub deliveries: HashMap<String, Vec<DeliverySeen>>,
    /// Per camera: the capture time (hub clock) of the last picture published.
    pub pictures: HashMap<DeviceId, i64>,
}

/// A published picture counts as current this long after its capture.
pub fn picture_fresh_ms(state: &AppState) -> i64 {
    state.config.live_window_ms + state.config.ha_picture_interval_ms
}

fn push(out: &mut Vec<Retained>, rank: Rank, home: &str, topic: String, payload: Vec<u8>) {
    out.push(Retained {
        rank,
        home: home.to_owned(),
        topic,
        payload,
        repeat: false,
    });
}

fn config(out: &mut Vec<Retained>, home: &str, c: Config) {
    push(
        out,
        Rank::Config,
        home,
        c.topic,
        serde_json::to_vec(&c.payload).unwrap_or_default(),
    );
}

/// The cameras of a home, by id.
pub fn cameras_of(state: &AppState, home: &HomeInfo) -> Vec<(DeviceId, CameraInfo)> {
    let mut out = Vec::new();
    state.registry.for_home(&home.id, |e| {
        if e.kind == DeviceKind::Camera && !e.revoked {
            out.push((
                e.id,
                CameraInfo {
                    id: e.id.to_hex(),
                    name: e.name.clone(),
                    home_id: home.id.clone(),
                },
            ));
        }
    });
    out.sort_by(|a, b| a.1.id.cmp(&b.1.id));
    out
}

/// Everything retained for the homes this node acts for, at hub time `now`.
pub fn desired(state: &AppState, t: &Topics, known: &Known, now: i64) -> Vec<Retained> {
    let mut out = Vec::new();
    let vouching = !state.access.degraded(now);
    for home in known.homes.iter().filter(|h| state.fleet.owns_home(&h.id)) {
        let h = home.id.as_str();
        config(&mut out, h, discovery::delivery(t, home));
        config(&mut out, h, discovery::alerts(t, home));
        let seen = known.deliveries.get(h).map(Vec::as_slice).unwrap_or(&[]);
        let current = states::current_delivery(seen, now);
        push(
            &mut out,
            Rank::State,
            h,
            t.delivery_state(h),
            states::delivery(current).into(),
        );
        push(
            &mut out,
            Rank::State,
            h,
            t.delivery_attributes(h),
            states::delivery_attributes(current)
                .to_string()
                .into_bytes(),
        );

        for door in state.access.doors.of_home(h) {
            if door.lock.is_none() {
                continue;
            }
            let info = DoorInfo {
                id: door.id.clone(),
                name: door.name.clone(),
                home_id: h.to_owned(),
            };
            let view = doors::lock_view(state, &door);
            if doors::is_garage(state, &door) {
                config(&mut out, h, discovery::garage(t, &info));
                push(
                    &mut out,
                    Rank::State,
                    h,
                    t.garage_state(&door.id),
                    states::garage(&view).into(),
                );
                push(
                    &mut out,
                    Rank::State,
                    h,
                    t.garage_attributes(&door.id),
                    states::garage_attributes(&view).to_string().into_bytes(),
                );
                continue;
            }
            config(&mut out, h, discovery::lock(t, &info));
            push(
                &mut out,
                Rank::State,
                h,
                t.lock_state(&door.id),
                states::lock(&view).into(),
            );
            push(
                &mut out,
                Rank::State,
                h,
                t.lock_attributes(&door.id),
                states::lock_attributes(&view).to_string().into_bytes(),
            );
        }

        let may_blame = state.access.may_blame(now, doors::home_heard(state, h))
            && state.fleet.may_blame(h, now, state.config.live_window_ms);
        for (id, cam) in cameras_of(state, home) {
            config(&mut out, h, discovery::camera_live(t, &cam));
            config(&mut out, h, discovery::camera_picture(t, &cam));
            let verdict = doors::camera_watch(state, &id, now);
            out.push(Retained {
                rank: Rank::State,
                home: h.to_owned(),
                topic: t.camera_live_state(&cam.id),
                payload: states::camera_live(verdict, may_blame).into(),
                repeat: true,
            });
            push(
                &mut out,
                Rank::State,
                h,
                t.camera_live_attributes(&cam.id),
                json!({"verdict": states::camera_verdict(verdict, may_blame)})
                    .to_string()
                    .into_bytes(),
            );
            let picture_fresh = verdict.is_ok()
                && known
                    .pictures
                    .get(&id)
                    .is_some_and(|c| now.saturating_sub(*c) <= picture_fresh_ms(state));
            push(
                &mut out,
                Rank::Availability,
                h,
                t.camera_picture_availability(&cam.id),
                if picture_fresh {
                    states::ONLINE
                } else {
                    states::OFFLINE
                }
                .into(),
            );
        }
        push(
            &mut out,
            Rank::Availability,
            h,
            t.home_availability(h),
            if vouching {
                states::ONLINE
            } else {
                states::OFFLINE
            }
            .into(),
        );
    }
    out.sort_by_key(|r| r.rank);
    out
}
