//! Law 2, "no eyes, no entry": the unlock decision as a pure function of facts the hub
//! gathered. Every failed check is reported, not just the first, so the courier and the
//! owner see all the reasons.

use crate::liveness::Liveness;
use crate::Millis;
use serde::Serialize;

/// A machine-readable reason an entry request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
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
    CameraNotLive,
    CameraNotRecording,
    LockOffline,
    DeliveryCompromised,
    AlreadyUsed,
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
            Refusal::CameraNotLive => "camera_not_live",
            Refusal::CameraNotRecording => "camera_not_recording",
            Refusal::LockOffline => "lock_offline",
            Refusal::DeliveryCompromised => "delivery_compromised",
            Refusal::AlreadyUsed => "already_used",
        }
    }

    /// Plain words for the courier app.
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
            Refusal::CameraNotLive => "The home's camera is not live; the door stays locked.",
            Refusal::CameraNotRecording => "The home's camera is not recording.",
            Refusal::LockOffline => "The lock is not reachable.",
            Refusal::DeliveryCompromised => {
                "This delivery was stopped after an incident; it cannot unlock again."
            }
            Refusal::AlreadyUsed => "The door was already opened for this delivery.",
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

/// Everything the decision depends on, gathered by the hub.
#[derive(Clone, Debug)]
pub struct EntryFacts {
    pub now: Millis,
    pub courier_assigned: bool,
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
    pub approval_pending: bool,
    pub camera: Liveness,
    pub camera_recording: bool,
    pub lock: Liveness,
    pub compromised: bool,
    pub already_entered: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Decision {
    pub allowed: bool,
    pub reasons: Vec<Refusal>,
}

/// Decide an entry request. Allowed only if no check fails.
pub fn decide(f: &EntryFacts) -> Decision {
    let mut r = Vec::new();
    if !f.courier_assigned {
        r.push(Refusal::NotAssigned);
    }
    if f.now < f.window_start || f.now > f.window_end {
        r.push(Refusal::OutsideWindow);
    }
    if !f.position.is_valid() {
        r.push(Refusal::BadPosition);
    } else {
        // The courier must be inside the fence even at the far edge of the reported
        // accuracy circle: a vague fix far away does not count as "at the door".
        let d = distance_m(f.position.lat, f.position.lon, f.home_lat, f.home_lon);
        if d + f.position.accuracy_m > f.geofence_m.max(0.0) + 50.0 || d > f.geofence_m {
            r.push(Refusal::OutsideGeofence);
        }
    }
    if f.parcel_expected.is_empty()
        || !constant_time_str_eq(&f.parcel_expected, f.parcel_scanned.trim())
    {
        r.push(Refusal::ParcelMismatch);
    }
    if !f.owner_allows_in_home {
        r.push(Refusal::OwnerDisabled);
    }
    if !f.within_owner_hours {
        r.push(Refusal::OutsideOwnerHours);
    }
    if f.approval_pending {
        r.push(Refusal::AwaitingOwnerApproval);
    }
    if f.camera != Liveness::Live {
        r.push(Refusal::CameraNotLive);
    }
    if !f.camera_recording {
        r.push(Refusal::CameraNotRecording);
    }
    if f.lock != Liveness::Live {
        r.push(Refusal::LockOffline);
    }
    if f.compromised {
        r.push(Refusal::DeliveryCompromised);
    }
    if f.already_entered {
        r.push(Refusal::AlreadyUsed);
    }
    Decision {
        allowed: r.is_empty(),
        reasons: r,
    }
}

fn constant_time_str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok_facts() -> EntryFacts {
        EntryFacts {
            now: 10_000,
            courier_assigned: true,
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
            camera: Liveness::Live,
            camera_recording: true,
            lock: Liveness::Live,
            compromised: false,
            already_entered: false,
        }
    }

    #[test]
    fn all_checks_pass_allows_entry() {
        assert_eq!(
            decide(&ok_facts()),
            Decision {
                allowed: true,
                reasons: vec![]
            }
        );
    }

    #[test]
    fn unlock_refused_when_camera_is_stale() {
        let mut f = ok_facts();
        f.camera = Liveness::Stale;
        assert_eq!(decide(&f).reasons, vec![Refusal::CameraNotLive]);
    }

    #[test]
    fn every_failed_check_is_reported() {
        let mut f = ok_facts();
        f.courier_assigned = false;
        f.now = 30_000;
        f.position = Position {
            lat: 53.0,
            lon: 4.0,
            accuracy_m: 5.0,
        };
        f.parcel_scanned = "OTHER".into();
        f.owner_allows_in_home = false;
        f.lock = Liveness::Offline;
        f.compromised = true;
        f.already_entered = true;
        let d = decide(&f);
        assert!(!d.allowed);
        for r in [
            Refusal::NotAssigned,
            Refusal::OutsideWindow,
            Refusal::OutsideGeofence,
            Refusal::ParcelMismatch,
            Refusal::OwnerDisabled,
            Refusal::LockOffline,
            Refusal::DeliveryCompromised,
            Refusal::AlreadyUsed,
        ] {
            assert!(d.reasons.contains(&r), "missing {r:?}");
        }
    }

    #[test]
    fn nan_and_out_of_range_positions_are_refused() {
        for p in [
            Position {
                lat: f64::NAN,
                lon: 4.0,
                accuracy_m: 1.0,
            },
            Position {
                lat: 91.0,
                lon: 4.0,
                accuracy_m: 1.0,
            },
            Position {
                lat: 52.0,
                lon: f64::INFINITY,
                accuracy_m: 1.0,
            },
            Position {
                lat: 52.0,
                lon: 4.0,
                accuracy_m: -1.0,
            },
        ] {
            let mut f = ok_facts();
            f.position = p;
            assert_eq!(decide(&f).reasons, vec![Refusal::BadPosition]);
        }
    }

    #[test]
    fn a_vague_fix_is_not_at_the_door() {
        let mut f = ok_facts();
        f.position.accuracy_m = 500.0;
        assert_eq!(decide(&f).reasons, vec![Refusal::OutsideGeofence]);
    }

    #[test]
    fn distance_is_plausible() {
        let d = distance_m(52.0, 4.0, 52.001, 4.0);
        assert!((d - 111.2).abs() < 1.0, "{d}");
    }
}
