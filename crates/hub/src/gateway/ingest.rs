//! Verifying and applying one device message.
//!
//! Order of checks: the topic names a device; the bytes parse; the kind is one devices
//! send; the envelope's device is the topic's device; the device is known and not
//! revoked; the signature verifies with its enrolled key; then the sequence rules of
//! the message's space and the clock rules. Every refusal is logged with its reason and
//! counted in `threshold_messages_rejected_total{reason}`; none panics and none replies
//! to the sender.

use crate::gateway::monitor;
use crate::gateway::port::Happening;
use crate::gateway::registry::Statement;
use crate::gateway::verifier;
use crate::state::AppState;
use threshold_core::liveness::{FrameObservation, Observed};
use threshold_core::record_log::Arrival;
use threshold_core::replay::Verdict;
use threshold_proto::body::{self, Ack, DeviceKind, Event, Heartbeat, State};
use threshold_proto::{DeviceId, Kind, SeqSpace, SignedMessage, UnverifiedMessage};
use threshold_store::{DeviceEventRow, GapRow, NewDeviceEvent};

/// Why a message was refused. `reason()` is the metric label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    Decode(&'static str),
    TopicInvalid,
    WrongDirection,
    TopicMismatch,
    UnknownDevice,
    RevokedDevice,
    BadSignature,
    Replay,
    /// Signed before this hub process started, within the span a crash may have left
    /// unsaved: possibly a replay (see `DeviceEntry::restart_fence`).
    BeforeRestart,
    TooOld,
    Clock(&'static str),
    BadBody(String),
    BadFrame(&'static str),
    Storage,
}

impl Rejection {
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::Decode(r) => r,
            Rejection::TopicInvalid => "topic_invalid",
            Rejection::WrongDirection => "wrong_direction",
            Rejection::TopicMismatch => "topic_mismatch",
            Rejection::UnknownDevice => "unknown_device",
            Rejection::RevokedDevice => "revoked_device",
            Rejection::BadSignature => "bad_signature",
            Rejection::Replay => "replay",
            Rejection::BeforeRestart => "before_restart",
            Rejection::TooOld => "too_old",
            Rejection::Clock(r) => r,
            Rejection::BadBody(_) => "bad_body",
            Rejection::BadFrame(r) => r,
            Rejection::Storage => "storage_error",
        }
    }
}

/// What became of an accepted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    Duplicate,
    /// Verified, but another node of the fleet acts for the device's home: a record is
    /// neither stored nor acknowledged here (live messages still count for liveness).
    Elsewhere,
}

/// Handle one publish from the broker.
pub async fn handle(state: &AppState, topic: &str, payload: &[u8]) -> Result<Outcome, Rejection> {
    // Each step boxed while it runs: a message waiting for its signature check (under
    // load, one per connection) then holds a small future, not the space of the
    // largest step (applying it). In the overload benchmark's flood (4 000
    // connections) what the hub held grew 12.1 MB with the steps boxed, 18.9 MB
    // without (performance.md, History 2026-12-05 night).
    let result = match Box::pin(addressed(state, topic, payload)).await {
        Ok((msg, key)) => {
            let verdict = verifier::verify(msg, key).await;
            Box::pin(verified(state, Some(verdict))).await
        }
        Err(r) => Err(r),
    };
    report(state, topic, &result);
    result
}

/// Handle publishes that came together, in their order: their signatures are checked
/// together (`verifier::verify_all`), each is then applied as [`handle`] would. What
/// became of each, in the same order.
pub async fn handle_all<P: AsRef<[u8]>>(
    state: &AppState,
    publishes: &[(String, P)],
) -> Vec<Result<Outcome, Rejection>> {
    let mut checked = Vec::with_capacity(publishes.len());
    let mut to_verify = Vec::with_capacity(publishes.len());
    for (topic, payload) in publishes {
        match addressed(state, topic, payload.as_ref()).await {
            Ok(item) => {
                checked.push(Ok(()));
                to_verify.push(item);
            }
            Err(r) => checked.push(Err(r)),
        }
    }
    let mut verdicts = verifier::verify_all(to_verify).await.into_iter();
    let mut results = Vec::with_capacity(publishes.len());
    for ((topic, _), found) in publishes.iter().zip(checked) {
        let result = match found {
            Ok(()) => verified(state, verdicts.next()).await,
            Err(r) => Err(r),
        };
        report(state, topic, &result);
        results.push(result);
    }
    results
}

