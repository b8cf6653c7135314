//! Law 7, "name the attack": Wi-Fi attack evidence from devices, tied to camera outages.
//!
//! A camera (from its own wpa_supplicant link events) or a Wi-Fi sensor (from a
//! monitor-mode capture) records each attack it detects as a signed `wifi_attack` event
//! (docs/protocol.md §9.5). The evidence usually arrives *after* the outage it explains:
//! the attack cut the camera off, and its outbox uploads the record on reconnect. So
//! when one arrives the hub
//!
//! 1. stores it as attack evidence (`wifi_attacks`, merging the `ongoing` report with the
//!    final one: same device, kind and start);
//! 2. looks for the camera outage it overlaps: the camera's liveness history on the
//!    timeline (LIVE -> STALE/OFFLINE ... -> LIVE), with a few seconds of slack either
//!    side;
//! 3. adds a `wifi_attack` timeline entry and raises a `wifi_attack` alert, critical if the
//!    outage or the attack fell in a delivery session, a warning otherwise, whose message
//!    names the attack: "Camera Hall offline: Wi-Fi deauthentication attack (...)";
//! 4. explains the outage's earlier alerts (`camera_lost_during_delivery`,
//!    `device_offline`): their evidence gets an `explanation` object and their message a
//!    "Cause: ..." sentence, and the owner's app receives `alert.explained`.
//!
//! Everything in the detail is device-supplied text: numbers are checked, strings are
//! bounded and stripped of control characters, and nothing here panics on bad input.

use crate::events::HubEvent;
use crate::gateway::transition::{Change, Transition};
use crate::state::AppState;
use serde_json::{json, Map, Value};
use threshold_core::alert::AlertKind;
use threshold_proto::body::DeviceKind;
use threshold_proto::SignedMessage;
use threshold_store::{AlertRow, WifiAttackRow};

/// Slack around both the attack and the outage when matching them (device and hub
/// clocks differ; the hub notices an outage up to a live window late).
pub const MATCH_SLACK_MS: i64 = 5_000;
// How far back before an attack the camera's liveness history is read.
use crate::wifi_recent::LOOKBACK_MS;
/// Alerts that report a camera outage and can be explained by an attack.
pub const OUTAGE_ALERT_KINDS: [&str; 2] = ["camera_lost_during_delivery", "device_offline"];

/// A `wifi_attack` detail, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Attack {
    /// `link` or `monitor`.
    pub source: String,
    pub kind: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub ongoing: bool,
    pub transmitter: Option<String>,
    pub receiver: Option<String>,
    pub bssid: Option<String>,
    pub target: Option<String>,
    pub broadcast: Option<bool>,
    /// (reason code, count), most frequent first.
    pub reason_codes: Vec<(u16, u64)>,
    pub frames: Option<u64>,
    pub peak_rate_per_s: Option<f64>,
    pub disconnects: Option<u64>,
    pub quick_reconnects: Option<u64>,
    pub beacon_losses: Option<u64>,
    pub confidence: f64,
    pub evidence: Vec<String>,
}

/// Device text: at most `max` characters, no control characters.
fn text(v: Option<&Value>, max: usize) -> Option<String> {
    let s: String = v?
        .as_str()?
        .chars()
        .filter(|c| !c.is_control())
        .take(max)
        .collect();
    (!s.is_empty()).then_some(s)
}

fn count(v: Option<&Value>) -> Option<u64> {
    v?.as_u64()
}

fn finite(v: Option<&Value>) -> Option<f64> {
    v?.as_f64().filter(|x| x.is_finite())
}

/// Unix seconds (float) to milliseconds; only plausible times (1970..2100).
fn secs_to_ms(v: Option<&Value>) -> Option<i64> {
    let s = finite(v)?;
    (0.0..4_102_444_800.0)
        .contains(&s)
        .then(|| (s * 1000.0).round() as i64)
}

