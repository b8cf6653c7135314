//! Delivery recordings (law 6): every delivery is recorded from the unlock request until
//! its session ends plus a tail. While a recording is open the hub keeps the home's
//! cameras streaming; each verified frame of those cameras captured inside a recording's
//! time span is written to `<data_dir>/media/<device>/<bucket>/<seq>.jpg` (fsynced, then
//! renamed into place) with a metadata row, *before* the frame is acknowledged to the
//! camera. Backlog frames that arrive after an outage are filed by their signed capture
//! time into the same recording, marked recovered. Storing is idempotent per
//! (device, frame seq).
//!
//! One background task (see [`spawn`]) refreshes the in-memory list of recordings from
//! the database (so several hub processes agree: every 30 s, and at the next tick when
//! another node granted an entry or this one took homes over), closes recordings whose session
//! ended, renews `stream` requests for recorded and watched cameras, and applies media
//! retention.

use crate::state::AppState;
use std::path::{Path, PathBuf};
use std::time::Duration;
use threshold_core::delivery::DeliveryState;
use threshold_core::liveness::Liveness;
use threshold_proto::body::{DeviceKind, FrameHeader};
use threshold_proto::{DeviceId, SignedMessage};
use threshold_store::{MediaFrameRow, RecordingRow};

/// How long after an outage's frames are marked recovered they are marked once more.
const REMARK_AFTER_MS: i64 = 3_000;
/// Late backlog frames are still filed into recordings that ended this recently.
const LATE_FILING_MS: i64 = 6 * 3600 * 1000;
/// How often the renewal pass runs (recordings refreshed and ended, stream requests
/// renewed where due).
pub const STREAM_RENEW_MS: u64 = 2000;
/// How far ahead a stream request reaches.
const STREAM_AHEAD_MS: i64 = 20_000;
/// A request is renewed once it has less than this left: every 8 to 10 s, so that one
/// lost renewal is followed by the next before the camera's request runs out.
const RENEW_WITHIN_MS: i64 = 12_000;
/// Outages remembered per camera.
const MAX_OUTAGES: usize = 16;
/// Retention runs this often.
const RETENTION_EVERY_MS: i64 = 60_000;

/// Start recording a delivery whose entry was granted and get the home's cameras
/// streaming right away. The recording's row was written with the entry itself (the
/// claim in `Store::write_journal`), so a granted entry always has its recording.
pub async fn start(state: &AppState, delivery_id: &str, home_id: &str, now: i64) {
    state.recorder.add(RecordingRow {
        delivery_id: delivery_id.to_owned(),
        home_id: home_id.to_owned(),
        started_ms: now,
        ends_ms: None,
    });
    let cams = home_cameras(state, home_id);
    request_frames(state, &cams, now + STREAM_AHEAD_MS).await;
}

/// A camera (re)connected. If it was streaming, it may have lost the request (the
/// renewals sent while it was away went nowhere, and it streams only a few seconds
/// past a reconnect on its own, docs/protocol.md §10.2): ask again now.
pub async fn on_camera_hello(state: &AppState, camera: DeviceId) {
    if state.stream_leases.forget(&camera) {
        let until = state.clock.now_ms() + STREAM_AHEAD_MS;
        request_frames(state, &[camera], until).await;
    }
}

fn home_cameras(state: &AppState, home_id: &str) -> Vec<DeviceId> {
    let mut out = Vec::new();
    state.registry.for_home(home_id, |e| {
        if e.kind == DeviceKind::Camera && !e.revoked {
            out.push(e.id);
        }
    });
    out
}

pub fn media_dir(state: &AppState) -> PathBuf {
    state.config.data_dir.join("media")
}

/// Relative path of a stored frame. Ids are hex and seqs numbers: no path tricks.
fn frame_rel_path(device: &DeviceId, seq: u64) -> String {
    format!("{}/{:08}/{seq}.jpg", device.to_hex(), seq / 1000)
}

/// Why a frame could not be stored (it is then not acknowledged, so the camera keeps it
/// and sends it again).
#[derive(Debug)]
pub struct StoreFailed;