/// A message whose signature check came back: applied if it verified.
async fn verified(
    state: &AppState,
    verdict: Option<verifier::Verdict>,
) -> Result<Outcome, Rejection> {
    match verdict {
        Some(Ok(msg)) => apply(state, msg).await,
        _ => Err(Rejection::BadSignature),
    }
}

fn report(state: &AppState, topic: &str, result: &Result<Outcome, Rejection>) {
    if let Err(r) = result {
        state.metrics.reject(r.reason());
        // The topic is attacker-chosen text: log it bounded and escaped.
        let shown: String = topic.chars().take(120).collect();
        tracing::warn!(reason = r.reason(), topic = %shown.escape_debug(), detail = ?r, "device message rejected");
    }
}

/// The checks before the signature: the message parses, goes the right way, comes
/// from the device its topic names, and that device is enrolled and not revoked.
/// Answers the message and the key to check its signature with.
async fn addressed(
    state: &AppState,
    topic: &str,
    payload: &[u8],
) -> Result<(UnverifiedMessage, threshold_proto::PublicKey), Rejection> {
    let topic_device = threshold_proto::topic::parse_uplink(&state.config.mqtt_topic_prefix, topic)
        .ok_or(Rejection::TopicInvalid)?;
    let msg = UnverifiedMessage::decode(payload).map_err(|e| Rejection::Decode(e.reason()))?;
    if !msg.kind.is_uplink() {
        return Err(Rejection::WrongDirection);
    }
    if msg.device != topic_device {
        return Err(Rejection::TopicMismatch);
    }
    let key = lookup_key(state, &msg.device).await?;
    Ok((msg, key))
}

/// A message whose signature verified: the sequence, clock and body rules, then what
/// it means.
async fn apply(state: &AppState, msg: SignedMessage) -> Result<Outcome, Rejection> {
    // Sequence numbers are stored as signed 64-bit integers (docs/protocol.md §6).
    if msg.seq == 0 || msg.seq > i64::MAX as u64 {
        return Err(Rejection::Replay);
    }
    if msg.time_ms <= 0 {
        return Err(Rejection::Clock("clock_skew"));
    }
    // Oversized live messages are refused; an oversized event record is still kept
    // (as malformed, below) so the device can stop re-sending it.
    if msg.kind.seq_space() == SeqSpace::Transport && msg.body.len() > MAX_JSON_BODY {
        return Err(Rejection::BadBody(format!(
            "body of {} bytes exceeds {MAX_JSON_BODY}",
            msg.body.len()
        )));
    }
    match msg.kind.seq_space() {
        SeqSpace::Transport => {
            let (outcome, happenings) = transport(state, &msg)?;
            if happenings.iter().any(Option::is_some) && acts_for(state, &msg.device) {
                for h in happenings.into_iter().flatten() {
                    state.reactions.react(state, h).await;
                }
            }
            Ok(outcome)
        }
        SeqSpace::EventLog => event(state, msg).await,
        SeqSpace::FrameLog => frame(state, msg).await,
        SeqSpace::Downlink => Err(Rejection::WrongDirection),
    }
}

/// Whether this node acts for the device's home (always, for a single hub).
fn acts_for(state: &AppState, device: &DeviceId) -> bool {
    state
        .registry
        .with(device, |e| state.fleet.owns_home(&e.home_id))
        .unwrap_or(false)
}

