//! `/v1/authentications`: routine sign-in with the built-in relying party.

use crate::app::{ApiKey, AppState};
use crate::error::{ApiError, ApiJson, ApiPath};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use passbind_core::auth::SCOPE_FLOWS;
use passbind_proto::flows::{CompleteWithAssertion, OpenAuthentication};
use passbind_proto::session::{Flow, SessionView};
use passbind_proto::ErrorBody;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(open))
        .routes(routes!(read))
        .routes(routes!(complete))
}

/// Begin a sign-in: a fresh challenge and the WebAuthn request options. Without
/// `external_user_id` the options ask for a discoverable credential (usernameless).
#[utoipa::path(post, path = "/v1/authentications", tag = "authentications",
    request_body = OpenAuthentication, security(("api_key" = [])),
    responses((status = 201, body = SessionView),
        (status = 404, description = "user_not_found", body = ErrorBody),
        (status = 501, description = "not_supported (external relying-party mode)", body = ErrorBody)))]
async fn open(
    State(st): State<AppState>,
    key: ApiKey,
    ApiJson(req): ApiJson<OpenAuthentication>,
) -> Result<(StatusCode, Json<SessionView>), ApiError> {
    key.require(SCOPE_FLOWS)?;
    Ok((
        StatusCode::CREATED,
        Json(st.engine.open_authentication(&key.actor(), req).await?),
    ))
}

/// Read a sign-in session.
#[utoipa::path(get, path = "/v1/authentications/{id}", tag = "authentications",
    params(("id" = String, Path, description = "session id")), security(("api_key" = [])),
    responses((status = 200, body = SessionView), (status = 404, body = ErrorBody)))]
async fn read(
    State(st): State<AppState>,
    key: ApiKey,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<SessionView>, ApiError> {
    key.require(SCOPE_FLOWS)?;
    Ok(Json(
        st.engine.session_view(&id, Flow::Authentication).await?,
    ))
}

/// Complete a sign-in with the assertion. Succeeds once; the response names the user and the
/// credential, and reports the signature counter (`advanced`, `not_supported`, `regressed`).
#[utoipa::path(post, path = "/v1/authentications/{id}/complete", tag = "authentications",
    params(("id" = String, Path, description = "session id")),
    request_body = CompleteWithAssertion, security(("api_key" = [])),
    responses((status = 200, body = SessionView),
        (status = 409, description = "invalid_state", body = ErrorBody),
        (status = 410, description = "session_expired", body = ErrorBody),
        (status = 422, description = "webauthn_verification_failed", body = ErrorBody)))]
async fn complete(
    State(st): State<AppState>,
    key: ApiKey,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<CompleteWithAssertion>,
) -> Result<Json<SessionView>, ApiError> {
    key.require(SCOPE_FLOWS)?;
    Ok(Json(
        st.engine
            .complete_authentication(&key.actor(), &id, req)
            .await?,
    ))
}
