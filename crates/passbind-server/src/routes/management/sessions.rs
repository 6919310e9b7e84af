//! Sessions: filter by flow, state and time; one session with its timeline of audit events.

use super::ApiQuery;
use crate::app::AppState;
use crate::dashboard::session::OperatorSession;
use crate::error::{ApiError, ApiPath};
use axum::extract::State;
use axum::Json;
use passbind_core::model::AuditQuery;
use passbind_proto::management::{SessionDetailView, SessionListView};
use passbind_proto::session::{Flow, SessionState};
use passbind_proto::{ErrorBody, ErrorCode};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(read))
}

#[derive(Deserialize, utoipa::IntoParams)]
struct ListQuery {
    /// `registration`, `step_up`, `cross_platform`, `recovery` or `authentication`.
    flow: Option<String>,
    /// The effective state (`expired` includes live sessions past their expiry).
    state: Option<String>,
    /// Created at or after, ms since the epoch.
    since_ms: Option<i64>,
    /// Created before, ms since the epoch.
    until_ms: Option<i64>,
    /// `next_before` of the previous page.
    before: Option<String>,
    /// Page size (default 50, at most 200).
    limit: Option<u32>,
}

fn invalid(field: &str, message: &str) -> ApiError {
    ApiError::new(ErrorCode::ValidationFailed, message)
        .with_details(serde_json::json!({ "field": field }))
}

/// Sessions, newest first.
#[utoipa::path(get, path = "/api/management/v1/sessions", tag = "management",
    params(ListQuery),
    responses((status = 200, body = SessionListView),
        (status = 400, description = "validation_failed", body = ErrorBody),
        (status = 401, description = "unauthorized", body = ErrorBody)))]
async fn list(
    State(st): State<AppState>,
    _op: OperatorSession,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<SessionListView>, ApiError> {
    let flow = match q.flow.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(f) => Some(Flow::parse(f).ok_or_else(|| invalid("flow", "unknown flow"))?),
    };
    let state = match q.state.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(SessionState::parse(s).ok_or_else(|| invalid("state", "unknown state"))?),
    };
    let before = q.before.as_deref().filter(|b| !b.is_empty());
    Ok(Json(
        st.engine
            .list_sessions(
                flow,
                state,
                q.since_ms,
                q.until_ms,
                before,
                q.limit.unwrap_or(50),
            )
            .await?,
    ))
}

/// One session and its timeline: its audit events, oldest first.
#[utoipa::path(get, path = "/api/management/v1/sessions/{id}", tag = "management",
    params(("id" = String, Path)),
    responses((status = 200, body = SessionDetailView),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 404, description = "session_not_found", body = ErrorBody)))]
async fn read(
    State(st): State<AppState>,
    _op: OperatorSession,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<SessionDetailView>, ApiError> {
    let session = st.engine.session_summary(&id).await?;
    let events = st
        .engine
        .audit_events(&AuditQuery {
            session_id: Some(id),
            ascending: true,
            limit: 1000,
            ..AuditQuery::default()
        })
        .await?;
    Ok(Json(SessionDetailView {
        session,
        timeline: events.into_iter().map(super::audit::event_view).collect(),
    }))
}
