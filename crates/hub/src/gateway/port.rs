//! The gateway's one way out to the rest of the hub: what a verified device message
//! means is not the gateway's business. It hands each happening, as data, to the
//! [`Reactions`] the hub was wired with (`reactions::HubReactions` in the running hub),
//! and learns from it which records to store with an event.

use crate::audit::journal::Record;
use crate::state::AppState;
use std::future::Future;
use std::pin::Pin;
use threshold_core::record_log::Arrival;
use threshold_proto::body::{DeviceKind, State};
use threshold_proto::{DeviceId, SignedMessage};
use threshold_store::NewTimelineRow;

/// Something a device did, verified and stored (or, for a state report, applied).
#[derive(Debug)]
pub enum Happening<'a> {
    /// A lock or contact sensor reported its state; `changed` when its door or bolt
    /// differs from what it reported before.
    StateReport {
        device: DeviceId,
        report: State,
        changed: bool,
    },
    /// A device said hello (it has (re)connected).
    Hello { device: DeviceId, kind: DeviceKind },
    /// A new device event, stored with its records.
    Event {
        msg: &'a SignedMessage,
        event_type: &'a str,
        detail: &'a str,
        arrival: &'a Arrival,
    },
}

pub type Reacting<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// The domain's side of device ingest.
pub trait Reactions: Send + Sync + std::fmt::Debug {
    /// The audit and timeline records stored in the same commit as an event record.
    fn event_records(
        &self,
        state: &AppState,
        msg: &SignedMessage,
        event_type: &str,
        detail: &str,
        arrival: &Arrival,
    ) -> (Vec<Record>, Vec<NewTimelineRow>);

    /// What follows a happening: alerts, the delivery flow, downlinks, live events.
    fn react<'a>(&'a self, state: &'a AppState, happening: Happening<'a>) -> Reacting<'a>;
}
