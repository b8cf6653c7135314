//! Live view for owners: `GET /api/v1/devices/{id}/live` (WebSocket).
//!
//! Every message is a JSON text message:
//!
//! - `{"type":"frame","device_id","seq","capture_ms","received_ms","age_ms","verdict","time_ms","jpeg_base64"}`
//!   for each new live frame of the camera (the JPEG, base64);
//! - `{"type":"status","device_id","verdict","age_ms","last_seq","last_capture_ms","possibly_frozen","time_ms"}`
//!   every 250 ms whether or not a frame arrived (`possibly_frozen`: the picture has not
//!   changed beyond noise for `frozen_after_ms`; show it next to the verdict).
//!
//! `verdict` is the hub's liveness of the camera at `time_ms` (`live`, `stale` or
//! `offline`), except that it is never `live` while the newest frame the hub has is
//! older than the live window (heartbeats alone do not make a picture live); `age_ms` is how long ago the newest frame was captured, on the hub's clock (null if none
//! since the hub started). A page must show LIVE only while the latest verdict is
//! `live` AND a message arrived within its own watchdog (e.g. 1 s): because status
//! messages come four times a second, a silent hub or a jammed phone turns LIVE into
//! OFFLINE within 2 s. While at least one viewer is connected the hub asks the camera
//! for frames (a `stream` request renewed every 2 s).

use crate::auth::Principal;
use crate::http::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::Response;
use base64::Engine;
use serde_json::json;
use std::time::Duration;
use threshold_proto::DeviceId;
use threshold_store::Role;

/// Status message period.
pub const STATUS_EVERY_MS: u64 = 250;

#[utoipa::path(get, operation_id = "live_live", path = "/devices/{id}/live", tag = "devices", params(("id" = String, Path)),
    description = "WebSocket. JSON text messages: `frame` (with `jpeg_base64`, `seq`, `capture_ms`, `age_ms`, `verdict`) for each live frame, and `status` (`verdict`, `age_ms`, `last_seq`) every 250 ms. Show LIVE only while the newest verdict is `live` and a message arrived within the page's own watchdog.",
    responses((status = 101, description = "switching to WebSocket"), (status = 404, body = crate::http::dto::ErrorBody)))]
pub async fn live(
    State(st): State<AppState>,
    p: Principal,
    client: crate::http::client::Client,
    Path(id): Path<String>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let owner = p.require(Role::Owner)?;
    let d = st
        .store
        .device(owner, crate::http::extract::id(&id)?)
        .await
        .map_err(|_| ApiError::NotFound("device"))?;
    if d.kind != "camera" {
        return Err(ApiError::NotFound("camera"));
    }
    let did: DeviceId = d.id.parse().map_err(|_| ApiError::NotFound("device"))?;
    let ws = ws.map_err(|e| ApiError::invalid("websocket_required", e.body_text()))?;
    // The client's address, through trusted proxies only (`http::forwarded`).
    tracing::debug!(client = ?client.addr, device = %did, user = %p.user.id, "live view opened");
    Ok(ws.on_upgrade(move |socket| view(st, p, did, socket)))
}

struct Viewer<'a>(&'a AppState, DeviceId);

impl Drop for Viewer<'_> {
    fn drop(&mut self) {
        self.0.live.remove_viewer(&self.1);
    }
}

/// The hub's verdict on a camera now: `live`, or why not (`stale`, `offline`,
/// `frozen`, `clock_skew`): the camera rule of `threshold_core::liveness`, the same one
/// every entry decision uses.
pub fn verdict(st: &AppState, d: &DeviceId) -> &'static str {
    match crate::access::doors::camera_watch(st, d, st.clock.now_ms()) {
        Ok(()) => "live",
        Err(b) => b.verdict(),
    }
}

/// A frame's capture time on the hub's clock (the camera's signed capture time mapped
/// with its estimated clock offset).
fn captured_at(st: &AppState, d: &DeviceId, capture_ms: i64) -> i64 {
    let now = st.clock.now_ms();
    st.registry
        .with(d, |e| e.liveness.to_hub_time(capture_ms, now))
        .unwrap_or(capture_ms)
        .min(now)
}

/// The verdict for a viewer: the camera must be watching AND the picture the viewer
/// has (the newest frame received) must have been captured within the live window; a
/// watching camera whose frames have not reached the hub yet (heartbeats only, or
/// backlog still draining) is shown as stale.
fn view_verdict(st: &AppState, d: &DeviceId, frame_capture_ms: Option<i64>) -> &'static str {
    let v = verdict(st, d);
    let (now, cfg) = (st.clock.now_ms(), st.config.liveness());
    let fresh = frame_capture_ms.is_some_and(|c| {
        st.registry
            .with(d, |e| e.liveness.captured_recently(c, now, &cfg))
            .unwrap_or(false)
    });
    if v == "live" && !fresh {
        "stale"
    } else {
        v
    }
}

/// The picture has stopped changing beyond noise for the configured time.
fn frozen(st: &AppState, d: &DeviceId) -> bool {
    let now = st.clock.now_ms();
    let cfg = st.config.liveness();
    st.registry
        .with(d, |e| e.liveness.possibly_frozen(now, &cfg))
        .unwrap_or(false)
}

fn status(st: &AppState, d: &DeviceId) -> String {
    let now = st.clock.now_ms();
    let latest = st.live.latest(d);
    json!({
        "type": "status",
        "device_id": d.to_hex(),
        "verdict": view_verdict(st, d, latest.as_ref().map(|f| f.capture_ms)),
        "age_ms": latest.as_ref().map(|f| now - captured_at(st, d, f.capture_ms)),
        "last_seq": latest.as_ref().map(|f| f.seq),
        "last_capture_ms": latest.as_ref().map(|f| f.capture_ms),
        "possibly_frozen": frozen(st, d),
        "time_ms": now,
    })
    .to_string()
}

async fn view(st: AppState, p: crate::auth::Principal, d: DeviceId, mut socket: WebSocket) {
    st.live.add_viewer(d);
    let _guard = Viewer(&st, d);
    let now = st.clock.now_ms();
    crate::media::recording::request_frames(&st, &[d], now + 10_000).await;
    let mut rx = st.live.subscribe();
    let mut tick = tokio::time::interval(Duration::from_millis(STATUS_EVERY_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut recheck = tokio::time::interval(Duration::from_secs(1));
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let b64 = base64::engine::general_purpose::STANDARD;
    loop {
        tokio::select! {
            f = rx.recv() => match f {
                Ok(f) if f.device == d => {
                    let now = st.clock.now_ms();
                    let msg = json!({
                        "type": "frame",
                        "device_id": d.to_hex(),
                        "seq": f.seq,
                        "capture_ms": f.capture_ms,
                        "received_ms": f.received_ms,
                        "age_ms": now - captured_at(&st, &d, f.capture_ms),
                        "verdict": view_verdict(&st, &d, Some(f.capture_ms)),
                        "time_ms": now,
                        "jpeg_base64": b64.encode(&f.jpeg),
                    }).to_string();
                    if socket.send(Message::Text(msg.into())).await.is_err() { return; }
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return,
            },
            _ = tick.tick() => {
                if socket.send(Message::Text(status(&st, &d).into())).await.is_err() { return; }
            }
            _ = recheck.tick() => {
                // Signed out, expired or revoked since the upgrade: close.
                if !crate::auth::still_valid(&st, &p).await {
                    let _ = socket.send(Message::Close(Some(crate::http::system::ended()))).await;
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                _ => {}
            }
        }
    }
}
