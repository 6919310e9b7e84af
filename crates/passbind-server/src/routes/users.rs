//! `/v1/users`: read a user, revoke a credential, erase a user.

use crate::app::{ApiKey, AppState};
use crate::error::{ApiError, ApiPath};
use axum::extract::State;
use axum::Json;
use passbind_core::auth::SCOPE_USERS;
use passbind_proto::users::UserView;
use passbind_proto::ErrorBody;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(read, erase))
        .routes(routes!(revoke))
        .routes(routes!(identity_proofs))
}

/// The signed identity proofs of a credential: that its owner's identity was verified, when,
/// by which provider and run, without anyone holding the person's data. Verify them with
/// `/v1/audit/public-key`.
#[utoipa::path(get, path = "/v1/users/{external_user_id}/credentials/{credential_id}/identity-proofs", tag = "users",
    params(("external_user_id" = String, Path), ("credential_id" = String, Path)),
    security(("api_key" = [])),
    responses((status = 200, body = [Object]), (status = 404, body = ErrorBody)))]
async fn identity_proofs(
    State(st): State<AppState>,
    key: ApiKey,
    ApiPath((user, credential)): ApiPath<(String, String)>,
) -> Result<Json<Vec<passbind_core::audit::IdentityProofView>>, ApiError> {
    key.require(SCOPE_USERS)?;
    Ok(Json(st.engine.identity_proofs(&user, &credential).await?))
}

/// A user's credentials and whether a biometric token is held (never the token itself).
#[utoipa::path(get, path = "/v1/users/{external_user_id}", tag = "users",
    params(("external_user_id" = String, Path)), security(("api_key" = [])),
    responses((status = 200, body = UserView), (status = 404, description = "user_not_found", body = ErrorBody)))]
async fn read(
    State(st): State<AppState>,
    key: ApiKey,
    ApiPath(user): ApiPath<String>,
) -> Result<Json<UserView>, ApiError> {
    key.require(SCOPE_USERS)?;
    Ok(Json(st.engine.user_view(&user).await?))
}

/// Erase a user: the biometric token is crypto-shredded (its data key destroyed), every
/// credential revoked, live sessions cancelled.
#[utoipa::path(delete, path = "/v1/users/{external_user_id}", tag = "users",
    params(("external_user_id" = String, Path)), security(("api_key" = [])),
    responses((status = 200, body = UserView), (status = 404, description = "user_not_found", body = ErrorBody)))]
async fn erase(
    State(st): State<AppState>,
    key: ApiKey,
    ApiPath(user): ApiPath<String>,
) -> Result<Json<UserView>, ApiError> {
    key.require(SCOPE_USERS)?;
    Ok(Json(st.engine.erase_user(&key.actor(), &user).await?))
}

/// Revoke one credential: it can no longer sign in or step up.
#[utoipa::path(delete, path = "/v1/users/{external_user_id}/credentials/{credential_id}", tag = "users",
    params(("external_user_id" = String, Path), ("credential_id" = String, Path)),
    security(("api_key" = [])),
    responses((status = 200, body = UserView), (status = 404, description = "user_not_found, credential_not_found", body = ErrorBody)))]
async fn revoke(
    State(st): State<AppState>,
    key: ApiKey,
    ApiPath((user, credential)): ApiPath<(String, String)>,
) -> Result<Json<UserView>, ApiError> {
    key.require(SCOPE_USERS)?;
    Ok(Json(
        st.engine
            .revoke_credential(&key.actor(), &user, &credential)
            .await?,
    ))
}
