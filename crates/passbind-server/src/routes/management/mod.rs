//! `/api/management/v1`: the management API that the dashboard uses. Every route but the
//! sign-in ones needs an operator session (401 without); every state-changing one also needs
//! the session's CSRF token in `X-CSRF-Token` (403 without). Every action is an audit event
//! whose actor is the operator's subject, committed with the change.

mod api_keys;
mod audit;
mod auth;
mod overview;
mod sessions;
mod users;

use crate::app::AppState;
use crate::error::ApiError;
use passbind_proto::ErrorCode;
use serde::de::DeserializeOwned;
use utoipa_axum::router::OpenApiRouter;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(auth::router())
        .merge(overview::router())
        .merge(users::router())
        .merge(sessions::router())
        .merge(api_keys::router())
        .merge(audit::router())
}

/// Query parameters, with the error envelope when they do not parse.
pub struct ApiQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        serde_urlencoded_parse(query).map(ApiQuery)
    }
}

fn serde_urlencoded_parse<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    axum::extract::Query::<T>::try_from_uri(
        &format!("/?{query}")
            .parse()
            .map_err(|_| bad_query("the query string is not valid"))?,
    )
    .map(|q| q.0)
    .map_err(|e| bad_query(&format!("bad query parameter: {}", e.body_text())))
}

fn bad_query(message: &str) -> ApiError {
    ApiError::new(ErrorCode::ValidationFailed, message)
        .with_details(serde_json::json!({ "field": "query" }))
}

/// An audit event of a management action that changes nothing stored (a verification run,
/// an export), appended on its own.
pub(crate) async fn audit_action(
    st: &AppState,
    op: &crate::dashboard::session::OperatorSession,
    event_type: &str,
    details: serde_json::Map<String, serde_json::Value>,
) -> Result<(), ApiError> {
    let draft = passbind_core::operators::operator_audit(
        st.engine.now(),
        event_type,
        "success",
        Some(&op.identity.subject),
        details,
    );
    st.engine
        .store()
        .commit(vec![passbind_core::model::Write::AppendAudit(draft)])
        .await
        .map_err(|e| ApiError::from(passbind_core::CoreError::from(e)))
}
