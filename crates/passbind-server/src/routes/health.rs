//! Liveness, readiness, metrics and the OpenAPI document.

use crate::app::AppState;
use crate::error::ApiError;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use passbind_proto::{ErrorBody, ErrorCode};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(openapi))
}

#[derive(Serialize, ToSchema)]
struct Health {
    status: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Health), (status = 503, description = "unavailable", body = ErrorBody)))]
async fn readyz(State(st): State<AppState>) -> Result<Json<Health>, ApiError> {
    st.engine.store().ping().await.map_err(|e| {
        tracing::warn!(error = %e, "readiness check failed");
        ApiError::new(ErrorCode::Unavailable, "the database does not answer")
    })?;
    Ok(Json(Health { status: "ready" }))
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, content_type = "text/plain", body = String)))]
async fn metrics(State(st): State<AppState>) -> impl IntoResponse {
    let mut text = st.metrics.render();
    // The audit sequencer's backlog, read from the database (all replicas share it).
    if let Ok((pending, age_ms)) = st.engine.audit_backlog().await {
        text.push_str(&format!(
            "# HELP passbind_audit_pending_events Audit events committed with their change but not yet integrated into the log.\n\
             # TYPE passbind_audit_pending_events gauge\n\
             passbind_audit_pending_events {pending}\n\
             # HELP passbind_audit_integration_delay_seconds How long the oldest pending audit event has waited for the sequencer.\n\
             # TYPE passbind_audit_integration_delay_seconds gauge\n\
             passbind_audit_integration_delay_seconds {}\n",
            age_ms as f64 / 1000.0
        ));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

/// This OpenAPI document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, content_type = "application/json", body = Object)))]
async fn openapi(State(st): State<AppState>) -> Json<serde_json::Value> {
    Json((*st.openapi).clone())
}