/// File a verified frame if it belongs to a recording. Returns Err only when it belongs
/// to one and could not be made durable.
pub async fn on_frame(
    state: &AppState,
    msg: &SignedMessage,
    header: &FrameHeader,
    jpeg: &[u8],
    recovered: bool,
) -> Result<(), StoreFailed> {
    let Some(home_id) = state.registry.with(&msg.device, |e| e.home_id.clone()) else {
        return Ok(());
    };
    let Some(delivery_id) = state.recorder.find(&home_id, msg.time_ms) else {
        return Ok(());
    };
    let rel = frame_rel_path(&msg.device, msg.seq);
    let full = media_dir(state).join(&rel);
    let data = jpeg.to_vec();
    let written = tokio::task::spawn_blocking(move || write_durably(&full, &data)).await;
    match written {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::error!(error = %e, device = %msg.device, seq = msg.seq, "could not write frame to disk");
            state.metrics.reject("media_write_failed");
            return Err(StoreFailed);
        }
        Err(_) => return Err(StoreFailed),
    }
    let device_hex = msg.device.to_hex();
    let recovered = recovered || state.recorder.in_outage(&device_hex, msg.time_ms);
    let row = MediaFrameRow {
        device_id: device_hex,
        seq: msg.seq as i64,
        home_id,
        delivery_id,
        capture_ms: msg.time_ms,
        received_ms: state.clock.now_ms(),
        recovered,
        path: rel,
        sha256: header.sha256.clone(),
        bytes: jpeg.len() as i64,
    };
    match state.store.insert_media_frame(&row).await {
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::error!(error = %e, "could not store frame metadata");
            Err(StoreFailed)
        }
    }
}

fn write_durably(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("jpg.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_data()?;
    }
    std::fs::rename(&tmp, path)
}

/// Read a stored frame's bytes.
pub async fn read_frame(state: &AppState, row: &MediaFrameRow) -> std::io::Result<Vec<u8>> {
    // The path was built by the hub from hex and digits; refuse anything else anyway.
    if row.path.contains("..") || row.path.starts_with('/') {
        return Err(std::io::Error::other("bad stored path"));
    }
    tokio::fs::read(media_dir(state).join(&row.path)).await
}

/// A camera's signed `link_lost` / `link_restored` events bound its outage in device
/// time: every frame it captured in between is backlog, so it is marked recovered
/// (also frames already filed, whatever order the uploads arrived in).
async fn on_link_event(state: &AppState, data: &serde_json::Value) {
    let (Some(dev), Some(ev)) = (
        data.get("device_id").and_then(|v| v.as_str()),
        data.get("event").and_then(|v| v.as_str()),
    ) else {
        return;
    };
    let detail = data.get("detail");
    let at = |k: &str| detail.and_then(|d| d.get(k)).and_then(|v| v.as_i64());
    match ev {
        "link_lost" => {
            if let Some(from) = at("from_ms") {
                let mut g = state
                    .recorder
                    .outages
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                let v = g.entry(dev.to_owned()).or_default();
                if !v.iter().any(|(f, _)| *f == from) {
                    v.push((from, None));
                }
                if v.len() > MAX_OUTAGES {
                    v.remove(0);
                }
            }
        }
        "link_restored" => {
            let Some(to) = at("at_ms") else { return };
            let from = {
                let mut g = state
                    .recorder
                    .outages
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                g.get_mut(dev).and_then(|v| {
                    v.iter_mut()
                        .rev()
                        .find(|(f, t)| t.is_none() && *f <= to)
                        .map(|o| {
                            o.1 = Some(to);
                            o.0
                        })
                })
            };
            if let Some(from) = from {
                if let Err(e) = state.store.mark_media_recovered(dev, from, to).await {
                    tracing::error!(error = %e, "could not mark recovered frames");
                }
                // Once more a little later (the recorder's tick), for a frame whose
                // filing raced this event.
                state
                    .recorder
                    .remark_later(dev, from, to, state.clock.now_ms() + REMARK_AFTER_MS);
            }
        }
        _ => {}
    }
}

/// What the recorder does about an event on the hub's bus: a granted entry starts its
/// delivery's recording; a camera's link events bound an outage.
pub async fn on_event(state: &AppState, e: &crate::events::HubEvent) {
    // In a fleet, the node that acts for the home records it, wherever the entry was
    // granted (its camera's frame records are stored there).
    if !state.fleet.owns_home(&e.home_id) {
        return;
    }
    match e.event_type.as_str() {
        "delivery.entry_granted" => {
            if let Some(d) = e.data.get("delivery_id").and_then(|v| v.as_str()) {
                start(state, d, &e.home_id, e.time_ms).await;
            }
        }
        "device.event" => on_link_event(state, &e.data).await,
        _ => {}
    }
}

