//! The router: every route, its OpenAPI description and the layers around it, built from one
//! list so that the document cannot drift from the code.

use crate::error::{self, ApiError};
use crate::metrics::{self, Metrics};
use crate::routes;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use axum::Router;
use passbind_core::model::ApiKeyRecord;
use passbind_core::Engine;
use passbind_proto::ErrorCode;
use std::sync::Arc;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub metrics: Arc<Metrics>,
    pub openapi: Arc<serde_json::Value>,
    pub options: Arc<HttpOptions>,
}

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub max_body_bytes: usize,
    /// The handoff deep-link template; `{token}` is replaced by the token.
    pub handoff_link: String,
    /// The management API's and the dashboard's state (operators, OIDC, settings).
    pub management: Arc<crate::dashboard::Management>,
    /// How long an inbound webhook may be processed before it is acknowledged anyway.
    pub webhook_ack_deadline: std::time::Duration,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Passbind",
        description = "Identity-bound passkeys: the Core API for the integrator's backend, \
                       inbound identity-verification webhooks, health and metrics. Every error \
                       is the envelope `{\"error\": {\"code\", \"message\", \"details\"}}` with \
                       a stable code."
    ),
    modifiers(&BearerAuth),
    components(schemas(passbind_proto::ErrorBody, passbind_proto::ErrorCode)),
    tags(
        (name = "registrations", description = "Registration: identity verification, then a device-bound passkey"),
        (name = "authentications", description = "Routine sign-in: plain WebAuthn, no identity verification"),
        (name = "step-ups", description = "In-app step-up: a live face match gates an assertion bound to the transaction"),
        (name = "cross-platform", description = "Cross-platform step-up: starts in a browser, finishes on the enrolled phone"),
        (name = "recoveries", description = "Account recovery on a new device by a live face match"),
        (name = "users", description = "Users and their credentials"),
        (name = "audit", description = "The tamper-evident audit trail: events, signed checkpoints, proofs, export"),
        (name = "webhooks", description = "Inbound identity-verification webhooks (signature-authenticated)"),
        (name = "management", description = "The management API of the dashboard: operator sign-in, overview, users, sessions, API keys, settings, audit. Needs an operator session cookie; state-changing requests also the X-CSRF-Token header"),
        (name = "operations", description = "Health, readiness, metrics, this document"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(c) = openapi.components.as_mut() {
            c.add_security_scheme(
                "api_key",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("pbk_<id>_<secret>")
                        .build(),
                ),
            );
        }
    }
}

/// All routes with their OpenAPI operations.
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(routes::registrations::router())
        .merge(routes::authentications::router())
        .merge(routes::step_ups::router())
        .merge(routes::cross_platform::router())
        .merge(routes::recoveries::router())
        .merge(routes::users::router())
        .merge(routes::audit::router())
        .merge(routes::webhooks::router())
        .merge(routes::health::router())
        .merge(routes::management::router())
}

/// The OpenAPI document, as served at `/openapi.json`.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let (_, doc) = api_router().split_for_parts();
    doc
}

/// The complete application.
pub fn build(engine: Arc<Engine>, options: HttpOptions) -> (Router, Arc<Metrics>) {
    let max_body_bytes = options.max_body_bytes;
    let metrics = Arc::new(Metrics::default());
    let (router, doc) = api_router().split_for_parts();
    let openapi = serde_json::to_value(&doc).unwrap_or(serde_json::Value::Null);
    let state = AppState {
        engine,
        metrics: metrics.clone(),
        openapi: Arc::new(openapi),
        options: Arc::new(options),
    };
    let router = router
        .merge(crate::dashboard::router())
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            metrics.clone(),
            metrics::track,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(max_body_bytes))
        .layer(CatchPanicLayer::custom(error::panic_response))
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .with_state(state);
    (router, metrics)
}

/// An authenticated integrator backend: `Authorization: Bearer pbk_<id>_<secret>`.
pub struct ApiKey(pub ApiKeyRecord);

impl ApiKey {
    /// The audit actor for requests made with this key.
    pub fn actor(&self) -> passbind_core::Actor {
        passbind_core::audit::api_key_actor(&self.0.id)
    }

    pub fn require(&self, scope: &'static str) -> Result<(), ApiError> {
        if self.0.scopes.iter().any(|s| s == scope) {
            Ok(())
        } else {
            Err(passbind_core::CoreError::Forbidden(scope).into())
        }
    }
}

impl FromRequestParts<AppState> for ApiKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::Unauthorized,
                    "send `Authorization: Bearer <API key>`",
                )
            })?;
        let key = state.engine.authenticate_api_key(token).await?;
        Ok(ApiKey(key))
    }
}
