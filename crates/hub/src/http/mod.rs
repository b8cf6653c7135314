//! The HTTP API under `/api/v1`, plus `/healthz`, `/metrics` and the OpenAPI document.

pub mod accounts;
pub mod clips;
pub mod deliveries;
pub mod devices;
pub mod doors;
pub mod dto;
pub mod error;
pub mod extract;
pub mod guests;
pub mod homes;
pub mod live;
pub mod lock;
pub mod origin;
pub mod push;
pub mod redirect;
pub mod system;
pub mod web;
pub mod webhooks;

use crate::http::error::ApiError;
use crate::state::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{delete, get, patch, post, put};
use axum::Router;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Threshold hub API",
        description = "Secure in-home delivery: homes, devices, deliveries, alerts. Errors are always {\"error\":{\"code\",\"message\"}}. Authenticate with `Authorization: Bearer <token>` (session token from /auth/login, or a dispatcher API key)."
    ),
    paths(
        accounts::login,
        accounts::logout,
        accounts::me,
        accounts::create_user,
        accounts::couriers,
        accounts::create_api_key,
        accounts::list_api_keys,
        accounts::revoke_api_key,
        accounts::disable_user,
        system::trust,
        homes::list,
        homes::create,
        homes::get,
        homes::settings,
        homes::timeline,
        homes::alerts,
        homes::ack_alert,
        devices::create_pairing_code,
        devices::enrol,
        devices::list,
        devices::get,
        devices::revoke,
        devices::latest_frame,
        deliveries::create,
        deliveries::list,
        deliveries::get,
        deliveries::entry,
        deliveries::delivered,
        clips::recording,
        clips::frame,
        clips::avi,
        live::live,
        webhooks::create,
        webhooks::list,
        webhooks::delete,
        webhooks::deliveries,
        deliveries::approve,
        lock::get,
        lock::unlock,
        lock::lock,
        lock::door_get,
        lock::door_unlock,
        lock::door_lock,
        doors::list,
        doors::create,
        doors::update,
        doors::delete,
        doors::merchants,
        doors::trust,
        doors::distrust,
        guests::create,
        guests::list,
        guests::revoke,
        guests::unlock,
        system::audit_verify,
        system::system_alerts,
    ),
    components(schemas(dto::ErrorBody, dto::ErrorDetail))
)]
pub struct ApiDoc;

