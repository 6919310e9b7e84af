//! The overview statistics, the effective settings, and who is signed in.

use super::ApiQuery;
use crate::app::AppState;
use crate::dashboard::session::OperatorSession;
use crate::error::ApiError;
use axum::extract::State;
use axum::Json;
use passbind_proto::management::{OverviewView, SettingsView};
use passbind_proto::ErrorBody;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(overview))
        .routes(routes!(settings))
}

#[derive(Deserialize, utoipa::IntoParams)]
struct OverviewQuery {
    /// Start of the period, ms since the epoch (default: `until` minus 7 days).
    since_ms: Option<i64>,
    /// End of the period, ms since the epoch (default: now).
    until_ms: Option<i64>,
    /// Bucket width, seconds (default: a day; at least 60; at most 1000 buckets).
    bucket_seconds: Option<i64>,
}

/// Counts and a time series of sessions per flow and outcome (completed, failed by reason,
/// expired, cancelled, pending), IDV pass and mismatch rates, users, active credentials.
#[utoipa::path(get, path = "/api/management/v1/overview", tag = "management",
    params(OverviewQuery),
    responses((status = 200, body = OverviewView),
        (status = 401, description = "unauthorized", body = ErrorBody)))]
async fn overview(
    State(st): State<AppState>,
    _op: OperatorSession,
    ApiQuery(q): ApiQuery<OverviewQuery>,
) -> Result<Json<OverviewView>, ApiError> {
    let bucket_ms = q.bucket_seconds.unwrap_or(86_400).saturating_mul(1000);
    let until = q.until_ms.unwrap_or_else(|| st.engine.now());
    let since = q.since_ms.unwrap_or(until.saturating_sub(7 * 86_400_000));
    Ok(Json(st.engine.overview(since, until, bucket_ms).await?))
}

/// The effective configuration: RP id, origins, IDV provider, workflow ids, TTLs. Secrets are
/// shown only as `<redacted>` when set.
#[utoipa::path(get, path = "/api/management/v1/settings", tag = "management",
    responses((status = 200, body = SettingsView),
        (status = 401, description = "unauthorized", body = ErrorBody)))]
async fn settings(
    State(st): State<AppState>,
    _op: OperatorSession,
) -> Result<Json<SettingsView>, ApiError> {
    Ok(Json(st.options.management.settings.clone()))
}
