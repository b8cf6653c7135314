//! Alerts to the outside: owners' webhook endpoints, signed per the Standard Webhooks
//! convention (<https://www.standardwebhooks.com/>):
//!
//! - `webhook-id`: the message id (the same on every retry, so receivers de-duplicate);
//! - `webhook-timestamp`: Unix seconds of this attempt;
//! - `webhook-signature`: `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`,
//!   where the key is the base64 part of the endpoint's `whsec_...` secret.
//!
//! The body is `{"type":"<event type>","timestamp":"<RFC 3339>","data":{...}}`, one of
//! [`EVENT_TYPES`]; an endpoint receives the types it was created with (all by default).
//! Every alert is queued durably (one row per endpoint in the delivery log) and sent by
//! a background task; failures (non-2xx, timeouts, refused connections) are retried
//! with exponential backoff (1 s, 2 s, 4 s ... capped at 10 min) up to
//! `webhook_max_attempts`, then marked `failed`. Each row records attempts, the last
//! HTTP status and error. Several hub processes share the log: each due attempt is
//! claimed by one of them (`Store::claim_due_webhooks`); receivers may still
//! de-duplicate on `webhook-id` (a sender that dies after the POST and before
//! recording it is retried), as the convention asks.
//!
//! Receivers are `https://` (trusted by the public web's roots or `outbound_ca_file`),
//! or `http://` on loopback, or anywhere with `webhooks_allow_http`.

use crate::state::AppState;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
/// A claimed attempt is retried after this long if the hub dies mid-attempt.
const CLAIM_MS: i64 = 30_000;
const MAX_BACKOFF_MS: i64 = 600_000;
const TIMEOUT: Duration = Duration::from_secs(10);

pub use crate::alerts::wake::Webhooks;

/// A new `whsec_` secret: 24 random bytes.
pub fn new_secret() -> Result<String, getrandom::Error> {
    let mut b = [0u8; 24];
    getrandom::getrandom(&mut b)?;
    Ok(format!("whsec_{}", B64.encode(b)))
}

/// The `webhook-signature` value for one attempt.
pub fn sign(secret: &str, msg_id: &str, timestamp: i64, body: &str) -> Option<String> {
    let key = B64
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(format!("{msg_id}.{timestamp}.{body}").as_bytes());
    Some(format!("v1,{}", B64.encode(mac.finalize().into_bytes())))
}

/// Check a received signature header (space-separated list of `v1,<sig>`).
pub fn verify(secret: &str, msg_id: &str, timestamp: i64, body: &str, header: &str) -> bool {
    let Some(expected) = sign(secret, msg_id, timestamp, body) else {
        return false;
    };
    header
        .split(' ')
        .any(|s| crate::auth::ct_eq(s.trim(), &expected))
}

/// Every event type an endpoint can receive (`type` in the body):
/// - `alert.raised`, `alert.acknowledged`: `data` is the alert;
/// - `delivery.state_changed`: `delivery_id`, `home_id`, `from`, `to`;
/// - `entry.decided`: an entry asked for (courier, guest or owner): `home_id`,
///   `delivery_id`, `door_id`, `allowed`, `reasons`;
/// - `device.offline`, `device.online`: `device_id`, `home_id`, `name`, `kind`.
pub const EVENT_TYPES: &[&str] = &[
    "alert.raised",
    "alert.acknowledged",
    "delivery.state_changed",
    "entry.decided",
    "device.offline",
    "device.online",
];

/// Queue an alert for every webhook endpoint of its owner that takes alerts.
pub async fn on_alert(state: &AppState, owner_id: &str, alert: &serde_json::Value) {
    publish(state, owner_id, "alert.raised", alert).await;
}

/// Queue an event of `event_type` (one of [`EVENT_TYPES`]) for every webhook endpoint
/// of `owner_id` that receives that type, each with a message id of its own.
pub async fn publish(state: &AppState, owner_id: &str, event_type: &str, data: &serde_json::Value) {
    let endpoints = state.webhooks.endpoints.of(owner_id);
    let wanted: Vec<_> = endpoints
        .iter()
        .filter(|ep| {
            ep.event_types.is_empty() || ep.event_types.split(',').any(|t| t == event_type)
        })
        .collect();
    if wanted.is_empty() {
        return;
    }
    let now = state.clock.now_ms();
    let body = serde_json::json!({
        "type": event_type,
        "timestamp": rfc3339(now),
        "data": data,
    })
    .to_string();
    for ep in wanted {
        let msg_id = format!("msg_{}", threshold_store::new_id());
        if let Err(e) = state
            .store
            .enqueue_webhook(&ep.id, &msg_id, event_type, &body, now)
            .await
        {
            tracing::error!(error = %e, "could not queue webhook");
        }
    }
    state.webhooks.wake.notify_one();
}