/// Largest JSON body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The hub's HTTP surface: `/api/v1`, the web apps, health and metrics. `push` is the
/// started Web Push (`alerts::push::start`); without it the push routes are absent.
pub fn router(state: AppState, push: Option<std::sync::Arc<crate::alerts::push::Push>>) -> Router {
    let api = Router::new()
        .route("/auth/login", post(accounts::login))
        .route("/auth/logout", post(accounts::logout))
        .route("/me", get(accounts::me))
        .route("/admin/users", post(accounts::create_user))
        .route(
            "/admin/users/{id}/api-keys",
            get(accounts::list_api_keys).post(accounts::create_api_key),
        )
        .route(
            "/admin/users/{id}/api-keys/{key_id}",
            delete(accounts::revoke_api_key),
        )
        .route("/admin/users/{id}/disable", post(accounts::disable_user))
        .route("/couriers", get(accounts::couriers))
        .route("/homes", get(homes::list).post(homes::create))
        .route("/homes/{id}", get(homes::get))
        .route("/homes/{id}/settings", put(homes::settings))
        .route("/homes/{id}/timeline", get(homes::timeline))
        .route("/homes/{id}/devices", get(devices::list))
        .route(
            "/homes/{id}/pairing-codes",
            post(devices::create_pairing_code),
        )
        .route("/enrol", post(devices::enrol))
        .route(
            "/devices/{id}",
            get(devices::get).merge(delete(devices::revoke)),
        )
        .route("/devices/{id}/frame.jpg", get(devices::latest_frame))
        .route("/devices/{id}/live", get(live::live))
        .route("/deliveries/{id}/recording", get(clips::recording))
        .route("/deliveries/{id}/recording.avi", get(clips::avi))
        .route(
            "/deliveries/{id}/recording/frames/{device_id}/{seq}",
            get(clips::frame),
        )
        .route("/webhooks", get(webhooks::list).post(webhooks::create))
        .route("/webhooks/{id}", delete(webhooks::delete))
        .route("/webhooks/{id}/deliveries", get(webhooks::deliveries))
        .route("/alerts", get(homes::alerts))
        .route("/alerts/{id}/ack", post(homes::ack_alert))
        .route(
            "/deliveries",
            get(deliveries::list).post(deliveries::create),
        )
        .route("/deliveries/{id}", get(deliveries::get))
        .route("/deliveries/{id}/entry", post(deliveries::entry))
        .route("/deliveries/{id}/delivered", post(deliveries::delivered))
        .route("/deliveries/{id}/approve", post(deliveries::approve))
        .route("/homes/{id}/doors", get(doors::list).post(doors::create))
        .route(
            "/homes/{id}/doors/{door_id}",
            patch(doors::update).merge(delete(doors::delete)),
        )
        .route("/homes/{id}/merchants", get(doors::merchants))
        .route(
            "/homes/{id}/merchants/{dispatcher_id}",
            put(doors::trust).merge(delete(doors::distrust)),
        )
        .route(
            "/doors/{id}/lock",
            get(lock::door_get).post(lock::door_lock),
        )
        .route("/doors/{id}/unlock", post(lock::door_unlock))
        .route("/homes/{id}/lock", get(lock::get))
        .route("/homes/{id}/lock/unlock", post(lock::unlock))
        .route("/homes/{id}/lock/lock", post(lock::lock))
        .route("/homes/{id}/guests", get(guests::list).post(guests::create))
        .route("/homes/{id}/guests/{grant_id}", delete(guests::revoke))
        .route("/guest/unlock", post(guests::unlock))
        .route("/audit/verify", get(system::audit_verify))
        .route("/hub/trust", get(system::trust))
        .route("/system/alerts", get(system::system_alerts))
        .route("/events", get(system::events_ws))
        .route("/openapi.json", get(system::openapi))
        .merge(push::router(push))
        .fallback(|| async { ApiError::NotFound("route") })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::middleware::from_fn(no_store));
    Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(system::healthz))
        .route("/metrics", get(system::metrics))
        .merge(crate::http::web::router())
        .fallback(|| async { ApiError::NotFound("route") })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(origin::same_origin_only))
        .layer(axum::middleware::from_fn(nosniff))
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// What HTTPS adds: Strict-Transport-Security on every answer, and the local CA's
/// certificate at `/ca.pem` for phones to install (when the hub made its own).
pub fn tls_routes(app: Router, ca_pem: Option<String>) -> Router {
    let app = match ca_pem {
        Some(pem) => app.route(
            "/ca.pem",
            get(move || async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/x-pem-file")],
                    pem,
                )
            }),
        ),
        None => app,
    };
    app.layer(axum::middleware::from_fn(hsts))
}

async fn hsts(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    resp.headers_mut().insert(
        axum::http::header::STRICT_TRANSPORT_SECURITY,
        axum::http::HeaderValue::from_static("max-age=31536000"),
    );
    resp
}

/// API answers carry session tokens, guest secrets and live state: never cached.
async fn no_store(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    resp.headers_mut()
        .entry(axum::http::header::CACHE_CONTROL)
        .or_insert(axum::http::HeaderValue::from_static("no-store"));
    resp
}

/// No answer is ever sniffed into another content type.
async fn nosniff(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    resp.headers_mut().insert(
        axum::http::header::X_CONTENT_TYPE_OPTIONS,
        axum::http::HeaderValue::from_static("nosniff"),
    );
    resp
}

/// Request latency by route template (never by raw path: ids would explode the label
/// set).
async fn observe(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let start = std::time::Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let resp = next.run(req).await;
    let label = crate::metrics::RouteLabel {
        method,
        route,
        status: resp.status().as_u16(),
    };
    st.metrics
        .http
        .get_or_create(&label)
        .observe(start.elapsed().as_secs_f64());
    resp
}