impl Attack {
    /// Check a `wifi_attack` detail. Errors name what is wrong.
    pub fn parse(d: &Value) -> Result<Attack, &'static str> {
        let o = d.as_object().ok_or("detail is not an object")?;
        let kind = text(o.get("kind"), 32).ok_or("kind missing")?;
        let source = match text(o.get("source"), 16).as_deref() {
            Some("monitor") => "monitor",
            Some("link") => "link",
            Some(_) => return Err("unknown source"),
            // older senders: a frame count means a capture
            None if o.contains_key("frames") => "monitor",
            None => "link",
        }
        .to_owned();
        let start_ms = secs_to_ms(o.get("start")).ok_or("start missing or not a time")?;
        let end_ms = secs_to_ms(o.get("end"))
            .ok_or("end missing or not a time")?
            .max(start_ms);
        if end_ms - start_ms > 7 * 86_400_000 {
            return Err("attack longer than a week");
        }
        let mut reason_codes: Vec<(u16, u64)> = o
            .get("reason_codes")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.parse::<u16>().ok()?, v.as_u64()?)))
                    .take(64)
                    .collect()
            })
            .unwrap_or_default();
        reason_codes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let evidence = o
            .get("evidence")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|e| text(Some(e), 300))
                    .take(16)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Attack {
            source,
            kind,
            start_ms,
            end_ms,
            ongoing: o.get("ongoing").and_then(Value::as_bool).unwrap_or(false),
            transmitter: text(o.get("transmitter"), 64),
            receiver: text(o.get("receiver"), 64),
            bssid: text(o.get("bssid"), 64),
            target: text(o.get("target"), 64),
            broadcast: o.get("broadcast").and_then(Value::as_bool),
            reason_codes,
            frames: count(o.get("frames")),
            peak_rate_per_s: finite(o.get("peak_rate_per_s")).filter(|r| *r >= 0.0),
            disconnects: count(o.get("disconnects")),
            quick_reconnects: count(o.get("quick_reconnects")),
            beacon_losses: count(o.get("beacon_losses")),
            confidence: finite(o.get("confidence")).unwrap_or(0.0).clamp(0.0, 1.0),
            evidence,
        })
    }

    /// What the owner reads: "Wi-Fi deauthentication attack".
    pub fn label(&self) -> &'static str {
        match self.kind.as_str() {
            "deauth" | "deauth_attack" => "Wi-Fi deauthentication attack",
            "disassoc" => "Wi-Fi disassociation attack",
            "both" => "Wi-Fi deauthentication and disassociation attack",
            "jamming_suspected" | "jamming" => "suspected Wi-Fi jamming",
            _ => "Wi-Fi attack",
        }
    }

    /// The particulars: "transmitter aa:.., reason 7, 128 frames at 40/s, 21:03:05–21:03:25 UTC".
    pub fn particulars(&self) -> String {
        let mut parts = Vec::new();
        if let Some(t) = &self.transmitter {
            parts.push(format!("transmitter {t}"));
        } else if let Some(b) = &self.bssid {
            parts.push(format!("network {b}"));
        }
        if let Some(t) = self
            .target
            .as_ref()
            .filter(|_| self.broadcast == Some(false))
        {
            parts.push(format!("target {t}"));
        } else if self.broadcast == Some(true) {
            parts.push("broadcast".into());
        }
        if !self.reason_codes.is_empty() {
            let codes: Vec<String> = self
                .reason_codes
                .iter()
                .take(3)
                .map(|(c, _)| c.to_string())
                .collect();
            let word = if codes.len() == 1 {
                "reason"
            } else {
                "reasons"
            };
            parts.push(format!("{word} {}", codes.join(", ")));
        }
        match (self.frames, self.peak_rate_per_s) {
            (Some(f), Some(r)) => parts.push(format!("{f} frames at {r:.0}/s")),
            (Some(f), None) => parts.push(format!("{f} frames")),
            _ => {}
        }
        if let Some(d) = self.disconnects.filter(|d| *d > 0) {
            let what = if self.kind == "jamming_suspected" {
                "disconnects"
            } else {
                "forced disconnects"
            };
            parts.push(format!("{d} {what}"));
        }
        if let Some(b) = self.beacon_losses.filter(|b| *b > 0) {
            parts.push(format!("{b} beacon losses"));
        }
        parts.push(format!(
            "{}–{} UTC{}",
            hms(self.start_ms),
            hms(self.end_ms),
            if self.ongoing { ", still going on" } else { "" }
        ));
        parts.join(", ")
    }
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// HH:MM:SS (UTC) of a Unix time in milliseconds.
pub fn hms(ms: i64) -> String {
    let s = ms.div_euclid(1000).rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", s / 3600, (s % 3600) / 60, s % 60)
}

