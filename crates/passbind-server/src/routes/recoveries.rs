//! `/v1/recoveries`: account recovery on a new device.

use crate::app::{ApiKey, AppState};
use crate::error::{ApiError, ApiJson, ApiPath};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use passbind_core::auth::SCOPE_FLOWS;
use passbind_proto::flows::{ExchangeContinuation, OpenRecovery};
use passbind_proto::registration::CompleteRegistration;
use passbind_proto::session::{Flow, SessionView};
use passbind_proto::ErrorBody;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(open))
        .routes(routes!(exchange))
        .routes(routes!(read))
        .routes(routes!(continuation))
        .routes(routes!(complete))
        .routes(routes!(cancel))
}

/// Open a recovery for a user who has a stored biometric token: the live capture on the new
/// device is matched against it.
#[utoipa::path(post, path = "/v1/recoveries", tag = "recoveries",
    request_body = OpenRecovery, security(("api_key" = [])),
    responses((status = 201, body = SessionView),
        (status = 404, description = "user_not_found", body = ErrorBody),
        (status = 422, description = "no_biometric_reference", body = ErrorBody)))]
async fn open(
    State(st): State<AppState>,
    key: ApiKey,
    ApiJson(req): ApiJson<OpenRecovery>,
) -> Result<(StatusCode, Json<SessionView>), ApiError> {
    key.require(SCOPE_FLOWS)?;
    Ok((
        StatusCode::CREATED,
        Json(st.engine.open_recovery(&key.actor(), req).await?),
    ))
}

/// Read a recovery session.
#[utoipa::path(get, path = "/v1/recoveries/{id}", tag = "recoveries",
    params(("id" = String, Path, description = "session id")), security(("api_key" = [])),
    responses((status = 200, body = SessionView), (status = 404, body = ErrorBody)))]
async fn read(
    State(st): State<AppState>,
    key: ApiKey,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<SessionView>, ApiError> {
    key.require(SCOPE_FLOWS)?;
    Ok(Json(st.engine.session_view(&id, Flow::Recovery).await?))
}

/// Issue the continuation context once the face matched (once per session; single use,
/// short-lived). A mismatch is `recovery_biometric_mismatch`.
#[utoipa::path(post, path = "/v1/recoveries/{id}/continuation", tag = "recoveries",
    params(("id" = String, Path, description = "session id")), security(("api_key" = [])),
    responses((status = 200, body = SessionView),
        (status = 409, description = "invalid_state", body = ErrorBody),
        (status = 422, description = "recovery_biometric_mismatch", body = ErrorBody)))]
async fn continuation(
    State(st): State<AppState>,
    key: ApiKey,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<SessionView>, ApiError> {
    key.require(SCOPE_FLOWS)?;
    Ok(Json(st.engine.issue_continuation(&key.actor(), &id).await?))
}

/// Exchange a continuation context for the replacement registration (WebAuthn creation
/// options). Works once.
#[utoipa::path(post, path = "/v1/recoveries/exchange", tag = "recoveries",
    request_body = ExchangeContinuation, security(("api_key" = [])),
    responses((status = 200, body = SessionView),
        (status = 410, description = "continuation_invalid", body = ErrorBody)))]
async fn exchange(
    State(st): State<AppState>,
    key: ApiKey,
    ApiJson(req): ApiJson<ExchangeContinuation>,
) -> Result<Json<SessionView>, ApiError> {
    key.require(SCOPE_FLOWS)?;
    Ok(Json(
        st.engine.exchange_continuation(&key.actor(), req).await?,
    ))
}

/// Complete the recovery with the replacement credential's attestation; by default the
/// user's other credentials are revoked. The biometric token is reused unchanged.
#[utoipa::path(post, path = "/v1/recoveries/{id}/complete", tag = "recoveries",
    params(("id" = String, Path, description = "session id")),
    request_body = CompleteRegistration, security(("api_key" = [])),
    responses((status = 200, body = SessionView),
        (status = 409, description = "invalid_state", body = ErrorBody),
        (status = 422, description = "recovery_biometric_mismatch, webauthn_verification_failed", body = ErrorBody)))]
async fn complete(
    State(st): State<AppState>,
    key: ApiKey,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<CompleteRegistration>,
) -> Result<Json<SessionView>, ApiError> {
    key.require(SCOPE_FLOWS)?;
    Ok(Json(
        st.engine.complete_recovery(&key.actor(), &id, req).await?,
    ))
}

/// Cancel a live recovery.
#[utoipa::path(post, path = "/v1/recoveries/{id}/cancel", tag = "recoveries",
    params(("id" = String, Path, description = "session id")), security(("api_key" = [])),
    responses((status = 200, body = SessionView), (status = 409, body = ErrorBody)))]
async fn cancel(
    State(st): State<AppState>,
    key: ApiKey,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<SessionView>, ApiError> {
    key.require(SCOPE_FLOWS)?;
    Ok(Json(
        st.engine.cancel(&key.actor(), &id, Flow::Recovery).await?,
    ))
}
