//! Law 2, "no eyes, no entry": the one entry rule. Every path that opens a door asks
//! [`decide`]: a courier's delivery, a guest's grant, the owner's remote unlock. The
//! door's own cameras decide whether it is watched ([`crate::liveness::DeviceLiveness::watch`]),
//! never another camera of the home. Every failed check is reported, not just the
//! first, so the courier and the owner see all the reasons.

use crate::delivery::DeliveryState;
use crate::liveness::{Blind, Liveness};
use crate::Millis;
use serde::Serialize;

/// A machine-readable reason an entry request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    NotAssigned,
    OutsideWindow,
    OutsideGeofence,
    BadPosition,
    ParcelMismatch,
    OwnerDisabled,
    OutsideOwnerHours,
    AwaitingOwnerApproval,
    GuestRevoked,
    OutsideValidity,
    OutsideWeeklyWindow,
    NoCameraBound,
    CameraOffline,
    CameraStale,
    CameraClockSkew,
    CameraFrozen,
    CameraNotRecording,
    NoLock,
    LockOffline,
    DeliveryCompromised,
    AlreadyUsed,
    DeliveryEnded,
    HubDegraded,
}

impl Refusal {
    pub fn code(self) -> &'static str {
        match self {
            Refusal::NotAssigned => "not_assigned",
            Refusal::OutsideWindow => "outside_window",
            Refusal::OutsideGeofence => "outside_geofence",
            Refusal::BadPosition => "bad_position",
            Refusal::ParcelMismatch => "parcel_mismatch",
            Refusal::OwnerDisabled => "owner_disabled",
            Refusal::OutsideOwnerHours => "outside_owner_hours",
            Refusal::AwaitingOwnerApproval => "awaiting_owner_approval",
            Refusal::GuestRevoked => "revoked",
            Refusal::OutsideValidity => "outside_validity",
            Refusal::OutsideWeeklyWindow => "outside_weekly_window",
            Refusal::NoCameraBound => "no_camera_bound",
            Refusal::CameraOffline => Blind::Offline.code(),
            Refusal::CameraStale => Blind::Stale.code(),
            Refusal::CameraClockSkew => Blind::ClockSkew.code(),
            Refusal::CameraFrozen => Blind::Frozen.code(),
            Refusal::CameraNotRecording => "camera_not_recording",
            Refusal::NoLock => "no_lock",
            Refusal::LockOffline => "lock_offline",
            Refusal::DeliveryCompromised => "delivery_compromised",
            Refusal::AlreadyUsed => "already_used",
            Refusal::DeliveryEnded => "delivery_ended",
            Refusal::HubDegraded => "hub_degraded",
        }
    }

    /// Plain words for the person at the door.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::NotAssigned => "This delivery is not assigned to you.",
            Refusal::OutsideWindow => "It is outside the delivery window.",
            Refusal::OutsideGeofence => "You are not at the delivery address.",
            Refusal::BadPosition => {
                "Your position could not be read; allow location access and retry."
            }
            Refusal::ParcelMismatch => "The scanned parcel is not the one for this delivery.",
            Refusal::OwnerDisabled => "The customer has turned in-home delivery off.",
            Refusal::OutsideOwnerHours => {
                "The customer does not accept in-home deliveries at this hour."
            }
            Refusal::AwaitingOwnerApproval => "The customer has not approved this delivery yet.",
            Refusal::GuestRevoked => "This guest access was revoked.",
            Refusal::OutsideValidity => "This guest access is not valid now.",
            Refusal::OutsideWeeklyWindow => "This guest access is not valid at this hour.",
            Refusal::NoCameraBound => "No camera watches this door; it cannot be opened remotely.",
            Refusal::CameraOffline => "The door's camera is offline; the door stays locked.",
            Refusal::CameraStale => {
                "The door's camera has sent no recent picture; the door stays locked."
            }
            Refusal::CameraClockSkew => {
                "The door's camera clock is wrong, so its pictures cannot be trusted as live."
            }
            Refusal::CameraFrozen => {
                "The door's camera picture has stopped changing; the door stays locked."
            }
            Refusal::CameraNotRecording => "The door's camera is not recording.",
            Refusal::NoLock => "This door has no lock that can be opened remotely.",
            Refusal::LockOffline => "The lock is not reachable.",
            Refusal::DeliveryCompromised => {
                "This delivery was stopped after an incident; it cannot unlock again."
            }
            Refusal::AlreadyUsed => "The door was already opened for this delivery.",
            Refusal::DeliveryEnded => "This delivery has ended.",
            Refusal::HubDegraded => {
                "The hub cannot currently vouch for the camera; try again in a moment."
            }
        }
    }
}

