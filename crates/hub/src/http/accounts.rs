//! Sign-in, sign-out, the current user, and admin user management.

use crate::auth::{self, Principal};
use crate::http::client::Client;
use crate::http::dto::*;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{self, ApiJson};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::Json;
use serde_json::json;
use threshold_store::Role;

/// The account `name` if `password` is its password. Unknown names cost a check
/// too, so timing does not tell them apart.
async fn check_password(
    st: &AppState,
    name: &str,
    password: String,
) -> ApiResult<Option<threshold_store::UserRow>> {
    let user = st.store.user_by_name(name).await?;
    let hash = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| auth::dummy_hash().to_owned());
    let ok = st
        .password_checks
        .verify(password, hash)
        .await
        .map_err(|busy| ApiError::Unavailable("busy", busy.to_string()))?;
    // A disabled account answers like a wrong password.
    Ok(user.filter(|u| ok && u.disabled_ms.is_none()))
}

#[utoipa::path(post, operation_id = "accounts_login", path = "/auth/login", request_body = LoginRequest, tag = "accounts", security(()),
    responses((status = 200, body = LoginResponse), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn login(
    State(st): State<AppState>,
    client: Client,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<(HeaderMap, Json<LoginResponse>)> {
    let name = req.username.trim().to_ascii_lowercase();
    let now = st.clock.now_ms();
    // The attempt is reserved for the account and for the source before the password
    // is checked, so parallel guesses are all counted (auth::throttle). The source is
    // the client's address, through trusted proxies only (`http::forwarded`).
    let account = format!("user:{name}");
    let source = client.addr.map(|ip| format!("ip:{ip}"));
    let from = json!({"from": client.addr.map(|ip| ip.to_string())});
    st.sign_in_accounts
        .begin(&account, now)
        .await
        .map_err(ApiError::SlowDown)?;
    if let Some(src) = &source {
        if let Err(ms) = st.sign_in_sources.begin(src, now).await {
            st.sign_in_accounts.cancel(&account).await;
            return Err(ApiError::SlowDown(ms));
        }
    }
    let checked = check_password(&st, &name, req.password.clone()).await;
    let ok = matches!(checked, Ok(Some(_)));
    let now = st.clock.now_ms();
    match &checked {
        // The pool was full or the database failed: nothing was checked, nothing counts.
        Err(_) => {
            st.sign_in_accounts.cancel(&account).await;
            if let Some(src) = &source {
                st.sign_in_sources.cancel(src).await;
            }
        }
        Ok(_) => {
            st.sign_in_accounts.finish(&account, now, ok).await;
            if let Some(src) = &source {
                st.sign_in_sources.finish(src, now, ok).await;
            }
        }
    }
    let user = match checked {
        Err(e) => return Err(e),
        Ok(Some(user)) => user,
        Ok(None) => {
            crate::audit::record(
                &st,
                "login.failed",
                "anonymous",
                &format!("username:{}", name.chars().take(64).collect::<String>()),
                from,
            )
            .await;
            return Err(ApiError::BadCredentials);
        }
    };
    let token = auth::new_session_token()?;
    let now = st.clock.now_ms();
    st.store
        .create_session(
            &auth::sha256_hex(&token),
            &user.id,
            now,
            now + st.config.session_ttl_ms,
        )
        .await?;
    crate::audit::record(
        &st,
        "login",
        &format!("{}:{}", user.role.as_str(), user.id),
        "session",
        from,
    )
    .await;
    let mut headers = HeaderMap::new();
    // Secure whenever the client came over TLS (the hub's own, or a trusted proxy's):
    // the cookie then never crosses in clear.
    let cookie = format!(
        "{}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        auth::SESSION_COOKIE,
        st.config.session_ttl_ms / 1000,
        if client.https { "; Secure" } else { "" }
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        headers.insert(header::SET_COOKIE, v);
    }
    Ok((
        headers,
        Json(LoginResponse {
            token,
            user: (&user).into(),
        }),
    ))
}

#[utoipa::path(post, operation_id = "accounts_logout", path = "/auth/logout", tag = "accounts", responses((status = 204)))]
pub async fn logout(
    State(st): State<AppState>,
    p: Principal,
) -> ApiResult<(HeaderMap, StatusCode)> {
    if let Some(h) = &p.session_hash {
        st.store.delete_session(h).await?;
    }
    let mut headers = HeaderMap::new();
    headers.insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "threshold_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    Ok((headers, StatusCode::NO_CONTENT))
}

#[utoipa::path(get, operation_id = "accounts_me", path = "/me", tag = "accounts", responses((status = 200, body = UserJson), (status = 401, body = ErrorBody)))]
pub async fn me(p: Principal) -> Json<UserJson> {
    Json((&p.user).into())
}

/// Create a user (admins only). Also used by `threshold user add`.
#[utoipa::path(post, operation_id = "accounts_create_user", path = "/admin/users", request_body = CreateUser, tag = "accounts",
    responses((status = 201, body = UserJson), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_user(
    State(st): State<AppState>,
    p: Principal,
    ApiJson(req): ApiJson<CreateUser>,
) -> ApiResult<(StatusCode, Json<UserJson>)> {
    p.require(Role::Admin)?;
    let role = Role::parse(&req.role).ok_or_else(|| {
        ApiError::invalid(
            "invalid_field",
            "role must be owner, courier, dispatcher or admin",
        )
    })?;
    let user = create_user_checked(
        &st,
        role,
        &req.username,
        req.display_name.as_deref(),
        &req.password,
    )
    .await?;
    crate::audit::record(
        &st,
        "user.created",
        &p.actor(),
        &format!("user:{}", user.id),
        json!({"role": role.as_str()}),
    )
    .await;
    Ok((StatusCode::CREATED, Json((&user).into())))
}

pub async fn create_user_checked(
    st: &AppState,
    role: Role,
    username: &str,
    display: Option<&str>,
    pw: &str,
) -> ApiResult<threshold_store::UserRow> {
    let username = extract::username(username)?;
    let display = match display {
        Some(d) => extract::text("display_name", d, 100)?,
        None => username.clone(),
    };
    let pw = extract::password(pw, &username)?.to_owned();
    let hash = tokio::task::spawn_blocking(move || auth::hash_password(&pw))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    Ok(st
        .store
        .create_user(role, &username, &display, &hash, st.clock.now_ms())
        .await?)
}

#[utoipa::path(get, operation_id = "accounts_couriers", path = "/couriers", tag = "accounts", responses((status = 200, body = [UserJson])))]
pub async fn couriers(State(st): State<AppState>, p: Principal) -> ApiResult<Json<Vec<UserJson>>> {
    if !matches!(p.user.role, Role::Dispatcher | Role::Admin) {
        return Err(ApiError::Forbidden);
    }
    Ok(Json(
        st.store
            .users_by_role(Role::Courier)
            .await?
            .iter()
            .map(UserJson::from)
            .collect(),
    ))
}

/// Issue an API key for a dispatcher (admins), shown once.
#[utoipa::path(post, operation_id = "accounts_create_api_key", path = "/admin/users/{id}/api-keys", tag = "accounts", params(("id" = String, Path)),
    responses((status = 201, body = ApiKeyCreated)))]
pub async fn create_api_key(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<ApiKeyCreated>)> {
    p.require(Role::Admin)?;
    let user = st
        .store
        .user(extract::id(&id)?)
        .await
        .map_err(|_| ApiError::NotFound("user"))?;
    if user.role != Role::Dispatcher {
        return Err(ApiError::invalid(
            "invalid_field",
            "API keys are for dispatchers",
        ));
    }
    let key = auth::new_api_key()?;
    let row = st
        .store
        .create_api_key(&user.id, &auth::sha256_hex(&key), "api", st.clock.now_ms())
        .await?;
    crate::audit::record(
        &st,
        "api_key.created",
        &p.actor(),
        &format!("user:{}", user.id),
        json!({"key_id": row.id}),
    )
    .await;
    Ok((StatusCode::CREATED, Json(ApiKeyCreated { id: row.id, key })))
}

/// A user's API keys (admins): ids, names and times, never the keys.
#[utoipa::path(get, operation_id = "accounts_list_api_keys", path = "/admin/users/{id}/api-keys", tag = "accounts", params(("id" = String, Path)),
    responses((status = 200, body = [ApiKeyJson]), (status = 404, body = ErrorBody)))]