/// The recorder's background tasks: one starts a recording on every granted entry (it
/// listens to the hub's event bus, so the delivery flow needs no recorder calls), one
/// ticks.
pub fn spawn(state: AppState) {
    let st = state.clone();
    let mut rx = st.bus.subscribe();
    tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(e) => on_event(&st, &e).await,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::error!(missed = n, "recorder lagged behind the event bus");
                }
                Err(_) => return,
            }
        }
    });
    let tasks = state.tasks.clone();
    tasks.spawn(async move {
        let mut iv = tokio::time::interval(Duration::from_millis(STREAM_RENEW_MS));
        iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut last_retention = i64::MIN;
        loop {
            iv.tick().await;
            if state.stopped() {
                return;
            }
            tick(&state).await;
            let now = state.clock.now_ms();
            if now.saturating_sub(last_retention) >= RETENTION_EVERY_MS {
                last_retention = now;
                if let Err(e) = retention(&state).await {
                    tracing::error!(error = %e, "media retention failed");
                }
            }
        }
    });
}

/// One pass: refresh recordings, close ended sessions, renew stream requests.
pub async fn tick(state: &AppState) {
    let now = state.clock.now_ms();
    for (camera, from, to) in state.recorder.take_due_remarks(now) {
        if let Err(e) = state.store.mark_media_recovered(&camera, from, to).await {
            tracing::error!(error = %e, "could not mark recovered frames");
        }
    }
    if state.recorder.reload_due(now) {
        match state.store.recent_recordings(now - LATE_FILING_MS).await {
            Ok(rows) => state.recorder.replace(rows, now),
            Err(e) => {
                state.recorder.reload_soon();
                tracing::error!(error = %e, "could not load recordings")
            }
        }
    }
    // One query for the deliveries that ended, not one per open recording: thousands
    // of deliveries can be open at once.
    let ended: std::collections::HashMap<String, bool> = match state
        .store
        .recordings_past_delivery(&DeliveryState::unfinished_names())
        .await
    {
        Ok(ids) => ids.into_iter().collect(),
        Err(e) => {
            tracing::error!(error = %e, "could not check recordings against deliveries");
            Default::default()
        }
    };
    let cfg = state.config.liveness();
    // In a fleet, the node acting for a home ends its recordings and keeps its cameras
    // streaming (a node taking over finds them in the database, above).
    for r in state
        .recorder
        .open()
        .into_iter()
        .filter(|r| state.fleet.owns_home(&r.home_id))
    {
        let too_long = now - r.started_ms > state.config.recording_max_ms;
        // A delivery that lost its camera keeps recording after it ended until the
        // home's cameras are all live again: the backlog of the outage (the
        // researchers' second entry) is filed into it when it arrives (law 6).
        let blind = ended.get(&r.delivery_id) == Some(&true)
            && home_cameras(state, &r.home_id).iter().any(|c| {
                state
                    .registry
                    .with(c, |e| e.liveness.state(now, &cfg) != Liveness::Live)
                    .unwrap_or(false)
            });
        if (ended.contains_key(&r.delivery_id) && !blind) || too_long {
            let ends = now + state.config.recording_tail_ms;
            if state
                .store
                .end_recording(&r.delivery_id, ends)
                .await
                .is_ok()
            {
                state.recorder.add_end(&r.delivery_id, ends);
            }
        }
    }
    let mut cams: Vec<DeviceId> = Vec::new();
    for h in state.recorder.recording_homes(now) {
        if state.fleet.owns_home(&h) {
            cams.extend(home_cameras(state, &h));
        }
    }
    cams.extend(state.live.watched());
    cams.sort_by_key(|d| d.0);
    cams.dedup();
    let due = state.stream_leases.due(&cams, now, RENEW_WITHIN_MS);
    renew_spread(state, &due).await;
}

/// Slices a renewal pass is spread over, within one renewal period.
const RENEW_SLICES: usize = 10;

/// Cameras per slice and the pause between slices for a pass over `n` cameras: at most
/// `RENEW_SLICES` slices (of at least 64, so a short list is one slice), the pauses
/// adding up to nine tenths of the period.
fn renewal_slices(n: usize) -> (usize, Duration) {
    (
        n.div_ceil(RENEW_SLICES).max(64),
        Duration::from_millis(STREAM_RENEW_MS * 9 / 10 / RENEW_SLICES as u64),
    )
}