impl From<Blind> for Refusal {
    fn from(b: Blind) -> Self {
        match b {
            Blind::Offline => Refusal::CameraOffline,
            Blind::Stale => Refusal::CameraStale,
            Blind::ClockSkew => Refusal::CameraClockSkew,
            Blind::Frozen => Refusal::CameraFrozen,
        }
    }
}

/// A position as reported by the courier's browser.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Position {
    pub lat: f64,
    pub lon: f64,
    pub accuracy_m: f64,
}

impl Position {
    /// Finite, on the globe, with a plausible accuracy.
    pub fn is_valid(&self) -> bool {
        self.lat.is_finite()
            && self.lon.is_finite()
            && self.accuracy_m.is_finite()
            && (-90.0..=90.0).contains(&self.lat)
            && (-180.0..=180.0).contains(&self.lon)
            && (0.0..=10_000.0).contains(&self.accuracy_m)
    }
}

/// Great-circle distance in metres (haversine).
pub fn distance_m(a_lat: f64, a_lon: f64, b_lat: f64, b_lon: f64) -> f64 {
    const R: f64 = 6_371_000.0;
    let (p1, p2) = (a_lat.to_radians(), b_lat.to_radians());
    let dp = (b_lat - a_lat).to_radians();
    let dl = (b_lon - a_lon).to_radians();
    let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * R * h.sqrt().min(1.0).asin()
}

/// Whether the whole accuracy circle of `p` lies inside the fence: a vague fix near the
/// edge does not count as "at the door".
pub fn inside_geofence(p: &Position, lat: f64, lon: f64, radius_m: f64) -> bool {
    distance_m(p.lat, p.lon, lat, lon) + p.accuracy_m <= radius_m.max(0.0)
}

/// What the door the request is for looks like now.
#[derive(Clone, Debug, PartialEq)]
pub struct DoorFacts {
    /// The verdict of each camera bound to this door (none bound: empty).
    pub cameras: Vec<Result<(), Blind>>,
    /// Whether frames of a watching camera can be recorded.
    pub recording: bool,
    /// The door's lock, if it has one.
    pub lock: Option<Liveness>,
    /// The hub cannot vouch for liveness now (today: it has no broker connection), so
    /// what it last saw is not trusted.
    pub hub_degraded: bool,
}

/// A courier's request for a delivery.
#[derive(Clone, Debug, PartialEq)]
pub struct CourierFacts {
    pub assigned: bool,
    pub delivery: DeliveryState,
    pub window_start: Millis,
    pub window_end: Millis,
    pub position: Position,
    pub home_lat: f64,
    pub home_lon: f64,
    pub geofence_m: f64,
    pub parcel_expected: String,
    pub parcel_scanned: String,
    pub owner_allows_in_home: bool,
    pub within_owner_hours: bool,
    /// Neither approved by the owner nor from a merchant the owner trusts.
    pub approval_pending: bool,
}

/// A guest's request under a grant.
#[derive(Clone, Debug, PartialEq)]
pub struct GuestFacts {
    pub revoked: bool,
    pub valid_from: Millis,
    pub valid_until: Millis,
    pub in_weekly_window: bool,
    /// The owner turned the camera requirement off for this grant.
    pub camera_waived: bool,
}

/// Who asks to open the door, and what only they must satisfy.
#[derive(Clone, Debug, PartialEq)]
pub enum Principal {
    Courier(CourierFacts),
    Guest(GuestFacts),
    /// The owner's remote unlock; `without_camera` is the explicit, recorded override.
    Owner {
        without_camera: bool,
    },
}

/// Why the camera rule did not apply to an allowed entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CameraWaiver {
    OwnerOverride,
    GuestGrant,
}