pub async fn list_api_keys(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<ApiKeyJson>>> {
    p.require(Role::Admin)?;
    let user = st
        .store
        .user(extract::id(&id)?)
        .await
        .map_err(|_| ApiError::NotFound("user"))?;
    let keys = st.store.api_keys(&user.id).await?;
    Ok(Json(
        keys.into_iter()
            .map(|k| ApiKeyJson {
                id: k.id,
                name: k.name,
                created_ms: k.created_ms,
                revoked_ms: k.revoked_ms,
            })
            .collect(),
    ))
}

/// Revoke an API key (admins): it stops working at once, open sockets included.
#[utoipa::path(delete, operation_id = "accounts_revoke_api_key", path = "/admin/users/{id}/api-keys/{key_id}", tag = "accounts",
    params(("id" = String, Path), ("key_id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn revoke_api_key(
    State(st): State<AppState>,
    p: Principal,
    Path((id, key_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    p.require(Role::Admin)?;
    let (user_id, key_id) = (extract::id(&id)?, extract::id(&key_id)?);
    st.store
        .revoke_api_key(user_id, key_id, st.clock.now_ms())
        .await
        .map_err(|_| ApiError::NotFound("api key"))?;
    crate::audit::record(
        &st,
        "api_key.revoked",
        &p.actor(),
        &format!("user:{user_id}"),
        json!({"key_id": key_id}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Disable an account (admins): it cannot sign in any more, and its sessions and API
/// keys end now. Administrators cannot disable themselves (someone must remain).
#[utoipa::path(post, operation_id = "accounts_disable_user", path = "/admin/users/{id}/disable", tag = "accounts", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn disable_user(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    p.require(Role::Admin)?;
    let id = extract::id(&id)?;
    if id == p.user.id {
        return Err(ApiError::ConflictCode(
            "cannot_disable_self",
            "an administrator cannot disable their own account".into(),
        ));
    }
    st.store
        .disable_user(id, st.clock.now_ms())
        .await
        .map_err(|_| ApiError::NotFound("user"))?;
    crate::audit::record(
        &st,
        "user.disabled",
        &p.actor(),
        &format!("user:{id}"),
        json!({}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
