//! Every kind of alert an owner can receive, and how serious each is. The hub raises
//! them (stored once per cause, sent to the owner's apps, webhooks and push); which
//! kind a happening is, and its severity, is decided here.

use crate::delivery;

/// How loudly the owner is told: a critical alert is also pushed to a closed app.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Severity {
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AlertKind {
    /// A delivery's own alert (`delivery::step`).
    Delivery(delivery::Alert),
    /// A door opening that no session authorised.
    UnauthorizedEntry,
    /// A door opened during a delivery after its camera stopped watching.
    DoorOpenedUnwatched,
    /// A door opened again after the courier said delivered, before it was secured.
    DoorOpenedAfterDelivery,
    /// A lock refused a token (forged, replayed, expired, not for it).
    TokenRefused,
    /// A device has been offline beyond the grace period.
    DeviceOffline,
    /// A camera's picture stopped changing beyond its noise.
    CameraPossiblyFrozen,
    /// Records are missing from a lock's or sensor's event log after the grace period.
    SequenceGap,
    /// A Wi-Fi deauthentication or jamming attack was named.
    WifiAttack { during_delivery: bool },
    /// A garage-door opener's safety sensor reports something in the door's way.
    GarageObstructed,
}

impl AlertKind {
    /// The stable code the API, webhooks and the apps use.
    pub fn code(self) -> &'static str {
        match self {
            AlertKind::Delivery(a) => a.code(),
            AlertKind::UnauthorizedEntry => "unauthorized_entry",
            AlertKind::DoorOpenedUnwatched => "door_opened_unwatched",
            AlertKind::DoorOpenedAfterDelivery => "door_opened_after_delivery",
            AlertKind::TokenRefused => "token_refused",
            AlertKind::DeviceOffline => "device_offline",
            AlertKind::CameraPossiblyFrozen => "camera_possibly_frozen",
            AlertKind::SequenceGap => "sequence_gap",
            AlertKind::WifiAttack { .. } => "wifi_attack",
            AlertKind::GarageObstructed => "garage_obstructed",
        }
    }

    /// Anything about a door that may be open or entered unseen is critical; so is an
    /// attack while a courier is inside. The rest is a warning.
    pub fn severity(self) -> Severity {
        match self {
            AlertKind::Delivery(_)
            | AlertKind::UnauthorizedEntry
            | AlertKind::DoorOpenedUnwatched
            | AlertKind::DoorOpenedAfterDelivery
            | AlertKind::WifiAttack {
                during_delivery: true,
            } => Severity::Critical,
            AlertKind::TokenRefused
            | AlertKind::DeviceOffline
            | AlertKind::CameraPossiblyFrozen
            | AlertKind::SequenceGap
            | AlertKind::GarageObstructed
            | AlertKind::WifiAttack {
                during_delivery: false,
            } => Severity::Warning,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doors_entered_unseen_are_critical_and_device_trouble_is_a_warning() {
        for a in [
            delivery::Alert::CameraLostDuringDelivery,
            delivery::Alert::DoorMayBeUnlocked,
            delivery::Alert::SessionNotSecured,
            delivery::Alert::GarageLeftOpen,
        ] {
            assert_eq!(AlertKind::Delivery(a).severity(), Severity::Critical);
            assert_eq!(AlertKind::Delivery(a).code(), a.code());
        }
        for k in [
            AlertKind::UnauthorizedEntry,
            AlertKind::DoorOpenedUnwatched,
            AlertKind::DoorOpenedAfterDelivery,
        ] {
            assert_eq!(k.severity(), Severity::Critical, "{k:?}");
        }
        for k in [
            AlertKind::TokenRefused,
            AlertKind::DeviceOffline,
            AlertKind::CameraPossiblyFrozen,
            AlertKind::SequenceGap,
            AlertKind::GarageObstructed,
            AlertKind::WifiAttack {
                during_delivery: false,
            },
        ] {
            assert_eq!(k.severity(), Severity::Warning, "{k:?}");
        }
        let attack = AlertKind::WifiAttack {
            during_delivery: true,
        };
        assert_eq!(attack.severity(), Severity::Critical);
        assert_eq!(attack.code(), "wifi_attack");
    }
}
