//! `/v1/registrations`: open, read, complete, cancel.

use crate::app::{ApiKey, AppState};
use crate::error::{ApiError, ApiJson, ApiPath};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use passbind_core::auth::SCOPE_FLOWS;
use passbind_proto::registration::{CompleteRegistration, OpenRegistration};
use passbind_proto::session::{Flow, SessionView};
use passbind_proto::ErrorBody;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(open))
        .routes(routes!(read))
        .routes(routes!(complete))
        .routes(routes!(cancel))
}

/// Open a registration: starts the identity verification and (built-in relying party) returns
/// the WebAuthn creation options. The response's `idv.sdk_token` is shown only here.
#[utoipa::path(post, path = "/v1/registrations", tag = "registrations",
    request_body = OpenRegistration,
    security(("api_key" = [])),
    responses(
        (status = 201, body = SessionView),
        (status = 400, description = "validation_failed, malformed_json, reserved_key", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 502, description = "idv_unavailable", body = ErrorBody),
    ))]
async fn open(
    State(st): State<AppState>,
    key: ApiKey,
    ApiJson(req): ApiJson<OpenRegistration>,
) -> Result<(StatusCode, Json<SessionView>), ApiError> {
    key.require(SCOPE_FLOWS)?;
    let view = st.engine.open_registration(&key.actor(), req).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Read a registration session.
#[utoipa::path(get, path = "/v1/registrations/{id}", tag = "registrations",
    params(("id" = String, Path, description = "session id")),
    security(("api_key" = [])),
    responses((status = 200, body = SessionView), (status = 404, description = "session_not_found", body = ErrorBody)))]
async fn read(
    State(st): State<AppState>,
    key: ApiKey,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<SessionView>, ApiError> {
    key.require(SCOPE_FLOWS)?;
    Ok(Json(st.engine.session_view(&id, Flow::Registration).await?))
}

/// Complete a registration: refused unless the identity verification passed; binds the
/// credential. Succeeds once.
#[utoipa::path(post, path = "/v1/registrations/{id}/complete", tag = "registrations",
    params(("id" = String, Path, description = "session id")),
    request_body = CompleteRegistration,
    security(("api_key" = [])),
    responses(
        (status = 200, body = SessionView),
        (status = 409, description = "invalid_state, credential_exists, conflict", body = ErrorBody),
        (status = 410, description = "session_expired", body = ErrorBody),
        (status = 422, description = "biometric_mismatch, idv_failed, webauthn_verification_failed", body = ErrorBody),
    ))]
async fn complete(
    State(st): State<AppState>,
    key: ApiKey,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<CompleteRegistration>,
) -> Result<Json<SessionView>, ApiError> {
    key.require(SCOPE_FLOWS)?;
    Ok(Json(
        st.engine
            .complete_registration(&key.actor(), &id, req)
            .await?,
    ))
}

/// Cancel a live registration.
#[utoipa::path(post, path = "/v1/registrations/{id}/cancel", tag = "registrations",
    params(("id" = String, Path, description = "session id")),
    security(("api_key" = [])),
    responses((status = 200, body = SessionView), (status = 409, description = "invalid_state", body = ErrorBody)))]
async fn cancel(
    State(st): State<AppState>,
    key: ApiKey,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<SessionView>, ApiError> {
    key.require(SCOPE_FLOWS)?;
    Ok(Json(
        st.engine
            .cancel(&key.actor(), &id, Flow::Registration)
            .await?,
    ))
}