/// Renew the cameras' stream requests in slices spread over most of the renewal period
/// rather than all at once: with thousands of recordings open, one pass is thousands of
/// signatures, and sent in one go they took the CPU from unlock decisions for ~150 ms
/// every period (the open-loop unlock benchmark showed it). Each slice asks for
/// `STREAM_AHEAD_MS` from when it is sent; a short list goes out at once.
async fn renew_spread(state: &AppState, cams: &[DeviceId]) {
    let (per_slice, pause) = renewal_slices(cams.len());
    for (i, slice) in cams.chunks(per_slice).enumerate() {
        if i > 0 {
            tokio::time::sleep(pause).await;
            if state.stopped() {
                return;
            }
        }
        request_frames(state, slice, state.clock.now_ms() + STREAM_AHEAD_MS).await;
    }
}

/// Ask cameras for every frame they capture until `until_ms`. The rate asked for is the
/// protocol's maximum (30/s): cameras upload at most what they capture, and asking for
/// their capture rate exactly would let capture jitter drop frames from a recording.
pub async fn request_frames(state: &AppState, cams: &[DeviceId], until_ms: i64) {
    for (i, c) in cams.iter().enumerate() {
        // Thousands of renewals at once would queue ahead of an unlock token on the
        // downlink connection: let other publishers in between every few.
        if i > 0 && i % 32 == 0 {
            tokio::task::yield_now().await;
        }
        crate::fleet::downlinks::send(
            state,
            *c,
            threshold_proto::Kind::Stream,
            &threshold_proto::body::Stream { until_ms, fps: 30 },
        )
        .await;
        state.stream_leases.asked(*c, until_ms);
    }
}

/// Delete the oldest frames beyond the age and size limits.
pub async fn retention(state: &AppState) -> Result<u64, threshold_store::StoreError> {
    let now = state.clock.now_ms();
    let cutoff = now - state.config.media_max_age_ms;
    let mut total = state.store.media_total_bytes().await?.max(0) as u64;
    let mut deleted = 0u64;
    loop {
        let batch = state.store.oldest_media_frames(500).await?;
        if batch.is_empty() {
            break;
        }
        let mut progressed = false;
        for f in batch {
            if f.received_ms >= cutoff && total <= state.config.media_max_bytes {
                return Ok(deleted);
            }
            if !(f.path.contains("..") || f.path.starts_with('/')) {
                let _ = tokio::fs::remove_file(media_dir(state).join(&f.path)).await;
            }
            state.store.delete_media_frame(&f.device_id, f.seq).await?;
            total = total.saturating_sub(f.bytes.max(0) as u64);
            deleted += 1;
            progressed = true;
        }
        if !progressed {
            break;
        }
    }
    if deleted > 0 {
        tracing::info!(deleted, "media retention deleted old frames");
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::recorder::Recorder;

    #[test]
    fn frames_are_filed_by_capture_time() {
        let r = Recorder::default();
        r.add(RecordingRow {
            delivery_id: "d1".into(),
            home_id: "h".into(),
            started_ms: 1000,
            ends_ms: Some(5000),
        });
        r.add(RecordingRow {
            delivery_id: "d2".into(),
            home_id: "h".into(),
            started_ms: 4000,
            ends_ms: None,
        });
        assert_eq!(r.find("h", 999), None);
        assert_eq!(r.find("h", 1000).as_deref(), Some("d1"));
        assert_eq!(r.find("h", 4500).as_deref(), Some("d1"));
        assert_eq!(r.find("h", 9000).as_deref(), Some("d2"));
        assert_eq!(r.find("other", 4500), None);
        assert_eq!(r.recording_homes(100_000), vec!["h".to_owned()]);
        r.add_end("d2", 6000);
        assert!(r.recording_homes(100_000).is_empty());
    }

    #[test]
    fn a_renewal_pass_is_spread_but_fits_its_period() {
        // A few cameras: one slice, no pause.
        let (per, _) = renewal_slices(10);
        assert!(per >= 10);
        // Thousands: ten slices whose pauses end before the next pass is due.
        for n in [65, 2000, 20_000] {
            let (per, pause) = renewal_slices(n);
            let slices = n.div_ceil(per);
            assert!(
                (2..=RENEW_SLICES).contains(&slices),
                "{n} cameras: {slices} slices"
            );
            let spread = pause * (slices as u32 - 1);
            assert!(
                spread < Duration::from_millis(STREAM_RENEW_MS),
                "{n}: {spread:?}"
            );
        }
    }

    #[test]
    fn stored_paths_are_plain() {
        let d = DeviceId([7u8; 16]);
        let p = frame_rel_path(&d, 12345);
        assert!(p.ends_with("/00000012/12345.jpg"));
        assert!(!p.contains(".."));
    }
}
