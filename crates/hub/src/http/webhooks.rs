//! Owners' webhook endpoints (alerts to the outside, signed per Standard Webhooks; see
//! `crate::webhooks`) and each endpoint's delivery log.

use crate::auth::Principal;
use crate::http::dto::ErrorBody;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{self, ApiJson};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use threshold_store::{Role, WebhookDeliveryRow, WebhookEndpointRow};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// `https://host[:port]/path`, or `http://` to this machine (or anywhere with
    /// the operator's `webhooks_allow_http`).
    pub url: String,
    pub description: Option<String>,
    /// The event types to receive (see `alerts::webhooks::EVENT_TYPES`); absent or
    /// empty: every type.
    pub event_types: Option<Vec<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookJson {
    pub id: String,
    pub url: String,
    pub description: String,
    /// `whsec_<base64>`: verify `webhook-signature` with it.
    pub secret: String,
    pub created_ms: i64,
    /// The event types it receives; empty: every type.
    pub event_types: Vec<String>,
}

impl From<WebhookEndpointRow> for WebhookJson {
    fn from(e: WebhookEndpointRow) -> Self {
        WebhookJson {
            id: e.id,
            url: e.url,
            description: e.description,
            secret: e.secret,
            created_ms: e.created_ms,
            event_types: e
                .event_types
                .split(',')
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookDeliveryJson {
    pub id: String,
    /// The `webhook-id` header (the same on every retry).
    pub message_id: String,
    pub event_type: String,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    pub attempts: i64,
    pub next_attempt_ms: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub payload: serde_json::Value,
}

impl From<WebhookDeliveryRow> for WebhookDeliveryJson {
    fn from(d: WebhookDeliveryRow) -> Self {
        WebhookDeliveryJson {
            payload: serde_json::from_str(&d.payload).unwrap_or(json!(null)),
            id: d.id,
            message_id: d.message_id,
            event_type: d.event_type,
            state: d.state,
            attempts: d.attempts,
            next_attempt_ms: d.next_attempt_ms,
            last_status: d.last_status,
            last_error: d.last_error,
            created_ms: d.created_ms,
            updated_ms: d.updated_ms,
        }
    }
}

/// A receiver's URL: `https://`, or `http://` to a loopback address (or anywhere
/// when the operator allowed it with `webhooks_allow_http`); no credentials in it.
fn check_url(u: &str, allow_http: bool) -> ApiResult<String> {
    let u = extract::text("url", u, 2000)?;
    let (plain, rest) = match (u.strip_prefix("https://"), u.strip_prefix("http://")) {
        (Some(r), _) => (false, r),
        (None, Some(r)) => (true, r),
        _ => {
            return Err(ApiError::invalid(
                "invalid_url",
                "url must start with https:// (or http:// to this machine)",
            ))
        }
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || host.contains('@') || u.chars().any(char::is_whitespace) {
        return Err(ApiError::invalid(
            "invalid_url",
            "url needs a host and no credentials or spaces",
        ));
    }
    if plain && !allow_http && !loopback(host) {
        return Err(ApiError::invalid(
            "insecure_url",
            "http:// is allowed only to this machine; use https:// (or the operator sets webhooks_allow_http)",
        ));
    }
    Ok(u)
}

/// Whether `host[:port]` names this machine.
fn loopback(host: &str) -> bool {
    let name = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[utoipa::path(post, operation_id = "webhooks_create", path = "/webhooks", request_body = CreateWebhook, tag = "webhooks",
    responses((status = 201, body = WebhookJson), (status = 400, body = ErrorBody)))]
pub async fn create(
    State(st): State<AppState>,
    p: Principal,
    ApiJson(req): ApiJson<CreateWebhook>,
) -> ApiResult<(StatusCode, Json<WebhookJson>)> {
    let owner = p.require(Role::Owner)?;
    let url = check_url(&req.url, st.config.webhooks_allow_http)?;
    let description = match req.description.as_deref() {
        Some(d) if !d.trim().is_empty() => extract::text("description", d, 200)?,
        _ => String::new(),
    };
    if st.store.webhook_endpoints(owner).await?.len() >= 10 {
        return Err(ApiError::invalid(
            "too_many_webhooks",
            "at most 10 webhook endpoints per owner",
        ));
    }
    let types = req.event_types.unwrap_or_default();
    if let Some(bad) = types
        .iter()
        .find(|t| !crate::alerts::webhooks::EVENT_TYPES.contains(&t.as_str()))
    {
        return Err(ApiError::invalid(
            "invalid_event_type",
            format!(
                "unknown event type {:?}; known: {}",
                crate::text::bounded(bad, 40),
                crate::alerts::webhooks::EVENT_TYPES.join(", ")
            ),
        ));
    }
    let secret =
        crate::alerts::webhooks::new_secret().map_err(|e| ApiError::Internal(e.to_string()))?;
    let ep = st
        .store
        .create_webhook_endpoint(
            owner,
            &url,
            &secret,
            &description,
            &types.join(","),
            st.clock.now_ms(),
        )
        .await?;
    crate::fleet::changes::webhooks_changed(&st, owner).await;
    crate::audit::record(
        &st,
        "webhook.created",
        &p.actor(),
        &format!("webhook:{}", ep.id),
        json!({"url": ep.url}),
    )
    .await;
    Ok((StatusCode::CREATED, Json(ep.into())))
}

#[utoipa::path(get, operation_id = "webhooks_list", path = "/webhooks", tag = "webhooks", responses((status = 200, body = [WebhookJson])))]
pub async fn list(State(st): State<AppState>, p: Principal) -> ApiResult<Json<Vec<WebhookJson>>> {
    let owner = p.require(Role::Owner)?;
    Ok(Json(
        st.store
            .webhook_endpoints(owner)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

#[utoipa::path(delete, operation_id = "webhooks_delete", path = "/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let owner = p.require(Role::Owner)?;
    st.store
        .delete_webhook_endpoint(owner, extract::id(&id)?)
        .await
        .map_err(|_| ApiError::NotFound("webhook"))?;
    crate::fleet::changes::webhooks_changed(&st, owner).await;
    crate::audit::record(
        &st,
        "webhook.deleted",
        &p.actor(),
        &format!("webhook:{id}"),
        json!({}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// The endpoint's delivery log, newest first (last 200).
#[utoipa::path(get, operation_id = "webhooks_deliveries", path = "/webhooks/{id}/deliveries", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = [WebhookDeliveryJson]), (status = 404, body = ErrorBody)))]
pub async fn deliveries(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<WebhookDeliveryJson>>> {
    let owner = p.require(Role::Owner)?;
    let rows = st
        .store
        .webhook_deliveries(owner, extract::id(&id)?, 200)
        .await
        .map_err(|_| ApiError::NotFound("webhook"))?;
    Ok(Json(rows.into_iter().map(Into::into).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere_http_only_to_this_machine_unless_allowed() {
        assert!(check_url("https://hooks.example/x", false).is_ok());
        for local in [
            "http://127.0.0.1:9000/h",
            "http://localhost/h",
            "http://[::1]:80/h",
        ] {
            assert!(check_url(local, false).is_ok(), "{local}");
        }
        let e = check_url("http://192.168.1.20/h", false).unwrap_err();
        assert_eq!(e.code(), "insecure_url");
        assert!(check_url("http://192.168.1.20/h", true).is_ok());
        for bad in ["ftp://x/", "https://u:p@x/", "https:///x", "https://a b/"] {
            assert_eq!(
                check_url(bad, true).unwrap_err().code(),
                "invalid_url",
                "{bad}"
            );
        }
    }
}
