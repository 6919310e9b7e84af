//! Users: search, a user's credentials and sessions, revoke a credential, erase a user.

use super::ApiQuery;
use crate::app::AppState;
use crate::dashboard::session::OperatorSession;
use crate::error::{ApiError, ApiJson, ApiPath};
use axum::extract::State;
use axum::Json;
use passbind_proto::management::{EraseUser, UserDetailView, UserListView};
use passbind_proto::users::UserView;
use passbind_proto::{ErrorBody, ErrorCode};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(search))
        .routes(routes!(read))
        .routes(routes!(revoke))
        .routes(routes!(erase))
}

#[derive(Deserialize, utoipa::IntoParams)]
struct Search {
    /// External user id prefix (case-sensitive); empty lists every user.
    #[serde(default)]
    prefix: String,
    /// `next_after` of the previous page.
    after: Option<String>,
    /// Page size (default 50, at most 200).
    limit: Option<u32>,
}

/// Users whose external id starts with `prefix`, in id order.
#[utoipa::path(get, path = "/api/management/v1/users", tag = "management",
    params(Search),
    responses((status = 200, body = UserListView),
        (status = 401, description = "unauthorized", body = ErrorBody)))]
async fn search(
    State(st): State<AppState>,
    _op: OperatorSession,
    ApiQuery(q): ApiQuery<Search>,
) -> Result<Json<UserListView>, ApiError> {
    let after = q.after.as_deref().filter(|a| !a.is_empty());
    Ok(Json(
        st.engine
            .search_users(&q.prefix, after, q.limit.unwrap_or(50))
            .await?,
    ))
}

/// A user's credentials (created, last used, AAGUID, backup flags, device label), whether a
/// biometric token is held (never the token), and their newest sessions.
#[utoipa::path(get, path = "/api/management/v1/users/{external_user_id}", tag = "management",
    params(("external_user_id" = String, Path)),
    responses((status = 200, body = UserDetailView),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 404, description = "user_not_found", body = ErrorBody)))]
async fn read(
    State(st): State<AppState>,
    _op: OperatorSession,
    ApiPath(user): ApiPath<String>,
) -> Result<Json<UserDetailView>, ApiError> {
    let view = st.engine.user_view(&user).await?;
    let sessions = st.engine.user_sessions(&user, 100).await?;
    Ok(Json(UserDetailView {
        user: view,
        sessions,
    }))
}

/// Revoke one credential (audited with the operator's subject).
#[utoipa::path(delete, path = "/api/management/v1/users/{external_user_id}/credentials/{credential_id}", tag = "management",
    params(("external_user_id" = String, Path), ("credential_id" = String, Path)),
    responses((status = 200, body = UserView),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 403, description = "forbidden: missing CSRF token", body = ErrorBody),
        (status = 404, description = "user_not_found, credential_not_found", body = ErrorBody)))]
async fn revoke(
    State(st): State<AppState>,
    op: OperatorSession,
    ApiPath((user, credential)): ApiPath<(String, String)>,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json(
        st.engine
            .revoke_credential(&op.actor(), &user, &credential)
            .await?,
    ))
}

/// Erase a user: the biometric token is crypto-shredded, every credential revoked, live
/// sessions cancelled. The body must repeat the external user id.
#[utoipa::path(post, path = "/api/management/v1/users/{external_user_id}/erase", tag = "management",
    params(("external_user_id" = String, Path)),
    request_body = EraseUser,
    responses((status = 200, body = UserView),
        (status = 400, description = "validation_failed: the confirmation does not match", body = ErrorBody),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 403, description = "forbidden: missing CSRF token", body = ErrorBody),
        (status = 404, description = "user_not_found", body = ErrorBody)))]
async fn erase(
    State(st): State<AppState>,
    op: OperatorSession,
    ApiPath(user): ApiPath<String>,
    ApiJson(req): ApiJson<EraseUser>,
) -> Result<Json<UserView>, ApiError> {
    if req.confirm_external_user_id != user {
        return Err(ApiError::new(
            ErrorCode::ValidationFailed,
            "confirm_external_user_id must repeat the external user id",
        )
        .with_details(serde_json::json!({ "field": "confirm_external_user_id" })));
    }
    Ok(Json(st.engine.erase_user(&op.actor(), &user).await?))
}
