//! A delivery's recording for its owner: the frame list (with recovered segments and
//! sequence gaps), each frame as JPEG, and the whole clip as a Motion-JPEG AVI that VLC
//! and browsers' download managers handle. A browser "player" shows the frame sequence
//! from the JSON list at each frame's capture time.

use crate::auth::Principal;
use crate::http::dto::ErrorBody;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{self, ApiQuery};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};
use threshold_store::{MediaFrameRow, RecordingRow, Role};
use utoipa::{IntoParams, ToSchema};

/// Frames listed (and put in one AVI) at most.
const MAX_FRAMES: i64 = 20_000;

#[derive(Debug, Serialize, ToSchema)]
pub struct RecordingJson {
    pub delivery_id: String,
    pub home_id: String,
    /// Recording covers frames captured from `started_ms` ...
    pub started_ms: i64,
    /// ... to `ends_ms` (session end plus the tail); null while the session is open.
    pub ends_ms: Option<i64>,
    pub cameras: Vec<CameraRecordingJson>,
    /// Every frame, by camera then sequence.
    pub frames: Vec<FrameJson>,
    /// True when the list was cut at the limit (20000 frames).
    pub truncated: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CameraRecordingJson {
    pub device_id: String,
    pub frames: usize,
    pub first_seq: i64,
    pub last_seq: i64,
    /// Runs of consecutive frames that arrived the same way (live or recovered).
    pub segments: Vec<SegmentJson>,
    /// Sequence numbers missing between the first and last frame.
    pub gaps: Vec<GapJson>,
    /// `/api/v1/deliveries/{id}/recording.avi?device=...`
    pub avi_url: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SegmentJson {
    pub from_seq: i64,
    pub to_seq: i64,
    pub from_ms: i64,
    pub to_ms: i64,
    pub frames: usize,
    /// Uploaded from the camera's backlog after an outage.
    pub recovered: bool,
}

#[derive(Debug, Serialize, ToSchema, PartialEq)]
pub struct GapJson {
    pub from_seq: i64,
    pub to_seq: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FrameJson {
    pub device_id: String,
    pub seq: i64,
    /// Device capture time (signed by the camera).
    pub capture_ms: i64,
    /// When the hub received it.
    pub received_ms: i64,
    pub recovered: bool,
    pub sha256: String,
    pub bytes: i64,
    pub url: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AviQuery {
    /// Camera to export; default: the camera with the most frames.
    pub device: Option<String>,
}

async fn load(
    st: &AppState,
    owner: &str,
    id: &str,
) -> ApiResult<(RecordingRow, Vec<MediaFrameRow>)> {
    let rec = st
        .store
        .recording(owner, extract::id(id)?)
        .await
        .map_err(|_| ApiError::NotFound("recording"))?;
    let frames = st
        .store
        .media_frames_between(
            owner,
            &rec.home_id,
            rec.started_ms,
            rec.ends_ms.unwrap_or(i64::MAX),
            MAX_FRAMES + 1,
        )
        .await?;
    Ok((rec, frames))
}

/// Segments and gaps of one camera's frames (sorted by seq).
pub fn segments_and_gaps(frames: &[&MediaFrameRow]) -> (Vec<SegmentJson>, Vec<GapJson>) {
    let mut segs: Vec<SegmentJson> = Vec::new();
    let mut gaps = Vec::new();
    let mut prev: Option<&MediaFrameRow> = None;
    for f in frames {
        let contiguous = prev.is_some_and(|p| f.seq == p.seq + 1);
        if let Some(p) = prev {
            if f.seq > p.seq + 1 {
                gaps.push(GapJson {
                    from_seq: p.seq + 1,
                    to_seq: f.seq - 1,
                });
            }
        }
        match segs.last_mut() {
            Some(s) if contiguous && s.recovered == f.recovered => {
                s.to_seq = f.seq;
                s.to_ms = f.capture_ms;
                s.frames += 1;
            }
            _ => segs.push(SegmentJson {
                from_seq: f.seq,
                to_seq: f.seq,
                from_ms: f.capture_ms,
                to_ms: f.capture_ms,
                frames: 1,
                recovered: f.recovered,
            }),
        }
        prev = Some(f);
    }
    (segs, gaps)
}

/// A delivery's recording: frames, recovered segments and gaps, per camera.
#[utoipa::path(get, operation_id = "clips_recording", path = "/deliveries/{id}/recording", tag = "recordings", params(("id" = String, Path)),
    responses((status = 200, body = RecordingJson), (status = 404, body = ErrorBody)))]
pub async fn recording(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<RecordingJson>> {
    let owner = p.require(Role::Owner)?;
    let (rec, mut frames) = load(&st, owner, &id).await?;
    let truncated = frames.len() as i64 > MAX_FRAMES;
    frames.truncate(MAX_FRAMES as usize);
    let mut cameras = Vec::new();
    let mut i = 0;
    while i < frames.len() {
        let dev = frames[i].device_id.clone();
        let group: Vec<&MediaFrameRow> = frames[i..]
            .iter()
            .take_while(|f| f.device_id == dev)
            .collect();
        i += group.len();
        let (segments, gaps) = segments_and_gaps(&group);
        cameras.push(CameraRecordingJson {
            frames: group.len(),
            first_seq: group.first().map(|f| f.seq).unwrap_or(0),
            last_seq: group.last().map(|f| f.seq).unwrap_or(0),
            segments,
            gaps,
            avi_url: format!(
                "/api/v1/deliveries/{}/recording.avi?device={dev}",
                rec.delivery_id
            ),
            device_id: dev,
        });
    }
    let frames = frames
        .iter()
        .map(|f| FrameJson {
            url: format!(
                "/api/v1/deliveries/{}/recording/frames/{}/{}",
                rec.delivery_id, f.device_id, f.seq
            ),
            device_id: f.device_id.clone(),
            seq: f.seq,
            capture_ms: f.capture_ms,
            received_ms: f.received_ms,
            recovered: f.recovered,
            sha256: f.sha256.clone(),
            bytes: f.bytes,
        })
        .collect();
    Ok(Json(RecordingJson {
        delivery_id: rec.delivery_id,
        home_id: rec.home_id,
        started_ms: rec.started_ms,
        ends_ms: rec.ends_ms,
        cameras,
        frames,
        truncated,
    }))
}

/// One recorded frame as JPEG; headers carry its capture time, sequence and whether it
/// was recovered.
#[utoipa::path(get, operation_id = "clips_frame", path = "/deliveries/{id}/recording/frames/{device_id}/{seq}", tag = "recordings",
    params(("id" = String, Path), ("device_id" = String, Path), ("seq" = i64, Path)),
    responses((status = 200, content_type = "image/jpeg"), (status = 404, body = ErrorBody)))]
pub async fn frame(
    State(st): State<AppState>,
    p: Principal,
    Path((id, device_id, seq)): Path<(String, String, String)>,
) -> ApiResult<impl IntoResponse> {
    let owner = p.require(Role::Owner)?;
    let rec = st
        .store
        .recording(owner, extract::id(&id)?)
        .await
        .map_err(|_| ApiError::NotFound("recording"))?;
    let seq: i64 = seq.parse().map_err(|_| ApiError::NotFound("frame"))?;
    let f = st
        .store
        .media_frame(owner, &rec.home_id, extract::id(&device_id)?, seq)
        .await
        .map_err(|_| ApiError::NotFound("frame"))?;
    if f.capture_ms < rec.started_ms || rec.ends_ms.is_some_and(|e| f.capture_ms > e) {
        return Err(ApiError::NotFound("frame"));
    }
    let bytes = crate::media::recording::read_frame(&st, &f)
        .await
        .map_err(|_| ApiError::NotFound("frame"))?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/jpeg".to_owned()),
            (header::CACHE_CONTROL, "private, max-age=86400".to_owned()),
            (
                header::HeaderName::from_static("x-capture-ms"),
                f.capture_ms.to_string(),
            ),
            (header::HeaderName::from_static("x-seq"), f.seq.to_string()),
            (
                header::HeaderName::from_static("x-recovered"),
                f.recovered.to_string(),
            ),
        ],
        bytes,
    ))
}

