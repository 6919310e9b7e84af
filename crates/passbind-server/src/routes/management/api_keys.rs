//! API keys of the integrator backend: list, create (the secret is shown once), revoke.

use crate::app::AppState;
use crate::dashboard::session::OperatorSession;
use crate::error::{ApiError, ApiJson, ApiPath};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use passbind_core::auth::SCOPES;
use passbind_core::engine::rfc3339;
use passbind_core::model::ApiKeyRecord;
use passbind_proto::management::{ApiKeyListView, ApiKeyView, CreateApiKey, NewApiKeyView};
use passbind_proto::{ErrorBody, ErrorCode};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(revoke))
}

fn view(k: &ApiKeyRecord) -> ApiKeyView {
    ApiKeyView {
        id: k.id.clone(),
        name: k.name.clone(),
        scopes: k.scopes.clone(),
        created_at: rfc3339(k.created_at),
        revoked_at: k.revoked_at.map(rfc3339),
    }
}

/// Every API key (never a secret), newest first.
#[utoipa::path(get, path = "/api/management/v1/api-keys", tag = "management",
    responses((status = 200, body = ApiKeyListView),
        (status = 401, description = "unauthorized", body = ErrorBody)))]
async fn list(
    State(st): State<AppState>,
    _op: OperatorSession,
) -> Result<Json<ApiKeyListView>, ApiError> {
    let mut keys: Vec<ApiKeyView> = st
        .engine
        .store()
        .api_keys()
        .await
        .map_err(|e| ApiError::from(passbind_core::CoreError::from(e)))?
        .iter()
        .map(view)
        .collect();
    keys.reverse();
    Ok(Json(ApiKeyListView {
        keys,
        scopes: SCOPES
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }))
}

/// Create a key. The token in the answer is shown this once: only its hash is stored.
#[utoipa::path(post, path = "/api/management/v1/api-keys", tag = "management",
    request_body = CreateApiKey,
    responses((status = 201, body = NewApiKeyView),
        (status = 400, description = "validation_failed", body = ErrorBody),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 403, description = "forbidden: missing CSRF token", body = ErrorBody)))]
async fn create(
    State(st): State<AppState>,
    op: OperatorSession,
    ApiJson(req): ApiJson<CreateApiKey>,
) -> Result<Response, ApiError> {
    let key = st
        .engine
        .create_api_key(&op.actor(), &req.name, &req.scopes)
        .await?;
    let body = NewApiKeyView {
        key: view(&key.record),
        token: key.token,
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Revoke a key: requests with it are refused from now on.
#[utoipa::path(delete, path = "/api/management/v1/api-keys/{id}", tag = "management",
    params(("id" = String, Path)),
    responses((status = 200, body = ApiKeyView),
        (status = 400, description = "validation_failed: no active key with this id", body = ErrorBody),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 403, description = "forbidden: missing CSRF token", body = ErrorBody)))]
async fn revoke(
    State(st): State<AppState>,
    op: OperatorSession,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ApiKeyView>, ApiError> {
    if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::new(
            ErrorCode::ValidationFailed,
            "no active API key with this id",
        )
        .with_details(serde_json::json!({ "field": "id" })));
    }
    st.engine.revoke_api_key(&op.actor(), &id).await?;
    let k = st
        .engine
        .store()
        .api_key(&id)
        .await
        .map_err(|e| ApiError::from(passbind_core::CoreError::from(e)))?
        .ok_or_else(|| ApiError::new(ErrorCode::ValidationFailed, "no such key"))?;
    Ok(Json(view(&k)))
}