impl CameraWaiver {
    pub fn code(self) -> &'static str {
        match self {
            CameraWaiver::OwnerOverride => "owner_override",
            CameraWaiver::GuestGrant => "guest_grant",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Decision {
    pub allowed: bool,
    pub reasons: Vec<Refusal>,
    /// Set when the camera rule was waived by the owner (recorded with the decision).
    pub camera_waived: Option<CameraWaiver>,
}

impl Decision {
    fn from(mut reasons: Vec<Refusal>, camera_waived: Option<CameraWaiver>) -> Decision {
        reasons.sort();
        reasons.dedup();
        Decision {
            allowed: reasons.is_empty(),
            reasons,
            camera_waived,
        }
    }

    /// A refusal for one reason only.
    pub fn refused(reason: Refusal) -> Decision {
        Decision::from(vec![reason], None)
    }
}

/// Decide an entry request at `now`. Allowed only if no check fails.
pub fn decide(now: Millis, who: &Principal, door: &DoorFacts) -> Decision {
    let mut r = Vec::new();
    let waiver = match who {
        Principal::Courier(c) => {
            // A courier not assigned learns nothing about the home (camera, lock,
            // position): the only reason they get is that it is not theirs.
            if !c.assigned {
                return Decision::refused(Refusal::NotAssigned);
            }
            courier_checks(now, c, &mut r);
            None
        }
        Principal::Guest(g) => {
            if g.revoked {
                r.push(Refusal::GuestRevoked);
            }
            if now < g.valid_from || now > g.valid_until {
                r.push(Refusal::OutsideValidity);
            }
            if !g.in_weekly_window {
                r.push(Refusal::OutsideWeeklyWindow);
            }
            g.camera_waived.then_some(CameraWaiver::GuestGrant)
        }
        Principal::Owner { without_camera } => {
            without_camera.then_some(CameraWaiver::OwnerOverride)
        }
    };
    if waiver.is_none() {
        camera_checks(door, &mut r);
    }
    match door.lock {
        None => r.push(Refusal::NoLock),
        Some(Liveness::Live) => {}
        Some(_) => r.push(Refusal::LockOffline),
    }
    Decision::from(r, waiver)
}

fn courier_checks(now: Millis, c: &CourierFacts, r: &mut Vec<Refusal>) {
    if now < c.window_start || now > c.window_end {
        r.push(Refusal::OutsideWindow);
    }
    if !c.position.is_valid() {
        r.push(Refusal::BadPosition);
    } else if !inside_geofence(&c.position, c.home_lat, c.home_lon, c.geofence_m) {
        r.push(Refusal::OutsideGeofence);
    }
    if c.parcel_expected.is_empty()
        || !constant_time_str_eq(&c.parcel_expected, c.parcel_scanned.trim())
    {
        r.push(Refusal::ParcelMismatch);
    }
    if !c.owner_allows_in_home {
        r.push(Refusal::OwnerDisabled);
    }
    if !c.within_owner_hours {
        r.push(Refusal::OutsideOwnerHours);
    }
    if c.approval_pending {
        r.push(Refusal::AwaitingOwnerApproval);
    }
    match c.delivery {
        DeliveryState::Scheduled => {}
        DeliveryState::CameraLost | DeliveryState::EndedAfterCameraLoss => {
            r.push(Refusal::DeliveryCompromised)
        }
        DeliveryState::Inside | DeliveryState::Delivered | DeliveryState::Completed => {
            r.push(Refusal::AlreadyUsed)
        }
        DeliveryState::EndedUnverified | DeliveryState::Expired => r.push(Refusal::DeliveryEnded),
    }
}

/// The camera rule: the hub can vouch, some camera is bound to the door, and at least
/// one bound camera is watching and recording. Without one, every distinct reason.
fn camera_checks(door: &DoorFacts, r: &mut Vec<Refusal>) {
    if door.hub_degraded {
        r.push(Refusal::HubDegraded);
    }
    if door.cameras.is_empty() {
        r.push(Refusal::NoCameraBound);
        return;
    }
    if door.cameras.iter().any(|c| c.is_ok()) {
        if !door.recording {
            r.push(Refusal::CameraNotRecording);
        }
        return;
    }
    r.extend(
        door.cameras
            .iter()
            .filter_map(|c| c.err())
            .map(Refusal::from),
    );
}

fn constant_time_str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn courier() -> CourierFacts {
        CourierFacts {
            assigned: true,
            delivery: DeliveryState::Scheduled,
            window_start: 0,
            window_end: 20_000,
            position: Position {
                lat: 52.0,
                lon: 4.0,
                accuracy_m: 10.0,
            },
            home_lat: 52.0,
            home_lon: 4.0,
            geofence_m: 75.0,
            parcel_expected: "PARCEL-1".into(),
            parcel_scanned: "PARCEL-1".into(),
            owner_allows_in_home: true,
            within_owner_hours: true,
            approval_pending: false,
        }
    }

    fn watched() -> DoorFacts {
        DoorFacts {
            cameras: vec![Ok(())],
            recording: true,
            lock: Some(Liveness::Live),
            hub_degraded: false,
        }
    }

    fn reasons(who: &Principal, door: &DoorFacts) -> Vec<Refusal> {
        decide(10_000, who, door).reasons
    }

    #[test]
    fn all_checks_pass_allows_entry() {
        let d = decide(10_000, &Principal::Courier(courier()), &watched());
        assert!(d.allowed);
        assert!(d.reasons.is_empty());
        assert_eq!(d.camera_waived, None);
    }

    #[test]
    fn each_blind_camera_refuses_with_its_own_reason() {
        for (blind, refusal) in [
            (Blind::Offline, Refusal::CameraOffline),
            (Blind::Stale, Refusal::CameraStale),
            (Blind::ClockSkew, Refusal::CameraClockSkew),
            (Blind::Frozen, Refusal::CameraFrozen),
        ] {
            let mut door = watched();
            door.cameras = vec![Err(blind)];
            assert_eq!(
                reasons(&Principal::Courier(courier()), &door),
                vec![refusal]
            );
        }
    }

    #[test]
    fn a_door_without_a_bound_camera_cannot_be_opened_for_a_courier() {
        let mut door = watched();
        door.cameras.clear();
        assert_eq!(
            reasons(&Principal::Courier(courier()), &door),
            vec![Refusal::NoCameraBound]
        );
    }

    #[test]
    fn one_watching_camera_of_several_is_enough() {
        let mut door = watched();
        door.cameras = vec![Err(Blind::Offline), Ok(())];
        assert!(decide(10_000, &Principal::Courier(courier()), &door).allowed);
        door.cameras = vec![Err(Blind::Offline), Err(Blind::Frozen)];
        assert_eq!(
            reasons(&Principal::Courier(courier()), &door),
            vec![Refusal::CameraOffline, Refusal::CameraFrozen]
        );
    }

    #[test]
    fn the_owner_is_held_to_the_camera_rule_unless_they_override() {
        let mut door = watched();
        door.cameras = vec![Err(Blind::Stale)];
        let refused = decide(
            10_000,
            &Principal::Owner {
                without_camera: false,
            },
            &door,
        );
        assert_eq!(refused.reasons, vec![Refusal::CameraStale]);
        let overridden = decide(
            10_000,
            &Principal::Owner {
                without_camera: true,
            },
            &door,
        );
        assert!(overridden.allowed);
        assert_eq!(overridden.camera_waived, Some(CameraWaiver::OwnerOverride));
        // The override waives the camera, never the lock.
        door.lock = Some(Liveness::Offline);
        assert_eq!(
            reasons(
                &Principal::Owner {
                    without_camera: true
                },
                &door
            ),
            vec![Refusal::LockOffline]
        );
    }

    #[test]
    fn guests_follow_their_grant() {
        let g = GuestFacts {
            revoked: false,
            valid_from: 0,
            valid_until: 20_000,
            in_weekly_window: true,
            camera_waived: false,
        };
        assert!(decide(10_000, &Principal::Guest(g.clone()), &watched()).allowed);
        let mut door = watched();
        door.cameras = vec![Err(Blind::Offline)];
        assert_eq!(
            reasons(&Principal::Guest(g.clone()), &door),
            vec![Refusal::CameraOffline]
        );
        let waived = GuestFacts {
            camera_waived: true,
            ..g.clone()
        };
        let d = decide(10_000, &Principal::Guest(waived), &door);
        assert!(d.allowed);
        assert_eq!(d.camera_waived, Some(CameraWaiver::GuestGrant));
        let bad = GuestFacts {
            revoked: true,
            valid_until: 5_000,
            in_weekly_window: false,
            ..g
        };
        assert_eq!(
            reasons(&Principal::Guest(bad), &watched()),
            vec![
                Refusal::GuestRevoked,
                Refusal::OutsideValidity,
                Refusal::OutsideWeeklyWindow
            ]
        );
    }

    #[test]
    fn a_door_without_a_lock_or_with_a_dead_one_is_refused() {
        let mut door = watched();
        door.lock = None;
        assert_eq!(
            reasons(&Principal::Courier(courier()), &door),
            vec![Refusal::NoLock]
        );
        door.lock = Some(Liveness::Stale);
        assert_eq!(
            reasons(&Principal::Courier(courier()), &door),
            vec![Refusal::LockOffline]
        );
    }

    #[test]
    fn a_degraded_hub_refuses_to_vouch() {
        let mut door = watched();
        door.hub_degraded = true;
        assert_eq!(
            reasons(&Principal::Courier(courier()), &door),
            vec![Refusal::HubDegraded]
        );
    }

    #[test]
    fn a_courier_not_assigned_learns_only_that() {
        let mut c = courier();
        c.assigned = false;
        c.window_end = 0;
        let mut door = watched();
        door.cameras.clear();
        assert_eq!(
            reasons(&Principal::Courier(c), &door),
            vec![Refusal::NotAssigned]
        );
    }

    #[test]
    fn the_delivery_state_decides_reuse() {
        for (state, refusal) in [
            (DeliveryState::Inside, Refusal::AlreadyUsed),
            (DeliveryState::Delivered, Refusal::AlreadyUsed),
            (DeliveryState::Completed, Refusal::AlreadyUsed),
            (DeliveryState::CameraLost, Refusal::DeliveryCompromised),
            (
                DeliveryState::EndedAfterCameraLoss,
                Refusal::DeliveryCompromised,
            ),
            (DeliveryState::EndedUnverified, Refusal::DeliveryEnded),
            (DeliveryState::Expired, Refusal::DeliveryEnded),
        ] {
            let mut c = courier();
            c.delivery = state;
            assert_eq!(reasons(&Principal::Courier(c), &watched()), vec![refusal]);
        }
    }

    #[test]
    fn every_failed_check_is_reported() {
        let mut c = courier();
        c.window_end = 5_000;
        c.position = Position {
            lat: 53.0,
            lon: 4.0,
            accuracy_m: 5.0,
        };
        c.parcel_scanned = "OTHER".into();
        c.owner_allows_in_home = false;
        c.within_owner_hours = false;
        c.approval_pending = true;
        let mut door = watched();
        door.lock = Some(Liveness::Offline);
        door.cameras = vec![Err(Blind::Stale)];
        let d = decide(10_000, &Principal::Courier(c), &door);
        assert!(!d.allowed);
        assert_eq!(
            d.reasons,
            vec![
                Refusal::OutsideWindow,
                Refusal::OutsideGeofence,
                Refusal::ParcelMismatch,
                Refusal::OwnerDisabled,
                Refusal::OutsideOwnerHours,
                Refusal::AwaitingOwnerApproval,
                Refusal::CameraStale,
                Refusal::LockOffline,
            ]
        );
    }

    #[test]
    fn nan_and_out_of_range_positions_are_refused() {
        for p in [
            (f64::NAN, 4.0, 1.0),
            (91.0, 4.0, 1.0),
            (52.0, f64::INFINITY, 1.0),
            (52.0, 4.0, -1.0),
        ] {
            let mut c = courier();
            c.position = Position {
                lat: p.0,
                lon: p.1,
                accuracy_m: p.2,
            };
            assert_eq!(
                reasons(&Principal::Courier(c), &watched()),
                vec![Refusal::BadPosition]
            );
        }
    }

    #[test]
    fn the_geofence_is_the_radius_the_docs_state_accuracy_included() {
        // 0.0005 degrees of latitude is about 55.6 m.
        let at = |acc: f64| Position {
            lat: 52.0005,
            lon: 4.0,
            accuracy_m: acc,
        };
        assert!(inside_geofence(&at(10.0), 52.0, 4.0, 75.0));
        assert!(!inside_geofence(&at(20.0), 52.0, 4.0, 75.0));
        assert!(!inside_geofence(&at(0.0), 52.0, 4.0, 50.0));
        let mut c = courier();
        c.position = at(500.0);
        assert_eq!(
            reasons(&Principal::Courier(c), &watched()),
            vec![Refusal::OutsideGeofence]
        );
    }

    #[test]
    fn distance_is_plausible() {
        let d = distance_m(52.0, 4.0, 52.001, 4.0);
        assert!((d - 111.2).abs() < 1.0, "{d}");
    }
}
