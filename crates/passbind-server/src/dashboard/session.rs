//! The operator's session on the management API: a cookie (HttpOnly, SameSite=Strict, Secure
//! outside loopback development) whose value is a random secret stored only as a hash, and a
//! CSRF token derived from it that every state-changing request must echo in `X-CSRF-Token`.

use crate::app::AppState;
use crate::dashboard::Management;
use crate::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method};
use passbind_core::operators::{csrf_matches, OperatorIdentity};
use passbind_core::Actor;
use passbind_proto::ErrorCode;
use serde_json::json;

/// The header that carries the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

impl Management {
    /// The session cookie's name: `__Host-` prefixed (Secure, Path=/, no Domain) on HTTPS.
    pub fn cookie_name(&self) -> &'static str {
        if self.secure_cookies {
            "__Host-passbind_operator"
        } else {
            "passbind_operator"
        }
    }

    fn cookie_attributes(&self, path: &str, same_site: &str, max_age: u64) -> String {
        format!(
            "Path={path}; HttpOnly; SameSite={same_site}; Max-Age={max_age}{}",
            if self.secure_cookies { "; Secure" } else { "" }
        )
    }

    /// `Set-Cookie` for a new session.
    pub fn session_cookie(&self, value: &str) -> Option<HeaderValue> {
        let ttl = self.operators.config().session_ttl_secs;
        HeaderValue::from_str(&format!(
            "{}={value}; {}",
            self.cookie_name(),
            self.cookie_attributes("/", "Strict", ttl)
        ))
        .ok()
    }

    /// `Set-Cookie` that removes the session cookie.
    pub fn clear_session_cookie(&self) -> Option<HeaderValue> {
        HeaderValue::from_str(&format!(
            "{}=; {}",
            self.cookie_name(),
            self.cookie_attributes("/", "Strict", 0)
        ))
        .ok()
    }

    /// The OIDC state cookie binds the provider's redirect back to the browser that started
    /// the sign-in. `Lax`: it must travel on that cross-site top-level redirect.
    pub fn oidc_cookie(&self, state: &str, max_age: u64) -> Option<HeaderValue> {
        HeaderValue::from_str(&format!(
            "{}={state}; {}",
            self.oidc_cookie_name(),
            self.cookie_attributes(OIDC_COOKIE_PATH, "Lax", max_age)
        ))
        .ok()
    }

    pub fn oidc_cookie_name(&self) -> &'static str {
        if self.secure_cookies {
            "__Secure-passbind_oidc"
        } else {
            "passbind_oidc"
        }
    }
}

/// Where the OIDC state cookie is sent (the callback only).
pub const OIDC_COOKIE_PATH: &str = "/api/management/v1/auth/oidc";

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// A signed-in operator. Refuses with 401 without a valid session, and with 403 when a
/// state-changing request lacks the session's CSRF token or comes from another origin.
pub struct OperatorSession {
    pub identity: OperatorIdentity,
    pub cookie: String,
}

impl OperatorSession {
    /// The audit actor of this operator's actions.
    pub fn actor(&self) -> Actor {
        Actor::new("operator", self.identity.subject.clone())
    }
}

fn unauthorized() -> ApiError {
    ApiError::new(
        ErrorCode::Unauthorized,
        "sign in to the dashboard first (no valid operator session)",
    )
}

fn forbidden(reason: &str, message: &str) -> ApiError {
    ApiError::new(ErrorCode::Forbidden, message).with_details(json!({ "reason": reason }))
}

/// Whether a request changes state (and so needs the CSRF token).
pub fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Refuses a state-changing request whose `Origin` (when the browser sends one) is not the
/// dashboard's.
pub fn check_origin(m: &Management, headers: &HeaderMap) -> Result<(), ApiError> {
    match headers
        .get(header::ORIGIN)
        .map(|v| v.to_str().unwrap_or(""))
    {
        Some(o) if o != m.origin => Err(forbidden(
            "origin",
            "the request comes from another origin than the dashboard's",
        )),
        _ => Ok(()),
    }
}

impl FromRequestParts<AppState> for OperatorSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let m = &state.options.management;
        let value = cookie(&parts.headers, m.cookie_name()).ok_or_else(unauthorized)?;
        let identity = m
            .operators
            .authenticate(&value)
            .await
            .map_err(|e| match e {
                passbind_core::CoreError::Unauthorized => unauthorized(),
                other => other.into(),
            })?;
        if changes_state(&parts.method) {
            let presented = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !csrf_matches(&value, presented) {
                return Err(forbidden(
                    "csrf",
                    "missing or wrong X-CSRF-Token header (read it from /api/management/v1/auth/status)",
                ));
            }
            check_origin(m, &parts.headers)?;
        }
        Ok(Self {
            identity,
            cookie: value,
        })
    }
}
