//! `/v1/step-ups`: in-app step-up.

use crate::app::{ApiKey, AppState};
use crate::error::{ApiError, ApiJson, ApiPath};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use passbind_core::auth::SCOPE_FLOWS;
use passbind_proto::flows::{CompleteWithAssertion, OpenStepUp};
use passbind_proto::session::{Flow, SessionView};
use passbind_proto::ErrorBody;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(open))
        .routes(routes!(read))
        .routes(routes!(retry))
        .routes(routes!(complete))
        .routes(routes!(cancel))
}

/// Open a step-up: the live capture is matched against the user's stored biometric token;
/// the WebAuthn challenge commits to `transaction_context`.
#[utoipa::path(post, path = "/v1/step-ups", tag = "step-ups",
    request_body = OpenStepUp, security(("api_key" = [])),
    responses((status = 201, body = SessionView),
        (status = 404, description = "user_not_found", body = ErrorBody),
        (status = 422, description = "no_biometric_reference", body = ErrorBody),
        (status = 429, description = "rate_limited (step-up locked after repeated mismatches)", body = ErrorBody)))]
async fn open(
    State(st): State<AppState>,
    key: ApiKey,
    ApiJson(req): ApiJson<OpenStepUp>,
) -> Result<(StatusCode, Json<SessionView>), ApiError> {
    key.require(SCOPE_FLOWS)?;
    Ok((
        StatusCode::CREATED,
        Json(st.engine.open_step_up(&key.actor(), req).await?),
    ))
}

/// Read a step-up session.
#[utoipa::path(get, path = "/v1/step-ups/{id}", tag = "step-ups",
    params(("id" = String, Path, description = "session id")), security(("api_key" = [])),
    responses((status = 200, body = SessionView), (status = 404, body = ErrorBody)))]
async fn read(
    State(st): State<AppState>,
    key: ApiKey,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<SessionView>, ApiError> {
    key.require(SCOPE_FLOWS)?;
    Ok(Json(st.engine.session_view(&id, Flow::StepUp).await?))
}

/// Start a new live capture after one that did not match (state `capture_failed`), while
/// attempts remain. Returns a new `idv.sdk_token`.
#[utoipa::path(post, path = "/v1/step-ups/{id}/retry", tag = "step-ups",
    params(("id" = String, Path, description = "session id")), security(("api_key" = [])),
    responses((status = 200, body = SessionView),
        (status = 409, description = "invalid_state", body = ErrorBody),
        (status = 429, description = "rate_limited", body = ErrorBody)))]
async fn retry(
    State(st): State<AppState>,
    key: ApiKey,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<SessionView>, ApiError> {
    key.require(SCOPE_FLOWS)?;
    Ok(Json(
        st.engine
            .retry_capture(&key.actor(), &id, Flow::StepUp)
            .await?,
    ))
}

/// Complete a step-up with the assertion. Refused unless the live capture matched
/// (`biometric_mismatch`); the assertion must answer this session's challenge.
#[utoipa::path(post, path = "/v1/step-ups/{id}/complete", tag = "step-ups",
    params(("id" = String, Path, description = "session id")),
    request_body = CompleteWithAssertion, security(("api_key" = [])),
    responses((status = 200, body = SessionView),
        (status = 409, description = "invalid_state", body = ErrorBody),
        (status = 410, description = "session_expired", body = ErrorBody),
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
            .complete_step_up(&key.actor(), &id, Flow::StepUp, req)
            .await?,
    ))
}

/// Cancel a live step-up.
#[utoipa::path(post, path = "/v1/step-ups/{id}/cancel", tag = "step-ups",
    params(("id" = String, Path, description = "session id")), security(("api_key" = [])),
    responses((status = 200, body = SessionView), (status = 409, body = ErrorBody)))]
async fn cancel(
    State(st): State<AppState>,
    key: ApiKey,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<SessionView>, ApiError> {
    key.require(SCOPE_FLOWS)?;
    Ok(Json(
        st.engine.cancel(&key.actor(), &id, Flow::StepUp).await?,
    ))
}
