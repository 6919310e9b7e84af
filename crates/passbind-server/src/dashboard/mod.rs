//! The management dashboard: plain HTML, CSS and JavaScript embedded in the binary and served
//! under `/dashboard` with a strict Content-Security-Policy, and the state the management API
//! needs (operator sign-in, OIDC, the effective settings).

pub mod oidc;
pub mod session;
pub mod settings;
pub mod start;

use crate::app::AppState;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use passbind_core::operators::Operators;
use passbind_proto::management::SettingsView;
use tower_http::set_header::SetResponseHeaderLayer;

/// What the management API and the dashboard share.
pub struct Management {
    pub operators: Operators,
    pub oidc: Option<oidc::OidcClient>,
    pub settings: SettingsView,
    /// The dashboard's origin (`scheme://host[:port]`), also the operator passkeys' origin.
    pub origin: String,
    /// Cookies are `Secure` (and `__Host-` prefixed) unless the origin is plain-HTTP loopback.
    pub secure_cookies: bool,
}

impl std::fmt::Debug for Management {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Management")
            .field("origin", &self.origin)
            .field("oidc", &self.oidc.is_some())
            .field("secure_cookies", &self.secure_cookies)
            .finish_non_exhaustive()
    }
}

impl Management {
    /// The one-time setup link for a token.
    pub fn setup_url(&self, token: &str) -> String {
        format!("{}/dashboard/setup#token={token}", self.origin)
    }
}

/// The dashboard's origin for a public URL: a loopback IP address becomes `localhost`, because
/// WebAuthn refuses IP addresses as relying-party ids (and `localhost` is a secure context).
pub fn dashboard_origin(public_url: &url::Url) -> String {
    let host = match public_url.host() {
        Some(url::Host::Ipv4(ip)) if ip.is_loopback() => "localhost".to_owned(),
        Some(url::Host::Ipv6(ip)) if ip.is_loopback() => "localhost".to_owned(),
        Some(h) => h.to_string(),
        None => "localhost".to_owned(),
    };
    match public_url.port() {
        Some(p) => format!("{}://{host}:{p}", public_url.scheme()),
        None => format!("{}://{host}", public_url.scheme()),
    }
}

/// The policy of every dashboard page: scripts and styles only from this origin (no inline
/// script, no eval), requests only to this origin, never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
     base-uri 'none'; frame-ancestors 'none'";

const INDEX_HTML: &str = include_str!("../../assets/dashboard/index.html");
const APP_JS: &str = include_str!("../../assets/dashboard/app.js");
const APP_CSS: &str = include_str!("../../assets/dashboard/app.css");
const FAVICON_SVG: &str = include_str!("../../assets/dashboard/favicon.svg");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn page() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn app_css() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

async fn favicon() -> Response {
    asset("image/svg+xml", FAVICON_SVG)
}

async fn missing_asset() -> Response {
    (StatusCode::NOT_FOUND, "no such asset").into_response()
}

/// `/dashboard` and its pages (one HTML shell; the script routes by path), and its assets.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(|| async { Redirect::to("/dashboard/") }))
        .route("/dashboard/", get(page))
        .route("/dashboard/assets/app.js", get(app_js))
        .route("/dashboard/assets/app.css", get(app_css))
        .route("/dashboard/assets/favicon.svg", get(favicon))
        .route("/dashboard/assets/{*rest}", get(missing_asset))
        .route("/dashboard/{*page}", get(page))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn loopback_origins_become_localhost() {
        let o = |u: &str| dashboard_origin(&url::Url::parse(u).unwrap());
        assert_eq!(o("http://127.0.0.1:8080"), "http://localhost:8080");
        assert_eq!(o("http://[::1]:9000/"), "http://localhost:9000");
        assert_eq!(o("https://pb.example.com"), "https://pb.example.com");
        assert_eq!(
            o("https://pb.example.com:8443/x"),
            "https://pb.example.com:8443"
        );
    }

    #[test]
    fn pages_load_no_inline_script() {
        assert!(!INDEX_HTML.contains("<script>"));
        for handler in ["onclick", "onload", "onsubmit", "onchange", "style="] {
            assert!(!INDEX_HTML.contains(handler), "inline {handler}");
        }
        assert!(INDEX_HTML.contains("src=\"/dashboard/assets/app.js\""));
    }
}
