//! The HTTP API under `/api/v1`, plus `/healthz`, `/metrics`, the OpenAPI document and
//! the "trust this hub" page (`/trust`).

pub mod accounts;
pub mod audit;
pub mod client;
pub mod clips;
pub mod credentials;
pub mod deliveries;
pub mod devices;
pub mod doors;
pub mod dto;
pub mod error;
pub mod expectations;
pub mod extract;
pub mod forwarded;
pub mod guests;
pub mod homes;
pub mod live;
pub mod lock;
pub mod origin;
pub mod proxies;
pub mod push;
pub mod redirect;
pub mod system;
pub mod trust;
pub mod web;
pub mod webhooks;

use crate::http::error::ApiError;
use crate::state::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Threshold hub API",
        description = "Secure in-home delivery: homes, devices, deliveries, alerts. Errors are always {\"error\":{\"code\",\"message\"}}. Authenticate with `Authorization: Bearer <token>` (session token from /auth/login, or a dispatcher API key), or the session cookie the apps use."
    ),
    modifiers(&Security),
    security(("bearer" = []), ("session_cookie" = [])),
    components(schemas(dto::ErrorBody, dto::ErrorDetail))
)]
pub struct ApiDoc;

/// The two ways to authenticate (operations open to anyone say `security(())`).
struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
        };
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "a session token from /auth/login, or a dispatcher API key",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(
                crate::auth::SESSION_COOKIE,
            ))),
        );
    }
}

/// The API under `/api/v1`: each route registered with its OpenAPI description
/// (`utoipa_axum::routes!`), so the document lists exactly what is served.
fn api_routes(push: Option<std::sync::Arc<crate::alerts::push::Push>>) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(accounts::login))
        .routes(routes!(accounts::logout))
        .routes(routes!(accounts::me))
        .routes(routes!(accounts::create_user))
        .routes(routes!(accounts::list_api_keys, accounts::create_api_key))
        .routes(routes!(accounts::revoke_api_key))
        .routes(routes!(accounts::disable_user))
        .routes(routes!(accounts::couriers))
        .routes(routes!(homes::list, homes::create))
        .routes(routes!(homes::get))
        .routes(routes!(homes::settings))
        .routes(routes!(homes::timeline))
        .routes(routes!(homes::history))
        .routes(routes!(devices::list))
        .routes(routes!(devices::create_pairing_code))
        .routes(routes!(devices::enrol))
        .routes(routes!(credentials::challenge))
        .routes(routes!(credentials::renew))
        .routes(routes!(devices::get, devices::revoke))
        .routes(routes!(devices::latest_frame))
        .routes(routes!(live::live))
        .routes(routes!(clips::recording))
        .routes(routes!(clips::avi))
        .routes(routes!(clips::frame))
        .routes(routes!(webhooks::list, webhooks::create))
        .routes(routes!(webhooks::delete))
        .routes(routes!(webhooks::deliveries))
        .routes(routes!(homes::alerts))
        .routes(routes!(homes::ack_alert))
        .routes(routes!(deliveries::list, deliveries::create))
        .routes(routes!(deliveries::get))
        .routes(routes!(deliveries::entry))
        .routes(routes!(deliveries::delivered))
        .routes(routes!(deliveries::approve))
        .routes(routes!(expectations::list, expectations::create))
        .routes(routes!(expectations::delete))
        .routes(routes!(doors::list, doors::create))
        .routes(routes!(doors::update, doors::delete))
        .routes(routes!(doors::merchants))
        .routes(routes!(doors::trust, doors::distrust))
        .routes(routes!(lock::door_get, lock::door_lock))
        .routes(routes!(lock::door_unlock))
        .routes(routes!(lock::get))
        .routes(routes!(lock::unlock))
        .routes(routes!(lock::lock))
        .routes(routes!(guests::list, guests::create))
        .routes(routes!(guests::revoke))
        .routes(routes!(guests::unlock))
        .routes(routes!(guests::status))
        .routes(routes!(system::audit_verify))
        .routes(routes!(audit::export))
        .routes(routes!(system::trust))
        .routes(routes!(system::system_alerts))
        .routes(routes!(system::events_ws))
        .routes(routes!(system::openapi))
        .merge(push::router(push))
}

/// The API's OpenAPI document, as served at `/api/v1/openapi.json` (the push routes
/// are in it only where Web Push runs).
pub fn openapi(
    push: Option<std::sync::Arc<crate::alerts::push::Push>>,
) -> utoipa::openapi::OpenApi {
    let (_, api) = api_routes(push).split_for_parts();
    let (_, root) = OpenApiRouter::<AppState>::new()
        .routes(routes!(system::healthz))
        .routes(routes!(system::metrics))
        .split_for_parts();
    ApiDoc::openapi().nest("/api/v1", api).merge_from(root)
}

/// Largest JSON body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The hub's HTTP surface: `/api/v1`, the web apps, health and metrics. `push` is the
/// started Web Push (`alerts::push::start`); without it the push routes are absent.
pub fn router(state: AppState, push: Option<std::sync::Arc<crate::alerts::push::Push>>) -> Router {
    let doc = std::sync::Arc::new(openapi(push.clone()));
    let (api, _) = api_routes(push).split_for_parts();
    let api = api
        .layer(axum::Extension(doc))
        .layer(axum::middleware::from_fn(no_store));
    Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(system::healthz))
        .route("/metrics", get(system::metrics))
        .route("/trust", get(trust::page))
        .merge(crate::http::web::router())
        .fallback(|| async { ApiError::NotFound("route") })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(origin::same_origin_only))
        // Before the origin check: it compares with the host the client asked for.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            client::resolve,
        ))
        .layer(axum::middleware::from_fn(nosniff))
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// What HTTPS adds: Strict-Transport-Security on every answer, and the local CA's
/// certificate at `/ca.pem` (PEM) and `/ca.crt` (DER, the form phones install) when
/// the hub made its own (see `/trust`).
pub fn tls_routes(app: Router, ca_pem: Option<String>) -> Router {
    use rustls::pki_types::pem::PemObject;
    let der = ca_pem.as_deref().and_then(|pem| {
        rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
            .ok()
            .map(|d| d.to_vec())
    });
    let app = match der {
        Some(der) => app.route(
            "/ca.crt",
            get(move || async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "application/x-x509-ca-cert",
                    )],
                    der,
                )
            }),
        ),
        None => app,
    };
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

/// Strict-Transport-Security on answers to a client that came over TLS.
pub const HSTS: &str = "max-age=31536000";

async fn hsts(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    resp.headers_mut().insert(
        axum::http::header::STRICT_TRANSPORT_SECURITY,
        axum::http::HeaderValue::from_static(HSTS),
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
