//! `/v1/cross-platform-sessions`: a step-up that starts in a browser and finishes on the
//! enrolled phone through a single-use handoff token.

use crate::app::{ApiKey, AppState};
use crate::error::{ApiError, ApiJson, ApiPath};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use passbind_core::auth::SCOPE_FLOWS;
use passbind_core::engine::rfc3339;
use passbind_proto::flows::{CompleteWithAssertion, ConsumeHandoff, OpenStepUp};
use passbind_proto::session::{Flow, HandoffView, SessionState, SessionView};
use passbind_proto::{ErrorBody, ErrorCode};
use serde::Deserialize;
use std::time::Duration;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(open))
        .routes(routes!(consume))
        .routes(routes!(read))
        .routes(routes!(retry))
        .routes(routes!(complete))
        .routes(routes!(cancel))
}

/// The handoff link and its QR code (SVG).
pub fn handoff_forms(template: &str, token: &str) -> (String, String) {
    let link = template.replace("{token}", token);
    let svg = qrcode::QrCode::new(link.as_bytes())
        .map(|code| {
            code.render::<qrcode::render::svg::Color>()
                .min_dimensions(240, 240)
                .build()
        })
        .unwrap_or_default();
    (link, svg)
}

/// Open a cross-platform step-up from the browser side. The response carries the handoff
/// token (single use, short-lived, shown only here) as a deep link and a QR code; deliver it
/// to the enrolled phone by push, QR or link.
#[utoipa::path(post, path = "/v1/cross-platform-sessions", tag = "cross-platform",
    request_body = OpenStepUp, security(("api_key" = [])),
    responses((status = 201, body = SessionView),
        (status = 404, description = "user_not_found", body = ErrorBody),
        (status = 422, description = "no_biometric_reference", body = ErrorBody),
        (status = 429, description = "rate_limited", body = ErrorBody)))]
async fn open(
    State(st): State<AppState>,
    key: ApiKey,
    ApiJson(req): ApiJson<OpenStepUp>,
) -> Result<(StatusCode, Json<SessionView>), ApiError> {
    key.require(SCOPE_FLOWS)?;
    let opened = st.engine.open_cross_platform(&key.actor(), req).await?;
    let (deep_link, qr_svg) = handoff_forms(&st.options.handoff_link, &opened.handoff_token);
    let mut view = opened.view;
    view.handoff = Some(HandoffView {
        token: opened.handoff_token,
        expires_at: rfc3339(opened.handoff_expires_at),
        deep_link,
        qr_svg,
    });
    Ok((StatusCode::CREATED, Json(view)))
}

/// Consume a handoff token (the phone's side, through the integrator's backend). Starts the
/// live capture and returns the mobile context: `idv.sdk_token` and the WebAuthn request
/// options. A token works once.
#[utoipa::path(post, path = "/v1/cross-platform-sessions/handoff", tag = "cross-platform",
    request_body = ConsumeHandoff, security(("api_key" = [])),
    responses((status = 200, body = SessionView),
        (status = 410, description = "handoff_token_invalid (unknown, used, expired or cancelled)", body = ErrorBody)))]
async fn consume(
    State(st): State<AppState>,
    key: ApiKey,
    ApiJson(req): ApiJson<ConsumeHandoff>,
) -> Result<Json<SessionView>, ApiError> {
    key.require(SCOPE_FLOWS)?;
    Ok(Json(st.engine.consume_handoff(&key.actor(), req).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct PollParams {
    /// Return as soon as the session's `version` differs from this (long-poll).
    since_version: Option<i64>,
    /// How long to wait for a change, seconds (at most 30; default 25 with `since_version`).
    wait_seconds: Option<u64>,
}

/// Poll the session from the browser side: `status` is `created`, `handed_off`, `verifying`,
/// `completed`, `failed`, `expired` or `cancelled`. With `since_version`, the request waits
/// until the session changes (long-poll), reading one row by key every 200 ms.
#[utoipa::path(get, path = "/v1/cross-platform-sessions/{id}", tag = "cross-platform",
    params(("id" = String, Path, description = "session id"), PollParams),
    security(("api_key" = [])),
    responses((status = 200, body = SessionView), (status = 404, body = ErrorBody)))]
async fn read(
    State(st): State<AppState>,
    key: ApiKey,
    ApiPath(id): ApiPath<String>,
    params: Result<Query<PollParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<SessionView>, ApiError> {
    key.require(SCOPE_FLOWS)?;
    let Query(params) = params
        .map_err(|e| ApiError::new(ErrorCode::ValidationFailed, format!("bad query: {e}")))?;
    let wait = Duration::from_secs(params.wait_seconds.unwrap_or(25).min(30));
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let view = st.engine.session_view(&id, Flow::CrossPlatform).await?;
        let changed = params.since_version.is_none_or(|v| v != view.version);
        let settled = view.state.is_terminal() && view.state != SessionState::Created;
        if changed || settled || tokio::time::Instant::now() >= deadline {
            return Ok(Json(view));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Start a new live capture after one that did not match, while attempts remain.
#[utoipa::path(post, path = "/v1/cross-platform-sessions/{id}/retry", tag = "cross-platform",
    params(("id" = String, Path, description = "session id")), security(("api_key" = [])),
    responses((status = 200, body = SessionView), (status = 409, body = ErrorBody)))]
async fn retry(
    State(st): State<AppState>,
    key: ApiKey,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<SessionView>, ApiError> {
    key.require(SCOPE_FLOWS)?;
    Ok(Json(
        st.engine
            .retry_capture(&key.actor(), &id, Flow::CrossPlatform)
            .await?,
    ))
}

/// Complete from the phone's side with the assertion; refused unless the live capture matched.
#[utoipa::path(post, path = "/v1/cross-platform-sessions/{id}/complete", tag = "cross-platform",
    params(("id" = String, Path, description = "session id")),
    request_body = CompleteWithAssertion, security(("api_key" = [])),
    responses((status = 200, body = SessionView),
        (status = 409, description = "invalid_state (for example cancelled from the browser)", body = ErrorBody),
        (status = 422, description = "biometric_mismatch, webauthn_verification_failed", body = ErrorBody)))]
async fn complete(
    State(st): State<AppState>,
    key: ApiKey,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<CompleteWithAssertion>,
) -> Result<Json<SessionView>, ApiError> {
    key.require(SCOPE_FLOWS)?;
    Ok(Json(
        st.engine
            .complete_step_up(&key.actor(), &id, Flow::CrossPlatform, req)
            .await?,
    ))
}

/// Cancel from the browser side: the phone can no longer complete, and the handoff token
/// stops working.
#[utoipa::path(post, path = "/v1/cross-platform-sessions/{id}/cancel", tag = "cross-platform",
    params(("id" = String, Path, description = "session id")), security(("api_key" = [])),
    responses((status = 200, body = SessionView), (status = 409, body = ErrorBody)))]
async fn cancel(
    State(st): State<AppState>,
    key: ApiKey,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<SessionView>, ApiError> {
    key.require(SCOPE_FLOWS)?;
    Ok(Json(
        st.engine
            .cancel(&key.actor(), &id, Flow::CrossPlatform)
            .await?,
    ))
}