async fn lookup_key(
    state: &AppState,
    id: &DeviceId,
) -> Result<threshold_proto::PublicKey, Rejection> {
    let found = state.registry.with(id, |e| {
        if e.revoked {
            Err(Rejection::RevokedDevice)
        } else {
            Ok(e.key)
        }
    });
    match found {
        Some(r) => r,
        None => {
            // Enrolled through another hub process since we loaded? Ask the database.
            // Fenced like a restart: that process may have accepted this device's
            // messages without saving their replay marks yet.
            let row = state
                .store
                .device_any(&id.to_hex())
                .await
                .map_err(|_| Rejection::UnknownDevice)?;
            let entry = crate::gateway::loading::fenced_entry(state, &row)
                .await
                .ok()
                .flatten()
                .ok_or(Rejection::UnknownDevice)?;
            let (revoked, key) = (entry.revoked, entry.key);
            state.registry.insert(entry);
            if revoked {
                Err(Rejection::RevokedDevice)
            } else {
                Ok(key)
            }
        }
    }
}

/// hello, heartbeat, state: replay window, clock rules, liveness.
/// A live message applied; what it hands on to the domain: a hello owed from before
/// (see `DeviceEntry::greeting_owed`), then the message's own happening.
fn transport(
    state: &AppState,
    msg: &SignedMessage,
) -> Result<(Outcome, [Option<Happening<'static>>; 2]), Rejection> {
    let now = state.clock.now_ms();
    let mut cfg = state.config.liveness();
    cfg.ingest_behind = state.load.behind();
    let parsed = parse_transport_body(msg)?;
    let kind_name = msg.kind.name();
    let is_hello = matches!(parsed, TransportBody::Hello(_));
    let result = state.registry.with(&msg.device, |e| {
        if e.fence_device_ms.is_some_and(|f| msg.time_ms <= f) {
            // A node that just learnt of a device (a fleet peer enrolled it) fences it
            // like a restart: its first hello lands here, and a lock would otherwise
            // never hear its cameras.
            e.greeting_owed |= is_hello;
            return Err(Rejection::BeforeRestart);
        }
        match e.replay.check(msg.seq) {
            Verdict::New => {}
            Verdict::Duplicate => return Err(Rejection::Replay),
            Verdict::TooOld => return Err(Rejection::TooOld),
        }
        if !kind_fits(&parsed, e.kind) {
            return Err(Rejection::BadBody(format!(
                "a {} does not send {}",
                e.kind.as_str(),
                kind_name
            )));
        }
        if let TransportBody::Hello(k) = &parsed {
            if *k != e.kind {
                return Err(Rejection::BadBody(format!(
                    "hello says {}, enrolled as {}",
                    k.as_str(),
                    e.kind.as_str()
                )));
            }
        }
        let lag = e.liveness.lag(msg.time_ms, now);
        let observed = match (&parsed, e.kind) {
            (TransportBody::Heartbeat(hb), DeviceKind::Camera) => {
                let frame = hb.frame.as_ref().map(|f| FrameObservation {
                    seq: f.seq,
                    capture_ms: f.time_ms,
                    thumb: parse_thumb(&f.thumb),
                });
                e.liveness
                    .observe_camera(now, msg.time_ms, frame.as_ref(), &cfg)
            }
            (TransportBody::Hello(_), DeviceKind::Camera) => {
                e.liveness.observe_camera(now, msg.time_ms, None, &cfg)
            }
            _ => e.liveness.observe_report(now, msg.time_ms, &cfg),
        };
        let observed = match observed {
            Ok(o) => o,
            Err(c) => {
                e.greeting_owed |= is_hello;
                return Err(Rejection::Clock(c.reason()));
            }
        };
        e.replay.accept(msg.seq);
        e.last_lag_ms = lag;
        let slot = threshold_core::ingest::slot_of(now);
        let judged = lag.is_some() && std::mem::replace(&mut e.lag_slot, slot) != slot;
        let owed = std::mem::take(&mut e.greeting_owed) && !is_hello;
        if let TransportBody::Heartbeat(hb) = &parsed {
            // The camera's own signed word that it is watching, which a lock checks: any
            // heartbeat announcing a frame captured within the live window (while the
            // camera streams, its frame records may announce each frame first, so the
            // heartbeat is not "fresh" news, but it is still the newest statement).
            if let Some(f) = &hb.frame {
                if observed == Observed::Fresh || e.liveness.captured_recently(f.time_ms, now, &cfg)
                {
                    e.statement = Some(Statement {
                        bytes: msg.as_bytes().into(),
                        capture_ms: f.time_ms,
                    });
                }
            }
        }
        let mut changed = false;
        if let TransportBody::State(s) = &parsed {
            changed = e
                .last_state
                .as_ref()
                .is_none_or(|p| (p.bolt, p.door, p.obstructed) != (s.bolt, s.door, s.obstructed));
            e.last_state = Some(s.clone());
            e.last_state_at = Some(now);
            e.last_state_device_ms = Some(msg.time_ms);
        }
        Ok((
            Outcome::Accepted,
            changed,
            lag.map(|l| (l, judged)),
            owed.then_some(e.kind),
        ))
    });
    let (outcome, changed, lag, owed) = result.ok_or(Rejection::UnknownDevice)??;
    if let Some((lag, judged)) = lag {
        state.load.record(now, lag, judged);
        state.metrics.ingest_lag.observe(lag as f64 / 1000.0);
    }
    state.metrics.accept(kind_name);
    monitor::on_fresh(state, &msg.device);
    let happening = match parsed {
        TransportBody::State(report) => Some(Happening::StateReport {
            device: msg.device,
            report,
            changed,
        }),
        TransportBody::Hello(kind) => Some(Happening::Hello {
            device: msg.device,
            kind,
        }),
        TransportBody::Heartbeat(_) => None,
    };
    let greeting = owed.map(|kind| Happening::Hello {
        device: msg.device,
        kind,
    });
    Ok((outcome, [greeting, happening]))
}

/// What an accepted live message asks of the rest of the hub, done after the
/// registry is released.
enum TransportBody {
    Hello(DeviceKind),
    Heartbeat(Heartbeat),
    State(State),
}

fn parse_transport_body(msg: &SignedMessage) -> Result<TransportBody, Rejection> {
    let bad = |e: serde_json::Error| Rejection::BadBody(e.to_string());
    Ok(match msg.kind {
        Kind::Hello => {
            let h: body::Hello = msg.json().map_err(bad)?;
            TransportBody::Hello(h.kind)
        }
        Kind::Heartbeat => TransportBody::Heartbeat(msg.json().map_err(bad)?),
        _ => {
            let st: State = msg.json().map_err(bad)?;
            if st.battery_pct.is_some_and(|b| b > 100) {
                return Err(Rejection::BadBody("battery_pct above 100".into()));
            }
            TransportBody::State(st)
        }
    })
}

/// Which live kinds each device kind sends: cameras (and Wi-Fi sensors) heartbeats,
/// locks and contact sensors state reports; everyone says hello.
fn kind_fits(body: &TransportBody, device: DeviceKind) -> bool {
    match body {
        TransportBody::Hello(_) => true,
        TransportBody::Heartbeat(_) => {
            matches!(device, DeviceKind::Camera | DeviceKind::WifiSensor)
        }
        TransportBody::State(_) => device.reports_state(),
    }
}

/// Largest JSON body of a non-frame message (docs/protocol.md §9.1).
pub const MAX_JSON_BODY: usize = 64 * 1024;

/// Event types are lowercase snake_case identifiers of at most 64 characters.
fn valid_event_type(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 64
        && t.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn parse_thumb(hex_thumb: &str) -> Option<[u8; 64]> {
    let mut t = [0u8; 64];
    hex::decode_to_slice(hex_thumb, &mut t).ok().map(|_| t)
}

/// A durable event record: store it (idempotently), track gaps, acknowledge.
async fn event(state: &AppState, msg: SignedMessage) -> Result<Outcome, Rejection> {
    if !acts_for(state, &msg.device) {
        // The node acting for the home stores and acknowledges it (or, while its
        // partition changes hands, the device sends it again).
        return Ok(Outcome::Elsewhere);
    }
    let now = state.clock.now_ms();
    let arrival = state
        .registry
        .with(&msg.device, |e| e.events.classify(msg.seq))
        .ok_or(Rejection::UnknownDevice)?;
    if msg.seq == 0 {
        return Err(Rejection::Replay);
    }
    if arrival == Arrival::Duplicate {
        send_ack(
            state,
            msg.device,
            Ack {
                events: vec![(msg.seq, msg.seq)],
                frames: vec![],
            },
        )
        .await;
        state.metrics.duplicate("event");
        return Ok(Outcome::Duplicate);
    }
    // A record whose body cannot be read is still the device's signed word: keep it
    // as "malformed" rather than lose it, and count the rejection of its contents.
    let parsed = if msg.body.len() > MAX_JSON_BODY {
        serde_json::from_slice::<Event>(b"{\"type\":\"Oversized\"}")
    } else {
        msg.json::<Event>()
    };
    let (event_type, detail) = match parsed {
        Ok(ev)
            if valid_event_type(&ev.event_type)
                && (ev.detail.is_object() || ev.detail.is_null()) =>
        {
            let detail = if ev.detail.is_null() {
                "{}".to_owned()
            } else {
                ev.detail.to_string()
            };
            (ev.event_type, detail)
        }
        Ok(ev) => {
            state.metrics.reject("bad_body");
            tracing::warn!(device = %msg.device, seq = msg.seq, event_type = %bounded(&ev.event_type, 64).escape_debug(), "event record with an invalid type or detail kept as malformed");
            ("malformed".to_owned(), "{}".to_owned())
        }
        Err(e) => {
            state.metrics.reject("bad_body");
            tracing::warn!(device = %msg.device, seq = msg.seq, error = %e, "event record with unreadable body kept as malformed");
            ("malformed".to_owned(), "{}".to_owned())
        }
    };
    let row = DeviceEventRow {
        device_id: msg.device.to_hex(),
        seq: msg.seq as i64,
        device_time_ms: msg.time_ms,
        received_ms: now,
        event_type: event_type.clone(),
        detail: detail.clone(),
        raw: msg.as_bytes().to_vec(),
    };
    // What the device's log becomes with this record (events of one device are
    // handled one at a time, so nothing changes it meanwhile), stored in the same
    // commit as the record; the in-memory log follows only once that is durable.
    let (arrival, gaps) = state
        .registry
        .with(&msg.device, |e| {
            let mut log = e.events.clone();
            let a = log.record(msg.seq);
            (a, log.missing().ranges().to_vec())
        })
        .ok_or(Rejection::UnknownDevice)?;
    let gap_rows: Option<Vec<GapRow>> = (!matches!(arrival, Arrival::InOrder)).then(|| {
        gaps.iter()
            .map(|&(a, b)| GapRow {
                from_seq: a as i64,
                to_seq: b as i64,
                opened_ms: now,
            })
            .collect()
    });
    let (audit, timeline) =
        state
            .reactions
            .event_records(state, &msg, &event_type, &detail, &arrival);
    let new = state
        .journal
        .write_event(
            NewDeviceEvent {
                row,
                gaps: gap_rows,
            },
            audit,
            timeline,
        )
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "could not store device event");
            Rejection::Storage
        })?;
    // Only now, with the record durable, update the log and acknowledge.
    state
        .registry
        .with(&msg.device, |e| e.events.record(msg.seq))
        .ok_or(Rejection::UnknownDevice)?;
    send_ack(
        state,
        msg.device,
        Ack {
            events: vec![(msg.seq, msg.seq)],
            frames: vec![],
        },
    )
    .await;
    if !new {
        // Stored before (and what it causes with it): acknowledged again, not redone.
        state.metrics.duplicate("event");
        return Ok(Outcome::Duplicate);
    }
    state.metrics.accept("event");
    state
        .reactions
        .react(
            state,
            Happening::Event {
                msg: &msg,
                event_type: &event_type,
                detail: &detail,
                arrival: &arrival,
            },
        )
        .await;
    Ok(Outcome::Accepted)
}