/// A camera outage reconstructed from its liveness history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outage {
    pub camera_id: String,
    pub camera_name: String,
    /// The last fresh evidence before the camera stopped being live.
    pub from_ms: i64,
    /// When it was live again; `None` if it still was not when we looked.
    pub to_ms: Option<i64>,
}

/// Outages in a device's liveness history (`liveness` timeline entries, oldest first:
/// `(time_ms, detail)`).
pub fn outages(history: &[(i64, Value)]) -> Vec<(i64, Option<i64>)> {
    let mut out = Vec::new();
    let mut open: Option<i64> = None;
    for (t, d) in history {
        let from = d.get("from").and_then(Value::as_str).unwrap_or("");
        let to = d.get("to").and_then(Value::as_str).unwrap_or("");
        if from == "live" && to != "live" && open.is_none() {
            let since = d
                .get("last_fresh_ms")
                .and_then(Value::as_i64)
                .filter(|f| f <= t)
                .unwrap_or(*t);
            open = Some(since);
        } else if to == "live" {
            if let Some(f) = open.take() {
                out.push((f, Some(*t)));
            }
        }
    }
    if let Some(f) = open {
        out.push((f, None));
    }
    out
}

fn overlaps(a: &Attack, from_ms: i64, to_ms: Option<i64>, now: i64) -> bool {
    let to = to_ms.unwrap_or(now);
    from_ms - MATCH_SLACK_MS <= a.end_ms && to + MATCH_SLACK_MS >= a.start_ms
}

/// The camera outage the attack overlaps, if any: the reporting camera's own, or, for a
/// Wi-Fi sensor, any camera's in the home.
async fn find_outage(
    state: &AppState,
    home_id: &str,
    cameras: &[(String, String)],
    a: &Attack,
) -> Option<Outage> {
    let now = state.clock.now_ms();
    for (cam, name) in cameras {
        let rows = match state
            .store
            .device_timeline_between(home_id, cam, "liveness", a.start_ms - LOOKBACK_MS, now)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "could not read liveness history");
                continue;
            }
        };
        let hist: Vec<(i64, Value)> = rows
            .iter()
            .map(|r| {
                (
                    r.time_ms,
                    serde_json::from_str(&r.detail).unwrap_or(Value::Null),
                )
            })
            .collect();
        if let Some((from_ms, to_ms)) = outages(&hist)
            .into_iter()
            .find(|(f, t)| overlaps(a, *f, *t, now))
        {
            return Some(Outage {
                camera_id: cam.clone(),
                camera_name: name.clone(),
                from_ms,
                to_ms,
            });
        }
    }
    None
}

/// The alerts that reported this outage.
async fn outage_alerts(state: &AppState, home_id: &str, o: &Outage) -> Vec<AlertRow> {
    let now = state.clock.now_ms();
    let until = o
        .to_ms
        .unwrap_or(now)
        .max(o.from_ms + state.config.offline_grace_ms);
    match state
        .store
        .home_alerts_between(home_id, o.from_ms - MATCH_SLACK_MS, until + MATCH_SLACK_MS)
        .await
    {
        Ok(rows) => rows
            .into_iter()
            .filter(|r| {
                OUTAGE_ALERT_KINDS.contains(&r.kind.as_str())
                    && r.device_id.as_deref() == Some(o.camera_id.as_str())
            })
            .collect(),
        Err(e) => {
            tracing::error!(error = %e, "could not read alerts");
            Vec::new()
        }
    }
}

