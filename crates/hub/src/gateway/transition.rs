//! What the liveness pass reports: a change in a device's condition worth telling
//! someone about.

use threshold_core::liveness::Liveness;
use threshold_proto::body::DeviceKind;
use threshold_proto::DeviceId;

/// A change in a device's condition worth telling someone about.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    pub device: DeviceId,
    pub home_id: String,
    pub owner_id: String,
    pub kind: DeviceKind,
    pub name: String,
    pub change: Change,
    pub at_ms: i64,
    /// Hub time of the last fresh evidence (frame or report) before the change.
    pub last_fresh_ms: Option<i64>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    Liveness { from: Liveness, to: Liveness },
    Frozen(bool),
    OfflineNotice,
}