/// A frame record: verify the JPEG, hand it to live viewers and the recorder, ack.
async fn frame(state: &AppState, msg: SignedMessage) -> Result<Outcome, Rejection> {
    let now = state.clock.now_ms();
    let (header, jpeg) =
        body::decode_frame_body(&msg.body).map_err(|e| Rejection::BadBody(e.to_string()))?;
    crate::media::check_jpeg(jpeg).map_err(Rejection::BadFrame)?;
    if crate::media::sha256_hex(jpeg) != header.sha256 {
        return Err(Rejection::BadFrame("frame_digest_mismatch"));
    }
    let mut cfg = state.config.liveness();
    cfg.ingest_behind = state.load.behind();
    let thumb = parse_thumb(&header.thumb);
    let res = state.registry.with(&msg.device, |e| {
        if e.kind != DeviceKind::Camera {
            return Err(Rejection::WrongDirection);
        }
        let arrival = e.frames.classify(msg.seq);
        if arrival == Arrival::Duplicate {
            return Ok((arrival, false));
        }
        // A frame only counts toward liveness if it is newer than anything announced
        // and its capture time is recent; backlog frames are history, not liveness.
        // A frame older than the newest one announced (by heartbeat or frame) is late:
        // backlog uploaded after an outage, even if captured only moments ago.
        let late = e
            .liveness
            .newest_frame()
            .is_some_and(|(newest, _)| msg.seq < newest);
        // Captured within the live window, on the hub's clock (the camera's capture
        // time mapped with its estimated clock offset).
        let live = !late && e.liveness.captured_recently(msg.time_ms, now, &cfg);
        if live {
            let obs = FrameObservation {
                seq: msg.seq,
                capture_ms: msg.time_ms,
                thumb,
            };
            let _ = e.liveness.observe_frame_record(
                now,
                msg.time_ms.min(now + cfg.max_clock_skew_ms),
                &obs,
                &cfg,
            );
        }
        Ok((arrival, live))
    });
    let (arrival, live) = res.ok_or(Rejection::UnknownDevice)??;
    if arrival == Arrival::Duplicate {
        send_ack(
            state,
            msg.device,
            Ack {
                events: vec![],
                frames: vec![(msg.seq, msg.seq)],
            },
        )
        .await;
        return Ok(Outcome::Duplicate);
    }
    if !acts_for(state, &msg.device) {
        // Counted for liveness above and shown to this node's live viewers; filed and
        // acknowledged by the acting node.
        if live {
            crate::media::publish_live(state, &msg, jpeg);
            monitor::on_fresh(state, &msg.device);
        }
        return Ok(Outcome::Elsewhere);
    }
    // Recovered: history (captured outside the live window), or late (a newer frame
    // already arrived, so this one fills a gap: backlog after an outage).
    let recovered = !live || arrival == Arrival::FilledGap;
    if crate::media::on_frame(state, &msg, &header, jpeg, recovered)
        .await
        .is_err()
    {
        // Not recorded as seen and not acknowledged: the camera keeps it in its outbox
        // and its next attempt is treated as new.
        return Err(Rejection::Storage);
    }
    state
        .registry
        .with(&msg.device, |e| e.frames.record(msg.seq));
    send_ack(
        state,
        msg.device,
        Ack {
            events: vec![],
            frames: vec![(msg.seq, msg.seq)],
        },
    )
    .await;
    state.metrics.accept("frame");
    if live {
        monitor::on_fresh(state, &msg.device);
    }
    Ok(Outcome::Accepted)
}

async fn send_ack(state: &AppState, device: DeviceId, ack: Ack) {
    state
        .downlink
        .send(
            &state.hub_key,
            device,
            Kind::Ack,
            &ack,
            state.clock.now_ms(),
        )
        .await;
}

pub use crate::text::bounded;