/// A delivery session the attack or its outage fell in.
async fn delivery_of(state: &AppState, home_id: &str, explained: &[AlertRow]) -> Option<String> {
    if let Some(d) = explained.iter().find_map(|a| a.delivery_id.clone()) {
        return Some(d);
    }
    let active = state.store.active_deliveries_of_home(home_id).await.ok()?;
    active.into_iter().next().map(|d| d.id)
}

/// Hook for `reactions::on_device_event`: act on `wifi_attack` events, ignore the rest.
pub async fn on_device_event(
    state: &AppState,
    msg: &SignedMessage,
    event_type: &str,
    detail: &str,
) {
    if event_type != "wifi_attack" {
        return;
    }
    let Some((home_id, owner_id, name, kind)) = state.registry.identity(&msg.device) else {
        return;
    };
    let device = msg.device.to_hex();
    let value: Value = serde_json::from_str(detail).unwrap_or(Value::Null);
    let attack = match Attack::parse(&value) {
        Ok(a) => a,
        Err(why) => {
            state.metrics.reject("bad_wifi_attack");
            tracing::warn!(device = %device, seq = msg.seq, why, "wifi_attack event with unusable detail (kept as received)");
            return;
        }
    };
    let reporter = Reporter {
        device,
        name,
        kind,
        home_id,
        owner_id,
    };
    if let Err(e) = apply(state, &reporter, msg.seq as i64, &attack, detail, false).await {
        tracing::error!(error = %e, "could not store Wi-Fi attack evidence");
    }
}

/// Hook for `reactions::on_transitions`, after a change's own effects: a camera outage that began
/// (or was reported, or ended) after the evidence arrived is tied to the attacks of the
/// last minutes now, e.g. a Wi-Fi sensor's report followed by `device_offline`.
pub async fn on_transition(state: &AppState, t: &Transition) {
    if t.kind != DeviceKind::Camera
        || !matches!(t.change, Change::Liveness { .. } | Change::OfflineNotice)
    {
        return;
    }
    let since = state.clock.now_ms() - LOOKBACK_MS;
    if !state.wifi_attacks.any_since(&t.home_id, since) {
        return;
    }
    let rows = match state.store.home_wifi_attacks_since(&t.home_id, since).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "could not read Wi-Fi attacks");
            return;
        }
    };
    for row in rows {
        let Ok(id) = row.device_id.parse::<threshold_proto::DeviceId>() else {
            continue;
        };
        let Some((name, kind, owner_id)) = state
            .registry
            .with(&id, |e| (e.name.clone(), e.kind, e.owner_id.clone()))
        else {
            continue;
        };
        let value: Value = serde_json::from_str(&row.detail).unwrap_or(Value::Null);
        let Ok(attack) = Attack::parse(&value) else {
            continue;
        };
        let reporter = Reporter {
            device: row.device_id.clone(),
            name,
            kind,
            home_id: row.home_id.clone(),
            owner_id,
        };
        if let Err(e) = apply(state, &reporter, row.seq, &attack, &row.detail, true).await {
            tracing::error!(error = %e, "could not update Wi-Fi attack evidence");
        }
    }
}

struct Reporter {
    device: String,
    name: String,
    kind: DeviceKind,
    home_id: String,
    owner_id: String,
}

