//! Browser sessions for the web UI: `/login` signs in with a password and sets an `HttpOnly`,
//! `SameSite=Strict` cookie; the server keeps only a hash of it. A state-changing request made
//! with the cookie must also carry the session's CSRF value in `X-Keel-CSRF`, which only the
//! UI's own pages can read (`GET /api/keel/v1/session`), so another site can neither send the
//! cookie (SameSite) nor forge the header.

use axum::Extension;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use keel_core::{Error, ErrorCode, now_millis};
use serde::Deserialize;

use super::{Caller, credentials};
use crate::AppState;
use crate::api::json;
use crate::error::{ApiError, ApiResult};
use crate::wire::{Msg, required};

/// The session cookie's name.
pub const COOKIE: &str = "keel_session";
/// How long a session lasts.
const TTL_MS: i64 = 12 * 3600 * 1000;

fn hash(secret: &str) -> String {
    blake3::hash(secret.as_bytes()).to_hex().to_string()
}

/// The session cookie's value in `headers`, if any.
fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// The caller a live session cookie names.
pub(super) async fn from_cookie(
    s: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Caller>, ApiError> {
    let Some(secret) = cookie(headers) else {
        return Ok(None);
    };
    let id_hash = hash(secret);
    match s.meta.session(&id_hash).await? {
        Some(session) if session.expiration_time > now_millis() => Ok(Some(Caller {
            user: session.user,
            scope: None,
            session: Some((id_hash, session.csrf)),
        })),
        _ => Ok(None),
    }
}

/// A request that came with the session cookie and changes something must carry the session's
/// CSRF value.
pub(super) fn check_csrf(caller: &Caller, method: &Method, headers: &HeaderMap) -> ApiResult<()> {
    let Some((_, csrf)) = &caller.session else {
        return Ok(());
    };
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let sent = headers
        .get("x-keel-csrf")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // Compared as hashes, in constant time.
    if blake3::hash(sent.as_bytes()) == blake3::hash(csrf.as_bytes()) {
        Ok(())
    } else {
        Err(Error::new(
            ErrorCode::PermissionDenied,
            "A request made with the session cookie must carry its X-Keel-CSRF value",
        )
        .into())
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Login {
    username: Option<String>,
    password: Option<String>,
}

fn set_cookie(resp: &mut Response, value: &str, max_age_s: i64) {
    let cookie =
        format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// `POST /api/keel/v1/session` `{"username", "password"}`: signs in, sets the cookie and
/// answers the user and the CSRF value.
async fn login(State(s): State<AppState>, Msg { body, .. }: Msg<Login>) -> ApiResult<Response> {
    if s.auth.is_none() {
        return Err(not_enabled());
    }
    let username = required(body.username, "username")?;
    let password = required(body.password, "password")?;
    let refused = || {
        ApiError(Error::new(
            ErrorCode::Unauthenticated,
            "Wrong username or password",
        ))
    };
    let Some((user, Some(stored))) = s.meta.user_credentials(&username).await? else {
        // As slow as a wrong password, so a name cannot be told known by the time.
        credentials::burn(&password).await;
        return Err(refused());
    };
    if !credentials::verify(&password, &stored).await {
        return Err(refused());
    }
    // The session's entry in the audit log names who signed in.
    keel_core::audit::current().set_actor(&user.username);
    let secret = credentials::random_text::<32>()?;
    let csrf = credentials::random_text::<24>()?;
    s.meta
        .create_session(&hash(&secret), user.id, &csrf, now_millis() + TTL_MS)
        .await?;
    let mut resp = json(&serde_json::json!({ "user": user, "csrf_token": csrf }));
    set_cookie(&mut resp, &secret, TTL_MS / 1000);
    Ok(resp)
}

/// `GET /api/keel/v1/session`: who is signed in, and (for a cookie session) its CSRF value or
/// (for an access token) its scope.
async fn current(
    State(s): State<AppState>,
    caller: Option<Extension<Caller>>,
) -> ApiResult<Response> {
    let Some(Extension(caller)) = caller.filter(|_| s.auth.is_some()) else {
        return Err(not_enabled());
    };
    Ok(json(&serde_json::json!({
        "user": caller.user,
        "csrf_token": caller.session.as_ref().map(|(_, csrf)| csrf),
        "scope": caller.scope,
    })))
}

/// `DELETE /api/keel/v1/session`: signs out (the session is forgotten, the cookie cleared).
async fn logout(
    State(s): State<AppState>,
    caller: Option<Extension<Caller>>,
) -> ApiResult<Response> {
    let Some(Extension(caller)) = caller.filter(|_| s.auth.is_some()) else {
        return Err(not_enabled());
    };
    if let Some((id_hash, _)) = &caller.session {
        s.meta.delete_session(id_hash).await?;
    }
    let mut resp = crate::api::empty();
    set_cookie(&mut resp, "", 0);
    Ok(resp)
}

fn not_enabled() -> ApiError {
    Error::new(
        ErrorCode::EndpointNotFound,
        "Authentication is not enabled on this server (start it with `keel server --auth`).",
    )
    .into()
}

/// The session routes, relative to `/api/keel/v1`.
pub(crate) fn session_routes() -> Router<AppState> {
    Router::new().route("/session", get(current).post(login).delete(logout))
}

/// `GET /login`: the sign-in page.
pub(crate) async fn login_page(headers: HeaderMap) -> Response {
    crate::ui::page("login.html", &headers).into_response()
}