/// Start the sender.
pub fn spawn(state: AppState) {
    tokio::spawn(async move {
        loop {
            let _ =
                tokio::time::timeout(Duration::from_millis(500), state.webhooks.wake.notified())
                    .await;
            if state.stopped() {
                return;
            }
            send_due(&state).await;
        }
    });
}

/// Backoff before attempt `attempts + 1` after `attempts` failures.
pub fn backoff_ms(attempts: i64) -> i64 {
    let exp = attempts.clamp(1, 20) - 1;
    (1000i64 << exp).min(MAX_BACKOFF_MS)
}

async fn send_due(state: &AppState) {
    let now = state.clock.now_ms();
    // Claimed atomically, so that of several hub processes one sends each attempt,
    // and the next pass does not send it again while this attempt runs.
    let due = match state
        .store
        .claim_due_webhooks(now, now + CLAIM_MS, 50)
        .await
    {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "could not claim due webhooks");
            return;
        }
    };
    for d in due {
        let st = state.clone();
        tokio::spawn(async move { attempt(&st, d).await });
    }
}

async fn attempt(state: &AppState, d: threshold_store::WebhookDeliveryRow) {
    let ep = match state.store.webhook_endpoint_any(&d.endpoint_id).await {
        Ok(e) => e,
        Err(_) => return, // endpoint deleted meanwhile
    };
    let ts = state.clock.now_ms() / 1000;
    let Some(sig) = sign(&ep.secret, &d.message_id, ts, &d.payload) else {
        let _ = state
            .store
            .record_webhook_attempt(
                &d.id,
                "failed",
                d.attempts,
                0,
                None,
                Some("unusable secret"),
                state.clock.now_ms(),
            )
            .await;
        return;
    };
    let (url, body, id) = (ep.url.clone(), d.payload.clone(), d.message_id.clone());
    let tls = state.outbound_tls.clone();
    let result = tokio::task::spawn_blocking(move || {
        let agent = crate::outbound::agent(&tls, TIMEOUT);
        match agent
            .post(&url)
            .set("content-type", "application/json")
            .set("webhook-id", &id)
            .set("webhook-timestamp", &ts.to_string())
            .set("webhook-signature", &sig)
            .send_string(&body)
        {
            Ok(r) => (Some(i64::from(r.status())), None),
            Err(ureq::Error::Status(code, _)) => (Some(i64::from(code)), None),
            Err(e) => (
                None,
                Some(e.to_string().chars().take(300).collect::<String>()),
            ),
        }
    })
    .await
    .unwrap_or((None, Some("sender task failed".into())));
    let now = state.clock.now_ms();
    let attempts = d.attempts + 1;
    let ok = matches!(result.0, Some(s) if (200..300).contains(&s));
    let error = match (&result.0, &result.1) {
        (_, Some(e)) => Some(e.clone()),
        (Some(s), None) if !ok => Some(format!("HTTP {s}")),
        _ => None,
    };
    let (st, next) = if ok {
        ("delivered", now)
    } else if attempts >= i64::from(state.config.webhook_max_attempts) {
        ("failed", now)
    } else {
        ("pending", now + backoff_ms(attempts))
    };
    if let Err(e) = state
        .store
        .record_webhook_attempt(&d.id, st, attempts, next, result.0, error.as_deref(), now)
        .await
    {
        tracing::error!(error = %e, "could not record webhook attempt");
    }
    if !ok {
        tracing::warn!(endpoint = %ep.id, attempts, error = ?error, "webhook attempt failed");
    }
}

/// Unix milliseconds as RFC 3339 UTC (`2026-11-27T22:15:07.123Z`); the epoch for an
/// instant outside jiff's range (years -9999 to 9999), which the hub's clock never gives.
pub fn rfc3339(ms: i64) -> String {
    let t = jiff::Timestamp::from_millisecond(ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    format!("{t:.3}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_webhooks_reference_signature() {
        // The example from the Standard Webhooks specification's reference libraries.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let ts = 1614265330;
        let body = r#"{"test": 2432232314}"#;
        let sig = sign(secret, id, ts, body).unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(verify(secret, id, ts, body, &format!("v1,bogus {sig}")));
        assert!(!verify(secret, id, ts + 1, body, &sig));
    }

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff_ms(1), 1000);
        assert_eq!(backoff_ms(2), 2000);
        assert_eq!(backoff_ms(4), 8000);
        assert_eq!(backoff_ms(30), MAX_BACKOFF_MS);
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_614_265_330_123), "2021-02-25T15:02:10.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