async fn apply(
    state: &AppState,
    r: &Reporter,
    seq: i64,
    a: &Attack,
    raw_detail: &str,
    again: bool,
) -> Result<(), threshold_store::StoreError> {
    let now = state.clock.now_ms();
    state.wifi_attacks.note(&r.home_id, a.start_ms);
    let existing = state
        .store
        .wifi_attack_by_key(&r.device, &a.kind, a.start_ms)
        .await?;
    // Never let an older report (or a re-match of one) overwrite a newer one.
    if existing
        .as_ref()
        .is_some_and(|e| e.seq > seq || (e.seq == seq && !again))
    {
        return Ok(()); // an older report of an attack we already know better
    }
    // Which cameras could this attack have cut off?
    let cameras: Vec<(String, String)> = if r.kind == DeviceKind::Camera {
        vec![(r.device.clone(), r.name.clone())]
    } else {
        let mut v = Vec::new();
        state.registry.for_home(&r.home_id, |e| {
            if e.kind == DeviceKind::Camera && !e.revoked {
                v.push((e.id.to_hex(), e.name.clone()));
            }
        });
        v
    };
    let outage = find_outage(state, &r.home_id, &cameras, a).await;
    let explained = match &outage {
        Some(o) => outage_alerts(state, &r.home_id, o).await,
        None => Vec::new(),
    };
    let delivery_id = delivery_of(state, &r.home_id, &explained).await;
    let severity = AlertKind::WifiAttack {
        during_delivery: delivery_id.is_some(),
    }
    .severity()
    .as_str();
    let particulars = a.particulars();
    let message = match &outage {
        Some(o) => format!(
            "Camera {} offline: {} ({particulars})",
            o.camera_name,
            a.label()
        ),
        None => format!(
            "{} detected by {} ({particulars})",
            capitalized(a.label()),
            r.name
        ),
    };
    let attack_id = existing
        .as_ref()
        .map(|e| e.id.clone())
        .unwrap_or_else(threshold_store::new_id);
    let outage_json = outage.as_ref().map(|o| {
        json!({"camera_id": o.camera_id, "camera_name": o.camera_name, "from_ms": o.from_ms, "to_ms": o.to_ms})
    });
    let explained_ids: Vec<String> = explained.iter().map(|e| e.id.clone()).collect();
    let detail_json: Value = serde_json::from_str(raw_detail).unwrap_or(Value::Null);
    let evidence = json!({
        "wifi_attack_id": attack_id,
        "reporter": {"device_id": r.device, "name": r.name, "kind": r.kind.as_str()},
        "source": a.source,
        "kind": a.kind,
        "start_ms": a.start_ms,
        "end_ms": a.end_ms,
        "ongoing": a.ongoing,
        "confidence": a.confidence,
        "evidence": a.evidence,
        "outage": outage_json,
        "explains_alert_ids": explained_ids,
        "report": detail_json,
    });

    // The alert naming the attack: raised once, then kept up to date.
    let alert_device = outage
        .as_ref()
        .map(|o| o.camera_id.clone())
        .unwrap_or_else(|| r.device.clone());
    let mut alert_id = existing.as_ref().and_then(|e| e.alert_id.clone());
    match &alert_id {
        Some(id) => {
            if let Err(e) = state
                .store
                .amend_alert(id, &message, &evidence.to_string())
                .await
            {
                tracing::error!(error = %e, "could not update the Wi-Fi attack alert");
            }
            publish_alert_update(state, &r.owner_id, id).await;
        }
        None => {
            alert_id = crate::alerts::raise(
                state,
                &r.owner_id,
                crate::alerts::Alert {
                    kind: AlertKind::WifiAttack {
                        during_delivery: delivery_id.is_some(),
                    },
                    home_id: &r.home_id,
                    device_id: Some(&alert_device),
                    delivery_id: delivery_id.as_deref(),
                    message: &message,
                    evidence: &evidence.to_string(),
                    cause_key: Some(&format!("wifi_attack:{attack_id}")),
                },
            )
            .await
            .map(|row| row.id);
        }
    }

    // Explain the outage's earlier alerts.
    let explanation = json!({
        "cause": a.label(),
        "particulars": particulars,
        "wifi_attack_id": attack_id,
        "alert_id": alert_id,
        "source": a.source,
        "kind": a.kind,
        "start_ms": a.start_ms,
        "end_ms": a.end_ms,
        "confidence": a.confidence,
    });
    for al in &explained {
        explain_alert(state, &r.owner_id, al, &explanation).await;
    }

    // The timeline entry, at the attack's start.
    let tl_detail = json!({
        "message": message,
        "cause": a.label(),
        "particulars": particulars,
        "wifi_attack_id": attack_id,
        "alert_id": alert_id,
        "severity": severity,
        "reporter": {"device_id": r.device, "name": r.name, "kind": r.kind.as_str()},
        "source": a.source,
        "kind": a.kind,
        "start_ms": a.start_ms,
        "end_ms": a.end_ms,
        "ongoing": a.ongoing,
        "outage": outage_json,
        "explains_alert_ids": explained.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
        "report": detail_json,
    })
    .to_string();
    let mut timeline_id = existing.as_ref().and_then(|e| e.timeline_id.clone());
    match &timeline_id {
        Some(id) => {
            if let Err(e) = state.store.set_timeline_detail(id, &tl_detail).await {
                tracing::error!(error = %e, "could not update the Wi-Fi attack timeline entry");
            }
        }
        None => {
            timeline_id = state
                .store
                .add_timeline(
                    &r.home_id,
                    Some(&alert_device),
                    delivery_id.as_deref(),
                    a.start_ms,
                    "wifi_attack",
                    &tl_detail,
                )
                .await
                .map_err(|e| tracing::error!(error = %e, "could not store timeline entry"))
                .ok();
        }
    }
    state.bus.publish(HubEvent {
        owner_id: r.owner_id.clone(),
        courier_id: None,
        home_id: r.home_id.clone(),
        event_type: "wifi_attack".into(),
        time_ms: a.start_ms,
        data: serde_json::from_str(&tl_detail).unwrap_or(Value::Null),
    });

    // The evidence row.
    let mut explained_all: Vec<String> = existing
        .as_ref()
        .and_then(|e| serde_json::from_str::<Vec<String>>(&e.explained_alert_ids).ok())
        .unwrap_or_default();
    for id in explained.iter().map(|e| &e.id) {
        if !explained_all.contains(id) {
            explained_all.push(id.clone());
        }
    }
    let row = WifiAttackRow {
        id: attack_id,
        home_id: r.home_id.clone(),
        device_id: r.device.clone(),
        seq,
        source: a.source.clone(),
        kind: a.kind.clone(),
        start_ms: a.start_ms,
        end_ms: a.end_ms,
        ongoing: a.ongoing,
        detail: raw_detail.to_owned(),
        camera_id: outage.as_ref().map(|o| o.camera_id.clone()),
        outage_from_ms: outage.as_ref().map(|o| o.from_ms),
        outage_to_ms: outage.as_ref().and_then(|o| o.to_ms),
        delivery_id,
        alert_id,
        timeline_id,
        explained_alert_ids: json!(explained_all).to_string(),
        created_ms: existing.as_ref().map(|e| e.created_ms).unwrap_or(now),
        updated_ms: now,
    };
    if existing.is_some() {
        state.store.update_wifi_attack(&row).await?;
    } else if !state.store.insert_wifi_attack(&row).await? {
        // stored concurrently by another report of the same attack
        state.store.update_wifi_attack(&row).await?;
    } else {
        crate::audit::record(
            state,
            "wifi_attack",
            &format!("device:{}", r.device),
            &format!("home:{}", r.home_id),
            json!({"wifi_attack_id": row.id, "kind": row.kind, "source": row.source, "start_ms": row.start_ms, "end_ms": row.end_ms, "camera_id": row.camera_id, "alert_id": row.alert_id}),
        )
        .await;
    }
    Ok(())
}

