//! A device's gateway entry built from the database, by a process that has not been
//! hearing the device: at start, when a fleet peer tells of a new device, or when a
//! message arrives from one this process has not loaded yet.

use crate::gateway::registry::DeviceEntry;
use crate::state::AppState;
use threshold_store::{DeviceRow, SeqSpaceName, StoreError};

/// The stored device as a fresh entry (key, kind, home, revocation, replay marks and
/// record gaps), fenced as after a restart: another process, or this one before it
/// crashed, may have accepted messages whose replay marks were not saved yet, so one
/// signed before now could be such a message replayed (`DeviceEntry::restart_fence`).
/// `None`: the stored id, key or kind is unreadable.
pub async fn fenced_entry(
    state: &AppState,
    row: &DeviceRow,
) -> Result<Option<DeviceEntry>, StoreError> {
    let events = state.store.gaps(&row.id, SeqSpaceName::Events).await?;
    let frames = state.store.gaps(&row.id, SeqSpaceName::Frames).await?;
    Ok(DeviceEntry::from_row(row, &events, &frames).map(|mut e| {
        e.restart_fence(
            state.clock.now_ms(),
            row.clock_offset_ms,
            state.config.max_clock_skew_ms,
        );
        e
    }))
}
