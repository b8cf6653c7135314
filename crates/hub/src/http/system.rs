//! Health, metrics, the OpenAPI document, audit verification, and the owner's live
//! event socket.

use crate::auth::Principal;
use crate::http::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use std::sync::atomic::Ordering;
use threshold_store::Role;

#[utoipa::path(get, operation_id = "system_healthz", path = "/healthz", tag = "system", security(()),
    description = "Liveness of the hub itself: database, broker, whether it keeps up with its devices' messages, its fleet role.",
    responses((status = 200, description = "ok", body = Object), (status = 503, description = "degraded", body = Object)))]
pub async fn healthz(State(st): State<AppState>) -> Response {
    let db_ok = st.store.setting("schema").await.is_ok();
    let mqtt_ok = st.mqtt_connected.0.load(Ordering::SeqCst);
    let (median_lag, behind_since) = st.load.now(st.clock.now_ms());
    let keeping_up = behind_since.is_none();
    let status = if db_ok && mqtt_ok && keeping_up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(json!({"status": if status == StatusCode::OK {"ok"} else {"degraded"}, "database": db_ok, "mqtt": mqtt_ok, "devices": st.registry.len(),
        "ingest": {"keeping_up": keeping_up, "median_lag_ms": median_lag, "behind_since_ms": behind_since},
        "fleet": st.fleet.node_id().map(|node| json!({"node": node, "partitions": st.fleet.partitions(), "partitions_held": st.fleet.held().len()}))}))).into_response()
}

/// OpenMetrics, or the Prometheus text format for a scraper that asks for
/// `text/plain` (`metrics_text::Format::negotiate`).
#[utoipa::path(get, operation_id = "system_metrics", path = "/metrics", tag = "system", security(()),
    description = "OpenMetrics 1.0, or the Prometheus text format 0.0.4 for `Accept: text/plain`.",
    responses((status = 200, description = "metrics", body = String, content_type = "application/openmetrics-text")))]
pub async fn metrics(State(st): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    let format = crate::metrics_text::Format::negotiate(
        headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()),
    );
    (
        [(header::CONTENT_TYPE, format.content_type())],
        st.metrics.render(format),
    )
        .into_response()
}

/// This document: every route the API serves, generated with the routes themselves
/// (`http::router`).
#[utoipa::path(get, operation_id = "system_openapi", path = "/openapi.json", tag = "system", security(()),
    responses((status = 200, description = "the OpenAPI 3.1 document", body = Object)))]
pub async fn openapi(
    axum::Extension(doc): axum::Extension<std::sync::Arc<utoipa::openapi::OpenApi>>,
) -> Json<utoipa::openapi::OpenApi> {
    Json((*doc).clone())
}

/// What an owner or operator pins to trust this hub without trusting the network or
/// the hub's database later: the audit public key (checkpoints are signed with it;
/// `threshold audit verify --key`), and with HTTPS the certificate fingerprint a phone
/// checks before installing the hub's CA from `/ca.pem`.
#[utoipa::path(get, operation_id = "system_trust", path = "/hub/trust", tag = "audit", responses((status = 200, body = Object)))]
pub async fn trust(State(st): State<AppState>, p: Principal) -> ApiResult<Json<serde_json::Value>> {
    if !matches!(p.user.role, Role::Owner | Role::Admin) {
        return Err(ApiError::Forbidden);
    }
    let cert = if st.config.https() {
        let (file, ca) = match &st.config.tls_cert_file {
            Some(f) => (f.clone(), false),
            None => (st.config.data_dir.join("tls").join("ca.pem"), true),
        };
        let pem = std::fs::read(&file).map_err(|e| ApiError::Internal(e.to_string()))?;
        use rustls::pki_types::pem::PemObject;
        let der = rustls::pki_types::CertificateDer::from_pem_slice(&pem)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        json!({
            "fingerprint_sha256": crate::tls::fingerprint(&der),
            "ca_url": ca.then_some("/ca.pem"),
        })
    } else {
        serde_json::Value::Null
    };
    Ok(Json(json!({
        "audit_key": st.hub_key.public().to_hex(),
        "tls": cert,
    })))
}