/// Add (or refresh) the attack as the explanation of an earlier outage alert.
async fn explain_alert(state: &AppState, owner_id: &str, al: &AlertRow, explanation: &Value) {
    let mut ev: Map<String, Value> = serde_json::from_str(&al.evidence).unwrap_or_default();
    let original = ev
        .get("explanation")
        .and_then(|x| x.get("original_message"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| al.message.clone());
    let mut ex = explanation.clone();
    if let Some(o) = ex.as_object_mut() {
        o.insert("original_message".into(), json!(original));
    }
    ev.insert("explanation".into(), ex);
    let cause = explanation
        .get("cause")
        .and_then(Value::as_str)
        .unwrap_or("Wi-Fi attack");
    let particulars = explanation
        .get("particulars")
        .and_then(Value::as_str)
        .unwrap_or("");
    let message = format!(
        "{} Cause: {} ({particulars}).",
        original.trim_end(),
        capitalized(cause)
    );
    match state
        .store
        .amend_alert(&al.id, &message, &Value::Object(ev).to_string())
        .await
    {
        Ok(()) => publish_alert_update(state, owner_id, &al.id).await,
        Err(e) => tracing::error!(error = %e, "could not explain alert"),
    }
}

async fn publish_alert_update(state: &AppState, owner_id: &str, alert_id: &str) {
    if let Ok(row) = state.store.alert_any(alert_id).await {
        state.bus.publish(HubEvent {
            owner_id: owner_id.to_owned(),
            courier_id: None,
            home_id: row.home_id.clone(),
            event_type: "alert.explained".into(),
            time_ms: state.clock.now_ms(),
            data: crate::alerts::alert_json(&row),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_link_and_monitor_reports() {
        let link = json!({"source": "link", "kind": "deauth_attack", "bssid": "02:00:00:00:01:00",
            "start": 1_700_000_585.0, "end": 1_700_000_605.5, "disconnects": 4, "quick_reconnects": 4,
            "beacon_losses": 0, "reason_codes": {"7": 4}, "confidence": 0.9, "evidence": ["a"], "ongoing": false});
        let a = Attack::parse(&link).unwrap();
        assert_eq!(a.start_ms, 1_700_000_585_000);
        assert_eq!(a.label(), "Wi-Fi deauthentication attack");
        assert_eq!(
            a.particulars(),
            "network 02:00:00:00:01:00, reason 7, 4 forced disconnects, 22:23:05–22:23:25 UTC"
        );
        let mon = json!({"source": "monitor", "kind": "deauth", "transmitter": "aa:bb:cc:dd:ee:ff",
            "receiver": "11:22:33:44:55:66", "bssid": "aa:bb:cc:dd:ee:ff", "target": "11:22:33:44:55:66",
            "broadcast": false, "reason_codes": {"7": 128}, "frames": 128, "start": 1_700_000_585.0,
            "end": 1_700_000_605.0, "peak_rate_per_s": 40.0, "confidence": 0.99});
        let a = Attack::parse(&mon).unwrap();
        assert_eq!(
            a.particulars(),
            "transmitter aa:bb:cc:dd:ee:ff, target 11:22:33:44:55:66, reason 7, 128 frames at 40/s, 22:23:05–22:23:25 UTC"
        );
    }

    #[test]
    fn hostile_details_are_refused_not_panicked_on() {
        for bad in [
            json!(null),
            json!([]),
            json!({"kind": "deauth"}),
            json!({"kind": "deauth", "start": "x", "end": 1}),
            json!({"kind": "deauth", "start": -1.0, "end": 1.0}),
            json!({"kind": "deauth", "start": 1e300, "end": 1e300}),
            json!({"kind": "deauth", "start": 1.0, "end": 1e9}),
            json!({"kind": "deauth", "source": "radio", "start": 1.0, "end": 2.0}),
        ] {
            assert!(Attack::parse(&bad).is_err(), "{bad}");
        }
        let weird = json!({"kind": "\u{0007}é".repeat(100), "start": 10.0, "end": 5.0,
            "reason_codes": {"x": 1, "70000": 2, "3": -1}, "evidence": [1, "\n"], "confidence": 7.0,
            "transmitter": "\u{202e}x"});
        let a = Attack::parse(&weird).unwrap();
        assert_eq!(a.end_ms, a.start_ms);
        assert!(a.kind.chars().count() <= 32);
        assert!(a.reason_codes.is_empty());
        assert!(a.evidence.is_empty());
        assert_eq!(a.confidence, 1.0);
        let _ = a.particulars();
        let _ = a.label();
    }

    #[test]
    fn outages_from_liveness_history() {
        let h = vec![
            (1000, json!({"from": "offline", "to": "live"})),
            (
                5000,
                json!({"from": "live", "to": "stale", "last_fresh_ms": 3500}),
            ),
            (8000, json!({"from": "stale", "to": "offline"})),
            (20000, json!({"from": "offline", "to": "live"})),
            (30000, json!({"from": "live", "to": "offline"})),
        ];
        assert_eq!(outages(&h), vec![(3500, Some(20000)), (30000, None)]);
        assert_eq!(hms(1_700_000_585_000), "22:23:05");
    }
}
