//! A token the lock refused. The benign case: the lock says `nonce_reused` for a nonce
//! it had itself accepted less than a token lifetime earlier (a duplicate delivery of
//! the same capability). Anything else may be a replay, a forgery, or a camera that
//! stopped watching between the decision and the lock's own check of its statement
//! (`camera_statement_*`, `camera_not_bound`): counted by reason and alerted.

use crate::state::AppState;
use serde_json::json;
use threshold_core::alert::AlertKind;
use threshold_proto::SignedMessage;

pub async fn on_token_refused(
    state: &AppState,
    home_id: &str,
    owner_id: &str,
    msg: &SignedMessage,
) {
    let device = msg.device.to_hex();
    let detail = msg
        .json::<threshold_proto::body::Event>()
        .map(|e| e.detail)
        .unwrap_or(json!({}));
    let reason = detail
        .get("reason")
        .and_then(|r| r.as_str())
        .unwrap_or("unknown");
    let reason = crate::text::bounded(reason, 40);
    let label = if reason.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        reason.clone()
    } else {
        "other".into()
    };
    state
        .metrics
        .tokens_refused
        .get_or_create(&crate::metrics::ReasonLabel { reason: label })
        .inc();
    let nonce = detail.get("nonce").and_then(|n| n.as_str()).unwrap_or("");
    let accepted_at = state
        .store
        .nonce_accepted(&device, nonce)
        .await
        .unwrap_or(None);
    if reason == "nonce_reused"
        && accepted_at.is_some_and(|a| msg.time_ms <= a + state.config.unlock_token_ttl_ms)
    {
        tracing::info!(
            device,
            "duplicate delivery of an accepted unlock token; not an incident"
        );
        return;
    }
    let message = if reason.starts_with("camera_") {
        format!("The lock refused an unlock token ({reason}): it could not confirm for itself that the door's camera was watching. The door stayed locked.")
    } else {
        format!("The lock refused an unlock token ({reason}): possible replay or forged command.")
    };
    crate::alerts::raise(
        state,
        owner_id,
        crate::alerts::Alert {
            kind: AlertKind::TokenRefused,
            home_id,
            device_id: Some(&device),
            delivery_id: None,
            message: &message,
            evidence: &json!({"reason": reason, "device_time_ms": msg.time_ms, "event_seq": msg.seq,
                "grant": detail.get("grant").and_then(|g| g.as_str()).map(|g| crate::text::bounded(g, 128)),
                "nonce": crate::text::bounded(nonce, 64)})
            .to_string(),
            cause_key: Some(&format!("token_refused:{device}:{}", msg.seq)),
        },
    )
    .await;
}