/// Alerts about the hub itself (it fell behind with its devices' messages), newest
/// first (admins).
#[utoipa::path(get, operation_id = "system_system_alerts", path = "/system/alerts", tag = "system", responses((status = 200, body = [Object])))]
pub async fn system_alerts(
    State(st): State<AppState>,
    p: Principal,
) -> ApiResult<Json<Vec<serde_json::Value>>> {
    p.require(Role::Admin)?;
    let rows = st.store.system_alerts(200).await?;
    Ok(Json(
        rows.into_iter()
            .map(|a| {
                json!({
                    "id": a.id,
                    "kind": a.kind,
                    "severity": a.severity,
                    "message": a.message,
                    "evidence": serde_json::from_str::<serde_json::Value>(&a.evidence).unwrap_or(json!({})),
                    "raised_ms": a.raised_ms,
                    "resolved_ms": a.resolved_ms,
                })
            })
            .collect(),
    ))
}

/// Recompute the audit chain (admins).
#[utoipa::path(get, operation_id = "system_audit_verify", path = "/audit/verify", tag = "audit", responses((status = 200, body = Object)))]
pub async fn audit_verify(
    State(st): State<AppState>,
    p: Principal,
) -> ApiResult<Json<crate::audit::VerifyReport>> {
    p.require(Role::Admin)?;
    // Pinned to the running hub's own key, not to one stored beside the log.
    Ok(Json(
        crate::audit::verify(&st.store, &st.hub_key.public()).await?,
    ))
}

/// Live events for the signed-in owner or courier: alerts, device changes, delivery
/// instructions. The server sends `{"type":"ping"}` every second so the page can run
/// its own watchdog: no message for 2 s means the link is gone.
#[utoipa::path(get, operation_id = "system_events_ws", path = "/events", tag = "system",
    description = "WebSocket. JSON text messages: the owner's (or courier's) live events (`{\"type\",\"home_id\",\"time_ms\",\"data\"}`) and a `ping` every second; closed with 4401 once the session ends.",
    responses((status = 101, description = "switching to WebSocket"), (status = 401, body = crate::http::dto::ErrorBody), (status = 403, body = crate::http::dto::ErrorBody)))]
pub async fn events_ws(
    State(st): State<AppState>,
    p: Principal,
    client: crate::http::client::Client,
    ws: WebSocketUpgrade,
) -> ApiResult<Response> {
    if !matches!(p.user.role, Role::Owner | Role::Courier) {
        return Err(ApiError::Forbidden);
    }
    // The client's address, through trusted proxies only (`http::forwarded`).
    tracing::debug!(client = ?client.addr, user = %p.user.id, "events socket opened");
    Ok(ws.on_upgrade(move |socket| event_loop(st, p, socket)))
}

/// The close frame sent when the credential behind a socket no longer holds
/// (4401: in the application range, after HTTP's 401).
pub fn ended() -> axum::extract::ws::CloseFrame {
    axum::extract::ws::CloseFrame {
        code: 4401,
        reason: "signed out".into(),
    }
}

async fn event_loop(st: AppState, p: Principal, mut socket: WebSocket) {
    let mut rx = st.bus.subscribe();
    let mut ping = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = ping.tick() => {
                // Signed out, expired or revoked since the upgrade: close.
                if !crate::auth::still_valid(&st, &p).await {
                    let _ = socket.send(Message::Close(Some(ended()))).await;
                    return;
                }
                let msg = json!({"type": "ping", "time_ms": st.clock.now_ms()}).to_string();
                if socket.send(Message::Text(msg.into())).await.is_err() { return; }
            }
            ev = rx.recv() => match ev {
                Ok(e) => {
                    let mine = match p.user.role {
                        Role::Owner => e.owner_id == p.user.id,
                        Role::Courier => e.courier_id.as_deref() == Some(p.user.id.as_str()),
                        _ => false,
                    };
                    if mine {
                        let text = serde_json::to_string(&e).unwrap_or_default();
                        if socket.send(Message::Text(text.into())).await.is_err() { return; }
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                _ => {}
            }
        }
    }
}