/// The recording of one camera as a Motion-JPEG AVI (plays in VLC). The frame rate is
/// the recording's average; recovered frames are included in sequence order.
#[utoipa::path(get, operation_id = "clips_avi", path = "/deliveries/{id}/recording.avi", tag = "recordings",
    params(("id" = String, Path), AviQuery),
    responses((status = 200, content_type = "video/x-msvideo"), (status = 404, body = ErrorBody)))]
pub async fn avi(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<AviQuery>,
) -> ApiResult<impl IntoResponse> {
    let owner = p.require(Role::Owner)?;
    let (rec, frames) = load(&st, owner, &id).await?;
    let device = match q.device {
        Some(d) => extract::id(&d)?.to_owned(),
        None => {
            let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
            for f in &frames {
                *counts.entry(f.device_id.as_str()).or_default() += 1;
            }
            counts
                .into_iter()
                .max_by_key(|(_, n)| *n)
                .map(|(d, _)| d.to_owned())
                .ok_or(ApiError::NotFound("frames"))?
        }
    };
    let mine: Vec<&MediaFrameRow> = frames
        .iter()
        .filter(|f| f.device_id == device)
        .take(MAX_FRAMES as usize)
        .collect();
    if mine.is_empty() {
        return Err(ApiError::NotFound("frames"));
    }
    // Built in memory: refuse before reading anything if it cannot fit.
    let total: i64 = mine.iter().map(|f| f.bytes.max(0) + 24).sum();
    if total as usize > crate::media::avi::MAX_AVI_BYTES {
        return Err(ApiError::invalid(
            "clip_too_large",
            "the clip is too large for one AVI; download frames individually",
        ));
    }
    let mut jpegs = Vec::with_capacity(mine.len());
    for f in &mine {
        match crate::media::recording::read_frame(&st, f).await {
            Ok(b) => jpegs.push(b),
            Err(e) => tracing::warn!(error = %e, seq = f.seq, "recorded frame missing on disk"),
        }
    }
    let span = mine.last().map(|l| l.capture_ms).unwrap_or(0)
        - mine.first().map(|f| f.capture_ms).unwrap_or(0);
    let fps = if span > 0 {
        ((mine.len() as i64 - 1) * 1000 / span).clamp(1, 30) as u32
    } else {
        5
    };
    let body = tokio::task::spawn_blocking(move || {
        let refs: Vec<&[u8]> = jpegs.iter().map(|j| j.as_slice()).collect();
        crate::media::avi::mjpeg_avi(&refs, fps)
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
    .ok_or_else(|| ApiError::invalid("clip_too_large", "the clip is too large for one AVI"))?;
    Ok((
        [
            (header::CONTENT_TYPE, "video/x-msvideo".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"delivery-{}-{}.avi\"",
                    rec.delivery_id, device
                ),
            ),
        ],
        body,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(seq: i64, recovered: bool) -> MediaFrameRow {
        MediaFrameRow {
            device_id: "d".into(),
            seq,
            home_id: "h".into(),
            delivery_id: "x".into(),
            capture_ms: seq * 200,
            received_ms: 0,
            recovered,
            path: String::new(),
            sha256: String::new(),
            bytes: 1,
        }
    }

    #[test]
    fn segments_split_on_recovered_and_gaps() {
        let v = [
            f(1, false),
            f(2, false),
            f(3, true),
            f(4, true),
            f(7, false),
        ];
        let refs: Vec<&MediaFrameRow> = v.iter().collect();
        let (s, g) = segments_and_gaps(&refs);
        assert_eq!(
            s.iter()
                .map(|s| (s.from_seq, s.to_seq, s.recovered))
                .collect::<Vec<_>>(),
            vec![(1, 2, false), (3, 4, true), (7, 7, false)]
        );
        assert_eq!(
            g,
            vec![GapJson {
                from_seq: 5,
                to_seq: 6
            }]
        );
    }
}
